"""Configuration of the recurrent (LSTM / GRU / vanilla RNN) model family."""

import difflib

from transformers import PretrainedConfig

CELL_TYPES = ("lstm", "gru", "rnn")
POOLING_TYPES = ("last", "mean", "max", "concat")
FORECASTING_LOSSES = ("mse", "mae")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


class RNNConfig(PretrainedConfig):
    r"""
    Configuration of an [`RNNModel`] and its task heads: an embedding (token input) or an input projection
    (continuous input), a stack of recurrent layers, and a head.

    Exactly one of `vocab_size` (token input) and `input_size` (continuous input) must be set.

    Args:
        cell_type (`str`, defaults to `"lstm"`):
            Recurrent cell of every layer: `"lstm"`, `"gru"` or `"rnn"` (Elman, tanh).
        vocab_size (`int`, *optional*):
            Size of the token vocabulary (token input).
        embedding_size (`int`, defaults to 128):
            Width of the token embedding, or of the input projection for continuous input.
        pad_token_id (`int`, *optional*):
            Id of the padding token; its embedding row stays zero.
        input_size (`int`, *optional*):
            Number of channels of continuous input (`input_values` of shape `[batch, time, channels]`).
        input_mean, input_std (`list[float]`, *optional*):
            Per-channel statistics; when set, continuous inputs are normalised as `(x - mean) / std`.
        channel_names (`list[str]`, *optional*):
            Names of the input channels, used to map channels by name when transferring.
        hidden_size (`int`, defaults to 256):
            Hidden size of each recurrent layer (per direction).
        num_layers (`int`, defaults to 2):
            Number of stacked recurrent layers.
        hidden_sizes (`list[int]`, *optional*):
            Per-layer hidden sizes, one per layer, instead of `hidden_size` for all (e.g. `[256, 128]`: a narrower
            last layer, as fastai's AWD-LSTM, makes the top layer and the head cheaper).
        classifier_bptt (`int`, *optional*):
            Read long inputs in chunks of this many positions, carrying the recurrent state from chunk to chunk and
            running only the sequences that still have positions in a chunk (ULMFiT's classifier `bptt`).
            Unidirectional models only; used when no final state is asked for (`use_cache=False`, the
            classification heads' default). Alone it gives the same outputs as the unchunked model.
        classifier_max_len (`int`, *optional*):
            With `classifier_bptt`: gradients flow, and sequence pooling reads, only through the chunks that hold
            the last `classifier_max_len` positions of a sequence (ULMFiT's `max_len`); earlier chunks run without a
            graph. When it covers the whole input, the forward pass equals the unchunked model's.
        bidirectional (`bool`, defaults to `False`):
            Whether every layer runs in both directions. Not allowed for causal language models.
        embedding_dropout (`float`, defaults to 0.0):
            Dropout on the embedding / projected input.
        layer_dropout (`float`, defaults to 0.0):
            Dropout between recurrent layers.
        classifier_dropout (`float`, defaults to 0.0):
            Dropout before the head.
        pooling (`str`, defaults to `"last"`):
            How a sequence head summarises the time axis: `"last"` (final state; both directions when
            bidirectional), `"mean"`, `"max"` or `"concat"` (ULMFiT's `[last, max, mean]`).
        tie_word_embeddings (`bool`, defaults to `False`):
            Tie the causal-LM decoder to the input embedding.
        prediction_length (`int`, defaults to 1):
            Number of future steps predicted by [`RNNForTimeSeriesForecasting`].
        forecasting_loss (`str`, defaults to `"mse"`):
            `"mse"` or `"mae"`, computed on normalised values.
        task_labels (`dict[str, list[str]]`, *optional*):
            For [`RNNForMultiTaskSequenceClassification`]: the label names of each source task, one head per task.
        initializer_range (`float`, defaults to 0.1):
            Standard deviation of the normal initialisation of embeddings and linear layers.

    Example:

    ```python
    >>> from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
    >>> config = RNNConfig(cell_type="gru", vocab_size=5000, hidden_size=128, num_labels=3, pooling="concat")
    >>> model = RNNForSequenceClassification(config)
    ```
    """

    model_type = "rnn_transfer"
    keys_to_ignore_at_inference = ["recurrent_state", "hidden_states"]

    cell_type: str = "lstm"
    vocab_size: int | None = None
    embedding_size: int = 128
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    input_size: int | None = None
    input_mean: list[float] | None = None
    input_std: list[float] | None = None
    channel_names: list[str] | None = None
    hidden_size: int = 256
    num_layers: int = 2
    hidden_sizes: list[int] | None = None
    classifier_bptt: int | None = None
    classifier_max_len: int | None = None
    bidirectional: bool = False
    embedding_dropout: float = 0.0
    layer_dropout: float = 0.0
    classifier_dropout: float = 0.0
    pooling: str = "last"
    tie_word_embeddings: bool = False
    prediction_length: int = 1
    forecasting_loss: str = "mse"
    task_labels: dict[str, list[str]] | None = None
    initializer_range: float = 0.1

    def __post_init__(self, **kwargs):
        self._refuse_misspelled_fields(kwargs)
        super().__post_init__(**kwargs)
        self._check_choice("cell_type", CELL_TYPES)
        self._check_choice("pooling", POOLING_TYPES)
        self._check_choice("forecasting_loss", FORECASTING_LOSSES)
        if self.problem_type is not None:
            self._check_choice("problem_type", PROBLEM_TYPES)
        if (self.vocab_size is None) == (self.input_size is None):
            raise ValueError(
                "RNNConfig needs exactly one of `vocab_size` (token input) and `input_size` (continuous input); "
                f"got vocab_size={self.vocab_size}, input_size={self.input_size}."
            )
        for name in ("vocab_size", "input_size", "embedding_size", "hidden_size", "num_layers", "prediction_length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"RNNConfig.{name} must be a positive integer, got {value!r}.")
        if self.hidden_sizes is not None:
            sizes = self.hidden_sizes
            if (
                not isinstance(sizes, (list, tuple))
                or len(sizes) != self.num_layers
                or any(not isinstance(v, int) or isinstance(v, bool) or v <= 0 for v in sizes)
            ):
                raise ValueError(
                    f"RNNConfig.hidden_sizes must list one positive integer per layer ({self.num_layers}), "
                    f"got {sizes!r}."
                )
            self.hidden_sizes = list(sizes)
        for name in ("classifier_bptt", "classifier_max_len"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"RNNConfig.{name} must be a positive integer (or None), got {value!r}.")
        if self.classifier_max_len is not None and self.classifier_bptt is None:
            raise ValueError("RNNConfig.classifier_max_len needs classifier_bptt (the chunk length) to be set.")
        if self.classifier_bptt is not None and self.bidirectional:
            raise ValueError(
                "RNNConfig.classifier_bptt needs a unidirectional model: a backward direction must read the whole "
                "sequence before its first output. Use bidirectional=False, or leave classifier_bptt unset."
            )
        for name in ("embedding_dropout", "layer_dropout", "classifier_dropout"):
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"RNNConfig.{name} must be in [0, 1), got {value!r}.")
        pad = self.pad_token_id
        if pad is not None and self.vocab_size is not None and not 0 <= pad < self.vocab_size:
            raise ValueError(
                f"RNNConfig.pad_token_id must be in [0, vocab_size={self.vocab_size}), got {self.pad_token_id}."
            )
        for name in ("input_mean", "input_std", "channel_names"):
            value = getattr(self, name)
            if value is None:
                continue
            if self.input_size is None:
                raise ValueError(f"RNNConfig.{name} only applies to continuous input (`input_size`), not to tokens.")
            if len(value) != self.input_size:
                raise ValueError(
                    f"RNNConfig.{name} must have one entry per input channel ({self.input_size}), got {len(value)}."
                )
        if self.input_std is not None and any(float(s) <= 0 for s in self.input_std):
            raise ValueError(f"RNNConfig.input_std must be strictly positive, got {self.input_std}.")
        if (self.input_mean is None) != (self.input_std is None):
            raise ValueError("RNNConfig.input_mean and RNNConfig.input_std must be given together.")
        if self.task_labels is not None:
            if not isinstance(self.task_labels, dict) or not self.task_labels:
                raise ValueError("RNNConfig.task_labels must map each task name to its list of label names.")
            for task, names in self.task_labels.items():
                if not isinstance(names, (list, tuple)) or len(names) < 2:
                    raise ValueError(
                        f"RNNConfig.task_labels[{task!r}] must list at least two label names, got {names!r}."
                    )
        if self.tie_word_embeddings and self.vocab_size is None:
            raise ValueError("RNNConfig.tie_word_embeddings needs token input (`vocab_size`).")

    @classmethod
    def _refuse_misspelled_fields(cls, extra: dict) -> None:
        """A keyword that is no field but nearly one of ours is a typo (`hiden_size`), not a custom attribute: it
        would be silently ignored. Other unknown keywords stay custom attributes, as transformers allows."""
        ours = [
            name
            for klass in cls.__mro__
            if klass is not PretrainedConfig
            for name in vars(klass).get("__annotations__", {})
        ]
        for key in extra:
            if hasattr(PretrainedConfig, key) or key.startswith("_"):
                continue
            close = difflib.get_close_matches(key, ours, n=1, cutoff=0.85)
            if close:
                raise ValueError(f"RNNConfig got an unknown field {key!r}: did you mean {close[0]!r}?")

    def _check_choice(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            raise ValueError(f"RNNConfig.{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")

    @property
    def is_token_input(self) -> bool:
        """Whether the model reads token ids (`vocab_size`) rather than continuous `input_values`."""
        return self.vocab_size is not None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def layer_sizes(self) -> list[int]:
        """Hidden size (per direction) of each recurrent layer, bottom to top."""
        return list(self.hidden_sizes) if self.hidden_sizes else [self.hidden_size] * self.num_layers

    @property
    def output_size(self) -> int:
        """Width of the encoder's per-position output (the top layer's, both directions)."""
        return self.layer_sizes[-1] * self.num_directions


__all__ = ["RNNConfig"]
