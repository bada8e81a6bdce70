"""`hf-rnn-transfer demo` end to end at a small size: every stage runs, both models reach the offline Hub, the
report, plots and card are written, and the pushed model loads back by repo id."""

import json
import subprocess
import sys

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download

from hf_rnn_transfer.demo import DemoArguments
from hf_rnn_transfer.hub import LocalHub, hub_endpoint
from hf_rnn_transfer.trainer import bf16_speeds_up_training, native_bf16_available

from .conftest import run_cli


@pytest.mark.slow
def test_demo_runs_end_to_end_on_the_offline_hub(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_rnn_transfer",
            "demo",
            "--output_dir",
            str(out),
            "--source_examples",
            "600",
            "--budgets",
            "20",
            "--label_budget",
            "20",
            "--seeds",
            "0",
            "1",
            "--embedding_size",
            "16",
            "--hidden_size",
            "16",
            "--max_length",
            "64",
            "--source_epochs",
            "1",
            "--finetune_epochs",
            "2",
            "--scratch_epochs",
            "2",
            "--namespace",
            "tester",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert results["source_repo"] == "tester/lstm-reviews-books-dvd-electronics"
    assert results["target_repo"] == "tester/lstm-kitchen-from-books-dvd-electronics"
    assert set(results["scores"]) == {"transfer", "scratch", "tfidf_lr", "tfidf_lr_source", "transfer_linear"}
    # the linear model on the 600 source labels + the budget's is far above the one on the 20 budget labels alone
    assert results["linear_same_labels_accuracy"] > results["tfidf_lr_accuracy"] + 0.05, results
    assert all(len(v["20"]) == 2 for v in results["scores"].values())
    for name in ("learning_curve.png", "layer_changes.png", "report.md", "README.md", "model/model.safetensors"):
        assert (out / name).exists(), name
    assert "TF-IDF + LR" in result.stdout and "on the source labels too" in result.stdout
    assert "negative transfer" in result.stdout
    assert "source zero-shot" in result.stdout and 0 < results["majority_class_accuracy"] <= 1
    assert results["precision"] == ("bf16" if bf16_speeds_up_training() else "fp32")  # --precision auto
    with LocalHub(out / "hub") as hub, hub_endpoint(hub.endpoint):  # the same repositories, served again
        files = set(HfApi().list_repo_files(results["target_repo"]))
        assert {"model.safetensors", "tokenizer.json", "learning_curve.png", "README.md"} <= files
        assert {
            "transfer_config.json",
            "transfer_report.json",
            "linear_model.json",
            "linear_model.safetensors",
        } <= files
        card = ModelCard(open(hf_hub_download(results["target_repo"], "README.md", cache_dir=tmp_path / "c")).read())
        assert card.data.base_model == results["source_repo"] and card.data.base_model_relation == "finetune"
        assert "## Transfer vs training from scratch" in card.text and "## Transfer recipe" in card.text
        assert str(tmp_path) not in card.text
        from transformers import AutoModelForSequenceClassification, pipeline

        model = AutoModelForSequenceClassification.from_pretrained(
            results["target_repo"], revision=results["target_commit"]
        )
        assert model.config.id2label == {0: "negative", 1: "positive"}
        # the lineage travels with the model: the source repo, pinned to the commit the demo pushed
        assert model.transfer_config.source == results["source_repo"]
        assert model.transfer_config.revision == results["source_commit"] and model.transfer_config.transfer_head
        classify = pipeline("text-classification", model=results["target_repo"])
        assert classify("This kettle is great")[0]["label"] in {"negative", "positive"}
        from hf_rnn_transfer import TextClassificationWithLinearPipeline

        both = pipeline(
            "text-classification", model=results["target_repo"], pipeline_class=TextClassificationWithLinearPipeline
        )
        assert both("This kettle is great, it boils fast and looks lovely")[0]["label"] == "positive"
    assert 0.5 < results["pushed_model_with_linear_accuracy"] <= 1 and "averaged with the linear model" in result.stdout


def test_demo_refuses_bad_arguments(tmp_path, capsys):
    result = run_cli(["demo", "--output_dir", tmp_path / "x", "--target_domain", "garden"], capsys)
    assert result.returncode == 2 and "--target_domain must be one of books, dvd, electronics, kitchen" in result.stderr


def test_demo_precision_is_bf16_where_it_makes_training_faster():
    assert DemoArguments(precision="auto").bf16 == bf16_speeds_up_training()
    assert bf16_speeds_up_training() == (native_bf16_available() and not torch.cuda.is_available())
    assert DemoArguments(precision="bf16").bf16 and not DemoArguments(precision="fp32").bf16
    with pytest.raises(ValueError, match="--precision must be one of auto, bf16, fp32; got 'fp16'"):
        DemoArguments(precision="fp16")
