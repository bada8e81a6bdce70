"""The linear model on the same labels as transfer: TF-IDF + logistic regression on the source task's labelled texts
(`--linear_source_file`) plus the target's labels, as a `compare` row and as a companion `finetune` saves beside the
fine-tuned RNN (`--linear_companion`)."""

from dataclasses import dataclass, field

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

    @property
    def wanted(self) -> bool:
        return self.linear_companion or bool(self.linear_source_file)


def check_text_classification(target, flag: str) -> None:
    """Refuse a target that is not text classification (series, output texts) for a linear text model."""
    if target.is_seq2seq or "input_ids" not in target.splits["train"].column_names:
        raise ValueError(f"{flag} needs a text classification target (texts and class labels).")


def fit_linear_companion(raw, target, data_args: TargetDataArguments, source, target_weight: float):
    """The `LinearTextClassifier` on the source's labelled texts (`source`, or None) and the target's training split,
    each target label weighted `target_weight` beside a source label."""
    from ..linear_model import LinearTextClassifier

    check_text_classification(target, "--linear_companion")
    texts, labels = labelled_texts(raw["train"], data_args, target.labels.label2id, "the training split")
    source_texts, source_labels = source or ([], [])
    return LinearTextClassifier.fit(
        list(source_texts) + texts,
        list(source_labels) + labels,
        target.labels.id2label,
        sample_weight=[1.0] * len(source_texts) + [target_weight] * len(texts) if source else None,
        min_df=2 if source else 1,  # the source's thousands of texts: a term seen once is noise
        training={"source_texts": len(source_texts), "target_texts": len(texts), "target_weight": target_weight},
    )


__all__ = ["LinearSourceArguments", "LinearCompanionArguments", "fit_linear_companion"]
