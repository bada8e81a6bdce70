"""The fixed cost of one held-out scoring, which selection inside the budget pays at every epoch of every fold.

    python benchmarks/evaluation_overhead.py [--repeats 20] [--rows 13 40 135 1000]

`fit_within_budget` scores the held-out rows at the end of each epoch, for every mix, in every fold: on a UCR target
`auto` does that about 550 times. `class_probabilities` used to build a `Trainer` for each call (its arguments, an
accelerator, a temporary folder, a reseeding); in a single process it now runs the same batches itself, and a
`Trainer` only shares the rows out over the processes of a distributed run. Same process, same model and rows,
the two ways interleaved: seconds per call and the ratio, for held-out sets of several sizes (kitchen reviews, a
64-unit LSTM, batches of 128 as the selection uses).
"""

import argparse
import time

import numpy as np
from _report import table, write_section
from transformers import DataCollatorWithPadding

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews, prepare_text_classification, train_tokenizer
from hf_rnn_transfer.evaluation import class_probabilities, evaluation_trainer


def through_a_trainer(model, rows, collator) -> np.ndarray:
    """The old path: a Trainer built for the call, `Trainer.predict`."""
    with evaluation_trainer(model, collator, 128) as trainer:
        return trainer.predict(rows).predictions


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="Calls per way and size (mean reported).")
    parser.add_argument("--rows", type=int, nargs="+", default=[13, 40, 135, 1000], help="Held-out set sizes.")
    options = parser.parse_args()
    if options.repeats < 1 or any(n < 1 for n in options.rows):
        parser.error("--repeats and every --rows size must be at least 1.")
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    if max(options.rows) > len(reviews):
        parser.error(f"--rows: the kitchen reviews hold {len(reviews)} rows, got {max(options.rows)}.")
    tokenizer = train_tokenizer(reviews["text"][:2000], vocab_size=5000, model_max_length=256)
    encoded = prepare_text_classification(reviews.select(range(max(options.rows))), tokenizer, max_length=256)[0]
    collator = DataCollatorWithPadding(tokenizer)
    config = RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=64, hidden_size=64, num_labels=2)
    model = RNNForSequenceClassification(config)
    out = []
    for size in options.rows:
        rows = encoded.select(range(size))
        seconds = {"trainer": [], "in_process": []}
        for repeat in range(options.repeats):
            for way in ("trainer", "in_process") if repeat % 2 == 0 else ("in_process", "trainer"):
                start = time.perf_counter()
                if way == "trainer":
                    through_a_trainer(model, rows, collator)
                else:
                    class_probabilities(model, rows, collator, batch_size=128)
                seconds[way].append(time.perf_counter() - start)
        trainer, direct = np.mean(seconds["trainer"]), np.mean(seconds["in_process"])
        out.append([str(size), f"{trainer * 1000:.1f}", f"{direct * 1000:.1f}", f"{trainer / direct:.2f}x"])
    header = ["held-out rows", "ms per call, a Trainer built for it", "ms per call, in process (now)", "speed-up"]
    body = table(header, out) + (
        f"\n\nMean over {options.repeats} calls per way and size, interleaved, one process: the class probabilities of "
        "an untrained 64-unit LSTM classifier on the first N kitchen reviews (256 tokens at most), batches of 128. "
        "Both ways give the same probabilities (tests/test_evaluation.py)."
    )
    write_section("evaluation-overhead", "Fixed cost per held-out scoring: a Trainer per call or none", body)


if __name__ == "__main__":
    main()
