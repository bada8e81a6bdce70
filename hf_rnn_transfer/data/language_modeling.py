"""Language-model streams for source pretraining with truncated backpropagation through time.

A corpus becomes `batch_size` contiguous token streams; every batch continues each stream where the previous batch
stopped, so a model that carries its recurrent state across batches (`TransferTrainingArguments(
carry_recurrent_state=True)`) sees each stream as one long sequence. Documents are dealt to the streams as they
arrive, so a streaming `IterableDataset` larger than memory trains in constant memory.
"""

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset


class LanguageModelStream(IterableDataset):
    """
    Rows of `batch_size` parallel token streams, `batch_size` rows per step, in stream order (do not shuffle).

    Args:
        corpus: texts: a list, a generator factory, a `datasets.Dataset` or a streaming `IterableDataset`.
        tokenizer: encodes each text; its `eos_token_id` (if any) separates documents.
        batch_size: number of parallel streams (the Trainer's `per_device_train_batch_size` must equal it).
        bptt: the sequence length of a step.
        variable_bptt: AWD-LSTM's variable length: `bptt` with probability 0.95 else `bptt / 2`, then
            N(that, 5), at least 5, so that the cut points move between epochs.
        text_column: the text column of a dataset.
        seed: seeds the variable lengths (the same every epoch unless `set_epoch` is called).

    Each row: `input_ids` `[L]`, `shift_labels` `[L]` (the next token of each position) and `stream_start` (1 on
    the first step of an iteration, when a carried state must be reset).
    """

    def __init__(
        self,
        corpus,
        tokenizer,
        batch_size: int,
        bptt: int = 70,
        variable_bptt: bool = True,
        text_column: str = "text",
        seed: int = 0,
    ):
        if batch_size <= 0 or bptt <= 1:
            raise ValueError(f"batch_size must be positive and bptt > 1, got {batch_size} and {bptt}.")
        self.corpus, self.tokenizer = corpus, tokenizer
        self.batch_size, self.bptt, self.variable_bptt = batch_size, bptt, variable_bptt
        self.text_column, self.seed, self.epoch = text_column, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _texts(self) -> Iterator[str]:
        corpus = self.corpus() if callable(self.corpus) else self.corpus
        for item in corpus:
            text = item[self.text_column] if isinstance(item, dict) else item
            if not isinstance(text, str):
                raise ValueError(f"language-model corpus items must be texts, got {type(text).__name__}.")
            if text.strip():
                yield text

    def _lengths(self) -> Iterator[int]:
        rng = np.random.default_rng(self.seed + self.epoch)
        while True:
            if not self.variable_bptt:
                yield self.bptt
                continue
            base = self.bptt if rng.random() < 0.95 else self.bptt / 2
            yield max(5, int(rng.normal(base, 5)))

    def __iter__(self) -> Iterator[dict]:
        eos = self.tokenizer.eos_token_id
        streams: list[list[int]] = [[] for _ in range(self.batch_size)]
        texts = self._texts()
        first = True
        for length in self._lengths():
            # deal documents to the shortest streams until every stream can give length + 1 tokens
            while min(len(s) for s in streams) < length + 1:
                text = next(texts, None)
                if text is None:
                    if first:
                        raise ValueError(
                            f"the corpus holds too few tokens for one step of {self.batch_size} streams x {length + 1} "
                            f"tokens (it gave {sum(len(s) for s in streams)}; an empty corpus?): give more text, or "
                            "lower batch_size / bptt."
                        )
                    return
                # verbose=False: documents are meant to outrun model_max_length here, they are cut into BPTT steps
                ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
                shortest = min(range(self.batch_size), key=lambda i: len(streams[i]))
                streams[shortest].extend(ids + ([eos] if eos is not None else []))
            for stream in streams:
                chunk = torch.tensor(stream[: length + 1])
                yield {"input_ids": chunk[:-1], "shift_labels": chunk[1:], "stream_start": int(first)}
                del stream[:length]
            first = False


def count_stream_tokens(stream: Iterable[dict]) -> int:
    """Tokens an iteration of a `LanguageModelStream` trains on."""
    return sum(len(row["input_ids"]) for row in stream)
