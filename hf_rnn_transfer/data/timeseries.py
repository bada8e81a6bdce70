"""Time series: UCR files or any array column to `input_values` `[time, channels]`, normalisation statistics,
missing values, and sliding windows for forecasting.

Example:

```python
>>> ds = load_ucr("ECG200", root="data/ucr")
>>> series, labels = prepare_series(ds)
>>> mean, std = series_statistics(series["train"])
>>> config = RNNConfig(input_size=1, input_mean=mean, input_std=std, id2label=labels.id2label, ...)
```
"""

import math
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from .labels import LabelMap, column_features, label_id, names_of_labels, require_columns

IMPUTE = (None, "linear", "zero")


def load_ucr(name: str, root: str | Path | None = None) -> DatasetDict:
    """
    Load a UCR archive dataset (`<root>/<name>/<name>_TRAIN.tsv` and `_TEST.tsv`: label, then the values).

    Returns:
        `DatasetDict` with `train` and `test`, columns `values` (floats; `NaN` where the file has none) and `label`
        (a `ClassLabel` of the archive's label strings, sorted numerically).
    """
    folder = Path(root) / name if root is not None else Path(name)
    files = {split: folder / f"{folder.name}_{split.upper()}.tsv" for split in ("train", "test")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"UCR files not found: {missing} (expected <root>/<name>/<name>_TRAIN.tsv and _TEST.tsv)."
        )
    rows = {split: _read_tsv(path) for split, path in files.items()}
    names = sorted({label for split in rows.values() for label, _ in split}, key=_numeric_key)
    features = Features({"values": Sequence(Value("float32")), "label": ClassLabel(names=names)})
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {"values": [v for _, v in data], "label": [names.index(label) for label, _ in data]}, features=features
            )
            for split, data in rows.items()
        }
    )


def _read_tsv(path: Path) -> list[tuple[str, list[float]]]:
    out = []
    for line_number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.replace(",", "\t").split("\t")
        try:
            values = [float(v) if v.strip() not in ("", "NaN", "nan") else math.nan for v in fields[1:]]
        except ValueError as err:
            raise ValueError(f"{path}:{line_number}: not a number ({err}).") from err
        label = fields[0].strip()
        out.append((str(int(float(label))) if _is_number(label) else label, values))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _numeric_key(label: str):
    return (0, float(label), "") if _is_number(label) else (1, 0.0, label)


def prepare_series(
    dataset: Dataset | DatasetDict,
    values_column: str = "values",
    label_column: str | None = "label",
    impute: str | None = None,
    channels_last: bool = True,
    label_names: list[str] | None = None,
    train_split: str = "train",
) -> tuple[Dataset | DatasetDict, LabelMap | None]:
    """
    Turn an array column into `input_values` `[time, channels]` (a 1-D series becomes one channel), check it, and
    keep `labels` (class ids) and `length`.

    Args:
        values_column: a column of `[time]` or `[time, channels]` arrays (`[channels, time]` with
            `channels_last=False`).
        label_column: the class column (`None` for unlabelled series, e.g. forecasting). Labels may be strings,
            integers or a `ClassLabel`, as in `prepare_text_classification`; the returned `LabelMap` names them.
        impute: what to do with NaN: `None` raises (the default), `"linear"` interpolates along time (edges take the
            nearest value), `"zero"` fills zeros. Infinite values always raise.

    Raises:
        ValueError: NaN (without `impute`) or inf values, series of different channel counts, a missing column.
    """
    if impute not in IMPUTE:
        raise ValueError(f"impute must be one of {IMPUTE}, got {impute!r}.")
    require_columns(dataset, values_column, *([label_column] if label_column else []))
    splits = dataset.values() if isinstance(dataset, DatasetDict) else [dataset]
    channels = {_as_array(row, channels_last).shape[1] for split in splits for row in split[values_column]}
    if len(channels) > 1:
        raise ValueError(
            f"series in {values_column!r} have different channel counts {sorted(channels)}: one dataset "
            "must hold one kind of series (split it, or select the channels first)."
        )
    label_map, feature, label_ids = None, None, {}
    if label_column:
        feature = column_features(dataset)[label_column]
        label_map = LabelMap(list(label_names or names_of_labels(dataset, label_column, train_split)))
        label_ids = label_map.label2id

    def convert(batch):
        arrays = []
        for index, row in enumerate(batch[values_column]):
            array = _as_array(row, channels_last)
            if len(array) == 0:
                raise ValueError(f"series {index} of a batch in {values_column!r} is empty: every series needs values.")
            if np.isinf(array).any():
                raise ValueError(f"series {index} of a batch in {values_column!r} holds infinite values.")
            if np.isnan(array).any():
                if impute is None:
                    raise ValueError(
                        f"series {index} of a batch in {values_column!r} holds {int(np.isnan(array).sum())} NaN "
                        "value(s): pass impute='linear' or impute='zero' to fill them, or clean the data."
                    )
                array = _impute(array, impute)
            arrays.append(array.tolist())
        out = {"input_values": arrays, "length": [len(a) for a in arrays]}
        if label_column:
            out["labels"] = [label_id(v, feature, label_ids, label_column) for v in batch[label_column]]
        return out

    columns = dataset.column_names if isinstance(dataset, Dataset) else next(iter(dataset.values())).column_names
    return dataset.map(convert, batched=True, remove_columns=columns), label_map


