"""Selection inside the budget when the source's head is kept: which (epoch, mix) should the rule lean to?

A source whose classifier answers the target's labels keeps its head, so mix 0 of the selection is the source
zero-shot and the paired rule (`fit_within_budget`'s default) leans towards it: among the (epoch, mix) candidates
within one standard error of the best held-out score, the smallest mix, and then, until 2026-12-06, the earliest
epoch; now the latest. This measures the choices of several rules on the same cross-validations, on two pools:

- UCR: every kept-head pair of `source_ranking_ucr.py`'s pool (each target x each other set's classifier whose answers
  beat the majority class on the train split by more than one standard error: `auto`'s test), the ranking
  benchmark's recipe (5e-3, 20 epochs), the whole train split as the budget;
- text: each FDU-MTL target of `source_ranking.py` x LogME's top 2 of its 19-20 candidates (sentiment classifiers of
  other domains: every one keeps its head) on seed 0's 100 labels, the recommended recipe (8 epochs), 100 labels.

Per pair and seed, one cross-validation per fold count (`--folds`; the first is the reference) gives each rule's
(epoch, mix), and one run on the whole budget, scored on the test split at every epoch for every mix, gives the test
accuracy of every choice (a run stopped at epoch e holds the full run's weights at e: same seed, same schedule), so
the rules are compared without training again. Also shown: the source zero-shot and the fixed recipe (last epoch,
mix 1).

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/selection_kept_head.py --ucr_dir U --text_dir T

U and T: the output folders of `source_ensembles.py --pool ucr` and `source_ranking.py`, whose pools this reuses
(`sources/`, built there if missing); results are cached per (target, source, seed) in `selection_kept_head.json`
beside them, so targets can be split across processes (`--targets`, `--no_report`) and a
run can be cut and resumed.
"""

import argparse
import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import source_ranking as ranking
import source_ranking_ucr as ucr
from _report import table, write_section
from _reviews import SENTIMENT, data_root
from source_ensembles import ucr_target
from transformers import set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, TransferConfig
from hf_rnn_transfer.budget_selection import (
    DEFAULT_MIXES,
    _choose,
    _MixScorer,
    cross_validate,
    paired_standard_error,
    starting_weights,
)
from hf_rnn_transfer.commands.target_data import is_classifier_of
from hf_rnn_transfer.data import DataCollatorForSeries, LabelMap
from hf_rnn_transfer.evaluation import accuracy_of, answers_mean_the_labels, balanced_budget_indices, row_accuracy
from hf_rnn_transfer.selection import rank_sources
from hf_rnn_transfer.trainer import TransferTrainer

KEPT = TransferConfig(transfer_head=True)  # the head moves with the source (its labels are the target's)
TEXT_BUDGET, TEXT_TOP = 100, 2


def selection_run(make_model, train, test, args, collator, folds: list[int]) -> dict:
    """Each fold count's cross-validation inside `train` (held-out scores of every (epoch, mix), and per row) and the
    test accuracy of every (epoch, mix) of the run on the whole of `train`."""
    out = {"cv": {}}
    for k in folds:
        cv = cross_validate(make_model, train, args, collator, lambda m, rows: row_accuracy(m, rows, collator), k)
        out["cv"][str(k)] = {"means": cv.means.tolist(), "row_scores": cv.row_scores.tolist(), "mixes": cv.mixes,
                             "head_transferred": cv.head_transferred}  # fmt: skip
    model = make_model()
    scorer = _MixScorer(model, starting_weights(model), test, lambda m, rows: accuracy_of(m, rows, collator),
                        list(DEFAULT_MIXES))  # fmt: skip
    trainer = TransferTrainer(model=model, args=args, train_dataset=train, data_collator=collator)
    trainer.add_callback(scorer)
    trainer.train()
    out["test"] = scorer.scores  # [epoch][mix]
    return out


def ucr_pairs(pool: dict[str, str], targets) -> list[tuple[str, str]]:
    """(target, source) for every other set's classifier whose head `auto` keeps for the target."""
    pairs = []
    for target in targets:
        train, _, config = ucr_target(target)
        for name, folder in pool.items():
            if name.startswith(f"{target}-") or not name.endswith("-classifier"):
                continue
            if not is_classifier_of(RNNConfig.from_pretrained(folder), config["id2label"]):
                continue
            model = RNNForSequenceClassification.from_pretrained(folder, transfer=KEPT, **config)
            if answers_mean_the_labels(model, train, DataCollatorForSeries())[0]:
                pairs.append((target, name))
    return pairs


def ucr_run(target: str, folder: str, seed: int, folds: list[int]) -> dict:
    train, test, config = ucr_target(target)

    def transferred():
        set_seed(seed)
        return RNNForSequenceClassification.from_pretrained(folder, transfer=KEPT, **config)

    return selection_run(transferred, train, test, ucr.recipe(seed), DataCollatorForSeries(), folds)


