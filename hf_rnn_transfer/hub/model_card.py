"""Model cards for source and fine-tuned recurrent models, filled through `huggingface_hub.ModelCard`.

The template lives in the top-level `model_cards/` folder (shipped in the wheel). Cards name Hub repositories only:
local paths and tokens never enter them (`check_card_is_shareable`).
"""

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .. import __version__
from ..configuration_rnn import RNNConfig
from .repo_id import is_hub_id

TEMPLATE = "rnn_model_card.md"
_HEADS = {
    "RNNForSequenceClassification": ("text-classification", "AutoModelForSequenceClassification"),
    "RNNForTokenClassification": ("token-classification", "AutoModelForTokenClassification"),
    "RNNForCausalLM": ("text-generation", "AutoModelForCausalLM"),
    "RNNForTimeSeriesForecasting": ("time-series-forecasting", "AutoModelForTimeSeriesPrediction"),
    "RNNForMultiTaskSequenceClassification": ("text-classification", "AutoModel"),
    "RNNForSeq2SeqLM": ("text2text-generation", "AutoModelForSeq2SeqLM"),
    "RNNModel": ("feature-extraction", "AutoModel"),
}


@dataclass
class Metric:
    """One result for the card and its `model-index`."""

    name: str  # e.g. "accuracy"
    value: float
    split: str = "test"
    dataset_name: str = ""
    dataset_type: str = ""


@dataclass
class CardContent:
    """
    What a model card says beyond the architecture, which is read from the model.

    Args:
        repo_id: the repository the card is for (`namespace/name`).
        objective: the training objective, e.g. "next-token prediction (causal language model)".
        data_description: the data in words, e.g. "Amazon reviews of books, dvd and electronics (6,000 texts)".
        datasets: Hub dataset ids the model was trained on (only ids: local paths are refused).
        base_model: the source model's Hub id, for a fine-tuned model.
        metrics: results for the card's table and `model-index`.
        training: training settings (learning rates, schedule, freezing, epochs, ...).
        transfer: `TransferReport.to_dict()`-shaped: `{"summary": str, "tensors": [{"target", "status", "source",
            "reason"}]}`.
        comparison: `{"summary": str, "header": [...], "rows": [[...]]}`, e.g. transfer vs scratch per label budget.
        summary: one paragraph at the top.
        ensemble: the number of members when the model is a `SourceEnsemble` (the card then says how to load one).
        license, language, tags: card metadata.
    """

    repo_id: str
    objective: str
    data_description: str
    datasets: list[str] = field(default_factory=list)
    base_model: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    training: dict = field(default_factory=dict)
    transfer: dict | None = None
    comparison: dict | None = None
    summary: str = ""
    ensemble: int = 0
    license: str | None = None
    language: list[str] | None = None
    tags: list[str] = field(default_factory=list)


def template_path() -> Path:
    """The card template, from the installed package (falls back to the source tree's `model_cards/`)."""
    packaged = Path(str(resources.files("hf_rnn_transfer") / "model_cards" / TEMPLATE))
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parents[2] / "model_cards" / TEMPLATE


def build_model_card(model_or_config, content: CardContent, has_tokenizer: bool = False) -> ModelCard:
    """
    Fill the template for a model (or its config) and validate the metadata.

    Raises:
        ValueError: if `repo_id`, `base_model` or a dataset is not a Hub id (a local path, say).
    """
    config: RNNConfig = getattr(model_or_config, "config", model_or_config)
    for name, value in [("repo_id", content.repo_id), ("base_model", content.base_model)] + [
        ("datasets", d) for d in content.datasets
    ]:
        if value is not None and not is_hub_id(value):
            raise ValueError(
                f"model card {name} must be a Hub id like 'namespace/name', got {value!r}: cards never name local "
                "paths. Push the source or dataset to a Hub first, or leave it out."
            )
    architecture_name = (config.architectures or ["RNNModel"])[0]
    pipeline_tag, auto_class = _HEADS.get(architecture_name, _HEADS["RNNModel"])
    if not config.is_token_input and pipeline_tag in ("text-classification", "token-classification"):
        pipeline_tag = None  # the Hub has no pipeline tag for classifying series
    model_name = content.repo_id.split("/")[-1]
    eval_results = [
        EvalResult(
            task_type=pipeline_tag or "other",
            dataset_type=m.dataset_type or (content.datasets[0] if content.datasets else "custom"),
            dataset_name=m.dataset_name or content.data_description[:80],
            dataset_split=m.split,
            metric_type=m.name,
            metric_value=float(m.value),
        )
        for m in content.metrics
    ]
    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=content.license,
        language=content.language,
        datasets=content.datasets or None,
        base_model=content.base_model,
        tags=["hf-rnn-transfer", config.cell_type, "rnn", *content.tags],
        eval_results=eval_results or None,
    )
    if content.base_model:
        card_data.base_model_relation = "finetune"
    card = ModelCard.from_template(
        card_data,
        template_path=str(template_path()),
        model_name=model_name,
        repo_id=content.repo_id,
        summary=content.summary or _default_summary(config, architecture_name),
        architecture=architecture_table(model_or_config),
        objective=content.objective,
        data_description=content.data_description,
        base_model=content.base_model,
        base_model_url=f"https://huggingface.co/{content.base_model}" if content.base_model else None,
        training=content.training,
        transfer=content.transfer,
        metrics=content.metrics,
        comparison=content.comparison,
        auto_class=auto_class,
        pipeline_tag=pipeline_tag,
        has_tokenizer=has_tokenizer,
        ensemble=content.ensemble,
        version=__version__,
    )
    return ModelCard(str(card))  # parsing it back validates the metadata and its model-index


def architecture_table(model_or_config) -> dict:
    config: RNNConfig = getattr(model_or_config, "config", model_or_config)
    table = {
        "cell": config.cell_type.upper() if config.cell_type != "rnn" else "vanilla RNN (tanh)",
        "layers": config.num_layers,
        "hidden size (per direction)": config.hidden_size,
        "direction": "bidirectional" if config.bidirectional else "unidirectional",
    }
    if config.is_token_input:
        table.update({"vocabulary": config.vocab_size, "embedding size": config.embedding_size})
    else:
        table.update(
            {
                "input channels": config.input_size,
                "input projection size": config.embedding_size,
                "input normalisation": "per-channel mean/std" if config.input_mean else "none",
            }
        )
    table["pooling"] = config.pooling
    if config.task_labels:
        table["tasks (one head each)"] = "; ".join(
            f"{task}: {', '.join(names)}" for task, names in config.task_labels.items()
        )
    if hasattr(model_or_config, "num_parameters"):
        table["parameters"] = f"{model_or_config.num_parameters():,}"
    return table


def check_card_is_shareable(text: str, forbidden: list[str]) -> None:
    """Raise if the card text contains any of `forbidden` (tokens, local directories)."""
    for item in forbidden:
        if item and item in text:
            raise ValueError("the model card would leak a local path or a token; refusing to write it.")


def _default_summary(config: RNNConfig, architecture: str) -> str:
    direction = "bidirectional " if config.bidirectional else ""
    return (
        f"A {config.num_layers}-layer {direction}{config.cell_type.upper()} `{architecture}` built with "
        "hf-rnn-transfer: a transformers model (Auto classes, `pipeline`, `trust_remote_code`)."
    )
