"""Label columns to class ids, shared by every data kind (texts, tokens, series, audio)."""

from dataclasses import dataclass

from datasets import ClassLabel, DatasetDict, Sequence, Value


@dataclass
class LabelMap:
    """Label names and their ids, for `RNNConfig(id2label=..., label2id=...)`."""

    names: list[str]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


def require_columns(dataset, *columns: str) -> None:
    """Raise a `ValueError` naming the missing columns and the ones that exist."""
    existing = column_names(dataset)
    missing = [c for c in columns if c not in existing]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the dataset has {existing}.")


def column_names(dataset) -> list[str]:
    """The columns of a dataset (of its first split, for a `DatasetDict`)."""
    if isinstance(dataset, DatasetDict):
        return next(iter(dataset.values())).column_names
    return dataset.column_names


def column_features(dataset):
    """The features of a dataset (of its first split, for a `DatasetDict`)."""
    return next(iter(dataset.values())).features if isinstance(dataset, DatasetDict) else dataset.features


def names_of_labels(dataset, column: str, train_split: str, nested: bool = False) -> list[str]:
    """The label names of `column`: a `ClassLabel`'s, or the sorted values of the training split (`nested` for
    per-token tags)."""
    feature = column_features(dataset)[column]
    inner = feature.feature if nested and isinstance(feature, Sequence) else feature
    if nested and isinstance(feature, list):
        inner = feature[0]
    if isinstance(inner, ClassLabel):
        return list(inner.names)
    train = dataset[train_split] if isinstance(dataset, DatasetDict) else dataset
    if len(train) == 0:
        raise ValueError(f"the {train_split!r} split has no rows: labels (and training) need at least one example.")
    values = train[column]
    if nested:
        values = [v for row in values for v in row]
    distinct = sorted({v for v in values if v is not None})
    if not distinct:
        raise ValueError(f"column {column!r} holds no labels.")
    if isinstance(inner, Value) and inner.dtype.startswith("int") and distinct != list(range(len(distinct))):
        raise ValueError(f"integer labels in {column!r} must be 0..n-1, got {distinct[:10]}; or pass label_names.")
    return [str(v) for v in distinct]


def label_id(value, feature, index: dict[str, int], column: str) -> int:
    """The class id of one label value (refusing a label the training split never had)."""
    if isinstance(feature, ClassLabel):
        return int(value)
    key = str(value)
    if key not in index:
        raise ValueError(
            f"label {value!r} in {column!r} is not among the training labels {list(index)}: a split holds a label "
            "the training split never had."
        )
    return index[key]
