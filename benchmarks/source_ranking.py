"""Source ranking at scale: does a transferability score, computed on a target's 100 labels, predict which of many
sources fine-tunes best?

The pool: one supervised LSTM per review domain (the 15 FDU-MTL domains and the 4 shipped Amazon ones, each on its
own labelled reviews with its own tokenizer) and two language models (review text: the unlabelled FDU-MTL reviews;
general text: WikiText-2). Targets: FDU-MTL domains, leave one domain out (the target's own sources, FDU-MTL's and
its Amazon twin's, are never candidates), 100 labels from the target's train split, its test split (duplicates of
train rows removed) to score. Every target test review is removed from every source's training data by the
letters-and-digits key of `_reviews.py` (dvd and video share reviews; the Amazon files share some with FDU-MTL's).

For each target, each score ranks the candidates on the 100 labels of seed 0; each candidate is then fine-tuned
with the recommended recipe (gradual unfreezing, discriminative rates, slanted triangular, 8 epochs; the head moves
when the source's labels are the target's) on 100 labels for every seed, and scored on the test split. Reported:
Kendall tau and weighted tau (top ranks weigh more) between each score and the mean fine-tuned accuracy, the top-1
hit rate (the first-ranked source within noise of the best: 2 standard errors of their paired difference over the
seeds), and the ranking cost against fine-tuning every candidate once.

`--unlabelled N` (default 900) adds two LogME rows: the budget plus N more train texts of the target pseudo-labelled
by a TF-IDF + logistic regression fitted on the budget (`rank_sources(unlabelled_texts=)`), and, as a reference no
user with the budget has, the same rows with their true labels. `--auto_unlabelled 0 400` runs `auto` both on the
labels alone and given 400 more train texts of the target without their labels (`auto --domain_file`).

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/source_ranking.py [--targets ...] [--seeds 0 1 2]

Results are cached per target in `--output_dir/results.json` (sources in `--output_dir/sources`), so a run can be
cut and resumed.
"""

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import table, write_section
from _reviews import FDU_DOMAINS, FDU_TWIN, SENTIMENT, data_root, deduplicated, read_fdu, text_key
from scipy.stats import kendalltau, weightedtau
from transformers import AutoTokenizer, DataCollatorWithPadding, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, TransferConfig
from hf_rnn_transfer.commands.auto import TRIAL_RULES
from hf_rnn_transfer.commands.target_data import is_classifier_of
from hf_rnn_transfer.data import (
    AMAZON_DOMAINS,
    LabelMap,
    load_amazon_reviews,
    prepare_text_classification,
    train_tokenizer,
)
from hf_rnn_transfer.evaluation import accuracy_of, balanced_budget_indices, scratch_arguments
from hf_rnn_transfer.selection import SCORE_NAMES, SCORES, degenerate_warnings, fine_tuning_proxy, rank_sources
from hf_rnn_transfer.trainer import RecommendedTrainingArguments, TransferTrainer, TransferTrainingArguments

DEFAULT_TARGETS = ("kitchen_housewares", "electronics", "books", "imdb", "baby", "magazines")
SHAPE = dict(embedding_size=64, hidden_size=128, num_layers=1, pooling="concat", classifier_dropout=0.3)
PROXY = "proxy"  # the short fine-tuning proxy, beside the feature scores


def dataset_of(rows):
    from datasets import Dataset

    return Dataset.from_list([{"text": r["text"], "label": r["label"]} for r in rows]).cast_column("label", SENTIMENT)


def target_data(domain: str):
    """The target's labelled train split (deduplicated) and its test split without any train text."""
    rows = read_fdu(domain)
    train = deduplicated([r for r in rows if r["split"] == "train"])
    train_keys = {text_key(r["text"]) for r in train}
    test = deduplicated([r for r in rows if r["split"] == "test"], train_keys)
    return dataset_of(train), dataset_of(test)


def test_text_keys(targets) -> set[str]:
    """The text keys of every given target's test split: what no source of the pool may train on."""
    return {text_key(t) for target in targets for t in target_data(target)[1]["text"]}


def source_domains() -> dict[str, tuple[str, str]]:
    """Source name -> (dataset, domain)."""
    out = {f"fdu-{d}": ("fdu", d) for d in FDU_DOMAINS}
    out.update({f"amazon-{d}": ("amazon", d) for d in AMAZON_DOMAINS})
    return out


def excluded_for(target: str) -> set[str]:
    """The target's own domain in both datasets: never a candidate."""
    twins = {a for a, f in FDU_TWIN.items() if f == target}
    return {f"fdu-{target}", *(f"amazon-{a}" for a in twins)}


