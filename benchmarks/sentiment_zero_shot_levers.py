"""Levers on the kitchen source at zero kitchen labels, judged on a development set before the benchmark runs them.

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train forward
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train backward --reverse
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train lm3 --lm_epochs 3
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py report forward backward lm3 \
        --average forward backward
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py finetune forward
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py report forward backward \
        --average forward backward --budgets 0 100 1000

`train` builds one `lm_all_domains` source for kitchen (`sentiment_sources.py`: a language model on all review text,
then the supervised stage on 31,442 labelled reviews of other domains), changed by one lever: more language model passes
(`--lm_epochs`), a wider LSTM (`--hidden`), more stacked layers (`--layers`), a longer supervised stage (`--epochs`),
another seed (`--seed`, for an ensemble), ULMFiT's classifier fine-tuning in the supervised stage (`--gradual`: gradual
unfreezing and discriminative learning rates), every text read backwards (`--reverse`: ULMFiT's second direction, on
word-reversed text), every negation written one way (`--split_negations`: FDU-MTL's "does n't" for the Amazon
reviews' "doesn't"), or adversarial training on the word embeddings in the supervised stage (`--adversarial EPS`,
Miyato et al. 2017). `--lm_from NAME` reuses the language model of a source trained before with the same
language-model settings (a supervised-stage lever then trains in about half the time).

It saves the source's class probabilities on the development set (FDU-MTL's kitchen test reviews,
minus any review of the Amazon kitchen test set; no source holds a kitchen review) and on the Amazon kitchen test set.
`report` prints and writes (docs/benchmarks.md) each source's zero-shot accuracy on both, the average of the `--average`
sources' probabilities (the forward/backward ensemble; one row per `--average`), the linear model (TF-IDF + LR) on the
same source labels (also with negations split when a source splits them), and the average of the first source's
probabilities and the linear model's (two model families). Choices are made on the development set; the test column is
reported, not chosen on.

`finetune NAME` fine-tunes a trained source on kitchen labels (`--budgets`, default 100 and 1,000: nested,
class-balanced draws of the 1,000-review pool, one per `--seeds` seed) with the recommended recipe without the
selection inside the budget, and saves its probabilities on both sets. `report --budgets 0 100 1000` then gives each
source, the average of the `--average` sources (seed by seed: the members fine-tuned on the same labels) and the
linear model on the same labels (the source's plus the budget's, x10) at every budget, mean ± std over the seeds, in
its own docs/benchmarks.md section.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import sentiment_sources
from _report import table, write_section
from _reviews import read_fdu, source_reviews, split_negations, target_splits, text_key, unlabelled_reviews
from datasets import Dataset

from hf_rnn_transfer import RNNForSequenceClassification
from hf_rnn_transfer.data import prepare_text_classification
from hf_rnn_transfer.evaluation import balanced_budget_indices, class_probabilities
from hf_rnn_transfer.trainer import RecommendedTrainingArguments, TransferTrainer
from hf_rnn_transfer.transfer_config import TransferConfig

RECIPE = sentiment_sources.VARIANTS["lm_all_domains"]
# the recipe's value of every numeric lever: the `train` flags' defaults, and what `report` leaves out of a row's name
LEVER_DEFAULTS = dict(
    lm_epochs=RECIPE["lm_epochs"], hidden=256, layers=1, epochs=RECIPE["epochs"], seed=0, adversarial=0.0
)
LEVER_HELP = dict(
    lm_epochs="language-model passes over all review text",
    hidden="LSTM hidden size (language model and classifier)",
    layers="stacked LSTM layers (language model and classifier)",
    epochs="passes of the supervised stage over the source labels",
    seed="seed of both stages (another seed: a member of an ensemble)",
    adversarial="adversarial training on the word embeddings in the supervised stage (Miyato et al. 2017): the "
    "perturbation's share of a text's embedding norm (TransferTrainingArguments.adversarial_epsilon)",
)


def reversed_words(text: str) -> str:
    return " ".join(text.split()[::-1])


def reading(lever: dict):
    """How a source with these lever settings reads every text (None: as written)."""
    steps = [f for flag, f in (("split_negations", split_negations), ("reverse", reversed_words)) if lever.get(flag)]
    if not steps:
        return None

    def read(text: str) -> str:
        for step in steps:
            text = step(text)
        return text

    return read


def development_set(splits) -> Dataset:
    """FDU-MTL's kitchen test reviews that are not in the Amazon kitchen test set."""
    banned = {text_key(t) for t in splits["test"]["text"]}
    rows = [r for r in read_fdu("kitchen_housewares") if r["split"] == "test" and text_key(r["text"]) not in banned]
    return Dataset.from_dict({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})


