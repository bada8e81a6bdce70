"""Ensembles of sources: does averaging the fine-tuned models of LogME's top k sources beat the best single source?

Same pool, targets, 100 labels per seed and test splits as `source_ranking.py` (its `--output_dir` holds the
sources; they are trained there if missing). For each target and seed, LogME ranks the candidates on that seed's
labels; every supervised candidate is fine-tuned with the recommended recipe (8 epochs, as in the ranking table) on
those labels, and the class probabilities of the top k on the test split are averaged, for k = 1 (LogME's first), 2,
3, 5, 8 and every supervised source. The language-model sources are left out of the averages (their classifiers
start from an untrained head). Beside them: the best single source chosen on the test set (the oracle of the auto
table, an upper bound over single sources).

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/source_ensembles.py --output_dir /tmp/pool

Results are cached per target and seed in `--output_dir/ensembles.json`.
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import source_ranking as ranking
from _report import table, write_section
from _reviews import SENTIMENT, data_root, text_key

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
    labels = np.asarray(labels)
    accuracy = {n: float((p.argmax(-1) == labels).mean()) for n, p in probabilities.items()}
    averages = {}
    for k in [*SIZES, len(supervised)]:
        mean = np.mean([probabilities[n] for n in supervised[:k]], axis=0)
        averages[str(k)] = float((mean.argmax(-1) == labels).mean())
    return {"order": order, "accuracy": accuracy, "ensemble": averages}


def summarise(results: dict, targets, seeds, budget: int) -> str:
    rows, columns = [], {}
    for target in targets:
        runs = [results[f"{target} budget={budget} seed={seed}"] for seed in seeds]
        sizes = list(runs[0]["ensemble"])
        every = sizes[-1]
        oracle = max(np.mean([r["accuracy"][n] for r in runs]) for n in runs[0]["accuracy"])
        cells = {f"top {k}" if k != every else f"all supervised ({k})": np.mean([r["ensemble"][k] for r in runs])
                 for k in sizes}  # fmt: skip
        cells = {"LogME's first": cells.pop("top 1"), **cells, "best single (oracle)": oracle}
        for name, value in cells.items():
            columns.setdefault(name.split(" (")[0], []).append(value)
        rows.append([target, *(f"{v:.3f}" for v in cells.values())])
    header = ["target", "LogME's first", *(f"average of top {k}" for k in SIZES[1:]), "average of every supervised",
              "best single, chosen on test (oracle)"]  # fmt: skip
    means = {name: float(np.mean(v)) for name, v in columns.items()}
    rows.append(["**mean**", *(f"**{v:.3f}**" for v in means.values())])
    oracle = means["best single"]
    gaps = ", ".join(f"{name} {value - oracle:+.3f}" for name, value in means.items() if name != "best single")
    return (
        table(header, rows)
        + f"\n\nTest accuracy, mean over seeds {list(seeds)} ({budget} labels each). Against the oracle single source: "
        f"{gaps}. The averages use each seed's own LogME order; every member is fine-tuned alike (the recommended "
        "recipe, no selection). `auto` validates the top-5 average inside the budget beside the single sources "
        "(`AutoArguments(ensemble=5)`, the default): the auto table below."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(ranking.DEFAULT_TARGETS), choices=ranking.FDU_DOMAINS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--output_dir", default=str(Path(tempfile.gettempdir()) / "hf-rnn-transfer-source-pool"))
    cli = parser.parse_args()
    data_root()
    output = Path(cli.output_dir)
    banned = set()
    for target in ranking.DEFAULT_TARGETS:  # the pool source_ranking.py builds: every default target's test removed
        banned |= {text_key(t) for t in ranking.target_data(target)[1]["text"]}
    pool = ranking.build_pool(output / "sources", banned, 8, 600)
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


if __name__ == "__main__":
    main()
