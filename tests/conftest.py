import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

# Keep every test away from the user's caches and Hub: set before transformers/huggingface_hub/datasets are imported,
# because they read these variables once, at import.
# Every temporary file of the session, this process's and its subprocesses' (torchrun's too), goes under one folder
# that is removed at exit: the suite leaves no trace on the machine.
_SESSION_TMP = tempfile.mkdtemp(prefix="hf-rnn-transfer-tests-")
atexit.register(shutil.rmtree, _SESSION_TMP, ignore_errors=True)
os.environ["TMPDIR"] = tempfile.tempdir = _SESSION_TMP
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="home-")
os.environ["HF_RNN_TRANSFER_HUB_ROOT"] = tempfile.mkdtemp(prefix="hub-")
os.environ.pop("HF_ENDPOINT", None)
os.environ.pop("HF_TOKEN", None)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
# The larger real datasets (PTB, UCR, FSDD, CoNLL, ...) are not shipped: tests marked `needs_data` read them from the
# folder this variable names, and skip (saying so) without it. The shipped Amazon reviews need nothing.
DATA_ENV = "HF_RNN_TRANSFER_DATA"
SHARED_DATA = Path(os.environ.get(DATA_ENV) or REPO_ROOT / ".no-shared-data").resolve()


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_data") and not SHARED_DATA.is_dir():
        pytest.skip(f"needs the real datasets: set {DATA_ENV} to their folder (CI sets it; see tests/README.md)")


# pytest-xdist runs the suite in several worker processes (`-n` in pyproject.toml): the cores are shared among them,
# and among the subprocesses they start, rather than each asking for all of them and thrashing.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
torch.set_num_threads(_THREADS)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


ALICE, BOB = "hf_test_alice_token", "hf_test_bob_token"
HUB_TOKENS = {ALICE: "alice", BOB: {"name": "bob", "orgs": ["team"]}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """An offline Hub for the module, with this process's clients pointed at it."""
    from hf_rnn_transfer.hub import LocalHub, hub_endpoint

    with LocalHub(tmp_path_factory.mktemp("hub"), tokens=HUB_TOKENS) as server, hub_endpoint(server.endpoint):
        yield server


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(port: int, processes: int = 2) -> list[str]:
    """The start of a command line that runs a module or script under torchrun on this machine."""
    import sys

    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_port",
        str(port),
    ]


def launcher_env(processes: int = 2, **extra: str) -> dict:
    """The environment of a multi-process test's launcher: its processes run on the CPU over gloo unless this machine
    has a GPU for each of them (two NCCL ranks cannot share one GPU)."""
    env = {**os.environ, **extra}
    if torch.cuda.device_count() < processes:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def wait_for_hub(endpoint: str, timeout: float = 30) -> None:
    """Until a Hub at `endpoint` answers (a server started in another process)."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(endpoint + "/api/agent-harnesses", timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise TimeoutError(f"the hub at {endpoint} did not start")


def run_cli(argv: list, capsys) -> subprocess.CompletedProcess:
    """`hf-rnn-transfer ARGV` in this process (no interpreter start-up: each costs seconds of imports), captured like
    `subprocess.run(..., capture_output=True)`; the tests that need a real shell spawn one and use this for the rest.
    """
    from hf_rnn_transfer.cli import main

    argv = [str(a) for a in argv]
    capsys.readouterr()  # only this command's output
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's --help and usage errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def run_command(argv: list, env: dict | None = None) -> subprocess.CompletedProcess:
    """ARGV in a real subprocess (launchers, the console script), captured, with a timeout."""
    argv = [str(a) for a in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=env)


def tiny_text_source(folder, texts):
    """A small untrained LSTM classifier and a tokenizer trained on `texts`, saved in `folder` (a source)."""
    from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
    from hf_rnn_transfer.data import train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size=300, model_max_length=32)
    config = RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=8, hidden_size=8, num_layers=1)
    RNNForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_jsonl(rows, path):
    """The `text` and `label` of each row, one JSON object per line (what the commands' --train_file reads)."""
    import json

    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps({"text": row["text"], "label": row["label"]}) + "\n")


# The start of a child script that runs where `hf_rnn_transfer` cannot be imported (a user with transformers only).
WITHOUT_THE_PACKAGE = """
import importlib.abc, json, sys

class BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "hf_rnn_transfer":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)")

sys.meta_path.insert(0, BlockPackage())
"""


def run_child(script: str, *args, tmp_path, env_extra: dict | None = None) -> dict:
    """Run `script` (usually `WITHOUT_THE_PACKAGE + ...`) in a fresh, isolated interpreter with its own HF_HOME;
    return the JSON object it prints last."""
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_ENDPOINT")}
    env.update({"HF_HOME": str(tmp_path / "child-home"), "HF_HUB_OFFLINE": "1", **(env_extra or {})})
    path = tmp_path / "child.py"
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, "-I", str(path), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def training_losses(model, dataset, tmp_path, steps=40, lr=1e-2, batch_size=16, collator=None, **extra) -> list:
    """Train `model` for `steps` steps with the plain `transformers.Trainer` and return the logged losses."""
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        seed=0,
        **extra,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
