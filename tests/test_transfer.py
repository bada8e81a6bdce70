"""transfer(): each remapping checked numerically, incompatible pairs, the Hub round trip, learning on real data."""

import pytest
import torch
from huggingface_hub import HfApi
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from hf_rnn_transfer import (
    RNNConfig,
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTimeSeriesForecasting,
    RNNForTokenClassification,
    RNNModel,
)
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.transfer import TransferReport, average_encoders, extend_tokenizer, transfer

from .conftest import ALICE

SOURCE_TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the dog sat"]
TARGET_TEXTS = ["the kettle is hot", "a dog barks at the kettle", "hot tea"]


def config(**overrides) -> RNNConfig:
    values = dict(vocab_size=30, embedding_size=8, hidden_size=12, num_layers=2, pad_token_id=0, num_labels=2)
    values.update(overrides)
    return RNNConfig(**values)


def status(report: TransferReport, name: str) -> str:
    return next(t.status for t in report.tensors if t.target == name)


def test_copies_the_encoder_and_reinitialises_the_head():
    source = RNNForCausalLM(config())
    target = RNNForSequenceClassification(config(num_labels=3))
    fresh_head = target.classifier.weight.clone()
    model, report = transfer(source, target)
    for name, tensor in source.rnn.state_dict().items():
        assert torch.equal(model.rnn.state_dict()[name], tensor), name
        assert status(report, f"rnn.{name}") == "copied"
    assert torch.equal(model.classifier.weight, fresh_head)
    assert report.by_status("reinitialised") == ["classifier.weight", "classifier.bias"]
    assert model.transfer_report is report
    assert "copied" in str(report) and report.to_dict()["counts"]["copied"] == 9


def test_layer_selection_and_a_deeper_target():
    source = RNNForSequenceClassification(config(num_layers=2))
    target = RNNForSequenceClassification(config(num_layers=3))
    model, report = transfer(source, target, transfer_layers=1, transfer_embeddings=False)
    assert torch.equal(model.rnn.layers[0].weight_hh_l0, source.rnn.layers[0].weight_hh_l0)
    assert not torch.equal(model.rnn.layers[1].weight_hh_l0, source.rnn.layers[1].weight_hh_l0)  # untouched
    assert status(report, "rnn.layers.1.weight_hh_l0") == "reinitialised"
    assert "deeper" in next(t.reason for t in report.tensors if t.target == "rnn.layers.2.weight_hh_l0")
    assert status(report, "rnn.embeddings.weight") == "reinitialised"
    assert not torch.equal(model.rnn.embeddings.weight, source.rnn.embeddings.weight)
    _, report = transfer(source, RNNForSequenceClassification(config(num_layers=3)), transfer_layers=[1])
    assert status(report, "rnn.layers.0.weight_ih_l0") == "reinitialised"
    assert status(report, "rnn.layers.1.weight_ih_l0") == "copied"
    with pytest.raises(ValueError, match=r"transfer_layers \[2\] do not exist in both models"):
        transfer(source, RNNForSequenceClassification(config(num_layers=3)), transfer_layers=[2])


