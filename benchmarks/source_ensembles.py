"""Ensembles of sources: does averaging the fine-tuned models of LogME's top k sources beat the best single source?

Same pool, targets, 100 labels per seed and test splits as `source_ranking.py` (its `--output_dir` holds the
sources; they are trained there if missing). For each target and seed, LogME ranks the candidates on that seed's
labels; every supervised candidate is fine-tuned with the recommended recipe (8 epochs, as in the ranking table) on
those labels, and the class probabilities of the top k on the test split are averaged, for k = 1 (LogME's first), 2,
3, 5, 8 and every supervised source. The language-model sources are left out of the averages (their classifiers
start from an untrained head). Beside them: the best single source chosen on the test set (the oracle of the auto
table, an upper bound over single sources).

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/source_ensembles.py --output_dir /tmp/pool
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/source_ensembles.py --pool ucr --output_dir /tmp/ucrpool
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/source_ensembles.py --pool ucr --output_dir /tmp/ucrpool \
        --auto_ensembles 5 --auto_rules ensemble_recipe_or_best

`--pool ucr`: the pool and targets of `source_ranking_ucr.py` (a GRU classifier and a forecaster per UCR set; each
set a target with its whole train split; LogME ranks on it; every candidate fine-tuned with that benchmark's recipe,
20 epochs; the forecasters are members too, since their classifiers are fine-tuned like the others').

Results are cached per target and seed in `--output_dir/ensembles.json`; with `--auto_ensembles`, `auto` runs on every
UCR target and seed per ensemble size and trial rule (`--auto_rules`), cached in `--output_dir/auto.json`.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import source_ranking as ranking
from _report import table, write_section
from _reviews import SENTIMENT, data_root

from hf_rnn_transfer.commands.auto import TRIAL_RULES
from hf_rnn_transfer.data import LabelMap
from hf_rnn_transfer.evaluation import balanced_budget_indices, class_probabilities
from hf_rnn_transfer.selection import rank_sources
from hf_rnn_transfer.trainer import TransferTrainer

SIZES = (1, 2, 3, 5, 8)


def run_seed(target: str, pool: dict[str, str], seed: int, budget: int, built: dict) -> dict:
    """LogME's order on this seed's labels, each supervised source's test accuracy, and the top-k averages."""
    train, test = ranking.target_data(target)
    candidates = {n: f for n, f in pool.items() if n not in ranking.excluded_for(target)}
    names = {f: n for n, f in candidates.items()}
    rows = balanced_budget_indices(train["label"], [budget], seed)[budget]
    order = [names[f] for f in rank_sources(list(candidates.values()), train.select(rows), max_examples=None,
                                            progress=False).ranked()]  # fmt: skip
    supervised = [n for n in order if not n.startswith("lm-")]
    probabilities, labels = {}, None
    for name in supervised:
        if name not in built:
            built[name] = ranking.Candidate(candidates[name], train, test, LabelMap(SENTIMENT.names))
        candidate = built[name]
        model = candidate.model(seed)
        args = ranking.recipe(tempfile.mkdtemp(), seed)
        rows_seen = candidate.train.select(rows)
        TransferTrainer(model=model, args=args, train_dataset=rows_seen, data_collator=candidate.collator).train()
        probabilities[name], labels = class_probabilities(model, candidate.test, candidate.collator)
    return averaged(order, supervised, probabilities, np.asarray(labels))


def ucr_target(target: str):
    """A UCR target's prepared train and test splits and the classifier config keywords (labels, input statistics)."""
    from hf_rnn_transfer.data import load_ucr, prepare_series, series_statistics

    series, labels = prepare_series(load_ucr(target, root=data_root() / "ucr"))
    mean, std = series_statistics(series["train"])
    config = dict(id2label=labels.id2label, label2id=labels.label2id, input_mean=mean, input_std=std)
    return series["train"], series["test"], config


