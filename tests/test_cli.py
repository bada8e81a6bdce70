"""The `hf-rnn-transfer` command line: the installed script and a quickstart as real subprocesses, argument handling
in this process (each interpreter start costs seconds of imports)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_rnn_transfer import __version__

from .conftest import run_cli

CLI = [sys.executable, "-m", "hf_rnn_transfer"]


def run(*args, cwd=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=600, stdin=subprocess.DEVNULL)


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "hf-rnn-transfer"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"hf-rnn-transfer {__version__}"


def test_help_lists_the_subcommands_and_their_flags(capsys):
    result = run_cli(["--help"], capsys)
    assert result.returncode == 0 and "quickstart" in result.stdout
    result = run_cli(["quickstart", "--help"], capsys)
    assert result.returncode == 0
    for flag in ("--output_dir", "--cell_type", "--train_size", "--epochs", "--overwrite"):
        assert flag in result.stdout


@pytest.mark.slow
def test_quickstart_trains_saves_reloads_and_predicts(tmp_path):
    out = tmp_path / "run"
    result = run(
        "quickstart",
        "--output_dir",
        str(out),
        "--train_size",
        "300",
        "--epochs",
        "1",
        "--hidden_size",
        "16",
        "--max_length",
        "64",
        "--cell_type",
        "gru",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["test_size"] == 1700 and 0.0 <= results["test_accuracy"] <= 1.0
    assert {p["label"] for p in results["predictions"]} <= {"negative", "positive"}
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert (out / "modeling_rnn.py").exists()
    # pushed to the offline Hub (under the run directory by default) and pulled back by repo id at that commit
    assert results["repo_id"] == "local/quickstart-gru-kitchen" and len(results["commit"]) == 40
    assert results["hub"] == f"offline Hub on {out / 'hub'}"
    card = (out / "README.md").read_text()
    assert "model-index" in card and "hf-rnn-transfer" in card and str(tmp_path) not in card


def test_quickstart_never_overwrites_a_previous_run(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_cli(["quickstart", "--output_dir", str(tmp_path)], capsys)
    assert result.returncode == 2
    assert "already holds files; pass --overwrite" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_quickstart_rejects_bad_values_clearly(tmp_path, capsys):
    result = run_cli(["quickstart", "--output_dir", str(tmp_path / "a"), "--cell_type", "lstn"], capsys)
    assert result.returncode == 2 and "cell_type must be one of lstm, gru, rnn; got 'lstn'" in result.stderr
    result = run_cli(["quickstart", "--output_dir", str(tmp_path / "b"), "--domain", "garden"], capsys)
    assert result.returncode == 2 and "domain must be one of" in result.stderr


def test_help_examples_are_one_command_per_example():
    from hf_rnn_transfer.cli import EPILOG

    lines = EPILOG.splitlines()[1:]
    for line, following in zip(lines, lines[1:]):
        if line.endswith("\\"):  # a continued command: the next line is indented under it
            assert following.startswith("      --"), (line, following)
        else:
            assert following.startswith("  hf-rnn-transfer "), (line, following)
