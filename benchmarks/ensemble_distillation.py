"""Distilling the RNN + linear average into the RNN on the target's unlabelled reviews: does the RNN alone gain?

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/ensemble_distillation.py --sources_dir /tmp/bench_rules
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/ensemble_distillation.py --sources_dir /tmp/bench_dev \
        --target electronics
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/ensemble_distillation.py --sources_dir /tmp/bench_rules \
        --teacher finetuned --budgets 100 1000

The `lm_all_domains` source of `--target` (kitchen by default; sentiment_sources.py's, under `--sources_dir`; trained
there if missing) and the linear model on the same labels (TF-IDF + LR on the ~31,000 source reviews plus the budget's
target labels x10) are averaged into a teacher; its class probabilities on the target's unlabelled reviews (its FDU-MTL
twin's unlabeled split and the Amazon pool, minus every test, development and budget review) train the RNN
(`hf_rnn_transfer.distillation`: the recommended recipe, batch 32, `--epochs` passes, the budget's labels as one-hot
rows). Reported for each budget (nested, class-balanced, 3 seeds): accuracy of the source zero-shot, the linear model,
the teacher, the distilled RNN and its average with the linear model, on the Amazon test set (1,000) and the
development set (the FDU-MTL twin's test reviews not in it), and the distillation's time. A target other than kitchen
gets its own docs/benchmarks.md section.

`--teacher finetuned` first fine-tunes the source on the budget's labels and averages that model with the linear
model; the student continues from it (the order of `finetune --select_folds 0 --linear_companion --distill_file`, which
also chooses the linear share by cross-validation: here it is one half). `--rounds 2` distills again from the first
round's distilled RNN + linear average. `--members DIR ...` adds more sources (model folders that share the
source's tokenizer, e.g. `sentiment_zero_shot_levers.py`'s seeds): the teacher's RNN half is then the average of all of
them (each fine-tuned on the budget under `--teacher finetuned`), and the student starts from the first.
`--split_negations` reads every text (target, development, unlabelled, the linear model's) with negations written the
FDU-MTL way ("doesn't" -> "does n't"), for sources trained so (`sentiment_zero_shot_levers.py train NAME
--split_negations`). Each gets its own section.

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/ensemble_distillation.py --sources_dir /tmp/bench_seeds \
        --teacher finetuned --budgets 100 1000 --members /tmp/dev/s1/source /tmp/dev/s2/source

`--more_unlabelled N` adds N unlabelled reviews of the source domains (a fixed sample of every FDU-MTL domain's
unlabeled split but the twin's, never a test or development review) to the texts the student learns the teacher's
answers on: a larger transfer set. `--adversarial EPS` trains the student with adversarial training on its word
embeddings (`adversarial_epsilon`). `--label_repeats K` puts each of the budget's labelled rows K times among the
student's rows.
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import sentiment_sources as bench
from _report import table, write_section
from _reviews import (
    FDU_TWIN,
    deduplicated,
    read_fdu,
    source_reviews,
    split_negations,
    target_splits,
    text_key,
    unlabelled_reviews,
)
from datasets import Dataset, concatenate_datasets
from source_replay import source_folder
from transformers import AutoTokenizer, DataCollatorWithPadding, set_seed

from hf_rnn_transfer import RNNForSequenceClassification
from hf_rnn_transfer.data import prepare_text_classification
from hf_rnn_transfer.distillation import distill, teacher_rows
from hf_rnn_transfer.evaluation import balanced_budget_indices, class_probabilities
from hf_rnn_transfer.trainer import RecommendedTrainingArguments, TransferTrainer
from hf_rnn_transfer.transfer_config import TransferConfig

EPOCHS = 8.0  # the student's passes over the transfer set; another count gets its own docs section
COLUMNS = ["source zero-shot", "linear", "teacher (average)", "distilled RNN", "distilled RNN + linear"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources_dir", default="/tmp/hf-rnn-transfer-sentiment-sources")
    parser.add_argument("--target", default="kitchen", choices=bench.TARGETS)
    parser.add_argument("--budgets", nargs="+", type=int, default=[0, 100, 1000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=EPOCHS)
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="distillation rounds: round r's teacher averages round r-1's distilled RNN (the source for r=1) with the "
        "linear model; each round's student starts from the teacher's RNN",
    )  # fmt: skip
    parser.add_argument(
        "--teacher", default="source", choices=["source", "finetuned"],
        help="the teacher's RNN half: the source zero-shot (default), or the source fine-tuned on the budget's labels "
        "(the recommended recipe without the selection inside the budget, the order of `finetune --select_folds 0 "
        "--linear_companion --distill_file`); the student starts from it",
    )  # fmt: skip
    parser.add_argument(
        "--members", nargs="*", default=[],
        help="more source model folders (sharing the source's tokenizer) averaged with it into the teacher's RNN half",
    )  # fmt: skip
    parser.add_argument(
        "--split_negations", action="store_true",
        help="read every text with negations split the FDU-MTL way (doesn't -> does n't), for sources trained so "
        "(`sentiment_zero_shot_levers.py train NAME --split_negations`); the linear model reads them the same way",
    )  # fmt: skip
    parser.add_argument(
        "--more_unlabelled", type=int, default=0,
        help="also distil on this many unlabelled reviews of the source domains (every FDU-MTL domain's unlabeled "
        "split but the target twin's; a fixed sample, never a test or development review): a larger transfer set",
    )  # fmt: skip
    parser.add_argument(
        "--adversarial", type=float, default=0.0,
        help="adversarial training of the student on its word embeddings (TransferTrainingArguments."
        "adversarial_epsilon: the perturbation's share of a text's embedding norm); 0 = off",
    )  # fmt: skip
    parser.add_argument(
        "--label_repeats", type=int, default=1,
        help="how many times each of the budget's labelled rows appears in the student's training rows (the linear "
        "model weighs them x10): a larger share of the distillation loss for the target's own labels",
    )  # fmt: skip
    cli = parser.parse_args()
    if cli.label_repeats < 1:
        parser.error(f"--label_repeats must be 1 or more, got {cli.label_repeats}.")
    if cli.adversarial < 0:
        parser.error(f"--adversarial must be 0 (off) or a positive share, got {cli.adversarial}.")
    if cli.more_unlabelled < 0:
        parser.error(f"--more_unlabelled must be 0 or more reviews, got {cli.more_unlabelled}.")
    if cli.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {cli.rounds}.")
    out = Path(cli.sources_dir) / cli.target
    splits, source = target_splits(cli.target), source_reviews(cli.target, fdu=True)
    read = split_negations if cli.split_negations else (lambda text: text)
    if cli.split_negations:
        splits = {part: data.map(lambda r: {"text": read(r["text"])}) for part, data in splits.items()}
        source = source.map(lambda r: {"text": read(r["text"])})
    folder = source_folder(out, cli.target, splits, source)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    collator = DataCollatorWithPadding(tokenizer)
    max_length = bench.VARIANTS["lm_all_domains"]["max_length"]

    def encoded(texts, labels=None):
        rows = Dataset.from_dict(
            {"text": list(texts), "label": list(labels if labels is not None else [0] * len(texts))}
        )
        return prepare_text_classification(rows, tokenizer, max_length=max_length)[0]

    twin = [dict(row, text=read(row["text"])) for row in read_fdu(FDU_TWIN[cli.target])]
    test_keys = {text_key(t) for t in splits["test"]["text"]}
    dev_rows = [r for r in twin if r["split"] == "test" and text_key(r["text"]) not in test_keys]
    dev = Dataset.from_dict({"text": [r["text"] for r in dev_rows], "label": [r["label"] for r in dev_rows]})
    sets = {"test": splits["test"], "dev": dev}
    truth = {part: np.asarray(data["label"]) for part, data in sets.items()}
    banned = {text_key(t) for part in sets.values() for t in part["text"]}
    rows = [r for r in twin if r["split"] == "unlabeled"]
    rows += [{"text": t} for t in splits["pool"]["text"]]
    unlabelled = [r["text"] for r in deduplicated(rows, banned)]
    if cli.more_unlabelled:
        seen = banned | {text_key(t) for t in unlabelled}
        others = [read(t) for t in unlabelled_reviews(cli.target, include_target=False)]
        others = [r["text"] for r in deduplicated([{"text": t} for t in others], seen)]
        if cli.more_unlabelled > len(others):
            parser.error(
                f"--more_unlabelled {cli.more_unlabelled}: the source domains hold {len(others)} such reviews."
            )
        order = np.random.default_rng(0).permutation(len(others))[: cli.more_unlabelled]
        unlabelled += [others[i] for i in sorted(order)]
    encoded_sets = {part: encoded(data["text"], data["label"]) for part, data in sets.items()}

    def accuracy(probabilities, part: str) -> float:
        return float((probabilities.argmax(-1) == truth[part]).mean())

    def probabilities_on_sets(model) -> dict:
        return {part: class_probabilities(model, rows, collator)[0] for part, rows in encoded_sets.items()}

    for member in cli.members:
        if not (Path(member) / "config.json").is_file():
            parser.error(f"--members {member}: not a model folder (no config.json); give a saved source's folder.")
        if AutoTokenizer.from_pretrained(member).get_vocab() != tokenizer.get_vocab():
            parser.error(
                f"--members {member}: its tokenizer differs from the source's ({folder}); members must share it."
            )
    origins = [folder, *map(Path, cli.members)]
    for origin in origins:  # a source from `sentiment_zero_shot_levers.py train` says how it read its texts
        trained = Path(origin).resolve().parent / "res.json"
        lever = json.loads(trained.read_text()).get("lever", {}) if trained.is_file() else {}
        if lever.get("reverse"):
            parser.error(f"{origin} was trained on word-reversed text (--reverse); this script reads texts forwards.")
        if "split_negations" in lever and bool(lever["split_negations"]) != cli.split_negations:
            way = "with" if lever["split_negations"] else "without"
            parser.error(f"{origin} was trained {way} --split_negations; run this {way} it too, so both read alike.")
    source_models = [RNNForSequenceClassification.from_pretrained(o).eval() for o in origins]
    zero_shot = averaged([probabilities_on_sets(m) for m in source_models])

    def fresh_model(start):
        return RNNForSequenceClassification.from_pretrained(
            start, transfer=TransferConfig(transfer_head=True), id2label=dict(enumerate(bench.NAMES)),
            label2id={n: i for i, n in enumerate(bench.NAMES)},
        )  # fmt: skip

    texts, labels = list(source["text"]), list(source["label"])
    pool_texts, pool_labels = list(splits["pool"]["text"]), list(splits["pool"]["label"])
    saved = out / "ensemble_distillation.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    for seed in cli.seeds:
        subsets = balanced_budget_indices(pool_labels, [b for b in cli.budgets if b], seed)
        for budget in cli.budgets:
            key = run_key(budget, seed, cli)
            if key in results:
                continue
            chosen = list(subsets[budget]) if budget else []
            labelled_texts, labelled = [pool_texts[i] for i in chosen], [int(pool_labels[i]) for i in chosen]
            taken = {text_key(t) for t in labelled_texts}
            unlabelled_now = [t for t in unlabelled if text_key(t) not in taken]
            linear = bench.linear_probabilities(
                texts + labelled_texts, labels + labelled, [1.0] * len(texts) + [10.0] * len(chosen),
                texts + pool_texts, list(sets["test"]["text"]) + list(dev["text"]) + unlabelled_now,
            )  # fmt: skip
            n_test, n_dev = len(sets["test"]), len(dev)
            linear = {
                "test": linear[:n_test],
                "dev": linear[n_test : n_test + n_dev],
                "unlabelled": linear[n_test + n_dev :],
            }
            unlabelled_rows = encoded(unlabelled_now)
            labelled_rows = encoded(labelled_texts, labelled) if chosen else None
            student_labelled = concatenate_datasets([labelled_rows] * cli.label_repeats) if chosen else None
            start, finetune_seconds, teacher_rnns, rnn_parts = folder, 0.0, source_models, zero_shot
            recipe = RecommendedTrainingArguments(
                str(out / "distillation-runs"), report_to="none", save_strategy="no", disable_tqdm=True, seed=seed
            )
            if cli.teacher == "finetuned" and chosen:
                started, teacher_rnns = time.perf_counter(), []
                finetune_args = replace(recipe, select_folds=0)
                for origin in origins:
                    set_seed(seed)
                    model = fresh_model(origin)
                    TransferTrainer(model, finetune_args, train_dataset=labelled_rows, data_collator=collator).train()
                    teacher_rnns.append(model.eval())
                finetune_seconds = time.perf_counter() - started
                start = out / "distillation-runs" / "finetuned"
                teacher_rnns[0].save_pretrained(start)
                rnn_parts = averaged([probabilities_on_sets(m) for m in teacher_rnns])
            rnn_unlabelled = np.mean([class_probabilities(m, unlabelled_rows, collator)[0] for m in teacher_rnns], 0)
            previous, seconds, per_round = rnn_unlabelled, 0.0, []
            for _ in range(cli.rounds):
                teacher = (previous + linear["unlabelled"]) / 2
                train = teacher_rows(unlabelled_rows, teacher, student_labelled)
                set_seed(seed)
                model = fresh_model(start)
                started = time.perf_counter()
                student_recipe = replace(recipe, per_device_train_batch_size=32, adversarial_epsilon=cli.adversarial)
                distill(model, train, student_recipe, collator, epochs=cli.epochs)
                seconds += time.perf_counter() - started
                previous = class_probabilities(model, unlabelled_rows, collator)[0]
                students = probabilities_on_sets(model)
                per_round.append({part: accuracy(p, part) for part, p in students.items()})
            entry = {"unlabelled": len(unlabelled_now), "seconds": round(seconds, 1), "rounds": per_round}
            if cli.teacher == "finetuned":
                entry["finetune_seconds"] = round(finetune_seconds, 1)
            for part, student in students.items():
                rnn_part = rnn_parts[part]
                entry[part] = dict(zip(COLUMNS, [
                    accuracy(p, part) for p in
                    (rnn_part, linear[part], (rnn_part + linear[part]) / 2, student, (student + linear[part]) / 2)
                ]))  # fmt: skip
            results[key] = entry
            print(key, json.dumps(entry), flush=True)
            saved.write_text(json.dumps(results, indent=1))
    report(results, cli)


def averaged(parts: list[dict]) -> dict:
    """The members' class probabilities averaged, set by set."""
    return {part: np.mean([p[part] for p in parts], axis=0) for part in parts[0]}