def text_pairs(pool: dict[str, str], targets) -> list[tuple[str, str]]:
    """(target, source) for LogME's top 2 candidates of each target on seed 0's labels."""
    pairs = []
    for target in targets:
        train, _ = ranking.target_data(target)
        rows = train.select(balanced_budget_indices(train["label"], [TEXT_BUDGET], 0)[TEXT_BUDGET])
        names = {f: n for n, f in pool.items() if n not in ranking.excluded_for(target)}
        order = rank_sources(list(names), rows, max_examples=None, scores=("logme",), compare_untrained=False)
        pairs += [(target, names[folder]) for folder in order.ranked()[:TEXT_TOP]]
    return pairs


@functools.lru_cache(maxsize=1)
def text_candidate(target: str, folder: str) -> tuple["ranking.Candidate", list[int]]:
    """The source read for the target (its tokenizer's encoding of train and test) and the train split's labels,
    once for every seed."""
    train, test = ranking.target_data(target)
    candidate = ranking.Candidate(folder, train, test, LabelMap(SENTIMENT.names))
    if not candidate.head:
        raise SystemExit(f"{folder} does not answer {target}'s labels: no kept head to measure.")
    return candidate, train["label"]


def text_run(target: str, folder: str, seed: int, folds: list[int]) -> dict:
    candidate, labels = text_candidate(target, folder)
    rows = candidate.train.select(balanced_budget_indices(labels, [TEXT_BUDGET], seed)[TEXT_BUDGET])
    args = ranking.recipe(tempfile.mkdtemp(), seed)
    return selection_run(lambda: candidate.model(seed), rows, candidate.test, args, candidate.collator, folds)


def earliest_epoch(means: np.ndarray, rows: np.ndarray) -> tuple[int, int]:
    """The paired rule as it chose before 2026-12-06: within one paired error of the best, the smallest mix, then
    the earliest epoch (kept here as the reference it is measured against)."""
    top = means.max()
    best = max(
        ((e, m) for e, m in np.ndindex(means.shape) if means[e, m] >= top - 1e-9), key=lambda em: (-em[1], -em[0])
    )
    errors = paired_standard_error(rows[best][None, None] - rows)
    within = [(e, m) for e, m in np.ndindex(means.shape) if means[e, m] >= top - 1e-9 - errors[e, m]]
    return max(within, key=lambda em: (-em[1], -em[0]))


BEFORE, NOW = "paired, earliest epoch (before)", "paired, latest epoch (now)"


def choices(run: dict, folds: list[int]) -> dict[str, tuple[int, float, float]]:
    """Each choice's (epochs, mix, test accuracy) for one cached run."""
    test = np.asarray(run["test"])
    out = {"source zero-shot": (1, 0.0, test[0, 0]), "fixed recipe": (len(test), 1.0, test[-1, -1])}

    def scored(epoch: int, mix: int, mixes: list[float]) -> tuple[int, float, float]:
        value = mixes[mix]
        return epoch + 1, value, float(test[epoch, list(DEFAULT_MIXES).index(value)])

    for k in folds:
        cv = run["cv"][str(k)]
        means, rows = np.asarray(cv["means"]), np.asarray(cv["row_scores"])
        source = cv["mixes"].index(0.0) if 0.0 in cv["mixes"] else None
        suffix = f", {k} folds" if k != folds[0] else ""
        if k == folds[0]:
            out[BEFORE] = scored(*earliest_epoch(means, rows), cv["mixes"])
        out[NOW + suffix] = scored(*_choose(means, rows.shape[-1], "paired_standard_error", rows, source), cv["mixes"])
        if k == folds[0]:
            for rule in ("source_or_best", "fine_tuned_unless_worse", "best"):
                out[rule] = scored(*_choose(means, rows.shape[-1], rule, rows, source), cv["mixes"])
    return out


def pool_table(results: dict, pairs: list[tuple[str, str]], seeds: list[int], folds: list[int]) -> str:
    names = list(choices(results[f"{pairs[0][0]} {pairs[0][1]} {seeds[0]}"], folds))
    rows, values = [], {c: [] for c in names}
    for target, source in pairs:
        runs = [choices(results[f"{target} {source} {seed}"], folds) for seed in seeds]
        cells = []
        for choice in names:
            accuracies = [r[choice][2] for r in runs]
            values[choice].append(accuracies)
            picks = ", ".join(f"e{r[choice][0]} m{r[choice][1]:g}" for r in runs)
            cells.append(f"{np.mean(accuracies):.3f}" + (f" ({picks})" if choice in (BEFORE, NOW) else ""))
        rows.append([target, source, *cells])
    rows.append(["**mean**", f"{len(pairs)} pairs x {len(seeds)} seeds",
                 *(f"**{np.mean(values[c]):.3f}**" for c in names)])  # fmt: skip
    reference = np.asarray(values[BEFORE]).ravel()
    gaps = []
    for choice in names:
        if choice != BEFORE:
            gap = np.asarray(values[choice]).ravel() - reference
            gaps.append(f"{choice} {gap.mean() * 100:+.1f} ± {gap.std(ddof=1) / np.sqrt(gap.size) * 100:.1f}")
    return table(["target", "source (head kept)", *names], rows) + (
        f"\n\nAgainst `{BEFORE}`, in points, mean over the {reference.size} runs ± one standard error of the per-run "
        "difference: " + "; ".join(gaps) + "."
    )