def train_supervised_source(name, dataset, domain, banned, folder: Path, epochs: float):
    if dataset == "fdu":
        rows = [r for r in read_fdu(domain) if r["label"] is not None]
    else:
        reviews = load_amazon_reviews(domain)
        rows = [{"text": t, "label": lab} for t, lab in zip(reviews["text"], reviews["label"])]
    data = dataset_of(deduplicated(rows, banned)).shuffle(seed=0)
    tokenizer = train_tokenizer(data["text"], vocab_size=10000, model_max_length=256)
    encoded, labels = prepare_text_classification(data, tokenizer, max_length=256)
    set_seed(0)
    model = RNNForSequenceClassification(
        RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, id2label=labels.id2label, label2id=labels.label2id,
                  **SHAPE)
    )  # fmt: skip
    args = TransferTrainingArguments.for_experiment(
        tempfile.mkdtemp(prefix="pool-source-"),
        num_train_epochs=epochs,
        learning_rate=3e-3,
        per_device_train_batch_size=32,
        train_sampling_strategy="group_by_length",
        lr_scheduler_type="slanted_triangular",
    )
    collator = DataCollatorWithPadding(tokenizer)
    TransferTrainer(model=model, args=args, train_dataset=encoded, data_collator=collator).train()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return len(data)


def train_language_model(texts: list[str], folder: Path, steps: int):
    from hf_rnn_transfer.cli import main as cli

    corpus = Path(tempfile.mkdtemp(prefix="pool-lm-")) / "corpus.txt"
    corpus.write_text("\n".join(t.replace("\n", " ") for t in texts if t.strip()) + "\n")
    code = cli(
        ["pretrain", "--objective", "causal_lm", "--train_file", str(corpus), "--output_dir", str(folder),
         "--embedding_size", "64", "--hidden_size", "128", "--num_layers", "1", "--vocab_size", "10000",
         "--max_steps", str(steps), "--learning_rate", "3e-3", "--per_device_train_batch_size", "32",
         "--disable_tqdm", "true", "--report_to", "none", "--save_strategy", "no"]
    )  # fmt: skip
    if code != 0:
        raise SystemExit(f"pretraining the language model in {folder} failed ({code}).")


def build_pool(root: Path, banned: set[str], epochs: float, lm_steps: int) -> dict[str, str]:
    """Train (or reuse) every source; returns name -> folder."""
    root.mkdir(parents=True, exist_ok=True)
    pool = {}
    for name, (dataset, domain) in source_domains().items():
        folder = root / name
        if not (folder / "config.json").is_file():
            start = time.perf_counter()
            rows = train_supervised_source(name, dataset, domain, banned, folder, epochs)
            print(f"source {name}: {rows} reviews, {time.perf_counter() - start:.0f}s", flush=True)
        pool[name] = str(folder)
    unlabelled = deduplicated([r for d in FDU_DOMAINS for r in read_fdu(d) if r["split"] == "unlabeled"], banned)
    wiki = (data_root() / "wikitext2" / "valid.txt").read_text() + (data_root() / "wikitext2" / "test.txt").read_text()
    for name, texts in (("lm-reviews", [r["text"] for r in unlabelled]), ("lm-wikitext", wiki.splitlines())):
        folder = root / name
        if not (folder / "config.json").is_file():
            start = time.perf_counter()
            train_language_model(texts, folder, lm_steps)
            print(f"source {name}: {len(texts)} texts, {time.perf_counter() - start:.0f}s", flush=True)
        pool[name] = str(folder)
    return pool


def recipe(output_dir: str, seed: int, epochs: float = 8.0) -> RecommendedTrainingArguments:
    return RecommendedTrainingArguments(
        output_dir=output_dir, seed=seed, num_train_epochs=epochs, select_folds=0, save_strategy="no",
        report_to="none", disable_tqdm=True, logging_strategy="no",
    )  # fmt: skip


class Candidate:
    """One source read for one target: its tokenizer's encoding of the target, and fresh transferred classifiers."""

    def __init__(self, folder: str, train, test, labels):
        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.train, _ = prepare_text_classification(train, self.tokenizer, max_length=256)
        self.test, _ = prepare_text_classification(test, self.tokenizer, max_length=256)
        self.collator = DataCollatorWithPadding(self.tokenizer)
        self.head = is_classifier_of(RNNConfig.from_pretrained(folder), labels.id2label)
        self.id2label, self.label2id = labels.id2label, labels.label2id

    def model(self, seed: int):
        set_seed(seed)
        return RNNForSequenceClassification.from_pretrained(
            self.folder, transfer=TransferConfig(transfer_head=self.head), id2label=self.id2label,
            label2id=self.label2id,
        )  # fmt: skip

    def score(self, model, rows) -> float:
        return accuracy_of(model, rows, self.collator)


