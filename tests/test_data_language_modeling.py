"""Language-model streams: contiguous streams across batches, variable BPTT, streaming corpora, carried state.

The corpus is the review text that ships with the package, so these run on any clone."""

import itertools

import pytest
from datasets import load_dataset

from hf_rnn_transfer import RNNConfig, RNNForCausalLM
from hf_rnn_transfer.data import LanguageModelStream, load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """1,500 book reviews (~250k words): the texts, a tokenizer, and the same texts as a one-line-per-review file."""
    texts = load_amazon_reviews("books").shuffle(seed=0)["text"][:1500]
    path = tmp_path_factory.mktemp("corpus") / "reviews.txt"
    path.write_text("\n".join(texts) + "\n")
    return texts, train_tokenizer(texts, vocab_size=5000), path


def test_streams_continue_across_batches(corpus):
    texts, tokenizer, _ = corpus
    stream = LanguageModelStream(texts, tokenizer, batch_size=4, bptt=20, variable_bptt=False)
    rows = list(itertools.islice(iter(stream), 12))  # 3 steps of 4 streams
    for step in range(2):
        for s in range(4):
            now, after = rows[4 * step + s], rows[4 * (step + 1) + s]
            assert len(now["input_ids"]) == 20
            assert now["input_ids"][1:].tolist() == now["shift_labels"][:-1].tolist()  # the next token
            assert now["shift_labels"][-1] == after["input_ids"][0]  # the stream goes on in the next batch
    assert [r["stream_start"] for r in rows] == [1] * 4 + [0] * 8
    all_ids = [i for t in texts[:50] for i in tokenizer(t, add_special_tokens=False)["input_ids"]]
    assert set(rows[0]["input_ids"].tolist()) <= set(all_ids) | {tokenizer.eos_token_id}


def test_variable_bptt_lengths_vary_but_are_shared_within_a_step(corpus):
    texts, tokenizer, _ = corpus
    stream = LanguageModelStream(texts, tokenizer, batch_size=3, bptt=30, seed=1)
    rows = list(itertools.islice(iter(stream), 3 * 40))
    lengths = [len(r["input_ids"]) for r in rows]
    steps = [lengths[i : i + 3] for i in range(0, len(lengths), 3)]
    assert all(len(set(s)) == 1 for s in steps) and len({s[0] for s in steps}) > 5
    assert all(5 <= s[0] <= 60 for s in steps)


def test_a_streaming_corpus_trains_with_carried_state(corpus, tmp_path):
    _, tokenizer, path = corpus
    streamed = load_dataset("text", data_files=str(path), split="train", streaming=True)
    stream = LanguageModelStream(streamed, tokenizer, batch_size=8, bptt=30)
    model = RNNForCausalLM(
        RNNConfig(
            vocab_size=len(tokenizer),
            embedding_size=32,
            hidden_size=32,
            num_layers=2,
            tie_word_embeddings=True,
            pad_token_id=0,
        )
    )
    args = TransferTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=40,
        per_device_train_batch_size=8,
        learning_rate=5e-3,
        carry_recurrent_state=True,
        report_to="none",
        logging_steps=5,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = TransferTrainer(model=model, args=args, train_dataset=stream)
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert losses[-1] < losses[0] - 1.0, losses
    state = trainer._carried_state
    assert len(state) == 2 and state[0][0].shape == (1, 8, 32) and not state[0][0].requires_grad


def test_bad_stream_settings():
    tokenizer = train_tokenizer(["a b c"], min_frequency=1)
    with pytest.raises(ValueError, match="bptt > 1"):
        LanguageModelStream(["a b"], tokenizer, batch_size=2, bptt=1)
    with pytest.raises(ValueError, match="must be texts"):
        list(LanguageModelStream([3, 4], tokenizer, batch_size=1, bptt=2))


@pytest.mark.parametrize("texts", [[], ["", "  "], ["one two"]])
def test_a_corpus_too_small_for_one_step_is_named(texts):
    from datasets import Dataset

    tokenizer = train_tokenizer(["one two three four"], min_frequency=1)
    stream = LanguageModelStream(Dataset.from_dict({"text": texts}), tokenizer, batch_size=2, bptt=8)
    with pytest.raises(ValueError, match="too few tokens for one step of 2 streams"):
        next(iter(stream))
