"""Shared by the benchmark scripts: the machine line, and writing one section of docs/benchmarks.md in place."""

import datetime
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Each section is written by the script it names, with the exact command, the machine and the date. Ratios compare
runs measured in the same process; absolute times are this machine's only.
"""


def machine() -> str:
    threads = torch.get_num_threads()
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores ({threads} torch threads), Python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the section `name` of docs/benchmarks.md and print it."""
    command = "python " + " ".join([os.path.relpath(sys.argv[0], DOC.parents[1]), *sys.argv[1:]])
    stamp = datetime.date.today().isoformat()
    section = f"<!-- {name}:start -->\n## {title}\n\n`{command}` — {machine()}, {stamp}.\n\n{body}\n<!-- {name}:end -->"
    print(section)
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


class Timer(TrainerCallback):
    """Wall time of `trainer.train()`, from the first step's setup to the end."""

    def on_train_begin(self, *args, **kwargs):
        self.start = time.perf_counter()

    def on_train_end(self, *args, **kwargs):
        self.seconds = time.perf_counter() - self.start
