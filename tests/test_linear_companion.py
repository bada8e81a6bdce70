"""`commands/linear_companion.py`: the linear model on the same labels as transfer, as `compare` rows and as the
companion `finetune` saves, pushes and chooses a share of the average for; the pipeline that averages, from the Hub."""

import json
import re

import numpy as np
import pytest
import torch

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews
from hf_rnn_transfer.hub import LocalHub, hub_endpoint

from .conftest import run_child, run_cli, tiny_text_source, write_jsonl
from .test_pipeline_linear import REMOTE


def _linear_source_files(folder, test_rows: int) -> None:
    """A tiny text source, 40 kitchen training reviews, `test_rows` test ones, 300 books reviews as the linear
    model's source labels, and a file whose label the target lacks (bad.jsonl)."""
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    tiny_text_source(folder / "source", reviews["text"][:200])
    write_jsonl(reviews.select(range(40)), folder / "train.jsonl")
    write_jsonl(reviews.select(range(100, 100 + test_rows)), folder / "test.jsonl")
    write_jsonl(load_amazon_reviews("books").shuffle(seed=0).select(range(300)), folder / "books.jsonl")
    (folder / "bad.jsonl").write_text('{"text": "fine", "label": 2}\n')


def test_compare_with_the_source_labels_for_the_linear_model(tmp_path, capsys):
    """--linear_source_file: the report holds the linear model on the source + target labels and its average with
    transfer; a source label the target does not have, a missing file and a series target are refused by name."""
    from hf_rnn_transfer.cli import main

    _linear_source_files(tmp_path, test_rows=40)
    common = ["compare", "--source", str(tmp_path / "source"), "--train_file", str(tmp_path / "train.jsonl")]
    common += ["--test_file", str(tmp_path / "test.jsonl"), "--output_dir", str(tmp_path / "cmp"), "--report_to"]
    common += ["none", "--budgets", "10", "--seeds", "0", "1", "--num_train_epochs", "1", "--select_folds", "0"]
    report = tmp_path / "report.md"
    argv = [*common, "--scratch_epochs", "1", "--report", str(report), "--linear_source_file"]
    assert main([*argv, str(tmp_path / "books.jsonl"), "--linear_target_weight", "5"]) == 0
    text = report.read_text()
    assert "| TF-IDF + LR, source + target labels | transfer + that linear model |" in text
    assert "linear model on the source labels: 0." in text and "weighted x5" in text
    for path, message in [
        (tmp_path / "bad.jsonl", r"label 2 is not one of the target's labels \['0', '1'\]"),
        (tmp_path / "nope.jsonl", "--linear_source_file .* does not exist"),
    ]:
        assert main([*argv, str(path)]) == 2
        assert re.search(message, capsys.readouterr().err)


