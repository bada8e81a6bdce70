"""Time-series transfer on UCR: related and unrelated sources for the same targets, ranked by LogME / LEEP /
H-score, then fine-tuned against scratch (3 seeds) with the negative-transfer test.

    python benchmarks/ucr_transfer.py [--root $HF_RNN_TRANSFER_DATA/ucr]

Sources: a GRU classifier per source dataset (its own labels). Targets get the source's encoder (input projection +
recurrent layer), a new head, and the target's own normalisation statistics; fine-tuning uses discriminative learning
rates. Related = the same group (ECG, GunPoint, SonyAIBO, ToeSegmentation); unrelated = another group.
"""

import argparse
import os
from pathlib import Path

from _report import table, write_section
from transformers import set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import DataCollatorForSeries, load_ucr, prepare_series, series_statistics
from hf_rnn_transfer.evaluation import compare
from hf_rnn_transfer.selection import rank_sources
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments
from hf_rnn_transfer.transfer import transfer

PAIRS = {  # target: (related source, unrelated source)
    "TwoLeadECG": ("ECG200", "GunPointAgeSpan"),
    "SonyAIBORobotSurface2": ("SonyAIBORobotSurface1", "ToeSegmentation1"),
    "ToeSegmentation2": ("ToeSegmentation1", "ECG200"),
    "GunPointMaleVersusFemale": ("GunPointAgeSpan", "SonyAIBORobotSurface1"),
}
SHAPE = dict(input_size=1, embedding_size=32, hidden_size=32, num_layers=1, cell_type="gru", pooling="concat")


def args_for(output: str, epochs: float, seed: int = 0, **extra) -> TransferTrainingArguments:
    return TransferTrainingArguments.for_experiment(
        output, num_train_epochs=epochs, learning_rate=5e-3, per_device_train_batch_size=16, seed=seed, **extra
    )


def dataset(name: str, root: Path):
    series, labels = prepare_series(load_ucr(name, root=root))
    mean, std = series_statistics(series["train"])
    return series, labels, mean, std


def train_source(name: str, root: Path):
    series, labels, mean, std = dataset(name, root)
    set_seed(0)
    model = RNNForSequenceClassification(
        RNNConfig(**SHAPE, input_mean=mean, input_std=std, id2label=labels.id2label, label2id=labels.label2id)
    )
    model.config.name_or_path = name
    TransferTrainer(
        model=model,
        args=args_for(f"/tmp/ucr-{name}", 60),
        train_dataset=series["train"],
        data_collator=DataCollatorForSeries(),
    ).train()
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.join(os.environ.get("HF_RNN_TRANSFER_DATA", "data"), "ucr"))
    cli = parser.parse_args()
    root = Path(cli.root)
    sources = {name: train_source(name, root) for name in sorted({s for pair in PAIRS.values() for s in pair})}
    rows = []
    for target, (related, unrelated) in PAIRS.items():
        series, labels, mean, std = dataset(target, root)
        config = dict(**SHAPE, input_mean=mean, input_std=std, id2label=labels.id2label, label2id=labels.label2id)
        ranking = rank_sources([sources[related], sources[unrelated]], series["train"], label_column="labels")
        scores = {s.source: s for s in ranking.scores}
        collator = DataCollatorForSeries()

        def make_scratch(seed, config=config):
            set_seed(seed)
            return RNNForSequenceClassification(RNNConfig(**config))

        for kind, name in (("related", related), ("unrelated", unrelated)):

            def make_transfer(seed, name=name, config=config):
                set_seed(seed)
                model, _ = transfer(sources[name], RNNForSequenceClassification(RNNConfig(**config)))
                return model

            result = compare(
                make_transfer,
                make_scratch,
                series["train"],
                series["test"],
                args_for("/tmp/ucr-ft", 40, discriminative_lr=True),
                collator,
                budgets=[None],
                seeds=[0, 1, 2],
                scratch_args=args_for("/tmp/ucr-sc", 40),
                progress=False,
            )
            delta = result.mean("transfer", None) - result.mean("scratch", None)
            s = scores[name]
            rows.append(
                [
                    f"{target} ({len(series['train'])} train)",
                    f"{name} ({kind})",
                    f"{s.logme:.3f}",
                    f"{s.leep:.3f}",
                    f"{s.hscore:.3f}",
                    f"{result.mean('transfer', None):.3f} ± {result.std('transfer', None):.3f}",
                    f"{result.mean('scratch', None):.3f} ± {result.std('scratch', None):.3f}",
                    f"{delta:+.3f}",
                    result.verdict(None),
                ]
            )
    body = table(
        [
            "target",
            "source",
            "LogME",
            "LEEP",
            "H-score",
            "transfer acc",
            "scratch acc",
            "difference",
            "verdict (paired t-test, 3 seeds)",
        ],
        rows,
    )
    write_section("ucr-transfer", "Time-series transfer on UCR: related vs unrelated sources", body)


if __name__ == "__main__":
    main()
