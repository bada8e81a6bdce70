"""`hf-rnn-transfer pretrain` from the shell and from Python: language-model and classifier sources from text,
forecasting sources from a UCR folder, continuing a language model on new texts, the adaptive softmax, and a
classifier source trained over two processes under torchrun."""

import sys

import numpy as np
import pytest
import torch

from hf_rnn_transfer import RNNConfig
from hf_rnn_transfer.data import load_amazon_reviews

from .conftest import free_port, launcher_env, run_cli, run_command, torchrun, write_jsonl


def books_corpus(tmp_path):
    """The shipped books reviews as a plain-text corpus, one review per line (a general-text stand-in)."""
    path = tmp_path / "books.txt"
    path.write_text("\n".join(load_amazon_reviews("books")["text"]) + "\n")
    return path


@pytest.mark.slow
def test_pretrain_language_model_and_classifier_sources(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cli = [sys.executable, "-m", "hf_rnn_transfer", "pretrain"]
    small = [
        "--embedding_size",
        "16",
        "--hidden_size",
        "16",
        "--num_layers",
        "1",
        "--vocab_size",
        "2000",
        "--report_to",
        "none",
        "--logging_steps",
        "5",
    ]
    lm = run_command(
        [
            *cli,
            "--objective",
            "causal_lm",
            "--train_file",
            str(books_corpus(tmp_path)),
            "--max_train_examples",
            "2000",
            "--max_steps",
            "20",
            "--per_device_train_batch_size",
            "8",
            "--bptt",
            "20",
            "--output_dir",
            str(tmp_path / "lm"),
            *small,
        ]
    )
    assert lm.returncode == 0, lm.stderr[-3000:]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "lm")
    assert model.config.tie_word_embeddings and AutoTokenizer.from_pretrained(tmp_path / "lm").pad_token == "<pad>"
    reviews = load_amazon_reviews("books").shuffle(seed=0).select(range(100))
    write_jsonl(reviews, tmp_path / "books.jsonl")
    clf = run_cli(
        [
            "pretrain",
            "--objective",
            "classification",
            "--train_file",
            str(tmp_path / "books.jsonl"),
            "--num_train_epochs",
            "1",
            "--output_dir",
            str(tmp_path / "clf"),
            "--push_to",
            "me/books-source",
            "--hub_root",
            str(tmp_path / "hub"),
            *small,
        ],
        capsys,
    )
    assert clf.returncode == 0, clf.stderr[-3000:]
    assert "me/books-source@" in clf.stdout
    bad = run_cli(
        [
            "pretrain",
            "--objective",
            "causal_lm",
            "--train_file",
            str(tmp_path / "books.jsonl"),
            "--output_dir",
            str(tmp_path / "x"),
        ],
        capsys,
    )
    assert bad.returncode == 2 and "set --max_steps" in bad.stderr


@pytest.mark.slow
def test_pretrain_under_torchrun_trains_one_source_over_two_processes_and_pushes_once(tmp_path):
    from transformers import AutoModelForSequenceClassification

    reviews = load_amazon_reviews("books").shuffle(seed=0)
    write_jsonl(reviews.select(range(64)), tmp_path / "train.jsonl")
    write_jsonl(reviews.select(range(1000, 1064)), tmp_path / "test.jsonl")
    launched = run_command(
        [
            *torchrun(free_port()), "-m", "hf_rnn_transfer", "pretrain", "--objective", "classification",
            "--train_file", tmp_path / "train.jsonl", "--test_file", tmp_path / "test.jsonl",
            "--output_dir", tmp_path / "src", "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
            "--embedding_size", "16", "--hidden_size", "16", "--num_layers", "1", "--vocab_size", "1000",
            "--report_to", "none", "--push_to", "me/books-ddp", "--hub_root", tmp_path / "hub",
        ],
        env=launcher_env(),
    )  # fmt: skip
    errors = "\n".join(line for line in launched.stderr.splitlines() if ": error: " in line)
    assert launched.returncode == 0, errors + "\n" + launched.stderr[-3000:]
    # the first process alone reports, scores the test split once and pushes once
    assert launched.stdout.count("'objective'") == 1 and launched.stdout.count("me/books-ddp@") == 1
    assert "'test_accuracy'" in launched.stdout
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "src")
    assert model.config.num_labels == 2 and model.config.vocab_size <= 1000
    commits = list((tmp_path / "hub" / "models" / "me" / "books-ddp" / "commits").glob("*.json"))
    assert len(commits) == 2  # the repository's initial commit and the one push


