"""Which source beats the linear model: sentiment transfer into one Amazon domain from every other review domain.

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_sources.py \\
        [--targets kitchen electronics books] [--variants all_domains lm_all_domains] [--budgets 0 50 100 200 500 1000]

For each target (an Amazon domain; the demo's protocol: a fixed, balanced 1,000-review test set, nested balanced
budgets from the other 1,000 reviews, seeds 0/1/2), each source variant is trained with the `pretrain` command's
core and fine-tuned on every budget with the recommended recipe (`RecommendedTrainingArguments`: gradual unfreezing,
discriminative learning rates, slanted triangular schedule, and the stopping epoch and the mix with the source
weights chosen by cross-validation inside the budget, 3 folds here to bound the run time). Beside it, on exactly
the same labels:

- the linear model (TF-IDF 1-2 grams, sublinear, min_df 2, + logistic regression C=10, anchors.md) trained on the
  same source labels plus the budget's target labels (weighted x10, the anchors' best use of them);
- the linear model on the budget alone; the same LSTM from scratch (the demo's recipe: 10 epochs, one run);
- the two together: the average of the RNN's and the linear model's class probabilities on each test review (same
  source, same budget and seed, equal weights, nothing tuned), an ensemble of two model families that err apart.

Source variants (no source ever holds a review of the target's domain; texts are deduplicated, `_reviews.py`):
- `three_domains`: the demo's source, the 6,000 labelled reviews of the three other Amazon domains.
- `all_domains`: those plus the labelled reviews of the 14 FDU-MTL domains that are not the target (~31,000 after
  deduplication); its tokenizer also reads every unlabelled review (FDU-MTL's unlabeled splits and the target pool).
- `lm_all_domains`: ULMFiT's order: first an LSTM language model (adaptive softmax, bf16 where native) for one pass
  over all that review text, labelled and unlabelled (the target's unlabelled reviews included, never a test
  review), then the `all_domains` supervised stage continued from it (`pretrain --init_from`).

`--source_replay_weight w` fine-tunes with source replay (`TransferTrainer(replay_dataset=...)`: a batch of the
source's labelled reviews beside each target batch, its loss weighted w); `--select_rule` picks the selection rules
(default `paired_standard_error`, the recipe's; runs made before it was the default used `one_standard_error`, and
their results are kept under that name): several rules given together choose from one cross-validation per budget and
seed, so they are compared on the same held-out scores. Each run adds rows beside the others (the sources are
reused).

Results go to `--output_dir/results.json` (a finished part is not rerun) and one section of docs/benchmarks.md per
target.
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _report import table, write_section
from _reviews import source_reviews, target_splits, unlabelled_reviews

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.budget_selection import SELECTION_RULES, cross_validate, fit_selected
from hf_rnn_transfer.commands import PretrainArguments, TargetDataArguments, pretrain
from hf_rnn_transfer.data import prepare_text_classification
from hf_rnn_transfer.evaluation import (
    balanced_budget_indices,
    class_probabilities,
    row_accuracy,
    scratch_arguments,
    tfidf_lr_probabilities,
)
from hf_rnn_transfer.trainer import (
    RecommendedTrainingArguments,
    TransferTrainer,
    TransferTrainingArguments,
    native_bf16_available,
)
from hf_rnn_transfer.transfer_config import TransferConfig

# the demo's source recipe; with five times the data, stronger regularisation and longer reviews did best on a
# development set (FDU-MTL's kitchen test reviews, which are not the Amazon kitchen test set)
VARIANTS = {
    "three_domains": dict(fdu=False, epochs=3.0, max_length=256, dropout=(0.1, 0.3), weight_decay=0.01),
    "all_domains": dict(fdu=True, epochs=2.0, max_length=400, dropout=(0.4, 0.5), weight_decay=0.1),
    # ULMFiT's stages 1-2 first: a language model on all the review text (the labelled source reviews and every
    # unlabelled review, the target's unlabelled ones included), then the same supervised stage from it
    "lm_all_domains": dict(
        fdu=True, epochs=2.0, max_length=400, dropout=(0.4, 0.5), weight_decay=0.1, lm_epochs=1.0, bf16=True
    ),
}
LM_CUTOFFS = [1000, 5000, 20000]  # adaptive softmax: the fastest and best setting in benchmarks/lm_softmax.py
NAMES = ["negative", "positive"]


def write_jsonl(path: Path, texts, labels=None) -> Path:
    with open(path, "w") as handle:
        for i, text in enumerate(texts):
            row = {"text": text} if labels is None else {"text": text, "label": NAMES[labels[i]]}
            handle.write(json.dumps(row) + "\n")
    return path


ENSEMBLE_WEIGHTS = [i / 10 for i in range(11)]  # the linear model's share of the average, for the upper-bound row


def linear_probabilities(train_texts, train_labels, weights, fit_texts, test_texts) -> np.ndarray:
    """TF-IDF (1-2 grams, sublinear, min_df 2, fitted on `fit_texts`) + logistic regression (C=10): the class
    probabilities of each test text (`evaluation.tfidf_lr_probabilities`, as `compare --linear_source_file`)."""
    return tfidf_lr_probabilities(
        train_texts, train_labels, test_texts, sample_weight=weights, fit_texts=fit_texts, min_df=2
    )


def linear_accuracy(train_texts, train_labels, weights, fit_texts, test_texts, test_labels) -> float:
    """The same linear model's test accuracy."""
    probabilities = linear_probabilities(train_texts, train_labels, weights, fit_texts, test_texts)
    return float((probabilities.argmax(-1) == np.asarray(test_labels)).mean())


