"""The fixed cost of starting one training, which selection inside the budget pays for every fold and every budget.

    python benchmarks/training_overhead.py [--trainings 10] [--ballast 0 2000000]

transformers' `Trainer.train` runs a full garbage collection before every training (to hand an accelerator's memory
back); on a CPU it walks every object of the process. `TransferTrainer.train` leaves the objects that existed before
the training out of it on a CPU (gc.freeze for the training). Same process, same tiny model and data, one optimizer
step per training: seconds per training with the collection as transformers runs it and as TransferTrainer does,
after the imports alone and with a ballast of Python objects kept alive (a session that holds data in lists).
"""

import argparse
import gc
import time

from _report import table, write_section
from transformers import DataCollatorWithPadding, Trainer, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments


class FullCollectionTrainer(TransferTrainer):
    """TransferTrainer with transformers' own `train`: the full collection walks every object."""

    def train(self, *args, **kwargs):
        return Trainer.train(self, *args, **kwargs)


def seconds_per_training(trainer_class, data, tokenizer, trainings: int) -> float:
    args = TransferTrainingArguments(
        "/tmp/hf-rnn-transfer-overhead",
        max_steps=1,
        per_device_train_batch_size=8,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_strategy="no",
    )
    total = 0.0
    for _ in range(trainings):
        set_seed(0)
        config = RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=16, hidden_size=16, num_layers=1)
        trainer = trainer_class(
            model=RNNForSequenceClassification(config),
            args=args,
            train_dataset=data,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        start = time.perf_counter()
        trainer.train()
        total += time.perf_counter() - start
    return total / trainings


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainings", type=int, default=10, help="Trainings per measurement (mean reported).")
    parser.add_argument(
        "--ballast", type=int, nargs="+", default=[0, 2_000_000], help="Extra Python objects kept alive per row."
    )
    options = parser.parse_args()
    if options.trainings < 1 or any(b < 0 for b in options.ballast):
        parser.error("--trainings must be at least 1 and --ballast counts 0 or more.")
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0).select(range(64))
    tokenizer = train_tokenizer(reviews["text"], vocab_size=1000, model_max_length=64)
    data = reviews.map(
        lambda b: tokenizer(b["text"], truncation=True), batched=True, remove_columns=["text", "title", "rating"]
    ).rename_column("label", "labels")
    rows = []
    for ballast in options.ballast:
        kept = [[i] for i in range(ballast)]  # noqa: F841 (alive during the measurement; lists are tracked)
        objects = len(gc.get_objects())
        start = time.perf_counter()
        gc.collect()
        collection = time.perf_counter() - start
        full = seconds_per_training(FullCollectionTrainer, data, tokenizer, options.trainings)
        frozen = seconds_per_training(TransferTrainer, data, tokenizer, options.trainings)
        rows.append([f"{objects:,}", f"{collection:.3f}", f"{full:.3f}", f"{frozen:.3f}", f"{full / frozen:.2f}x"])
        del kept
    header = [
        "objects in the process",
        "one full collection, s",
        "s per training, full collection (transformers)",
        "s per training, TransferTrainer",
        "speed-up",
    ]
    body = table(header, rows) + (
        f"\n\nMean over {options.trainings} trainings of one optimizer step each (8 kitchen reviews, a 16-unit LSTM): "
        "what a training costs before its first batch. Selection inside the budget with 4 folds trains 5 times per "
        "budget and seed, and `compare` does that for every budget and seed."
    )
    write_section("training-overhead", "Fixed cost per training: the garbage collection before each one", body)


if __name__ == "__main__":
    main()
