"""Text classification and token classification: raw `datasets` columns to Trainer-ready rows.

Example:

```python
>>> from datasets import load_dataset
>>> ds = load_dataset("json", data_files={"train": "train.jsonl", "test": "test.jsonl"})
>>> encoded, labels = prepare_text_classification(ds, tokenizer, text_column="text", label_column="label")
>>> config = RNNConfig(vocab_size=len(tokenizer), id2label=labels.id2label, label2id=labels.label2id)
```
"""

from datasets import Dataset, DatasetDict, Sequence

from .labels import LabelMap, column_features, column_names, label_id, names_of_labels, require_columns


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
    names = label_names or names_of_labels(dataset, label_column, train_split)
    label_map = LabelMap(list(names))
    index = label_map.label2id
    feature = column_features(dataset)[label_column]

    def encode(batch):
        for text in batch[text_column]:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"empty or missing text in column {text_column!r}: {text!r}; drop or fill such rows.")
        encoded = tokenizer(batch[text_column], truncation=True, max_length=max_length)
        encoded["labels"] = [label_id(v, feature, index, label_column) for v in batch[label_column]]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    encoded = dataset.map(encode, batched=True, remove_columns=column_names(dataset))
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
    names = label_names or names_of_labels(dataset, tags_column, train_split, nested=True)
    label_map = LabelMap(list(names))
    index = label_map.label2id
    feature = column_features(dataset)[tags_column]
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
                    -100 if word is None or word == previous else label_id(tags[word], inner, index, tags_column)
                )
                previous = word
            all_labels.append(labels)
        encoded["labels"] = all_labels
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    encoded = dataset.map(encode, batched=True, remove_columns=column_names(dataset))
    return encoded, label_map