def run_ucr_target(target: str, pool: dict[str, str], seeds, done: set) -> dict:
    """`run_seed` for a UCR target (its whole train split), every seed not in `done`."""
    import source_ranking_ucr as ucr
    from transformers import set_seed

    from hf_rnn_transfer import RNNForSequenceClassification, TransferConfig
    from hf_rnn_transfer.data import DataCollatorForSeries

    train, test, config = ucr_target(target)
    collator = DataCollatorForSeries()
    candidates = {n: f for n, f in pool.items() if not n.startswith(f"{target}-")}
    names = {f: n for n, f in candidates.items()}
    order = [names[f] for f in rank_sources(list(candidates.values()), train, label_column="labels",
                                            max_examples=None, progress=False).ranked()]  # fmt: skip
    out = {}
    for seed in [s for s in seeds if s not in done]:
        probabilities, truth = {}, None
        for name in order:
            set_seed(seed)
            model = RNNForSequenceClassification.from_pretrained(candidates[name], transfer=TransferConfig(), **config)
            TransferTrainer(model=model, args=ucr.recipe(seed), train_dataset=train, data_collator=collator).train()
            probabilities[name], truth = class_probabilities(model, test, collator)
        out[seed] = averaged(order, order, probabilities, np.asarray(truth))
    return out


def run_ucr_auto(target: str, pool: dict[str, str], seed: int, ensemble: int, rule: str, smallest: int) -> dict:
    """`auto_transfer` on a UCR target's train split over the pool (its own two sources left out), with the ranking
    benchmark's recipe; its test accuracy, wall time and choice."""
    import source_ranking_ucr as ucr
    from datasets import DatasetDict

    from hf_rnn_transfer.commands import AutoArguments, TargetDataArguments, auto_transfer
    from hf_rnn_transfer.data import load_ucr

    raw = load_ucr(target, root=data_root() / "ucr")
    names = {f: n for n, f in pool.items() if not n.startswith(f"{target}-")}
    start = time.perf_counter()
    result = auto_transfer(list(names), DatasetDict(train=raw["train"], test=raw["test"]), TargetDataArguments(),
                           AutoArguments(trial_rule=rule, **ranking.ensemble_arguments(ensemble, smallest)),
                           ucr.recipe(seed))  # fmt: skip
    label = ranking.chosen_label(result.chosen, names)
    seconds = time.perf_counter() - start
    print(f"auto {target} seed {seed} {ranking.auto_variant(rule, ensemble, smallest)}: {result.test_score:.3f} with "
          f"{label}", flush=True)  # fmt: skip
    # the reason and the held-out trial scores stay in the cache: why a run chose as it did, without running it again
    return {"accuracy": result.test_score, "seconds": seconds, "chosen": label, "reason": result.reason,
            "trials": ranking.trial_scores(result)}  # fmt: skip


def auto_key(target: str, seed: int, rule: str, ensemble: int, smallest: int) -> str:
    return f"auto {target} seed={seed}{ranking.auto_key_suffix(ensemble, smallest) or ' ensemble=0'} rule={rule}"


