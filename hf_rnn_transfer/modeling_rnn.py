"""PyTorch recurrent (LSTM / GRU / vanilla RNN) encoders and task heads on the transformers API.

This file is copied next to every saved checkpoint (`register_for_auto_class`) so that a checkpoint loads with
`trust_remote_code=True` where `hf_rnn_transfer` is not installed: it imports only torch, transformers and
`configuration_rnn`.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.loss.loss_utils import fixed_cross_entropy
from transformers.modeling_outputs import (
    BaseModelOutput,
    CausalLMOutput,
    Seq2SeqLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import ModelOutput

try:
    from transformers.utils.hub import resolve_revision
except ImportError:  # older transformers (5.17 has none): `_hub_commit` below pins the load instead
    resolve_revision = None

from .configuration_rnn import RNNConfig

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
# Beyond `TransferConfig`'s fields: the arguments of a transfer that are not part of its saved configuration.
TRANSFER_CALL_ARGUMENTS = ("transfer", "source_tokenizer", "target_tokenizer", "corpus")
TRANSFER_CONFIG_NAME = "transfer_config.json"
TRANSFER_REPORT_NAME = "transfer_report.json"

# A recurrent state: one entry per layer, each a tuple of `[num_directions, batch, hidden_size]` tensors,
# `(h, c)` for an LSTM and `(h,)` for a GRU or vanilla RNN.
RecurrentState = tuple[tuple[torch.Tensor, ...], ...]


def _hub_commit(repo_id: str, kwargs: dict) -> str | None:
    """The commit that `kwargs["revision"]` of Hub repo `repo_id` points to now, read from the Hub, or None where it
    cannot be read (offline, unknown repo, no network: the regular load then gives its own error or uses the cache).
    For transformers without `resolve_revision`: loading at that commit reads every file from one repository state."""
    from huggingface_hub import HfApi, constants

    if kwargs.get("local_files_only") or constants.HF_HUB_OFFLINE:
        return None
    try:
        info = HfApi().model_info(repo_id, revision=kwargs.get("revision"), token=kwargs.get("token"))
    except Exception:  # best effort, as resolve_revision: the load that follows reports what is wrong
        return None
    return info.sha


def run_recurrent_layer(layer: nn.RNNBase, hidden, state=None):
    """
    `layer(hidden, state)`, except under CUDA autocast to bf16, where the layer runs in bf16 with autocast off.

    PyTorch's autocast rule for cuDNN RNNs casts them to fp16 whatever the autocast dtype, so a "bf16" training would
    run its recurrent kernels in fp16 without the loss scaler that fp16 needs (its gradients can underflow to zero).
    Here the inputs, the state and bf16 copies of the weights (the fp32 master weights stay; gradients flow back
    through the cast) go to the layer as they are.

    Args:
        layer: an `nn.LSTM`, `nn.GRU` or `nn.RNN`.
        hidden: its input, a `[batch, time, features]` tensor or a `PackedSequence`.
        state: its initial state (`(h, c)` for an LSTM, `h` otherwise) or None.
    """
    packed = isinstance(hidden, PackedSequence)
    data = hidden.data if packed else hidden
    if (
        data.device.type != "cuda"
        or not torch.is_autocast_enabled("cuda")
        or torch.get_autocast_dtype("cuda") != torch.bfloat16
    ):
        return layer(hidden, state)
    bf16 = torch.bfloat16
    hidden = hidden._replace(data=data.to(bf16)) if packed else data.to(bf16)
    if state is not None:
        state = tuple(s.to(bf16) for s in state) if isinstance(state, tuple) else state.to(bf16)
    # nn.RNNBase.forward reads its weights from `_flat_weights`: bf16 copies there for this call, the parameters
    # themselves untouched (functional_call would leave the copies behind in that list)
    weights = layer._flat_weights
    layer._flat_weights = [None if w is None else w.to(bf16) for w in weights]
    try:
        with torch.autocast("cuda", enabled=False), warnings.catch_warnings():
            # the copies are separate tensors: cuDNN flattens them on each call, as autocast's own fp16 cast does
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")
            return layer(hidden, state)
    finally:
        layer._flat_weights = weights


class RecurrentStateCache:
    """
    The recurrent state as `generate()` carries it between steps (transformers' `cache` slot).

    A recurrent model's whole past is its state, so the cache is one `RecurrentState`. Beam search reorders it with
    the beams (`reorder_cache`), as it reorders a transformer's key/value cache: without that, a beam would continue
    from another beam's state.
    """

    is_compileable = False

    def __init__(self, state: RecurrentState, feed: torch.Tensor | None = None, keys: torch.Tensor | None = None):
        self.state = state
        self.feed = feed  # a sequence-to-sequence decoder's last attentional state `[batch, hidden]` (input feeding)
        self.keys = keys  # and its attention keys over the source, `[batch, source, hidden]`, computed once

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep, for every row, the state of the beam it continues (`beam_idx[row]`)."""
        self.state = tuple(tuple(t.index_select(1, beam_idx.to(t.device)) for t in layer) for layer in self.state)
        if self.feed is not None:
            self.feed = self.feed.index_select(0, beam_idx.to(self.feed.device))
        if self.keys is not None:
            self.keys = self.keys.index_select(0, beam_idx.to(self.keys.device))


@dataclass
class RNNModelOutput(BaseModelOutput):
    """
    Output of [`RNNModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `[batch, time, hidden_size * num_directions]`):
            Output of the last recurrent layer; zero at padded positions.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            The embedding (or projected input) followed by the output of every layer, when
            `output_hidden_states=True`.
        recurrent_state (`tuple`):
            Final state of every layer (see `RecurrentState`); pass it back as `recurrent_state` to continue a
            stream (truncated BPTT, generation).
        pooling_mask (`torch.BoolTensor` of shape `[batch, time]`, *optional*):
            With `config.classifier_max_len`: the positions a sequence head pools over (the last
            `classifier_max_len` real positions of each sequence); `None` means the attention mask.
    """

    recurrent_state: RecurrentState | None = None
    pooling_mask: torch.Tensor | None = None


@dataclass
class RNNSequenceClassifierOutput(SequenceClassifierOutput):
    """[`SequenceClassifierOutput`] plus the final `recurrent_state`."""

    recurrent_state: RecurrentState | None = None


@dataclass
class RNNTokenClassifierOutput(TokenClassifierOutput):
    """[`TokenClassifierOutput`] plus the final `recurrent_state`."""

    recurrent_state: RecurrentState | None = None


@dataclass
class RNNCausalLMOutput(CausalLMOutput):
    """[`CausalLMOutput`] plus the final `recurrent_state`, to continue the stream where it stopped."""

    recurrent_state: RecurrentState | None = None


@dataclass
class RNNSeq2SeqLMOutput(Seq2SeqLMOutput):
    """
    [`Seq2SeqLMOutput`] of [`RNNForSeq2SeqLM`] plus the decoder's final `recurrent_state` and attentional state
    `decoder_feed` (input feeding), to continue decoding where it stopped. `cross_attentions` holds the attention
    weights over the source positions, `[batch, target, source]`, when `output_attentions=True`.
    """

    recurrent_state: RecurrentState | None = None
    decoder_feed: torch.FloatTensor | None = None
    attention_keys: torch.FloatTensor | None = None


@dataclass
class RNNForecastOutput(ModelOutput):
    """
    Output of [`RNNForTimeSeriesForecasting`].

    Args:
        loss (`torch.FloatTensor`, *optional*): MSE or MAE on normalised values, when `labels` are given.
        predictions (`torch.FloatTensor` of shape `[batch, prediction_length, channels]`): forecasts in the
            original (un-normalised) scale.
        hidden_states, recurrent_state: as in [`RNNModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    predictions: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    recurrent_state: RecurrentState | None = None


WEIGHTS_CHECKSUMS = "safetensors_sha256"
_WEIGHT_FILE = re.compile(r"^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(folder: Path) -> None:
    """Check the weight files of a saved folder against the sha256 its `config.json` records (when it does)."""
    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return
    try:
        sums = json.loads(config_path.read_text()).get(WEIGHTS_CHECKSUMS) or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return  # transformers reports a broken config.json itself
    for name, expected in sums.items():
        path = Path(folder) / name
        if not path.is_file():
            raise OSError(
                f"{folder}: config.json lists {name}, which is missing. Was the save interrupted? Save again."
            )
        if _sha256(path) != expected:
            raise OSError(
                f"{path} does not match the checksum in {config_path}: the file is corrupted, or a save was "
                "interrupted and the weights and config are from different saves. Save the model again (or restore "
                "a backup)."
            )


def _asks_for_transfer(kwargs: dict) -> bool:
    try:
        from hf_rnn_transfer.transfer_config import TransferConfig

        options = TransferConfig.keywords()
    except ImportError:  # remote code without the package: any transfer_* keyword still means a transfer
        options = set()
    return any(k in kwargs for k in (*TRANSFER_CALL_ARGUMENTS, *options)) or any(
        k.startswith("transfer_") for k in kwargs
    )


def _pipeline_code_files(config) -> list[Path]:
    """The files of the pipelines `config.custom_pipelines` names (`module.Class`), with the files they import
    relatively: shipped beside the checkpoint so `pipeline(task, model=..., trust_remote_code=True)` finds them."""
    from transformers.dynamic_module_utils import get_relative_import_files

    files = set()
    for task in (getattr(config, "custom_pipelines", None) or {}).values():
        module = Path(__file__).with_name(f"{task['impl'].rsplit('.', 1)[0]}.py")
        if module.is_file():  # remote code re-saving: the pipeline files may not have been downloaded with it
            files |= {module, *map(Path, get_relative_import_files(module))}
    return sorted(files)


def _transfer_files(model) -> dict[str, dict]:
    """`transfer_config.json` and `transfer_report.json` for a model built by a transfer (nothing otherwise)."""
    files = {}
    for name, attribute in ((TRANSFER_CONFIG_NAME, "transfer_config"), (TRANSFER_REPORT_NAME, "transfer_report")):
        value = getattr(model, attribute, None)
        if value is not None:
            files[name] = value.to_dict() if hasattr(value, "to_dict") else dict(value)
    return files


def _restore_transfer(model, name_or_path: str, kwargs: dict) -> None:
    """Attach the saved transfer configuration and report (objects with the package, plain dicts without)."""
    from transformers.utils import cached_file

    found = {}
    for name in (TRANSFER_CONFIG_NAME, TRANSFER_REPORT_NAME):
        try:
            path = cached_file(
                name_or_path,
                name,
                subfolder=kwargs.get("subfolder") or "",
                revision=kwargs.get("revision"),
                token=kwargs.get("token"),
                cache_dir=kwargs.get("cache_dir"),
                local_files_only=kwargs.get("local_files_only", False),
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
        except OSError:
            path = None
        if path is not None:
            try:
                found[name] = json.loads(Path(path).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise OSError(f"{name_or_path}: {name} is not valid JSON ({err}); save the model again.") from err
    try:
        from hf_rnn_transfer.transfer import TransferReport
        from hf_rnn_transfer.transfer_config import TransferConfig
    except ImportError:
        TransferConfig = TransferReport = None  # noqa: N806 (remote code: keep the dicts)
    if TRANSFER_CONFIG_NAME in found:
        value = found[TRANSFER_CONFIG_NAME]
        model.transfer_config = TransferConfig.from_dict(value) if TransferConfig else value
    if TRANSFER_REPORT_NAME in found:
        value = found[TRANSFER_REPORT_NAME]
        model.transfer_report = TransferReport.from_dict(value) if TransferReport else value


class RNNPreTrainedModel(PreTrainedModel):
    """Weight initialisation, auto-class map and input checks shared by the encoder and every head."""

    config_class = RNNConfig
    base_model_prefix = "rnn"
    supports_gradient_checkpointing = False
    _no_split_modules = ["RNNModel"]

    def __init__(self, config: RNNConfig, *inputs, **kwargs):
        super().__init__(config, *inputs, **kwargs)
        self.main_input_name = "input_ids" if config.is_token_input else "input_values"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """
        Load a checkpoint like any transformers model; a model that was built by a transfer gets back its
        `transfer_config` and `transfer_report` (from `transfer_config.json` / `transfer_report.json`).

        With `transfer=TransferConfig(...)` (or its fields as keywords: `transfer_layers`, `transfer_head`, ...; and
        `source_tokenizer`, `target_tokenizer`, `corpus`), build this head from the checkpoint as a *source*
        instead: `hf_rnn_transfer.transfer` moves what fits and the model carries a `transfer_report`.
        """
        if not _asks_for_transfer(kwargs):
            folder = Path(str(pretrained_model_name_or_path)) / (kwargs.get("subfolder") or "")
            commit = None
            if folder.is_dir():
                verify_checksums(folder)  # before loading: an interrupted save must not load as a mixed model
            elif not os.path.exists(str(pretrained_model_name_or_path)):
                # one commit for every file of this load, and recorded: a transfer from this model pins it
                if resolve_revision is None:
                    commit = _hub_commit(str(pretrained_model_name_or_path), kwargs)
                    kwargs["revision"] = commit or kwargs.get("revision")
                else:
                    kwargs["revision"] = resolve_revision(
                        str(pretrained_model_name_or_path),
                        kwargs.get("revision"),
                        token=kwargs.get("token"),
                        local_files_only=kwargs.get("local_files_only", False),
                        cache_dir=kwargs.get("cache_dir"),
                    )
                    commit = getattr(kwargs["revision"], "resolved", None)
            loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
            model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True
            if hasattr(model.config, WEIGHTS_CHECKSUMS):  # they describe those files, not the model in memory
                delattr(model.config, WEIGHTS_CHECKSUMS)
            model.loaded_commit = commit
            _restore_transfer(model, str(pretrained_model_name_or_path), kwargs)
            return loaded
        try:
            from hf_rnn_transfer.transfer import transfer_from_pretrained
        except ImportError as err:
            raise ImportError(
                "Transfer options of from_pretrained need the hf-rnn-transfer package (install it from its source "
                "tree: pip install . in a clone)."
            ) from err
        return transfer_from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """
        `PreTrainedModel.save_pretrained`, made atomic and checksummed: everything is written to a temporary folder
        beside `save_directory`, the sha256 of each weight file goes into `config.json`, and the files are moved in
        with `config.json` last. An interrupted save leaves either the old checkpoint or a config whose checksums do
        not match the weights beside it, which `from_pretrained` refuses; flipped bytes are refused the same way.
        """
        target = Path(save_directory)
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"save_pretrained: {target} is a file, not a folder; nothing was written.")
        if kwargs.get("push_to_hub"):  # transformers' own push path (uploads from the folder it writes)
            return super().save_pretrained(save_directory, *args, **kwargs)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
        try:
            super().save_pretrained(staging, *args, **kwargs)
            for name, value in _transfer_files(self).items():
                (staging / name).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
            for path in _pipeline_code_files(self.config):
                shutil.copyfile(path, staging / path.name)
            sums = {p.name: _sha256(p) for p in sorted(staging.glob("*.safetensors"))}
            config_path = staging / "config.json"
            if sums and config_path.exists():
                config = json.loads(config_path.read_text())
                config[WEIGHTS_CHECKSUMS] = sums
                config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            target.mkdir(exist_ok=True)
            written = {p.name for p in staging.iterdir()}
            for stale in target.iterdir():  # files of an earlier save would be read with the new ones
                stale_transfer = stale.name in (TRANSFER_CONFIG_NAME, TRANSFER_REPORT_NAME)
                if (_WEIGHT_FILE.match(stale.name) or stale_transfer) and stale.name not in written:
                    stale.unlink()
            for path in sorted(staging.iterdir(), key=lambda p: p.name == "config.json"):
                os.replace(path, target / path.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def post_init(self):
        super().post_init()
        # Saved checkpoints name every head, so any of them loads through any Auto class with remote code
        # (e.g. a language-model checkpoint into AutoModelForSequenceClassification).
        if type(self)._auto_class is not None:
            self.config.auto_map = {**AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}

    def _encode(
        self,
        input_ids=None,
        input_values=None,
        attention_mask=None,
        inputs_embeds=None,
        recurrent_state=None,
        use_cache=None,
        output_hidden_states=None,
    ) -> "RNNModelOutput":
        """The encoder's output for a head; the final state is returned when asked, or when a state was passed in."""
        use_cache = (recurrent_state is not None) if use_cache is None else use_cache
        return self.rnn(
            input_ids=input_ids,
            input_values=input_values,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            recurrent_state=recurrent_state,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )

    def _head_output(self, output_class, return_dict, loss, prediction, encoded, name: str = "logits"):
        """The head's `ModelOutput`, or the tuple of its set fields when `return_dict=False`."""
        fields = {
            "loss": loss,
            name: prediction,
            "hidden_states": encoded.hidden_states,
            "recurrent_state": encoded.recurrent_state,
        }
        if not (self.config.return_dict if return_dict is None else return_dict):
            return tuple(v for v in fields.values() if v is not None)
        return output_class(**fields)

    def get_classifier(self) -> nn.Module:
        """The head's output layer (timm's uniform API): `nn.Identity()` for the bare encoder."""
        return nn.Identity()

    def reset_classifier(self, num_labels: int | None = None, **kwargs) -> None:
        """A freshly initialised output layer (timm's uniform API); each head documents what it may resize."""
        raise ValueError(f"{type(self).__name__} has no head to reset; build a head class from it instead.")

    def _fresh(self, module: nn.Module) -> nn.Module:
        """`module` initialised as this model initialises its weights, on the model's device and dtype."""
        module.apply(self._init_weights)
        return module.to(device=self.device, dtype=self.dtype)

    def _reset_label_head(self, in_features: int, num_labels: int | None, id2label: dict | None) -> nn.Linear:
        if id2label is not None:
            id2label = {int(k): str(v) for k, v in id2label.items()}
            if num_labels is not None and num_labels != len(id2label):
                raise ValueError(f"reset_classifier: num_labels={num_labels} but id2label has {len(id2label)} labels.")
            num_labels = len(id2label)
        num_labels = self.config.num_labels if num_labels is None else num_labels
        if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 1:
            raise ValueError(f"reset_classifier needs num_labels >= 1, got {num_labels!r}.")
        self.config.num_labels = num_labels
        if id2label is not None:
            self.config.id2label, self.config.label2id = id2label, {v: k for k, v in id2label.items()}
        self.num_labels = num_labels
        return self._fresh(nn.Linear(in_features, num_labels))

    def get_layer_groups(self) -> dict[str, list[str]]:
        """
        Parameter names by layer group, bottom to top: the embedding (or input projection), each recurrent layer, and
        the head. Freezing schedules and discriminative learning rates address these groups (like timm's
        `group_matcher`). A decoder tied to the embedding belongs to the embedding group.
        """
        encoder_prefix = "" if isinstance(self, RNNModel) else f"{self.base_model_prefix}."
        input_group = "embedding" if self.config.is_token_input else "input_projection"
        groups: dict[str, list[str]] = {input_group: []}
        groups.update({f"layer_{i}": [] for i in range(self.config.num_layers)})
        groups["head"] = []
        for name, _ in self.named_parameters():
            relative = name[len(encoder_prefix) :] if name.startswith(encoder_prefix) else None
            if relative is not None and relative.startswith(("embeddings.", "input_projection.")):
                groups[input_group].append(name)
            elif relative is not None and relative.startswith("layers."):
                groups[f"layer_{relative.split('.')[1]}"].append(name)
            else:
                groups["head"].append(name)
        if isinstance(self, RNNModel):
            del groups["head"]
        return groups

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.RNNBase):
            # PyTorch's own default, U(-1/sqrt(h), 1/sqrt(h)), made reproducible under the transformers init guard.
            bound = module.hidden_size**-0.5
            for param in module.parameters(recurse=False):
                init.uniform_(param, -bound, bound)
        elif isinstance(module, RNNModel) and module.input_mean is not None:
            init.copy_(module.input_mean, torch.tensor(self.config.input_mean, dtype=module.input_mean.dtype))
            init.copy_(module.input_std, torch.tensor(self.config.input_std, dtype=module.input_std.dtype))