def run_target(target: str, pool: dict[str, str], seeds, budget: int) -> dict:
    train, test = target_data(target)
    candidates = {n: f for n, f in pool.items() if n not in excluded_for(target)}
    budgets = {s: balanced_budget_indices(train["label"], [budget], s)[budget] for s in seeds}
    labelled = train.select(budgets[seeds[0]])
    start = time.perf_counter()
    ranking = rank_sources(list(candidates.values()), labelled, max_examples=None, progress=True)
    rank_seconds = time.perf_counter() - start
    names = {f: n for n, f in candidates.items()}
    scores = {names[s.source]: s.scores for s in ranking.scores}
    warnings = {names[s.source]: s.warnings for s in ranking.scores if s.warnings}
    untrained = {names[s.source]: s.untrained for s in ranking.scores}
    result = {"candidates": list(candidates), "rank_seconds": rank_seconds, "scores": scores, "warnings": warnings,
              "untrained": untrained}  # fmt: skip
    result.update(accuracy={}, finetune_seconds={}, proxy_seconds={})
    label_map = LabelMap(SENTIMENT.names)
    for name, folder in candidates.items():
        candidate = Candidate(folder, train, test, label_map)
        start = time.perf_counter()
        proxy_rows = candidate.train.select(budgets[seeds[0]])
        scores[name][PROXY] = fine_tuning_proxy(
            lambda c=candidate: c.model(seeds[0]), proxy_rows, recipe(tempfile.mkdtemp(), seeds[0], epochs=3),
            candidate.collator, candidate.score,
        )  # fmt: skip
        result["proxy_seconds"][name] = time.perf_counter() - start
        accuracies, seconds = [], []
        for seed in seeds:
            start = time.perf_counter()
            model = candidate.model(seed)
            args = recipe(tempfile.mkdtemp(), seed)
            rows = candidate.train.select(budgets[seed])
            TransferTrainer(model=model, args=args, train_dataset=rows, data_collator=candidate.collator).train()
            accuracies.append(candidate.score(model, candidate.test))
            seconds.append(time.perf_counter() - start)
        result["accuracy"][name] = accuracies
        result["finetune_seconds"][name] = seconds
        print(f"{target} <- {name}: {np.mean(accuracies):.3f} (proxy {scores[name][PROXY]:.3f})", flush=True)
    result["scratch"] = scratch_accuracies(Candidate(next(iter(candidates.values())), train, test, label_map),
                                           budgets, seeds)  # fmt: skip
    return result


def scratch_accuracies(candidate: Candidate, budgets: dict, seeds) -> list[float]:
    """The same architecture from random weights (10 epochs at 3e-3, linear schedule), per seed."""
    out = []
    for seed in seeds:
        set_seed(seed)
        model = RNNForSequenceClassification(RNNConfig.from_dict(candidate.model(seed).config.to_dict()))
        args = scratch_arguments(recipe(tempfile.mkdtemp(), seed), num_train_epochs=10, learning_rate=3e-3,
                                 lr_scheduler_type="linear", warmup_steps=0.1)  # fmt: skip
        rows = candidate.train.select(budgets[seed])
        TransferTrainer(model=model, args=args, train_dataset=rows, data_collator=candidate.collator).train()
        out.append(candidate.score(model, candidate.test))
    return out


def top1_hit(accuracy: dict, chosen: str) -> bool:
    """The chosen source within noise of the best: its mean gap to the best is under 2 standard errors of the paired
    differences over the seeds (or zero)."""
    best = max(accuracy, key=lambda n: np.mean(accuracy[n]))
    gaps = np.asarray(accuracy[best]) - np.asarray(accuracy[chosen])
    if len(gaps) < 2:
        return bool(gaps.mean() <= 0)
    return bool(gaps.mean() <= max(2 * gaps.std(ddof=1) / np.sqrt(len(gaps)), 1e-9))


def untrained_ties(r: dict, score: str = "logme") -> int:
    """How many candidates' `score` is no better than their untrained architecture's."""
    count = 0
    for name, untrained in r.get("untrained", {}).items():
        values = {score: r["scores"][name][score]}
        count += any("untrained" in w for w in degenerate_warnings(values, untrained, 2, 1, 1))
    return count


def saturated(r: dict) -> int:
    """How many candidates' plain H-score sits at its ceiling."""
    return sum(any("ceiling" in w for w in warnings) for warnings in r["warnings"].values())