def summarise_ucr_auto(autos: dict, results: dict, targets, seeds, variants) -> str:
    """One row per target: auto per (trial rule, ensemble size) beside LogME's first, the top-5 average, the oracle
    and scratch (the first three from the ensembles table's fine-tuned candidates: same recipe, same splits)."""
    rows, columns = [], {}
    for target in targets:
        runs = [results[f"{target} budget=train split seed={seed}"] for seed in seeds]
        single = {n: np.mean([r["accuracy"][n] for r in runs]) for n in runs[0]["accuracy"]}
        auto_runs = {v: [autos[auto_key(target, seed, *v)] for seed in seeds] for v in variants}
        cells = {f"auto{v}": np.mean([a["accuracy"] for a in runs_v]) for v, runs_v in auto_runs.items()}
        cells["first"] = np.mean([r["accuracy"][r["order"][0]] for r in runs])
        cells["top5"] = np.mean([r["ensemble"]["5"] for r in runs])
        cells["oracle"] = max(single.values())
        cells["scratch"] = np.mean([autos[f"scratch {target} seed={seed}"] for seed in seeds])
        for name, value in cells.items():
            columns.setdefault(name, []).append(value)
        chose = ["; ".join(a["chosen"] for a in runs_v) for runs_v in auto_runs.values()]
        walls = [np.mean([a["seconds"] for a in runs_v]) for runs_v in auto_runs.values()]
        rows.append([target, *(f"{v:.3f}" for v in cells.values()), *chose, *(f"{w:.0f} s" for w in walls)])
    means = {name: float(np.mean(v)) for name, v in columns.items()}
    rows.append(["**mean**", *(f"**{v:.3f}**" for v in means.values()), *[""] * (2 * len(variants))])
    names = [f"auto ({ranking.auto_variant(r, e, m)})" if e else f"auto ({r}), single sources only"
             for r, e, m in variants]  # fmt: skip
    header = ["target", *names, "LogME's first (fixed recipe)", "average of LogME's top 5", "oracle single source",
              "scratch", *(f"{n}: chose, per seed" for n in names), *(f"{n}: wall time" for n in names)]  # fmt: skip
    gaps = "; ".join(
        f"{name}: {means[f'auto{v}'] - means['oracle']:+.3f} vs the oracle, {means[f'auto{v}'] - means['first']:+.3f} "
        f"vs LogME's first, {means[f'auto{v}'] - means['scratch']:+.3f} vs scratch, worst target "
        f"{min(a - s for a, s in zip(columns[f'auto{v}'], columns['scratch'])):+.3f} vs scratch"
        for name, v in zip(names, variants)
    )
    return table(header, rows) + (
        f"\n\nTest accuracy, mean over seeds {list(seeds)}, each target's whole train split as the budget. Mean over "
        f"targets, auto minus each: {gaps}. auto: LogME ranks the 22 candidates, the top 3 are validated by 3-fold "
        "cross-validation inside the train split with the ranking benchmark's recipe (5e-3, 20 epochs; auto chooses "
        "its own stopping epoch), then the other strategies and embedding-only transfer on the best, scratch as the "
        "floor, and (ensemble of 5) the average of LogME's top 5 (ensemble of 2-5: also the averages of the top 2-4 "
        "on the same held-out predictions, no extra training; a smaller one that beats the top 5 by more than one "
        "standard error of their per-row difference sets it aside and competes without the ensemble's margin); the "
        "trial rule is named in brackets "
        "(`ensemble_recipe_or_best`: `ensemble_or_best` after setting aside every other strategy or layer choice of a "
        "source that does not beat the source's recipe run by more than one standard error of their per-row "
        "difference; `ensemble_or_best`: the ensemble if within one binomial standard error of the best held-out "
        "score, else the highest-scoring trial; `one_standard_error`: the preferred trial - the ensemble, then the "
        "higher-ranked source, then the recommended recipe - within one standard error of the best). LogME's "
        "first, the top-5 average and the oracle (the best single source on test, an upper bound) come from the "
        "ensembles table above: every candidate fine-tuned with the recipe for its 20 epochs. Scratch: the same GRU, "
        "40 epochs."
    )


def averaged(order: list[str], members: list[str], probabilities: dict, labels: np.ndarray) -> dict:
    """Each candidate's test accuracy and the accuracy of the top-k averages of `members` (in `order`)."""
    accuracy = {n: float((p.argmax(-1) == labels).mean()) for n, p in probabilities.items()}
    averages = {}
    for k in [*SIZES, len(members)]:
        mean = np.mean([probabilities[n] for n in members[:k]], axis=0)
        averages[str(k)] = float((mean.argmax(-1) == labels).mean())
    return {"order": order, "accuracy": accuracy, "ensemble": averages}


