"""The linear model on the same labels as transfer: TF-IDF + logistic regression on the source task's labelled texts
(`--linear_source_file`) plus the target's labels, as a `compare` row and as a companion `finetune` saves beside the
fine-tuned RNN (`--linear_companion`)."""

from dataclasses import dataclass, field

import numpy as np

from ..distillation import DEFAULT_DISTILL_ADVERSARIAL_EPSILON, DEFAULT_DISTILL_EPOCHS
from .target_data import TargetDataArguments, check_data_file, labelled_texts, read_labelled_texts


@dataclass
class LinearSourceArguments:
    """The source labels of the linear model (shared by `compare` and `finetune`)."""

    linear_source_file: str | None = field(
        default=None,
        metadata={
            "help": "The source task's labelled texts (json/jsonl/csv/parquet; --text_column, --label_column with "
            "the target's label names) for the linear model on the same labels as transfer: TF-IDF + LR on them "
            "plus the target's labels, and the average of its and transfer's class probabilities (compare: rows "
            "and reference lines of the report; finetune: a companion saved beside the model). Text classification "
            "targets only."
        },
    )
    linear_target_weight: float = field(
        default=10.0, metadata={"help": "Weight of a target label beside a source label in that linear model."}
    )

    def check_linear_source(self) -> None:
        """Refuse a missing/empty file or a non-positive weight before any training."""
        if self.linear_source_file:
            check_data_file("--linear_source_file", self.linear_source_file)
        if not self.linear_target_weight > 0:
            raise ValueError(f"--linear_target_weight must be positive, got {self.linear_target_weight}.")

    def read_linear_source(self, target, data_args: TargetDataArguments) -> tuple[list, list] | None:
        """The source's texts and target class ids, or None without --linear_source_file."""
        if not self.linear_source_file:
            return None
        check_text_classification(target, "--linear_source_file")
        return read_labelled_texts(self.linear_source_file, data_args, target.labels.label2id)


@dataclass
class LinearCompanionArguments(LinearSourceArguments):
    """`finetune`'s linear companion: trained on the same labels, saved and pushed beside the fine-tuned RNN."""

    linear_companion: bool = field(
        default=False,
        metadata={
            "help": "Also train a linear model (TF-IDF + logistic regression) on the target's training labels, plus "
            "--linear_source_file's (implied by it), and save it beside the RNN (linear_model.json + "
            "linear_model.safetensors, pushed with it); the test split then reports its accuracy and that of the "
            "average of both models' probabilities, what TextClassificationWithLinearPipeline answers."
        },
    )

    linear_weight: str = field(
        default="auto",
        metadata={
            "help": "The linear model's share of the average (saved with it, the pipeline's default): a number in "
            "[0, 1], or auto: chosen inside the budget by 3-fold cross-fitting of both models (3 more trainings on "
            "two thirds of the budget), the equal average unless another share is better by a standard error."
        },
    )

    distill_file: str | None = field(
        default=None,
        metadata={
            "help": "Unlabelled target texts (json/jsonl/csv/parquet/txt, the --text_column; never the test data: "
            "test texts are dropped) to distil the RNN + linear average into the RNN: after fine-tuning, the RNN "
            "trains --distill_epochs more epochs on the average's class probabilities over them, beside the training "
            "labels (one-hot), so the saved RNN alone carries part of the average's gain (kitchen and electronics: "
            "+0.2 to +2.2 points; the average with the linear model can then fall, docs/benchmarks.md). Needs the "
            "linear companion; one process."
        },
    )
    distill_epochs: float = field(
        default=DEFAULT_DISTILL_EPOCHS, metadata={"help": "Epochs of the distillation (--distill_file)."}
    )
    distill_adversarial_epsilon: float = field(
        default=DEFAULT_DISTILL_ADVERSARIAL_EPSILON,
        metadata={
            "help": "Adversarial training on the word embeddings during the distillation (--adversarial_epsilon of "
            "that stage only; the fine-tuning keeps its own): the distilled RNN gains +0.2 to +0.6 points on kitchen "
            "and +0.4 on electronics over 0 (off), at twice the distillation's cost."
        },
    )

    def __post_init__(self):
        if self.linear_weight != "auto":
            try:
                value = float(self.linear_weight)
            except ValueError:
                value = -1.0
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--linear_weight takes auto or a number in [0, 1], got {self.linear_weight!r}.")

    @property
    def wanted(self) -> bool:
        return self.linear_companion or bool(self.linear_source_file)

    def check_linear_source(self) -> None:
        """Also refuse a distillation without the linear companion, a missing/empty --distill_file, or
        non-positive --distill_epochs, before any training."""
        super().check_linear_source()
        if self.distill_file:
            if not self.wanted:
                raise ValueError(
                    "--distill_file distils the RNN + linear average into the RNN: pass --linear_source_file (the "
                    "source's labelled texts) or --linear_companion."
                )
            check_data_file("--distill_file", self.distill_file)
        if not self.distill_epochs > 0:
            raise ValueError(f"--distill_epochs must be positive, got {self.distill_epochs}.")
        if self.distill_adversarial_epsilon < 0:
            raise ValueError(
                f"--distill_adversarial_epsilon must be >= 0 (0 turns it off), got {self.distill_adversarial_epsilon}."
            )