def logme_first(target: str, pool: dict[str, str], seed: int, budget: int) -> str:
    """The candidate LogME ranks first on this seed's labels."""
    train, _ = target_data(target)
    rows = train.select(balanced_budget_indices(train["label"], [budget], seed)[budget])
    names = {f: n for n, f in pool.items() if n not in excluded_for(target)}
    ranking = rank_sources(list(names), rows, max_examples=None, scores=("logme",), compare_untrained=False)
    return names[ranking.ranked()[0]]


def logme_seconds(target: str, pool: dict[str, str], seed: int, budget: int) -> float:
    """Seconds of LogME alone (no other score, no untrained-encoder check) over the target's candidates."""
    train, _ = target_data(target)
    rows = train.select(balanced_budget_indices(train["label"], [budget], seed)[budget])
    candidates = [f for n, f in pool.items() if n not in excluded_for(target)]
    start = time.perf_counter()
    rank_sources(candidates, rows, max_examples=None, scores=("logme",), compare_untrained=False)
    return time.perf_counter() - start


def unlabelled_rows(train, seed: int, budget: int, count: int):
    """The seed's budget rows of the target's `train` split, and `count` train rows outside it (a fixed random
    sample)."""
    chosen = balanced_budget_indices(train["label"], [budget], seed)[budget]
    rest = sorted(set(range(len(train))) - set(chosen))
    extra = np.random.default_rng(0).choice(rest, size=min(count, len(rest)), replace=False)
    return train.select(chosen), train.select(extra)


def more_rows_logme(target: str, pool: dict[str, str], seed: int, budget: int, count: int) -> dict:
    """LogME alone (no untrained check) on the budget plus `count` more train rows of the target: their texts
    pseudo-labelled by the linear model fitted on the budget (what a user with unlabelled texts can do), and, as a
    reference no user with `budget` labels has, with their true labels. Seconds are the pseudo-labelled ranking's."""
    from datasets import concatenate_datasets

    labelled, extra = unlabelled_rows(target_data(target)[0], seed, budget, count)
    names = {f: n for n, f in pool.items() if n not in excluded_for(target)}
    start = time.perf_counter()
    pseudo = rank_sources(list(names), labelled, max_examples=None, scores=("logme",), compare_untrained=False,
                          unlabelled_texts=list(extra["text"]), max_unlabelled=count)  # fmt: skip
    seconds = time.perf_counter() - start
    true = rank_sources(list(names), concatenate_datasets([labelled, extra]), max_examples=None, scores=("logme",),
                        compare_untrained=False)  # fmt: skip
    return {
        "rows": pseudo.pseudo_labelled_rows,
        "seconds": seconds,
        "pseudo": {names[s.source]: s.scores["logme"] for s in pseudo.scores},
        "true": {names[s.source]: s.scores["logme"] for s in true.scores},
    }