def summarise(results: dict, targets, seeds, budget) -> str:
    rows, columns = [], {}
    for target in targets:
        runs = [results[f"{target} budget={budget} seed={seed}"] for seed in seeds]
        sizes = list(runs[0]["ensemble"])
        every = sizes[-1]
        oracle = max(np.mean([r["accuracy"][n] for r in runs]) for n in runs[0]["accuracy"])
        cells = {f"top {k}" if k != every else f"all ({k})": np.mean([r["ensemble"][k] for r in runs])
                 for k in sizes}  # fmt: skip
        cells = {"LogME's first": cells.pop("top 1"), **cells, "best single (oracle)": oracle}
        for name, value in cells.items():
            columns.setdefault(name.split(" (")[0], []).append(value)
        rows.append([target, *(f"{v:.3f}" for v in cells.values())])
    header = ["target", "LogME's first", *(f"average of top {k}" for k in SIZES[1:]), "average of every candidate",
              "best single, chosen on test (oracle)"]  # fmt: skip
    means = {name: float(np.mean(v)) for name, v in columns.items()}
    rows.append(["**mean**", *(f"**{v:.3f}**" for v in means.values())])
    oracle = means["best single"]
    gaps = ", ".join(f"{name} {value - oracle:+.3f}" for name, value in means.items() if name != "best single")
    labelled = f"{budget} labels each" if isinstance(budget, int) else "each target's train split"
    text = (
        table(header, rows)
        + f"\n\nTest accuracy, mean over seeds {list(seeds)} ({labelled}). Against the oracle single source: "
        f"{gaps}. The averages use LogME's order; every member is fine-tuned alike (the benchmark's recipe, no "
        "selection)."
    )
    if isinstance(budget, int):
        text += (
            " `auto` validates the top-5 average inside the budget beside the single sources "
            "(`AutoArguments(ensemble=5)`, the default): the auto table below."
        )
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", choices=["text", "ucr"], default="text")
    parser.add_argument("--targets", nargs="+", help="default: the pool's targets (text: the ranking table's six)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--output_dir", default=str(Path(tempfile.gettempdir()) / "hf-rnn-transfer-source-pool"))
    parser.add_argument("--auto_ensembles", nargs="*", type=int, default=[],
                        help="--pool ucr: also run `auto` with these ensemble sizes (5: its default; 0: single sources "
                        "only) on every target and seed, cached in OUTPUT_DIR/auto.json")  # fmt: skip
    parser.add_argument("--auto_rules", nargs="+", default=["ensemble_recipe_or_best"], choices=list(TRIAL_RULES),
                        help="--pool ucr: auto's trial rules, each run with every --auto_ensembles size")  # fmt: skip
    parser.add_argument("--auto_ensemble_min_sizes", nargs="+", type=int, default=[2],
                        help="--pool ucr: auto's smallest ensemble sizes, each run with every --auto_ensembles N (N: "
                        "the top N only; the default of auto is 2)")  # fmt: skip
    cli = parser.parse_args()
    data_root()
    output = Path(cli.output_dir)
    if cli.pool == "ucr":
        return main_ucr(cli, output)
    cli.targets = cli.targets or list(ranking.DEFAULT_TARGETS)
    # the pool source_ranking.py builds: every default target's test removed
    pool = ranking.build_pool(output / "sources", ranking.test_text_keys(ranking.DEFAULT_TARGETS), 8, 600)
    cache = output / "ensembles.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    for target in cli.targets:
        built = {}
        for seed in cli.seeds:
            key = f"{target} budget={cli.budget} seed={seed}"
            if key not in results:
                results[key] = run_seed(target, pool, seed, cli.budget, built)
                cache.write_text(json.dumps(results, indent=1))
                print(key, json.dumps(results[key]["ensemble"]), flush=True)
    write_section(
        "source-ensembles",
        f"Ensembles of sources: the top k of LogME's ranking, averaged ({cli.budget} labels)",
        summarise(results, cli.targets, cli.seeds, cli.budget),
    )


def main_ucr(cli, output: Path) -> None:
    import source_ranking_ucr as ucr

    root = data_root() / "ucr"
    pool = ucr.build_pool(root, output / "sources", 60)  # as source_ranking_ucr.py builds them (60 source epochs)
    targets = cli.targets or ucr.sets(root)
    cache = output / "ensembles.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    for target in targets:
        done = {s for s in cli.seeds if f"{target} budget=train split seed={s}" in results}
        if done == set(cli.seeds):
            continue  # nothing to fine-tune: not even the ranking is needed
        for seed, entry in run_ucr_target(target, pool, cli.seeds, done).items():
            results[f"{target} budget=train split seed={seed}"] = entry
            print(target, seed, json.dumps(entry["ensemble"]), flush=True)
        cache.write_text(json.dumps(results, indent=1))
    write_section(
        "source-ensembles-ucr",
        "Ensembles of sources on UCR: the top k of LogME's ranking, averaged (each target's train split)",
        summarise(results, targets, cli.seeds, "train split"),
    )
    if not cli.auto_ensembles:
        return
    import source_ranking_ucr as ucr

    auto_cache = output / "auto.json"
    autos = json.loads(auto_cache.read_text()) if auto_cache.exists() else {}
    for target in targets:
        for seed in cli.seeds:
            if f"scratch {target} seed={seed}" not in autos:
                autos[f"scratch {target} seed={seed}"] = ucr.scratch_accuracy(*ucr_target(target), seed)
                auto_cache.write_text(json.dumps(autos, indent=1))
    variants = ranking.auto_variants(cli.auto_rules, cli.auto_ensembles, cli.auto_ensemble_min_sizes)
    for rule, ensemble, smallest in variants:  # the first variant for every target before the next
        for target in targets:
            for seed in cli.seeds:
                key = auto_key(target, seed, rule, ensemble, smallest)
                if key not in autos:
                    autos[key] = run_ucr_auto(target, pool, seed, ensemble, rule, smallest)
                    auto_cache.write_text(json.dumps(autos, indent=1))
    write_section(
        "auto-transfer-ucr",
        "auto on the UCR pool: source, layers, recipe (and ensemble) chosen inside each target's train split",
        summarise_ucr_auto(autos, results, targets, cli.seeds, variants),
    )


if __name__ == "__main__":
    main()
