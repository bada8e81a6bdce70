"""The examples run (at a small size) on the real data of ../shared/data."""

import subprocess
import sys

from .conftest import REPO_ROOT, SHARED_DATA


def test_token_classification_example_runs(tmp_path):
    script = REPO_ROOT / "examples" / "token_classification" / "transfer_ner.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--source_train",
            str(SHARED_DATA / "conll2003" / "train.jsonl"),
            "--target_train",
            str(SHARED_DATA / "wnut17" / "train.jsonl"),
            "--target_test",
            str(SHARED_DATA / "wnut17" / "test.jsonl"),
            "--source_examples",
            "1000",
            "--target_examples",
            "200",
            "--source_epochs",
            "1",
            "--target_epochs",
            "1",
            "--seeds",
            "0",
            "--output_dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transfer: token-level macro F1" in result.stdout and "scratch: token-level macro F1" in result.stdout
    assert "rnn.layers.0.weight_ih_l0" in result.stdout  # the transfer report
    assert (tmp_path / "source" / "model.safetensors").exists()


def test_speech_example_runs(tmp_path):
    script = REPO_ROOT / "examples" / "speech_fsdd" / "transfer_speaker.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--fsdd",
            str(SHARED_DATA / "fsdd"),
            "--budgets",
            "10",
            "--seeds",
            "0",
            "1",
            "--source_epochs",
            "1",
            "--target_epochs",
            "2",
            "--output_dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "source on yweweler's held-out recordings" in result.stdout and "| 10 |" in result.stdout
    assert (tmp_path / "learning_curve.png").exists()