LINEAR_SHARES = tuple(i / 10 for i in range(11))


@dataclass
class LinearWeightChoice:
    """The linear model's share of the average, chosen inside the budget, and the held-out accuracy of each share."""

    weight: float
    folds: int = 0
    scores: dict = field(default_factory=dict)  # share -> held-out accuracy of the average
    reason: str = ""

    def to_dict(self) -> dict:
        return {"weight": self.weight, "folds": self.folds, "scores": self.scores, "reason": self.reason}


def choose_linear_weight(
    train_rnn, train_dataset, collator, texts, id2label, source=None, target_weight=10.0, folds=3, seed=0
) -> LinearWeightChoice:
    """
    Cross-fit both models inside the budget: for each of `folds` class-stratified folds, `train_rnn(rows)` (the
    recipe on the other folds) and the linear model on the source labels plus the other folds score the held-out
    rows; each share of the average (0, 0.1, ..., 1) gets the held-out accuracy of its average. The choice is the
    share nearest the equal average among those within one standard error (of the paired per-row difference) of the
    best: a share moves away from 0.5 only as far as the budget's evidence carries it.

    Args:
        train_rnn: `rows -> model`: the RNN trained with the recipe on those rows of `train_dataset`.
        train_dataset, collator: the encoded budget (with `labels`) and its collator.
        texts: the raw text of each row of `train_dataset`.
        id2label: the task's classes.
        source: the source's `(texts, class ids)` for the linear model, or None.
        target_weight: a target label's weight beside a source label.
        folds, seed: the cross-fitting folds (fewer when a class has fewer rows; under 2: the equal average).
    """
    from ..budget_selection import fold_indices, paired_standard_error
    from ..evaluation import class_probabilities
    from ..linear_model import SourceAndTargetFits

    labels = np.asarray(train_dataset["labels"])
    folds = int(min(folds, np.bincount(labels)[np.bincount(labels) > 0].min()))
    if folds < 2:
        return LinearWeightChoice(0.5, reason="a class has fewer than 2 labels: no held-out rows, the equal average")
    fits = SourceAndTargetFits(*(source or ([], [])), texts, id2label, target_weight, min_df=2 if source else 1)
    rnn = np.zeros((len(labels), len(id2label)))
    linear = np.zeros_like(rnn)
    parts = fold_indices(labels.tolist(), folds, seed)
    for k, heldout in enumerate(parts):
        rows = np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k]))
        model = train_rnn(rows)
        rnn[heldout] = class_probabilities(model, train_dataset.select(heldout), collator)[0]
        linear[heldout] = fits.fit(rows, labels[rows]).predict_proba([texts[i] for i in heldout])
    correct = {w: ((w * linear + (1 - w) * rnn).argmax(-1) == labels).astype(float) for w in LINEAR_SHARES}
    best = max(LINEAR_SHARES, key=lambda w: (correct[w].mean(), -abs(w - 0.5)))

    def within_noise(w: float) -> bool:
        difference = correct[best] - correct[w]
        return difference.mean() <= paired_standard_error(difference)

    weight = min((w for w in LINEAR_SHARES if within_noise(w)), key=lambda w: (abs(w - 0.5), w))
    scores = {f"{w:.1f}": round(float(correct[w].mean()), 4) for w in LINEAR_SHARES}
    reason = (
        f"held-out accuracy {scores[f'{weight:.1f}']} at this share (best {scores[f'{best:.1f}']} at {best:.1f}; "
        f"linear alone {scores['1.0']}, RNN alone {scores['0.0']}), {folds}-fold cross-fitting of both models"
    )
    return LinearWeightChoice(weight, folds, scores, reason)


def check_text_classification(target, flag: str) -> None:
    """Refuse a target that is not text classification (series, output texts) for a linear text model."""
    if target.is_seq2seq or "input_ids" not in target.splits["train"].column_names:
        raise ValueError(f"{flag} needs a text classification target (texts and class labels).")


def fit_linear_companion(raw, target, data_args: TargetDataArguments, source, target_weight: float):
    """The `LinearTextClassifier` on the source's labelled texts (`source`, or None) and the target's training split,
    each target label weighted `target_weight` beside a source label."""
    from ..linear_model import SourceAndTargetFits

    check_text_classification(target, "--linear_companion")
    texts, labels = labelled_texts(raw["train"], data_args, target.labels.label2id, "the training split")
    source_texts, source_labels = source or ([], [])
    # the source's thousands of texts: a term seen once is noise
    fits = SourceAndTargetFits(
        source_texts, source_labels, texts, target.labels.id2label, target_weight, min_df=2 if source else 1
    )
    record = {"source_texts": len(source_texts), "target_texts": len(texts), "target_weight": target_weight}
    return fits.fit(range(len(texts)), labels, training=record)


__all__ = [
    "LinearSourceArguments",
    "LinearCompanionArguments",
    "LinearWeightChoice",
    "choose_linear_weight",
    "fit_linear_companion",
]