def summarise(results: dict, note: str, proxy: str = "2 folds x 3 epochs") -> str:
    """The ranking-quality table over targets, the per-target table, and `note` (how it was measured)."""
    names = [*SCORES, PROXY]
    rows, per_target = [], []
    for score in names:
        taus, weighted, hits, costs = [], [], [], []
        for r in results.values():
            usable = [n for n in r["candidates"] if r["scores"][n].get(score) is not None]
            values = [r["scores"][n][score] for n in usable]
            truth = [float(np.mean(r["accuracy"][n])) for n in usable]
            if len(usable) < 3:
                continue
            taus.append(kendalltau(values, truth).statistic)
            weighted.append(weightedtau(values, truth).statistic)
            hits.append(top1_hit({n: r["accuracy"][n] for n in usable}, usable[int(np.argmax(values))]))
            finetune_once = sum(s[0] for s in r["finetune_seconds"].values())
            cost = sum(r["proxy_seconds"].values()) if score == PROXY else r["rank_seconds"]
            costs.append(cost / finetune_once)
        label = f"fine-tuning proxy ({proxy})" if score == PROXY else SCORE_NAMES[score]
        cost_text = f"{np.mean(costs):.1%}" + (" (all feature scores together)" if score != PROXY else "")
        if score == "logme" and all("logme_seconds" in r for r in results.values()):
            alone = np.mean([r["logme_seconds"] / sum(s[0] for s in r["finetune_seconds"].values())
                             for r in results.values()])  # fmt: skip
            cost_text += f"; {alone:.1%} alone"
        defined = int(np.isfinite(taus).sum())  # a target whose candidates all score the same has no ranking
        rows.append([label, f"{np.nanmean(taus):+.2f}", f"{np.nanmean(weighted):+.2f}", f"{sum(hits)}/{len(hits)}",
                     cost_text, defined])  # fmt: skip
    for count in sorted({int(c) for r in results.values() for c in r.get("more_rows", {})}):
        labels = {
            "pseudo": f"LogME, + {count} unlabelled target texts pseudo-labelled (`unlabelled_texts`)",
            "true": f"LogME, + the same {count} rows with their labels (a reference beyond the budget)",
        }
        for kind, label in labels.items():
            taus, weighted, hits, costs = [], [], [], []
            for r in results.values():
                more = r.get("more_rows", {}).get(str(count))
                if more is None:
                    continue
                usable = list(more[kind])
                values = [more[kind][n] for n in usable]
                truth = [float(np.mean(r["accuracy"][n])) for n in usable]
                taus.append(kendalltau(values, truth).statistic)
                weighted.append(weightedtau(values, truth).statistic)
                hits.append(top1_hit({n: r["accuracy"][n] for n in usable}, usable[int(np.argmax(values))]))
                costs.append(more["seconds"] / sum(s[0] for s in r["finetune_seconds"].values()))
            rows.append([label, f"{np.nanmean(taus):+.2f}", f"{np.nanmean(weighted):+.2f}",
                         f"{sum(hits)}/{len(hits)}", f"{np.mean(costs):.1%} alone" if kind == "pseudo" else "",
                         len(taus)])  # fmt: skip
    ceiling = []
    for r in results.values():
        runs = np.asarray([r["accuracy"][n] for n in r["candidates"]])
        pairs = [(i, j) for i in range(runs.shape[1]) for j in range(i + 1, runs.shape[1])]
        ceiling += [np.mean([kendalltau(runs[:, i], runs[:, j]).statistic for i, j in pairs])] if pairs else []
    if ceiling:
        rows.append(["one seed's accuracies ranking another's (the noise ceiling)", f"{np.nanmean(ceiling):+.2f}", "",
                     "", "", int(np.isfinite(ceiling).sum())])  # fmt: skip
    for target, r in results.items():
        mean = {n: float(np.mean(a)) for n, a in r["accuracy"].items()}
        order = sorted(mean, key=lambda n: -mean[n])
        top = {s: max((n for n in r["candidates"] if r["scores"][n].get(s) is not None),
                      key=lambda n: r["scores"][n][s]) for s in ("logme", "shrinkage_hscore", PROXY)}  # fmt: skip
        per_target.append([
            target, len(r["candidates"]), f"{order[0]} {mean[order[0]]:.3f}", f"{order[-1]} {mean[order[-1]]:.3f}",
            f"{np.mean(r['scratch']):.3f}" if r.get("scratch") else "",
            *(f"{top[s]} {mean[top[s]]:.3f}" for s in ("logme", "shrinkage_hscore", PROXY)),
            untrained_ties(r), saturated(r),
        ])  # fmt: skip
    body = table(["score", "mean Kendall tau", "mean weighted tau", "top-1 within noise", "cost vs fine-tuning all",
                  "targets with a ranking"], rows)  # fmt: skip
    body += "\n\n" + table(
        ["target", "candidates", "best source (mean acc.)", "worst source", "scratch", "LogME's first",
         "shrinkage H-score's first", "proxy's first", "LogME no better than untrained", "H-score saturated"],
        per_target,
    )  # fmt: skip
    return body + "\n\n" + note


def command_line_ranking(target: str, pool: dict[str, str], seed: int, budget: int) -> float:
    """Wall seconds of `hf-rnn-transfer rank-sources` as a fresh process (interpreter and imports included)."""
    import subprocess
    import sys

    train, _ = target_data(target)
    folder = Path(tempfile.mkdtemp())
    rows = train.select(balanced_budget_indices(train["label"], [budget], seed)[budget])
    rows.to_json(folder / "train.jsonl")
    candidates = [f for n, f in pool.items() if n not in excluded_for(target)]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hf_rnn_transfer", "rank-sources", "--candidates", *candidates,
                    "--train_file", str(folder / "train.jsonl")], check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def text_note(budget: int, seeds, epochs: float) -> str:
    return (
        f"Accuracy: mean over seeds {list(seeds)} of the fine-tuned model on the target's FDU-MTL test split, "
        f"{budget} class-balanced labels per seed (the recommended recipe, no selection inside the budget). Scores on "
        f"seed {seeds[0]}'s {budget} labels. Cost: seconds of ranking (all feature scores and the untrained-encoder "
        "check, or the proxy's trainings) over the seconds of fine-tuning every candidate once. Sources: 1-layer "
        f"LSTM classifiers (embedding 64, hidden 128, {epochs:g} epochs on their domain's labelled reviews, own 10k "
        "tokenizer) and two LSTM language models of the same size."
    )


