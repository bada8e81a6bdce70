"""Move what a source model learned into a target model, and say exactly what moved.

`transfer(source, target)` copies the encoder tensors that fit, remaps the vocabulary (by token string) and the input
channels (by name) where they differ, re-initialises the rest, and returns a `TransferReport` with one row per target
tensor. Incompatible pairs fail before anything is copied, naming the tensors and the way out.

Example:

```python
>>> from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
>>> from hf_rnn_transfer.transfer import transfer
>>> target = RNNForSequenceClassification(RNNConfig(vocab_size=8000, num_labels=2, pooling="concat"))
>>> model, report = transfer("alice/reviews-lm", target, source_tokenizer=src_tok, target_tokenizer=tgt_tok)
>>> print(report)
```
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, models
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from . import modeling_rnn
from .configuration_rnn import RNNConfig
from .hub.repo_id import is_hub_id, shareable_name
from .modeling_rnn import TRANSFER_CALL_ARGUMENTS, WEIGHTS_CHECKSUMS, RNNModel, RNNPreTrainedModel
from .transfer_config import TransferConfig

STATUSES = ("copied", "remapped", "reinitialised", "skipped")
_LAYER = re.compile(r"^layers\.(\d+)\.")
# Config fields a target built from a source's config must not inherit when the task changes.
_TASK_FIELDS = (
    "id2label",
    "label2id",
    "num_labels",
    "problem_type",
    "architectures",
    "auto_map",
    "custom_pipelines",
    "_name_or_path",
    "is_encoder_decoder",
)


@dataclass
class TensorTransfer:
    """What happened to one target tensor."""

    target: str
    status: str  # one of STATUSES
    source: str | None
    reason: str


@dataclass
class TransferReport:
    """
    For every target tensor: `copied`, `remapped`, `reinitialised` or `skipped`, with the source tensor and the reason.

    `str(report)` is a readable table; `report.to_dict()` feeds the model card (`CardContent.transfer`).
    """

    source: str
    target_class: str
    tensors: list[TensorTransfer] = field(default_factory=list)
    vocabulary: dict | None = None
    input_channels: dict | None = None
    normalisation: str | None = None
    sources: list[dict] | None = None  # for averaged sources: each source and its weight

    def counts(self) -> dict[str, int]:
        counter = Counter(t.status for t in self.tensors)
        return {status: counter.get(status, 0) for status in STATUSES}

    def by_status(self, status: str) -> list[str]:
        return [t.target for t in self.tensors if t.status == status]

    @property
    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in self.counts().items() if n)
        lines = [f"{counts} (target {self.target_class} from {self.source})."]
        if self.vocabulary:
            v = self.vocabulary
            line = (
                f"Vocabulary remapped by token string: {v['target_tokens_in_source']}/{v['target_vocab_size']} target "
                f"tokens ({v['token_coverage']:.1%}) found in the source vocabulary; the other rows start at the "
                "mean source embedding."
            )
            if v.get("occurrence_coverage") is not None:
                line += f" They cover {v['occurrence_coverage']:.1%} of the target corpus's token occurrences."
            lines.append(line)
        if self.input_channels:
            lines.append(f"Input channels: {self.input_channels['summary']}")
        if self.normalisation:
            lines.append(f"Normalisation: {self.normalisation}")
        if self.sources:
            parts = ", ".join(f"{s['source']} (weight {s['weight']:.3g})" for s in self.sources)
            lines.append(f"Encoder averaged from {parts}.")
        return " ".join(lines)

    def to_dict(self) -> dict:
        """Everything in plain types, for the model card: local paths are replaced by "a local checkpoint"."""
        return {
            "source": shareable_name(self.source),
            "target_class": self.target_class,
            "summary": self.summary.replace(self.source, shareable_name(self.source)),
            "counts": self.counts(),
            "tensors": [vars(t) for t in self.tensors],
            "vocabulary": self.vocabulary,
            "input_channels": self.input_channels,
            "normalisation": self.normalisation,
            "sources": [{**s, "source": shareable_name(s["source"])} for s in self.sources] if self.sources else None,
        }

    @classmethod
    def from_dict(cls, values: dict) -> "TransferReport":
        """The report `to_dict()` wrote (e.g. `transfer_report.json`); derived entries (summary, counts) are
        recomputed."""
        return cls(
            source=values["source"],
            target_class=values["target_class"],
            tensors=[TensorTransfer(**row) for row in values.get("tensors") or []],
            vocabulary=values.get("vocabulary"),
            input_channels=values.get("input_channels"),
            normalisation=values.get("normalisation"),
            sources=values.get("sources"),
        )

    def __str__(self) -> str:
        rows = [("target tensor", "status", "source tensor", "reason")]
        rows += [(t.target, t.status, t.source or "-", t.reason) for t in self.tensors]
        widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
        lines = [
            "  ".join(str(cell).ljust(widths[i]) if i < 3 else str(cell) for i, cell in enumerate(row)) for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
        return "\n".join([f"TransferReport: {self.summary}", *lines])


def transfer(
    source=None,
    target=None,
    config: TransferConfig | None = None,
    *,
    source_tokenizer: PreTrainedTokenizerBase | None = None,
    target_tokenizer: PreTrainedTokenizerBase | None = None,
    corpus: Iterable[str] | None = None,
    token: str | None = None,
    target_class: type[RNNPreTrainedModel] | None = None,
    **options,
) -> tuple[RNNPreTrainedModel, TransferReport]:
    """
    Build a target model from a source model.

    Args:
        source: a model, a local directory or a Hub repo id (default: `config.source`).
        target: a model (its current weights are the fresh initialisation of whatever is not transferred) or an
            `RNNConfig` (then `target_class`, or `config.architectures`, names the head).
        config: a `TransferConfig` (what moves and how); its fields may also be given as keyword arguments
            (`transfer_layers=2`, `revision="v1"`, ...), which override it.
        source_tokenizer, target_tokenizer: remap embedding rows (and a language model's decoder) by token string
            when the vocabularies differ. Loaded from `source` when only the target's is given.
        corpus: target-domain texts; the report then gives the share of their token occurrences the source knew.
        token: Hub token for a private source (never stored).

    Returns:
        `(model, report)`: the target model with the transferred weights, and the `TransferReport`. The model also
        carries `transfer_config` (with the source pinned to the commit it was read at) and `transfer_report`;
        `save_pretrained` writes both beside the weights.

    Raises:
        ValueError: the pair is incompatible (another cell, hidden size or direction, embedding sizes, an
            unmappable vocabulary, a head that does not match); the message lists the tensors and the way out.
    """
    config = (config or TransferConfig()).replace(**options) if options else (config or TransferConfig())
    if source is None:
        source = config.source
    if source is None:
        raise ValueError("transfer needs a source: pass source= (a model, folder or repo id) or TransferConfig.source.")
    if isinstance(source, (str, Path)) and config.source is not None and str(source) != config.source:
        raise ValueError(f"transfer got two sources: {source!r} and TransferConfig.source={config.source!r}.")
    source_model, source_name, pinned = load_source(source, config.revision, token)
    averaged = None
    if config.average_sources:
        averaged, average_report = average_encoders(
            [source_model, *config.average_sources], config.average_weights, token=token
        )
        source_model = averaged
    target_model = _build_target(target, target_class)
    part = _target_part(config, source_model, target_model)
    report = TransferReport(source=source_name, target_class=type(target_model).__name__)
    if averaged is not None:
        report.sources = average_report.sources
    plan = _Plan(source_model, target_model, config, config.transfer_layers, part)
    if source_tokenizer is None and target_tokenizer is not None and isinstance(source, (str, Path)):
        try:
            source_tokenizer = AutoTokenizer.from_pretrained(str(source), revision=pinned, token=token)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"target_tokenizer was given but {source_name} has no loadable tokenizer "
                f"({str(err).splitlines()[0]}). Pass source_tokenizer= (the tokenizer the source was trained "
                "with) to remap the vocabulary."
            ) from err
    plan.check(source_tokenizer, target_tokenizer)

    source_state = _encoder_relative(source_model.state_dict(), source_model, part)
    target_state = plan.fresh
    new_state = {}
    vocab_map = None
    if plan.remap_vocabulary:
        vocab_map = _vocabulary_map(source_tokenizer, target_tokenizer)
        report.vocabulary = _coverage(vocab_map, target_tokenizer, corpus)
        report.vocabulary["source_vocab_size"] = len(source_tokenizer.get_vocab())
    tied = _tied_targets(target_model)

    for name in target_state:
        full = _full_name(name, target_model, part)
        if full in tied:
            report.tensors.append(TensorTransfer(full, "skipped", None, f"tied to {tied[full]}"))
            continue
        group = _group(name)
        source_full = _full_name(name, source_model, part) if name in source_state else None
        if group == "other":
            row = ("reinitialised", f"not part of the transfer (target_part={part!r})")
        elif group == "seq2seq":
            row = plan.seq2seq(name, source_state, vocab_map, new_state)
        elif group == "embedding":
            row = plan.embedding(name, source_state, vocab_map, new_state, report)
        elif group == "layer":
            row = plan.layer(name, source_state, new_state)
        else:
            row = plan.head(name, source_state, vocab_map, new_state)
        status, reason = row
        report.tensors.append(
            TensorTransfer(full, status, source_full if status in ("copied", "remapped") else None, reason)
        )

    if plan.continuous:
        report.normalisation = _carry_normalisation(source_model.config, target_model.base_model, plan.channel_map)
        if plan.channel_report:
            report.input_channels = plan.channel_report

    full_state = {_full_name(k, target_model, part): v for k, v in new_state.items()}
    with torch.no_grad():
        target_model.load_state_dict(full_state, strict=False)
    target_model.tie_weights()
    target_model.transfer_config = config.replace(
        source=None
        if isinstance(source, RNNPreTrainedModel) and source_name.startswith("<")
        else source_name.split("@")[0],
        revision=pinned,
    )
    target_model.transfer_report = report
    # the values the transferred tensors started from: L2-SP's reference (after a reload it is rebuilt from the
    # pinned source by `source_reference_weights`)
    target_model.transfer_reference = full_state
    return target_model, report


def transfer_from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
    """`RNNFor*.from_pretrained(source, transfer=TransferConfig(...), num_labels=...)` (or the config's fields as
    keywords): build the head class from the source's config (updated by the other keyword arguments) and `transfer`
    into it. The report is `model.transfer_report`."""
    config = kwargs.pop("transfer", None)
    if isinstance(config, dict):
        config = TransferConfig.from_dict(config)
    if config is not None and not isinstance(config, TransferConfig):
        raise TypeError(f"from_pretrained(transfer=...) takes a TransferConfig or a dict, got {type(config).__name__}.")
    options = {k: kwargs.pop(k) for k in TransferConfig.keywords() if k in kwargs}
    unknown = [k for k in kwargs if k.startswith("transfer_")]
    if unknown:
        raise TypeError(
            f"Unknown transfer option(s) {unknown}; TransferConfig fields: {sorted(TransferConfig.keywords())}."
        )
    if kwargs.get("revision") is not None:
        options["revision"] = kwargs.pop("revision")
    kwargs.pop("revision", None)
    tokenizers = {k: kwargs.pop(k) for k in TRANSFER_CALL_ARGUMENTS if k in kwargs and k != "transfer"}
    token = kwargs.pop("token", None)
    if args:
        raise TypeError("from_pretrained with transfer options takes configuration changes as keyword arguments only.")
    config = (config or TransferConfig()).replace(**options)
    source_config = AutoConfig.from_pretrained(
        str(pretrained_model_name_or_path), revision=config.revision, token=token
    )
    overrides = dict(kwargs)
    values = {k: v for k, v in source_config.to_dict().items() if k not in _TASK_FIELDS and k != "model_type"}
    values.pop(WEIGHTS_CHECKSUMS, None)
    if "id2label" in overrides and "num_labels" not in overrides:
        overrides["num_labels"] = len(overrides["id2label"])
    target_config = RNNConfig(**{**values, **overrides})
    model, _ = transfer(
        str(pretrained_model_name_or_path), cls(target_config), config.replace(source=None), token=token, **tokenizers
    )
    return model


def source_reference_weights(model: RNNPreTrainedModel, token: str | None = None, target_tokenizer=None) -> dict:
    """
    The values the transferred tensors of `model` started from (L2-SP's reference): kept on the model right after
    `transfer()`, rebuilt after a reload by transferring again from the source recorded in `model.transfer_config`
    (pinned to its commit) into a fresh copy of the model.

    Args:
        target_tokenizer: the model's tokenizer, when the vocabulary was remapped (default: loaded from the folder
            the model was loaded from).
    """
    reference = getattr(model, "transfer_reference", None)
    if reference is not None:
        return reference
    config, report = getattr(model, "transfer_config", None), getattr(model, "transfer_report", None)
    if config is None or config.source is None:
        raise ValueError(
            "The model does not record the source it was transferred from (no transfer_config.json with a source), "
            "so the reference weights of L2-SP cannot be rebuilt. Transfer again with hf_rnn_transfer.transfer()."
        )
    if report is not None and report.vocabulary and target_tokenizer is None:
        try:
            target_tokenizer = AutoTokenizer.from_pretrained(model.name_or_path)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"The vocabulary was remapped from {config.source}: pass the model's tokenizer (target_tokenizer=) "
                f"to rebuild the reference weights ({str(err).splitlines()[0]})."
            ) from err
    fresh = type(model)(RNNConfig.from_dict(model.config.to_dict())).to(model.device)
    rebuilt, _ = transfer(None, fresh, config, token=token, target_tokenizer=target_tokenizer)
    return rebuilt.transfer_reference


def average_encoders(
    sources: Sequence, weights: Sequence[float] | None = None, revision: str | None = None, token: str | None = None
) -> tuple[RNNModel, TransferReport]:
    """
    Average the encoders of compatible source models (same cell, sizes, direction, vocabulary or channels).

    Args:
        sources: models, local directories or Hub repo ids.
        weights: one non-negative weight per source (normalised to sum to one); uniform when `None`.

    Returns:
        `(encoder, report)`: an `RNNModel` whose every tensor is the weighted mean of the sources', to pass as the
        `source` of `transfer`; the report lists each source and its weight.
    """
    if len(sources) < 2:
        raise ValueError(f"average_encoders needs at least two sources, got {len(sources)}.")
    weights = [1.0] * len(sources) if weights is None else [float(w) for w in weights]
    if len(weights) != len(sources) or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError("average_encoders needs one non-negative weight per source, not all zero.")
    weights = [w / sum(weights) for w in weights]
    loaded = [load_source(s, revision, token)[:2] for s in sources]
    first = loaded[0][0].config
    keys = ("cell_type", "vocab_size", "input_size", "embedding_size", "layer_sizes", "num_layers", "bidirectional")
    for model, name in loaded[1:]:
        differing = [k for k in keys if getattr(model.config, k) != getattr(first, k)]
        if differing:
            detail = ", ".join(f"{k}: {getattr(first, k)} vs {getattr(model.config, k)}" for k in differing)
            raise ValueError(
                f"Cannot average {loaded[0][1]} and {name}: their encoders differ ({detail}). Average only sources "
                "built with the same encoder configuration and tokenizer; transfer from each separately otherwise."
            )
    encoder_config = RNNConfig(**{k: v for k, v in first.to_dict().items() if k not in _TASK_FIELDS})
    averaged = RNNModel(encoder_config)
    states = [model.base_model.state_dict() for model, _ in loaded]
    with torch.no_grad():
        averaged.load_state_dict({k: sum(w * s[k].float() for w, s in zip(weights, states)) for k in states[0]})
    names = [name for _, name in loaded]
    report = TransferReport(source=" + ".join(names), target_class="RNNModel")
    report.tensors = [TensorTransfer(k, "copied", k, "weighted mean of the sources") for k in states[0]]
    report.sources = [{"source": n, "weight": w} for n, w in zip(names, weights)]
    averaged.transfer_report = report
    return averaged, report


def extend_tokenizer(
    tokenizer: PreTrainedTokenizerFast, texts: Iterable[str], max_new_tokens: int = 5000, min_frequency: int = 2
) -> tuple[PreTrainedTokenizerFast, list[str]]:
    """
    Add frequent target-domain words that a source tokenizer lacks, keeping every existing id.

    Word-level tokenizers get the words in their vocabulary (so the new ids follow the old ones); other kinds get
    them as added tokens. Use the result as the target tokenizer of `transfer`: old tokens keep their trained rows,
    new ones start at the mean source embedding.

    Returns:
        `(extended_tokenizer, new_tokens)`, the new tokens most frequent first.
    """
    backend = tokenizer.backend_tokenizer
    vocab = tokenizer.get_vocab()
    counts: Counter = Counter()
    for text in texts:
        normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
        pieces = backend.pre_tokenizer.pre_tokenize_str(normalized) if backend.pre_tokenizer else [(normalized, None)]
        counts.update(word for word, _ in pieces if word not in vocab)
    new_tokens = [w for w, c in counts.most_common() if c >= min_frequency][:max_new_tokens]
    if isinstance(backend.model, models.WordLevel):
        extended_vocab = dict(vocab)
        for word in new_tokens:
            extended_vocab[word] = len(extended_vocab)
        unk = tokenizer.unk_token
        rebuilt = Tokenizer(models.WordLevel(vocab=extended_vocab, unk_token=unk))
        rebuilt.normalizer, rebuilt.pre_tokenizer, rebuilt.decoder = (
            backend.normalizer,
            backend.pre_tokenizer,
            backend.decoder,
        )
        extended = PreTrainedTokenizerFast(
            tokenizer_object=rebuilt,
            **{k: getattr(tokenizer, k) for k in ("pad_token", "unk_token", "bos_token", "eos_token")},
            model_max_length=tokenizer.model_max_length,
            model_input_names=list(tokenizer.model_input_names),
        )
    else:
        extended = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(backend.to_str()),
            **tokenizer.special_tokens_map,
            model_max_length=tokenizer.model_max_length,
            model_input_names=list(tokenizer.model_input_names),
        )
        extended.add_tokens(new_tokens)
    return extended, new_tokens


# ----------------------------------------------------------------------------------------------------- internals


class _Plan:
    """The decisions for one source/target pair, checked before anything is copied."""

    def __init__(
        self, source: RNNPreTrainedModel, target: RNNPreTrainedModel, config: TransferConfig, layers, part: str
    ):
        self.source, self.target, self.config, self.part = source, target, config, part
        self.s = source.config
        self.t = _decoder_view(target.config) if part == "decoder" else target.config
        self.embeddings = config.transfer_embeddings
        self.layers = _layers(layers, self.s.num_layers, self.t.num_layers)
        # the target's fresh tensors by relative name: new rows and columns start from these
        self.fresh = _encoder_relative(target.state_dict(), target, part)
        self.continuous = not self.t.is_token_input
        self.remap_vocabulary = False
        self.channel_map: dict[int, int] | None = None  # target channel -> source channel
        self.channel_report: dict | None = None

    def check(self, source_tokenizer, target_tokenizer) -> None:
        problems = []
        if self.s.is_token_input != self.t.is_token_input:
            kind = {True: "tokens", False: "continuous input"}
            problems.append(
                f"the source reads {kind[self.s.is_token_input]} but the target reads {kind[self.t.is_token_input]}"
            )
            raise ValueError(self._message(problems, "pick a source trained on the same kind of input"))
        if self.embeddings:
            if self.s.embedding_size != self.t.embedding_size:
                tensor = "rnn.embeddings.weight" if self.t.is_token_input else "rnn.input_projection.weight"
                problems.append(f"{tensor}: embedding_size {self.s.embedding_size} into {self.t.embedding_size}")
            if self.t.is_token_input:
                same_tokenizer = _same_vocabulary(source_tokenizer, target_tokenizer)
                if source_tokenizer is not None and target_tokenizer is not None and not same_tokenizer:
                    if not self.config.remap_vocabulary:
                        problems.append(
                            "rnn.embeddings.weight: the source and target tokenizers differ and "
                            "remap_vocabulary=False; set remap_vocabulary=True to move rows by token string"
                        )
                    self.remap_vocabulary = self.config.remap_vocabulary
                elif self.s.vocab_size != self.t.vocab_size:
                    problems.append(
                        f"rnn.embeddings.weight: source vocabulary {self.s.vocab_size} tokens, target "
                        f"{self.t.vocab_size}; pass source_tokenizer and target_tokenizer to remap rows by token "
                        "string"
                    )
            else:
                self._plan_channels()
        for i in self.layers:
            problems += self._layer_problems(i)
        if self.config.transfer_head:
            problems += self._head_problems()
        if problems:
            raise ValueError(self._message(problems, self._way_out()))

    def _layer_problems(self, i: int) -> list[str]:
        s, t, out = self.s, self.t, []
        prefix = f"rnn.layers.{i}"
        if s.cell_type != t.cell_type:
            out.append(f"{prefix}: {s.cell_type.upper()} weights into a {t.cell_type.upper()} layer")
        if s.layer_sizes[i] != t.layer_sizes[i]:
            out.append(f"{prefix}: hidden size {s.layer_sizes[i]} into {t.layer_sizes[i]}")
        if i > 0 and s.layer_sizes[i - 1] != t.layer_sizes[i - 1]:
            out.append(f"{prefix}: input size {s.layer_sizes[i - 1]} (the layer below) into {t.layer_sizes[i - 1]}")
        if s.bidirectional != t.bidirectional:
            direction = {True: "bidirectional", False: "unidirectional"}
            out.append(f"{prefix}: {direction[s.bidirectional]} into {direction[t.bidirectional]}")
        if i == 0 and s.embedding_size != t.embedding_size:
            out.append(f"{prefix}: input size (embedding_size) {s.embedding_size} into {t.embedding_size}")
        return out

    def _head_problems(self) -> list[str]:
        if self.part == "decoder":  # a language model's output layer into the decoder's: shapes are checked per tensor
            return []
        if type(self.source) is not type(self.target):
            return [f"head: a {type(self.source).__name__} head cannot go into a {type(self.target).__name__}"]
        if isinstance(self.target, modeling_rnn.RNNForSequenceClassification | modeling_rnn.RNNForTokenClassification):
            if self.s.id2label != self.t.id2label:
                return [f"head: label maps differ (source {self.s.id2label}, target {self.t.id2label})"]
            if self.s.pooling != self.t.pooling:
                return [f"head: pooling {self.s.pooling} into {self.t.pooling} changes the classifier's input"]
        if isinstance(self.target, modeling_rnn.RNNForTimeSeriesForecasting):
            if self.s.prediction_length != self.t.prediction_length or self.s.input_size != self.t.input_size:
                return ["head: forecasting heads differ in prediction_length or channels"]
        return []

    def _way_out(self) -> str:
        return (
            "exclude the offending parts from the transfer (transfer_layers=0 or a list of compatible layers, "
            "transfer_embeddings=False, transfer_head=False), or choose a source with the same cell type, hidden size "
            "and direction"
        )

    @staticmethod
    def _message(problems: list[str], way_out: str) -> str:
        listed = "\n  - ".join(problems)
        return f"Cannot transfer this source into this target:\n  - {listed}\nWay out: {way_out}."

    def _plan_channels(self) -> None:
        s, t = self.s, self.t
        if s.input_size == t.input_size and (
            s.channel_names is None or t.channel_names is None or s.channel_names == t.channel_names
        ):
            self.channel_map = {i: i for i in range(t.input_size)}
            return
        explicit = self.config.channel_map
        if explicit is not None:
            missing = [f"target {n!r}" for n in explicit if n not in (t.channel_names or [])]
            missing += [f"source {n!r}" for n in explicit.values() if n not in (s.channel_names or [])]
            if missing:
                raise ValueError(
                    f"channel_map names channels the models do not have ({', '.join(missing)}): source channels "
                    f"{s.channel_names}, target channels {t.channel_names} (RNNConfig.channel_names)."
                )
        if s.channel_names and t.channel_names:
            index = {name: i for i, name in enumerate(s.channel_names)}
            wanted = {name: (explicit or {}).get(name, name) for name in t.channel_names}
            self.channel_map = {
                i: index[wanted[name]] for i, name in enumerate(t.channel_names) if wanted[name] in index
            }
            matched = [t.channel_names[i] for i in self.channel_map]
            new = [n for n in t.channel_names if wanted[n] not in index]
            self.channel_report = {
                "summary": f"mapped by name: {len(matched)} of {t.input_size} target channels found in the source "
                f"({', '.join(matched) or 'none'}); new: {', '.join(new) or 'none'}.",
                "matched": matched,
                "new": new,
            }
        else:
            self.channel_map = None
            self.channel_report = {
                "summary": f"the source has {s.input_size} channels and the target {t.input_size}, without channel "
                "names to match them: the input projection is re-initialised.",
                "matched": [],
                "new": list(range(t.input_size)),
            }

    # -- per tensor ----------------------------------------------------------------------------------------------
    def embedding(self, name, source_state, vocab_map, new_state, report) -> tuple[str, str]:
        if not self.embeddings:
            return "reinitialised", "embedding transfer disabled (transfer_embeddings=False)"
        if self.t.is_token_input:
            source = source_state[name]
            if vocab_map is None:
                new_state[name] = source.clone()
                return "copied", "same vocabulary"
            new_state[name] = _remap_rows(source, vocab_map, len(vocab_map))
            return "remapped", "rows copied by token string; new tokens get the mean source embedding"
        if self.channel_map is None:
            return "reinitialised", "input channels differ and cannot be matched by name"
        source = source_state[name]
        if name.endswith("bias"):
            new_state[name] = source.clone()
            return "copied", "input projection bias"
        if (
            len(self.channel_map) == self.t.input_size
            and all(k == v for k, v in self.channel_map.items())
            and (self.s.input_size == self.t.input_size)
        ):
            new_state[name] = source.clone()
            return "copied", "same input channels"
        weight = self.fresh[name].clone()
        for target_channel, source_channel in self.channel_map.items():
            weight[:, target_channel] = source[:, source_channel]
        new_state[name] = weight
        return "remapped", "input projection columns copied for channels matched by name; new channels fresh"

    def layer(self, name, source_state, new_state) -> tuple[str, str]:
        index = int(_LAYER.match(name).group(1))
        if index >= self.s.num_layers:
            return "reinitialised", f"the target is deeper than the source ({self.s.num_layers} layers)"
        if index not in self.layers:
            return "reinitialised", "layer not selected for transfer"
        source, fresh = source_state[name], self.fresh[name]
        if source.shape != fresh.shape:  # a decoder's first layer also reads the attentional state (input feeding)
            weight = fresh.clone()
            weight[:, : source.shape[1]] = source
            new_state[name] = weight
            return "remapped", "the language model's input columns copied; the input-feeding columns start fresh"
        new_state[name] = source.clone()
        return "copied", "same cell, size and direction"

    def seq2seq(self, name, source_state, vocab_map, new_state) -> tuple[str, str]:
        """A decoder-side tensor (decoder, attention, bridge, output layer) from a sequence-to-sequence source."""
        bare = name.removeprefix("seq2seq:")
        if name not in source_state:
            return "reinitialised", "not in the source"
        source, fresh = source_state[name], self.fresh[name]
        by_token = bare.startswith(("decoder_embeddings.", "lm_head.")) and vocab_map is not None
        if by_token and self.s.target_vocab_size is None and self.t.target_vocab_size is None:
            new_state[name] = _remap_rows(source, vocab_map, len(vocab_map))
            return "remapped", "rows copied by token string; new tokens get the mean"
        if source.shape != fresh.shape:
            raise ValueError(
                f"Cannot transfer {bare}: source shape {tuple(source.shape)}, target {tuple(fresh.shape)}. The "
                "decoders differ in size, depth, attention or vocabulary: build the target like the source, or move "
                "only the encoder (target_part='encoder')."
            )
        new_state[name] = source.clone()
        return "copied", "same decoder, attention and output layer"

    def head(self, name, source_state, vocab_map, new_state) -> tuple[str, str]:
        if not self.config.transfer_head:
            return "reinitialised", "new head (transfer_head=False)"
        if name not in source_state:
            return "reinitialised", "not in the source head"
        source = source_state[name]
        bare = name.removeprefix("head:")
        adaptive = self.s.adaptive_softmax_cutoffs is not None or self.t.adaptive_softmax_cutoffs is not None
        if vocab_map is not None and bare.startswith("decoder.") and adaptive:
            return "reinitialised", "adaptive softmax: its clusters follow the old vocabulary's frequency order"
        if vocab_map is not None and bare.startswith("decoder."):
            new_state[name] = _remap_rows(source, vocab_map, len(vocab_map))
            return "remapped", "decoder rows copied by token string; new tokens get the mean"
        if source.shape != self.fresh[name].shape:
            raise ValueError(
                f"Cannot transfer head tensor {bare}: source shape {tuple(source.shape)}, target "
                f"{tuple(self.fresh[name].shape)}. Way out: transfer_head=False."
            )
        new_state[name] = source.clone()
        return "copied", "same head, labels and shape"


def load_source(source, revision=None, token=None) -> tuple[RNNPreTrainedModel, str, str | None]:
    """
    The source model, its name for reports (`repo@commit` for a Hub source) and the commit it was read at (`None` for
    a local folder or a model built in memory).
    """
    if isinstance(source, RNNPreTrainedModel):
        name = source.config.name_or_path
        if not name:
            return source, f"<{type(source).__name__}>", None
        pinned = getattr(source, "loaded_commit", None) if is_hub_id(name) else None
        return source, f"{name}@{pinned}" if pinned else name, pinned
    if not isinstance(source, (str, Path)):
        raise TypeError(f"source must be a model, a local directory or a Hub repo id, got {type(source).__name__}.")
    config = AutoConfig.from_pretrained(str(source), revision=revision, token=token)
    if not isinstance(config, RNNConfig):
        raise ValueError(
            f"{source} is a {config.model_type!r} model, not an hf-rnn-transfer ({RNNConfig.model_type}) one."
        )
    architecture = (config.architectures or ["RNNModel"])[0]
    model_class = getattr(modeling_rnn, architecture, RNNModel)
    model = model_class.from_pretrained(str(source), revision=revision, token=token)
    return load_source(model.eval(), None, None)


def _target_part(config: TransferConfig, source, target) -> str:
    """Which part of the target receives the source: `config.target_part`, or by default the whole model between
    two sequence-to-sequence models and the encoder otherwise."""
    part = config.target_part or ("all" if _is_seq2seq(source) and _is_seq2seq(target) else "encoder")
    if part != "encoder" and not _is_seq2seq(target):
        raise ValueError(
            f"target_part={part!r} needs a sequence-to-sequence target (RNNForSeq2SeqLM), not {type(target).__name__}."
        )
    if part == "decoder" and _is_seq2seq(source):
        raise ValueError(
            "target_part='decoder' moves a language model's stack into the decoder; between two sequence-to-sequence "
            "models use target_part='all' (the default)."
        )
    if part == "all" and not _is_seq2seq(source):
        raise ValueError(
            f"target_part='all' needs a sequence-to-sequence source, not {type(source).__name__}: use 'encoder' (an "
            "encoder or classifier source) or 'decoder' (a causal language model source)."
        )
    return part


def _build_target(target, target_class) -> RNNPreTrainedModel:
    if isinstance(target, RNNPreTrainedModel):
        return target
    if isinstance(target, RNNConfig):
        if target_class is None:
            architecture = (target.architectures or [None])[0]
            if architecture is None:
                raise ValueError(
                    "A target config needs `target_class=` (e.g. RNNForSequenceClassification) or "
                    "config.architectures to name the head."
                )
            target_class = getattr(modeling_rnn, architecture)
        return target_class(target)
    raise TypeError(f"target must be a model or an RNNConfig, got {type(target).__name__}.")


def _layers(selection, source_layers: int, target_layers: int) -> list[int]:
    available = range(min(source_layers, target_layers))
    if selection is None:
        return list(available)
    if isinstance(selection, bool) or (isinstance(selection, int) and selection < 0):
        raise ValueError(f"transfer_layers must be None, a count k >= 0 or a list of layer indices, got {selection!r}.")
    if isinstance(selection, int):
        return list(range(min(selection, len(available))))
    layers = sorted(set(selection))
    bad = [i for i in layers if i not in available]
    if bad:
        raise ValueError(
            f"transfer_layers {bad} do not exist in both models (source {source_layers} layers, target "
            f"{target_layers}); valid indices: {list(available)}."
        )
    return layers


def _is_seq2seq(model) -> bool:
    return isinstance(model, modeling_rnn.RNNForSeq2SeqLM)


# A sequence-to-sequence decoder's tensors under the names a causal language model gives the same roles.
_DECODER_AS_LM = (("decoder_embeddings.", "embeddings."), ("decoder_layers.", "layers."), ("lm_head.", "head:decoder."))


def _relative(full: str, model, part: str = "encoder") -> str:
    """A tensor's name relative to the part being transferred: `layers.0...` / `embeddings...` for the encoder (or a
    language model's stack), `head:<name>` for a head; for a sequence-to-sequence model, `seq2seq:<name>` for its
    decoder side when the whole model moves, and `other:<name>` for what the chosen part leaves out."""
    if isinstance(model, RNNModel):
        return full
    if _is_seq2seq(model) and part == "decoder":
        for prefix, as_lm in _DECODER_AS_LM:
            if full.startswith(prefix):
                return as_lm + full[len(prefix) :]
        return f"head:{full}" if full.startswith("projection.") else f"other:{full}"
    if full.startswith("rnn."):
        return full[len("rnn.") :]
    if _is_seq2seq(model):
        return f"seq2seq:{full}" if part == "all" else f"other:{full}"
    return f"head:{full}"


def _full_name(relative: str, model, part: str = "encoder") -> str:
    if isinstance(model, RNNModel):
        return relative
    for marker in ("other:", "seq2seq:"):
        if relative.startswith(marker):
            return relative[len(marker) :]
    if _is_seq2seq(model) and part == "decoder":
        for prefix, as_lm in _DECODER_AS_LM:
            if relative.startswith(as_lm):
                return prefix + relative[len(as_lm) :]
    if relative.startswith("head:"):
        return relative[len("head:") :]
    return f"rnn.{relative}"


def _encoder_relative(state: dict, model, part: str = "encoder") -> dict:
    """A state dict under `_relative` names."""
    return {_relative(k, model, part): v for k, v in state.items()}


def _group(relative: str) -> str:
    if relative.startswith("other:"):
        return "other"
    if relative.startswith("seq2seq:"):
        return "seq2seq"
    if relative.startswith(("embeddings.", "input_projection.")):
        return "embedding"
    if _LAYER.match(relative):
        return "layer"
    return "head"


def _decoder_view(config: RNNConfig) -> RNNConfig:
    """A sequence-to-sequence model's decoder seen as a language model's stack (for the checks of a decoder
    transfer): its vocabulary, embedding, width and depth, unidirectional."""
    return RNNConfig(
        cell_type=config.cell_type,
        vocab_size=config.decoder_vocabulary,
        embedding_size=config.embedding_size,
        hidden_size=config.target_hidden_size or config.hidden_size,
        num_layers=config.target_num_layers or config.num_layers,
        pad_token_id=config.pad_token_id,
    )


def _tied_targets(model) -> dict[str, str]:
    return dict(getattr(model, "all_tied_weights_keys", None) or {}) if model.config.tie_word_embeddings else {}


def _same_vocabulary(a, b) -> bool:
    return a is None or b is None or a.get_vocab() == b.get_vocab()


def _vocabulary_map(source_tokenizer, target_tokenizer) -> list[int | None]:
    """For each target id, the source id of the same token string (or `None`)."""
    source_vocab = source_tokenizer.get_vocab()
    target_vocab = target_tokenizer.get_vocab()
    mapping: list[int | None] = [None] * len(target_vocab)
    for token_string, target_id in target_vocab.items():
        if target_id < len(mapping):
            mapping[target_id] = source_vocab.get(token_string)
    return mapping


def _remap_rows(source: torch.Tensor, mapping: list[int | None], rows: int) -> torch.Tensor:
    mean = source.float().mean(dim=0).to(source.dtype)
    out = mean.expand(rows, *source.shape[1:]).clone()
    known = [(t, s) for t, s in enumerate(mapping) if s is not None and s < source.shape[0]]
    if known:
        target_ids, source_ids = zip(*known)
        out[list(target_ids)] = source[list(source_ids)]
    return out


def _coverage(mapping, target_tokenizer, corpus) -> dict:
    found = sum(s is not None for s in mapping)
    info = {
        "source_vocab_size": None,
        "target_vocab_size": len(mapping),
        "target_tokens_in_source": found,
        "token_coverage": found / len(mapping),
        "occurrence_coverage": None,
    }
    if corpus is not None:
        occurrences = known = 0
        for text in corpus:
            ids = target_tokenizer(text, add_special_tokens=False)["input_ids"]
            occurrences += len(ids)
            known += sum(mapping[i] is not None for i in ids if i < len(mapping))
        info["occurrence_coverage"] = known / occurrences if occurrences else None
        info["corpus_tokens"] = occurrences
    return info


def _carry_normalisation(source: RNNConfig, target_encoder: RNNModel, channel_map) -> str:
    target = target_encoder.config
    if target.input_mean is not None:
        return (
            "the target keeps its own per-channel statistics, so its inputs reach the transferred layers "
            "standardised as the source's were."
        )
    if source.input_mean is None:
        return "neither model normalises its inputs."
    if channel_map is None or len(channel_map) < target.input_size:
        return "the source's statistics do not cover every target channel: the target does not normalise."
    target_encoder.set_normalization(
        [source.input_mean[channel_map[i]] for i in range(target.input_size)],
        [source.input_std[channel_map[i]] for i in range(target.input_size)],
    )
    return "the target had none: it takes the source's per-channel statistics (mapped by channel)."
