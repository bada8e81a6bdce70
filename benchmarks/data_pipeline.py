"""Padding waste and throughput with and without length grouping; language-model streaming memory vs corpus size.

    python benchmarks/data_pipeline.py [--epochs 1]

Padding: Amazon kitchen reviews (2,000, up to 256 tokens), batches of 32, the Trainer's random sampler against its
`train_sampling_strategy="group_by_length"`; an LSTM (128/256, 2 layers) trained one epoch each way.
Memory: peak Python allocations (tracemalloc) while a LanguageModelStream reads a corpus of 1x, 4x and 16x the PTB
training text, streamed from disk by `datasets` (streaming=True).
"""

import argparse
import os
import tempfile
import tracemalloc
from pathlib import Path

from _report import Timer, table, write_section
from datasets import load_dataset
from trainer_throughput import model as reference_classifier
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from hf_rnn_transfer.data import LanguageModelStream, load_amazon_reviews, prepare_text_classification, train_tokenizer

PTB = Path(os.environ.get("HF_RNN_TRANSFER_DATA", "data")) / "ptb" / "train.txt"  # set HF_RNN_TRANSFER_DATA


def padding_run(encoded, tokenizer, strategy: str, epochs: float) -> tuple[float, float]:
    model = reference_classifier(tokenizer)  # the same LSTM (128/256, 2 layers) as the trainer benchmark
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        num_train_epochs=epochs,
        per_device_train_batch_size=32,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        train_sampling_strategy=strategy,
        dataloader_pin_memory=False,
        seed=0,
    )
    timer = Timer()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=encoded,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[timer],
    )
    batches = list(trainer.get_train_dataloader())
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    positions = sum(b["attention_mask"].numel() for b in batches)
    trainer.train()
    return 1 - real / positions, real * epochs / timer.seconds


def stream_peak(copies: int, tokenizer) -> tuple[int, float]:
    corpus = load_dataset("text", data_files=[str(PTB)] * copies, split="train", streaming=True)
    stream = LanguageModelStream(corpus, tokenizer, batch_size=32, bptt=70)
    tracemalloc.start()
    tokens = sum(len(row["input_ids"]) for row in stream)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return tokens, peak / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=1)
    cli = parser.parse_args()
    reviews = load_amazon_reviews("kitchen")
    tokenizer = train_tokenizer(reviews["text"], vocab_size=15000, model_max_length=256)
    encoded, _ = prepare_text_classification(reviews, tokenizer)
    rows = []
    for label, strategy in (("random batches", "random"), ("length-grouped batches", "group_by_length")):
        waste, rate = padding_run(encoded, tokenizer, strategy, cli.epochs)
        rows.append([label, f"{waste:.1%}", f"{rate:,.0f}"])
    base = float(rows[0][2].replace(",", ""))
    for row in rows:
        row.append(f"{float(row[2].replace(',', '')) / base:.2f}")
    padding = table(["sampler (batch 32)", "padded positions", "non-pad tokens/s", "ratio"], rows)

    lm_tokenizer = train_tokenizer(PTB.read_text().splitlines(), vocab_size=10000)
    memory_rows = []
    for copies in (1, 4, 16):
        tokens, peak = stream_peak(copies, lm_tokenizer)
        memory_rows.append([f"{copies}x PTB train", f"{tokens:,}", f"{peak:.1f}"])
    memory = table(["corpus (streamed)", "tokens streamed", "peak Python memory (MiB)"], memory_rows)
    write_section(
        "data-pipeline",
        "Padding waste, length grouping, and language-model streaming memory",
        padding + "\n\n" + memory,
    )


if __name__ == "__main__":
    main()