def run_auto(
    target: str, pool: dict[str, str], seeds, budget: int, rule: str, ensemble: int, smallest: int, unlabelled: int = 0
) -> dict:
    """`auto_transfer` over the target's candidates, per seed (its own budget rows), scored on the test split; with
    `unlabelled`, that many more train texts of the target (without labels) are passed as `unlabelled_texts`."""
    from datasets import DatasetDict

    from hf_rnn_transfer.commands import AutoArguments, TargetDataArguments, auto_transfer

    train, test = target_data(target)
    names = {f: n for n, f in pool.items() if n not in excluded_for(target)}
    out = {"accuracy": [], "seconds": [], "chosen": []}
    for seed in seeds:
        rows, extra = unlabelled_rows(train, seed, budget, unlabelled)
        texts = list(extra["text"]) if unlabelled else None
        args = RecommendedTrainingArguments(
            output_dir=tempfile.mkdtemp(), seed=seed, save_strategy="no", report_to="none", logging_strategy="no",
        )  # fmt: skip
        start = time.perf_counter()
        result = auto_transfer(list(names), DatasetDict(train=rows, test=test), TargetDataArguments(),
                               AutoArguments(trial_rule=rule, max_unlabelled=max(unlabelled, 1),
                                             **ensemble_arguments(ensemble, smallest)),
                               args, unlabelled_texts=texts)  # fmt: skip
        out["seconds"].append(time.perf_counter() - start)
        out["accuracy"].append(result.test_score)
        label = chosen_label(result.chosen, names)
        out["chosen"].append(label)
        out.setdefault("ranked_first", []).append(names[result.ranking.ranked()[0]])
        # why it chose as it did, and every trial's held-out score: readable from the cache without running again
        out.setdefault("reasons", []).append(result.reason)
        out.setdefault("trials", []).append(trial_scores(result))
        print(f"auto {target} seed {seed}: {result.test_score:.3f} with {label}", flush=True)
    return out


def trial_scores(result) -> list[dict]:
    """Every trial of an auto run and its held-out score, for a benchmark's cache."""
    return [{"trial": t.describe(), "score": t.score} for t in result.trials]


def chosen_label(chosen, names: dict[str, str]) -> str:
    """What an auto run chose, in a table cell: an ensemble's size, scratch, or the source (by its pool name), the
    layers it moved and the strategy."""
    if chosen.members:
        return f"ensemble of {len(chosen.members)}"
    if chosen.source == "scratch":
        return "scratch"
    return f"{names[chosen.source]} ({chosen.layers}, {chosen.strategy})"


def auto_variant(rule: str, ensemble: int, smallest: int) -> str:
    """A column's name: the trial rule and the ensemble (N, or the sizes auto chose among: smallest-N)."""
    if not ensemble:
        return rule
    return f"{rule}, ensemble of {ensemble}" if smallest >= ensemble else f"{rule}, ensemble of {smallest}-{ensemble}"


def auto_variants(rules, ensembles, smallest_sizes) -> list[tuple[str, int, int]]:
    """(trial rule, ensemble size N, smallest size chosen among) for every combination that differs (N=0: no
    ensemble, so no size; a smallest size at N or above: the top N only)."""
    variants = [(r, e, min(m, e)) for r in rules for e in ensembles for m in smallest_sizes]
    return list(dict.fromkeys(variants))


def ensemble_arguments(ensemble: int, smallest: int) -> dict:
    """`AutoArguments` fields of an ensemble variant."""
    return {"ensemble": ensemble, "ensemble_min_size": max(2, smallest) if ensemble else 2}


def auto_key_suffix(ensemble: int, smallest: int) -> str:
    """The cache key's ensemble part (the top-N-only runs keep the key they had before auto chose sizes)."""
    if not ensemble:
        return ""
    return f" ensemble={ensemble}" + (f" min={smallest}" if smallest < ensemble else "")


