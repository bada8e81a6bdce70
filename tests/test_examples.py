"""The examples run (at a small size) on the real datasets (`HF_RNN_TRANSFER_DATA`)."""

import json
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT, SHARED_DATA


def run_example(script, *argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
@pytest.mark.needs_data
def test_token_classification_example_runs(tmp_path):
    script = REPO_ROOT / "examples" / "token_classification" / "transfer_ner.py"
    result = run_example(
        script,
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
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transfer: entity F1 (seqeval)" in result.stdout and "scratch: entity F1 (seqeval)" in result.stdout
    assert "rnn.layers.0.weight_ih_l0" in result.stdout  # the transfer report
    assert (tmp_path / "source" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.needs_data
def test_speech_example_runs(tmp_path):
    script = REPO_ROOT / "examples" / "speech_fsdd" / "transfer_speaker.py"
    result = run_example(
        script,
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
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "source on yweweler's held-out recordings" in result.stdout and "| 10 |" in result.stdout
    assert (tmp_path / "learning_curve.png").exists()


@pytest.mark.slow
@pytest.mark.needs_data
def test_ulmfit_example_runs_its_three_stages(tmp_path):
    script = REPO_ROOT / "examples" / "ulmfit" / "ulmfit_three_stages.py"
    result = run_example(
        script,
        "--wikitext",
        str(SHARED_DATA / "wikitext2"),
        "--general_steps",
        "4",
        "--target_steps",
        "2",
        "--vocab_size",
        "500",
        "--hidden_size",
        "16",
        "--budgets",
        "20",
        "--seeds",
        "0",
        "--classifier_epochs",
        "1",
        "--ablation",
        "--output_dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "$ hf-rnn-transfer pretrain --objective causal_lm" in result.stdout and "--init_from" in result.stdout
    assert "Vocabulary remapped by token string" in result.stdout  # stage 2 moved the rows to the target vocabulary
    for source in ("target_lm", "general_lm"):
        report = (tmp_path / f"report_{source}.md").read_text()
        assert "| 20 |" in report and "TF-IDF + LR" in report
    # the anchors' split: 1,000 pool reviews and a balanced 1,000-review test set, whose texts stage 2 never reads
    pool = [json.loads(line) for line in (tmp_path / "pool.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert len(pool) == len(test) == 1000 and sum(row["label"] == "positive" for row in test) == 500
    stage_two = set((tmp_path / "target_text.txt").read_text().splitlines())
    only_in_test = {" ".join(row["text"].split()) for row in test} - {" ".join(row["text"].split()) for row in pool}
    assert only_in_test and not only_in_test & stage_two


@pytest.mark.slow
@pytest.mark.needs_data
def test_ucr_example_runs(tmp_path):
    script = REPO_ROOT / "examples" / "time_series_ucr" / "ecg_transfer.py"
    result = run_example(
        script,
        "--ucr",
        str(SHARED_DATA / "ucr"),
        "--budgets",
        "10",
        "--seeds",
        "0",
        "1",
        "--source_epochs",
        "0.05",
        "--supervised_epochs",
        "1",
        "--target_epochs",
        "1",
        "--output_dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "$ hf-rnn-transfer pretrain --objective forecasting" in result.stdout
    assert "supervised classification of series" in result.stdout
    ranking = (tmp_path / "ranking.md").read_text()
    assert "forecaster" in ranking and "supervised" in ranking
    for source in ("forecaster", "supervised"):
        assert "| 10 |" in (tmp_path / f"report_{source}.md").read_text()


@pytest.mark.slow
@pytest.mark.needs_data
def test_translation_example_runs(tmp_path):
    script = REPO_ROOT / "examples" / "translation" / "transfer_translation.py"
    result = run_example(
        script,
        "--tatoeba",
        SHARED_DATA / "tatoeba_en_de" / "en_de.jsonl.gz",
        "--multi30k",
        SHARED_DATA / "multi30k" / "multi30k.jsonl.gz",
        "--source_pairs",
        "2000",
        "--source_epochs",
        "1",
        "--budgets",
        "200",
        "--target_epochs",
        "1",
        "--test_pairs",
        "50",
        "--hidden_size",
        "32",
        "--embedding_size",
        "32",
        "--output_dir",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 0 (Tatoeba source only) |" in result.stdout and "| 200 |" in result.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["budgets"]["200"]) == {"transfer", "scratch"}
    assert {"bleu", "chrf", "perplexity"} <= set(results["zero_shot"])
    assert (tmp_path / "source" / "pipeline_rnn.py").exists()


@pytest.mark.slow
@pytest.mark.needs_data
def test_dialogue_example_runs(tmp_path):
    script = REPO_ROOT / "examples" / "dialogue" / "transfer_dialogue.py"
    result = run_example(
        script,
        "--dailydialog",
        SHARED_DATA / "dailydialog" / "dailydialog.jsonl.gz",
        "--source_dialogues",
        "150",
        "--source_epochs",
        "1",
        "--budgets",
        "20",
        "--target_epochs",
        "1",
        "--test_dialogues",
        "15",
        "--act_budgets",
        "20",
        "--act_seeds",
        "0",
        "1",
        "--hidden_size",
        "32",
        "--output_dir",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 20 | transfer |" in result.stdout and "| 20 | scratch |" in result.stdout
    assert "Dialogue acts of single utterances" in result.stdout and "TF-IDF + LR" in result.stdout