def train(cli) -> None:
    from transformers import AutoTokenizer, DataCollatorWithPadding

    spec = dict(RECIPE, **{lever: getattr(cli, lever) for lever in LEVER_DEFAULTS})
    spec["source_training"] = dict(adversarial_epsilon=spec.pop("adversarial"))
    if cli.lm_from:
        spec["lm_from"] = shared_language_model(Path(cli.output_dir), cli.lm_from, vars(cli))
    if cli.gradual:
        spec["source_training"].update(freezing_strategy="gradual", unfreeze_interval=None, discriminative_lr=True)
    out = Path(cli.output_dir) / cli.name
    splits = target_splits("kitchen")
    dev = development_set(splits)
    source = source_reviews("kitchen")
    unlabelled = unlabelled_reviews("kitchen")
    read = reading(vars(cli))
    if read:
        source = source.map(lambda r: {"text": read(r["text"])})
        splits = {k: v.map(lambda r: {"text": read(r["text"])}) for k, v in splits.items()}
        dev = dev.map(lambda r: {"text": read(r["text"])})
        unlabelled = [read(text) for text in unlabelled]
    started = time.perf_counter()
    folder, zero_shot, _ = sentiment_sources.train_source(
        cli.name, "kitchen", out, source, splits, spec=spec, unlabelled=unlabelled
    )
    result = {"name": cli.name, "seconds": round(time.perf_counter() - started), "lever": vars(cli)}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    collator = DataCollatorWithPadding(tokenizer)
    model = RNNForSequenceClassification.from_pretrained(folder).eval()
    sets = {"dev": dev, "test": splits["test"]}  # already read the source's way
    result.update(save_probabilities(model, sets, {p: encode(d, tokenizer) for p, d in sets.items()}, collator, out))
    for part, data in sets.items():
        np.save(out / f"labels_{part}.npy", np.asarray(data["label"]))
    # the test set's second reading (pretrain's own evaluation) must agree with the probabilities saved here; under
    # bf16 the two readings batch and pad the reviews differently, which can flip a review or two at the boundary
    tolerance = 2.5 / len(splits["test"]) if spec.get("bf16") else 1e-9
    assert abs(result["test"] - zero_shot) < tolerance, (result["test"], zero_shot)
    print(json.dumps(result))
    (out / "res.json").write_text(json.dumps(result))


# the settings a source's language model depends on: another source may reuse it only when they all match
LM_SETTINGS = ("lm_epochs", "hidden", "layers", "seed", "reverse", "split_negations")


def shared_language_model(out: Path, name: str, lever: dict) -> Path:
    """The language model source `name` trained, checked to be the one these lever settings would train."""
    trained = json.loads((trained_source(out, name) / "res.json").read_text())["lever"]
    differ = [k for k in LM_SETTINGS if trained.get(k, LEVER_DEFAULTS.get(k, False)) != lever.get(k)]
    if differ:
        raise SystemExit(f"--lm_from {name}: its language model differs in {differ}; train this source's own.")
    if not (out / name / "lm" / "model.safetensors").exists():
        raise SystemExit(f"--lm_from {name}: {out / name / 'lm'} holds no language model.")
    return out / name / "lm"


