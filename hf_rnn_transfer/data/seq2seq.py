"""Sequence-to-sequence data: parallel sentence pairs (translation) and dialogues (history -> response), tokenised for
[`RNNForSeq2SeqLM`] and batched by transformers' `DataCollatorForSeq2Seq`.

Example:

```python
>>> pairs = load_dataset("json", data_files="pairs.jsonl")["train"]          # {"en": ..., "de": ...} rows
>>> tokenizer = train_tokenizer(pairs["en"] + pairs["de"])                   # one shared vocabulary
>>> encoded = prepare_translation(pairs, tokenizer, source_column="de", target_column="en")
>>> collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
```
"""

from datasets import Dataset, DatasetDict

from .labels import column_names, require_columns


def prepare_translation(
    dataset: Dataset | DatasetDict,
    tokenizer,
    source_column: str = "source",
    target_column: str = "target",
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    target_tokenizer=None,
    truncation: bool = False,
) -> Dataset | DatasetDict:
    """
    Tokenise source/target pairs: `input_ids` and `attention_mask` from the source, `labels` from the target followed
    by the end-of-sequence token (the model shifts them right behind its start token), and `length`.

    Args:
        tokenizer: the source's tokenizer, and the target's too unless `target_tokenizer` is given (a shared
            vocabulary is what `pipeline("translation")` can decode).
        max_source_length, max_target_length: the longest side allowed (end token included for targets); a longer
            pair is an error naming its row unless `truncation=True`, which cuts it.

    Raises:
        ValueError: a missing column (listing the existing ones), an empty or missing sentence (naming the row and
            side), an overlong pair without `truncation`, a target tokenizer without an end-of-sequence token.
    """
    require_columns(dataset, source_column, target_column)
    target_tokenizer = target_tokenizer or tokenizer
    eos = target_tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the target tokenizer has no eos_token: the decoder needs one to learn where to stop.")

    def encode(batch, indices):
        for side, column in (("source", source_column), ("target", target_column)):
            for index, text in zip(indices, batch[column]):
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(
                        f"row {index}: empty or missing {side} sentence in column {column!r} ({text!r}); drop or "
                        "fill such pairs."
                    )
        sources = tokenizer(batch[source_column], add_special_tokens=False)["input_ids"]
        targets = [ids + [eos] for ids in target_tokenizer(batch[target_column], add_special_tokens=False)["input_ids"]]
        for side, rows, limit in (("source", sources, max_source_length), ("target", targets, max_target_length)):
            if limit is None:
                continue
            for row, (index, ids) in enumerate(zip(indices, rows)):
                if len(ids) > limit:
                    if not truncation:
                        raise ValueError(
                            f"row {index}: the {side} has {len(ids)} tokens, more than max_{side}_length={limit}; "
                            "pass truncation=True to cut it, or filter long pairs out."
                        )
                    rows[row] = ids[: limit - 1] + [eos] if side == "target" else ids[:limit]
        return {
            "input_ids": sources,
            "attention_mask": [[1] * len(ids) for ids in sources],
            "labels": targets,
            "length": [len(ids) for ids in sources],
        }

    return dataset.map(encode, batched=True, with_indices=True, remove_columns=column_names(dataset))


def dialogue_pairs(
    dataset: Dataset | DatasetDict, turns_column: str = "turns", history: int = 3, turn_separator: str = " | "
) -> Dataset | DatasetDict:
    """
    Every turn after the first of every dialogue as a `response`, with the `history` turns before it joined by
    `turn_separator` as its `context` (other columns of the dialogue, e.g. a topic, are kept on each pair).

    Raises:
        ValueError: a missing column, `history` < 1, a dialogue that is not a list of texts.
    """
    require_columns(dataset, turns_column)
    if history < 1:
        raise ValueError(f"history must be at least 1 turn, got {history}.")
    others = [c for c in column_names(dataset) if c != turns_column]

    def split(batch, indices):
        out = {"context": [], "response": [], **{c: [] for c in others}}
        for row, (index, turns) in enumerate(zip(indices, batch[turns_column])):
            if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
                raise ValueError(f"row {index}: {turns_column!r} must be a list of turn texts, got {turns!r:.80}.")
            for position in range(1, len(turns)):
                out["context"].append(turn_separator.join(turns[max(0, position - history) : position]))
                out["response"].append(turns[position])
                for column in others:
                    out[column].append(batch[column][row])
        return out

    return dataset.map(split, batched=True, with_indices=True, remove_columns=column_names(dataset))


def prepare_dialogue(
    dataset: Dataset | DatasetDict,
    tokenizer,
    turns_column: str = "turns",
    history: int = 3,
    turn_separator: str = " | ",
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    truncation: bool = False,
) -> Dataset | DatasetDict:
    """`dialogue_pairs` then `prepare_translation` (context -> response): rows for a response model."""
    pairs = dialogue_pairs(dataset, turns_column, history, turn_separator)
    keep = ["context", "response"]
    extra = [c for c in column_names(pairs) if c not in keep]
    return prepare_translation(
        pairs.remove_columns(extra) if extra else pairs,
        tokenizer,
        "context",
        "response",
        max_source_length,
        max_target_length,
        truncation=truncation,
    )