def test_vocabulary_remapping_by_token_string_with_a_tied_decoder():
    source_tok = train_tokenizer(SOURCE_TEXTS, min_frequency=1)
    target_tok = train_tokenizer(TARGET_TEXTS, min_frequency=1)
    source = RNNForCausalLM(
        config(vocab_size=len(source_tok), embedding_size=8, hidden_size=8, tie_word_embeddings=True)
    )
    target = RNNForCausalLM(
        config(vocab_size=len(target_tok), embedding_size=8, hidden_size=8, tie_word_embeddings=True)
    )
    corpus = ["the kettle is hot", "hot hot tea"]
    model, report = transfer(
        source, target, source_tokenizer=source_tok, target_tokenizer=target_tok, transfer_head=True, corpus=corpus
    )
    source_vocab, target_vocab = source_tok.get_vocab(), target_tok.get_vocab()
    mean_row, mean_bias = source.rnn.embeddings.weight.mean(0), source.decoder.bias.mean()
    shared = [t for t in target_vocab if t in source_vocab]
    assert {"the", "a", "dog", "<pad>"} <= set(shared)
    for token, target_id in target_vocab.items():
        row, bias = model.rnn.embeddings.weight[target_id], model.decoder.bias[target_id]
        if token in source_vocab:  # copied row
            assert torch.equal(row, source.rnn.embeddings.weight[source_vocab[token]])
            assert torch.equal(bias, source.decoder.bias[source_vocab[token]])
        else:  # new token: the mean source embedding (ULMFiT)
            torch.testing.assert_close(row, mean_row)
            torch.testing.assert_close(bias, mean_bias)
    assert model.decoder.weight is model.rnn.embeddings.weight  # still tied
    assert status(report, "rnn.embeddings.weight") == "remapped" and status(report, "decoder.bias") == "remapped"
    assert status(report, "decoder.weight") == "skipped"
    vocabulary = report.vocabulary
    assert vocabulary["target_tokens_in_source"] == len(shared)
    assert vocabulary["token_coverage"] == pytest.approx(len(shared) / len(target_vocab))
    ids = [i for text in corpus for i in target_tok(text)["input_ids"]]
    known = sum(target_tok.convert_ids_to_tokens(i) in source_vocab for i in ids)
    assert vocabulary["occurrence_coverage"] == pytest.approx(known / len(ids))  # "the" of 7 occurrences


def test_extend_tokenizer_adds_frequent_new_words_and_keeps_old_ids():
    source_tok = train_tokenizer(SOURCE_TEXTS, min_frequency=1)
    extended, new = extend_tokenizer(source_tok, ["the kettle kettle is hot", "hot kettle"], min_frequency=2)
    assert new == ["kettle", "hot"]
    vocab = extended.get_vocab()
    assert all(vocab[t] == i for t, i in source_tok.get_vocab().items())
    assert extended("the kettle")["input_ids"] == [source_tok.get_vocab()["the"], vocab["kettle"]]
    source = RNNForSequenceClassification(config(vocab_size=len(source_tok)))
    target = RNNForSequenceClassification(config(vocab_size=len(extended)))
    model, report = transfer(source, target, source_tokenizer=source_tok, target_tokenizer=extended)
    assert report.vocabulary["target_tokens_in_source"] == len(source_tok)
    assert torch.equal(model.rnn.embeddings.weight[: len(source_tok)], source.rnn.embeddings.weight)


def test_different_vocabularies_without_tokenizers_fail_with_the_way_out():
    with pytest.raises(ValueError, match="pass source_tokenizer and target_tokenizer"):
        transfer(RNNForCausalLM(config(vocab_size=30)), RNNForSequenceClassification(config(vocab_size=40)))
    model, report = transfer(  # or leave the embedding out
        RNNForCausalLM(config(vocab_size=30)),
        RNNForSequenceClassification(config(vocab_size=40)),
        transfer_embeddings=False,
    )
    assert status(report, "rnn.layers.0.weight_ih_l0") == "copied"


def series_config(**overrides) -> RNNConfig:
    values = dict(input_size=3, embedding_size=8, hidden_size=8, num_layers=1, num_labels=2)
    values.update(overrides)
    return RNNConfig(**values)


