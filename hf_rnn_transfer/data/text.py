"""Text classification and token classification: raw `datasets` columns to Trainer-ready rows.

Example:

```python
>>> from datasets import load_dataset
>>> ds = load_dataset("json", data_files={"train": "train.jsonl", "test": "test.jsonl"})
>>> encoded, labels = prepare_text_classification(ds, tokenizer, text_column="text", label_column="label")
>>> config = RNNConfig(vocab_size=len(tokenizer), id2label=labels.id2label, label2id=labels.label2id)
```
"""

from dataclasses import dataclass

from datasets import ClassLabel, Dataset, DatasetDict, Sequence, Value


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
    existing = _column_names(dataset)
    missing = [c for c in columns if c not in existing]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the dataset has {existing}.")


def require_pad_token(tokenizer) -> None:
    if tokenizer.pad_token_id is None:
        raise ValueError(
            f"the tokenizer {type(tokenizer).__name__} has no pad token, which batching needs: set one "
            "(tokenizer.pad_token = ...) or train one with hf_rnn_transfer.data.train_tokenizer."
        )


def prepare_text_classification(
    dataset: Dataset | DatasetDict,
    tokenizer,
    text_column: str = "text",
    label_column: str = "label",
    max_length: int | None = None,
    label_names: list[str] | None = None,
    train_split: str = "train",
) -> tuple[Dataset | DatasetDict, LabelMap]:
    """
    Tokenise a text column and turn its labels into class ids.

    Labels may be strings, integers or a `ClassLabel`; their names (from `label_names`, the `ClassLabel`, or the
    sorted values of the training split) become the model's `id2label`/`label2id`. The result keeps `input_ids`,
    `attention_mask`, `labels` and a `length` column (for `train_sampling_strategy="group_by_length"`).

    Raises:
        ValueError: a missing column (the message lists the existing ones), an empty text, a label of another split
            that the training split never had, a tokenizer without a pad token.
    """
    require_columns(dataset, text_column, label_column)
    require_pad_token(tokenizer)
    names = label_names or _label_names(dataset, label_column, train_split)
    label_map = LabelMap(list(names))
    index = label_map.label2id
    feature = _features(dataset)[label_column]

    def encode(batch):
        for text in batch[text_column]:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"empty or missing text in column {text_column!r}: {text!r}; drop or fill such rows.")
        encoded = tokenizer(batch[text_column], truncation=True, max_length=max_length)
        encoded["labels"] = [_label_id(v, feature, index, label_column) for v in batch[label_column]]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    encoded = dataset.map(encode, batched=True, remove_columns=_column_names(dataset))
    return encoded, label_map


def prepare_token_classification(
    dataset: Dataset | DatasetDict,
    tokenizer,
    tokens_column: str = "tokens",
    tags_column: str = "tags",
    max_length: int | None = None,
    label_names: list[str] | None = None,
    train_split: str = "train",
) -> tuple[Dataset | DatasetDict, LabelMap]:
    """
    Tokenise pre-split words and align word-level tags to sub-word tokens: the first sub-token of a word carries the
    word's tag, the others (and special tokens) get -100, which the loss ignores.

    Raises:
        ValueError: as `prepare_text_classification`, and for rows whose tags and words differ in number.
    """
    require_columns(dataset, tokens_column, tags_column)
    require_pad_token(tokenizer)
    names = label_names or _label_names(dataset, tags_column, train_split, nested=True)
    label_map = LabelMap(list(names))
    index = label_map.label2id
    feature = _features(dataset)[tags_column]
    inner = feature.feature if isinstance(feature, Sequence) else (feature[0] if isinstance(feature, list) else None)

    def encode(batch):
        encoded = tokenizer(batch[tokens_column], is_split_into_words=True, truncation=True, max_length=max_length)
        all_labels = []
        for row, (words, tags) in enumerate(zip(batch[tokens_column], batch[tags_column])):
            if len(words) != len(tags):
                raise ValueError(f"a row has {len(words)} words but {len(tags)} tags in {tags_column!r}.")
            previous, labels = None, []
            for word in encoded.word_ids(row):
                labels.append(
                    -100 if word is None or word == previous else _label_id(tags[word], inner, index, tags_column)
                )
                previous = word
            all_labels.append(labels)
        encoded["labels"] = all_labels
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    encoded = dataset.map(encode, batched=True, remove_columns=_column_names(dataset))
    return encoded, label_map


def _column_names(dataset) -> list[str]:
    if isinstance(dataset, DatasetDict):
        return next(iter(dataset.values())).column_names
    return dataset.column_names


def _features(dataset):
    return next(iter(dataset.values())).features if isinstance(dataset, DatasetDict) else dataset.features


def _label_names(dataset, column: str, train_split: str, nested: bool = False) -> list[str]:
    feature = _features(dataset)[column]
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


def _label_id(value, feature, index: dict[str, int], column: str) -> int:
    if isinstance(feature, ClassLabel):
        return int(value)
    key = str(value)
    if key not in index:
        raise ValueError(
            f"label {value!r} in {column!r} is not among the training labels {list(index)}: a split holds a label "
            "the training split never had."
        )
    return index[key]
