"""`hf-rnn-transfer compare`: the transferred source against the same architecture from scratch (and TF-IDF +
logistic regression for texts) over label budgets and seeds, with the negative-transfer test."""

from dataclasses import dataclass, field
from pathlib import Path

from .finetune import SourceArguments, selection_score, target_score, transferred_model
from .linear_companion import LinearSourceArguments
from .target_data import (
    TargetDataArguments,
    encode_target,
    is_classifier_of,
    load_source_config,
    read_target,
    refuse_unread_options,
)


@dataclass
class CompareArguments(LinearSourceArguments):
    """Arguments of `hf-rnn-transfer compare` beyond the source, data and training ones (and the linear model's
    source labels: a row of the linear model on the same labels as transfer, and its average with transfer)."""

    budgets: list[str] = field(
        default_factory=lambda: ["50", "100", "200", "500"],
        metadata={"help": "Label budgets (nested, class-balanced); 'all' is the whole training split."},
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds."})
    scratch_epochs: float = field(default=10.0, metadata={"help": "Epochs of the scratch model."})
    scratch_learning_rate: float = field(default=3e-3, metadata={"help": "Learning rate of the scratch model."})
    scratch_warmup: float = field(
        default=0.1, metadata={"help": "Warm-up of the scratch model: a share of its steps (< 1) or a step count."}
    )
    scratch_select_folds: int | None = field(
        default=None,
        metadata={
            "help": "Selection of scratch's stopping epoch inside each budget: folds (default: the same as "
            "--select_folds, so both get the same chance); 0 trains scratch once for --scratch_epochs (cheaper)."
        },
    )
    report: str = field(default="comparison.md", metadata={"help": "Markdown report (a PNG curve goes beside it)."})

    def scratch_training_arguments(self, training_args):
        """The scratch model's recipe: `training_args` without what only a transferred model has, for
        `scratch_epochs` at `scratch_learning_rate` with a linear schedule after `scratch_warmup`."""
        from ..evaluation import scratch_arguments

        return scratch_arguments(
            training_args,
            num_train_epochs=self.scratch_epochs,
            learning_rate=self.scratch_learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=self.scratch_warmup,
            **({} if self.scratch_select_folds is None else {"select_folds": self.scratch_select_folds}),
        )


def parse_budgets(budgets: list[str]) -> list[int | None]:
    """`["50", "all"]` -> `[50, None]`."""
    parsed = []
    for budget in budgets:
        text = str(budget).strip().lower()
        if text == "all":
            parsed.append(None)
        elif text.isdigit() and int(text) > 0:
            parsed.append(int(text))
        else:
            raise ValueError(f"--budgets takes positive integers or 'all', got {budget!r}.")
    return parsed


def compare_transfer(
    compare_args: CompareArguments,
    source_args: SourceArguments,
    data_args: TargetDataArguments,
    training_args,
    token=None,
):
    """
    Transfer vs scratch (and TF-IDF + LR for texts) on the target data over budgets and seeds, beside the source's
    zero-shot accuracy (when its labels are the target's) and the majority-class rate. No Hub session of its own.

    Returns:
        The `ComparisonResult` (`to_markdown()`, `plot(path)`, `to_card()`).
    """
    from transformers import set_seed

    from ..configuration_rnn import RNNConfig
    from ..evaluation import compare

    budgets = parse_budgets(compare_args.budgets)
    seeds = compare_args.seeds
    if not seeds or len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
        raise ValueError(f"--seeds takes distinct non-negative integers (e.g. --seeds 0 1 2), got {seeds}.")
    folds = compare_args.scratch_select_folds
    if folds is not None and (folds < 0 or folds == 1):
        raise ValueError(f"--scratch_select_folds must be 0 (off) or at least 2, got {folds}.")
    compare_args.check_linear_source()
    if training_args.resume_from_checkpoint:
        raise ValueError("compare trains a fresh model per budget and seed: --resume_from_checkpoint does not apply.")
    if training_args.eval_strategy != "no":
        raise ValueError(
            "compare scores every model on the test split after training; leave --eval_strategy at no (use finetune "
            "with --validation_file to watch one run)."
        )
    with training_args.main_process_first(desc="reading and encoding the target"):  # the first writes the cache
        raw = read_target(data_args)
        if "test" not in raw:
            raise ValueError("compare needs a test split: pass --test_file (or a dataset with a test split).")
        source_config, tokenizer = load_source_config(source_args.source, source_args.revision, token)
        target = encode_target(raw, source_config, tokenizer, data_args)
    template = transferred_model(source_args, target, token)

    def make_transfer(seed):
        set_seed(seed)
        return transferred_model(source_args, target, token)

    def make_scratch(seed):
        set_seed(seed)
        return type(template)(RNNConfig.from_dict(template.config.to_dict()))

    scratch_args = compare_args.scratch_training_arguments(training_args)
    linear_source = compare_args.read_linear_source(target, data_args)
    result = compare(
        make_transfer,
        make_scratch,
        target.splits["train"],
        target.splits["test"],
        training_args,
        target.collator,
        budgets=budgets,
        seeds=compare_args.seeds,
        scratch_args=scratch_args,
        texts=target.texts,
        zero_shot=_zero_shot_source(source_args, target, token),
        score=target_score(target),
        metric="BLEU" if target.is_seq2seq else "accuracy",
        select_score=selection_score(target),
        linear_source=linear_source,
        linear_target_weight=compare_args.linear_target_weight,
    )
    return result


def _zero_shot_source(source_args: SourceArguments, target, token):
    """The source itself, when it is a classifier of exactly the target's labels (its answers then mean the same),
    or a sequence-to-sequence model for output texts (its generations with no target pairs)."""
    from ..modeling_rnn import RNNForSeq2SeqLM, RNNForSequenceClassification
    from ..transfer import load_source

    model, _, _ = load_source(source_args.source, source_args.revision, token)
    if target.is_seq2seq:
        return model if isinstance(model, RNNForSeq2SeqLM) else None
    same_labels = is_classifier_of(model.config, target.labels.id2label)
    return model if isinstance(model, RNNForSequenceClassification) and same_labels else None


def write_comparison(result, report: str | Path) -> str:
    """The markdown report and its learning-curve PNG beside it (same name, .png); returns the markdown."""
    report = Path(report)
    report.parent.mkdir(parents=True, exist_ok=True)
    curve = report.with_suffix(".png")
    result.plot(curve)
    text = result.to_markdown() + f"\n\n![learning curve]({curve.name})\n"
    report.write_text(text)
    return text


def run_compare(
    compare_args: CompareArguments, source_args: SourceArguments, data_args: TargetDataArguments, training_args
) -> str:
    """`hf-rnn-transfer compare`: `compare_transfer` in a Hub session; writes the report and plot."""
    from accelerate import PartialState

    from ..hub import resolve_hub

    refuse_unread_options("compare", data_args, training_args)
    with resolve_hub(source_args.endpoint, None, source_args.hub_root) as (_, token):
        result = compare_transfer(compare_args, source_args, data_args, training_args, token)
    if not PartialState().is_main_process:
        return ""  # a distributed run's other processes trained the same models; the first one writes the report
    text = write_comparison(result, compare_args.report)
    print(text)
    return text