class RNNModel(RNNPreTrainedModel):
    """
    The recurrent encoder: token embedding or input projection, then one recurrent module per layer.

    Variable-length batches (an `attention_mask` with zeros) run through packed sequences, so a sequence's outputs do
    not depend on the padding around it. Right padding is the convention; other layouts (left padding) are compacted
    to the left before the recurrence and restored afterwards.

    Example:

    ```python
    >>> import torch
    >>> from hf_rnn_transfer import RNNConfig, RNNModel
    >>> model = RNNModel(RNNConfig(vocab_size=100, hidden_size=32, num_layers=2))
    >>> out = model(input_ids=torch.tensor([[5, 6, 7]]))
    >>> out.last_hidden_state.shape
    torch.Size([1, 3, 32])
    ```
    """

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        if config.is_token_input:
            self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        else:
            self.input_projection = nn.Linear(config.input_size, config.embedding_size)
            if config.input_mean is not None:
                self.register_buffer("input_mean", torch.tensor(config.input_mean, dtype=torch.float), persistent=False)
                self.register_buffer("input_std", torch.tensor(config.input_std, dtype=torch.float), persistent=False)
        if getattr(self, "input_mean", None) is None:
            self.input_mean = self.input_std = None
        cell = _CELLS[config.cell_type]
        sizes = config.layer_sizes
        self.layers = nn.ModuleList(
            cell(
                config.embedding_size if i == 0 else sizes[i - 1] * config.num_directions,
                sizes[i],
                batch_first=True,
                bidirectional=config.bidirectional,
            )
            for i in range(config.num_layers)
        )
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        # one module per gap between layers, so that each belongs to the layer group whose output it drops
        self.layer_dropouts = nn.ModuleList(nn.Dropout(config.layer_dropout) for _ in range(config.num_layers - 1))
        self.post_init()

    def get_input_embeddings(self) -> nn.Module | None:
        return self.embeddings if self.config.is_token_input else None

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def set_normalization(self, mean: list[float] | None, std: list[float] | None) -> None:
        """Set (or clear, with `None`) the per-channel statistics, in the config and in the model's buffers."""
        if self.config.is_token_input:
            raise ValueError("Normalisation statistics apply to continuous input only.")
        self.config.input_mean, self.config.input_std = mean, std
        for name, values in (("input_mean", mean), ("input_std", std)):
            if name in self._buffers:
                del self._buffers[name]
            elif hasattr(self, name):
                delattr(self, name)
            if values is None:
                setattr(self, name, None)
            else:
                device = self.input_projection.weight.device
                self.register_buffer(name, torch.tensor(values, dtype=torch.float, device=device), persistent=False)

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """Apply the per-channel normalisation of the config (identity when none is set)."""
        if self.input_mean is None:
            return values
        return (values - self.input_mean) / self.input_std

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        """Undo [`normalize`]."""
        if self.input_mean is None:
            return values
        return values * self.input_std + self.input_mean

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        recurrent_state: RecurrentState | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> RNNModelOutput | tuple:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `[batch, time]`): token ids (token input).
            input_values (`torch.FloatTensor` of shape `[batch, time, channels]`): continuous input.
            attention_mask (`torch.Tensor` of shape `[batch, time]`): 1 for real positions, 0 for padding.
            inputs_embeds (`torch.FloatTensor` of shape `[batch, time, embedding_size]`): instead of `input_ids`.
            recurrent_state: the state returned by a previous call, to continue a stream.
            use_cache (`bool`, defaults to `True`): return the final `recurrent_state`. Without it, a padded batch
                of a unidirectional model runs on the padded tensor (real positions cannot see the padding after
                them), which is much faster than packed sequences on CPUs.
            output_hidden_states (`bool`): also return the output of every layer.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        use_cache = True if use_cache is None else use_cache
        hidden = self._embed(input_ids, input_values, inputs_embeds)
        batch_size, seq_len = hidden.shape[:2]
        lengths, order = self._check_attention_mask(attention_mask, batch_size, seq_len, hidden.device)
        if order is not None:  # not right-padded: compact real positions to the left, restore at the end
            hidden = hidden.gather(1, order[..., None].expand_as(hidden))
        self._check_recurrent_state(recurrent_state, batch_size)
        # Padding must not reach real positions: a backward direction reads it first, so bidirectional layers pack;
        # so does an LSTM whose final cell state is wanted (nn.LSTM only outputs h). Otherwise the padded tensor is
        # exact at real positions, and final hidden states are gathered at each sequence's last position.
        pack = lengths is not None and (self.config.bidirectional or (use_cache and self.config.cell_type == "lstm"))
        last = None if lengths is None else (lengths - 1)
        chunked = self.config.classifier_bptt is not None and not use_cache and recurrent_state is None

        hidden = self.embedding_dropout(hidden)
        all_hidden = [hidden] if output_hidden_states else None
        final_states = []
        if chunked:  # never packs and keeps no state: the config refuses bidirectional, and use_cache is off
            hidden, layer_outputs = self._chunked_layers(hidden, lengths, output_hidden_states)
            if all_hidden is not None:
                all_hidden += layer_outputs
        else:
            if pack:
                hidden = pack_padded_sequence(hidden, lengths.cpu(), batch_first=True, enforce_sorted=False)
            for i, layer in enumerate(self.layers):
                state = None if recurrent_state is None else recurrent_state[i]
                if state is not None and self.config.cell_type != "lstm":
                    state = state[0]
                hidden, new_state = run_recurrent_layer(layer, hidden, state)
                if use_cache:
                    if lengths is not None and not pack:  # the state after the padding: h at the last real step
                        new_state = hidden[torch.arange(batch_size, device=hidden.device), last][None]
                    final_states.append(new_state if isinstance(new_state, tuple) else (new_state,))
                if i < len(self.layers) - 1:
                    hidden = self._dropout(self.layer_dropouts[i], hidden)
                if output_hidden_states:
                    all_hidden.append(self._unpack(hidden, seq_len))
        hidden = self._unpack(hidden, seq_len)
        if lengths is not None and not pack:  # padded positions read zero, as with packed sequences
            keep = (torch.arange(seq_len, device=hidden.device)[None] < lengths[:, None])[..., None]
            hidden = hidden.masked_fill(~keep, 0.0)  # not a product: NaN * 0 is NaN
            if all_hidden is not None:
                all_hidden = [all_hidden[0]] + [h.masked_fill(~keep, 0.0) for h in all_hidden[1:]]

        if order is not None:
            restore = order.argsort(dim=1)
            hidden = hidden.gather(1, restore[..., None].expand_as(hidden))
            if all_hidden is not None:
                all_hidden = [h.gather(1, restore[..., None].expand_as(h)) for h in all_hidden]
        all_hidden = tuple(all_hidden) if all_hidden is not None else None
        final_states = tuple(final_states) if use_cache else None
        pooling_mask = None
        if chunked and self.config.classifier_max_len is not None:
            real = torch.ones(batch_size, seq_len, dtype=torch.bool, device=hidden.device)
            if attention_mask is not None:
                real = attention_mask.to(device=hidden.device, dtype=torch.bool)
            from_end = real.flip(1).cumsum(1).flip(1)  # 1 at each sequence's last real position, 2 before it, ...
            pooling_mask = real & (from_end <= self.config.classifier_max_len)
        if not return_dict:
            return tuple(v for v in (hidden, all_hidden, final_states) if v is not None)
        return RNNModelOutput(
            last_hidden_state=hidden, hidden_states=all_hidden, recurrent_state=final_states, pooling_mask=pooling_mask
        )

    def _chunked_layers(self, hidden: torch.Tensor, lengths, output_hidden_states: bool):
        """
        The layer stack over `[batch, time, embedding]` (right-aligned real positions) in chunks of
        `config.classifier_bptt` positions (ULMFiT's classifier encoder). Each layer's state is carried from chunk to
        chunk (detached: truncated BPTT); a chunk runs only the sequences that still have positions in it, on the
        padded tensor (exact at real positions); a chunk before every sequence's last `classifier_max_len`
        positions runs without a graph. Returns the top layer's outputs and, if asked, every layer's.
        """
        batch, seq_len = hidden.shape[:2]
        bptt, max_len = self.config.classifier_bptt, self.config.classifier_max_len
        sizes, device = self.config.layer_sizes, hidden.device
        row_lengths = [seq_len] * batch if lengths is None else lengths.tolist()
        grad_from = min(n - max_len for n in row_lengths) if max_len else 0
        lstm = self.config.cell_type == "lstm"
        states = [
            tuple(hidden.new_zeros(1, batch, size) for _ in range(2 if lstm else 1)) for size in sizes
        ]  # fmt: skip
        chunks: list[list[torch.Tensor]] = [[] for _ in self.layers]
        # one split, not a slice per chunk: the backward of each slice would build and add a full-length gradient
        for start, piece in zip(range(0, seq_len, bptt), hidden.split(bptt, dim=1)):
            end = start + piece.shape[1]
            active = [r for r, n in enumerate(row_lengths) if n > start]
            rows = None if len(active) == batch else torch.tensor(active, device=device)
            x = piece if rows is None else piece.index_select(0, rows)
            with torch.set_grad_enabled(torch.is_grad_enabled() and end > grad_from):
                for i, layer in enumerate(self.layers):
                    state = states[i] if rows is None else tuple(t.index_select(1, rows) for t in states[i])
                    x, new_state = run_recurrent_layer(layer, x, state if lstm else state[0])
                    new_state = new_state if isinstance(new_state, tuple) else (new_state,)
                    if rows is None:
                        states[i] = tuple(t.detach() for t in new_state)
                    else:
                        states[i] = tuple(
                            old.index_copy(1, rows, new.detach()) for old, new in zip(states[i], new_state)
                        )
                    if output_hidden_states or i == len(self.layers) - 1:  # lower layers only when asked for
                        full = (
                            x if rows is None else x.new_zeros(batch, end - start, x.shape[-1]).index_copy(0, rows, x)
                        )
                        chunks[i].append(full)
                    if i < len(self.layers) - 1:
                        x = self.layer_dropouts[i](x)
        outputs = [torch.cat(parts, dim=1) if parts else None for parts in chunks]
        return outputs[-1], (outputs if output_hidden_states else [])

    def _embed(self, input_ids, input_values, inputs_embeds) -> torch.Tensor:
        given = [
            name
            for name, v in (("input_ids", input_ids), ("input_values", input_values), ("inputs_embeds", inputs_embeds))
            if v is not None
        ]
        expected = "`input_ids` or `inputs_embeds`" if self.config.is_token_input else "`input_values`"
        if len(given) != 1:
            raise ValueError(f"Pass exactly one of {expected} to this model; got {given or 'none'}.")
        tensor = next(v for v in (input_ids, input_values, inputs_embeds) if v is not None)
        if tensor.dim() >= 2 and (tensor.shape[0] == 0 or tensor.shape[1] == 0):
            raise ValueError(
                f"`{given[0]}` has shape {list(tensor.shape)}: a batch needs at least one sequence of at least one "
                "position (an empty text, review or prompt? drop it, or give it a token such as BOS)."
            )
        if self.config.is_token_input:
            if input_values is not None:
                raise ValueError(
                    "This model reads tokens (config.vocab_size is set): pass `input_ids`, not `input_values`."
                )
            if inputs_embeds is not None:
                if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.embedding_size:
                    raise ValueError(
                        f"`inputs_embeds` must have shape [batch, time, {self.config.embedding_size}], "
                        f"got {list(inputs_embeds.shape)}."
                    )
                return inputs_embeds
            if input_ids.dim() != 2:
                raise ValueError(f"`input_ids` must have shape [batch, time], got {list(input_ids.shape)}.")
            if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= self.config.vocab_size):
                raise ValueError(
                    f"`input_ids` hold ids in [{int(input_ids.min())}, {int(input_ids.max())}] but the vocabulary has "
                    f"{self.config.vocab_size} tokens (valid ids 0..{self.config.vocab_size - 1}): was the data "
                    "tokenised with this model's tokenizer?"
                )
            return self.embeddings(input_ids)
        if input_values is None:
            raise ValueError(
                f"This model reads continuous input (config.input_size={self.config.input_size}): pass `input_values`."
            )
        if input_values.dim() != 3 or input_values.shape[-1] != self.config.input_size:
            raise ValueError(
                f"`input_values` must have shape [batch, time, {self.config.input_size}] "
                f"(config.input_size channels), got {list(input_values.shape)}."
            )
        return self.input_projection(self.normalize(input_values.to(self.input_projection.weight.dtype)))

    @staticmethod
    def _check_attention_mask(attention_mask, batch_size: int, seq_len: int, device):
        """Lengths for packing (`None` when nothing is padded) and, for non right-padded masks, the compaction order."""
        if attention_mask is None:
            return None, None
        if attention_mask.shape != (batch_size, seq_len):
            raise ValueError(
                f"`attention_mask` must have shape [batch, time] = [{batch_size}, {seq_len}], "
                f"got {list(attention_mask.shape)}."
            )
        mask = attention_mask.to(device=device, dtype=torch.bool)
        if mask.all():
            return None, None
        lengths = mask.sum(dim=1)
        if (lengths == 0).any():
            rows = (lengths == 0).nonzero().flatten().tolist()
            raise ValueError(
                f"`attention_mask` rows {rows} are all zero: every sequence needs at least one position (an empty "
                "text in the batch? drop it before batching)."
            )
        right_padded = not (~mask[:, :-1] & mask[:, 1:]).any()
        order = None if right_padded else (~mask).to(torch.int8).argsort(dim=1, stable=True)
        return lengths, order

    def _check_recurrent_state(self, recurrent_state, batch_size: int) -> None:
        if recurrent_state is None:
            return
        if len(recurrent_state) != self.config.num_layers:
            raise ValueError(
                f"`recurrent_state` must hold one entry per layer ({self.config.num_layers}), "
                f"got {len(recurrent_state)}."
            )
        if recurrent_state[0][0].shape[1] != batch_size:
            raise ValueError(
                f"`recurrent_state` is for a batch of {recurrent_state[0][0].shape[1]} sequences, "
                f"but the input has {batch_size}."
            )

    @staticmethod
    def _dropout(dropout: nn.Dropout, hidden):
        if isinstance(hidden, PackedSequence):
            return hidden._replace(data=dropout(hidden.data))
        return dropout(hidden)

    @staticmethod
    def _unpack(hidden, seq_len: int) -> torch.Tensor:
        if isinstance(hidden, PackedSequence):
            return pad_packed_sequence(hidden, batch_first=True, total_length=seq_len)[0]
        return hidden


