"""Training throughput on a GPU: TransferTrainer (fp32, bf16) against a plain cuDNN `nn.LSTM` loop of the same size.

    python benchmarks/gpu_throughput.py [--epochs 3] [--batch_size 32]     (part of `make gpu-check`)

Same Amazon kitchen reviews (1,000, cut at 256 tokens), same length-grouped batches, AdamW at 2e-3; non-pad tokens
per second of the best epoch after one warm-up epoch (cuDNN plans, allocator), best of two repeats. The plain loop is
what a user would write by hand: `nn.Embedding` -> `nn.LSTM(128, 256, num_layers=2)` on the padded batch -> the last
real position -> `nn.Linear`; the project's model packs sequences (exact under padding) and pools
`[last, max, mean]`.
"""

import argparse
import time

import torch
from _report import table, write_section
from torch import nn
from torch.utils.data import DataLoader
from trainer_throughput import data, model
from transformers import DataCollatorWithPadding, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments


class PlainLSTM(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 128, padding_idx=0)
        self.lstm = nn.LSTM(128, 256, num_layers=2, batch_first=True)
        self.head = nn.Linear(256, 2)

    def forward(self, input_ids, attention_mask, labels):
        out, _ = self.lstm(self.embedding(input_ids))
        last = out[torch.arange(len(out), device=out.device), attention_mask.sum(1) - 1]
        return nn.functional.cross_entropy(self.head(last), labels)


def loader(encoded, tokenizer, batch_size):
    sampler = LengthGroupedSampler(batch_size, lengths=encoded["length"], generator=torch.Generator().manual_seed(0))
    return DataLoader(
        encoded.remove_columns("length"),
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=DataCollatorWithPadding(tokenizer),
        pin_memory=True,
    )


def run_loop(net, batches, epochs, device, autocast_dtype=None) -> float:
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0, fused=True)
    net.to(device).train()
    rates = []
    for _ in range(epochs + 1):  # the first epoch warms up
        tokens = 0
        torch.cuda.synchronize()
        start = time.perf_counter()
        for batch in batches:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = net(**batch)
            loss = out if isinstance(out, torch.Tensor) else out.loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum())
        torch.cuda.synchronize()
        rates.append(tokens / (time.perf_counter() - start))
    return max(rates[1:])


class EpochTimer(TrainerCallback):
    """Seconds of each epoch, with the GPU synchronised at both ends."""

    def __init__(self):
        self.seconds = []

    def on_epoch_begin(self, *args, **kwargs):
        torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_epoch_end(self, *args, **kwargs):
        torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self.start)


def run_trainer(encoded, tokenizer, epochs, batch_size, precision: str = "fp32") -> float:
    timer = EpochTimer()
    args = TransferTrainingArguments.for_experiment(
        "/tmp/hf-rnn-transfer-gpu-bench",
        num_train_epochs=epochs + 1,
        per_device_train_batch_size=batch_size,
        learning_rate=2e-3,
        train_sampling_strategy="group_by_length",
        max_grad_norm=0,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
    )
    trainer = TransferTrainer(
        model=model(tokenizer),
        args=args,
        train_dataset=encoded.remove_columns("length"),
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[timer],
    )
    tokens = sum(int(b["attention_mask"].sum()) for b in trainer.get_train_dataloader())
    trainer.train()
    return tokens / min(timer.seconds[1:])  # the first epoch warms up, as in run_loop


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    cli = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_throughput: no CUDA device here; nothing measured (run it where `torch.cuda.is_available()`).")
        return
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    encoded, tokenizer = data()
    batches = list(loader(encoded, tokenizer, cli.batch_size))
    results = {}
    for _ in range(2):
        for name, fn in [
            (
                "plain cuDNN nn.LSTM loop, fp32",
                lambda: run_loop(PlainLSTM(len(tokenizer)), batches, cli.epochs, device),
            ),
            (
                "plain cuDNN nn.LSTM loop, bf16 autocast",
                lambda: run_loop(PlainLSTM(len(tokenizer)), batches, cli.epochs, device, torch.bfloat16),
            ),
            ("project model, hand loop, fp32", lambda: run_loop(model(tokenizer), batches, cli.epochs, device)),
            (
                "project model, hand loop, bf16 autocast",
                lambda: run_loop(model(tokenizer), batches, cli.epochs, device, torch.bfloat16),
            ),
            (
                "project model, hand loop, fp16 autocast",
                lambda: run_loop(model(tokenizer), batches, cli.epochs, device, torch.float16),
            ),
            ("TransferTrainer, fp32", lambda: run_trainer(encoded, tokenizer, cli.epochs, cli.batch_size)),
            ("TransferTrainer, bf16", lambda: run_trainer(encoded, tokenizer, cli.epochs, cli.batch_size, "bf16")),
            (
                "TransferTrainer, fp16 (loss scaler)",
                lambda: run_trainer(encoded, tokenizer, cli.epochs, cli.batch_size, "fp16"),
            ),
        ]:
            results[name] = max(results.get(name, 0.0), fn())
    base = results["plain cuDNN nn.LSTM loop, fp32"]
    rows = [[name, f"{rate:,.0f}", f"{rate / base:.2f}"] for name, rate in results.items()]
    body = (
        f"GPU: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
        f"batches of {cli.batch_size}; best of {cli.epochs} epochs after a warm-up epoch, two repeats. "
        "Under bf16 autocast PyTorch runs a plain `nn.LSTM` in fp16 (its autocast rule for cuDNN RNNs casts to fp16 "
        "whatever the dtype asked for); the project's layers run in bf16 there (`run_recurrent_layer`). The hand "
        "loop's fp16 row measures speed only (no loss scaler); the Trainer's fp16 scales the loss (`fp16=True`).\n\n"
        + table(["run", "non-pad tokens/s", "vs plain loop"], rows)
    )
    write_section("gpu-throughput", "GPU training throughput (make gpu-check)", body)


if __name__ == "__main__":
    main()
