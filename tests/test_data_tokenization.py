import pytest
from transformers import AutoTokenizer

from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer


@pytest.fixture(scope="module")
def kitchen_texts():
    return load_amazon_reviews("kitchen")["text"][:400]


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_trained_tokenizer_round_trips_through_auto_tokenizer(kind, kitchen_texts, tmp_path):
    tokenizer = train_tokenizer(kitchen_texts, kind=kind, vocab_size=1500, min_frequency=2)
    assert tokenizer.pad_token_id == 0 and tokenizer.unk_token == "<unk>"
    assert 100 < len(tokenizer) <= 1500
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "The Kettle works GREAT, really!"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert set(tokenizer(text)) == {"input_ids", "attention_mask"}
    assert loaded.decode(loaded(text)["input_ids"]).strip() == "the kettle works great, really!"


def test_word_tokenizer_maps_rare_words_to_unk_and_pads_right(kitchen_texts):
    tokenizer = train_tokenizer(kitchen_texts, vocab_size=5000, min_frequency=3)
    ids = tokenizer("zyzzyva kettle")["input_ids"]
    assert ids[0] == tokenizer.unk_token_id and ids[1] != tokenizer.unk_token_id
    batch = tokenizer(["kettle", "a good kettle"], padding=True)
    assert batch["attention_mask"][0] == [1, 0, 0] and batch["input_ids"][0][1:] == [0, 0]


def test_bad_tokenizer_input_is_rejected():
    with pytest.raises(ValueError, match="tokenizer kind must be one of"):
        train_tokenizer(["a"], kind="sentencepiece")
    with pytest.raises(ValueError, match="no non-empty text"):
        train_tokenizer(["", "   "])
    with pytest.raises(ValueError, match="must be strings"):
        train_tokenizer(["fine", None])
    with pytest.raises(ValueError, match="vocab_size must exceed"):
        train_tokenizer(["a"], vocab_size=3)
