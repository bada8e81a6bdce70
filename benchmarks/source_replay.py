"""Source replay: do the target's labels add accuracy when fine-tuning keeps training on the source's?

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/source_replay.py --sources_dir /tmp/bench_ens
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/source_replay.py --sources_dir /tmp/bench_dev \
        --target electronics --select_rule paired_standard_error --weights 0

With a source trained on ~31,000 labelled reviews of other domains, the recommended recipe's selection inside the budget
keeps the source untouched at most budgets (sentiment_sources.py: "chosen mix 0"), while the linear model on the same
source labels plus the budget's gains a point from 1,000 kitchen labels. This script fine-tunes the `lm_all_domains`
source of `--target` (kitchen by default; the one `sentiment_sources.py --output_dir DIR` trained under DIR/TARGET,
trained there if missing) on each budget with the recommended recipe and no selection (all its epochs, the fine-tuned
weights kept), without and with source replay (`source_replay_weight`, a batch of the ~31,500 source reviews beside each
target batch), and reports test accuracy (the target's 1,000 test reviews), the average of each RNN's and the linear
model's class probabilities (the linear model on the same source labels + the budget's, x10), and the fine-tuning time.
The source's zero-shot accuracy and the linear model alone are the lines to beat; beside them, sentiment_sources.py's
run with the selection inside the budget (`--select_rule`), when its results hold these budgets and seeds. A target
other than kitchen gets its own docs/benchmarks.md section.
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import sentiment_sources as bench
from _report import table, write_section
from _reviews import source_reviews, target_splits
from transformers import set_seed

from hf_rnn_transfer import RNNForSequenceClassification
from hf_rnn_transfer.evaluation import balanced_budget_indices, class_probabilities
from hf_rnn_transfer.trainer import RecommendedTrainingArguments, TransferTrainer
from hf_rnn_transfer.transfer_config import TransferConfig

VARIANT = "lm_all_domains"


def source_folder(out: Path, target: str, splits, source) -> Path:
    """The target's `lm_all_domains` source under `out` (sentiment_sources.py's layout), trained when missing."""
    folder = out / VARIANT / "source"
    if not (folder / "config.json").exists():
        folder, _, _ = bench.train_source(VARIANT, target, out / VARIANT, source, splits)
    return folder


def linear_probabilities(out: Path, splits, source, chosen, budget: int, seed: int) -> np.ndarray:
    """The linear model on the source labels + the budget's (x10): sentiment_sources.py's saved probabilities of
    that budget and seed, or fitted here the same way."""
    saved = bench.probabilities_folder(out, VARIANT, "linear") / f"{budget}-{seed}.npy"
    if saved.exists():
        return np.load(saved)
    pool_texts, pool_labels = list(splits["pool"]["text"]), list(splits["pool"]["label"])
    texts, labels = list(source["text"]), list(source["label"])
    return bench.linear_probabilities(
        texts + [pool_texts[i] for i in chosen],
        labels + [pool_labels[i] for i in chosen],
        [1.0] * len(texts) + [10.0] * len(chosen),
        texts + pool_texts,
        list(splits["test"]["text"]),
    )


def selection_results(sources_dir: Path, cli) -> list[str] | None:
    """sentiment_sources.py's `lm_all_domains` test accuracy on the target (recommended recipe with the selection
    inside the budget, by `cli.select_rule` with 3 folds) at these budgets and seeds, when its results.json holds
    them."""
    saved = sources_dir / "results.json"
    plain = argparse.Namespace(select_folds=bench.DEFAULT_FOLDS, source_replay_weight=0.0)  # the run's own settings
    key = bench.result_key(VARIANT, cli.select_rule, plain)
    variants = json.loads(saved.read_text()).get(cli.target, {}).get("variants", {}) if saved.exists() else {}
    entry = variants.get(key)
    if not entry or any(len(entry["transfer"].get(str(b), [])) < max(cli.seeds) + 1 for b in cli.budgets):
        return None
    cells = []
    for budget in cli.budgets:
        values = [entry["transfer"][str(budget)][seed] for seed in cli.seeds]
        cells.append(f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else ""))
    return cells


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources_dir", default="/tmp/hf-rnn-transfer-sentiment-sources")
    parser.add_argument("--target", default="kitchen", choices=bench.TARGETS)
    parser.add_argument(
        "--select_rule",
        default="one_standard_error",
        choices=list(bench.SELECTION_RULES),
        help="the selection rule of sentiment_sources.py's run shown beside these (its results under --sources_dir)",
    )
    parser.add_argument("--budgets", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 1.0], help="source replay weights")
    cli = parser.parse_args()
    out = Path(cli.sources_dir) / cli.target
    splits, source = target_splits(cli.target), source_reviews(cli.target, fdu=True)
    folder = source_folder(out, cli.target, splits, source)
    collator, pool, test, _ = bench.encoded_target(folder, VARIANT, splits)
    replay = bench.encoded_source(folder, VARIANT, source)
    labels = np.asarray(splits["test"]["label"])
    accuracy = lambda p: float((p.argmax(-1) == labels).mean())  # noqa: E731
    zero_shot, _ = class_probabilities(RNNForSequenceClassification.from_pretrained(folder), test, collator)
    recipe = RecommendedTrainingArguments(
        str(out / "replay-runs"), report_to="none", save_strategy="no", disable_tqdm=True, select_folds=0
    )
    saved = out / "source_replay.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    pool_labels = list(splits["pool"]["label"])
    for seed in cli.seeds:
        subsets = balanced_budget_indices(pool_labels, cli.budgets, seed)
        for budget in cli.budgets:
            linear = linear_probabilities(out, splits, source, subsets[budget], budget, seed)
            results[f"linear {budget} {seed}"] = {
                "alone": accuracy(linear),
                "zero_shot_avg": accuracy((zero_shot + linear) / 2),
            }
            for weight in cli.weights:
                key = f"{budget} {seed} {weight:g}"
                if key in results:
                    continue
                set_seed(seed)
                model = RNNForSequenceClassification.from_pretrained(
                    folder,
                    transfer=TransferConfig(transfer_head=True),
                    id2label=dict(enumerate(bench.NAMES)),
                    label2id={n: i for i, n in enumerate(bench.NAMES)},
                )
                args = replace(recipe, seed=seed, source_replay_weight=weight)
                started = time.perf_counter()
                TransferTrainer(
                    model, args, train_dataset=pool.select(subsets[budget]), data_collator=collator,
                    replay_dataset=replay if weight else None,
                ).train()  # fmt: skip
                seconds = time.perf_counter() - started
                probabilities, _ = class_probabilities(model, test, collator)
                results[key] = {
                    "rnn": accuracy(probabilities),
                    "with_linear": accuracy((probabilities + linear) / 2),
                    "seconds": round(seconds, 1),
                }
                print(key, results[key], flush=True)
                saved.write_text(json.dumps(results, indent=1))
    saved.write_text(json.dumps(results, indent=1))

    def cell(key, field, fmt=".3f") -> list[str]:
        """Mean ± std over the seeds of `results[key(budget, seed)][field]`, one cell per budget."""
        cells = []
        for budget in cli.budgets:
            values = [results[key(budget, seed)][field] for seed in cli.seeds]
            spread = f" ± {np.std(values):{fmt}}" if len(values) > 1 and field != "seconds" else ""
            cells.append(f"{np.mean(values):{fmt}}{spread}")
        return cells

    columns = [str(b) for b in cli.budgets]
    rows = [["source zero-shot (0 labels)"] + [f"{accuracy(zero_shot):.3f}"] * len(columns)]
    selected = selection_results(Path(cli.sources_dir), cli)
    if selected:
        name = f"fine-tuned, selection inside the budget ({cli.select_rule} rule, sentiment_sources.py's run)"
        rows.append([name] + selected)
    for weight in cli.weights:
        name = f"source replay {weight:g}" if weight else "no replay"
        run = lambda b, s, w=weight: f"{b} {s} {w:g}"  # noqa: E731
        rows.append([f"**fine-tuned, all epochs, {name}**"] + cell(run, "rnn"))
        rows.append(["  + linear model (average)"] + cell(run, "with_linear"))
        rows.append(["  fine-tuning seconds (mean)"] + cell(run, "seconds", ".0f"))
    linear_key = lambda b, s: f"linear {b} {s}"  # noqa: E731
    rows.append(["TF-IDF + LR, source labels + budget x10"] + cell(linear_key, "alone"))
    rows.append(["source zero-shot + linear model (average)"] + cell(linear_key, "zero_shot_avg"))
    body = (
        f"Seeds {cli.seeds}, {cli.target} labels as columns; the recommended recipe (gradual unfreezing over 8 epochs, "
        "discriminative rates from 4e-3, slanted triangular schedule) without selection inside the budget, so each "
        f"row shows what fine-tuning itself does; `source replay w` adds a batch of the source's {len(source):,} "
        "labelled reviews to each step, its loss weighted w. The selection row is the same source fine-tuned with "
        "the selection inside the budget (3 folds, the rule it names) by sentiment_sources.py, on the same budgets "
        f"and seeds. Test: the {cli.target} test set's {len(labels):,} reviews.\n\n"
        + table([f"{cli.target} test accuracy, labels:", *columns], rows)
    )
    name, title = "source-replay", "Source replay: fine-tuning that keeps training on the source's labels"
    if cli.target != "kitchen":  # kitchen's section keeps its name
        name, title = f"{name}-{cli.target}", f"{title} ({cli.target})"
    write_section(name, title, body)


if __name__ == "__main__":
    main()