def run_pool(name: str, pairs, seeds, folds, cache: Path, run) -> dict:
    for target, source, folder in pairs:
        for seed in seeds:
            key = f"{target} {source} {seed}"
            results = json.loads(cache.read_text()) if cache.exists() else {}
            if key in results and all(str(k) in results[key]["cv"] for k in folds):
                continue
            result = run(target, folder, seed, folds)
            results = json.loads(cache.read_text()) if cache.exists() else {}  # another process may have written
            results[key] = result
            cache.write_text(json.dumps(results))
            print(name, key, {c: round(v[2], 3) for c, v in choices(result, folds).items()}, flush=True)
    return json.loads(cache.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", nargs="+", default=["ucr", "text"], choices=["ucr", "text"])
    parser.add_argument("--targets", nargs="+", default=None, help="Targets of the pools (default: all of each).")
    parser.add_argument("--ucr_seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--text_seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--folds", nargs="+", type=int, default=[3, 10],
                        help="Fold counts (UCR); the first is the reference, `auto`'s and `finetune`'s default. Text: "
                        "the first only.")  # fmt: skip
    parser.add_argument("--ucr_dir", default=str(Path(tempfile.gettempdir()) / "hf-rnn-transfer-ucr-pool"))
    parser.add_argument("--text_dir", default=str(Path(tempfile.gettempdir()) / "hf-rnn-transfer-source-pool"))
    parser.add_argument("--no_report", action="store_true", help="Run and cache only (another process reports).")
    cli = parser.parse_args()
    if any(k < 2 for k in cli.folds):
        parser.error(f"--folds takes numbers of at least 2, got {cli.folds}.")
    sections = []
    if "ucr" in cli.pools:
        pool = ucr.build_pool(data_root() / "ucr", Path(cli.ucr_dir) / "sources", 60)
        targets = [t for t in cli.targets or sorted({n.rsplit("-", 1)[0] for n in pool}) if f"{t}-classifier" in pool]
        pairs = ucr_pairs(pool, targets)
        cache = Path(cli.ucr_dir) / "selection_kept_head.json"
        results = run_pool("ucr", [(t, s, pool[s]) for t, s in pairs], cli.ucr_seeds, cli.folds, cache, ucr_run)
        sections.append(("UCR: every kept-head pair of the pool, the whole train split", pairs, cli.ucr_seeds,
                         cli.folds, results))  # fmt: skip
    if "text" in cli.pools:
        # the pool source_ranking.py builds: every default target's test removed
        pool = ranking.build_pool(
            Path(cli.text_dir) / "sources", ranking.test_text_keys(ranking.DEFAULT_TARGETS), 8, 600
        )
        targets = [t for t in cli.targets or ranking.DEFAULT_TARGETS if t in ranking.DEFAULT_TARGETS]
        pairs = text_pairs(pool, targets)
        cache = Path(cli.text_dir) / "selection_kept_head.json"
        results = run_pool("text", [(t, s, pool[s]) for t, s in pairs], cli.text_seeds, cli.folds[:1], cache, text_run)
        sections.append((f"Text: LogME's top {TEXT_TOP} sources of each target, {TEXT_BUDGET} labels", pairs,
                         cli.text_seeds, cli.folds[:1], results))  # fmt: skip
    if cli.no_report or not all(s[1] for s in sections):
        return
    body = "\n\n".join(f"{title}:\n\n" + pool_table(results, pairs, seeds, folds)
                       for title, pairs, seeds, folds, results in sections)  # fmt: skip
    body += (
        "\n\nTest accuracy, mean over seeds; in brackets each seed's stopping epoch (e) and mix (m: 0 is the source "
        "zero-shot, reported at epoch 1). Each rule chooses from the same cross-validation (3 folds unless named), "
        "among the (epoch, mix) candidates within one standard error of the best: `paired` the smallest mix (then the "
        "earliest or the latest epoch), `fine_tuned_unless_worse` the largest mix and latest epoch, `source_or_best` "
        "the source unless the best beats it by more than the error, `best` the highest held-out score."
    )
    write_section("selection-kept-head", "Selection inside the budget with a kept head: which epoch and mix", body)


if __name__ == "__main__":
    main()
