"""TransferTrainer throughput against a hand-written PyTorch loop, and backward time with frozen lower layers.

    python benchmarks/trainer_throughput.py [--epochs 2] [--repeats 2]

Same model (LSTM, embedding 128, hidden 256, 2 layers, as the anchors' small AWD-LSTM), same Amazon kitchen reviews,
same batches of 32 (length-grouped), AdamW; non-pad tokens per second, best of the repeats.
"""

import argparse
import time

import torch
from _report import Timer, table, write_section
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments


def data():
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0).select(range(1000))
    tokenizer = train_tokenizer(reviews["text"], vocab_size=15000, model_max_length=256)
    encoded = reviews.map(
        lambda b: tokenizer(b["text"], truncation=True), batched=True, remove_columns=["text", "title", "rating"]
    ).rename_column("label", "labels")
    encoded = encoded.map(lambda r: {"length": len(r["input_ids"])})
    return encoded, tokenizer


def model(tokenizer):
    set_seed(0)
    return RNNForSequenceClassification(
        RNNConfig(
            vocab_size=len(tokenizer),
            pad_token_id=0,
            embedding_size=128,
            hidden_size=256,
            num_layers=2,
            pooling="concat",
            num_labels=2,
        )
    )


def run_trainer(encoded, tokenizer, epochs) -> float:
    timer = Timer()
    args = TransferTrainingArguments.for_experiment(
        "/tmp/hf-rnn-transfer-bench",
        num_train_epochs=epochs,
        per_device_train_batch_size=32,
        learning_rate=2e-3,
        logging_strategy="epoch",
        train_sampling_strategy="group_by_length",
        max_grad_norm=0,
    )
    trainer = TransferTrainer(
        model=model(tokenizer),
        args=args,
        train_dataset=encoded.remove_columns("length"),
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[timer],
    )
    loader = trainer.get_train_dataloader()
    tokens = sum(int(b["attention_mask"].sum()) for b in loader) * epochs
    trainer.train()
    return tokens / timer.seconds


def run_loop(encoded, tokenizer, epochs) -> float:
    net = model(tokenizer).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0, fused=True)  # as the Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    sampler = LengthGroupedSampler(32, lengths=encoded["length"], generator=torch.Generator().manual_seed(0))
    loader = DataLoader(
        encoded.remove_columns("length"), batch_size=32, sampler=sampler, collate_fn=DataCollatorWithPadding(tokenizer)
    )
    tokens = 0
    start = time.perf_counter()
    for _ in range(int(epochs)):
        for batch in loader:
            loss = net(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - start)


def backward_time(encoded, tokenizer, freeze_lower_half: bool, batches=20) -> float:
    net = model(tokenizer).train()
    groups = net.get_layer_groups()
    frozen = set(groups["embedding"] + groups["layer_0"]) if freeze_lower_half else set()
    for name, param in net.named_parameters():
        param.requires_grad_(name not in frozen)
    loader = DataLoader(
        encoded.remove_columns("length").select(range(32 * batches)),
        batch_size=32,
        collate_fn=DataCollatorWithPadding(tokenizer),
    )
    total = 0.0
    for batch in loader:
        loss = net(**batch).loss
        start = time.perf_counter()
        loss.backward()
        total += time.perf_counter() - start
        net.zero_grad(set_to_none=True)
    return total / batches


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    cli = parser.parse_args()
    encoded, tokenizer = data()
    trainer_rates, loop_rates, full, half = [], [], [], []
    for _ in range(cli.repeats):  # interleaved, so both see the same machine state
        loop_rates.append(run_loop(encoded, tokenizer, cli.epochs))
        trainer_rates.append(run_trainer(encoded, tokenizer, cli.epochs))
        full.append(backward_time(encoded, tokenizer, False))
        half.append(backward_time(encoded, tokenizer, True))
    loop, trainer = max(loop_rates), max(trainer_rates)
    body = (
        table(
            ["run", "non-pad tokens/s", "ratio"],
            [
                ["hand-written PyTorch loop (fused AdamW, length-grouped batches of 32)", f"{loop:,.0f}", "1.00"],
                ["TransferTrainer (same model, data, batches)", f"{trainer:,.0f}", f"{trainer / loop:.2f}"],
            ],
        )
        + "\n\n"
        + table(
            ["backward pass, batch 32", "ms per batch", "ratio"],
            [
                ["all groups trainable", f"{1000 * min(full):.1f}", "1.00"],
                [
                    "embedding + layer 0 frozen (requires_grad=False)",
                    f"{1000 * min(half):.1f}",
                    f"{min(half) / min(full):.2f}",
                ],
            ],
        )
    )
    write_section("trainer-throughput", "TransferTrainer throughput and the cost of frozen layers", body)


if __name__ == "__main__":
    main()