@pytest.mark.slow
@pytest.mark.needs_data
def test_forecasting_source_from_a_ucr_folder_transfers_to_a_related_series_target(tmp_path, capsys):
    """pretrain --objective forecasting on unlabelled ECG series -> compare / finetune on another ECG set."""
    from hf_rnn_transfer import RNNForTimeSeriesForecasting
    from hf_rnn_transfer.commands import SourceArguments, TargetDataArguments, run_finetune
    from hf_rnn_transfer.data import load_ucr, prepare_series, series_statistics
    from hf_rnn_transfer.trainer import TransferTrainingArguments

    from .conftest import SHARED_DATA

    ucr, hub_root = SHARED_DATA / "ucr", str(tmp_path / "hub")
    cli = [sys.executable, "-m", "hf_rnn_transfer"]
    common = ["--report_to", "none", "--per_device_train_batch_size", "16"]
    pretrained = run_command(
        [
            *cli,
            "pretrain",
            "--objective",
            "forecasting",
            "--dataset",
            str(ucr / "ECGFiveDays"),
            "--splits",
            "train",
            "test",
            "--cell_type",
            "gru",
            "--embedding_size",
            "8",
            "--hidden_size",
            "8",
            "--num_layers",
            "1",
            "--context_length",
            "32",
            "--prediction_length",
            "4",
            "--window_stride",
            "32",
            "--max_steps",
            "20",
            "--output_dir",
            str(tmp_path / "forecaster"),
            "--push_to",
            "me/ecg-forecaster",
            "--hub_root",
            hub_root,
            *common,
        ]
    )
    assert pretrained.returncode == 0, pretrained.stderr[-3000:]
    # the unlabelled test split of the *source* set counts: 884 series of 136 steps, 4 windows each
    assert "the next 4 steps from 32-step windows (3536 windows of 884 series)" in pretrained.stdout
    assert "me/ecg-forecaster@" in pretrained.stdout
    forecaster = RNNForTimeSeriesForecasting.from_pretrained(tmp_path / "forecaster")
    assert forecaster.config.prediction_length == 4 and len(forecaster.config.input_mean) == 1

    compared = run_cli(
        [
            "compare",
            "--source",
            "me/ecg-forecaster",
            "--hub_root",
            hub_root,
            "--dataset",
            str(ucr / "TwoLeadECG"),
            "--budgets",
            "10",
            "all",
            "--seeds",
            "0",
            "1",
            "--num_train_epochs",
            "2",
            "--scratch_epochs",
            "2",
            "--discriminative_lr",
            "--output_dir",
            str(tmp_path / "cmp"),
            "--report",
            str(tmp_path / "cmp" / "report.md"),
            "--select_folds",
            "0",
            *common,
        ],
        capsys,
    )
    assert compared.returncode == 0, compared.stderr[-3000:]
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "| 10 |" in report and "| all (23) |" in report and "TF-IDF" not in report

    # finetune: the classifier takes the encoder, a new head, and the target's own input statistics
    results = run_finetune(
        SourceArguments(source=str(tmp_path / "forecaster")),
        TargetDataArguments(dataset=str(ucr / "TwoLeadECG")),
        TransferTrainingArguments(str(tmp_path / "ft"), max_steps=3, report_to="none", save_strategy="no"),
    )
    assert 0.0 <= results["test_accuracy"] <= 1.0 and "copied" in results["transfer"]
    target_series, _ = prepare_series(load_ucr("TwoLeadECG", root=ucr))
    saved = RNNConfig.from_pretrained(tmp_path / "ft")
    np.testing.assert_allclose(saved.input_mean, series_statistics(target_series["train"])[0], rtol=1e-6)
    assert saved.input_mean != forecaster.config.input_mean

    for argv, message in (
        (["compare", "--source", str(tmp_path / "forecaster"), "--dataset", str(ucr / "TwoLeadECG"),
          "--budgets", "ten", "--output_dir", str(tmp_path / "x")], "positive integers or 'all'"),
        (["pretrain", "--objective", "forecasting", "--dataset", str(ucr / "TwoLeadECG"), "--splits", "validation",
          "--output_dir", str(tmp_path / "x")], "--splits ['validation'] not in the data"),
    ):  # fmt: skip
        bad = run_cli(argv, capsys)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-2000:]


def test_series_target_with_other_channels_than_the_source_is_refused(tmp_path):
    from datasets import Dataset, DatasetDict

    from hf_rnn_transfer.commands import TargetDataArguments, encode_target

    two_channels = Dataset.from_dict({"values": [[[0.0, 1.0], [1.0, 2.0]]] * 4, "label": [0, 1, 0, 1]})
    config = RNNConfig(input_size=1, embedding_size=4, hidden_size=4, num_layers=1)
    with pytest.raises(ValueError, match="1 channel.*holds 2"):
        encode_target(DatasetDict(train=two_channels), config, None, TargetDataArguments())


