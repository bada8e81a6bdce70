"""The wheel ships the card templates, the demo data and its provenance, the licence, and the console script; a
non-editable install of it works from anywhere."""

import os
import subprocess
import sys
import zipfile

import pytest

from .conftest import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return next(out.glob("hf_rnn_transfer-*.whl"))


def test_wheel_contents(wheel):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    assert "hf_rnn_transfer/model_cards/rnn_model_card.md" in names
    assert {
        f"hf_rnn_transfer/resources/amazon_reviews/{d}.jsonl.gz" for d in ("books", "dvd", "electronics", "kitchen")
    } <= names
    assert "hf_rnn_transfer/resources/amazon_reviews/PROVENANCE.md" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hf-rnn-transfer = hf_rnn_transfer.cli:main" in archive.read(entry_points).decode()
    metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    for requirement in ("scipy", "filelock", 'starlette>=0.40; extra == "hub"', 'pyyaml>=6; extra == "hub"'):
        assert requirement.split(";")[0] in metadata, requirement


@pytest.mark.slow
def test_a_non_editable_install_works_away_from_the_source_tree(wheel, tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = (
        "import hf_rnn_transfer, sys; from hf_rnn_transfer.hub.model_card import template_path; "
        "from hf_rnn_transfer.data import load_amazon_reviews; "
        "print(hf_rnn_transfer.__file__); print(template_path()); print(len(load_amazon_reviews('kitchen'))); "
        "print('hf_rnn_transfer.hub.server' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    package_file, template, rows, server_imported = out.stdout.split()[-4:]
    assert package_file.startswith(str(site)) and template.startswith(str(site))  # not the source tree
    assert rows == "2000" and server_imported == "False"  # the plugin never loads the web server
    cli = subprocess.run(
        [str(site / "bin" / "hf-rnn-transfer"), "--help"], capture_output=True, text=True, env=env, timeout=300
    )
    assert cli.returncode == 0 and "demo" in cli.stdout and "hub" in cli.stdout