def final_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor | None, config: RNNConfig) -> torch.Tensor:
    """
    The top layer's final state from its outputs `[batch, time, hidden * directions]`: the forward direction at each
    sequence's last real position and, when bidirectional, the backward direction at its first.
    """
    batch, seq_len = hidden.shape[:2]
    rows = torch.arange(batch, device=hidden.device)
    if attention_mask is None:
        last = torch.full((batch,), seq_len - 1, device=hidden.device)
        first = torch.zeros(batch, dtype=torch.long, device=hidden.device)
    else:
        positions = torch.arange(seq_len, device=hidden.device)[None]
        mask = attention_mask.to(device=hidden.device, dtype=torch.bool)
        last = positions.masked_fill(~mask, -1).max(dim=1).values
        first = positions.masked_fill(~mask, seq_len).min(dim=1).values
    top = config.layer_sizes[-1]
    forward = hidden[rows, last, :top]
    if not config.bidirectional:
        return forward
    return torch.cat([forward, hidden[rows, first, top:]], dim=-1)


class RNNSequencePooler(nn.Module):
    """Summarise `[batch, time, dim]` encoder outputs into `[batch, out_dim]` (`last`, `mean`, `max` or `concat`)."""

    def __init__(self, config: RNNConfig):
        super().__init__()
        self.config = config
        self.pooling = config.pooling
        self.output_size = config.output_size * (3 if config.pooling == "concat" else 1)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        pooled = []
        if self.pooling in ("last", "concat"):
            pooled.append(final_hidden(hidden, attention_mask, self.config))
        if self.pooling in ("max", "concat"):
            masked = hidden if attention_mask is None else hidden.masked_fill(~_mask3d(attention_mask), float("-inf"))
            pooled.append(masked.max(dim=1).values)
        if self.pooling in ("mean", "concat"):
            if attention_mask is None:
                pooled.append(hidden.mean(dim=1))
            else:
                mask = _mask3d(attention_mask)
                # masked_fill, not a product: NaN/inf at padded positions must not leak (NaN * 0 is NaN)
                summed = hidden.masked_fill(~mask, 0.0).sum(dim=1)
                pooled.append(summed / mask.sum(dim=1).clamp(min=1).to(hidden.dtype))
        return torch.cat(pooled, dim=-1)