def test_pretrain_init_from_continues_a_language_model_with_the_new_texts_vocabulary(tmp_path):
    """ULMFiT's second stage: the general LM continues on target text; rows move by token string."""
    from transformers import AutoTokenizer

    from hf_rnn_transfer import RNNForCausalLM
    from hf_rnn_transfer.commands import PretrainArguments, TargetDataArguments, run_pretrain
    from hf_rnn_transfer.trainer import TransferTrainingArguments

    def arguments(output_dir, learning_rate):
        return TransferTrainingArguments(
            str(output_dir),
            max_steps=2,
            learning_rate=learning_rate,
            per_device_train_batch_size=4,
            report_to="none",
            save_strategy="no",
        )

    small = dict(embedding_size=16, hidden_size=16, num_layers=1, vocab_size=800, bptt=12)
    general = TargetDataArguments(train_file=str(books_corpus(tmp_path)), max_train_examples=400)
    run_pretrain(PretrainArguments(**small), general, arguments(tmp_path / "general", 1e-3))
    write_jsonl(load_amazon_reviews("kitchen").select(range(60)), tmp_path / "kitchen.jsonl")
    results = run_pretrain(
        PretrainArguments(
            init_from=str(tmp_path / "general"), vocab_size=800, bptt=12, hidden_size=999, embedding_dropout=0.3
        ),
        TargetDataArguments(train_file=str(tmp_path / "kitchen.jsonl")),
        arguments(tmp_path / "kitchen", 0.0),  # no update: what is saved is what was transferred
    )
    assert results["objective"].endswith(f"continued from {tmp_path / 'general'}")
    source = RNNForCausalLM.from_pretrained(tmp_path / "general")
    target = RNNForCausalLM.from_pretrained(tmp_path / "kitchen")
    source_vocab = AutoTokenizer.from_pretrained(tmp_path / "general").get_vocab()
    target_vocab = AutoTokenizer.from_pretrained(tmp_path / "kitchen").get_vocab()
    assert target.config.hidden_size == 16  # the shape comes from the source, not the flags
    assert target.config.embedding_dropout == 0.3 and source.config.embedding_dropout == 0.0  # dropouts from the flags
    assert set(target_vocab) != set(source_vocab)
    shared = [t for t in ("the", "and", "it") if t in source_vocab and t in target_vocab]
    assert shared
    for word in shared:
        torch.testing.assert_close(
            target.rnn.embeddings.weight[target_vocab[word]], source.rnn.embeddings.weight[source_vocab[word]]
        )
        torch.testing.assert_close(target.decoder.bias[target_vocab[word]], source.decoder.bias[source_vocab[word]])
    new = next(t for t in target_vocab if t not in source_vocab)
    torch.testing.assert_close(target.rnn.embeddings.weight[target_vocab[new]], source.rnn.embeddings.weight.mean(0))
    torch.testing.assert_close(target.rnn.layers[0].weight_hh_l0, source.rnn.layers[0].weight_hh_l0)


def test_pretrain_language_model_with_an_adaptive_softmax_learns_and_transfers(tmp_path):
    from hf_rnn_transfer import RNNForCausalLM
    from hf_rnn_transfer.commands import PretrainArguments, TargetDataArguments, pretrain
    from hf_rnn_transfer.trainer import TransferTrainingArguments

    training = TransferTrainingArguments(
        str(tmp_path / "lm"), max_steps=40, learning_rate=5e-3, per_device_train_batch_size=8, report_to="none",
        save_strategy="no", logging_steps=10, disable_tqdm=True,
    )  # fmt: skip
    recipe = PretrainArguments(
        embedding_size=32, hidden_size=32, num_layers=1, vocab_size=3000, bptt=30, adaptive_softmax_cutoffs=[300, 1200]
    )
    run = pretrain(
        recipe, TargetDataArguments(train_file=str(books_corpus(tmp_path)), max_train_examples=600), training
    )
    losses = [entry["loss"] for entry in run.trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0] - 0.5, losses  # it learns the stream
    loaded = RNNForCausalLM.from_pretrained(tmp_path / "lm")
    assert loaded.config.adaptive_softmax_cutoffs == [300, 1200] and not loaded.config.tie_word_embeddings
    assert isinstance(loaded.decoder, torch.nn.AdaptiveLogSoftmaxWithLoss)
    for bad in (dict(objective="classification"), dict(init_from=str(tmp_path / "lm"))):
        with pytest.raises(ValueError, match="--adaptive_softmax_cutoffs shapes a new language model's decoder"):
            pretrain(
                PretrainArguments(adaptive_softmax_cutoffs=[300], **bad),
                TargetDataArguments(train_file=str(books_corpus(tmp_path))),
                training,
            )