def train_source(
    variant: str, target: str, folder: Path, source, splits, spec: dict | None = None, unlabelled: list | None = None
) -> tuple[Path, float, float]:
    """Train one source variant with the `pretrain` core; returns its folder, zero-shot accuracy and seconds.

    `spec` replaces the variant's recipe (`VARIANTS[variant]`) and `unlabelled` its unlabelled texts (a lever
    measured on its own, e.g. by sentiment_zero_shot_levers.py).
    """
    spec = spec or VARIANTS[variant]
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "source.jsonl", source["text"], source["label"])
    write_jsonl(data / "test.jsonl", splits["test"]["text"], splits["test"]["label"])
    if unlabelled is None:
        unlabelled = unlabelled_reviews(target) if spec["fdu"] else list(splits["pool"]["text"])
    write_jsonl(data / "unlabelled.jsonl", unlabelled)
    vocab_size = 40_000 if spec["fdu"] else 30_000
    bf16 = spec.get("bf16", False) and native_bf16_available()
    started = time.perf_counter()
    init_from = None
    if spec.get("lm_from"):  # a language model trained before on the same text with the same settings
        init_from = str(spec["lm_from"])
    elif spec.get("lm_epochs"):
        init_from = str(train_language_model(folder, source, unlabelled, vocab_size, spec, bf16))
    recipe = PretrainArguments(
        objective="classification",
        init_from=init_from,
        embedding_size=128,
        hidden_size=spec.get("hidden", 256),
        num_layers=spec.get("layers", 1),
        vocab_size=vocab_size,
        vocabulary_files=[str(data / "unlabelled.jsonl")],  # unlabelled use only; never a test review
        embedding_dropout=spec["dropout"][0],
        layer_dropout=0.2,
        classifier_dropout=spec["dropout"][1],
    )
    training = TransferTrainingArguments.for_experiment(
        str(folder / "source"),
        num_train_epochs=spec["epochs"],
        learning_rate=3e-3,
        per_device_train_batch_size=32,
        train_sampling_strategy="group_by_length",
        weight_decay=spec["weight_decay"],
        lr_scheduler_type="slanted_triangular",
        bf16=bf16,
        seed=spec.get("seed", 0),
        **spec.get("source_training", {}),
    )
    data_args = TargetDataArguments(
        train_file=str(data / "source.jsonl"), test_file=str(data / "test.jsonl"), max_length=spec["max_length"]
    )
    run = pretrain(recipe, data_args, training)
    return Path(training.output_dir), run.results["test_accuracy"], time.perf_counter() - started


