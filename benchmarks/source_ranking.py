"""Source ranking on Amazon reviews: for each target domain, sources trained on each of the other three domains are
scored (LogME, LEEP, H-score) on the target's labelled pool, then actually fine-tuned; Kendall's tau compares each
score's ranking with the fine-tuned accuracies, and the ranking time is set against the fine-tuning time.

    python benchmarks/source_ranking.py [--budget 100] [--source_epochs 2]
"""

import argparse
import time

import numpy as np
from _report import table, write_section
from scipy.stats import kendalltau
from transformers import DataCollatorWithPadding, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import AMAZON_DOMAINS, load_amazon_reviews, prepare_text_classification, train_tokenizer
from hf_rnn_transfer.evaluation import accuracy_of, balanced_budget_indices
from hf_rnn_transfer.selection import rank_sources
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments
from hf_rnn_transfer.transfer import transfer


def train_source(domain: str, epochs: float):
    reviews = load_amazon_reviews(domain).shuffle(seed=0)
    tokenizer = train_tokenizer(reviews["text"], vocab_size=20000, model_max_length=256)
    encoded, labels = prepare_text_classification(reviews, tokenizer)
    set_seed(0)
    model = RNNForSequenceClassification(
        RNNConfig(
            vocab_size=len(tokenizer),
            pad_token_id=0,
            embedding_size=64,
            hidden_size=128,
            num_layers=1,
            pooling="concat",
            classifier_dropout=0.3,
            id2label=labels.id2label,
            label2id=labels.label2id,
        )
    )
    model.config.name_or_path = f"source-{domain}"
    args = TransferTrainingArguments.for_experiment(
        f"/tmp/ranking-{domain}",
        num_train_epochs=epochs,
        learning_rate=3e-3,
        per_device_train_batch_size=32,
        train_sampling_strategy="group_by_length",
        lr_scheduler_type="slanted_triangular",
    )
    TransferTrainer(
        model=model, args=args, train_dataset=encoded, data_collator=DataCollatorWithPadding(tokenizer)
    ).train()
    return model, tokenizer


def fine_tune(source, tokenizer, pool, test, budget: int) -> tuple[float, float]:
    start = time.perf_counter()
    encoded_pool, _ = prepare_text_classification(pool, tokenizer)
    encoded_test, _ = prepare_text_classification(test, tokenizer)
    subset = encoded_pool.select(balanced_budget_indices(encoded_pool["labels"], [budget], 0)[budget])
    set_seed(0)
    model, _ = transfer(source, RNNForSequenceClassification(source.config), transfer_head=True)
    args = TransferTrainingArguments.for_experiment(
        "/tmp/ranking-ft",
        num_train_epochs=8,
        learning_rate=4e-3,
        per_device_train_batch_size=16,
        freezing_strategy="gradual",
        discriminative_lr=True,
        lr_scheduler_type="slanted_triangular",
    )
    collator = DataCollatorWithPadding(tokenizer)
    TransferTrainer(model=model, args=args, train_dataset=subset, data_collator=collator).train()
    seconds = time.perf_counter() - start
    return accuracy_of(model, encoded_test, collator), seconds


def ordered(values: dict[str, float]) -> str:
    return " > ".join(sorted(values, key=lambda d: -values[d]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--source_epochs", type=float, default=2)
    cli = parser.parse_args()
    sources = {d: train_source(d, cli.source_epochs) for d in AMAZON_DOMAINS}
    rows, taus = [], {"logme": [], "leep": [], "hscore": []}
    rank_seconds = finetune_seconds = 0.0
    for target in AMAZON_DOMAINS:
        split = load_amazon_reviews(target).train_test_split(test_size=1000, seed=0, stratify_by_column="label")
        pool, test = split["train"], split["test"]
        candidates = [d for d in AMAZON_DOMAINS if d != target]
        start = time.perf_counter()
        # score on exactly the labelled rows fine-tuning will get: what a user with this budget has
        labelled = pool.select(balanced_budget_indices(pool["label"], [cli.budget], 0)[cli.budget])
        ranking = rank_sources(
            [sources[d][0] for d in candidates],
            labelled,
            max_examples=None,
            tokenizers={f"source-{d}": sources[d][1] for d in candidates},
        )
        rank_seconds += time.perf_counter() - start
        accuracies = {}
        for d in candidates:
            accuracies[d], seconds = fine_tune(*sources[d], pool, test, cli.budget)
            finetune_seconds += seconds
        scores = {s.source.removeprefix("source-"): s for s in ranking.scores}
        actual = [accuracies[d] for d in candidates]
        for metric in taus:
            taus[metric].append(kendalltau([getattr(scores[d], metric) for d in candidates], actual).statistic)
        rows.append(
            [
                target,
                ordered({d: scores[d].logme for d in candidates}),
                ordered({d: scores[d].leep for d in candidates}),
                ordered({d: scores[d].hscore for d in candidates}),
                " > ".join(f"{d} {accuracies[d]:.3f}" for d in sorted(candidates, key=lambda d: -accuracies[d])),
                f"{taus['logme'][-1]:+.2f} / {taus['leep'][-1]:+.2f} / {taus['hscore'][-1]:+.2f}",
            ]
        )
    body = table(
        [
            "target",
            "ranking by LogME",
            "by LEEP",
            "by H-score",
            f"fine-tuned accuracy ({cli.budget} labels)",
            "Kendall tau (LogME / LEEP / H-score)",
        ],
        rows,
    )
    body += "\n\n" + table(
        ["score", "mean Kendall tau over the 4 targets"], [[m, f"{np.mean(v):+.2f}"] for m, v in taus.items()]
    )
    body += (
        f"\n\nRanking 3 candidates cost {rank_seconds / 4:.1f}s per target against {finetune_seconds / 4:.1f}s to "
        f"fine-tune them ({rank_seconds / finetune_seconds:.1%} of it); both see the same {cli.budget} labelled "
        "target reviews (the scores need no training). Sources: one 1-layer LSTM classifier per "
        f"domain ({cli.source_epochs:g} epochs on its 2,000 labelled reviews, its own tokenizer); fine-tuning: "
        "gradual unfreezing, discriminative rates, slanted triangular, seed 0."
    )
    write_section(
        "source-ranking", "Source ranking on Amazon reviews (LogME, LEEP, H-score vs fine-tuned accuracy)", body
    )


if __name__ == "__main__":
    main()
