"""Training throughput side by side with what a user would pick instead: fastai's AWD-LSTM classifier (when fastai is
installed), a plain PyTorch `nn.LSTM` loop, and this project's classifier (default, chunked, chunked + narrower top).

    python benchmarks/throughput_vs_fastai.py [--epochs 2] [--seeds 0 1 2] [--no-bf16]

One process, one torch, the same token ids (the project's word tokenizer, no truncation: full-length reviews), the
same length-bucketed batches of 32 (sorted by length within groups of 50 batches, batch order shuffled per epoch),
Adam at 2e-3, cross-entropy, model-level loops (no Trainer for anyone). Non-pad tokens per second over every batch
but the very first; then accuracy on 400 held-out reviews after the same number of epochs, so speed is not bought
with accuracy. fastai and the fastest project model also run under bf16 CPU autocast (the Trainer's `--bf16`),
each compared with the other at the same precision. Data: the shipped Amazon kitchen reviews (1,600 train / 400
test). fastai needs its own environment (it pins its own torch): `pip install fastai` there and run this script
with that environment's python and this package installed; without fastai its row says so.
"""

import argparse
import random
import statistics
import time

import torch
from _report import table, write_section
from torch import nn
from torch.nn import functional as F

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer

BATCH = 32


def data():
    rows = load_amazon_reviews("kitchen").shuffle(seed=42)
    tokenizer = train_tokenizer(rows["text"][:1600], vocab_size=20000, model_max_length=1_000_000)
    ids = [tokenizer(text)["input_ids"] for text in rows["text"]]
    return ids[:1600], rows["label"][:1600], ids[1600:], rows["label"][1600:], len(tokenizer)


def bucketed(ids, seed):
    rng = random.Random(seed)
    order = list(range(len(ids)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), BATCH * 50):
        group = sorted(order[start : start + BATCH * 50], key=lambda i: -len(ids[i]))
        batches += [group[b : b + BATCH] for b in range(0, len(group), BATCH)]
    rng.shuffle(batches)
    return batches


def pad(ids, labels, batch, chunk=None, pad_id=0):
    """Right padding (this project), or fastai's `pad_input_chunk` layout with `chunk`: whole chunks of padding
    first, so every text starts on a chunk boundary, the rest after it. fastai's encoder runs, for each chunk, only
    the rows that are not padding at the chunk's first position (the longest, first rows): with plain left padding
    it would silently skip most of the shorter texts' tokens."""
    batch = sorted(batch, key=lambda i: -len(ids[i]))  # fastai's encoder expects the longest rows first
    width = max(len(ids[i]) for i in batch)
    x = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, i in enumerate(batch):
        seq = torch.tensor(ids[i])
        start = 0 if chunk is None else (width - len(seq)) // chunk * chunk
        x[row, start : start + len(seq)], mask[row, start : start + len(seq)] = seq, 1
    return x, mask, torch.tensor([labels[i] for i in batch])


class PlainLSTM(nn.Module):
    """What a user writes by hand: embedding -> nn.LSTM(128, 256, 2) on the padded batch -> last real position."""

    def __init__(self, vocab_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 128, padding_idx=0)
        self.lstm = nn.LSTM(128, 256, num_layers=2, batch_first=True)
        self.head = nn.Linear(256, 2)

    def forward(self, x, mask):
        out, _ = self.lstm(self.embedding(x))
        return self.head(out[torch.arange(len(out)), mask.sum(1) - 1])


def project(vocab_size, **extra):
    config = RNNConfig(
        vocab_size=vocab_size,
        pad_token_id=0,
        embedding_size=128,
        hidden_size=256,
        num_layers=2,
        pooling="concat",
        num_labels=2,
        **extra,
    )
    return RNNForSequenceClassification(config)


def fastai_model(vocab_size):
    """fastai's AWD-LSTM classifier of the same size (its own chunked encoder: bptt 72, max_len 1440), or None."""
    try:
        from fastai.text.all import AWD_LSTM, awd_lstm_clas_config, get_text_classifier
    except ImportError:
        return None
    config = dict(awd_lstm_clas_config, emb_sz=128, n_hid=256, n_layers=2)
    return get_text_classifier(AWD_LSTM, vocab_size, 2, seq_len=72, config=config, max_len=72 * 20, pad_idx=1)


def logits_of(name, model, x, mask):
    if name.startswith("fastai"):
        return model(x)[0]
    if name.startswith("plain"):
        return model(x, mask)
    return model(input_ids=x, attention_mask=mask).logits


