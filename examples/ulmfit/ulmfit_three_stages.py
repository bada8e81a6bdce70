"""ULMFiT's three stages with the `hf-rnn-transfer` commands: a general-domain language model (WikiText-2) -> the
same model fine-tuned as a language model on review text (unlabelled: the kitchen pool and the other three domains;
`--target_text pool` for the pool alone) -> a classifier on a few kitchen labels, against the same classifier from
scratch and TF-IDF + logistic regression. The kitchen test reviews are never read before stage 3's evaluation.

    python examples/ulmfit/ulmfit_three_stages.py --wikitext $HF_RNN_TRANSFER_DATA/wikitext2 --output_dir runs/ulmfit

Each stage is one command line, printed before it runs, so the same three steps work from the shell on your own
corpus and labels. `--ablation` also classifies straight from the general model (stages 1 -> 3), to show what the
target-domain language-model stage adds.
"""

import json
import os
import random
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from hf_rnn_transfer.cli import main as hf_rnn_transfer
from hf_rnn_transfer.data import AMAZON_DOMAINS, load_amazon_reviews
from hf_rnn_transfer.freezing import unfreeze_interval_for

DATA = os.environ.get("HF_RNN_TRANSFER_DATA", "data")  # the folder of the real datasets


@dataclass
class ULMFiTArguments:
    wikitext: str = field(
        default=os.path.join(DATA, "wikitext2"),
        metadata={"help": "Folder of the general corpus: every *.txt is read."},
    )
    target_domain: str = field(default="kitchen", metadata={"help": f"Amazon domain to classify: {AMAZON_DOMAINS}."})
    general_steps: int = field(default=1000, metadata={"help": "Stage 1: language-model steps on the general corpus."})
    target_steps: int = field(default=600, metadata={"help": "Stage 2: language-model steps on the target's text."})
    target_text: str = field(
        default="reviews",
        metadata={
            "help": "Stage 2 text: pool (the target domain's unlabelled pool reviews) or reviews (the pool plus the "
            "other three domains' review texts, unlabelled).",
            "choices": ["pool", "reviews"],
        },
    )
    vocab_size: int = field(default=10_000, metadata={"help": "Vocabulary of each stage's tokenizer."})
    hidden_size: int = field(default=256, metadata={"help": "Hidden size of the two LSTM layers."})
    budgets: list[str] = field(default_factory=lambda: ["100", "200", "500"], metadata={"help": "Label budgets."})
    seeds: list[str] = field(default_factory=lambda: ["0", "1", "2"], metadata={"help": "Seeds of stage 3."})
    classifier_epochs: float = field(default=8.0, metadata={"help": "Stage 3 epochs (gradual unfreezing)."})
    ablation: bool = field(default=False, metadata={"help": "Also classify from the stage-1 model directly."})
    output_dir: str = field(default="runs/ulmfit", metadata={"help": "Where the models, data and reports go."})


def run(command: list[str]) -> None:
    print("\n$ hf-rnn-transfer " + shlex.join(command), flush=True)
    if hf_rnn_transfer(command) != 0:
        raise SystemExit(f"stage failed: hf-rnn-transfer {command[0]}")


def main():
    (args,) = HfArgumentParser(ULMFiTArguments).parse_args_into_dataclasses()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = sorted(Path(args.wikitext).glob("*.txt"))
    if not corpus:
        raise SystemExit(f"--wikitext {args.wikitext!r} holds no .txt files.")
    general = out / "general.txt"
    general.write_text("".join(path.read_text() for path in corpus))

    # the anchors' protocol: a fixed, balanced test set of 1,000 reviews; the other 1,000 are the pool, whose text
    # (never the test reviews') stage 2 reads and whose labels the budgets draw from
    reviews = load_amazon_reviews(args.target_domain).train_test_split(
        test_size=1000, seed=0, stratify_by_column="label"
    )
    names = reviews["train"].features["label"].names
    for split, name in (("train", "pool"), ("test", "test")):
        with (out / f"{name}.jsonl").open("w") as handle:
            for row in reviews[split]:
                handle.write(json.dumps({"text": row["text"], "label": names[row["label"]]}) + "\n")
    texts = list(reviews["train"]["text"])
    if args.target_text == "reviews":
        texts += [
            text
            for domain in AMAZON_DOMAINS
            if domain != args.target_domain
            for text in load_amazon_reviews(domain)["text"]
        ]
    random.Random(0).shuffle(texts)  # the stream reads documents in order; rows come grouped by domain and label
    (out / "target_text.txt").write_text("\n".join(" ".join(text.split()) for text in texts) + "\n")

    common = ["--report_to", "none", "--save_strategy", "no", "--logging_steps", "50"]
    language_model = [
        "--objective", "causal_lm", "--vocab_size", str(args.vocab_size), "--per_device_train_batch_size", "32",
        "--lr_scheduler_type", "slanted_triangular", *common,
    ]  # fmt: skip
    run(
        [
            "pretrain", *language_model, "--train_file", str(general), "--max_steps", str(args.general_steps),
            "--embedding_size", "128", "--hidden_size", str(args.hidden_size), "--num_layers", "2",
            "--learning_rate", "3e-3", "--output_dir", str(out / "general_lm"),
        ]
    )  # fmt: skip
    run(
        [
            "pretrain", *language_model, "--init_from", str(out / "general_lm"),
            "--train_file", str(out / "target_text.txt"),
            "--max_steps", str(args.target_steps), "--learning_rate", "3e-3", "--discriminative_lr",
            "--output_dir", str(out / "target_lm"),
        ]
    )  # fmt: skip
    sources = [("target_lm", "stages 1 -> 2 -> 3")] + ([("general_lm", "stages 1 -> 3")] if args.ablation else [])
    for source, stages in sources:
        run(
            [
                "compare", "--source", str(out / source), "--pooling", "concat",
                "--train_file", str(out / "pool.jsonl"), "--test_file", str(out / "test.jsonl"),
                "--budgets", *args.budgets, "--seeds", *args.seeds,
                "--freezing_strategy", "gradual", "--discriminative_lr", "--lr_scheduler_type", "slanted_triangular",
                "--learning_rate", "1e-2", "--num_train_epochs", str(args.classifier_epochs),
                "--unfreeze_interval", str(unfreeze_interval_for(args.classifier_epochs, 4)),  # 4 layer groups
                "--per_device_train_batch_size", "16", "--output_dir", str(out / f"classifier_from_{source}"),
                "--report", str(out / f"report_{source}.md"), *common,
            ]
        )  # fmt: skip
        print(f"\n{stages}: report in {out / f'report_{source}.md'}")


if __name__ == "__main__":
    main()