def train_language_model(folder: Path, source, unlabelled: list[str], vocab_size: int, spec: dict, bf16: bool):
    """ULMFiT's stages 1-2 on this data: an LSTM language model (the classifier's shape, an adaptive softmax) on
    every labelled source review and every unlabelled review, for `spec["lm_epochs"]` passes over the stream."""
    corpus = folder / "data" / "lm.jsonl"
    texts = list(source["text"]) + list(unlabelled)
    write_jsonl(corpus, texts)
    recipe = PretrainArguments(
        objective="causal_lm",
        embedding_size=128,
        hidden_size=spec.get("hidden", 256),
        num_layers=spec.get("layers", 1),
        vocab_size=vocab_size,
        adaptive_softmax_cutoffs=LM_CUTOFFS,
        embedding_dropout=0.1,
        classifier_dropout=0.1,
    )
    batch, bptt = 64, 70
    words = sum(len(text.split()) for text in texts)  # a word-level stream: about one token per word
    training = TransferTrainingArguments.for_experiment(
        str(folder / "lm"),
        max_steps=max(1, int(spec["lm_epochs"] * words / (batch * bptt))),
        learning_rate=3e-3,
        per_device_train_batch_size=batch,
        lr_scheduler_type="slanted_triangular",
        max_grad_norm=0.25,
        bf16=bf16,
        seed=spec.get("seed", 0),
        logging_steps=100,
        disable_tqdm=False,
    )
    pretrain(recipe, TargetDataArguments(train_file=str(corpus), max_length=1_000_000), training)
    return Path(training.output_dir)


