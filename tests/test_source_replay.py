"""Source replay in TransferTrainer: a budget that shows one class does not erase what the source's labels taught,
the replayed loss is logged and reported, and the refusals (trainer and command line)."""

import json

import numpy as np
import pytest
from datasets import Dataset
from transformers import default_data_collator, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments

from .test_domain_adversarial import SHAPE, accuracy, domain_rows


def fine_tune(source_model, tmp_path, weight: float, replay=None):
    """The source model fine-tuned on a budget of negatives only (the marker never occurs), with or without replay."""
    budget = domain_rows(64, 5, 4).filter(lambda row: row["labels"] == 0)
    set_seed(0)
    args = TransferTrainingArguments.for_experiment(
        str(tmp_path),
        num_train_epochs=12,
        learning_rate=1e-2,
        per_device_train_batch_size=8,
        source_replay_weight=weight,
        logging_strategy="epoch",
    )
    model = RNNForSequenceClassification.from_pretrained(source_model)
    trainer = TransferTrainer(
        model, args, train_dataset=budget, data_collator=default_data_collator, replay_dataset=replay
    )
    trainer.train()
    return model, trainer


@pytest.fixture(scope="module")
def source_model(tmp_path_factory):
    """A classifier trained on the marker task (does token 3 occur?), saved."""
    folder = tmp_path_factory.mktemp("source")
    set_seed(0)
    model = RNNForSequenceClassification(RNNConfig(**SHAPE, num_labels=2))
    args = TransferTrainingArguments.for_experiment(
        str(folder / "run"), num_train_epochs=8, learning_rate=5e-3, per_device_train_batch_size=16
    )
    TransferTrainer(model, args, train_dataset=domain_rows(320, 0, 4), data_collator=default_data_collator).train()
    assert accuracy(model, domain_rows(200, 2, 4)) > 0.9
    model.save_pretrained(folder / "model")
    return folder / "model"


def test_replay_keeps_what_the_source_taught(source_model, tmp_path):
    """Fine-tuned on negatives alone, the model forgets the positives; replaying the source's labelled rows keeps
    it accurate on both classes."""
    test = domain_rows(200, 2, 4)
    plain, _ = fine_tune(source_model, tmp_path / "plain", 0.0)
    replayed, trainer = fine_tune(source_model, tmp_path / "replay", 1.0, domain_rows(320, 0, 4))
    assert accuracy(replayed, test) > 0.9
    assert accuracy(replayed, test) > accuracy(plain, test) + 0.25  # 0.925 vs 0.595
    logged = [e for e in trainer.state.log_history if "replay_loss" in e]
    assert len(logged) == 12 and all(np.isfinite(e["replay_loss"]) for e in logged)
    assert trainer.transfer_recipe()["source replay"].endswith("its loss weighted 1 (320 source rows)")


def test_replay_refuses_what_it_cannot_run(source_model, tmp_path):
    rows = domain_rows(16, 0, 4)
    model = RNNForSequenceClassification.from_pretrained(source_model)
    args = lambda w: TransferTrainingArguments.for_experiment(str(tmp_path), source_replay_weight=w)  # noqa: E731
    with pytest.raises(ValueError, match=r"needs the source's labelled rows: TransferTrainer\(replay_dataset"):
        TransferTrainer(model, args(1.0), train_dataset=rows, data_collator=default_data_collator)
    with pytest.raises(ValueError, match="replay_dataset is read only by source replay"):
        TransferTrainer(model, args(0.0), train_dataset=rows, replay_dataset=rows)
    with pytest.raises(ValueError, match="source_replay_weight must be >= 0"):
        args(-1.0)
    unlabelled = Dataset.from_dict({"input_ids": [[4, 5]]})
    with pytest.raises(
        ValueError, match=r"replay_dataset needs the columns \['input_ids', 'labels'\] .* it lacks \['labels'\]"
    ):
        TransferTrainer(model, args(1.0), train_dataset=rows, replay_dataset=unlabelled)


def test_finetune_replays_a_source_file_from_the_command_line(tmp_path, capsys):
    """--replay_file + --source_replay_weight: the recipe says so; the file without the weight, the weight without
    the file, a label the target lacks and a missing file are refused before any training."""
    from hf_rnn_transfer.cli import main
    from hf_rnn_transfer.data import load_amazon_reviews

    from .conftest import tiny_text_source, write_jsonl

    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    tiny_text_source(tmp_path / "source", reviews["text"][:200])
    write_jsonl(reviews.select(range(32)), tmp_path / "train.jsonl")
    write_jsonl(load_amazon_reviews("books").shuffle(seed=0).select(range(48)), tmp_path / "books.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine", "label": 2}\n')
    argv = ["finetune", "--source", str(tmp_path / "source"), "--train_file", str(tmp_path / "train.jsonl")]
    argv += ["--report_to", "none", "--select_folds", "0", "--max_length", "32", "--num_train_epochs", "1"]
    replay = ["--replay_file", str(tmp_path / "books.jsonl"), "--source_replay_weight", "0.5"]
    assert main([*argv, "--output_dir", str(tmp_path / "ft"), *replay]) == 0
    out = capsys.readouterr().out
    recipe = json.loads(out[out.index("{\n") :])["recipe"]
    assert recipe["source replay"].endswith("its loss weighted 0.5 (48 source rows)")
    for extra, message in [
        (["--replay_file", str(tmp_path / "books.jsonl")], "--replay_file is read only by source replay"),
        (["--source_replay_weight", "1"], "--source_replay_weight needs the source's labelled texts"),
        (["--replay_file", str(tmp_path / "bad.jsonl"), "--source_replay_weight", "1"], "label 2 is not one of"),
        (["--replay_file", str(tmp_path / "nope.jsonl"), "--source_replay_weight", "1"], "does not exist"),
    ]:
        assert main([*argv, "--output_dir", str(tmp_path / "other"), *extra]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "other" / "model.safetensors").exists()


def test_commands_that_do_not_read_the_fine_tuning_data_options_refuse_them(tmp_path, capsys):
    """compare, auto, rank-sources and pretrain refuse --replay_file / --domain_file and their weights by name
    (pretrain, rank-sources and auto read --domain_file) instead of running as if they had not been given."""
    from hf_rnn_transfer.cli import main

    (tmp_path / "train.jsonl").write_text('{"text": "good", "label": 1}\n')
    data = ["--train_file", str(tmp_path / "train.jsonl")]
    out = ["--output_dir", str(tmp_path / "out")]
    for argv, message in [
        (["compare", "--source", "x", *out, "--replay_file", "r.jsonl"], "compare does not read --replay_file"),
        (
            ["auto", "--candidates", "x", *out, "--source_replay_weight", "1"],
            "auto does not read --source_replay_weight",
        ),
        (["rank-sources", "--candidates", "x", "--replay_file", "r.jsonl"], "rank-sources does not read --replay_file"),
        (["compare", "--source", "x", *out, "--domain_file", "d.txt"], "compare does not read --domain_file"),
        (["pretrain", *out, "--replay_file", "r.jsonl"], "pretrain does not read --replay_file"),
    ]:
        assert main([*argv, *data]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
