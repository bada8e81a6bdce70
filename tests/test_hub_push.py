"""`push_model` and `hf-rnn-transfer push`: one commit with weights, code, tokenizer and this project's card."""

import subprocess
import sys

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import train_tokenizer
from hf_rnn_transfer.hub import CardContent, LocalHub, hub_endpoint, push_model

from .conftest import ALICE, HUB_TOKENS, run_cli


def test_push_model_writes_our_card_and_the_tokenizer_in_one_commit(hub, tmp_path):
    tokenizer = train_tokenizer(["a good kettle", "a bad kettle"], min_frequency=1)
    model = RNNForSequenceClassification(RNNConfig(vocab_size=len(tokenizer), hidden_size=8, embedding_size=4))
    card = CardContent(
        repo_id="alice/pushed", objective="sentiment", data_description="kettle reviews", base_model="alice/reviews-lm"
    )
    info = push_model(model, "alice/pushed", card=card, tokenizer=tokenizer, token=ALICE)
    commits = HfApi().list_repo_commits("alice/pushed")
    assert len(commits) == 2 and commits[0].commit_id == info.oid  # initial commit + one push
    files = set(HfApi().list_repo_files("alice/pushed"))
    assert {
        "README.md",
        "model.safetensors",
        "config.json",
        "modeling_rnn.py",
        "configuration_rnn.py",
        "tokenizer.json",
    } <= files
    readme = open(hf_hub_download("alice/pushed", "README.md"), encoding="utf-8").read()
    assert ModelCard(readme).data.base_model == "alice/reviews-lm"
    assert "hf-rnn-transfer" in readme and ALICE not in readme and str(tmp_path) not in readme
    pulled = AutoModelForSequenceClassification.from_pretrained("alice/pushed", revision=info.oid).eval()
    ids = torch.tensor(AutoTokenizer.from_pretrained("alice/pushed")("a good kettle")["input_ids"])[None]
    with torch.no_grad():
        assert torch.equal(pulled(input_ids=ids).logits, model.eval()(input_ids=ids).logits)


@pytest.mark.slow
def test_push_command_against_a_given_endpoint(tmp_path):
    model_dir = tmp_path / "model"
    RNNForSequenceClassification(RNNConfig(vocab_size=20, hidden_size=8, embedding_size=4)).save_pretrained(model_dir)
    with LocalHub(tmp_path / "hub", tokens=HUB_TOKENS) as server:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "hf_rnn_transfer",
                "push",
                "--model_dir",
                str(model_dir),
                "--repo_id",
                "alice/from-cli",
                "--endpoint",
                server.endpoint,
                "--objective",
                "testing",
                "--base_model",
                "alice/src",
            ],
            capture_output=True,
            text=True,
            env={**_env(), "HF_TOKEN": ALICE},
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        with hub_endpoint(server.endpoint):
            readme = open(hf_hub_download("alice/from-cli", "README.md", cache_dir=tmp_path / "c")).read()
    assert "base_model: alice/src" in readme and ALICE not in result.stdout + result.stderr


@pytest.mark.slow
def test_push_command_defaults_to_the_offline_hub(tmp_path):
    model_dir = tmp_path / "model"
    RNNForSequenceClassification(RNNConfig(vocab_size=20, hidden_size=8, embedding_size=4)).save_pretrained(model_dir)
    hub_root = tmp_path / "offline"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_rnn_transfer",
            "push",
            "--model_dir",
            str(model_dir),
            "--repo_id",
            "me/model",
            "--hub_root",
            str(hub_root),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with LocalHub(hub_root) as server, hub_endpoint(server.endpoint):  # served again later, anonymously readable
        assert "model.safetensors" in HfApi().list_repo_files("me/model")


def test_push_command_names_a_missing_model(tmp_path, capsys):
    result = run_cli(
        ["push", "--model_dir", tmp_path / "nope", "--repo_id", "me/x", "--hub_root", tmp_path / "hub"], capsys
    )
    assert result.returncode == 2 and "has no config.json" in result.stderr


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
