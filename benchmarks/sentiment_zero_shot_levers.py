"""Levers on the kitchen source at zero kitchen labels, judged on a development set before the benchmark runs them.

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train forward
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train backward --reverse
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train lm3 --lm_epochs 3
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py report forward backward lm3 \
        --average forward backward

`train` builds one `lm_all_domains` source for kitchen (`sentiment_sources.py`: a language model on all review text,
then the supervised stage on 31,442 labelled reviews of other domains), changed by one lever: more language model passes
(`--lm_epochs`), a wider LSTM (`--hidden`), more stacked layers (`--layers`), a longer supervised stage (`--epochs`),
another seed (`--seed`, for an ensemble), ULMFiT's classifier fine-tuning in the supervised stage (`--gradual`: gradual
unfreezing and discriminative learning rates), or every text read backwards (`--reverse`: ULMFiT's second direction, on
word-reversed text). It saves the source's class probabilities on the development set (FDU-MTL's kitchen test reviews,
minus any review of the Amazon kitchen test set; no source holds a kitchen review) and on the Amazon kitchen test set.
`report` prints and writes (docs/benchmarks.md) each source's zero-shot accuracy on both, the average of the `--average`
sources' probabilities (the forward/backward ensemble), the linear model (TF-IDF + LR) on the same source labels, and
the average of the first source's probabilities and the linear model's (two model families). Choices are made on the
development set; the test column is reported, not chosen on.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import sentiment_sources
from _report import table, write_section
from _reviews import read_fdu, source_reviews, target_splits, text_key, unlabelled_reviews
from datasets import Dataset

from hf_rnn_transfer import RNNForSequenceClassification
from hf_rnn_transfer.data import prepare_text_classification
from hf_rnn_transfer.evaluation import class_probabilities

RECIPE = sentiment_sources.VARIANTS["lm_all_domains"]
# the recipe's value of every numeric lever: the `train` flags' defaults, and what `report` leaves out of a row's name
LEVER_DEFAULTS = dict(lm_epochs=RECIPE["lm_epochs"], hidden=256, layers=1, epochs=RECIPE["epochs"], seed=0)
LEVER_HELP = dict(
    lm_epochs="language-model passes over all review text",
    hidden="LSTM hidden size (language model and classifier)",
    layers="stacked LSTM layers (language model and classifier)",
    epochs="passes of the supervised stage over the source labels",
    seed="seed of both stages (another seed: a member of an ensemble)",
)


def reversed_words(text: str) -> str:
    return " ".join(text.split()[::-1])


def development_set(splits) -> Dataset:
    """FDU-MTL's kitchen test reviews that are not in the Amazon kitchen test set."""
    banned = {text_key(t) for t in splits["test"]["text"]}
    rows = [r for r in read_fdu("kitchen_housewares") if r["split"] == "test" and text_key(r["text"]) not in banned]
    return Dataset.from_dict({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})


def train(cli) -> None:
    from transformers import AutoTokenizer, DataCollatorWithPadding

    spec = dict(RECIPE, **{lever: getattr(cli, lever) for lever in LEVER_DEFAULTS})
    if cli.gradual:
        spec["source_training"] = dict(freezing_strategy="gradual", unfreeze_interval=None, discriminative_lr=True)
    out = Path(cli.output_dir) / cli.name
    splits = target_splits("kitchen")
    dev = development_set(splits)
    source = source_reviews("kitchen")
    read = reversed_words if cli.reverse else (lambda text: text)
    if cli.reverse:
        source = source.map(lambda r: {"text": read(r["text"])})
        splits = {k: v.map(lambda r: {"text": read(r["text"])}) for k, v in splits.items()}
        dev = dev.map(lambda r: {"text": read(r["text"])})
    unlabelled = [read(text) for text in unlabelled_reviews("kitchen")]
    started = time.perf_counter()
    folder, zero_shot, _ = sentiment_sources.train_source(
        cli.name, "kitchen", out, source, splits, spec=spec, unlabelled=unlabelled
    )
    result = {"name": cli.name, "seconds": round(time.perf_counter() - started), "lever": vars(cli)}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    collator = DataCollatorWithPadding(tokenizer)
    model = RNNForSequenceClassification.from_pretrained(folder).eval()
    for part, data in (("dev", dev), ("test", splits["test"])):
        rows = data.select_columns(["text", "label"])
        rows = prepare_text_classification(rows, tokenizer, max_length=spec["max_length"])[0]
        probabilities, labels = class_probabilities(model, rows, collator)
        assert labels.tolist() == list(data["label"]), f"the encoded {part} set must keep every review in order"
        np.save(out / f"probs_{part}.npy", probabilities)
        np.save(out / f"labels_{part}.npy", labels)
        result[part] = float((probabilities.argmax(-1) == labels).mean())
    # the test set's second reading (pretrain's own evaluation) must agree with the probabilities saved here; under
    # bf16 the two readings batch and pad the reviews differently, which can flip a review or two at the boundary
    tolerance = 2.5 / len(splits["test"]) if spec.get("bf16") else 1e-9
    assert abs(result["test"] - zero_shot) < tolerance, (result["test"], zero_shot)
    print(json.dumps(result))
    (out / "res.json").write_text(json.dumps(result))