def trained_source(out: Path, name: str) -> Path:
    """The folder `train NAME` wrote, or a clear exit."""
    if not (out / name / "res.json").exists():
        raise SystemExit(f"No trained source {name!r} in {out}: run `train {name}` first.")
    return out / name


def reader(source_dir: Path):
    """The text reading the source was trained with (`--split_negations`, `--reverse`), or None: as written."""
    return reading(json.loads((source_dir / "res.json").read_text()).get("lever", {}))


def encode(data: Dataset, tokenizer, read=None) -> Dataset:
    rows = data.select_columns(["text", "label"])
    if read is not None:
        rows = rows.map(lambda r: {"text": read(r["text"])})
    return prepare_text_classification(rows, tokenizer, max_length=RECIPE["max_length"])[0]


def save_probabilities(model, sets: dict, encoded: dict, collator, folder: Path) -> dict:
    """Save the model's class probabilities on each set (`probs_<part>.npy`); returns its accuracy on each."""
    accuracy = {}
    for part, rows in encoded.items():
        probabilities, labels = class_probabilities(model, rows, collator)
        assert labels.tolist() == list(sets[part]["label"]), f"the encoded {part} set must keep every review in order"
        np.save(folder / f"probs_{part}.npy", probabilities)
        accuracy[part] = float((probabilities.argmax(-1) == labels).mean())
    return accuracy


def run_folder(source_dir: Path, budget: int, seed: int) -> Path:
    return source_dir / "finetuned" / f"budget{budget}-seed{seed}"


def finetune(cli) -> None:
    """Fine-tune a trained source on each kitchen budget and seed; save its probabilities on dev and test."""
    from transformers import AutoTokenizer, DataCollatorWithPadding, set_seed

    out = Path(cli.output_dir)
    source_dir = trained_source(out, cli.name)
    read, folder = reader(source_dir), source_dir / "source"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    collator = DataCollatorWithPadding(tokenizer)
    splits = target_splits("kitchen")
    sets = {"dev": development_set(splits), "test": splits["test"]}
    encoded = {part: encode(data, tokenizer, read) for part, data in sets.items()}
    pool = splits["pool"]
    for seed in cli.seeds:
        subsets = balanced_budget_indices(pool["label"], cli.budgets, seed)
        for budget in cli.budgets:
            run = run_folder(source_dir, budget, seed)
            if (run / "res.json").exists():
                print(f"{cli.name} budget {budget} seed {seed}: done before, kept ({run})")
                continue
            run.mkdir(parents=True, exist_ok=True)
            labelled = encode(pool.select(subsets[budget]), tokenizer, read)
            set_seed(seed)
            model = RNNForSequenceClassification.from_pretrained(
                folder, transfer=TransferConfig(transfer_head=True), id2label=dict(enumerate(sentiment_sources.NAMES)),
                label2id={n: i for i, n in enumerate(sentiment_sources.NAMES)},
            )  # fmt: skip
            args = RecommendedTrainingArguments(  # the recipe without the selection inside the budget
                str(run / "trainer"), report_to="none", save_strategy="no", disable_tqdm=True, seed=seed, select_folds=0
            )
            started = time.perf_counter()
            TransferTrainer(model, args, train_dataset=labelled, data_collator=collator).train()
            result = {"name": cli.name, "budget": budget, "seed": seed, "seconds": round(time.perf_counter() - started)}
            result.update(save_probabilities(model.eval(), sets, encoded, collator, run))
            print(json.dumps(result), flush=True)
            (run / "res.json").write_text(json.dumps(result))