def test_finetune_ships_a_linear_companion_that_the_pipeline_averages(tmp_path, capsys):
    """finetune --linear_source_file: the linear model on the source + target labels is saved beside the RNN, pushed
    with it, scored on the test split alone and averaged; pulled by repo id, the pipeline answers with that average.
    Bad source labels are refused before any training; a series target cannot have one."""
    from datasets import Dataset, DatasetDict
    from huggingface_hub import hf_hub_download
    from transformers import AutoTokenizer, DataCollatorWithPadding, pipeline

    from hf_rnn_transfer import LinearTextClassifier, TextClassificationWithLinearPipeline
    from hf_rnn_transfer.commands import TargetDataArguments, encode_target
    from hf_rnn_transfer.commands.linear_companion import check_text_classification
    from hf_rnn_transfer.evaluation import class_probabilities

    _linear_source_files(tmp_path, test_rows=60)
    argv = ["finetune", "--source", str(tmp_path / "source"), "--train_file", str(tmp_path / "train.jsonl")]
    argv += ["--test_file", str(tmp_path / "test.jsonl"), "--report_to", "none", "--num_train_epochs", "1"]
    argv += ["--select_folds", "0", "--hub_root", str(tmp_path / "hub")]
    out_dir = tmp_path / "ft"
    linear = ["--linear_source_file", str(tmp_path / "books.jsonl"), "--linear_target_weight", "5"]
    result = run_cli([*argv, "--output_dir", out_dir, *linear, "--push_to", "local/kitchen-lin"], capsys)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert summary["linear_model"]["source_texts"] == 300 and summary["linear_model"]["target_texts"] == 40
    assert summary["linear_model"]["target_weight"] == 5.0 and summary["linear_test_accuracy"] > 0.6
    assert "its share of the average" in result.stdout and "3-fold cross-fitting" in result.stdout
    saved = LinearTextClassifier.from_pretrained(str(out_dir))
    model = RNNForSequenceClassification.from_pretrained(out_dir)
    test = load_amazon_reviews("kitchen").shuffle(seed=0).select(range(100, 160))
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    encoded = Dataset.from_dict({"text": test["text"], "labels": test["label"]}).map(
        lambda rows: tokenizer(rows["text"], truncation=True, max_length=256), batched=True, remove_columns=["text"]
    )
    rnn, labels = class_probabilities(model, encoded, DataCollatorWithPadding(tokenizer))
    weight = summary["linear_weight"]
    choice = summary["linear_model"]["weight_choice"]
    assert saved.ensemble_weight == weight == choice["weight"] and choice["folds"] == 3 and len(choice["scores"]) == 11
    average = weight * saved.predict_proba(test["text"]) + (1 - weight) * rnn
    assert summary["with_linear_test_accuracy"] == pytest.approx((average.argmax(-1) == labels).mean(), abs=1e-6)
    with LocalHub(tmp_path / "hub") as hub, hub_endpoint(hub.endpoint):
        card = open(hf_hub_download("local/kitchen-lin", "README.md")).read()
        classify = pipeline(
            "text-classification", model="local/kitchen-lin", pipeline_class=TextClassificationWithLinearPipeline
        )
        answers = classify(test["text"][:8])
        # a stranger's machine: transformers alone, the pipeline's code pulled with the model
        hub_env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0"}
        task = "text-classification-with-linear"
        remote = run_child(
            REMOTE, "local/kitchen-lin", task, json.dumps(test["text"][:8]), tmp_path=tmp_path, env_extra=hub_env
        )
    assert "linear_model.safetensors" in card and "TextClassificationWithLinearPipeline" in card
    assert f'pipeline("{task}", model="local/kitchen-lin", trust_remote_code=True)' in card
    names = [model.config.id2label[i] for i in range(2)]
    remote_table = [[dict((d["label"], d["score"]) for d in row)[n] for n in names] for row in remote["answers"]]
    np.testing.assert_allclose(remote_table, average[:8], rtol=1e-4)
    assert [a["label"] for a in answers] == [model.config.id2label[i] for i in average[:8].argmax(-1)]
    np.testing.assert_allclose([a["score"] for a in answers], average[:8].max(-1), rtol=1e-4)
    # refusals, each before any training
    for extra, message in [
        (["--linear_source_file", str(tmp_path / "bad.jsonl")], r"label 2 is not one of the target's labels"),
        (["--linear_source_file", str(tmp_path / "nope.jsonl")], "--linear_source_file .* does not exist"),
        (["--linear_companion", "--linear_target_weight", "0"], "--linear_target_weight must be positive"),
    ]:
        failed = run_cli([*argv, "--output_dir", tmp_path / "x", *extra], capsys)
        assert failed.returncode == 2 and re.search(message, failed.stderr), failed.stderr[-2000:]
        assert not (tmp_path / "x" / "model.safetensors").exists()
    series = Dataset.from_dict({"values": [[[0.0], [1.0]]] * 4, "label": [0, 1, 0, 1]})
    config = RNNConfig(input_size=1, embedding_size=4, hidden_size=4, num_layers=1)
    target = encode_target(DatasetDict(train=series), config, None, TargetDataArguments(values_column="values"))
    with pytest.raises(ValueError, match="--linear_companion needs a text classification target"):
        check_text_classification(target, "--linear_companion")