def test_input_channels_copied_mapped_by_name_or_reinitialised():
    names = ["ecg", "resp", "spo2"]
    source = RNNForTimeSeriesForecasting(
        series_config(channel_names=names, input_mean=[1.0, 2.0, 3.0], input_std=[1.0, 1.0, 2.0])
    )
    same, report = transfer(source, RNNForSequenceClassification(series_config(channel_names=names)))
    assert torch.equal(same.rnn.input_projection.weight, source.rnn.input_projection.weight)
    assert same.config.input_mean == [1.0, 2.0, 3.0] and "takes the source's" in report.normalisation
    torch.testing.assert_close(same.rnn.input_mean, torch.tensor([1.0, 2.0, 3.0]))

    target = RNNForSequenceClassification(series_config(input_size=2, channel_names=["spo2", "temp"]))
    fresh = target.rnn.input_projection.weight.clone()
    mapped, report = transfer(source, target)
    assert torch.equal(mapped.rnn.input_projection.weight[:, 0], source.rnn.input_projection.weight[:, 2])
    assert torch.equal(mapped.rnn.input_projection.weight[:, 1], fresh[:, 1])
    assert status(report, "rnn.input_projection.weight") == "remapped"
    assert report.input_channels["matched"] == ["spo2"] and report.input_channels["new"] == ["temp"]
    assert "do not cover every target channel" in report.normalisation

    unnamed, report = transfer(
        RNNForTimeSeriesForecasting(series_config()), RNNForSequenceClassification(series_config(input_size=5))
    )
    assert status(report, "rnn.input_projection.weight") == "reinitialised"
    assert status(report, "rnn.layers.0.weight_ih_l0") == "copied"

    own_stats = RNNForSequenceClassification(series_config(input_mean=[0.0] * 3, input_std=[2.0] * 3))
    _, report = transfer(source, own_stats)
    assert own_stats.config.input_mean == [0.0] * 3 and "keeps its own" in report.normalisation


@pytest.mark.parametrize(
    ("target_config", "expected"),
    [
        (config(cell_type="gru"), "LSTM weights into a GRU layer"),
        (config(hidden_size=16), "hidden size 12 into 16"),
        (config(bidirectional=True), "unidirectional into bidirectional"),
        (config(embedding_size=4), "embedding_size 8 into 4"),
    ],
)
def test_incompatible_pairs_fail_early_naming_tensors_and_the_way_out(target_config, expected):
    source = RNNForSequenceClassification(config())
    target = RNNForSequenceClassification(target_config)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError) as err:
        transfer(source, target)
    assert expected in str(err.value) and "rnn.layers.0" in str(err.value) and "Way out" in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # nothing was copied
    if "embedding_size" not in expected:  # excluding the layers makes the pair transferable
        _, report = transfer(source, RNNForSequenceClassification(target_config), transfer_layers=0)
        assert status(report, "rnn.embeddings.weight") == "copied"


def test_bidirectional_source_into_unidirectional_target_is_refused():
    with pytest.raises(ValueError, match="bidirectional into unidirectional"):
        transfer(RNNForTokenClassification(config(bidirectional=True)), RNNForSequenceClassification(config()))
    with pytest.raises(ValueError, match="reads tokens but the target reads continuous input"):
        transfer(RNNForSequenceClassification(config()), RNNForSequenceClassification(series_config()))


