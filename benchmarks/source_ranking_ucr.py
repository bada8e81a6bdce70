"""Source ranking at scale on time series: every UCR set in `$HF_RNN_TRANSFER_DATA/ucr` gives two sources (a GRU
classifier of its own labels and a GRU forecaster of its series) and is a target in turn (its own two sources left
out): each score ranks the other sets' sources on the target's small train split, and each candidate is fine-tuned
on that split (3 seeds) and scored on the target's test split. Related UCR sets share series (the GunPoint family
is one recording relabelled three ways): every target test series is removed from every source's training data
(series compared by their values rounded to 4 decimals).

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/source_ranking_ucr.py [--seeds 0 1 2]

Results are cached in `--output_dir/results.json`, sources in `--output_dir/sources`.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _reviews import data_root
from source_ranking import PROXY, summarise
from transformers import set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, RNNForTimeSeriesForecasting, TransferConfig
from hf_rnn_transfer.data import (
    DataCollatorForSeries,
    forecasting_windows,
    load_ucr,
    prepare_series,
    series_statistics,
)
from hf_rnn_transfer.evaluation import accuracy_of, scratch_arguments
from hf_rnn_transfer.selection import fine_tuning_proxy, rank_sources
from hf_rnn_transfer.trainer import RecommendedTrainingArguments, TransferTrainer, TransferTrainingArguments

SHAPE = dict(input_size=1, embedding_size=32, hidden_size=32, num_layers=1, cell_type="gru", pooling="concat")
EPOCHS = 20  # fine-tuning epochs (the splits are small: 20-300 series)


def key(values) -> bytes:
    return np.round(np.asarray(values, dtype=np.float64), 4).tobytes()


def sets(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}_TRAIN.tsv").is_file())


def train_sources(name: str, root: Path, banned: set[bytes], folder: Path, epochs: int) -> int:
    """The set's classifier and forecaster on its train series, without any banned (target test) series."""
    raw = load_ucr(name, root=root)
    train = raw["train"].filter(lambda row: key(row["values"]) not in banned)
    series, labels = prepare_series(train)
    mean, std = series_statistics(series)
    collator = DataCollatorForSeries()
    set_seed(0)
    classifier = RNNForSequenceClassification(
        RNNConfig(**SHAPE, input_mean=mean, input_std=std, id2label=labels.id2label, label2id=labels.label2id)
    )
    args = TransferTrainingArguments.for_experiment(
        tempfile.mkdtemp(), num_train_epochs=epochs, learning_rate=5e-3, per_device_train_batch_size=16
    )
    TransferTrainer(model=classifier, args=args, train_dataset=series, data_collator=collator).train()
    classifier.save_pretrained(folder / f"{name}-classifier")
    unlabelled, _ = prepare_series(train.remove_columns("label"), label_column=None)
    windows = forecasting_windows(unlabelled, 24, 4, stride=4)
    set_seed(0)
    forecaster = RNNForTimeSeriesForecasting(RNNConfig(**SHAPE, input_mean=mean, input_std=std, prediction_length=4))
    args = TransferTrainingArguments.for_experiment(
        tempfile.mkdtemp(), num_train_epochs=10, learning_rate=5e-3, per_device_train_batch_size=64
    )
    TransferTrainer(model=forecaster, args=args, train_dataset=windows, data_collator=collator).train()
    forecaster.save_pretrained(folder / f"{name}-forecaster")
    return len(train)


def build_pool(root: Path, folder: Path, epochs: int) -> dict[str, str]:
    """Every UCR set's classifier and forecaster under `folder` (name -> path), trained where missing, each without
    any set's test series."""
    names, banned, pool = sets(root), None, {}
    for name in names:
        if not (folder / f"{name}-forecaster" / "config.json").is_file():
            banned = banned or {key(v) for n in names for v in load_ucr(n, root=root)["test"]["values"]}
            start = time.perf_counter()
            kept = train_sources(name, root, banned, folder, epochs)
            print(f"sources of {name}: {kept} train series, {time.perf_counter() - start:.0f}s", flush=True)
        pool.update({f"{name}-{kind}": str(folder / f"{name}-{kind}") for kind in ("classifier", "forecaster")})
    return pool


def recipe(seed: int, epochs: float = EPOCHS) -> RecommendedTrainingArguments:
    return RecommendedTrainingArguments(
        output_dir=tempfile.mkdtemp(), seed=seed, num_train_epochs=epochs, learning_rate=5e-3, select_folds=0,
        save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no",
    )  # fmt: skip