def report(cli) -> None:
    out = Path(cli.output_dir)
    unknown = sorted({name for group in cli.average for name in group} - set(cli.names))
    if unknown:
        raise SystemExit(f"--average names sources that are not reported: {unknown}; name them after `report` too.")
    splits = target_splits("kitchen")
    dev = development_set(splits)
    labels = {"dev": np.asarray(dev["label"]), "test": np.asarray(splits["test"]["label"])}
    seeds = cli.seeds if any(cli.budgets) else [0]
    source = source_reviews("kitchen")
    texts, source_labels = list(source["text"]), list(source["label"])
    pool_texts, pool_labels = list(splits["pool"]["text"]), list(splits["pool"]["label"])
    subsets = {seed: balanced_budget_indices(pool_labels, [b for b in cli.budgets if b], seed) for seed in seeds}
    # probabilities[name][(budget, seed)][part]; at 0 labels the source itself, the same for every seed
    probabilities, trained = {}, {}  # trained: each source's res.json (its lever and seconds)
    for name in cli.names:
        source_dir = trained_source(out, name)
        for part in labels:
            if not np.array_equal(np.load(source_dir / f"labels_{part}.npy"), labels[part]):
                raise SystemExit(f"{name}'s {part} labels are not this {part} set's: train it again.")
        zero_shot = {part: np.load(source_dir / f"probs_{part}.npy") for part in labels}
        probabilities[name] = {}
        for budget in cli.budgets:
            for seed in seeds:
                run = run_folder(source_dir, budget, seed)
                if budget and not (run / "res.json").exists():
                    raise SystemExit(
                        f"{name} is not fine-tuned on {budget} labels with seed {seed}: run "
                        f"`finetune {name} --budgets {budget} --seeds {seed}` first."
                    )
                found = {part: np.load(run / f"probs_{part}.npy") for part in labels} if budget else zero_shot
                probabilities[name][budget, seed] = found
        trained[name] = json.loads((source_dir / "res.json").read_text())

    def linear_model(read=None) -> dict:
        """The linear model on the source's labels (+ the budget's, x10) per budget and seed, texts read by `read`."""
        read = read or (lambda text: text)
        source_read, pool_read = [read(t) for t in texts], [read(t) for t in pool_texts]  # read once, fitted many times
        evaluated = [read(t) for t in list(dev["text"]) + list(splits["test"]["text"])]
        found = {}
        for budget in cli.budgets:
            for seed in seeds:
                if not budget and (0, seeds[0]) in found:  # no kitchen labels: the same fit for every seed
                    found[budget, seed] = found[budget, seeds[0]]
                    continue
                chosen = list(subsets[seed][budget]) if budget else []
                weights = [1.0] * len(texts) + [10.0] * len(chosen)
                both = sentiment_sources.linear_probabilities(
                    source_read + [pool_read[i] for i in chosen],
                    source_labels + [int(pool_labels[i]) for i in chosen], weights,
                    source_read + pool_read, evaluated,
                )  # fmt: skip
                found[budget, seed] = {"dev": both[: len(dev)], "test": both[len(dev) :]}
        return found

    linear = linear_model()

    def cells(found: dict) -> list:
        """dev and test accuracy per budget, each the mean over seeds (± their std where seeds differ)."""
        row = []
        for budget in cli.budgets:
            for part in labels:
                scores = [float((found[budget, seed][part].argmax(-1) == labels[part]).mean()) for seed in seeds]
                spread = f" ± {np.std(scores):.3f}" if budget and len(seeds) > 1 else ""
                row.append(f"{np.mean(scores):.3f}{spread}")
        return row

    def averaged(members: list) -> dict:
        return {key: {part: np.mean([m[key][part] for m in members], axis=0) for part in labels} for key in members[0]}

    rows = []
    for name in cli.names:
        lever = trained[name].get("lever", {})
        changed = [f"--{k} {lever[k]}" for k, v in LEVER_DEFAULTS.items() if lever.get(k, v) != v]
        changed += [f"--{flag}" for flag in ("reverse", "gradual", "split_negations") if lever.get(flag)]
        described = f" ({' '.join(changed)})" if changed else " (the benchmark's recipe)"
        rows.append([f"LSTM source `{name}`{described}", *cells(probabilities[name]), trained[name]["seconds"]])
    for group in cli.average:
        rows.append([f"average of {' + '.join(group)}", *cells(averaged([probabilities[n] for n in group])), ""])
    rows.append(["TF-IDF + LR on the same source labels" + (" (+ the budget's, x10)" if any(cli.budgets) else ""),
                 *cells(linear), ""])  # fmt: skip
    if any(trained[name].get("lever", {}).get("split_negations") for name in cli.names):
        rows.append(["the same, negations split (--split_negations)", *cells(linear_model(split_negations)), ""])
    first = cli.names[0]
    rows.append([f"average of `{first}` + the linear model (two model families)",
                 *cells(averaged([probabilities[first], linear])), ""])  # fmt: skip
    if cli.budgets == [0]:
        header = ["kitchen, 0 labels", f"dev ({len(dev)} FDU-MTL kitchen test reviews)", "test (1,000)", "source s"]
        key, title = "sentiment-zero-shot-levers", "Kitchen source levers at zero labels"
    else:
        header = ["kitchen labels:", *[f"{b} {part}" for b in cli.budgets for part in ("dev", "test (1,000)")]]
        header.append("source s")
        key, title = (
            "sentiment-levers-labelled",
            "Kitchen source levers with kitchen labels: fine-tuned sources averaged",
        )
    about = (
        "Each LSTM source is `lm_all_domains` (sentiment_sources.py: one language-model pass over all review text, "
        "then the supervised stage on 31,442 labelled reviews of other domains) with at most one lever changed, "
        "trained by `train NAME [lever]`"
        + (
            f"; at a budget of kitchen labels, fine-tuned by `finetune NAME` (the recommended recipe without the "
            f"selection inside the budget, nested class-balanced budgets of the 1,000-review pool, mean ± std over "
            f"seeds {seeds}), the average rows averaging the members' probabilities seed by seed"
            if any(cli.budgets) else ""
        )
        + ". Choices are made on the development set (no source holds a kitchen review); "
        "the test column is reported beside it, not chosen on. One standard error is about 1.5 points on the "
        "development set and 1 point on the test set.\n\n"
    )  # fmt: skip
    write_section(key, title, about + table(header, rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="/tmp/hf-rnn-transfer-zero-shot-levers")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("train", help="train one source with one lever changed")
    one.add_argument("name")
    for lever, default in LEVER_DEFAULTS.items():
        one.add_argument(f"--{lever}", type=type(default), default=default, help=LEVER_HELP[lever])
    one.add_argument(
        "--lm_from",
        metavar="NAME",
        help="reuse the language model of the trained source NAME (same language-model settings) instead of "
        "training it again: a supervised-stage lever measured in half the time",
    )
    one.add_argument("--reverse", action="store_true", help="read every text backwards (word order)")
    one.add_argument(
        "--split_negations", action="store_true",
        help="write every raw negation as FDU-MTL's tokenized reviews do (doesn't -> does n't) before reading it",
    )  # fmt: skip
    one.add_argument(
        "--gradual",
        action="store_true",
        help="ULMFiT's stage 3 in the supervised stage: gradual unfreezing from the head down, discriminative rates",
    )
    tune = commands.add_parser("finetune", help="fine-tune one trained source on kitchen budgets (its seeds)")
    tune.add_argument("name")
    many = commands.add_parser("report", help="compare trained sources, their average and the linear model")
    many.add_argument("names", nargs="+")
    many.add_argument(
        "--average", nargs="+", action="append", default=[],
        help="sources whose probabilities are averaged (a row); give it again for another average",
    )  # fmt: skip
    for command, budgets in ((tune, [100, 1000]), (many, [0])):
        command.add_argument(
            "--budgets", nargs="+", type=int, default=budgets, help="kitchen labels (0: the source zero-shot)"
        )
        command.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds of the budgets' draws")
    cli = parser.parse_args()
    if cli.command == "finetune" and 0 in cli.budgets:
        parser.error("finetune's --budgets must be positive: at 0 labels the source is its own result (`report`).")
    {"train": train, "finetune": finetune, "report": report}[cli.command](cli)


if __name__ == "__main__":
    main()
