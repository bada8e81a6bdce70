"""Text and token classification preparation on real data, ending in real training steps."""

from pathlib import Path

import pytest
import torch
from datasets import Dataset, DatasetDict, load_dataset
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, RNNForTokenClassification
from hf_rnn_transfer.data import (
    load_amazon_reviews,
    prepare_text_classification,
    prepare_token_classification,
    train_tokenizer,
)

from .conftest import SHARED_DATA, training_losses


def train_steps(model, dataset, collator, tmp_path, steps=30, lr=5e-3) -> list[float]:
    return training_losses(
        model, dataset, tmp_path, steps, lr, collator=collator, train_sampling_strategy="group_by_length"
    )


def mean(values):
    return sum(values) / len(values)


@pytest.mark.needs_data
def test_sst2_from_json_files_to_a_trained_classifier(tmp_path):
    files = {"train": str(SHARED_DATA / "sst2" / "train.jsonl"), "test": str(SHARED_DATA / "sst2" / "test.jsonl")}
    raw = load_dataset("json", data_files=files)
    raw = DatasetDict({k: v.select(range(600)) for k, v in raw.items()})
    tokenizer = train_tokenizer(raw["train"]["text"], vocab_size=4000)
    encoded, labels = prepare_text_classification(raw, tokenizer, max_length=64)
    assert labels.names == ["0", "1"] and set(encoded["train"].column_names) == {
        "input_ids",
        "attention_mask",
        "labels",
        "length",
    }
    assert max(encoded["train"]["length"]) <= 64
    model = RNNForSequenceClassification(
        RNNConfig(
            vocab_size=len(tokenizer),
            pad_token_id=0,
            embedding_size=32,
            hidden_size=32,
            num_layers=1,
            pooling="concat",
            id2label=labels.id2label,
            label2id=labels.label2id,
        )
    )
    losses = train_steps(model, encoded["train"], DataCollatorWithPadding(tokenizer), tmp_path, steps=120, lr=1e-2)
    assert mean(losses[-10:]) < mean(losses[:10]) - 0.05, losses


def test_string_labels_become_a_label_map_and_unseen_labels_are_refused():
    reviews = load_amazon_reviews("kitchen").select(range(0, 2000, 20))
    stars = reviews.map(lambda r: {"stars": f"{int(r['rating'])} stars"})
    tokenizer = train_tokenizer(stars["text"], vocab_size=2000)
    encoded, labels = prepare_text_classification(stars, tokenizer, label_column="stars")
    assert labels.names == ["1 stars", "2 stars", "4 stars", "5 stars"]
    assert set(encoded["labels"]) == {0, 1, 2, 3}
    _, named = prepare_text_classification(reviews, tokenizer)  # a ClassLabel keeps its names
    assert named.names == ["negative", "positive"]
    split = DatasetDict({"train": stars.filter(lambda r: r["stars"] != "2 stars"), "test": stars})
    with pytest.raises(ValueError, match="label '2 stars' .* not among the training labels"):
        prepare_text_classification(split, tokenizer, label_column="stars")


def test_bad_text_inputs_are_named():
    tokenizer = train_tokenizer(["a good kettle", "a bad kettle"], min_frequency=1)
    data = Dataset.from_dict({"review": ["fine", "   "], "label": [0, 1]})
    with pytest.raises(ValueError, match=r"missing column\(s\) \['text'\]; the dataset has \['review', 'label'\]"):
        prepare_text_classification(data, tokenizer)
    with pytest.raises(ValueError, match="empty or missing text in column 'review'"):
        prepare_text_classification(data, tokenizer, text_column="review")
    no_pad = train_tokenizer(["a good kettle"], min_frequency=1)
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="has no pad token"):
        prepare_text_classification(data, no_pad, text_column="review")


# 800 WNUT-17 training sentences ship with the tests (CC BY 4.0, see its PROVENANCE.md): runs on any clone
WNUT = Path(__file__).parent / "fixtures" / "wnut17" / "train.jsonl"


def test_ner_tags_align_to_subword_tokens_and_train(tmp_path):
    raw = DatasetDict({"train": load_dataset("json", data_files={"train": str(WNUT)})["train"]})
    tokenizer = train_tokenizer([" ".join(t) for t in raw["train"]["tokens"]], kind="bpe", vocab_size=3000)
    encoded, labels = prepare_token_classification(raw, tokenizer)
    assert labels.names == sorted(labels.names) and "B-person" in labels.names and "O" in labels.names
    row = encoded["train"][0]
    words = raw["train"][0]["tokens"]
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    labelled = [i for i, label in enumerate(row["labels"]) if label != -100]
    assert len(labelled) == len(words)  # exactly one labelled sub-token per word: the first
    assert [word_ids[i] for i in labelled] == list(range(len(words)))
    assert [labels.names[row["labels"][i]] for i in labelled] == raw["train"][0]["tags"]
    model = RNNForTokenClassification(
        RNNConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            embedding_size=32,
            hidden_size=32,
            num_layers=1,
            bidirectional=True,
            id2label=labels.id2label,
            label2id=labels.label2id,
        )
    )
    collator = DataCollatorForTokenClassification(tokenizer)
    losses = train_steps(model, encoded["train"].remove_columns("length"), collator, tmp_path, steps=40, lr=1e-2)
    assert mean(losses[-8:]) < 0.8 * mean(losses[:8]), losses
    batch = collator([encoded["train"][i] for i in range(3)])
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_wnut_tags_unseen_in_training_are_refused():
    raw = load_dataset("json", data_files={"train": str(WNUT)})["train"]
    tokenizer = train_tokenizer([" ".join(t) for t in raw["tokens"][:500]], vocab_size=2000)
    no_location = raw.filter(lambda r: not any("location" in t for t in r["tags"]))
    split = DatasetDict({"train": no_location.select(range(200)), "validation": raw.select(range(200))})
    with pytest.raises(ValueError, match="label 'B-location' in 'tags' is not among the training labels"):
        prepare_token_classification(split, tokenizer)
    with pytest.raises(ValueError, match="1 words but 2 tags"):
        prepare_token_classification(Dataset.from_dict({"tokens": [["x"]], "tags": [["O", "O"]]}), tokenizer)
    assert torch.tensor([1]).item() == 1


def test_an_empty_training_split_is_named():
    from datasets import DatasetDict

    tokenizer = train_tokenizer(["a b c", "b c d"], min_frequency=1)
    empty = DatasetDict({"train": Dataset.from_dict({"text": [], "label": []})})
    with pytest.raises(ValueError, match="the 'train' split has no rows"):
        prepare_text_classification(empty, tokenizer)
