"""`SourceEnsemble`: classifiers fine-tuned from different sources, their class probabilities averaged.

With few target labels, the models fine-tuned from the top-ranked sources disagree on many rows, and their average
beats each of them (`docs/benchmarks.md`, "auto"): `auto_transfer(..., auto_args=AutoArguments(ensemble=5))`
validates that average inside the budget beside the single sources and returns one when it wins. Each member keeps
its own tokenizer (sources rarely share a vocabulary), so the ensemble takes raw inputs: texts, or series.

Saved as a folder: `ensemble.json` (the members' folders, weights and the label names) and one `member-<i>/` folder per
member written by `save_pretrained` (safetensors weights, config, tokenizer). Each member loads on its own as any
hf-rnn-transfer model.

Example:

```python
>>> ensemble = SourceEnsemble.from_pretrained("runs/auto")  # a folder, or a Hub repo id
>>> ensemble(["Sturdy and easy to clean.", "It broke in a week."])
[{'label': 'positive', 'score': 0.93}, {'label': 'negative', 'score': 0.88}]
```
"""

import json
import math
import re
from pathlib import Path

import numpy as np

ENSEMBLE_FILE = "ensemble.json"
MAX_MEMBERS = 64
_MEMBER_FOLDER = re.compile(r"member-\d{1,2}")


