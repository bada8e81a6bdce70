"""Time series (UCR): a GRU pretrained to forecast unlabelled ECG series -> a related ECG classification task with
23 labelled series, against a supervised source on another ECG set and against scratch.

    python examples/time_series_ucr/ecg_transfer.py --ucr $HF_RNN_TRANSFER_DATA/ucr --output_dir runs/ucr

Sources: `ECGFiveDays` as a forecasting task (all 884 series, no labels read: predict the next 8 steps from 48) and
`ECG200` as a supervised task (its 100 labelled series). Target: `TwoLeadECG` (23 training series, 1,139 test series).
Every step is one `hf-rnn-transfer` command line, printed before it runs; the same commands take any UCR folder or
`--train_file`/`--test_file` with a `values` column.
"""

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from hf_rnn_transfer.cli import main as hf_rnn_transfer

DATA = os.environ.get("HF_RNN_TRANSFER_DATA", "data")  # the folder of the real datasets


@dataclass
class UCRArguments:
    ucr: str = field(
        default=os.path.join(DATA, "ucr"),
        metadata={"help": "Folder of UCR datasets (<name>/<name>_*.tsv)."},
    )
    forecasting_source: str = field(default="ECGFiveDays", metadata={"help": "Unlabelled source (forecasting)."})
    supervised_source: str = field(default="ECG200", metadata={"help": "Labelled source (classification)."})
    target: str = field(default="TwoLeadECG", metadata={"help": "Target dataset."})
    budgets: list[str] = field(default_factory=lambda: ["10", "all"], metadata={"help": "Target label budgets."})
    seeds: list[str] = field(default_factory=lambda: ["0", "1", "2", "3", "4"], metadata={"help": "Seeds."})
    source_epochs: str = field(default="5", metadata={"help": "Forecasting epochs (over the windows)."})
    supervised_epochs: str = field(default="60", metadata={"help": "Supervised source epochs."})
    target_epochs: str = field(default="40", metadata={"help": "Fine-tuning epochs (transfer and scratch)."})
    output_dir: str = field(default="runs/ucr", metadata={"help": "Where the sources and reports go."})


def run(command: list[str]) -> None:
    print("\n$ hf-rnn-transfer " + shlex.join(command), flush=True)
    if hf_rnn_transfer(command) != 0:
        raise SystemExit(f"step failed: hf-rnn-transfer {command[0]}")


def main():
    (args,) = HfArgumentParser(UCRArguments).parse_args_into_dataclasses()
    ucr, out = Path(args.ucr), Path(args.output_dir)
    for name in (args.forecasting_source, args.supervised_source, args.target):
        if not (ucr / name / f"{name}_TRAIN.tsv").exists():
            raise SystemExit(f"{ucr / name} is not a UCR dataset folder (no {name}_TRAIN.tsv).")
    shape = ["--cell_type", "gru", "--embedding_size", "32", "--hidden_size", "32", "--num_layers", "1"]
    common = ["--learning_rate", "5e-3", "--per_device_train_batch_size", "16", "--report_to", "none",
              "--save_strategy", "no", "--logging_strategy", "epoch"]  # fmt: skip
    run(
        [
            "pretrain", "--objective", "forecasting", "--dataset", str(ucr / args.forecasting_source),
            "--splits", "train", "test", "--context_length", "48", "--prediction_length", "8", "--window_stride", "8",
            *shape, "--num_train_epochs", args.source_epochs, *common, "--output_dir", str(out / "forecaster"),
        ]
    )  # fmt: skip
    run(
        [
            "pretrain", "--objective", "classification", "--dataset", str(ucr / args.supervised_source),
            *shape, "--num_train_epochs", args.supervised_epochs, *common, "--output_dir", str(out / "supervised"),
        ]
    )  # fmt: skip
    sources = {"forecaster": args.forecasting_source, "supervised": args.supervised_source}
    run(
        [
            "rank-sources", "--candidates", *(str(out / s) for s in sources), "--dataset", str(ucr / args.target),
            "--output", str(out / "ranking.md"),
        ]
    )  # fmt: skip
    for source, name in sources.items():
        run(
            [
                "compare", "--source", str(out / source), "--pooling", "concat", "--dataset", str(ucr / args.target),
                "--budgets", *args.budgets, "--seeds", *args.seeds, "--discriminative_lr",
                "--num_train_epochs", args.target_epochs, "--scratch_epochs", args.target_epochs,
                "--scratch_learning_rate", "5e-3", *common, "--output_dir", str(out / f"from_{source}"),
                "--report", str(out / f"report_{source}.md"),
            ]
        )  # fmt: skip
        print(f"\n{name} ({source}) -> {args.target}: report in {out / f'report_{source}.md'}")


if __name__ == "__main__":
    main()
