"""Translation pairs and dialogues to seq2seq rows, their errors, and the generation metrics."""

import pytest
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq

from hf_rnn_transfer.data import dialogue_pairs, prepare_dialogue, prepare_translation, train_tokenizer
from hf_rnn_transfer.evaluation import generation_metrics

PAIRS = [{"de": "ein hund läuft", "en": "a dog runs"}, {"de": "zwei katzen", "en": "two cats sleep here"}]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([p[side] for p in PAIRS for side in ("de", "en")], min_frequency=1)


def test_pairs_become_source_ids_and_labels_ending_with_eos(tokenizer):
    rows = prepare_translation(Dataset.from_list(PAIRS), tokenizer, source_column="de", target_column="en")
    assert rows.column_names == ["input_ids", "attention_mask", "labels", "length"]
    assert tokenizer.decode(rows[0]["input_ids"]) == "ein hund läuft"
    assert rows[1]["labels"][-1] == tokenizer.eos_token_id and len(rows[1]["labels"]) == 5
    batch = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)([rows[0], rows[1]])
    assert batch["labels"].tolist()[0][-1] == -100 and batch["input_ids"].shape == (2, 3)
    cut = prepare_translation(Dataset.from_list(PAIRS), tokenizer, "de", "en", max_target_length=3, truncation=True)
    assert len(cut[1]["labels"]) == 3 and cut[1]["labels"][-1] == tokenizer.eos_token_id


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([{"de": "x"}], {}, "missing column(s) ['en']"),
        ([{"de": "ein hund", "en": "  "}], {}, "row 0: empty or missing target sentence in column 'en'"),
        ([{"de": None, "en": "a dog"}], {}, "row 0: empty or missing source sentence"),
        (PAIRS, {"max_source_length": 2}, "row 0: the source has 3 tokens, more than max_source_length=2"),
    ],
)
def test_bad_pairs_are_named(tokenizer, rows, kwargs, message):
    with pytest.raises(ValueError) as err:
        prepare_translation(Dataset.from_list(rows), tokenizer, "de", "en", **kwargs)
    assert message in str(err.value)


def test_dialogues_become_history_response_pairs(tokenizer):
    dialogues = Dataset.from_list([{"turns": ["hi", "hello there", "how are you", "fine"], "topic": 6}])
    pairs = dialogue_pairs(dialogues, history=2, turn_separator=" | ")
    assert pairs["context"] == ["hi", "hi | hello there", "hello there | how are you"]
    assert pairs["response"] == ["hello there", "how are you", "fine"] and pairs["topic"] == [6, 6, 6]
    rows = prepare_dialogue(dialogues.remove_columns("topic"), tokenizer, history=1)
    assert len(rows) == 3 and rows[0]["labels"][-1] == tokenizer.eos_token_id
    with pytest.raises(ValueError, match="history must be at least 1"):
        dialogue_pairs(dialogues, history=0)
    with pytest.raises(ValueError, match="must be a list of turn texts"):
        dialogue_pairs(Dataset.from_list([{"turns": "just a string"}]))


def test_generation_metrics():
    perfect = generation_metrics(["a dog runs in the park"], ["a dog runs in the park"])
    assert perfect["bleu"] == pytest.approx(100) and perfect["chrf"] == pytest.approx(100)
    assert perfect["distinct_1"] == 1.0 and perfect["distinct_2"] == 1.0
    repetitive = generation_metrics(["yes yes yes yes"], ["no"])
    assert (
        repetitive["bleu"] == 0
        and repetitive["distinct_1"] == 0.25
        and repetitive["distinct_2"] == pytest.approx(1 / 3)
    )
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        generation_metrics(["a", "b"], ["a"])