def test_head_transfer_only_when_labels_and_shapes_match():
    labels = {"id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}}
    source = RNNForSequenceClassification(config(**labels))
    model, report = transfer(source, RNNForSequenceClassification(config(**labels)), transfer_head=True)
    assert (
        torch.equal(model.classifier.weight, source.classifier.weight) and status(report, "classifier.bias") == "copied"
    )
    other = {"id2label": {0: "bad", 1: "good"}, "label2id": {"bad": 0, "good": 1}}
    with pytest.raises(ValueError, match="label maps differ"):
        transfer(source, RNNForSequenceClassification(config(**other)), transfer_head=True)
    with pytest.raises(ValueError, match="head cannot go into"):
        transfer(source, RNNForTokenClassification(config(**labels)), transfer_head=True)


def test_from_pretrained_one_line_path_gives_the_same_report(tmp_path):
    source = RNNForCausalLM(config())
    source.save_pretrained(tmp_path)
    model = RNNForSequenceClassification.from_pretrained(tmp_path, num_labels=4, pooling="concat", transfer_layers=1)
    assert model.config.num_labels == 4 and model.config.pooling == "concat"
    _, direct = transfer(
        source, RNNForSequenceClassification(config(num_labels=4, pooling="concat")), transfer_layers=1
    )
    assert [(t.target, t.status) for t in model.transfer_report.tensors] == [
        (t.target, t.status) for t in direct.tensors
    ]
    assert model.transfer_report.to_dict()["source"] == "a local checkpoint"  # cards never name local paths
    assert torch.equal(model.rnn.layers[0].weight_ih_l0, source.rnn.layers[0].weight_ih_l0)


def test_transfer_from_a_hub_repo_at_a_revision(hub, tmp_path):
    source_tok = train_tokenizer(SOURCE_TEXTS, min_frequency=1)
    target_tok = train_tokenizer(TARGET_TEXTS, min_frequency=1)
    source = RNNForCausalLM(config(vocab_size=len(source_tok)))
    without_tokenizer = source.push_to_hub("alice/transfer-source", token=ALICE).oid
    source_tok.push_to_hub("alice/transfer-source", token=ALICE)
    sha = HfApi().model_info("alice/transfer-source").sha
    RNNForCausalLM(config(vocab_size=len(source_tok))).push_to_hub("alice/transfer-source", token=ALICE)  # newer
    target = RNNForSequenceClassification(config(vocab_size=len(target_tok)))
    # the tokenizer is pulled from the repo: only the target's is given
    model, report = transfer("alice/transfer-source", target, revision=sha, target_tokenizer=target_tok)
    assert report.source == f"alice/transfer-source@{sha}" and report.to_dict()["source"] == report.source
    assert torch.equal(model.rnn.layers[1].weight_hh_l0, source.rnn.layers[1].weight_hh_l0)
    assert status(report, "rnn.embeddings.weight") == "remapped"
    with pytest.raises(ValueError, match="has no loadable tokenizer .* Pass source_tokenizer="):
        transfer("alice/transfer-source", target, revision=without_tokenizer, target_tokenizer=target_tok)


def test_average_encoders_uniform_and_weighted():
    a, b = RNNForSequenceClassification(config()), RNNForCausalLM(config())
    averaged, report = average_encoders([a, b])
    assert isinstance(averaged, RNNModel)
    torch.testing.assert_close(
        averaged.layers[0].weight_ih_l0, (a.rnn.layers[0].weight_ih_l0 + b.rnn.layers[0].weight_ih_l0) / 2
    )
    averaged, report = average_encoders([a, b], weights=[3, 1])
    torch.testing.assert_close(
        averaged.embeddings.weight, 0.75 * a.rnn.embeddings.weight + 0.25 * b.rnn.embeddings.weight
    )
    assert [s["weight"] for s in report.sources] == [0.75, 0.25] and "averaged" in report.summary
    model, _ = transfer(averaged, RNNForSequenceClassification(config()))
    torch.testing.assert_close(model.rnn.embeddings.weight, averaged.embeddings.weight)
    with pytest.raises(ValueError, match=r"their encoders differ .*layer_sizes: \[12, 12\] vs \[16, 16\]"):
        average_encoders([a, RNNForSequenceClassification(config(hidden_size=16))])


# ----------------------------------------------------------------------------------------------- real data


def _accuracy(model, dataset, tokenizer) -> float:
    collate = DataCollatorWithPadding(tokenizer)
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dataset), 128):
            rows = dataset.select(range(start, min(start + 128, len(dataset))))
            batch = collate([{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in rows])
            logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits
            correct += (logits.argmax(-1).cpu() == torch.tensor(rows["label"])).sum().item()
    return correct / len(dataset)


def _fit(model, dataset, tokenizer, epochs, lr, batch_size, seed, tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        num_train_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        seed=seed,
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer)).train()
    return model


