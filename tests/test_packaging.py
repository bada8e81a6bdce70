"""The wheel ships the card templates, the demo data and its provenance, and the console script."""

import subprocess
import sys
import zipfile

from .conftest import REPO_ROOT


def test_wheel_contents(tmp_path):
    root = REPO_ROOT
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(root),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("hf_rnn_transfer-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hf_rnn_transfer/model_cards/rnn_model_card.md" in names
    assert {
        f"hf_rnn_transfer/resources/amazon_reviews/{d}.jsonl.gz" for d in ("books", "dvd", "electronics", "kitchen")
    } <= names
    assert "hf_rnn_transfer/resources/amazon_reviews/PROVENANCE.md" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hf-rnn-transfer = hf_rnn_transfer.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