def summarise_auto(autos: dict, results: dict, budget: int, seeds) -> str:
    """`autos`: {variant (trial rule, ensemble size): {target: auto results}}; one row per target, one auto column
    (and one column of what it chose, and its wall time) per variant."""
    rules = list(autos)
    rows, gaps = [], {rule: {"oracle": [], "fixed": [], "scratch": []} for rule in rules}
    for target, r in results.items():
        mean = {n: float(np.mean(a)) for n, a in r["accuracy"].items()}
        oracle = max(mean, key=mean.get)
        firsts = autos[rules[0]][target]["ranked_first"]
        fixed_runs = [r["accuracy"][name][i] for i, name in enumerate(firsts)]
        fixed_mean = float(np.mean(fixed_runs))
        finetune_once = sum(s[0] for s in r["finetune_seconds"].values())
        cells, chose = [], []
        for rule in rules:
            auto = autos[rule][target]
            auto_mean = float(np.mean(auto["accuracy"]))
            gaps[rule]["oracle"].append(auto_mean - mean[oracle])
            gaps[rule]["fixed"].append(auto_mean - fixed_mean)
            gaps[rule]["scratch"].append(auto_mean - float(np.mean(r["scratch"])))
            cells.append(f"{auto_mean:.3f} ± {np.std(auto['accuracy']):.3f}")
            wall = float(np.mean(auto["seconds"]))
            chose += ["; ".join(auto["chosen"]), f"{wall:.0f} s ({wall / finetune_once:.1f}x)"]
        rows.append([
            target, *cells, f"{fixed_mean:.3f} ({', '.join(dict.fromkeys(firsts))})", f"{mean[oracle]:.3f} ({oracle})",
            f"{np.mean(r['scratch']):.3f}", *chose,
        ])  # fmt: skip
    body = table(["target", *(f"auto ({rule})" for rule in rules),
                  "fixed: LogME's first per seed, recommended recipe", "oracle source (chosen on test)", "scratch",
                  *(h for rule in rules for h in (f"auto ({rule}) chose, per seed",
                                                   f"auto ({rule}) wall time (x fine-tuning every candidate once)"))],
                 rows)  # fmt: skip
    means = "; ".join(
        f"{rule}: {np.mean(g['oracle']):+.3f} vs the oracle, {np.mean(g['fixed']):+.3f} vs the fixed recipe, "
        f"{np.mean(g['scratch']):+.3f} vs scratch"
        for rule, g in gaps.items()
    )
    body += (
        f"\n\nMean over targets, auto minus each: {means}. Same {budget} labels per seed (seeds {list(seeds)}) and "
        "test split as the ranking table above. auto: LogME ranks every candidate (on that seed's labels), the top 3 "
        "are validated by 3-fold cross-validation inside the budget with the recommended recipe, then the other "
        "strategies (full, L2-SP, frozen encoder) and embedding-only transfer on the best, and scratch as the floor. "
        "Trial rule `ensemble_recipe_or_best` (the default since 2026-12-05) first sets aside every other strategy "
        "or layer choice of a source that does not beat that source's recipe run by more than one standard error of "
        "their per-row held-out difference, then chooses as `ensemble_or_best`; `ensemble_or_best` (the default "
        "2026-12-04) keeps the ensemble unless a single trial scores more than one binomial standard error above it, "
        "and otherwise takes the highest held-out score; "
        "`one_standard_error` (the default before) keeps the earliest trial (the ensemble, then the higher-ranked "
        "source, then the recommended recipe) unless a later one scores more than one standard error above it; "
        "`best` takes the highest held-out score. `ensemble of N` (`AutoArguments(ensemble=N)`, the default N=5) also "
        "validates the average of LogME's top N sources, each fine-tuned with the recommended recipe, on the same "
        "folds; `ensemble of k-N` (`AutoArguments(ensemble_min_size=k)`, the default k=2 since 2026-12-05) also scores "
        "the top k ... N-1 averages on the same held-out predictions (no extra training), and a smaller one that beats "
        "the top N by more than one standard error of their per-row difference sets it aside and competes without "
        "the ensemble's margin (it wins only with the highest held-out score). Without an ensemble, "
        "`ensemble_or_best` is `best`. The oracle is the best single "
        "source with the recommended recipe chosen on the test set (an upper bound over single sources, not over "
        "strategies or ensembles)."
    )
    return body


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS), choices=FDU_DOMAINS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--source_epochs", type=float, default=8)
    parser.add_argument("--lm_steps", type=int, default=600)
    parser.add_argument("--output_dir", default=str(Path(tempfile.gettempdir()) / "hf-rnn-transfer-source-pool"))
    parser.add_argument("--no_auto", action="store_true", help="Skip the auto-transfer section.")
    parser.add_argument("--unlabelled", type=int, default=900,
                        help="Also rank with LogME on this many more train texts of each target, pseudo-labelled by "
                        "the linear model fitted on the budget (and, as a reference, with their labels); 0: "
                        "skip.")  # fmt: skip
    parser.add_argument("--auto_rules", nargs="+", default=["ensemble_recipe_or_best"], choices=list(TRIAL_RULES),
                        help="auto's trial rules.")  # fmt: skip
    parser.add_argument("--auto_ensembles", nargs="+", type=int, default=[5],
                        help="auto's ensemble sizes (0: single sources only; the default of auto is 5).")  # fmt: skip
    parser.add_argument("--auto_ensemble_min_sizes", nargs="+", type=int, default=[2],
                        help="auto's smallest ensemble sizes, each run with every --auto_ensembles N (N: the top N "
                        "only; the default of auto is 2).")  # fmt: skip
    parser.add_argument("--auto_unlabelled", nargs="+", type=int, default=[0],
                        help="auto also given this many more train texts of each target without their labels "
                        "(`auto --domain_file`: the ranking pseudo-labels them), each run with every other auto "
                        "variant; 0: the labels only.")  # fmt: skip
    cli = parser.parse_args()
    if any(n < 0 for n in cli.auto_unlabelled):
        parser.error(f"--auto_unlabelled takes counts of texts, 0 or more; got {cli.auto_unlabelled}.")
    data_root()
    output = Path(cli.output_dir)
    pool = build_pool(output / "sources", test_text_keys(cli.targets), cli.source_epochs, cli.lm_steps)
    cache = output / "results.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    for target in cli.targets:
        key = f"{target} budget={cli.budget} seeds={cli.seeds}"
        if key not in results:
            results[key] = run_target(target, pool, cli.seeds, cli.budget)
            cache.write_text(json.dumps(results, indent=1))
    chosen = {t: results[f"{t} budget={cli.budget} seeds={cli.seeds}"] for t in cli.targets}
    for target in cli.targets:
        if "logme_seconds" not in chosen[target]:
            chosen[target]["logme_seconds"] = logme_seconds(target, pool, cli.seeds[0], cli.budget)
            cache.write_text(json.dumps(results, indent=1))
        if cli.unlabelled and str(cli.unlabelled) not in chosen[target].get("more_rows", {}):
            more = more_rows_logme(target, pool, cli.seeds[0], cli.budget, cli.unlabelled)
            chosen[target].setdefault("more_rows", {})[str(cli.unlabelled)] = more
            cache.write_text(json.dumps(results, indent=1))
    if "cli" not in results:
        results["cli"] = command_line_ranking(cli.targets[0], pool, cli.seeds[0], cli.budget)
        cache.write_text(json.dumps(results, indent=1))
    first = chosen[cli.targets[0]]
    share = results["cli"] / sum(s[0] for s in first["finetune_seconds"].values())
    note = text_note(cli.budget, cli.seeds, cli.source_epochs) + (
        f" Start-up included: `hf-rnn-transfer rank-sources` over the {len(first['candidates'])} candidates of "
        f"{cli.targets[0]} took {results['cli']:.1f} s of wall time as a fresh process, against "
        f"{first['rank_seconds']:.1f} s inside this one ({share:.1%} of fine-tuning them all once)."
    )
    write_section(
        "source-ranking",
        f"Source ranking at scale: {len(pool)} text sources, leave-one-domain-out targets",
        summarise(chosen, note),
    )
    if cli.no_auto:
        return
    autos = {}
    variants = auto_variants(cli.auto_rules, cli.auto_ensembles, cli.auto_ensemble_min_sizes)
    for (rule, ensemble, smallest), unlabelled in itertools.product(variants, dict.fromkeys(cli.auto_unlabelled)):
        variant = auto_variant(rule, ensemble, smallest) + (f", + {unlabelled} unlabelled texts" if unlabelled else "")
        for target in cli.targets:
            key = f"auto {target} budget={cli.budget} seeds={cli.seeds} rule={rule}" + auto_key_suffix(
                ensemble, smallest
            )
            key += f" unlabelled={unlabelled}" if unlabelled else ""
            if key not in results:
                results[key] = run_auto(target, pool, cli.seeds, cli.budget, rule, ensemble, smallest, unlabelled)
                cache.write_text(json.dumps(results, indent=1))
            if "ranked_first" not in results[key]:  # LogME's first on each seed's labels (what `fixed` fine-tunes)
                results[key]["ranked_first"] = [logme_first(target, pool, seed, cli.budget) for seed in cli.seeds]
                cache.write_text(json.dumps(results, indent=1))
            autos.setdefault(variant, {})[target] = results[key]
    write_section(
        "auto-transfer",
        f"auto on the same pool: choosing source, layers and recipe inside {cli.budget} labels",
        summarise_auto(autos, chosen, cli.budget, cli.seeds),
    )


if __name__ == "__main__":
    main()