def run(name, model, train, test, epochs, bf16=False):
    """Trains `model` for `epochs` (bf16: under CPU autocast, as the Trainer's `--bf16` does); returns
    (non-pad tokens/s, test accuracy)."""
    ids, labels = train
    chunk, pad_id = (72, 1) if name.startswith("fastai") else (None, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    tokens, seconds, first = 0, 0.0, True
    model.train()
    for epoch in range(epochs):
        for batch in bucketed(ids, epoch):
            x, mask, y = pad(ids, labels, batch, chunk, pad_id)
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = logits_of(name, model, x, mask)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if not first:  # the first batch warms up allocators and kernels
                seconds += time.perf_counter() - start
                tokens += int(mask.sum())
            first = False
    model.eval()
    correct = 0
    with torch.no_grad():
        test_ids, test_labels = test
        for b in range(0, len(test_ids), 64):
            batch = list(range(b, min(b + 64, len(test_ids))))
            x, mask, y = pad(test_ids, test_labels, batch, chunk, pad_id)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                correct += int((logits_of(name, model, x, mask).argmax(-1) == y).sum())
    return tokens / seconds, correct / len(test_ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (accuracy mean ± std)")
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run fastai and the fastest project model under bf16 CPU autocast",
    )
    cli = parser.parse_args()
    train_ids, train_labels, test_ids, test_labels, vocab_size = data()
    chunked = dict(classifier_bptt=72, classifier_max_len=72 * 20)
    fastai_name = "fastai AWD-LSTM classifier (emb 128, hidden 256, 2 layers)"
    fastest = "hf-rnn-transfer, chunked + hidden_sizes [256, 128]"
    variants = [  # (name, build, bf16)
        (fastai_name, lambda: fastai_model(vocab_size), False),
        ("plain PyTorch: padded nn.LSTM(128, 256, 2)", lambda: PlainLSTM(vocab_size), False),
        ("hf-rnn-transfer, default (packed/padded, concat pooling)", lambda: project(vocab_size), False),
        ("hf-rnn-transfer, classifier_bptt 72, max_len 1440", lambda: project(vocab_size, **chunked), False),
        (fastest, lambda: project(vocab_size, hidden_sizes=[256, 128], **chunked), False),
        (fastai_name, lambda: fastai_model(vocab_size), True),
        (fastest, lambda: project(vocab_size, hidden_sizes=[256, 128], **chunked), True),
    ]
    if not cli.bf16:
        variants = [v for v in variants if not v[2]]
    rows, rates = [], {}
    fastai_missing = fastai_model(vocab_size) is None
    for name, build, bf16 in variants:
        key = (name, bf16)
        label = f"{name}, bf16 autocast" if bf16 else name
        if name == fastai_name and fastai_missing:
            rows.append([label, "not installed here (pip install fastai in its own env)", "", "", "", ""])
            print(f"{label}: skipped, fastai is not installed", flush=True)
            continue
        accuracies = []
        for seed in cli.seeds:  # tokens/s: the best over seeds (same work each time)
            torch.manual_seed(seed)
            rate, accuracy = run(name, build(), (train_ids, train_labels), (test_ids, test_labels), cli.epochs, bf16)
            rates[key] = max(rates.get(key, 0.0), rate)
            accuracies.append(accuracy)
            print(f"{label} (seed {seed}): {rate:,.0f} tokens/s, accuracy {accuracy:.3f}", flush=True)
        spread = f" ± {statistics.pstdev(accuracies):.3f}" if len(accuracies) > 1 else ""
        rows.append([label, f"{rates[key]:,.0f}", "", "", "", f"{statistics.mean(accuracies):.3f}{spread}"])
    base = rates[("plain PyTorch: padded nn.LSTM(128, 256, 2)", False)]
    for row, (name, _, bf16) in zip(rows, variants):
        if (name, bf16) in rates:
            row[2] = f"{rates[name, bf16] / base:.2f}"
            if (fastai_name, bf16) in rates:
                row[3] = f"{rates[name, bf16] / rates[fastai_name, bf16]:.2f}"
            if (fastai_name, False) in rates:
                row[4] = f"{rates[name, bf16] / rates[fastai_name, False]:.2f}"
    precision = (
        "The bf16 rows run forward and loss under `torch.autocast('cpu', dtype=torch.bfloat16)` (what the Trainer's "
        "`--bf16` does on a CPU), fastai's too, by hand: fastai's own `to_bf16()` autocasts on CUDA only, so a fastai "
        "user on a CPU trains in fp32 (the last column). On a CPU with AMX / AVX512-BF16 "
        f"(this one: {'yes' if torch.cpu._is_amx_tile_supported() else 'no'}) the oneDNN LSTM kernels run in bf16. "
        if cli.bf16
        else ""
    )
    body = (
        f"{cli.epochs} epochs of 1,600 full-length kitchen reviews, batches of {BATCH}, Adam 2e-3; accuracy on 400 "
        f"held-out reviews after those epochs, mean ± std over seeds {cli.seeds}; tokens/s is the best of the seeds' "
        "runs. fastai's batches use its own "
        "`pad_input_chunk` layout (text starting on a 72-token boundary): with plain left padding its encoder "
        "skips the shorter rows of each chunk, which once made it look 1.4x faster than it is. fastai runs its "
        "AWD-LSTM dropouts (its defaults), the others none. "
        + precision
        + "\n\n"
        + table(
            [
                "model",
                "non-pad tokens/s",
                "vs plain loop",
                "vs fastai, same precision",
                "vs fastai fp32",
                "test accuracy",
            ],
            rows,
        )
    )
    write_section("throughput-vs-fastai", "Training throughput beside fastai and a plain PyTorch loop", body)


if __name__ == "__main__":
    main()
