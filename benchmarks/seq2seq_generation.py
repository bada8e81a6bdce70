"""RNNForSeq2SeqLM: generation speed (new tokens per second: is the per-token cost flat?) and training throughput
against a hand-written PyTorch encoder-decoder of the same size.

    python benchmarks/seq2seq_generation.py [--repeats 2]

Model: LSTM, embedding 256, hidden 256, one bidirectional encoder layer, one decoder layer, Luong attention, 8,000
tokens, random weights (speed does not depend on what was learned); sources of 20 tokens; generation never stops
early (no end token). Training: 4,096 random pairs (sources and targets of 8 to 30 tokens), batches of 64, AdamW,
the same data and batch size for both (shuffled); tokens/s counts target tokens.
"""

import argparse
import time

import torch
from _report import Timer, table, write_section
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSeq2SeqLM
from hf_rnn_transfer.data import train_tokenizer
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments

VOCAB, SIZE = 8000, 256


def config(input_feeding: bool = False) -> RNNConfig:
    return RNNConfig(
        vocab_size=VOCAB,
        embedding_size=SIZE,
        hidden_size=SIZE,
        num_layers=1,
        bidirectional=True,
        attention="luong",
        input_feeding=input_feeding,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def generation_rate(model, batch: int, new_tokens: int, beams: int) -> float:
    source = torch.randint(3, VOCAB, (batch, 20))
    settings = dict(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=beams, do_sample=False, eos_token_id=None
    )
    with torch.no_grad():
        model.generate(input_ids=source[:, :5], max_new_tokens=2, eos_token_id=None)  # warm-up
        start = time.perf_counter()
        model.generate(input_ids=source, **settings)
    return batch * new_tokens / (time.perf_counter() - start)


class HandSeq2Seq(nn.Module):
    """The same computation written directly in PyTorch: embedding, bidirectional LSTM encoder, bridge, LSTM
    decoder over the whole target, Luong attention, tied output layer."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, SIZE, padding_idx=0)
        self.decoder_embed = nn.Embedding(VOCAB, SIZE, padding_idx=0)
        self.encoder = nn.LSTM(SIZE, SIZE, batch_first=True, bidirectional=True)
        self.bridge, self.bridge_cell = nn.Linear(2 * SIZE, SIZE), nn.Linear(2 * SIZE, SIZE)
        self.decoder = nn.LSTM(SIZE, SIZE, batch_first=True)
        self.keys = nn.Linear(2 * SIZE, SIZE, bias=False)
        self.combine = nn.Linear(3 * SIZE, SIZE, bias=False)
        self.out = nn.Linear(SIZE, VOCAB)
        self.out.weight = self.decoder_embed.weight

    def forward(self, input_ids, attention_mask, labels):
        lengths = attention_mask.sum(1)
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(input_ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        memory, _ = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(memory, batch_first=True, total_length=input_ids.shape[1])
        rows = torch.arange(len(lengths))
        summary = torch.cat([memory[rows, lengths - 1, :SIZE], memory[:, 0, SIZE:]], dim=-1)
        state = (torch.tanh(self.bridge(summary))[None], self.bridge_cell(summary)[None])
        decoder_in = labels.new_full(labels.shape, 1)
        decoder_in[:, 1:] = labels[:, :-1].clamp(min=0)
        hidden, _ = self.decoder(self.decoder_embed(decoder_in), state)
        scores = torch.einsum("bth,bsh->bts", hidden, self.keys(memory))
        scores = scores.masked_fill(~attention_mask.bool()[:, None], torch.finfo(scores.dtype).min)
        context = torch.einsum("bts,bsm->btm", scores.softmax(-1), memory)
        logits = self.out(torch.tanh(self.combine(torch.cat([context, hidden], -1))))
        return nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def pairs() -> Dataset:
    generator = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(4096):
        s, t = (int(torch.randint(8, 31, (1,), generator=generator)) for _ in range(2))
        source = torch.randint(3, VOCAB, (s,), generator=generator).tolist()
        target = torch.randint(3, VOCAB, (t,), generator=generator).tolist() + [2]
        rows.append({"input_ids": source, "attention_mask": [1] * s, "labels": target})
    return Dataset.from_list(rows)


def training_rates(data, collator, epochs: int = 1) -> tuple[float, float]:
    target_tokens = sum(len(r) for r in data["labels"]) * epochs
    set_seed(0)
    model = RNNForSeq2SeqLM(config())
    model.config.tie_word_embeddings = True
    timer = Timer()
    args = TransferTrainingArguments.for_experiment(
        "/tmp/seq2seq-bench",
        num_train_epochs=epochs,
        per_device_train_batch_size=64,
        learning_rate=1e-3,
        max_grad_norm=0,
    )
    TransferTrainer(model=model, args=args, train_dataset=data, data_collator=collator, callbacks=[timer]).train()
    trainer = target_tokens / timer.seconds
    set_seed(0)
    hand = HandSeq2Seq()
    optimizer = torch.optim.AdamW(hand.parameters(), lr=1e-3, weight_decay=0.0, fused=True)
    loader = DataLoader(
        data, batch_size=64, shuffle=True, collate_fn=collator, generator=torch.Generator().manual_seed(0)
    )
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            hand(**batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return trainer, target_tokens / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    cli = parser.parse_args()
    set_seed(0)
    model = RNNForSeq2SeqLM(config()).eval()
    rows = []
    for batch in (1, 32):
        for beams in (1, 4):
            rates = {n: max(generation_rate(model, batch, n, beams) for _ in range(cli.repeats)) for n in (50, 400)}
            rows.append([batch, beams, f"{rates[50]:,.0f}", f"{rates[400]:,.0f}", f"{rates[400] / rates[50]:.2f}"])
    tokenizer = train_tokenizer(["x"], min_frequency=1)  # only its pad token is used: the ids are random
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    data = pairs()
    measured = [training_rates(data, collator) for _ in range(cli.repeats)]
    trainer, hand = max(m[0] for m in measured), max(m[1] for m in measured)
    body = (
        table(["batch", "beams", "new tokens/s at 50", "at 400", "400 / 50"], rows)
        + "\n\nA flat per-token cost reads as a 400 / 50 ratio near 1 (a model that re-read its output would fall "
        "towards 50/400 = 0.13).\n\n"
        + table(
            ["training", "target tokens/s", "ratio"],
            [
                ["hand-written PyTorch encoder-decoder (same layers, fused AdamW)", f"{hand:,.0f}", "1.00"],
                ["TransferTrainer + RNNForSeq2SeqLM", f"{trainer:,.0f}", f"{trainer / hand:.2f}"],
            ],
        )
    )
    write_section("seq2seq-generation", "Sequence to sequence: generation and training speed", body)


if __name__ == "__main__":
    main()
