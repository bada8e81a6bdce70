"""Language-model pretraining on a CPU: the full softmax (decoder tied to the embedding) against an adaptive softmax.

    python benchmarks/lm_softmax.py [--steps 150] [--vocab_size 30000]

The same LSTM language model (embedding 128, hidden 256, 1 layer) on the same stream: every shipped Amazon review
but 500 held out (word-level tokenizer of `--vocab_size`), 64 parallel streams of 70 tokens per step, Adam 2e-3,
the recurrent state carried from step to step (`LanguageModelStream`, as `pretrain --objective causal_lm`). Tokens
per second over every step but the first; then the perplexity of the 500 held-out reviews after the same number of
steps, so speed is not bought with accuracy. The adaptive softmax also runs 4x the steps, which takes less time
than the full softmax's run: what the same wall time buys. fp32, and bf16 CPU autocast where this CPU computes it
natively (the Trainer's `--bf16`).
"""

import argparse
import math
import time

import torch
from _report import table, write_section
from torch.utils.data import DataLoader

from hf_rnn_transfer import RNNConfig, RNNForCausalLM
from hf_rnn_transfer.data import AMAZON_DOMAINS, LanguageModelStream, load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.trainer import native_bf16_available

BATCH, BPTT = 64, 70


def data(vocab_size: int):
    from datasets import concatenate_datasets

    texts = concatenate_datasets([load_amazon_reviews(d) for d in AMAZON_DOMAINS]).shuffle(seed=0)["text"]
    train, held_out = texts[500:], texts[:500]
    return train, held_out, train_tokenizer(train, vocab_size=vocab_size)


def batches(texts, tokenizer, variable: bool):
    stream = LanguageModelStream(texts, tokenizer, batch_size=BATCH, bptt=BPTT, variable_bptt=variable)
    return DataLoader(stream, batch_size=BATCH)


def run(model, train, held_out, tokenizer, steps: int, bf16: bool) -> tuple[float, float]:
    """Train `steps` steps; returns (tokens/s, held-out perplexity)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    state, done, tokens, seconds = None, 0, 0, 0.0
    model.train()
    while done < steps:
        for batch in batches(train, tokenizer, variable=True):
            if done == steps:
                break
            if bool(batch["stream_start"][0]):
                state = None
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(input_ids=batch["input_ids"], shift_labels=batch["shift_labels"], recurrent_state=state)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state = tuple(tuple(t.detach() for t in layer) for layer in out.recurrent_state)
            if done:  # the first step warms up allocators and kernels
                seconds += time.perf_counter() - start
                tokens += batch["input_ids"].numel()
            done += 1
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for batch in batches(held_out, tokenizer, variable=False):
            out = model(input_ids=batch["input_ids"], shift_labels=batch["shift_labels"], recurrent_state=state)
            state = out.recurrent_state
            n = int((batch["shift_labels"] != -100).sum())
            total, count = total + float(out.loss) * n, count + n
    return tokens / seconds, math.exp(total / count)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--vocab_size", type=int, default=30000)
    cli = parser.parse_args()
    train, held_out, tokenizer = data(cli.vocab_size)
    vocab = len(tokenizer)
    shape = dict(vocab_size=vocab, pad_token_id=0, embedding_size=128, hidden_size=256, num_layers=1)
    variants = [
        ("full softmax, decoder tied to the embedding", dict(tie_word_embeddings=True), 1),
        ("adaptive softmax, cutoffs [2000, 10000]", dict(adaptive_softmax_cutoffs=[2000, 10000]), 1),
        ("adaptive softmax, cutoffs [1000, 5000, 20000]", dict(adaptive_softmax_cutoffs=[1000, 5000, 20000]), 1),
        ("adaptive softmax, cutoffs [2000, 10000], 4x the steps", dict(adaptive_softmax_cutoffs=[2000, 10000]), 4),
    ]
    precisions = [False] + ([True] if native_bf16_available() else [])
    rows, full_rate = [], {}
    for bf16 in precisions:
        for name, decoder, factor in variants:
            if any(c >= vocab for c in decoder.get("adaptive_softmax_cutoffs", [])):
                continue
            torch.manual_seed(0)
            model = RNNForCausalLM(RNNConfig(**shape, **decoder))
            rate, perplexity = run(model, train, held_out, tokenizer, cli.steps * factor, bf16)
            full_rate.setdefault(bf16, rate)
            label = f"{name}{', bf16 autocast' if bf16 else ''}"
            print(f"{label}: {rate:,.0f} tokens/s, held-out perplexity {perplexity:.1f}", flush=True)
            seconds = cli.steps * factor * BATCH * BPTT / rate
            rows.append(
                [label, cli.steps * factor, f"{rate:,.0f}", f"{rate / full_rate[bf16]:.2f}", f"{seconds:.0f}",
                 f"{perplexity:.1f}"]
            )  # fmt: skip
    body = (
        f"Vocabulary {vocab:,} tokens (word level, ids in frequency order), {len(train):,} training reviews, "
        f"{len(held_out)} held out; {BATCH} streams x {BPTT} tokens per step. 'vs full' compares with the full "
        "softmax at the same precision.\n\n"
        + table(["decoder", "steps", "tokens/s", "vs full", "training seconds", "held-out perplexity"], rows)
    )
    write_section("lm-softmax", "Language-model pretraining: full vs adaptive softmax", body)


if __name__ == "__main__":
    main()