def encoded_target(folder: Path, variant: str, splits):
    """The target pool and test set through a source's tokenizer, its collator, and the accuracy scorer."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    tokenizer = AutoTokenizer.from_pretrained(folder)
    collator = DataCollatorWithPadding(tokenizer)
    pool, test = (
        prepare_text_classification(
            splits[name].select_columns(["text", "label"]), tokenizer, max_length=VARIANTS[variant]["max_length"]
        )[0]
        for name in ("pool", "test")
    )
    return collator, pool, test, lambda model, rows: row_accuracy(model, rows, collator).mean()


def run_target(target: str, cli, out: Path, result: dict, save) -> dict:
    """Fill `result` with what it lacks for `target` (each variant, scratch, the linear rows), calling `save()`
    after each part, so an interrupted run goes on where it stopped."""
    from transformers import set_seed

    splits = target_splits(target)
    pool_labels = list(splits["pool"]["label"])
    budgets = [b for b in cli.budgets if b > 0]
    for part in ("sources", "variants", "linear"):
        result.setdefault(part, {})
    for entry in result["variants"].values():  # results of a run before sources were recorded on their own
        result["sources"].setdefault(entry["variant"], {k: entry[k] for k in ("zero_shot", "source_seconds")})
    finetune = RecommendedTrainingArguments(str(out / "runs"), report_to="none", save_strategy="no", disable_tqdm=True)
    finetune = replace(finetune, select_folds=cli.select_folds)
    subsets = {seed: balanced_budget_indices(pool_labels, budgets, seed) for seed in cli.seeds}
    sources = {}
    for variant in cli.variants:
        source = sources[variant] = source_reviews(target, fdu=VARIANTS[variant]["fdu"])
        keys = {rule: result_key(variant, rule, cli) for rule in cli.select_rule}
        rules = [rule for rule in cli.select_rule if keys[rule] not in result["variants"]]
        if not rules:
            continue
        # a trained source is kept: fine-tuned again with another selection rule, or after an interrupted run
        trained = result["sources"].get(variant)
        folder = out / variant / "source"
        if trained and (folder / "config.json").exists():
            zero_shot, seconds = trained["zero_shot"], trained["source_seconds"]
        else:
            folder, zero_shot, seconds = train_source(variant, target, out / variant, source, splits)
            result["sources"][variant] = {"zero_shot": zero_shot, "source_seconds": round(seconds, 1)}
            save()
        print(f"[{target}/{variant}] source: {len(source):,} reviews, zero-shot {zero_shot:.3f}, {seconds:.0f}s")
        collator, pool, test, score = encoded_target(folder, variant, splits)
        # every model's test probabilities, for the ensemble with the linear model on the same labels
        zero_shot_probabilities, labels = class_probabilities(
            RNNForSequenceClassification.from_pretrained(folder), test, collator
        )
        assert labels.tolist() == list(splits["test"]["label"]), "the encoded test set must keep every review in order"
        entries, saved = {}, {}
        for rule in rules:
            saved[rule] = probabilities_folder(out, variant, run_name(rule, cli))
            saved[rule].mkdir(parents=True, exist_ok=True)
            for seed in cli.seeds:
                np.save(saved[rule] / f"0-{seed}.npy", zero_shot_probabilities)
            entries[rule] = {"source_reviews": len(source), "zero_shot": zero_shot, "source_seconds": round(seconds, 1)}
            entries[rule].update(variant=variant, rule=run_name(rule, cli), finetune_seconds=0.0)
            entries[rule]["transfer"] = {str(b): [] for b in budgets}
            entries[rule]["selection"] = {str(b): [] for b in budgets}
        select = lambda model, rows, collator=collator: row_accuracy(model, rows, collator)  # noqa: E731 (any rule)
        replay = encoded_source(folder, variant, source) if cli.source_replay_weight else None
        for seed in cli.seeds:
            for budget in budgets:

                def make_transfer(seed=seed, folder=folder):
                    set_seed(seed)
                    return RNNForSequenceClassification.from_pretrained(
                        folder,
                        transfer=TransferConfig(transfer_head=True),
                        id2label=dict(enumerate(NAMES)),
                        label2id={n: i for i, n in enumerate(NAMES)},
                    )

                rows = pool.select(subsets[seed][budget])
                args = replace(finetune, seed=seed, source_replay_weight=cli.source_replay_weight)
                started = time.perf_counter()
                # one cross-validation for every rule: the rules differ only in what they choose from its scores
                folds = cross_validate(
                    make_transfer, rows, args, collator, select, cli.select_folds, rule=rules[0], replay_dataset=replay
                )
                shared = time.perf_counter() - started
                finals = {}  # (epochs, mix) -> (test probabilities, seconds): rules that agree share the training
                for rule in rules:
                    chosen = folds.for_rule(rule)
                    if (chosen.epochs, chosen.mix) not in finals:
                        started = time.perf_counter()
                        model = fit_selected(make_transfer, rows, args, collator, chosen, replay_dataset=replay)
                        probabilities, _ = class_probabilities(model, test, collator)
                        finals[chosen.epochs, chosen.mix] = probabilities, time.perf_counter() - started
                    probabilities, final_seconds = finals[chosen.epochs, chosen.mix]
                    np.save(saved[rule] / f"{budget}-{seed}.npy", probabilities)
                    entry = entries[rule]
                    entry["transfer"][str(budget)].append(float((probabilities.argmax(-1) == labels).mean()))
                    entry["selection"][str(budget)].append({"epochs": chosen.epochs, "mix": chosen.mix})
                    entry["finetune_seconds"] += shared + final_seconds
                    print(
                        f"[{target}/{variant}] {rule}, seed {seed}, {budget} labels: "
                        f"{entry['transfer'][str(budget)][-1]:.3f} (epoch {chosen.epochs}, mix {chosen.mix:g})"
                    )
        for rule in rules:
            entries[rule]["finetune_seconds"] = round(entries[rule]["finetune_seconds"], 1)
            result["variants"][keys[rule]] = entries[rule]
        save()

    # the linear model on exactly the same labels
    pool_texts, test_texts = list(splits["pool"]["text"]), list(splits["test"]["text"])
    test_labels = list(splits["test"]["label"])
    accuracy = lambda probabilities: float((probabilities.argmax(-1) == np.asarray(test_labels)).mean())  # noqa: E731
    for variant, source in sources.items():
        saved = probabilities_folder(out, variant, "linear")
        if variant in result["linear"] and saved.is_dir():
            continue
        saved.mkdir(parents=True, exist_ok=True)
        texts, labels = list(source["text"]), list(source["label"])
        fit = texts + pool_texts
        zero_shot = linear_probabilities(texts, labels, None, fit, test_texts)
        rows = {"0": [accuracy(zero_shot)] * len(cli.seeds)}
        for seed in cli.seeds:
            np.save(saved / f"0-{seed}.npy", zero_shot)
        for budget in budgets:
            rows[str(budget)] = []
            for seed in cli.seeds:
                chosen = subsets[seed][budget]
                weights = [1.0] * len(texts) + [10.0] * len(chosen)
                probabilities = linear_probabilities(
                    texts + [pool_texts[i] for i in chosen],
                    labels + [pool_labels[i] for i in chosen],
                    weights,
                    fit,
                    test_texts,
                )
                np.save(saved / f"{budget}-{seed}.npy", probabilities)
                rows[str(budget)].append(accuracy(probabilities))
        result["linear"][variant] = rows
        save()
    # the ensemble: the RNN's and the linear model's probabilities averaged, same source, budget and seed
    for entry in result["variants"].values():
        rnn = probabilities_folder(out, entry["variant"], entry["rule"])
        linear = probabilities_folder(out, entry["variant"], "linear")
        if "ensemble" in entry or not rnn.is_dir() or not linear.is_dir():
            continue
        entry["ensemble"] = {
            str(b): [
                accuracy((np.load(rnn / f"{b}-{s}.npy") + np.load(linear / f"{b}-{s}.npy")) / 2) for s in cli.seeds
            ]
            for b in [0, *budgets]
        }
        save()
    # how much a tuned weight could add: the best linear share on the test set itself (an upper bound, not a recipe)
    for entry in result["variants"].values():
        rnn = probabilities_folder(out, entry["variant"], entry["rule"])
        linear = probabilities_folder(out, entry["variant"], "linear")
        if "ensemble_test_weight" in entry or not rnn.is_dir() or not linear.is_dir():
            continue
        best = {}
        for b in [0, *budgets]:
            pairs = [(np.load(rnn / f"{b}-{s}.npy"), np.load(linear / f"{b}-{s}.npy")) for s in cli.seeds]
            means = {w: np.mean([accuracy(w * lin + (1 - w) * r) for r, lin in pairs]) for w in ENSEMBLE_WEIGHTS}
            weight = max(means, key=lambda w: (means[w], -abs(w - 0.5)))  # ties: the one nearest the equal average
            best[str(b)] = {"weight": weight, "accuracy": round(float(means[weight]), 6)}
        entry["ensemble_test_weight"] = best
        save()
    result["linear"]["budget only"] = {
        str(b): [
            linear_accuracy(
                [pool_texts[i] for i in subsets[s][b]],
                [pool_labels[i] for i in subsets[s][b]],
                None,
                pool_texts,
                test_texts,
                test_labels,
            )
            for s in cli.seeds
        ]
        for b in budgets
    }
    if "scratch" in result:
        return result
    # the same architecture from scratch, with the first variant's tokenizer: the demo's scratch recipe (10 epochs,
    # linear schedule with 10% warm-up), one run per budget and seed (selection inside the budget would cost 4x more)
    variant = cli.variants[0]
    folder = out / variant / "source"
    collator, pool, test, score = encoded_target(folder, variant, splits)
    scratch_args = scratch_arguments(finetune, num_train_epochs=10.0, learning_rate=3e-3, lr_scheduler_type="linear")
    scratch_args = replace(scratch_args, warmup_steps=0.1, select_folds=0)
    config = RNNConfig.from_pretrained(folder)
    started = time.perf_counter()
    scratch = {str(b): [] for b in budgets}
    for seed in cli.seeds:
        for budget in budgets:

            def make_scratch(seed=seed):
                set_seed(seed)
                return RNNForSequenceClassification(config)

            rows = pool.select(subsets[seed][budget])
            model = make_scratch()
            TransferTrainer(model, replace(scratch_args, seed=seed), train_dataset=rows, data_collator=collator).train()
            scratch[str(budget)].append(score(model, test))
    result["scratch"] = scratch
    result["scratch_seconds"] = round(time.perf_counter() - started, 1)
    save()
    return result


DEFAULT_FOLDS = 3  # the benchmark's cross-validation inside the budget, unless --select_folds says otherwise
TARGETS = ["books", "dvd", "electronics", "kitchen"]  # the Amazon domains a run can target


def run_name(rule: str, cli) -> str:
    """A fine-tuning run's name: its selection rule, its folds when not the default, and the source replay weight
    when it replays."""
    folds = f"+folds{cli.select_folds}" if cli.select_folds != DEFAULT_FOLDS else ""
    return rule + folds + (f"+replay{cli.source_replay_weight:g}" if cli.source_replay_weight else "")


def result_key(variant: str, rule: str, cli) -> str:
    """A run's key in the results: the variant, and how the run differs from the first runs (one_standard_error, 3
    folds, no replay)."""
    parts = [] if rule == "one_standard_error" else [f"{rule} rule"]
    if cli.select_folds != DEFAULT_FOLDS:
        parts.append(f"{cli.select_folds} folds")
    if cli.source_replay_weight:
        parts.append(f"source replay {cli.source_replay_weight:g}")
    return f"{variant} ({', '.join(parts)})" if parts else variant


def encoded_source(folder: Path, variant: str, source):
    """The source's labelled reviews through its tokenizer, for source replay while fine-tuning."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(list(source["text"]), truncation=True, max_length=VARIANTS[variant]["max_length"])
    return Dataset.from_dict({**dict(encoded), "labels": [int(label) for label in source["label"]]})


