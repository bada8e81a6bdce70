"""`TransferConfig`: what a transfer moves from a source model into a target, and how; saved beside the weights.

Like PEFT's adapter configs, it is a plain, documented, validated dataclass that round-trips through JSON
(`transfer_config.json`), so a fine-tuned model keeps its lineage: the source it came from (pinned to a commit when the
source is on a Hub), the layers that moved, and how vocabularies and channels were mapped. `transfer()`,
`from_pretrained(..., transfer=...)` and the command line's transfer flags are all built from it.

Example:

```python
>>> from hf_rnn_transfer import RNNForSequenceClassification, TransferConfig
>>> config = TransferConfig(source="alice/reviews-lm", transfer_layers=2, transfer_head=False)
>>> model = RNNForSequenceClassification.from_pretrained("alice/reviews-lm", transfer=config, num_labels=2)
>>> model.transfer_config.revision  # the commit the source was read at
'3f0c…'
>>> model.save_pretrained("out")  # writes transfer_config.json and transfer_report.json beside the weights
```
"""

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .modeling_rnn import TRANSFER_CONFIG_NAME, TRANSFER_REPORT_NAME


@dataclass
class TransferConfig:
    """
    What is transferred from a source into a target, and how.

    Args:
        source (`str`, *optional*): the source model, a Hub repo id or a local folder. Filled in by `transfer()` from
            the source it was given (a model loaded from a Hub names its repo).
        revision (`str`, *optional*): branch, tag or commit of a Hub source. `transfer()` pins it: after a transfer it
            holds the commit the weights were read at, so the lineage (and L2-SP's reference weights) can be fetched
            again later.
        transfer_embeddings (`bool`, defaults to `True`): move the token embedding (or the input projection of a
            continuous-input model).
        transfer_layers (`int` or `list[int]`, *optional*): `None` for every layer the source has, `k` for the
            first `k`, or a list of layer indices. Target layers beyond these start fresh.
        transfer_head (`bool`, defaults to `False`): also copy the head (only when head class, shapes and labels match).
        remap_vocabulary (`bool`, defaults to `True`): when the target's tokenizer differs from the source's, move
            embedding rows by token string (new tokens start at the mean source embedding). `False` refuses a
            vocabulary mismatch instead.
        channel_map (`dict[str, str]`, *optional*): for continuous input, target channel name -> source channel name.
            Default: channels are matched by their names (`RNNConfig.channel_names`), or by position when both have
            the same number and no names.
        target_part (`str`, *optional*): which part of a sequence-to-sequence target receives the source: `"encoder"`
            (an encoder or classifier source: the default), `"decoder"` (a causal language model: its embedding,
            layers and, with `transfer_head`, output layer), or `"all"` (another sequence-to-sequence model: the
            default between two).
        average_sources (`list[str]`, *optional*): more sources (same encoder shape and vocabulary) whose encoders are
            averaged with `source`'s before the transfer (model soup).
        average_weights (`list[float]`, *optional*): one weight per source in `[source, *average_sources]`
            (normalised); uniform when unset.
    """

    source: str | None = field(default=None, metadata={"help": "Source model: a Hub repo id or a local folder."})
    revision: str | None = field(
        default=None,
        metadata={"help": "Branch, tag or commit of a Hub source (the commit is recorded after transfer)."},
    )
    transfer_embeddings: bool = field(
        default=True, metadata={"help": "Move the embedding (or input projection); --transfer_embeddings false to not."}
    )
    transfer_layers: int | list[int] | None = field(
        default=None,
        metadata={
            "help": "Layers to move: all (default), k (the first k layers), or indices separated by commas (0,2).",
            "cli_type": str,
        },
    )
    transfer_head: bool = field(default=False, metadata={"help": "Also transfer the head (same labels only)."})
    remap_vocabulary: bool = field(
        default=True, metadata={"help": "Move embedding rows by token string when the tokenizers differ."}
    )
    channel_map: dict[str, str] | None = field(
        default=None,
        metadata={
            "help": "Series: target channel -> source channel, as target=source pairs separated by commas "
            "(default: by channel name).",
            "cli_type": str,
        },
    )
    target_part: str | None = field(
        default=None,
        metadata={
            "help": "For a sequence-to-sequence target: encoder (from an encoder or classifier source), decoder (from "
            "a causal language model) or all (from another sequence-to-sequence model; the default between two).",
            "choices": [None, "encoder", "decoder", "all"],
        },
    )
    average_sources: list[str] | None = field(
        default=None, metadata={"help": "More sources whose encoders are averaged with --source's before transfer."}
    )
    average_weights: list[float] | None = field(
        default=None, metadata={"help": "One weight per source (--source first), normalised; default uniform."}
    )

    def __post_init__(self):
        if isinstance(self.transfer_layers, str):
            self.transfer_layers = parse_layers(self.transfer_layers)
        if isinstance(self.channel_map, str):
            self.channel_map = parse_channel_map(self.channel_map)
        layers = self.transfer_layers
        if isinstance(layers, bool) or not (
            layers is None
            or (isinstance(layers, int) and layers >= 0)
            or (isinstance(layers, (list, tuple)) and all(isinstance(i, int) and i >= 0 for i in layers))
        ):
            raise ValueError(
                f"TransferConfig.transfer_layers must be None (all), a count k >= 0 or a list of layer indices, got "
                f"{layers!r}."
            )
        if isinstance(layers, tuple):
            self.transfer_layers = list(layers)
        if self.target_part not in (None, "encoder", "decoder", "all"):
            raise ValueError(
                f"TransferConfig.target_part must be encoder, decoder or all (or None), got {self.target_part!r}."
            )
        for name in ("transfer_embeddings", "transfer_head", "remap_vocabulary"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TransferConfig.{name} must be True or False, got {getattr(self, name)!r}.")
        for name in ("source", "revision"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"TransferConfig.{name} must be a non-empty string (or None), got {value!r}.")
        if self.channel_map is not None and (
            not isinstance(self.channel_map, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in self.channel_map.items())
        ):
            raise ValueError(
                "TransferConfig.channel_map maps target channel names to source channel names, got "
                f"{self.channel_map!r}."
            )
        if self.average_weights is not None:
            if not self.average_sources:
                raise ValueError("TransferConfig.average_weights needs average_sources (the sources to average).")
            weights = [float(w) for w in self.average_weights]
            if len(weights) != len(self.average_sources) + 1 or any(w < 0 for w in weights) or sum(weights) == 0:
                raise ValueError(
                    "TransferConfig.average_weights needs one non-negative weight per source "
                    f"({len(self.average_sources) + 1}: source first, then average_sources), not all zero; got "
                    f"{self.average_weights!r}."
                )
            self.average_weights = weights

    # -- serialisation -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TransferConfig":
        """Build from a dict (e.g. a `transfer_config.json`); unknown keys are refused, naming the closest field."""
        if not isinstance(values, dict):
            raise ValueError(f"A transfer configuration is a JSON object, got {type(values).__name__}.")
        names = [f.name for f in fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            hints = [
                f"{k!r}"
                + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, names, 1)) else "")
                for k in unknown
            ]
            raise ValueError(f"Unknown TransferConfig field(s) {', '.join(hints)}; the fields are {', '.join(names)}.")
        return cls(**values)

    def save_pretrained(self, save_directory: str | Path) -> Path:
        path = Path(save_directory) / TRANSFER_CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "TransferConfig":
        path = Path(folder) / TRANSFER_CONFIG_NAME if Path(folder).is_dir() else Path(folder)
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}).") from err
        return cls.from_dict(values)

    def replace(self, **changes) -> "TransferConfig":
        """A copy with some fields changed (unknown names refused, as in `from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def keywords(cls) -> set[str]:
        """The names that `from_pretrained` and `transfer()` accept as keyword arguments instead of a config."""
        return {f.name for f in fields(cls)} - {"source", "revision"}  # `revision` is from_pretrained's own


def parse_layers(text: str) -> int | list[int] | None:
    """`"all"` -> None, `"2"` -> 2 (the first two layers), `"0,2"` -> [0, 2], `"1,"` -> [1]."""
    value = text.strip().lower()
    if value in ("", "all", "none"):
        return None
    try:
        if "," in value:
            return [int(part) for part in value.split(",") if part.strip()]
        return int(value)
    except ValueError:
        raise ValueError(
            f"transfer_layers takes all, a count k or layer indices separated by commas (0,2), got {text!r}."
        ) from None


def parse_channel_map(text: str) -> dict[str, str] | None:
    """`"ecg=lead_ii,resp=resp"` -> `{"ecg": "lead_ii", "resp": "resp"}`."""
    if not text.strip():
        return None
    pairs = {}
    for part in text.split(","):
        target, sep, source = part.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise ValueError(f"channel_map takes target=source pairs separated by commas, got {text!r}.")
        pairs[target.strip()] = source.strip()
    return pairs


def transfer_arguments_class():
    """The command line's view of `TransferConfig` (one flag per field, same names and help): a dataclass that
    `HfArgumentParser` reads, where fields it cannot type (a count *or* a list) take text parsed by `TransferConfig`."""
    specs = []
    for f in fields(TransferConfig):
        kind = f.metadata.get("cli_type", f.type)
        default = f.default if f.default is not dataclasses.MISSING else None
        specs.append(
            (
                f.name,
                kind | None if default is None else kind,
                field(default=default, metadata={"help": f.metadata["help"]}),
            )
        )
    return dataclasses.make_dataclass("TransferArguments", specs)


TransferArguments = transfer_arguments_class()


def transfer_config_from_arguments(arguments) -> TransferConfig:
    """The `TransferConfig` of parsed `TransferArguments`."""
    return TransferConfig(**{f.name: getattr(arguments, f.name) for f in fields(TransferConfig)})


__all__ = ["TransferConfig", "TransferArguments", "TRANSFER_CONFIG_NAME", "TRANSFER_REPORT_NAME"]