def _as_array(row, channels_last: bool) -> np.ndarray:
    array = np.asarray(row, dtype=np.float32)
    if array.ndim == 1:
        return array[:, None]
    if array.ndim != 2:
        raise ValueError(f"a series must be [time] or [time, channels], got shape {array.shape}.")
    return array if channels_last else array.T


def _impute(array: np.ndarray, how: str) -> np.ndarray:
    array = array.copy()
    if how == "zero":
        return np.nan_to_num(array, nan=0.0)
    steps = np.arange(len(array))
    for c in range(array.shape[1]):
        column = array[:, c]
        known = ~np.isnan(column)
        if not known.any():
            raise ValueError("a channel is entirely NaN: nothing to interpolate from.")
        array[:, c] = np.interp(steps, steps[known], column[known])
    return array


def series_statistics(dataset: Dataset, column: str = "input_values") -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every time step of `dataset` (use the training split); a 1-D
    series is one channel."""
    arrays = [np.asarray(row, dtype=np.float64) for row in dataset[column]]
    arrays = [a.reshape(-1, 1) if a.ndim == 1 else a for a in arrays]
    if not arrays or not any(len(a) for a in arrays):
        raise ValueError(f"series_statistics needs at least one non-empty series in {column!r}; the dataset has none.")
    stacked = np.concatenate(arrays, axis=0)
    std = stacked.std(axis=0)
    std[std < 1e-8] = 1.0  # a constant channel is left unscaled
    return stacked.mean(axis=0).tolist(), std.tolist()


def forecasting_windows(
    dataset: Dataset, context_length: int, prediction_length: int, stride: int = 1, column: str = "input_values"
) -> Dataset:
    """Slide a window over every series: `input_values` = `context_length` steps, `labels` = the next
    `prediction_length` steps (all channels). Series shorter than one window are skipped."""
    if context_length <= 0 or prediction_length <= 0 or stride <= 0:
        raise ValueError("context_length, prediction_length and stride must be positive.")
    contexts, futures = [], []
    for row in dataset[column]:
        array = np.asarray(row, dtype=np.float32)
        for start in range(0, len(array) - context_length - prediction_length + 1, stride):
            contexts.append(array[start : start + context_length].tolist())
            futures.append(array[start + context_length : start + context_length + prediction_length].tolist())
    if not contexts:
        raise ValueError(
            f"no series is longer than context_length + prediction_length = {context_length + prediction_length}."
        )
    return Dataset.from_dict({"input_values": contexts, "labels": futures})