def run_target(target: str, root: Path, pool: dict[str, str], seeds) -> dict:
    series, labels = prepare_series(load_ucr(target, root=root))
    mean, std = series_statistics(series["train"])
    train, test = series["train"], series["test"]
    collator = DataCollatorForSeries()
    candidates = {n: f for n, f in pool.items() if not n.startswith(f"{target}-")}
    start = time.perf_counter()
    ranking = rank_sources(list(candidates.values()), train, label_column="labels", max_examples=None, progress=True)
    names = {f: n for n, f in candidates.items()}
    result = {
        "candidates": list(candidates),
        "rank_seconds": time.perf_counter() - start,
        "scores": {names[s.source]: s.scores for s in ranking.scores},
        "untrained": {names[s.source]: s.untrained for s in ranking.scores},
        "warnings": {names[s.source]: s.warnings for s in ranking.scores if s.warnings},
        "accuracy": {},
        "finetune_seconds": {},
        "proxy_seconds": {},
    }
    config = dict(id2label=labels.id2label, label2id=labels.label2id, input_mean=mean, input_std=std)

    def make(folder, seed):
        set_seed(seed)
        return RNNForSequenceClassification.from_pretrained(folder, transfer=TransferConfig(), **config)

    def score(model, rows):
        return accuracy_of(model, rows, collator)

    for name, folder in candidates.items():
        start = time.perf_counter()
        result["scores"][name][PROXY] = fine_tuning_proxy(
            lambda f=folder: make(f, seeds[0]), train, recipe(seeds[0], epochs=EPOCHS // 2), collator, score
        )
        result["proxy_seconds"][name] = time.perf_counter() - start
        accuracies, seconds = [], []
        for seed in seeds:
            start = time.perf_counter()
            model = make(folder, seed)
            TransferTrainer(model=model, args=recipe(seed), train_dataset=train, data_collator=collator).train()
            accuracies.append(score(model, test))
            seconds.append(time.perf_counter() - start)
        result["accuracy"][name], result["finetune_seconds"][name] = accuracies, seconds
        print(f"{target} <- {name}: {np.mean(accuracies):.3f} (proxy {result['scores'][name][PROXY]:.3f})", flush=True)
    result["scratch"] = [scratch_accuracy(train, test, config, seed) for seed in seeds]
    return result


def scratch_accuracy(train, test, config: dict, seed: int) -> float:
    """The same GRU from scratch on the target's train split (40 epochs, linear decay), its test accuracy."""
    collator = DataCollatorForSeries()
    set_seed(seed)
    model = RNNForSequenceClassification(RNNConfig(**SHAPE, **config))
    args = scratch_arguments(recipe(seed), num_train_epochs=40, lr_scheduler_type="linear", warmup_steps=0.1)
    TransferTrainer(model=model, args=args, train_dataset=train, data_collator=collator).train()
    return accuracy_of(model, test, collator)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--source_epochs", type=int, default=60)
    parser.add_argument("--output_dir", default=str(Path(tempfile.gettempdir()) / "hf-rnn-transfer-ucr-pool"))
    parser.add_argument("--targets", nargs="+", default=None,
                        help="Only these sets as targets (default: every set).")  # fmt: skip
    cli = parser.parse_args()
    root = data_root() / "ucr"
    output = Path(cli.output_dir)
    names = sets(root)
    unknown = sorted(set(cli.targets or []) - set(names))
    if unknown:
        parser.error(f"--targets {unknown}: not UCR sets under {root} (there: {names})")
    pool = build_pool(root, output / "sources", cli.source_epochs)
    cache = output / "results.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    for target in cli.targets or names:
        if f"{target} seeds={cli.seeds}" not in results:
            results[f"{target} seeds={cli.seeds}"] = run_target(target, root, pool, cli.seeds)
            cache.write_text(json.dumps(results, indent=1))
    note = (
        f"Accuracy: mean over seeds {list(cli.seeds)} of the fine-tuned model (the recommended recipe at 5e-3 for "
        f"{EPOCHS} epochs, the target's whole train split, its own input statistics) on the target's test split. "
        "Scores on the same train split. Cost: seconds of ranking (all feature scores and the untrained-encoder "
        "check, or the proxy's trainings) over the seconds of fine-tuning every candidate once. Sources: GRU "
        f"(hidden 32) classifiers ({cli.source_epochs} epochs) and forecasters (24-step windows -> 4 steps, 10 "
        "epochs), each on its set's train series minus every test series of every set."
    )
    from _report import write_section

    write_section(
        "source-ranking-ucr",
        f"Source ranking at scale on UCR: {len(pool)} series sources, each set a target",
        summarise(
            {k.split(" ")[0]: v for k, v in results.items() if k.endswith(f"seeds={cli.seeds}")},
            note,
            proxy=f"2 folds x {EPOCHS // 2} epochs",
        ),
    )


if __name__ == "__main__":
    main()