def probabilities_folder(out: Path, variant: str, rule: str) -> Path:
    """Where a variant's models (fine-tuned with one selection rule, or the linear model: `rule="linear"`) leave
    their test probabilities, `BUDGET-SEED.npy`."""
    return out / variant / "test_probabilities" / rule


def row_rule(entry: dict) -> str:
    """The selection rule (and source replay) a variant's row was fine-tuned with."""
    rule, _, replay = entry.get("rule", "one_standard_error").partition("+replay")
    rule, _, folds = rule.partition("+folds")
    return f"{rule} rule" + (f", {folds} folds" if folds else "") + (f", source replay {replay}" if replay else "")


def cell(values) -> str:
    if not values:
        return ""
    return f"{np.mean(values):.3f}" if len(set(values)) == 1 else f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def section(res: dict, cli) -> str:
    """One target's table: every variant, the linear rows and scratch, with the times."""
    columns = ["0", *(str(b) for b in cli.budgets if b > 0)]
    rows = []
    for variant, entry in res["variants"].items():
        values = {"0": [entry["zero_shot"]], **entry["transfer"]}
        rows.append(
            [f"**RNN transfer**, source `{entry['variant']}` ({entry['source_reviews']:,} reviews), {row_rule(entry)}"]
            + [cell(values.get(c, [])) for c in columns]
        )
        mixes = {b: np.mean([s["mix"] for s in runs]) for b, runs in entry["selection"].items()}
        rows.append(
            ["  chosen mix with the fine-tuned weights (0 = source kept)", ""]
            + [f"{mixes[c]:.2f}" for c in columns[1:]]
        )
        linear = res["linear"].get(entry.get("variant", variant), {})
        rows.append(
            ["  RNN − linear model on the same labels"]
            + [f"{np.mean(values[c]) - np.mean(linear[c]):+.3f}" if c in linear else "" for c in columns]
        )
        if "ensemble" in entry:
            ensemble = entry["ensemble"]
            rows.append(
                ["  **RNN + linear model** (average of their probabilities)"] + [cell(ensemble[c]) for c in columns]
            )
            rows.append(
                ["  RNN + linear − linear model on the same labels"]
                + [f"{np.mean(ensemble[c]) - np.mean(linear[c]):+.3f}" for c in columns]
            )
        if "ensemble_test_weight" in entry:
            best = entry["ensemble_test_weight"]
            rows.append(
                ["  RNN + linear, linear share chosen on the test set (upper bound, not a recipe)"]
                + [f"{best[c]['accuracy']:.3f} ({best[c]['weight']:.1f})" for c in columns]
            )
    for variant, values in res["linear"].items():
        name = "budget alone" if variant == "budget only" else f"`{variant}` source labels + budget x10"
        rows.append([f"TF-IDF + LR, {name}"] + [cell(values.get(c, [])) for c in columns])
    rows.append(["same LSTM from scratch"] + [cell(res["scratch"].get(c, [])) for c in columns])
    times = "; ".join(
        f"`{v}`: source {e['source_seconds']:.0f} s, fine-tuning (every budget and seed) {e['finetune_seconds']:.0f} s"
        for v, e in res["variants"].items()
    )
    return (
        f"Mean ± std over seeds {cli.seeds}; nested, balanced budgets; the recommended recipe selects its stopping "
        f"epoch and mix by {DEFAULT_FOLDS}-fold cross-validation inside each budget (unless a row names more folds) "
        "with the rule each row names "
        "(`paired_standard_error`, the default: the candidate closest to the source within one standard error of "
        "each candidate's per-row difference from the best; `one_standard_error`: within one binomial standard error "
        "of the best accuracy; `source_or_best`: the source unless the best candidate beats it by more than one "
        "standard error of their per-row difference, then the best; `fine_tuned_unless_worse`: the paired errors "
        "pulled the other way, the candidate farthest from the source within one error of the best, so the full "
        "fine-tuning unless it is shown worse; `best`: the highest held-out score; rules run "
        "together share one cross-validation per budget and seed, and each one's time counts it whole; "
        "`source replay w` trains on a "
        "batch of the source's labelled reviews beside each target batch, its loss weighted w, in every fold and "
        "the final run). `RNN + linear model` averages "
        "the class probabilities of that RNN and of the linear model on the same source and target labels (same "
        "budget and seed; equal weights, not tuned); the upper-bound row picks the linear model's share (0 to 1 "
        "by 0.1) that does best on the test set itself, to show what tuning the weight could add at most.\n\n"
        + table(["test accuracy (1,000 reviews), labels:", *columns], rows)
        + f"\n\nTimes: {times}; scratch {res['scratch_seconds']:.0f} s."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--targets",
        nargs="+",
        default=["kitchen", "electronics", "books"],
        choices=TARGETS,
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--budgets", nargs="+", type=int, default=[0, 50, 100, 200, 500, 1000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--select_folds", type=int, default=DEFAULT_FOLDS)
    parser.add_argument(
        "--select_rule",
        nargs="+",
        default=["paired_standard_error"],
        choices=list(SELECTION_RULES),
        help="selection rules to fine-tune with: several share one cross-validation per budget and seed",
    )
    parser.add_argument(
        "--source_replay_weight",
        type=float,
        default=0.0,
        help="fine-tune with source replay (the source's labelled reviews beside each target batch), this weight",
    )
    parser.add_argument("--output_dir", default="/tmp/hf-rnn-transfer-sentiment-sources")
    parser.add_argument(
        "--section",
        default="",
        help="a name for this run's docs/benchmarks.md sections, beside (not over) the default ones, e.g. `ensemble`",
    )
    cli = parser.parse_args()
    out = Path(cli.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "results.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    for target in cli.targets:
        run_target(
            target, cli, out / target, results.setdefault(target, {}), lambda: saved.write_text(json.dumps(results))
        )
    for target in cli.targets:  # one section per target: each keeps the command and date of its own run
        title = f"Sentiment transfer into {target}: which source beats the linear model"
        name = f"sentiment-sources-{target}" + (f"-{cli.section}" if cli.section else "")
        write_section(name, title + (f" ({cli.section})" if cli.section else ""), section(results[target], cli))


if __name__ == "__main__":
    main()