def test_finetune_distils_the_average_into_the_rnn_on_unlabelled_texts(tmp_path, capsys):
    """finetune --distill_file: after fine-tuning, the RNN trains on the RNN + linear average over the unlabelled
    texts (a training or test text among them is dropped); the saved RNN is the distilled one and the results say
    what it scored before and after. Refused by name: the file without the linear companion, a missing file, and
    epochs that are not positive, each before any training."""
    import json as json_

    from hf_rnn_transfer.commands.target_data import TargetDataArguments
    from hf_rnn_transfer.evaluation import accuracy_of

    _linear_source_files(tmp_path, test_rows=60)
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    unlabelled = [*reviews["text"][200:320], reviews["text"][105].upper(), reviews["text"][3], ""]
    with open(tmp_path / "unlabelled.jsonl", "w") as handle:
        handle.writelines(json_.dumps({"text": text}) + "\n" for text in unlabelled)
    argv = ["finetune", "--source", str(tmp_path / "source"), "--train_file", str(tmp_path / "train.jsonl")]
    argv += ["--test_file", str(tmp_path / "test.jsonl"), "--report_to", "none", "--num_train_epochs", "1"]
    argv += ["--select_folds", "0", "--hub_root", str(tmp_path / "hub"), "--linear_weight", "0.5"]
    out_dir = tmp_path / "ft"
    distil = ["--distill_file", str(tmp_path / "unlabelled.jsonl"), "--distill_epochs", "2"]
    pushed = ["--push_to", "local/kitchen-distilled"]
    result = run_cli([*argv, "--output_dir", out_dir, "--linear_companion", *distil, *pushed], capsys)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{\n") :])
    distilled = summary["distillation"]
    # the upper-cased test review, the training review and the empty text are not distilled on
    assert distilled["texts"] == 120 and distilled["dropped"] == 2 and distilled["epochs"] == 2.0
    assert distilled["optimizer_steps"] == 2 * (120 + 40) // 16  # unlabelled + training rows, the recipe's batch 16
    assert 0.0 <= distilled["teacher_rnn_test_accuracy"] <= 1.0 and "teacher_test_accuracy" in distilled
    assert "distilled the RNN + linear average into the RNN on 120 unlabelled texts" in result.stdout
    from huggingface_hub import hf_hub_download

    with LocalHub(tmp_path / "hub") as hub, hub_endpoint(hub.endpoint):
        card = open(hf_hub_download("local/kitchen-distilled", "README.md")).read()
    assert (
        "2 more epochs on that average's class probabilities over 120 unlabelled target texts (distillation, "
        "with adversarial training on its word embeddings at 0.02 of their norm)" in card
    )
    assert distilled["adversarial_epsilon"] == 0.02  # the recommended distillation's default
    assert f"Its test accuracy before the distillation: {distilled['teacher_rnn_test_accuracy']:.4f}" in card
    model = RNNForSequenceClassification.from_pretrained(out_dir)
    from hf_rnn_transfer.commands import encode_target
    from hf_rnn_transfer.commands.target_data import load_target

    raw = load_target(None, str(tmp_path / "train.jsonl"), str(tmp_path / "test.jsonl"))
    from transformers import AutoTokenizer

    target = encode_target(raw, model.config, AutoTokenizer.from_pretrained(out_dir), TargetDataArguments())
    assert accuracy_of(model, target.splits["test"], target.collator) == pytest.approx(summary["test_accuracy"])
    for extra, message in [
        (distil, "--distill_file distils the RNN \\+ linear average .* pass --linear_source_file"),
        (["--linear_companion", "--distill_file", str(tmp_path / "nope.jsonl")], "--distill_file .* does not exist"),
        (["--linear_companion", *distil[:2], "--distill_epochs", "0"], "--distill_epochs must be positive"),
        (
            ["--linear_companion", *distil[:2], "--distill_adversarial_epsilon", "-1"],
            "--distill_adversarial_epsilon must be >= 0",
        ),
    ]:
        failed = run_cli([*argv, "--output_dir", tmp_path / "x", *extra], capsys)
        assert failed.returncode == 2 and re.search(message, failed.stderr), failed.stderr[-2000:]
        assert not (tmp_path / "x" / "model.safetensors").exists()


def test_the_linear_share_moves_only_as_far_as_the_budget_shows(tmp_path):
    """choose_linear_weight: an RNN that answers "negative" to everything pushes the share towards the linear model;
    two equally good models keep the equal average; a class with one label cannot be validated: the equal average.
    --linear_weight takes auto or a number in [0, 1]."""
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from hf_rnn_transfer.commands import LinearCompanionArguments
    from hf_rnn_transfer.commands.linear_companion import choose_linear_weight

    _linear_source_files(tmp_path, test_rows=1)
    reviews = load_amazon_reviews("kitchen").shuffle(seed=1).select(range(90))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "source")
    rows = Dataset.from_dict({"text": reviews["text"], "labels": reviews["label"]}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=64), batched=True, remove_columns=["text"]
    )
    books = load_amazon_reviews("books").shuffle(seed=0).select(range(300))
    source = (books["text"], [int(v) for v in books["label"]])

    def stubborn(rows_):  # an RNN that learnt nothing but a strong prior for "negative"
        model = RNNForSequenceClassification.from_pretrained(tmp_path / "source", num_labels=2)
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([2.0, -2.0]))
        return model

    labels = {0: "negative", 1: "positive"}
    collator = DataCollatorWithPadding(tokenizer)
    choice = choose_linear_weight(stubborn, rows, collator, reviews["text"], labels, source)
    assert choice.weight >= 0.9 and choice.folds == 3, choice
    assert choice.scores["1.0"] > choice.scores["0.0"] + 0.2 and "3-fold cross-fitting" in choice.reason

    def shrug(rows_):  # probability 0.5 everywhere: any share gives the linear model's answers
        model = stubborn(rows_)
        with torch.no_grad():
            model.classifier.bias.zero_()
        return model

    assert choose_linear_weight(shrug, rows, collator, reviews["text"], labels, source).weight == 0.5
    lonely = rows.select(range(5)).map(lambda row, i: {"labels": int(i == 0)}, with_indices=True)
    fallback = choose_linear_weight(stubborn, lonely, collator, reviews["text"][:5], labels, source)
    assert fallback.weight == 0.5 and fallback.folds == 0 and "fewer than 2 labels" in fallback.reason
    assert LinearCompanionArguments(linear_weight="0.3").linear_weight == "0.3"
    for bad in ("1.5", "most"):
        with pytest.raises(ValueError, match="--linear_weight takes auto or a number in \\[0, 1\\]"):
            LinearCompanionArguments(linear_weight=bad)