def _mask3d(attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.to(torch.bool)[..., None]


def soft_cross_entropy(logits: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of `logits` against target class probabilities (rows of `[batch, num_classes]` that
    are non-negative and sum to 1), computed in float32."""
    probabilities = probabilities.to(device=logits.device, dtype=torch.float32)
    if probabilities.shape != logits.shape:
        raise ValueError(
            f"teacher_probabilities must have the logits' shape [batch, num_labels] = {list(logits.shape)}, "
            f"got {list(probabilities.shape)}."
        )
    if probabilities.numel() and (probabilities.min() < 0 or (probabilities.sum(-1) - 1).abs().max() > 1e-3):
        raise ValueError("teacher_probabilities must be non-negative rows that sum to 1 (class probabilities).")
    return nn.functional.cross_entropy(logits.float(), probabilities)  # probability targets: torch's soft form


class RNNForSequenceClassification(RNNPreTrainedModel):
    """
    Recurrent encoder, pooling over time and a linear head: single-label or multi-label classification, or
    regression, chosen by `config.problem_type` (inferred from `num_labels` and the labels' dtype when unset).
    """

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.rnn = RNNModel(config)
        self.pooler = RNNSequencePooler(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.pooler.output_size, config.num_labels)
        self.post_init()

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_labels: int | None = None, id2label: dict | None = None) -> None:
        """A new, freshly initialised classifier for `num_labels` labels (or the labels of `id2label`)."""
        self.classifier = self._reset_label_head(self.pooler.output_size, num_labels, id2label)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        recurrent_state: RecurrentState | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        teacher_probabilities: torch.FloatTensor | None = None,
    ) -> RNNSequenceClassifierOutput | tuple:
        """
        Args:
            labels (`torch.Tensor` of shape `[batch]` (class ids or regression targets) or `[batch, num_labels]`
                (multi-label 0/1 targets, or multi-output regression)): computes the loss when given.
            teacher_probabilities (`torch.FloatTensor` of shape `[batch, num_labels]`): a teacher's class
                probabilities (knowledge distillation, `distillation.py`); the loss is then the cross-entropy
                against them. Not with `labels` (a labelled row is a one-hot row of probabilities).
            use_cache (`bool`): return the final `recurrent_state` (default: only when one was passed in).
            Other arguments: see [`RNNModel.forward`].
        """
        out = self._encode(
            input_ids, input_values, attention_mask, inputs_embeds, recurrent_state, use_cache, output_hidden_states
        )
        mask = out.pooling_mask if out.pooling_mask is not None else attention_mask
        pooled = self.pooler(out.last_hidden_state, mask)
        logits = self.classifier(self.dropout(pooled))
        if teacher_probabilities is not None:
            if labels is not None:
                raise ValueError("pass labels or teacher_probabilities, not both (a labelled row is one-hot).")
            loss = soft_cross_entropy(logits, teacher_probabilities)
        else:
            loss = self._loss(logits, labels) if labels is not None else None
        return self._head_output(RNNSequenceClassifierOutput, return_dict, loss, logits, out)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """transformers' `ForSequenceClassificationLoss` (which infers and records `config.problem_type`), after
        checks that turn wrong labels into a clear error instead of a CUDA assert or a silent broadcast."""
        labels = labels.to(logits.device)
        problem_type = self.config.problem_type
        if problem_type is None and self.num_labels > 1:
            problem_type = "single_label_classification" if labels.dtype in (torch.long, torch.int) else None
        if problem_type == "single_label_classification":
            flat = labels.view(-1)
            if flat.numel() and (flat.min() < 0 or flat.max() >= self.num_labels):
                raise ValueError(
                    f"labels must be class ids in [0, {self.num_labels - 1}] (num_labels={self.num_labels}), "
                    f"got values in [{int(flat.min())}, {int(flat.max())}]."
                )
        elif self.num_labels > 1 and problem_type != "regression" and labels.shape != logits.shape:
            raise ValueError(
                f"multi-label classification needs labels of shape [batch, num_labels] = {list(logits.shape)}, "
                f"got {list(labels.shape)}."
            )
        if labels.is_floating_point() or self.num_labels == 1:
            labels = labels.to(logits.dtype)
        return self.loss_function(labels, logits, self.config)


class RNNForMultiTaskSequenceClassification(RNNPreTrainedModel):
    """
    One shared encoder and one classification head per task (`config.task_labels`): multi-task source pretraining.

    Every example names its task in `task_ids` (the index of the task in `config.task_labels`), so batches may mix
    tasks. `logits` has one column per label of the largest task; columns a row's task does not have are set to the
    lowest float, so `argmax` and the loss only see that task's labels.
    """

    def __init__(self, config: RNNConfig):
        if not config.task_labels:
            raise ValueError("RNNForMultiTaskSequenceClassification needs RNNConfig.task_labels (task -> label names).")
        super().__init__(config)
        self.tasks = list(config.task_labels)
        self.rnn = RNNModel(config)
        self.pooler = RNNSequencePooler(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.task_heads = nn.ModuleDict(
            {task: nn.Linear(self.pooler.output_size, len(names)) for task, names in config.task_labels.items()}
        )
        sizes = torch.tensor([len(names) for names in config.task_labels.values()])
        self.register_buffer("task_num_labels", sizes, persistent=False)
        self.post_init()

    def get_classifier(self) -> nn.ModuleDict:
        """One output layer per task."""
        return self.task_heads

    def reset_classifier(self, num_labels: int | None = None, task_labels: dict[str, list[str]] | None = None) -> None:
        """New, freshly initialised task heads: for `task_labels` (task -> label names), or the current tasks."""
        if num_labels is not None:
            raise ValueError(
                "a multi-task model's heads are sized by task_labels (task -> label names), not num_labels."
            )
        if task_labels is not None:
            self.config.task_labels = {str(task): list(names) for task, names in task_labels.items()}
            self.config.validate()
        self.tasks = list(self.config.task_labels)
        self.task_heads = self._fresh(
            nn.ModuleDict({t: nn.Linear(self.pooler.output_size, len(n)) for t, n in self.config.task_labels.items()})
        )
        sizes = [len(names) for names in self.config.task_labels.values()]
        self.task_num_labels = torch.tensor(sizes, device=self.device)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self:
            sizes = [len(names) for names in self.config.task_labels.values()]
            init.copy_(self.task_num_labels, torch.tensor(sizes, dtype=self.task_num_labels.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        task_ids: torch.LongTensor | None = None,
        input_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> RNNSequenceClassifierOutput | tuple:
        """
        Args:
            task_ids (`torch.LongTensor` of shape `[batch]`): the task of each example (index in `task_labels`).
            labels (`torch.LongTensor` of shape `[batch]`): class ids within each example's task.
            Other arguments: see [`RNNModel.forward`].
        """
        if task_ids is None:
            raise ValueError(f"Pass `task_ids` (one per example, indices into the tasks {self.tasks}).")
        out = self._encode(
            input_ids, input_values, attention_mask, inputs_embeds, output_hidden_states=output_hidden_states
        )
        task_ids = task_ids.to(out.last_hidden_state.device).view(-1)
        if task_ids.numel() and (task_ids.min() < 0 or task_ids.max() >= len(self.tasks)):
            raise ValueError(f"`task_ids` must be in [0, {len(self.tasks) - 1}] (tasks {self.tasks}).")
        mask = out.pooling_mask if out.pooling_mask is not None else attention_mask
        pooled = self.dropout(self.pooler(out.last_hidden_state, mask))
        width = int(self.task_num_labels.max())
        logits = pooled.new_full((pooled.shape[0], width), torch.finfo(pooled.dtype).min)
        for index, task in enumerate(self.tasks):
            rows = (task_ids == index).nonzero().flatten()
            if rows.numel():
                logits[rows, : int(self.task_num_labels[index])] = self.task_heads[task](pooled[rows])
        loss = None
        if labels is not None:
            labels = labels.to(logits.device).view(-1)
            limits = self.task_num_labels[task_ids]
            if labels.numel() and ((labels < 0) | (labels >= limits)).any():
                raise ValueError("labels must be class ids within each example's task (see config.task_labels).")
            loss = F.cross_entropy(logits, labels.long())
        return self._head_output(RNNSequenceClassifierOutput, return_dict, loss, logits, out)


class RNNForTokenClassification(RNNPreTrainedModel):
    """Recurrent encoder and a per-position linear head (NER, tagging); labels equal to -100 are ignored."""

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.rnn = RNNModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.output_size, config.num_labels)
        self.post_init()

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_labels: int | None = None, id2label: dict | None = None) -> None:
        """A new, freshly initialised per-position classifier for `num_labels` tags (or those of `id2label`)."""
        self.classifier = self._reset_label_head(self.config.output_size, num_labels, id2label)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        recurrent_state: RecurrentState | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **loss_kwargs,
    ) -> RNNTokenClassifierOutput | tuple:
        """
        Args:
            labels (`torch.LongTensor` of shape `[batch, time]`): class id per position, -100 where ignored.
            use_cache (`bool`): return the final `recurrent_state` (default: only when one was passed in).
            loss_kwargs: `num_items_in_batch` from the Trainer (the mean over all labelled positions of accumulated
                batches, transformers' `ForTokenClassification` loss).
            Other arguments: see [`RNNModel.forward`].
        """
        out = self._encode(
            input_ids, input_values, attention_mask, inputs_embeds, recurrent_state, use_cache, output_hidden_states
        )
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            valid = labels[labels != -100]
            if valid.numel() and (valid.min() < 0 or valid.max() >= self.num_labels):
                raise ValueError(
                    f"token labels must be class ids in [0, {self.num_labels - 1}] or -100 (ignored), "
                    f"got values in [{int(valid.min())}, {int(valid.max())}]."
                )
            loss = self.loss_function(
                logits, labels, self.config, num_items_in_batch=loss_kwargs.get("num_items_in_batch")
            )
        return self._head_output(RNNTokenClassifierOutput, return_dict, loss, logits, out)


class RNNForCausalLM(RNNPreTrainedModel, GenerationMixin):
    """
    Recurrent language model: next-token prediction, optional weight tying, and a recurrent state that is accepted and
    returned so a long stream trains with truncated BPTT and generation continues from the state instead of
    re-reading the prompt.

    `labels` follow transformers' convention (the same ids as `input_ids`, shifted inside); for a stream cut into
    chunks, pass `shift_labels` (the next token at every position, -100 where ignored) so that the last position of a
    chunk is trained too.
    """

    _tied_weights_keys = {"decoder.weight": "rnn.embeddings.weight"}
    _is_stateful = True

    def __init__(self, config: RNNConfig):
        if config.bidirectional:
            raise ValueError(
                "RNNConfig.bidirectional must be False for RNNForCausalLM: a causal language model cannot read the "
                "future. Use bidirectional=False, or a classification head."
            )
        if not config.is_token_input:
            raise ValueError(
                "RNNForCausalLM needs token input (RNNConfig.vocab_size); for series use RNNForTimeSeriesForecasting."
            )
        super().__init__(config)
        self.rnn = RNNModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        decoder_in = config.output_size
        if config.tie_word_embeddings and config.output_size != config.embedding_size:
            self.projection = nn.Linear(config.output_size, config.embedding_size, bias=False)
            decoder_in = config.embedding_size
        else:
            self.projection = None
        self.decoder = self._new_decoder(decoder_in)
        self.post_init()

    @property
    def adaptive(self) -> bool:
        """Whether the decoder is an adaptive softmax (`config.adaptive_softmax_cutoffs`)."""
        return self.config.adaptive_softmax_cutoffs is not None

    def _new_decoder(self, in_features: int) -> nn.Module:
        if self.adaptive:
            return nn.AdaptiveLogSoftmaxWithLoss(
                in_features,
                self.config.vocab_size,
                list(self.config.adaptive_softmax_cutoffs),
                div_value=float(self.config.adaptive_softmax_div_value),
                head_bias=True,
            )
        return nn.Linear(in_features, self.config.vocab_size)

    def get_output_embeddings(self) -> nn.Linear | None:
        return None if self.adaptive else self.decoder  # an adaptive softmax has no one matrix to tie or resize

    def get_classifier(self) -> nn.Linear:
        """The decoder over the vocabulary (tied to the embedding when `tie_word_embeddings`)."""
        return self.decoder

    def reset_classifier(self, num_labels: int | None = None) -> None:
        """A freshly initialised decoder (its size is the vocabulary: use `resize_token_embeddings` to change it);
        a tied decoder is tied again to the embedding."""
        if num_labels is not None and num_labels != self.config.vocab_size:
            raise ValueError(
                f"a language model's decoder has one output per token (vocab_size={self.config.vocab_size}); "
                "resize_token_embeddings changes the vocabulary."
            )
        in_features = self.decoder.in_features  # a Linear and an adaptive softmax both have it
        self.decoder = self._fresh(self._new_decoder(in_features))
        self.tie_weights()

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.decoder = new_embeddings

    def resize_token_embeddings(self, *args, **kwargs):
        if self.adaptive:
            raise ValueError(
                "an adaptive softmax's vocabulary is fixed when it is built (its clusters are ranges of token ids): "
                "build a new RNNForCausalLM with the new vocab_size and transfer() this model into it "
                "(remap_vocabulary=True moves the embedding rows by token string)."
            )
        return super().resize_token_embeddings(*args, **kwargs)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the recurrent state is the cache; it travels in `recurrent_state`

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        shift_labels: torch.LongTensor | None = None,
        recurrent_state: RecurrentState | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
        **loss_kwargs,
    ) -> RNNCausalLMOutput | tuple:
        """
        Args:
            labels (`torch.LongTensor` of shape `[batch, time]`): usually `input_ids`; shifted inside.
            shift_labels (`torch.LongTensor` of shape `[batch, time]`): already-shifted targets (next token).
            logits_to_keep (`int`): compute logits for the last `n` positions only (0 = all).
                With an adaptive softmax the logits are log-probabilities, and a training step with labels computes
                only the loss (`logits` is `None`): the full distribution over the vocabulary is what it avoids.
            use_cache (`bool`, defaults to `True`): return the final `recurrent_state`.
            loss_kwargs: `num_items_in_batch` from the Trainer, so the loss of accumulated batches is the mean over
                all their tokens (transformers' `ForCausalLMLoss`).
            Other arguments: see [`RNNModel.forward`].
        """
        use_cache = True if use_cache is None else use_cache
        out = self._encode(
            input_ids, None, attention_mask, inputs_embeds, recurrent_state, use_cache, output_hidden_states
        )
        hidden = self.dropout(out.last_hidden_state)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        if self.projection is not None:
            hidden = self.projection(hidden)
        loss, logits = None, None
        if labels is not None or shift_labels is not None:
            if shift_labels is None:
                shift_labels = F.pad(labels, (0, 1), value=-100)[:, 1:]
                if attention_mask is not None:
                    shift_labels = shift_labels.masked_fill(attention_mask == 0, -100)
            shift_labels = shift_labels.to(hidden.device).contiguous()
            valid = shift_labels[shift_labels != -100]
            if valid.numel() and (valid.min() < 0 or valid.max() >= self.config.vocab_size):
                raise ValueError(
                    f"language-model labels must be token ids in [0, {self.config.vocab_size - 1}] or -100 (ignored), "
                    f"got values in [{int(valid.min())}, {int(valid.max())}]: were they tokenised with this model's "
                    "tokenizer?"
                )
        num_items = loss_kwargs.get("num_items_in_batch")
        if self.adaptive:
            if shift_labels is not None:
                loss = self._adaptive_loss(hidden, shift_labels, num_items)
            if not (self.training and loss is not None):
                logits = self._adaptive_log_probs(hidden)
        else:
            logits = self.decoder(hidden)
            if shift_labels is not None:
                loss = self.loss_function(
                    logits, None, self.config.vocab_size, shift_labels=shift_labels, num_items_in_batch=num_items
                )
        return self._head_output(RNNCausalLMOutput, return_dict, loss, logits, out)

    def _adaptive_inputs(self, hidden: torch.Tensor) -> torch.Tensor:
        # the adaptive softmax runs outside autocast, in its own weights' dtype: it mixes the head's and the
        # clusters' outputs in one tensor, which autocast would give two dtypes
        return hidden.reshape(-1, hidden.shape[-1]).to(self.decoder.head.weight.dtype)

    def _adaptive_loss(self, hidden: torch.Tensor, shift_labels: torch.Tensor, num_items) -> torch.Tensor:
        """Mean negative log-likelihood of the next tokens (sum / `num_items_in_batch` when the Trainer gives it,
        as transformers' `ForCausalLMLoss`), each position computing only its target's cluster."""
        targets = shift_labels.reshape(-1)
        keep = targets != -100
        if not keep.any():
            return hidden.sum() * 0.0
        with torch.autocast(hidden.device.type, enabled=False):
            picked = self.decoder(self._adaptive_inputs(hidden)[keep], targets[keep]).output
        denominator = num_items if num_items is not None else keep.sum()
        if torch.is_tensor(denominator):
            denominator = denominator.to(picked.device)
        return -picked.sum() / denominator

    def _adaptive_log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            log_probs = self.decoder.log_prob(self._adaptive_inputs(hidden))
        return log_probs.view(*hidden.shape[:-1], self.config.vocab_size)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, cache=None, recurrent_state=None, **kwargs):
        if isinstance(cache, RecurrentStateCache):  # the prompt has been read: feed only the newest token
            return {"input_ids": input_ids[:, -1:], "recurrent_state": cache.state}
        if recurrent_state is not None:  # a stream continued by the caller: its state, then the prompt
            return {"input_ids": input_ids, "recurrent_state": recurrent_state, "logits_to_keep": 1}
        return {"input_ids": input_ids, "attention_mask": attention_mask, "logits_to_keep": 1}

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        model_kwargs = super()._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=is_encoder_decoder, num_new_tokens=num_new_tokens
        )
        # in the `cache` slot, so that beam search reorders it with the beams (`RecurrentStateCache.reorder_cache`)
        model_kwargs["cache"] = RecurrentStateCache(outputs.recurrent_state)
        model_kwargs.pop("recurrent_state", None)
        return model_kwargs


class RNNForTimeSeriesForecasting(RNNPreTrainedModel):
    """
    Recurrent encoder over a context window of continuous values that predicts the next `prediction_length` values of
    every channel: the self-supervised source task for time-series transfer.
    """

    def __init__(self, config: RNNConfig):
        if config.is_token_input:
            raise ValueError("RNNForTimeSeriesForecasting needs continuous input (RNNConfig.input_size), not tokens.")
        super().__init__(config)
        self.rnn = RNNModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = nn.Linear(config.output_size, config.prediction_length * config.input_size)
        self.post_init()

    def get_classifier(self) -> nn.Linear:
        return self.head

    def reset_classifier(self, num_labels: int | None = None, prediction_length: int | None = None) -> None:
        """A freshly initialised forecasting head, for `prediction_length` future steps (default: the current)."""
        if num_labels is not None:
            raise ValueError("a forecaster's head is sized by prediction_length (future steps), not num_labels.")
        if prediction_length is not None:
            self.config.prediction_length = prediction_length  # validated by the config
        self.head = self._fresh(
            nn.Linear(self.config.output_size, self.config.prediction_length * self.config.input_size)
        )

    def forward(
        self,
        input_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.FloatTensor | None = None,
        recurrent_state: RecurrentState | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> RNNForecastOutput | tuple:
        """
        Args:
            input_values (`torch.FloatTensor` of shape `[batch, context_length, channels]`): the context window.
            labels (`torch.FloatTensor` of shape `[batch, prediction_length, channels]`): the future values.
            use_cache (`bool`): return the final `recurrent_state` (default: only when one was passed in).
            Other arguments: see [`RNNModel.forward`].
        """
        out = self._encode(None, input_values, attention_mask, None, recurrent_state, use_cache, output_hidden_states)
        summary = final_hidden(out.last_hidden_state, attention_mask, self.config)
        normalised = self.head(self.dropout(summary)).view(-1, self.config.prediction_length, self.config.input_size)
        loss = None
        if labels is not None:
            expected = [normalised.shape[0], self.config.prediction_length, self.config.input_size]
            if list(labels.shape) != expected:
                raise ValueError(
                    f"forecasting labels must have shape {expected} "
                    f"[batch, prediction_length, channels], got {list(labels.shape)}."
                )
            target = self.rnn.normalize(labels.to(normalised.dtype))
            loss_fn = F.mse_loss if self.config.forecasting_loss == "mse" else F.l1_loss
            loss = loss_fn(normalised, target)
        predictions = self.rnn.denormalize(normalised)
        return self._head_output(RNNForecastOutput, return_dict, loss, predictions, out, name="predictions")


class RNNAttention(nn.Module):
    """
    Attention of a decoder state over the encoder outputs: Luong's multiplicative (`general`) score or Bahdanau's
    additive score, then the attentional state `tanh(W_c [context; h])` (Luong et al. 2015).
    """

    def __init__(self, memory_size: int, hidden_size: int, kind: str):
        super().__init__()
        self.kind = kind
        self.keys = nn.Linear(memory_size, hidden_size, bias=kind == "bahdanau")
        if kind == "bahdanau":
            self.query = nn.Linear(hidden_size, hidden_size, bias=False)
            self.energy = nn.Linear(hidden_size, 1, bias=False)
        self.combine = nn.Linear(memory_size + hidden_size, hidden_size, bias=False)

    def forward(self, hidden: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None):
        """`hidden` `[batch, target, hidden]` over `memory` `[batch, source, memory]` (`keys` = `self.keys(memory)`,
        computed once per source): the attentional states `[batch, target, hidden]` and the weights."""
        if self.kind == "luong":
            scores = torch.einsum("bth,bsh->bts", hidden, keys)
        else:
            scores = self.energy(torch.tanh(self.query(hidden)[:, :, None] + keys[:, None])).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask.to(torch.bool)[:, None, :], torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        context = torch.einsum("bts,bsm->btm", weights, memory)
        return torch.tanh(self.combine(torch.cat([context, hidden], dim=-1))), weights


class _EncoderForGeneration:
    """What `generate()` calls as `get_encoder()`: the sequence-to-sequence model's encoder, taking the keyword
    arguments generation passes (it ignores attention outputs: a recurrent encoder has none)."""

    def __init__(self, model: "RNNForSeq2SeqLM"):
        self.model = model

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, output_hidden_states=None, **kwargs):
        return self.model.rnn(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            use_cache=False,
            return_dict=True,
        )

    __call__ = forward


class RNNForSeq2SeqLM(RNNPreTrainedModel, GenerationMixin):
    """
    Recurrent encoder-decoder with attention (translation, dialogue): an LSTM/GRU encoder (uni- or bidirectional),
    a bridge from its final state to the decoder's initial state, a unidirectional decoder that attends over the
    encoder outputs at every step (`attention`: Luong or Bahdanau; `input_feeding`), and an output layer over the
    target vocabulary (tied to the decoder's embedding with `tie_word_embeddings`).

    On the transformers API: `labels` are shifted right behind `decoder_start_token_id` into `decoder_input_ids`;
    `generate()` encodes once, then each new token costs one decoder step (the state travels in the cache slot and is
    reordered with the beams); `AutoModelForSeq2SeqLM`, `pipeline("translation")` / `"text2text-generation"`.
    Layer groups for freezing and discriminative rates: the encoder's embedding and layers, then
    `decoder_embedding`, `decoder_layer_i`, `attention` (with the bridge) and `head`.

    Example:

    ```python
    >>> config = RNNConfig(vocab_size=8000, embedding_size=256, hidden_size=256, num_layers=2, bidirectional=True,
    ...                    attention="luong", bos_token_id=2, eos_token_id=3, pad_token_id=0)
    >>> model = RNNForSeq2SeqLM(config)
    >>> model.generate(**tokenizer(["ein Hund läuft"], return_tensors="pt"), num_beams=4, max_new_tokens=20)
    ```
    """

    _tied_weights_keys = {"lm_head.weight": "decoder_embeddings.weight"}
    _is_stateful = True

    def __init__(self, config: RNNConfig):
        if not config.is_token_input:
            raise ValueError("RNNForSeq2SeqLM reads tokens (RNNConfig.vocab_size) on both sides.")
        config.is_encoder_decoder = True
        task = {"impl": "pipeline_rnn.RNNText2TextPipeline", "pt": ["AutoModelForSeq2SeqLM"], "type": "text"}
        # transformers 5 has no translation or text2text-generation pipeline: saves ship pipeline_rnn.py for both
        config.custom_pipelines = {"translation": task, "text2text-generation": task}
        if config.decoder_start_token_id is None:
            config.decoder_start_token_id = config.bos_token_id
        super().__init__(config)
        hidden = config.target_hidden_size or config.hidden_size
        layers = config.target_num_layers or config.num_layers
        cell = _CELLS[config.cell_type]
        self.rnn = RNNModel(config)
        self.decoder_embeddings = nn.Embedding(
            config.decoder_vocabulary, config.embedding_size, padding_idx=config.pad_token_id
        )
        first_input = config.embedding_size + (hidden if config.input_feeding else 0)
        self.decoder_layers = nn.ModuleList(
            [cell(first_input if i == 0 else hidden, hidden, batch_first=True) for i in range(layers)]
        )
        self.bridge = nn.Linear(config.output_size, hidden)
        self.bridge_cell = nn.Linear(config.output_size, hidden) if config.cell_type == "lstm" else None
        self.attention = RNNAttention(config.output_size, hidden, config.attention)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.layer_dropout = nn.Dropout(config.layer_dropout)
        self.dropout = nn.Dropout(config.classifier_dropout)
        head_in = hidden
        if config.tie_word_embeddings and hidden != config.embedding_size:
            self.projection = nn.Linear(hidden, config.embedding_size, bias=False)
            head_in = config.embedding_size
        else:
            self.projection = None
        self.lm_head = nn.Linear(head_in, config.decoder_vocabulary)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the recurrent state is the cache

    def get_encoder(self):
        return _EncoderForGeneration(self)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.rnn.embeddings

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    def get_decoder_input_embeddings(self) -> nn.Embedding:
        return self.decoder_embeddings

    def get_classifier(self) -> nn.Linear:
        return self.lm_head

    def reset_classifier(self, num_labels: int | None = None) -> None:
        """A freshly initialised output layer over the target vocabulary (re-tied when `tie_word_embeddings`)."""
        if num_labels is not None and num_labels != self.config.decoder_vocabulary:
            raise ValueError(
                f"the output layer has one output per target token ({self.config.decoder_vocabulary}); a new target "
                "vocabulary needs a new decoder embedding too: build the model with target_vocab_size."
            )
        self.lm_head = self._fresh(nn.Linear(self.lm_head.in_features, self.config.decoder_vocabulary))
        self.tie_weights()

    def get_layer_groups(self) -> dict[str, list[str]]:
        groups = {k: v for k, v in super().get_layer_groups().items() if k != "head"}
        groups.update({"decoder_embedding": []})
        groups.update({f"decoder_layer_{i}": [] for i in range(len(self.decoder_layers))})
        groups.update({"attention": [], "head": []})
        for name, _ in self.named_parameters():
            if name.startswith("rnn."):
                continue
            if name.startswith("decoder_embeddings."):
                groups["decoder_embedding"].append(name)
            elif name.startswith("decoder_layers."):
                groups[f"decoder_layer_{name.split('.')[1]}"].append(name)
            elif name.startswith(("attention.", "bridge")):
                groups["attention"].append(name)
            else:
                groups["head"].append(name)
        return groups

    def shift_tokens_right(self, labels: torch.LongTensor) -> torch.LongTensor:
        """`decoder_input_ids` for `labels`: the start token, then the labels but the last (-100 read as padding)."""
        start = self.config.decoder_start_token_id
        if start is None:
            raise ValueError("RNNForSeq2SeqLM needs config.decoder_start_token_id (or bos_token_id) to shift labels.")
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        shifted = labels.new_full(labels.shape, start)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == -100, pad)

    def initial_state(self, memory: torch.Tensor, attention_mask: torch.Tensor | None) -> RecurrentState:
        """The decoder's first state, from the encoder's final state (the bridge), the same for every layer."""
        summary = final_hidden(memory, attention_mask, self.config)
        h = torch.tanh(self.bridge(summary))[None]
        state = (h, self.bridge_cell(summary)[None]) if self.bridge_cell is not None else (h,)
        return tuple(state for _ in self.decoder_layers)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: RNNModelOutput | tuple | None = None,
        labels: torch.LongTensor | None = None,
        recurrent_state: RecurrentState | None = None,
        decoder_feed: torch.FloatTensor | None = None,
        attention_keys: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **loss_kwargs,
    ) -> RNNSeq2SeqLMOutput | tuple:
        """
        Args:
            input_ids, attention_mask (`[batch, source]`): the source tokens (not needed with `encoder_outputs`).
            decoder_input_ids (`[batch, target]`): the decoder's input tokens (default: `labels` shifted right).
            decoder_attention_mask: accepted for API compatibility; right padding of the target needs none (a
                unidirectional decoder never reads positions after a real one), and padded labels are -100.
            encoder_outputs: the encoder's output for these sources (as `generate()` passes it).
            labels (`[batch, target]`): target token ids, -100 where ignored; the loss is their mean cross-entropy.
            recurrent_state, decoder_feed, attention_keys: continue decoding from a previous call's final state and
                its projection of the source (`use_cache=True`), so a generation step does not project it again.
            output_attentions: return the attention weights over the source (`cross_attentions`).
            loss_kwargs: `num_items_in_batch` from the Trainer (the mean over every target token of accumulated
                batches).
        """
        if labels is not None:  # before they are shifted into the decoder's embedding lookup
            valid = labels[labels != -100]
            if valid.numel() and (valid.min() < 0 or valid.max() >= self.config.decoder_vocabulary):
                raise ValueError(
                    f"labels must be target token ids in [0, {self.config.decoder_vocabulary - 1}] or -100, got values "
                    f"in [{int(valid.min())}, {int(valid.max())}]: were they tokenised with the target tokenizer?"
                )
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("RNNForSeq2SeqLM needs input_ids (the source) or encoder_outputs.")
            encoder_outputs = self.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        elif isinstance(encoder_outputs, tuple):
            encoder_outputs = RNNModelOutput(last_hidden_state=encoder_outputs[0])
        memory = encoder_outputs.last_hidden_state
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("RNNForSeq2SeqLM needs decoder_input_ids or labels (shifted right into them).")
            decoder_input_ids = self.shift_tokens_right(labels)
        if attention_mask is not None:
            attention_mask = attention_mask.to(memory.device)
        state = recurrent_state if recurrent_state is not None else self.initial_state(memory, attention_mask)
        hidden_states, state, feed, keys, weights = self._decode(
            decoder_input_ids, memory, attention_mask, state, decoder_feed, attention_keys
        )
        features = self.dropout(hidden_states)
        if self.projection is not None:
            features = self.projection(features)
        logits = self.lm_head(features)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = fixed_cross_entropy(
                logits.flatten(0, 1).float(),
                labels.flatten(),
                num_items_in_batch=loss_kwargs.get("num_items_in_batch"),
                ignore_index=-100,
            )
        keep = use_cache is None or use_cache
        output = RNNSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cross_attentions=(weights,) if output_attentions else None,
            decoder_hidden_states=(hidden_states,) if output_hidden_states else None,
            encoder_last_hidden_state=memory,
            recurrent_state=state if keep else None,
            decoder_feed=feed if keep else None,
            attention_keys=keys if keep else None,
        )
        if not (self.config.return_dict if return_dict is None else return_dict):
            return tuple(v for v in output.values() if v is not None)
        return output

    def _decode(self, decoder_input_ids, memory, mask, state, feed, keys=None):
        """The decoder over `decoder_input_ids`: attentional states `[batch, target, hidden]`, the final recurrent
        state, the last attentional state (input feeding), the attention keys and the weights `[batch, target,
        source]`."""
        keys = self.attention.keys(memory) if keys is None else keys
        embedded = self.embedding_dropout(self.decoder_embeddings(decoder_input_ids.to(memory.device)))
        if not self.config.input_feeding:  # every target position at once
            hidden, state = self._layers(embedded, state)
            attended, weights = self.attention(hidden, memory, keys, mask)
            return attended, state, attended[:, -1], keys, weights
        if feed is None:
            feed = memory.new_zeros(memory.shape[0], self.decoder_layers[0].hidden_size)
        outputs, all_weights = [], []
        for t in range(embedded.shape[1]):  # input feeding: each step reads the previous attentional state
            hidden, state = self._layers(torch.cat([embedded[:, t : t + 1], feed[:, None]], dim=-1), state)
            attended, weights = self.attention(hidden, memory, keys, mask)
            feed = attended[:, 0]
            outputs.append(attended)
            all_weights.append(weights)
        return torch.cat(outputs, dim=1), state, feed, keys, torch.cat(all_weights, dim=1)

    def _layers(self, hidden, state):
        new_state = []
        for i, (layer, layer_state) in enumerate(zip(self.decoder_layers, state)):
            if i > 0:
                hidden = self.layer_dropout(hidden)
            hidden, final = run_recurrent_layer(layer, hidden, layer_state if len(layer_state) == 2 else layer_state[0])
            new_state.append(tuple(final) if isinstance(final, tuple) else (final,))
        return hidden, tuple(new_state)

    def prepare_inputs_for_generation(
        self, decoder_input_ids, attention_mask=None, encoder_outputs=None, cache=None, **kwargs
    ):
        inputs = {"encoder_outputs": encoder_outputs, "attention_mask": attention_mask, "use_cache": True}
        if isinstance(cache, RecurrentStateCache):  # decoded so far: one step for the newest token
            return {
                **inputs,
                "decoder_input_ids": decoder_input_ids[:, -1:],
                "recurrent_state": cache.state,
                "decoder_feed": cache.feed,
                "attention_keys": cache.keys,
            }
        return {**inputs, "decoder_input_ids": decoder_input_ids}

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        model_kwargs = super()._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=is_encoder_decoder, num_new_tokens=num_new_tokens
        )
        model_kwargs["cache"] = RecurrentStateCache(
            outputs.recurrent_state, outputs.decoder_feed, outputs.attention_keys
        )
        return model_kwargs


AUTO_MAP = {
    "AutoConfig": "configuration_rnn.RNNConfig",
    "AutoModel": "modeling_rnn.RNNModel",
    "AutoModelForSequenceClassification": "modeling_rnn.RNNForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_rnn.RNNForTokenClassification",
    "AutoModelForCausalLM": "modeling_rnn.RNNForCausalLM",
    "AutoModelForTimeSeriesPrediction": "modeling_rnn.RNNForTimeSeriesForecasting",
    "AutoModelForSeq2SeqLM": "modeling_rnn.RNNForSeq2SeqLM",
}

__all__ = [
    "RNNPreTrainedModel",
    "RNNModel",
    "RNNForSequenceClassification",
    "RNNForMultiTaskSequenceClassification",
    "RNNForTokenClassification",
    "RNNForCausalLM",
    "RNNForTimeSeriesForecasting",
    "RNNForSeq2SeqLM",
    "RNNModelOutput",
    "RNNSequenceClassifierOutput",
    "RNNTokenClassifierOutput",
    "RNNCausalLMOutput",
    "RNNForecastOutput",
    "RNNSeq2SeqLMOutput",
    "RecurrentStateCache",
]
