"""Run every benchmark in turn; each writes its own section of docs/benchmarks.md.

python benchmarks/run_all.py
"""

import subprocess
import sys
from pathlib import Path

SCRIPTS = [
    "trainer_throughput.py",
    "data_pipeline.py",
    "source_ranking.py",
    "ucr_transfer.py",
    "transfer_vs_scratch.py",
    "throughput_vs_fastai.py",
    "hub_server.py",
]

if __name__ == "__main__":
    here = Path(__file__).parent
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, script], cwd=here, check=True)
