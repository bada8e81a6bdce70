"""`hf-rnn-transfer finetune`, `compare` and `rank-sources` from the shell, against an offline Hub on disk."""

import json
import subprocess
import sys

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.hub import LocalHub, hub_endpoint

from .conftest import ALICE


def write_jsonl(rows, path):
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps({"text": row["text"], "label": row["label"]}) + "\n")


def test_finetune_and_rank_sources_commands(tmp_path):
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    write_jsonl(reviews.select(range(120)), tmp_path / "train.jsonl")
    write_jsonl(reviews.select(range(1000, 1100)), tmp_path / "test.jsonl")
    tokenizer = train_tokenizer(reviews["text"][:500], vocab_size=2000, model_max_length=64)
    root = tmp_path / "hub"
    with LocalHub(root, tokens={ALICE: "alice"}) as hub, hub_endpoint(hub.endpoint):
        for name in ("src-a", "src-b"):
            model = RNNForSequenceClassification(
                RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=16, hidden_size=16, num_layers=1)
            )
            model.push_to_hub(f"alice/{name}", token=ALICE)
            tokenizer.push_to_hub(f"alice/{name}", token=ALICE)
    cli = [sys.executable, "-m", "hf_rnn_transfer"]
    files = ["--train_file", str(tmp_path / "train.jsonl"), "--test_file", str(tmp_path / "test.jsonl")]
    result = subprocess.run(
        [
            *cli,
            "finetune",
            "--source",
            "alice/src-a",
            "--hub_root",
            str(root),
            *files,
            "--output_dir",
            str(tmp_path / "ft"),
            "--num_train_epochs",
            "2",
            "--freezing_strategy",
            "gradual",
            "--discriminative_lr",
            "--lr_scheduler_type",
            "slanted_triangular",
            "--per_device_train_batch_size",
            "16",
            "--report_to",
            "none",
            "--push_to",
            "alice/kitchen-ft",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert 0 <= summary["test_accuracy"] <= 1 and "gradual unfreezing" in summary["recipe"]["freezing"]
    assert summary["pushed"].startswith("alice/kitchen-ft@") and (tmp_path / "ft" / "model.safetensors").exists()
    ranked = subprocess.run(
        [
            *cli,
            "rank-sources",
            "--candidates",
            "alice/src-a",
            "alice/src-b",
            "--hub_root",
            str(root),
            *files,
            "--output",
            str(tmp_path / "ranking.md"),
            "--max_examples",
            "80",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    table = (tmp_path / "ranking.md").read_text()
    assert "| 1 |" in table and "alice/src-a" in table and "alice/src-b" in table
    compared = subprocess.run(
        [
            *cli,
            "compare",
            "--source",
            "alice/src-a",
            "--hub_root",
            str(root),
            *files,
            "--output_dir",
            str(tmp_path / "cmp"),
            "--budgets",
            "20",
            "40",
            "--seeds",
            "0",
            "1",
            "--num_train_epochs",
            "1",
            "--scratch_epochs",
            "1",
            "--freezing_strategy",
            "gradual",
            "--report",
            str(tmp_path / "cmp" / "report.md"),
            "--report_to",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert compared.returncode == 0, compared.stderr[-3000:]
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "| 20 |" in report and "| 40 |" in report and "TF-IDF + LR" in report and "paired t-test" in report
    assert (tmp_path / "cmp" / "report.png").exists()
    bad = subprocess.run(
        [*cli, "finetune", "--source", "alice/src-a", "--hub_root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "pass --dataset" in bad.stderr


def test_pretrain_language_model_and_classifier_sources(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .conftest import SHARED_DATA

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
    lm = subprocess.run(
        [
            *cli,
            "--objective",
            "causal_lm",
            "--train_file",
            str(SHARED_DATA / "ptb" / "train.txt"),
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
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert lm.returncode == 0, lm.stderr[-3000:]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "lm")
    assert model.config.tie_word_embeddings and AutoTokenizer.from_pretrained(tmp_path / "lm").pad_token == "<pad>"
    reviews = load_amazon_reviews("books").shuffle(seed=0).select(range(100))
    write_jsonl(reviews, tmp_path / "books.jsonl")
    clf = subprocess.run(
        [
            *cli,
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
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert clf.returncode == 0, clf.stderr[-3000:]
    assert "me/books-source@" in clf.stdout
    bad = subprocess.run(
        [
            *cli,
            "--objective",
            "causal_lm",
            "--train_file",
            str(tmp_path / "books.jsonl"),
            "--output_dir",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "set --max_steps" in bad.stderr