def run_key(budget: int, seed: int, cli) -> str:
    return run_suffix(f"{budget} {seed} {cli.epochs:g}", cli, " ")


def run_suffix(name: str, cli, separator: str) -> str:
    """`name` with what sets this run apart from the default one: more rounds, the fine-tuned teacher, more members,
    the negation reading, a larger transfer set (the epochs are in the run key, and in the section name when not the
    default)."""
    parts = [name] + ([f"r{cli.rounds}"] if cli.rounds > 1 else []) + (["finetuned"] if cli.teacher != "source" else [])
    parts += [f"{1 + len(cli.members)}-sources"] if cli.members else []
    parts += ["split-negations"] if cli.split_negations else []
    parts += [f"more{cli.more_unlabelled}"] if cli.more_unlabelled else []
    parts += [f"adversarial{cli.adversarial:g}"] if cli.adversarial else []
    parts += [f"labels-x{cli.label_repeats}"] if cli.label_repeats > 1 else []
    return separator.join(parts)


def report(results: dict, cli) -> None:
    rows = []
    for budget in cli.budgets:
        entries = [results.get(run_key(budget, seed, cli)) for seed in cli.seeds]
        entries = [e for e in entries if e]
        if not entries:
            continue
        cells = [f"{np.mean([e[part][column] for e in entries]):.3f}" for part in ("test", "dev") for column in COLUMNS]
        times = [f"{np.mean([e.get(k, 0.0) for e in entries]):.0f}" for k in ("finetune_seconds", "seconds")]
        rows.append([str(budget), *cells, *(times if cli.teacher == "finetuned" else times[1:])])
    names = [("fine-tuned RNN" if cli.teacher == "finetuned" else COLUMNS[0]), *COLUMNS[1:]]
    if cli.members:
        kind = "fine-tuned RNNs" if cli.teacher == "finetuned" else "sources zero-shot"
        names[0] = f"{kind} averaged ({1 + len(cli.members)})"
    header = [f"{cli.target} labels", *[f"{c} ({part})" for part in ("test", "dev") for c in names]]
    header += ["fine-tuning s", "distillation s"] if cli.teacher == "finetuned" else ["distillation s"]
    text = table(header, rows)
    print(text)
    if cli.teacher == "finetuned":
        teacher = (
            "the source fine-tuned on the budget's labels (the recommended recipe without the selection inside the "
            "budget, the order of `finetune --select_folds 0 --linear_companion --distill_file`; at 0 labels: the "
            "source)"
        )
    else:
        teacher = (
            "the `lm_all_domains` source (zero-shot: the selection inside the budget keeps it at most budgets, "
            "sentiment_sources.py)"
        )
    rounds = (
        f" Round {cli.rounds} of {cli.rounds}: each round's teacher averages the previous round's distilled RNN with "
        "the linear model."
        if cli.rounds > 1
        else ""
    )
    if cli.members:
        teacher = (
            f"{teacher}, averaged with {len(cli.members)} more sources of the same recipe and tokenizer treated the "
            f"same way ({', '.join(cli.members)})"
        )
    if cli.split_negations:
        teacher += "; every text (and the sources' training texts) with negations split the FDU-MTL way"
    more = (
        f" and {cli.more_unlabelled} unlabelled reviews of the source domains (a fixed sample of their FDU-MTL "
        "unlabeled splits)"
        if cli.more_unlabelled
        else ""
    )
    adversarial = (
        f", with adversarial training on its word embeddings (each step also on its batch moved along the loss's "
        f"gradient by {cli.adversarial:g} of each text's embedding norm, Miyato et al. 2017)"
        if cli.adversarial
        else ""
    )
    repeats = f", each {cli.label_repeats} times" if cli.label_repeats > 1 else ""
    note = (
        f"Mean over seeds {cli.seeds}. Teacher: the equal average of {teacher} and the linear model on the same "
        f"labels. The distilled RNN starts from the teacher's RNN and trains {cli.epochs:g} epochs on the teacher's "
        f"probabilities over the unlabelled {cli.target} reviews{more} (and the budget's labels, one-hot{repeats})"
        f"{adversarial}.{rounds} One standard error is about 1 point on the test set and 1.5 on the development set."
    )
    epochs = "" if cli.epochs == EPOCHS else f"{cli.epochs:g} epochs"
    name = run_suffix("ensemble-distillation" + ("" if cli.target == "kitchen" else f"-{cli.target}"), cli, "-")
    name += f"-{epochs.replace(' ', '-')}" if epochs else ""
    title = run_suffix(f"Distilling the RNN + linear average into the RNN ({cli.target}", cli, ", ")
    title += (f", {epochs}" if epochs else "") + ")"
    write_section(name, title, text + "\n\n" + note)


if __name__ == "__main__":
    main()