@pytest.mark.slow
def test_transfer_from_books_beats_scratch_on_kitchen_with_100_labels(tmp_path):
    """Source: a GRU classifier on the 2,000 labelled books reviews. Target: kitchen, 100 labels, another tokenizer.
    The transferred model and the same model from scratch get the same few steps; transfer must win on every seed."""
    books = load_amazon_reviews("books").shuffle(seed=0)
    kitchen = load_amazon_reviews("kitchen").shuffle(seed=0)
    source_tok = train_tokenizer(books["text"], vocab_size=8000, model_max_length=128)
    target_tok = train_tokenizer(kitchen["text"][500:], vocab_size=8000, model_max_length=128)  # unlabelled pool

    def encode(ds, tok):
        return ds.map(
            lambda b: tok(b["text"], truncation=True), batched=True, remove_columns=["text", "title", "rating"]
        )

    shape = dict(cell_type="gru", embedding_size=64, hidden_size=64, num_layers=1, pooling="concat", pad_token_id=0)
    set_seed(0)
    source = RNNForSequenceClassification(RNNConfig(vocab_size=len(source_tok), **shape))
    _fit(source, encode(books, source_tok), source_tok, epochs=2, lr=3e-3, batch_size=32, seed=0, tmp_path=tmp_path)
    train, test = encode(kitchen.select(range(500, 600)), target_tok), encode(kitchen.select(range(500)), target_tok)
    results = []
    for seed in (0, 1):
        set_seed(seed)
        scratch = RNNForSequenceClassification(RNNConfig(vocab_size=len(target_tok), **shape))
        set_seed(seed)
        target = RNNForSequenceClassification(RNNConfig(vocab_size=len(target_tok), **shape))
        transferred, report = transfer(source, target, source_tokenizer=source_tok, target_tokenizer=target_tok)
        for model in (scratch, transferred):
            _fit(model, train, target_tok, epochs=5, lr=3e-3, batch_size=20, seed=seed, tmp_path=tmp_path)
        results.append((_accuracy(scratch, test, target_tok), _accuracy(transferred, test, target_tok)))
    assert report.vocabulary["token_coverage"] > 0.5
    for scratch_acc, transfer_acc in results:
        assert transfer_acc > scratch_acc + 0.02, results


def test_multitask_source_pretraining_then_transfer(tmp_path):
    """One encoder, one head per Amazon domain, batches mixing the domains; saved as one source checkpoint."""
    from hf_rnn_transfer import RNNForMultiTaskSequenceClassification
    from hf_rnn_transfer.data import build_multitask_dataset
    from hf_rnn_transfer.hub import CardContent, build_model_card

    domains = {d: load_amazon_reviews(d).shuffle(seed=0).select(range(200)) for d in ("books", "dvd", "electronics")}
    tokenizer = train_tokenizer(
        [t for ds in domains.values() for t in ds["text"]], vocab_size=3000, model_max_length=64
    )
    mixed, task_labels = build_multitask_dataset(domains)
    assert task_labels == {d: ["negative", "positive"] for d in domains}
    assert set(mixed["task_ids"][:60]) == {0, 1, 2}  # interleaved
    mixed = mixed.map(
        lambda b: tokenizer(b["text"], truncation=True), batched=True, remove_columns=["text", "title", "rating"]
    )
    model = RNNForMultiTaskSequenceClassification(
        RNNConfig(
            vocab_size=len(tokenizer),
            embedding_size=16,
            hidden_size=16,
            num_layers=1,
            pad_token_id=0,
            task_labels=task_labels,
        )
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "t"),
        max_steps=20,
        per_device_train_batch_size=16,
        learning_rate=5e-3,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=mixed, data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert all(0 < loss < 5 for loss in losses)
    batch = DataCollatorWithPadding(tokenizer)(
        [{k: mixed[i][k] for k in ("input_ids", "attention_mask", "task_ids", "labels")} for i in range(4)]
    )
    batch = {k: v.to(model.device) for k, v in batch.items()}
    with torch.no_grad():
        out = model.eval()(**batch)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, batch["labels"]))
    model.save_pretrained(tmp_path / "multi")
    reloaded = RNNForMultiTaskSequenceClassification.from_pretrained(tmp_path / "multi")
    assert list(reloaded.task_heads) == ["books", "dvd", "electronics"]
    card = build_model_card(
        reloaded,
        CardContent(repo_id="me/multi", objective="multi-task sentiment", data_description="three Amazon domains"),
    )
    assert "books: negative, positive; dvd: negative, positive; electronics: negative, positive" in card.text
    target, report = transfer(
        tmp_path / "multi",
        RNNForSequenceClassification(
            RNNConfig(vocab_size=len(tokenizer), embedding_size=16, hidden_size=16, num_layers=1, pad_token_id=0)
        ),
    )
    assert torch.equal(target.rnn.layers[0].weight_ih_l0.cpu(), model.rnn.layers[0].weight_ih_l0.cpu())
    assert report.by_status("reinitialised") == ["classifier.weight", "classifier.bias"]
    with pytest.raises(ValueError, match="task_ids"):
        model(input_ids=batch["input_ids"])