class SourceEnsemble:
    """
    Average the class probabilities of classifiers that share a label set.

    Args:
        members: `RNNForSequenceClassification` models with the same `id2label`, all reading tokens or all series.
        tokenizers: one per member (`None` for a member that reads series).
        sources: where each member was transferred from (shown in reports and saved).
        weights: one non-negative number per member (default: equal); normalised to sum to 1.
    """

    def __init__(self, members, tokenizers=None, sources=None, weights=None):
        members = list(members)
        if not members or len(members) > MAX_MEMBERS:
            raise ValueError(f"an ensemble needs 1 to {MAX_MEMBERS} members, got {len(members)}.")
        tokenizers = list(tokenizers) if tokenizers is not None else [None] * len(members)
        sources = [str(s) for s in sources] if sources is not None else [""] * len(members)
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if not len(tokenizers) == len(sources) == len(weights) == len(members):
            raise ValueError(
                f"{len(members)} members need as many tokenizers, sources and weights; got {len(tokenizers)}, "
                f"{len(sources)} and {len(weights)}."
            )
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"ensemble weights must be finite, non-negative and not all zero, got {weights}.")
        labels = [_id2label(m) for m in members]
        if any(other != labels[0] for other in labels[1:]):
            raise ValueError(f"the members must share one label set; got {labels}.")
        kinds = {bool(m.config.is_token_input) for m in members}
        if len(kinds) > 1:
            raise ValueError("the members must all read tokens or all read series, not a mix.")
        for i, (member, tokenizer) in enumerate(zip(members, tokenizers)):
            if member.config.is_token_input and tokenizer is None:
                raise ValueError(f"member {i} ({sources[i] or 'unnamed'}) reads tokens but has no tokenizer.")
        self.members, self.tokenizers, self.sources = members, tokenizers, sources
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.id2label = labels[0]

    @property
    def config(self):
        """The first member's config (what a model card describes of the architecture)."""
        return self.members[0].config

    @property
    def reads_text(self) -> bool:
        return bool(self.members[0].config.is_token_input)

    def eval(self) -> "SourceEnsemble":
        for member in self.members:
            member.eval()
        return self

    def average(self, probabilities: list[np.ndarray]) -> np.ndarray:
        """The weighted average of one `[rows, classes]` array per member."""
        if len(probabilities) != len(self.members):
            raise ValueError(f"{len(self.members)} members, {len(probabilities)} probability arrays.")
        return sum(w * np.asarray(p, dtype=np.float64) for w, p in zip(self.weights, probabilities))

    def predict_proba(self, inputs, batch_size: int = 64, max_length: int | None = None) -> np.ndarray:
        """
        Class probabilities `[rows, classes]` (columns in `id2label` order) for raw inputs.

        Args:
            inputs: non-empty texts (or one text) for members that read tokens; for members that read series, a list
                of arrays `[time]` or `[time, channels]` (or one numpy array: one series).
            max_length: truncate each member's token ids to this length (default: whole texts).
        """
        from .evaluation import class_probabilities

        rows = self._encoded(inputs, max_length)
        return self.average([class_probabilities(m, r, c, batch_size)[0] for m, (r, c) in zip(self.members, rows)])

    def __call__(self, inputs, **kwargs) -> list[dict]:
        """`[{"label": name, "score": probability}]` per input, like a text-classification pipeline."""
        probabilities = self.predict_proba(inputs, **kwargs)
        best = probabilities.argmax(-1)
        return [{"label": self.id2label[int(k)], "score": float(p[k])} for k, p in zip(best, probabilities)]

    def _encoded(self, inputs, max_length):
        from datasets import Dataset

        if isinstance(inputs, (str, np.ndarray)):  # one text, or one series
            inputs = [inputs]
        inputs = list(inputs)
        if not inputs:
            raise ValueError("predict_proba needs at least one input.")
        if self.reads_text:
            from transformers import DataCollatorWithPadding

            bad = [i for i, t in enumerate(inputs) if not isinstance(t, str) or not t.strip()]
            if bad:
                raise ValueError(f"the ensemble reads texts; inputs {bad[:5]} are not non-empty strings.")
            out = []
            for tokenizer in self.tokenizers:
                encoded = tokenizer(inputs, truncation=max_length is not None, max_length=max_length)
                rows = Dataset.from_dict({**encoded, "labels": [0] * len(inputs)})
                out.append((rows, DataCollatorWithPadding(tokenizer)))
            return out
        from .data import DataCollatorForSeries, prepare_series

        series = prepare_series(Dataset.from_dict({"values": [np.asarray(x, dtype=np.float32) for x in inputs]}),
                                label_column=None)[0]  # fmt: skip
        rows = series.add_column("labels", [0] * len(inputs))
        return [(rows, DataCollatorForSeries())] * len(self.members)

    def save_pretrained(self, folder) -> None:
        """Write `ensemble.json` and one `member-<i>/` per member (weights, config, tokenizer) under `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"member-{i}" for i in range(len(self.members))]
        for name, member, tokenizer in zip(names, self.members, self.tokenizers):
            member.save_pretrained(folder / name)
            if tokenizer is not None:
                tokenizer.save_pretrained(folder / name)
        manifest = {
            "members": names,
            "sources": self.sources,
            "weights": self.weights,
            "id2label": {str(k): v for k, v in self.id2label.items()},
        }
        (folder / ENSEMBLE_FILE).write_text(json.dumps(manifest, indent=1))

    @classmethod
    def from_pretrained(cls, name_or_path, revision: str | None = None, token=None) -> "SourceEnsemble":
        """Load a folder written by `save_pretrained`, or download a Hub repo holding one."""
        from transformers import AutoTokenizer

        from .modeling_rnn import RNNForSequenceClassification

        folder = Path(name_or_path)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            # the manifest, configs, tokenizers and safetensors weights: nothing that would need unpickling
            patterns = [ENSEMBLE_FILE, "member-*/*.json", "member-*/*.safetensors"]
            folder = Path(snapshot_download(str(name_or_path), revision=revision, token=token, allow_patterns=patterns))
        manifest_path = folder / ENSEMBLE_FILE
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{name_or_path} has no {ENSEMBLE_FILE}: it is not a saved SourceEnsemble.")
        manifest = _read_manifest(manifest_path)
        members, tokenizers = [], []
        for name in manifest["members"]:
            member = RNNForSequenceClassification.from_pretrained(folder / name, use_safetensors=True).eval()
            members.append(member)
            has_tokenizer = (folder / name / "tokenizer.json").is_file() or (
                folder / name / "tokenizer_config.json"
            ).is_file()
            tokenizers.append(AutoTokenizer.from_pretrained(folder / name) if has_tokenizer else None)
        return cls(members, tokenizers, manifest["sources"], manifest["weights"])


def held_out_member_probabilities(
    make_members, member_rows, args, collators, folds: int, on_fold=None, label_column: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
    """
    Each member's held-out class probabilities, row by row: every member is fine-tuned on the other folds (with
    `args`: its epochs, no selection) on its own encoding of the same rows (the folds are
    `budget_selection.fold_indices`, as in `cross_validate`). Averaging any subset of the members then scores that
    ensemble on the same folds without training again (`ensemble_correctness`).

    Args:
        make_members: one zero-argument function per member, each returning a fresh transferred classifier.
        member_rows: one encoded dataset per member: the same rows in the same order, with `labels`.
        collators: one per member.
        on_fold: called after each member's fold (progress).

    Returns:
        `([members, rows, classes] probabilities, [rows] labels)`.
    """
    import tempfile
    from dataclasses import replace

    from .budget_selection import fold_indices
    from .evaluation import class_probabilities
    from .trainer import TransferTrainer

    if not len(make_members) == len(member_rows) == len(collators) or not make_members:
        raise ValueError("cross-validating an ensemble needs one model builder, one encoded dataset and one collator "
                         "per member.")  # fmt: skip
    labels = np.asarray(member_rows[0][label_column])
    if any(len(rows) != len(labels) or list(rows[label_column]) != labels.tolist() for rows in member_rows):
        raise ValueError("every member's encoded rows must be the same rows, in the same order, with the same labels.")
    if len(labels) < 2 * folds:
        raise ValueError(f"{len(labels)} rows cannot be split into {folds} folds of at least 2.")
    quiet = dict(save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no")
    probabilities = None
    everything = np.arange(len(labels))
    for heldout in fold_indices(labels.tolist(), folds, args.seed):
        train_rows = np.setdiff1d(everything, heldout)
        for i, (make_model, rows, collator) in enumerate(zip(make_members, member_rows, collators)):
            model = make_model()
            with tempfile.TemporaryDirectory(prefix="ensemble-fold-") as fold_dir:  # nothing of the folds is kept
                TransferTrainer(model=model, args=replace(args, output_dir=fold_dir, **quiet),
                                train_dataset=rows.select(train_rows), data_collator=collator).train()  # fmt: skip
            fold = class_probabilities(model.eval(), rows.select(heldout), collator)[0]
            if probabilities is None:
                probabilities = np.zeros((len(make_members), len(labels), fold.shape[-1]))
            probabilities[i, heldout] = fold
            if on_fold is not None:
                on_fold()
    return probabilities, labels


def ensemble_correctness(probabilities: np.ndarray, labels: np.ndarray, size: int | None = None) -> np.ndarray:
    """`[rows]` of 1.0 where the equal average of the first `size` members' probabilities (default: all) picks the
    label, else 0.0; `probabilities` is `[members, rows, classes]` (`held_out_member_probabilities`)."""
    size = len(probabilities) if size is None else size
    if not 1 <= size <= len(probabilities):
        raise ValueError(f"an ensemble of {size} from {len(probabilities)} members' probabilities.")
    return (probabilities[:size].mean(axis=0).argmax(-1) == np.asarray(labels)).astype(float)


def cross_validate_ensemble(
    make_members, member_rows, args, collators, folds: int, on_fold=None, label_column: str = "labels"
) -> np.ndarray:
    """
    Held-out correctness, row by row, of the average of members fine-tuned on the other folds: what `auto` compares
    with single sources inside the budget (`held_out_member_probabilities`, averaged; same arguments).

    Returns:
        `[rows]` of 1.0 (the averaged probabilities pick the label) or 0.0; its mean is the held-out accuracy.
    """
    probabilities, labels = held_out_member_probabilities(make_members, member_rows, args, collators, folds, on_fold,
                                                          label_column)  # fmt: skip
    return ensemble_correctness(probabilities, labels)


def _id2label(model) -> dict[int, str]:
    return {int(k): v for k, v in (model.config.id2label or {}).items()}


def _read_manifest(path: Path) -> dict:
    """`ensemble.json`, checked: member folders named `member-<i>` inside the folder, one source and one finite
    non-negative weight each, at most `MAX_MEMBERS` members."""
    if path.stat().st_size > 1_000_000:
        raise ValueError(f"{path} is larger than 1 MB: not an ensemble manifest.")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    members = manifest.get("members") if isinstance(manifest, dict) else None
    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        raise ValueError(f"{path}: 'members' must list 1 to {MAX_MEMBERS} member folders.")
    if any(not isinstance(m, str) or not _MEMBER_FOLDER.fullmatch(m) for m in members) or len(set(members)) < len(
        members
    ):
        raise ValueError(f"{path}: member folders must be distinct names of the form member-<i>, got {members}.")
    sources = manifest.get("sources", [""] * len(members))
    weights = manifest.get("weights", [1.0] * len(members))
    if not isinstance(sources, list) or len(sources) != len(members) or not all(isinstance(s, str) for s in sources):
        raise ValueError(f"{path}: 'sources' must hold one string per member.")
    if not isinstance(weights, list) or len(weights) != len(members):
        raise ValueError(f"{path}: 'weights' must hold one number per member.")
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in weights):
        raise ValueError(f"{path}: 'weights' must be numbers, got {weights}.")
    return {"members": members, "sources": sources, "weights": weights}


__all__ = [
    "ENSEMBLE_FILE",
    "SourceEnsemble",
    "cross_validate_ensemble",
    "ensemble_correctness",
    "held_out_member_probabilities",
]
