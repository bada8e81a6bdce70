"""
Distillation of the RNN + linear average into the RNN, on the target's unlabelled texts.

The average of a transferred RNN's and a linear model's class probabilities beats either model alone (the two
families err on different rows), but it is two models. Training the RNN on the average's probabilities over the
target's unlabelled texts (knowledge distillation from an ensemble: Hinton et al. 2015; self-training under domain
shift: Ruder & Plank 2018), beside the target's labelled rows as one-hot rows, moves part of that gain into the RNN
alone. The loss is the cross-entropy against the teacher's probabilities (`teacher_probabilities` of
`RNNForSequenceClassification.forward`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

DEFAULT_DISTILL_EPOCHS = 8.0  # measured on kitchen (benchmarks/ensemble_distillation.py): 4 epochs gained half as much
# adversarial training of the student on its word embeddings: measured on kitchen, 3 seeds, no kitchen labels
# (benchmarks/ensemble_distillation.py --adversarial 0.02): +0.6 on test and +0.5 on the development set over none;
# +0.2 / +0.6 at 1,000 / 100 labels, +0.4 on electronics
# 0.05 measured too (3 seeds, 0/100/1,000 labels): +0.3 to +0.4 more on test, -0.6 to +0.2 on dev: a tie, so 0.02 stays
DEFAULT_DISTILL_ADVERSARIAL_EPSILON = 0.02


def teacher_rows(unlabelled, probabilities: np.ndarray, labelled=None):
    """
    The distillation's training rows: each unlabelled row with the teacher's class probabilities, then each labelled
    row with its class as a one-hot row.

    Args:
        unlabelled: encoded rows (`input_ids`, `attention_mask`), one per row of `probabilities`.
        probabilities: `[rows, num_labels]` class probabilities of the teacher.
        labelled: encoded rows with `labels` (class ids), or None.

    Example:

    ```python
    >>> rows = teacher_rows(unlabelled, 0.5 * rnn_probabilities + 0.5 * linear_probabilities, labelled=train)
    >>> distill(model, rows, training_args, collator)
    ```
    """
    from datasets import Dataset, concatenate_datasets

    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 2 or len(probabilities) != len(unlabelled):
        raise ValueError(
            f"probabilities must be [rows, num_labels] with one row per unlabelled row ({len(unlabelled)}), got "
            f"shape {list(probabilities.shape)}."
        )
    columns = ["input_ids", "attention_mask"]
    parts = [
        Dataset.from_dict({**unlabelled.select_columns(columns).to_dict(), "teacher_probabilities": probabilities})
    ]
    if labelled is not None and len(labelled):
        classes = np.asarray(labelled["labels"])
        if classes.min() < 0 or classes.max() >= probabilities.shape[1]:
            raise ValueError(f"labelled rows' labels must be class ids in [0, {probabilities.shape[1] - 1}].")
        one_hot = np.eye(probabilities.shape[1], dtype=np.float32)[classes]
        parts.append(
            Dataset.from_dict({**labelled.select_columns(columns).to_dict(), "teacher_probabilities": one_hot})
        )
    return concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def distill(model, rows, training_args, collator, epochs: float = DEFAULT_DISTILL_EPOCHS):
    """
    Train `model` (in place) on `teacher_rows` with `training_args`' recipe for `epochs` epochs; returns the
    `TransferTrainer`.

    Args:
        model: an `RNNForSequenceClassification` (the teacher's RNN half, or the source for zero target labels).
        rows: `teacher_rows(...)`.
        training_args: `TransferTrainingArguments` (the recipe: freezing, learning rates, schedule).
        collator: pads `input_ids` (e.g. `DataCollatorWithPadding`).
        epochs: passes over `rows`.
    """
    from .trainer import TransferTrainer

    if not epochs > 0:
        raise ValueError(f"distillation epochs must be positive, got {epochs}.")
    if "teacher_probabilities" not in rows.column_names:
        raise ValueError("distill trains on teacher_rows(...): rows need a teacher_probabilities column.")
    args = replace(training_args, num_train_epochs=float(epochs))
    trainer = TransferTrainer(model, args, train_dataset=rows, data_collator=collator)
    trainer.train()
    return trainer


def without_texts(texts: Sequence[str], banned: Sequence[str]) -> tuple[list[str], int]:
    """`texts` minus empty ones and any that is (after stripping and case folding) one of `banned` (e.g. the test
    split: distilling on a test text would leak the teacher's answer on it), and how many were dropped."""
    key = lambda text: " ".join(str(text).lower().split())  # noqa: E731
    refused = {key(text) for text in banned}
    kept = [text for text in texts if text and key(text) and key(text) not in refused]
    return kept, len(texts) - len(kept)


__all__ = ["DEFAULT_DISTILL_ADVERSARIAL_EPSILON", "DEFAULT_DISTILL_EPOCHS", "teacher_rows", "distill", "without_texts"]
