"""Levers on the kitchen source at zero kitchen labels, judged on a development set before the benchmark runs them.

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train forward
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train backward --reverse
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py train lm3 --lm_epochs 3
    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/sentiment_zero_shot_levers.py report forward backward

`train` builds one `lm_all_domains` source for kitchen (`sentiment_sources.py`: a language model on all review
text, then the supervised stage on 31,442 labelled reviews of other domains), changed by one lever: more language
model passes (`--lm_epochs`), a wider LSTM (`--hidden`), or every text read backwards (`--reverse`: ULMFiT's second
direction, on word-reversed text). It saves the source's class probabilities on the development set (FDU-MTL's
kitchen test reviews, minus any review of the Amazon kitchen test set; no source holds a kitchen review) and on the
Amazon kitchen test set. `report` prints and writes (docs/benchmarks.md) each source's zero-shot accuracy on both,
the average of the named sources' probabilities (the forward/backward ensemble), and the linear model (TF-IDF + LR)
on the same source labels. Choices are made on the development set; the test column is reported, not chosen on.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import sentiment_sources
from _report import table, write_section
from _reviews import read_fdu, source_reviews, target_splits, text_key
from datasets import Dataset

from hf_rnn_transfer import RNNForSequenceClassification
from hf_rnn_transfer.data import prepare_text_classification
from hf_rnn_transfer.evaluation import evaluation_trainer


def reversed_words(text: str) -> str:
    return " ".join(text.split()[::-1])


def development_set(splits) -> Dataset:
    """FDU-MTL's kitchen test reviews that are not in the Amazon kitchen test set."""
    banned = {text_key(t) for t in splits["test"]["text"]}
    rows = [r for r in read_fdu("kitchen_housewares") if r["split"] == "test" and text_key(r["text"]) not in banned]
    return Dataset.from_dict({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})


def train(cli) -> None:
    from transformers import AutoTokenizer, DataCollatorWithPadding

    spec = dict(sentiment_sources.VARIANTS["lm_all_domains"], lm_epochs=cli.lm_epochs, hidden=cli.hidden)
    sentiment_sources.VARIANTS[cli.name] = spec
    out = Path(cli.output_dir) / cli.name
    splits = target_splits("kitchen")
    dev = development_set(splits)
    source = source_reviews("kitchen")
    read = reversed_words if cli.reverse else (lambda text: text)
    if cli.reverse:
        source = source.map(lambda r: {"text": read(r["text"])})
        splits = {k: v.map(lambda r: {"text": read(r["text"])}) for k, v in splits.items()}
        dev = dev.map(lambda r: {"text": read(r["text"])})
    unlabelled = sentiment_sources.unlabelled_reviews
    sentiment_sources.unlabelled_reviews = lambda target: [read(t) for t in unlabelled(target)]
    started = time.perf_counter()
    folder, _, _ = sentiment_sources.train_source(cli.name, "kitchen", out, source, splits)
    result = {"name": cli.name, "seconds": round(time.perf_counter() - started), "lever": vars(cli)}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    collator = DataCollatorWithPadding(tokenizer)
    model = RNNForSequenceClassification.from_pretrained(folder).eval()
    for part, data in (("dev", dev), ("test", splits["test"])):
        rows = prepare_text_classification(data.select_columns(["text", "label"]), tokenizer, max_length=400)[0]
        with evaluation_trainer(model, collator, 128) as trainer:
            output = trainer.predict(rows)
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        np.save(out / f"probs_{part}.npy", probabilities)
        np.save(out / f"labels_{part}.npy", output.label_ids)
        result[part] = float((probabilities.argmax(-1) == output.label_ids).mean())
    print(json.dumps(result))
    (out / "res.json").write_text(json.dumps(result))


def report(cli) -> None:
    out = Path(cli.output_dir)
    rows, labels, probabilities = [], {}, {part: [] for part in ("dev", "test")}
    for name in cli.names:
        if not (out / name / "res.json").exists():
            raise SystemExit(f"No trained source {name!r} in {out}: run `train {name}` first.")
        result = json.loads((out / name / "res.json").read_text())
        rows.append([f"LSTM source `{name}`", f"{result['dev']:.3f}", f"{result['test']:.3f}", result["seconds"]])
        for part in probabilities:
            probabilities[part].append(np.load(out / name / f"probs_{part}.npy"))
            labels.setdefault(part, np.load(out / name / f"labels_{part}.npy"))
    if len(cli.names) > 1:
        mean = {part: np.mean(p, axis=0) for part, p in probabilities.items()}
        accuracy = {part: float((mean[part].argmax(-1) == labels[part]).mean()) for part in mean}
        rows.append([f"average of {' + '.join(cli.names)}", f"{accuracy['dev']:.3f}", f"{accuracy['test']:.3f}", ""])
    splits = target_splits("kitchen")
    dev, source = development_set(splits), source_reviews("kitchen")
    texts, source_labels = list(source["text"]), list(source["label"])
    fit = texts + list(splits["pool"]["text"])
    linear = [
        sentiment_sources.linear_accuracy(texts, source_labels, None, fit, list(data["text"]), list(data["label"]))
        for data in (dev, splits["test"])
    ]
    rows.append(["TF-IDF + LR on the same source labels", f"{linear[0]:.3f}", f"{linear[1]:.3f}", ""])
    header = ["kitchen, 0 labels", f"dev ({len(dev)} FDU-MTL kitchen test reviews)", "test (1,000)", "source s"]
    write_section("sentiment-zero-shot-levers", "Kitchen source levers at zero labels", table(header, rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="/tmp/hf-rnn-transfer-zero-shot-levers")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("train", help="train one source with one lever changed")
    one.add_argument("name")
    one.add_argument("--lm_epochs", type=float, default=1.0, help="language-model passes over all review text")
    one.add_argument("--hidden", type=int, default=256, help="LSTM hidden size (language model and classifier)")
    one.add_argument("--reverse", action="store_true", help="read every text backwards (word order)")
    many = commands.add_parser("report", help="compare trained sources, their average and the linear model")
    many.add_argument("names", nargs="+")
    cli = parser.parse_args()
    train(cli) if cli.command == "train" else report(cli)


if __name__ == "__main__":
    main()
