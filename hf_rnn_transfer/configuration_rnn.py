"""Configuration of the recurrent (LSTM / GRU / vanilla RNN) model family."""

import difflib
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig
from transformers.utils.type_validators import interval, positive_int_field

CELL_TYPES = ("lstm", "gru", "rnn")
POOLING_TYPES = ("last", "mean", "max", "concat")
FORECASTING_LOSSES = ("mse", "mae")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
DEFAULT_VOCAB_SIZE = 32_000


@strict
class RNNConfig(PretrainedConfig):
    r"""
    Configuration of an [`RNNModel`] and its task heads: an embedding (token input) or an input projection
    (continuous input), a stack of recurrent layers, and a head.

    At most one of `vocab_size` (token input) and `input_size` (continuous input) may be set; with neither, the model
    reads tokens from a vocabulary of 32,000 (so `RNNConfig()` builds, as every transformers config does).
    Invalid values raise `huggingface_hub.errors.StrictDataclassError` naming the field, as transformers' configs do.

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
        adaptive_softmax_cutoffs (`list[int]`, *optional*):
            For [`RNNForCausalLM`]: an adaptive softmax (Grave et al. 2017) instead of the full decoder, e.g.
            `[2000, 10000]`: token ids below the first cutoff (the most frequent, with this project's tokenizers) form
            the head, each further range a cluster of smaller width. Training computes a cluster only for the
            positions whose next token is in it: several times faster for vocabularies of tens of thousands on a
            CPU, where the full softmax dominates. Not with `tie_word_embeddings`.
        adaptive_softmax_div_value (`float`, defaults to 4.0):
            Each cluster's width is the previous one's divided by this.
        prediction_length (`int`, defaults to 1):
            Number of future steps predicted by [`RNNForTimeSeriesForecasting`].
        forecasting_loss (`str`, defaults to `"mse"`):
            `"mse"` or `"mae"`, computed on normalised values.
        task_labels (`dict[str, list[str]]`, *optional*):
            For [`RNNForMultiTaskSequenceClassification`]: the label names of each source task, one head per task.
        target_vocab_size (`int`, *optional*):
            For [`RNNForSeq2SeqLM`]: the target side's vocabulary when it has its own tokenizer (default: `vocab_size`,
            one shared tokenizer, which `pipeline("translation")` needs).
        target_num_layers, target_hidden_size (`int`, *optional*):
            For [`RNNForSeq2SeqLM`]: the decoder's depth and width (default: `num_layers`, `hidden_size`).
        attention (`str`, defaults to `"luong"`):
            For [`RNNForSeq2SeqLM`]: how the decoder scores the source positions, `"luong"` (multiplicative,
            `h_t W h_s`) or `"bahdanau"` (additive, `v tanh(W h_t + U h_s)`).
        input_feeding (`bool`, defaults to `True`):
            For [`RNNForSeq2SeqLM`]: feed the previous step's attentional state into the decoder with the next token
            (Luong et al. 2015); `False` lets the decoder read the whole target at once (faster training).
        decoder_start_token_id (`int`, *optional*):
            For [`RNNForSeq2SeqLM`]: the token the decoder starts from (labels are shifted right behind it; default:
            `bos_token_id`).
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

    cell_type: Literal["lstm", "gru", "rnn"] = "lstm"
    vocab_size: int | None = positive_int_field(default=None)
    embedding_size: int = positive_int_field(default=128)
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    input_size: int | None = positive_int_field(default=None)
    input_mean: list[float | int] | None = None
    input_std: list[float | int] | None = None
    channel_names: list[str] | None = None
    hidden_size: int = positive_int_field(default=256)
    num_layers: int = positive_int_field(default=2)
    hidden_sizes: list[int] | None = None
    classifier_bptt: int | None = positive_int_field(default=None)
    classifier_max_len: int | None = positive_int_field(default=None)
    bidirectional: bool = False
    embedding_dropout: float | int = interval(min=0.0, max=1.0, exclude_max=True)(default=0.0)
    layer_dropout: float | int = interval(min=0.0, max=1.0, exclude_max=True)(default=0.0)
    classifier_dropout: float | int = interval(min=0.0, max=1.0, exclude_max=True)(default=0.0)
    pooling: Literal["last", "mean", "max", "concat"] = "last"
    tie_word_embeddings: bool = False
    adaptive_softmax_cutoffs: list[int] | None = None
    adaptive_softmax_div_value: float | int = interval(min=1.0)(default=4.0)
    prediction_length: int = positive_int_field(default=1)
    forecasting_loss: Literal["mse", "mae"] = "mse"
    task_labels: dict[str, list[str]] | None = None
    initializer_range: float | int = interval(min=0.0, exclude_min=True)(default=0.1)
    # sequence to sequence: named target_*, not decoder_*: transformers reads decoder_* keys of a flat encoder-decoder
    # config as the decoder's own config (`get_text_config(decoder=True)`), which would overwrite the encoder's sizes
    target_vocab_size: int | None = positive_int_field(default=None)
    target_num_layers: int | None = positive_int_field(default=None)
    target_hidden_size: int | None = positive_int_field(default=None)
    attention: Literal["luong", "bahdanau"] = "luong"
    input_feeding: bool = True
    decoder_start_token_id: int | None = None

    def __post_init__(self, **kwargs):
        self._refuse_misspelled_fields(kwargs)
        if self.vocab_size is None and self.input_size is None:
            self.vocab_size = DEFAULT_VOCAB_SIZE  # `RNNConfig()` builds, as every transformers config does
        super().__post_init__(**kwargs)
        if self.hidden_sizes is not None:
            self.hidden_sizes = list(self.hidden_sizes)
        if self.adaptive_softmax_cutoffs is not None:
            self.adaptive_softmax_cutoffs = list(self.adaptive_softmax_cutoffs)

    def validate_architecture(self):
        """Part of `@strict` validation (at construction and before every save): the fields that depend on each
        other. Single fields are checked by their types and validators above."""
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(
                f"problem_type must be one of {', '.join(map(repr, PROBLEM_TYPES))}; got {self.problem_type!r}."
            )
        if (self.vocab_size is None) == (self.input_size is None):
            raise ValueError(
                "RNNConfig needs exactly one of `vocab_size` (token input) and `input_size` (continuous input); "
                f"got vocab_size={self.vocab_size}, input_size={self.input_size}."
            )
        if self.hidden_sizes is not None:
            sizes = self.hidden_sizes
            if len(sizes) != self.num_layers or any(isinstance(v, bool) or v <= 0 for v in sizes):
                raise ValueError(
                    f"hidden_sizes must list one positive integer per layer ({self.num_layers}), got {sizes!r}."
                )
        if self.classifier_max_len is not None and self.classifier_bptt is None:
            raise ValueError("classifier_max_len needs classifier_bptt (the chunk length) to be set.")
        if self.classifier_bptt is not None and self.bidirectional:
            raise ValueError(
                "classifier_bptt needs a unidirectional model: a backward direction must read the whole "
                "sequence before its first output. Use bidirectional=False, or leave classifier_bptt unset."
            )
        pad = self.pad_token_id
        if pad is not None and self.vocab_size is not None and not 0 <= pad < self.vocab_size:
            raise ValueError(f"pad_token_id must be in [0, vocab_size={self.vocab_size}), got {self.pad_token_id}.")
        for name in ("input_mean", "input_std", "channel_names"):
            value = getattr(self, name)
            if value is None:
                continue
            if self.input_size is None:
                raise ValueError(f"{name} only applies to continuous input (`input_size`), not to tokens.")
            if len(value) != self.input_size:
                raise ValueError(f"{name} must have one entry per input channel ({self.input_size}), got {len(value)}.")
        if self.input_std is not None and any(float(s) <= 0 for s in self.input_std):
            raise ValueError(f"input_std must be strictly positive, got {self.input_std}.")
        if (self.input_mean is None) != (self.input_std is None):
            raise ValueError("input_mean and input_std must be given together.")
        if self.task_labels is not None:
            if not self.task_labels:
                raise ValueError("task_labels must map each task name to its list of label names.")
            for task, names in self.task_labels.items():
                if len(names) < 2:
                    raise ValueError(f"task_labels[{task!r}] must list at least two label names, got {names!r}.")
        if self.tie_word_embeddings and self.vocab_size is None:
            raise ValueError("tie_word_embeddings needs token input (`vocab_size`).")
        cutoffs = self.adaptive_softmax_cutoffs
        if cutoffs is not None:
            if self.vocab_size is None:
                raise ValueError("adaptive_softmax_cutoffs needs token input (`vocab_size`).")
            if (
                not cutoffs
                or any(isinstance(c, bool) or not isinstance(c, int) for c in cutoffs)
                or any(b <= a for a, b in zip(cutoffs, cutoffs[1:]))
                or not 0 < cutoffs[0]
                or not cutoffs[-1] < self.vocab_size
            ):
                raise ValueError(
                    "adaptive_softmax_cutoffs must be increasing token counts between 1 and vocab_size - 1 "
                    f"({self.vocab_size - 1}), e.g. [2000, 10000]; got {cutoffs!r}."
                )
            width = int(self.output_size // (float(self.adaptive_softmax_div_value) ** len(cutoffs)))
            if width < 1:
                raise ValueError(
                    f"adaptive_softmax_cutoffs: {len(cutoffs)} clusters, each {self.adaptive_softmax_div_value}x "
                    f"narrower than the one before, leave the last 0 of the {self.output_size}-wide output: use "
                    "fewer cutoffs or a smaller adaptive_softmax_div_value."
                )
            if self.tie_word_embeddings:
                raise ValueError(
                    "adaptive_softmax_cutoffs and tie_word_embeddings exclude each other: an adaptive softmax has no "
                    "single decoder matrix to tie to the embedding. Set tie_word_embeddings=False, or drop the cutoffs."
                )
        start = self.decoder_start_token_id
        if start is not None and not 0 <= start < (self.decoder_vocabulary or 0):
            raise ValueError(f"decoder_start_token_id must be a token id of the decoder's vocabulary, got {start}.")

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
    def decoder_vocabulary(self) -> int | None:
        """The decoder's vocabulary (sequence to sequence): `target_vocab_size`, else the shared `vocab_size`."""
        return self.target_vocab_size or self.vocab_size

    @property
    def output_size(self) -> int:
        """Width of the encoder's per-position output (the top layer's, both directions)."""
        return self.layer_sizes[-1] * self.num_directions


__all__ = ["RNNConfig"]