def report(cli) -> None:
    out = Path(cli.output_dir)
    unknown = sorted(set(cli.average) - set(cli.names))
    if unknown:
        raise SystemExit(f"--average names sources that are not reported: {unknown}; name them after `report` too.")
    splits = target_splits("kitchen")
    dev = development_set(splits)
    labels = {"dev": np.asarray(dev["label"]), "test": np.asarray(splits["test"]["label"])}
    rows, probabilities = [], {}

    def row(name: str, found: dict, seconds="") -> list:
        accuracy = {part: float((p.argmax(-1) == labels[part]).mean()) for part, p in found.items()}
        return [name, f"{accuracy['dev']:.3f}", f"{accuracy['test']:.3f}", seconds]

    for name in cli.names:
        if not (out / name / "res.json").exists():
            raise SystemExit(f"No trained source {name!r} in {out}: run `train {name}` first.")
        for part in labels:
            if not np.array_equal(np.load(out / name / f"labels_{part}.npy"), labels[part]):
                raise SystemExit(f"{name}'s {part} labels are not this {part} set's: train it again.")
        probabilities[name] = {part: np.load(out / name / f"probs_{part}.npy") for part in labels}
        result = json.loads((out / name / "res.json").read_text())
        lever = result.get("lever", {})
        changed = [f"--{k} {lever[k]}" for k, v in LEVER_DEFAULTS.items() if lever.get(k, v) != v]
        changed += [f"--{flag}" for flag in ("reverse", "gradual") if lever.get(flag)]
        described = f" ({' '.join(changed)})" if changed else " (the benchmark's recipe)"
        rows.append(row(f"LSTM source `{name}`{described}", probabilities[name], result["seconds"]))
    if cli.average:
        mean = {part: np.mean([probabilities[n][part] for n in cli.average], axis=0) for part in labels}
        rows.append(row(f"average of {' + '.join(cli.average)}", mean))
    source = source_reviews("kitchen")
    texts, source_labels = list(source["text"]), list(source["label"])
    fit = texts + list(splits["pool"]["text"])
    linear = {
        part: sentiment_sources.linear_probabilities(texts, source_labels, None, fit, list(data["text"]))
        for part, data in (("dev", dev), ("test", splits["test"]))
    }
    rows.append(row("TF-IDF + LR on the same source labels", linear))
    first = cli.names[0]
    mean = {part: (probabilities[first][part] + linear[part]) / 2 for part in labels}
    rows.append(row(f"average of `{first}` + the linear model (two model families)", mean))
    header = ["kitchen, 0 labels", f"dev ({len(dev)} FDU-MTL kitchen test reviews)", "test (1,000)", "source s"]
    about = (
        "Each LSTM source is `lm_all_domains` (sentiment_sources.py: one language-model pass over all review text, "
        "then the supervised stage on 31,442 labelled reviews of other domains) with at most one lever changed, "
        "trained by `train NAME [lever]`. Choices are made on the development set (no source holds a kitchen review); "
        "the test column is reported beside it, not chosen on. One standard error is about 1.5 points on the "
        "development set and 1 point on the test set.\n\n"
    )
    write_section("sentiment-zero-shot-levers", "Kitchen source levers at zero labels", about + table(header, rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="/tmp/hf-rnn-transfer-zero-shot-levers")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("train", help="train one source with one lever changed")
    one.add_argument("name")
    for lever, default in LEVER_DEFAULTS.items():
        one.add_argument(f"--{lever}", type=type(default), default=default, help=LEVER_HELP[lever])
    one.add_argument("--reverse", action="store_true", help="read every text backwards (word order)")
    one.add_argument(
        "--gradual",
        action="store_true",
        help="ULMFiT's stage 3 in the supervised stage: gradual unfreezing from the head down, discriminative rates",
    )
    many = commands.add_parser("report", help="compare trained sources, their average and the linear model")
    many.add_argument("names", nargs="+")
    many.add_argument("--average", nargs="*", default=[], help="sources whose probabilities are averaged (a row)")
    cli = parser.parse_args()
    train(cli) if cli.command == "train" else report(cli)


if __name__ == "__main__":
    main()
