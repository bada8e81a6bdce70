"""Proving the transfer: transfer vs scratch over label budgets and seeds, the negative-transfer test, a classical
baseline, and what moved in each layer (weight drift, linear CKA).

Example:

```python
>>> result = compare(make_transfer, make_scratch, train, test, budgets=[50, 100, 200, None], seeds=[0, 1, 2],
...                  args=TransferTrainingArguments("out", num_train_epochs=5), collator=collator,
...                  texts=(train_texts, test_texts))
>>> print(result.to_markdown()); result.plot("curve.png")
```
"""

import contextlib
import copy
import inspect
import math
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy import stats

from .budget_selection import fit_within_budget
from .linear_model import LinearTextClassifier, SourceAndTargetFits
from .trainer import TransferTrainer, TransferTrainingArguments

NEGATIVE_TRANSFER_TEST = (
    "negative transfer is flagged at a budget when transfer's mean accuracy is below scratch's and a one-sided "
    'paired t-test over the seeds (same data, same seed for both) gives p < 0.05; "transfer helps" needs the '
    "mirror test"
)


def balanced_budget_indices(labels: Sequence[int], budgets: Sequence[int | None], seed: int) -> dict:
    """
    Nested, class-balanced subsets of the training rows: the first `budget / n_classes` rows of each class in one
    seeded permutation, so a larger budget contains every smaller one. `None` means all rows.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    per_class = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    out = {}
    for budget in budgets:
        if budget is None:
            out[None] = np.sort(np.concatenate(list(per_class.values())))
            continue
        share = budget // len(classes)
        if share < 1 or any(share > len(rows) for rows in per_class.values()):
            raise ValueError(
                f"a budget of {budget} labels needs between {len(classes)} and "
                f"{len(classes) * min(len(r) for r in per_class.values())} rows."
            )
        out[budget] = np.sort(np.concatenate([rows[:share] for rows in per_class.values()]))
    return out


def nested_budget_indices(size: int, budgets: Sequence[int | None], seed: int) -> dict:
    """Nested subsets of `size` rows (the first `budget` of one seeded permutation), for tasks without classes."""
    order = np.random.default_rng(seed).permutation(size)
    out = {}
    for budget in budgets:
        if budget is not None and not 1 <= budget <= size:
            raise ValueError(f"a budget of {budget} rows needs between 1 and {size} training rows.")
        out[budget] = np.sort(order if budget is None else order[:budget])
    return out


def tfidf_lr_probabilities(
    train_texts,
    train_labels,
    test_texts,
    sample_weight=None,
    fit_texts=None,
    min_df: int = 1,
    num_classes: int | None = None,
) -> np.ndarray:
    """The classical baseline's class probabilities: `LinearTextClassifier` (TF-IDF of 1-2 grams, sublinear, and
    logistic regression with C=10).

    Args:
        train_texts, train_labels: what the logistic regression learns from (labels are class ids).
        test_texts: the texts to score; one row of probabilities each, one column per class id.
        sample_weight: a weight per training text (e.g. target labels counted more than source labels).
        fit_texts: the texts the vocabulary and idf are fitted on (default: `train_texts`); unlabelled texts of
            the target domain may join them.
        min_df: a term's least document count to enter the vocabulary.
        num_classes: columns of the result (default: the largest training label + 1).
    """
    classes = num_classes or int(np.max(train_labels)) + 1
    linear = LinearTextClassifier.fit(
        train_texts, train_labels, {i: str(i) for i in range(classes)}, sample_weight, fit_texts, min_df
    )
    return linear.predict_proba(test_texts)


def tfidf_logistic_regression(train_texts, train_labels, test_texts, test_labels) -> float:
    """The classical baseline: TF-IDF of 1-2 grams (sublinear) + logistic regression, test accuracy."""
    probabilities = tfidf_lr_probabilities(train_texts, train_labels, test_texts)
    return float((probabilities.argmax(-1) == np.asarray(test_labels)).mean())


METHOD_NAMES = {
    "transfer": "transfer",
    "scratch": "scratch",
    "tfidf_lr": "TF-IDF + LR",
    "tfidf_lr_source": "TF-IDF + LR, source + target labels",
    "transfer_linear": "transfer + that linear model",
}


class _Never:
    """`catch_up_budget()` when scratch never reaches transfer (distinct from the budget `None`, all rows)."""

    def __repr__(self):
        return "NEVER"


NEVER = _Never()


@dataclass
class ComparisonResult:
    """Accuracies per (method, budget, seed), with the summary statistics and the negative-transfer verdicts."""

    budgets: list
    seeds: list[int]
    scores: dict = field(default_factory=dict)  # {method: {budget: [score per seed]}}
    metric: str = "accuracy"
    train_size: int = 0
    # scores that need no target labels: {"majority class": .., "source zero-shot": ..}
    references: dict = field(default_factory=dict)
    # what fit_within_budget chose per run, when the recipe selects inside the budget: {method: {budget: [dict]}}
    selections: dict = field(default_factory=dict)
    # the weight of a target label beside a source label in the linear model on the source labels (when it ran)
    linear_target_weight: float | None = None

    def mean(self, method: str, budget) -> float:
        return float(np.mean(self.scores[method][budget]))

    def std(self, method: str, budget) -> float:
        return float(np.std(self.scores[method][budget]))

    def label(self, budget) -> str:
        return f"all ({self.train_size})" if budget is None else str(budget)

    def negative_transfer(self, budget) -> tuple[bool, float | None]:
        """(flagged, p-value) of the one-sided paired t-test transfer < scratch at `budget`."""
        return self._paired_test(budget, worse=True)

    def positive_transfer(self, budget) -> tuple[bool, float | None]:
        """(significant, p-value) of the one-sided paired t-test transfer > scratch at `budget`."""
        return self._paired_test(budget, worse=False)

    def _paired_test(self, budget, worse: bool) -> tuple[bool, float | None]:
        differences = np.asarray(self.scores["transfer"][budget]) - np.asarray(self.scores["scratch"][budget])
        if worse:
            differences = -differences
        if len(differences) < 2 or differences.mean() <= 0 or self.seeds_cannot_tell(budget):
            return False, None
        p_value = float(stats.ttest_1samp(differences, 0.0, alternative="greater").pvalue)
        return p_value < 0.05, p_value

    def seeds_cannot_tell(self, budget) -> bool:
        """The same transfer - scratch gap on every seed: zero variance, so no paired test is valid (the seeds did not
        change the runs, or they are too few to show noise). Neither verdict can be drawn."""
        differences = np.asarray(self.scores["transfer"][budget]) - np.asarray(self.scores["scratch"][budget])
        return (
            len(differences) >= 2
            and bool(np.allclose(differences, differences[0], rtol=0, atol=1e-9))
            and abs(differences[0]) > 1e-9
        )

    def verdict(self, budget) -> str:
        """NEGATIVE TRANSFER, transfer helps, or no reliable difference (one-sided paired t-tests, p < 0.05)."""
        if self.seeds_cannot_tell(budget):
            return "the seeds cannot tell (the same gap on every seed: use other seeds)"
        flagged, p_value = self.negative_transfer(budget)
        if flagged:
            return f"NEGATIVE TRANSFER (p={p_value:.3f})"
        helps, p_helps = self.positive_transfer(budget)
        if helps:
            return f"transfer helps (p={p_helps:.3f})"
        p_value = p_value if p_value is not None else p_helps
        return "no reliable difference" + (f" (p={p_value:.3f})" if p_value is not None else "")

    def catch_up_budget(self):
        """The smallest budget at which scratch's mean reaches transfer's; `NEVER` if it does not within the budgets.
        (`None` is a budget: the whole training set.)"""
        for budget in self.budgets:
            if self.mean("scratch", budget) >= self.mean("transfer", budget):
                return budget
        return NEVER

    def labels_scratch_needs(self, reference_budget):
        """The smallest budget at which scratch reaches transfer's mean at `reference_budget`; `NEVER` if none."""
        target = self.mean("transfer", reference_budget)
        for budget in self.budgets:
            if self.mean("scratch", budget) >= target:
                return budget
        return NEVER

    def rows(self) -> list[list[str]]:
        out = []
        for budget in self.budgets:
            row = [self.label(budget)]
            for method in self.scores:
                row.append(f"{self.mean(method, budget):.3f} ± {self.std(method, budget):.3f}")
            delta = self.mean("transfer", budget) - self.mean("scratch", budget)
            row += [f"{delta:+.3f}", self.verdict(budget)]
            out.append(row)
        return out

    @property
    def header(self) -> list[str]:
        return ["labels", *[METHOD_NAMES.get(m, m) for m in self.scores], "transfer − scratch", "verdict"]

    def summary(self) -> str:
        catch = self.catch_up_budget()
        if catch is NEVER:
            catching = "Scratch never catches up with transfer within these budgets. "
        elif catch == self.budgets[0]:
            catching = f"Scratch is at or above transfer from the smallest budget ({self.label(catch)} labels) on. "
        else:
            catching = f"Scratch catches up with transfer at {self.label(catch)} labels. "
        references = "".join(f"{name}: {value:.3f}; " for name, value in self.references.items())
        text = (
            f"{self.metric} on the test set, mean ± std over seeds {self.seeds}. "
            + (f"With no target labels: {references[:-2]}. " if references else "")
            + self.selection_summary()
            + self.linear_summary()
            + catching
            + NEGATIVE_TRANSFER_TEST[0].upper()
            + NEGATIVE_TRANSFER_TEST[1:]
            + "."
        )
        return text

    def selection_summary(self) -> str:
        """What the selection inside each budget chose for transfer (mean stopping epoch and mix), if it ran."""
        chosen = {b: runs for b, runs in self.selections.get("transfer", {}).items() if runs}
        if not chosen:
            return ""
        parts = [
            f"{self.label(b)}: epoch {np.mean([r['epochs'] for r in runs]):.1f}, mix "
            f"{np.mean([r['mix'] for r in runs]):.2f}"
            for b, runs in chosen.items()
        ]
        folds = next(iter(chosen.values()))[0]["folds"]
        return (
            f"Transfer's stopping epoch and mix with the source weights (0 = the source as it is) were chosen by "
            f"{folds}-fold cross-validation inside each budget (means over seeds: {'; '.join(parts)}). "
        )

    def linear_summary(self) -> str:
        if self.linear_target_weight is None:
            return ""
        return (
            f"{METHOD_NAMES['tfidf_lr_source']}: TF-IDF + LR trained on the source's labelled texts plus each "
            f"budget's target labels (each weighted x{self.linear_target_weight:g}), the linear model a user would "
            f"train on the same labels as transfer; {METHOD_NAMES['transfer_linear']}: the average of its and "
            "transfer's class probabilities. "
        )

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows()]
        return self.summary() + "\n\n" + "\n".join(lines)

    def to_card(self) -> dict:
        """For `CardContent(comparison=...)`."""
        return {"summary": self.summary(), "header": self.header, "rows": self.rows()}

    def plot(self, path) -> None:
        """The learning curves (mean ± std per budget) as a PNG."""
        from matplotlib.figure import Figure

        x = [self.train_size if b is None else b for b in self.budgets]
        figure = Figure(figsize=(6, 4))  # no pyplot: the caller's backend and open figures stay as they are
        axis = figure.subplots()
        for method, label in METHOD_NAMES.items():
            if method not in self.scores:
                continue
            means = np.array([self.mean(method, b) for b in self.budgets])
            stds = np.array([self.std(method, b) for b in self.budgets])
            axis.plot(x, means, marker="o", label=label)
            axis.fill_between(x, means - stds, means + stds, alpha=0.2)
        for (name, value), style in zip(self.references.items(), (":", "--", "-.", (0, (1, 4)))):
            axis.axhline(value, color="grey", linestyle=style, label=f"{name} (no target labels)")
        axis.set_xscale("log")
        axis.set_xlabel("labelled training examples")
        axis.set_ylabel(f"test {self.metric}")
        axis.set_title("Transfer vs scratch")
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=120)


def classification_metrics(eval_pred) -> dict[str, float]:
    """`compute_metrics` for sequence and token classification: accuracy and macro-F1 (positions labelled -100
    are ignored)."""
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    logits = logits[0] if isinstance(logits, tuple) else logits
    predictions = np.asarray(logits).argmax(-1).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    keep = labels != -100
    predictions, labels = predictions[keep], labels[keep]
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


def entity_metrics(label_names: Sequence[str]) -> Callable:
    """
    `compute_metrics` for named-entity tagging: entity-level precision, recall and F1 (`seqeval`, the CoNLL
    scoring: an entity counts only when its type and exact span are right), plus token accuracy. Positions labelled
    -100 (special tokens, continuation pieces) are skipped, so each sentence is scored on its words' tags.

    Args:
        label_names: the tag of each label id (BIO/IOB2 tags such as `B-PER`, `I-PER`, `O`).
    """
    from seqeval.metrics import f1_score, precision_score, recall_score

    names = list(label_names)

    def compute(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred
        logits = logits[0] if isinstance(logits, tuple) else logits
        predictions = np.asarray(logits).argmax(-1)
        gold, predicted = [], []
        for row_pred, row_gold in zip(predictions, np.asarray(labels)):
            keep = row_gold != -100
            gold.append([names[i] for i in row_gold[keep]])
            predicted.append([names[i] for i in row_pred[keep]])
        flat_gold = [t for row in gold for t in row]
        flat_pred = [t for row in predicted for t in row]
        return {
            "entity_precision": float(precision_score(gold, predicted, zero_division=0)),
            "entity_recall": float(recall_score(gold, predicted, zero_division=0)),
            "entity_f1": float(f1_score(gold, predicted, zero_division=0)),
            "token_accuracy": float(np.mean([a == b for a, b in zip(flat_gold, flat_pred)])) if flat_gold else 0.0,
        }

    return compute


def generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """
    Corpus BLEU and chrF (`sacrebleu`, its default 13a tokenisation: comparable with published scores on detokenised
    text), and distinct-1/2 (the share of distinct uni- and bigrams among all generated ones: dialogue diversity).

    Args:
        predictions: one generated text per example; references: the reference text of each.
    """
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references: give one of each per row.")
    if not predictions:
        raise ValueError("generation_metrics needs at least one prediction.")
    words = [p.split() for p in predictions]
    unigrams = [w for row in words for w in row]
    bigrams = [pair for row in words for pair in zip(row, row[1:])]
    return {
        "bleu": float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score),
        "chrf": float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score),
        "distinct_1": len(set(unigrams)) / max(1, len(unigrams)),
        "distinct_2": len(set(bigrams)) / max(1, len(bigrams)),
    }


def evaluate_generation(
    model, dataset, tokenizer, collator, batch_size: int = 64, target_tokenizer=None, **generate_kwargs
) -> dict[str, float]:
    """
    Generate for every row of an encoded sequence-to-sequence dataset (`prepare_translation`) and score the texts
    against the references decoded from its `labels` (`generation_metrics`), plus the perplexity of the references
    (exp of the mean token cross-entropy, through `Trainer.evaluate`).

    Args:
        generate_kwargs: e.g. `num_beams=4, max_new_tokens=40` (defaults: greedy, 64 new tokens).
    """
    from torch.utils.data import DataLoader

    target_tokenizer = target_tokenizer or tokenizer
    columns = [c for c in ("input_ids", "attention_mask", "labels") if c in dataset.column_names]
    rows = dataset.select_columns(columns)
    loader = DataLoader(rows, batch_size=batch_size, collate_fn=collator)
    settings = {"max_new_tokens": 64, "do_sample": False, **generate_kwargs}
    model.eval()
    predictions, references = [], []
    with torch.no_grad():
        for batch in loader:
            labels = batch.pop("labels")
            batch = to_device(batch, model.device)
            generated = model.generate(**batch, **settings)
            predictions += target_tokenizer.batch_decode(generated, skip_special_tokens=True)
            references += target_tokenizer.batch_decode(labels.masked_fill(labels == -100, 0), skip_special_tokens=True)
    metrics = generation_metrics(predictions, references)
    loss = evaluate_classifier(model, rows, collator, batch_size, prefix="eval", compute_metrics=_no_metrics)[
        "eval_loss"
    ]
    metrics["perplexity"] = float(math.exp(min(loss, 50.0)))
    return metrics


def _no_metrics(eval_pred) -> dict:
    return {}


def evaluate_classifier(
    model,
    dataset,
    collator,
    batch_size: int = 128,
    prefix: str = "test",
    compute_metrics: Callable | None = None,
    loss_only: bool = False,
) -> dict[str, float]:
    """
    `Trainer.evaluate` on an encoded dataset with `labels`, with `classification_metrics` (or `compute_metrics`,
    e.g. `entity_metrics(names)`): the metrics (`test_accuracy`, `test_macro_f1`, `test_loss`, ...) go through the
    Trainer's logging (console, TensorBoard, trackio) and evaluation is spread over every process of a distributed run.
    `loss_only=True` keeps no predictions (only `<prefix>_loss`): for generation models, whose logits are large.
    """
    metrics = None if loss_only else compute_metrics or classification_metrics
    with evaluation_trainer(model, collator, batch_size, compute_metrics=metrics, loss_only=loss_only) as trainer:
        return trainer.evaluate(dataset, metric_key_prefix=prefix)


@contextlib.contextmanager
def preserved_random_state():
    """Python's, NumPy's and torch's random states (the CPU's and every initialised CUDA device's) restored on exit
    to what they were on entry.

    A `Trainer` seeds them all when it is built (`args.seed`). An evaluation in the middle of a training, such as the
    held-out scoring at each epoch's end inside the budget, would otherwise restart the training's random stream at
    the same point after every epoch: each later epoch would draw the same dropout masks (the rows' order is seeded
    per epoch by the sampler, not by this stream).
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    mps = torch.mps.get_rng_state() if torch.backends.mps.is_available() else None
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if mps is not None:
            torch.mps.set_rng_state(mps)


@contextlib.contextmanager
def evaluation_trainer(model, collator, batch_size: int, compute_metrics=None, loss_only: bool = False):
    """A quiet `Trainer` for evaluation or prediction on the model's device, writing only to a temporary folder that
    is removed on exit; the caller reports the metrics it returns (a table, a line). The caller's random state is
    left as it was (`preserved_random_state`)."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    with preserved_random_state(), tempfile.TemporaryDirectory(prefix="hf-rnn-transfer-eval-") as folder:
        args = TrainingArguments(
            folder,
            per_device_eval_batch_size=batch_size,
            report_to="none",
            use_cpu=model.device.type == "cpu",
            disable_tqdm=True,
            prediction_loss_only=loss_only,
        )
        trainer = Trainer(model=model, args=args, data_collator=collator, compute_metrics=compute_metrics)
        trainer.remove_callback(PrinterCallback)
        yield trainer


def accuracy_of(model, dataset, collator, batch_size: int = 128) -> float:
    """Accuracy of a classifier on an encoded dataset with `labels` (through `evaluate_classifier`)."""
    return evaluate_classifier(model, dataset, collator, batch_size)["test_accuracy"]


def class_probabilities(model, dataset, collator, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A classifier's class probabilities on an encoded dataset with `labels`, one row per example, and the labels.

    What an ensemble averages (e.g. with a linear model's `predict_proba`); the argmax gives `row_accuracy`.
    """
    if len(dataset) == 0:
        raise ValueError("class_probabilities needs at least one row; the dataset is empty.")
    if _spread_over_processes():
        with evaluation_trainer(model, collator, batch_size) as trainer:
            output = trainer.predict(dataset)
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        labels = output.label_ids
    else:  # one process: the same batches without building a Trainer (most of the cost on a few held-out rows)
        logits, labels = _predict_in_process(model, dataset, collator, batch_size)
    logits = np.asarray(logits, dtype=np.float64)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    return probabilities / probabilities.sum(-1, keepdims=True), np.asarray(labels)


def _spread_over_processes() -> bool:
    """Whether this is one process of several (torchrun, accelerate launch): evaluation then goes through a Trainer,
    which shares the rows out and gathers the answers."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return distributed and torch.distributed.get_world_size() > 1


@torch.no_grad()
def _predict_in_process(model, dataset, collator, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The logits and labels `Trainer.predict` gives in a single process (`_batches_on_device`); the model is left in
    eval mode, as `Trainer.predict` leaves it."""
    model.eval()
    logits, labels = [], []
    for batch in _batches_on_device(model, dataset, collator, batch_size):
        logits.append(model(**batch).logits.float().cpu().numpy())
        if "labels" in batch:
            labels.append(batch["labels"].cpu().numpy())
    return np.concatenate(logits), (np.concatenate(labels) if labels else None)


def _batches_on_device(model, dataset, collator, batch_size: int):
    """The dataset's rows in order, collated in batches of `batch_size`, with only what the model's `forward` takes
    (the label too), on the model's device: what `Trainer.predict` feeds a model, without a Trainer."""
    accepted = set(inspect.signature(model.forward).parameters) | {"label", "label_ids"}
    rows = dataset.select_columns([c for c in dataset.column_names if c in accepted])
    for start in range(0, len(rows), batch_size):
        part = rows[start : start + batch_size]
        batch = collator([dict(zip(part, values)) for values in zip(*part.values())])
        yield to_device({k: v for k, v in batch.items() if k in accepted}, model.device)


def row_accuracy(model, dataset, collator, batch_size: int = 128) -> np.ndarray:
    """1.0 for each row of an encoded dataset with `labels` that the classifier gets right, else 0.0 (its mean is
    the accuracy): what `rule="paired_standard_error"` of selection inside the budget compares row by row."""
    probabilities, labels = class_probabilities(model, dataset, collator, batch_size)
    return (probabilities.argmax(-1) == labels).astype(float)


def answers_mean_the_labels(model, dataset, collator, batch_size: int = 128) -> tuple[bool, float, float]:
    """Whether a transferred classifier's answers mean the target's labels: its zero-shot accuracy on `dataset` (an
    encoded set with `labels`, e.g. the label budget) beats the majority-class rate by more than one binomial standard
    error. Label names can match without the meaning: UCR sets number their classes 1, 2, ..., so a source of
    GunPointAgeSpan (young/old) "answers" GunPointMaleVersusFemale's 1 and 2 at 0.39 on its train split (majority 0.53).

    Returns:
        `(verdict, zero-shot accuracy, majority-class rate)`.

    Example:

    ```python
    >>> same, zero_shot, majority = answers_mean_the_labels(transferred, budget_rows, collator)
    ```
    """
    probabilities, labels = class_probabilities(model, dataset, collator, batch_size)
    zero_shot = float((probabilities.argmax(-1) == labels).mean())
    majority = float(np.bincount(labels.astype(int)).max() / len(labels))
    error = np.sqrt(zero_shot * (1.0 - zero_shot) / len(labels))
    return bool(zero_shot - majority > error), zero_shot, majority


def row_losses(model, dataset, collator, batch_size: int = 64) -> np.ndarray:
    """Each row's mean cross-entropy over its labelled positions (`labels` of -100 ignored), for an encoded dataset of
    a model whose logits line up with its labels (a classifier's row: minus the log-probability of its label; sequence
    to sequence and token classification: the mean over the row's output tokens). Computed in this
    process on the model's device, in order, so every process of a distributed run gets the same values. What selection
    inside the budget compares row by row (negated) where accuracy does not apply.

    Example:

    ```python
    >>> losses = row_losses(model, encoded["test"], collator)  # shape [rows]; losses.mean() weighs every row alike
    ```
    """
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    values = []
    try:
        with torch.no_grad():
            for batch in _batches_on_device(model, dataset, collator, batch_size):
                if "labels" not in batch:
                    raise ValueError(f"row_losses needs a `labels` column; the dataset has {dataset.column_names}.")
                logits = model(**batch).logits.float()
                labels = batch["labels"]
                if logits.shape[:-1] != labels.shape:
                    raise ValueError(
                        f"row_losses needs one prediction per label: logits {tuple(logits.shape)} do not line up "
                        f"with labels {tuple(labels.shape)} (a regression or forecasting head has no cross-entropy)."
                    )
                losses = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=-100, reduction="none")
                kept = (labels != -100).view(len(labels), -1).float()
                values.append(((losses.view(len(labels), -1) * kept).sum(1) / kept.sum(1).clamp(min=1)).cpu())
    finally:
        model.train(was_training)
    return torch.cat(values).numpy().astype(float) if values else np.zeros(0)


def to_device(batch: dict, device) -> dict:
    """A collated batch on `device` (the model's: CPU, CUDA or MPS); non-tensor values stay as they are."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def scratch_arguments(args: TransferTrainingArguments, **changes) -> TransferTrainingArguments:
    """`args` without what only a transferred model has (freezing, discriminative rates, L2-SP), plus `changes`."""
    resets = dict(
        freezing_strategy="none",
        freeze_layers=0,
        unfreeze_interval=1.0,
        unfreeze_unit="epoch",
        discriminative_lr=False,
        discriminative_lr_factor=2.6,
        l2sp_alpha=0.0,
        l2sp_beta=0.0,
        select_mixes=[1.0],  # a mix with random weights means nothing; the stopping epoch is still chosen
    )
    return replace(args, **{**resets, **changes})


def compare(
    make_transfer: Callable[[int], torch.nn.Module],
    make_scratch: Callable[[int], torch.nn.Module],
    train_dataset,
    test_dataset,
    args: TransferTrainingArguments,
    collator,
    budgets: Sequence[int | None] = (50, 100, 200, 500, None),
    seeds: Sequence[int] = (0, 1, 2),
    scratch_args: TransferTrainingArguments | None = None,
    texts: tuple[Sequence[str], Sequence[str]] | None = None,
    label_column: str = "labels",
    progress: bool = True,
    zero_shot: torch.nn.Module | None = None,
    score: Callable | None = None,
    metric: str = "accuracy",
    select_score: Callable | None = None,
    linear_source: tuple[Sequence[str], Sequence[int]] | None = None,
    linear_target_weight: float = 10.0,
) -> ComparisonResult:
    """
    Train the transferred model and the same architecture from scratch on identical subsets, budgets and seeds.

    Args:
        make_transfer, make_scratch: build a fresh model for a seed (the transferred one, e.g. with `transfer()`).
        train_dataset, test_dataset: encoded datasets with `label_column`.
        args: training arguments of the transferred model (its strategy: freezing, learning rates, ...).
        scratch_args: those of the scratch model (default: `args` without freezing or discriminative rates).
        budgets: label budgets (nested, class-balanced); `None` is the whole training set.
        texts: `(train_texts, test_texts)` aligned with the datasets, to add the TF-IDF + logistic regression row.
        zero_shot: the source model, when its labels are the target's: its test accuracy with no target labels is
            a reference line (as is the majority-class rate, always).
        score, metric: for other tasks, `score(model, test_dataset) -> float` (higher is better) and its name, e.g.
            BLEU for sequence to sequence: `score=lambda m, d: evaluate_generation(m, d, tok, collator)["bleu"],
            metric="BLEU"`. Labels that are sequences get nested random subsets instead of class-balanced ones, and
            no majority-class line.
        select_score: what selection inside the budget maximises on held-out rows, when `args.select_folds` is set
            (default: `score`; for generation a cheaper one, e.g. minus the loss).
        linear_source: `(texts, class ids)`: the source task's labelled texts, with the target's label ids (needs
            `texts`). Adds the linear model on the same labels as transfer (TF-IDF + LR on them plus each budget's
            target labels, each weighted `linear_target_weight`; the vocabulary also reads the target's training
            texts) and the average of its class probabilities with transfer's; with no target labels, the linear
            model on the source labels alone (and averaged with the `zero_shot` source) are reference lines.

    Returns:
        A `ComparisonResult`: `to_markdown()`, `plot(path)`, `to_card()`, `negative_transfer(budget)`.
    """
    from tqdm.auto import tqdm

    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds must be distinct (and at least one): got {list(seeds)}; e.g. seeds=(0, 1, 2).")
    scratch_args = scratch_args or scratch_arguments(args)
    labels = train_dataset[label_column]
    test_labels = test_dataset[label_column]
    classes = not isinstance(labels[0], list)  # class ids, or token sequences (sequence to sequence)
    default_score = score is None
    if score is None:
        if not classes:
            raise ValueError("labels are sequences: pass score= (e.g. BLEU through evaluate_generation) and metric=.")
        score = lambda model, dataset: accuracy_of(model, dataset, collator)  # noqa: E731
        if select_score is None:  # row by row, so that every selection rule applies (its mean is the accuracy)
            select_score = lambda model, dataset: row_accuracy(model, dataset, collator)  # noqa: E731
    if linear_source is not None and (texts is None or not classes):
        raise ValueError("linear_source needs a text classification target: pass texts=(train_texts, test_texts).")
    if linear_source is not None and (len(linear_source[0]) != len(linear_source[1]) or not linear_source[0]):
        raise ValueError("linear_source must be (texts, labels) of the same non-zero length.")
    if linear_source is not None and len(set(linear_source[1])) < 2:
        raise ValueError(
            "linear_source holds a single class: the linear model needs the source's labels of 2+ classes."
        )
    if not linear_target_weight > 0:
        raise ValueError(f"linear_target_weight must be positive, got {linear_target_weight}.")
    result = ComparisonResult(budgets=list(budgets), seeds=list(seeds), train_size=len(train_dataset), metric=metric)
    if classes:
        counts = np.bincount(np.asarray(test_labels))
        result.references["majority class"] = float(counts.max() / counts.sum())
    if zero_shot is not None:
        result.references["source zero-shot"] = score(zero_shot, test_dataset)
    methods = ["transfer", "scratch"] + (["tfidf_lr"] if texts is not None else [])
    if linear_source is not None:
        methods += ["tfidf_lr_source", "transfer_linear"]
        result.linear_target_weight = linear_target_weight
        source_texts, source_labels = list(linear_source[0]), [int(v) for v in linear_source[1]]
        num_classes = int(max(max(source_labels), max(labels), max(test_labels))) + 1
        accuracy = lambda p: float((p.argmax(-1) == np.asarray(test_labels)).mean())  # noqa: E731

        # one vocabulary for every budget and seed: the texts are read once, each fit is the regression alone
        fits = SourceAndTargetFits(
            source_texts, source_labels, texts[0], {i: str(i) for i in range(num_classes)}, linear_target_weight
        )

        def linear(extra: Sequence[int]) -> np.ndarray:
            """The linear model on the source labels plus the target rows `extra`: test class probabilities."""
            return fits.fit(extra, [labels[i] for i in extra]).predict_proba(texts[1])

        source_linear = linear([])
        result.references["linear model on the source labels"] = accuracy(source_linear)
        if zero_shot is not None:
            zero_shot_probabilities = class_probabilities(zero_shot, test_dataset, collator)[0]
            result.references["source zero-shot + that linear model"] = accuracy(
                (zero_shot_probabilities + source_linear) / 2
            )
    result.scores = {m: {b: [] for b in budgets} for m in methods}
    result.selections = {m: {b: [] for b in budgets} for m in ("transfer", "scratch")}
    runs = tqdm(total=len(seeds) * len(budgets), desc="transfer vs scratch", disable=not progress)
    for seed in seeds:
        subsets = (
            balanced_budget_indices(labels, budgets, seed)
            if classes
            else nested_budget_indices(len(labels), budgets, seed)
        )
        for budget in budgets:
            subset = train_dataset.select(subsets[budget])
            trained = {}
            for method, make, method_args in (
                ("transfer", make_transfer, args),
                ("scratch", make_scratch, scratch_args),
            ):
                with tempfile.TemporaryDirectory(prefix="compare-") as run_dir:  # a run keeps nothing on disk
                    run_args = replace(
                        method_args,
                        output_dir=run_dir,
                        seed=seed,
                        save_strategy="no",
                        report_to="none",
                        disable_tqdm=True,
                    )
                    if run_args.select_folds:
                        model, chosen = fit_within_budget(
                            lambda: make(seed),  # noqa: B023 (called at once)
                            subset,
                            run_args,
                            collator,
                            select_score or score,
                            folds=run_args.select_folds,
                            mixes=run_args.select_mixes,
                            label_column=label_column,
                            rule=run_args.select_rule,
                            random_start=True if method == "scratch" else None,
                        )
                        result.selections[method][budget].append(chosen.to_dict())
                    else:
                        model = make(seed)
                        TransferTrainer(model, run_args, train_dataset=subset, data_collator=collator).train()
                if method == "transfer" and linear_source is not None and default_score:
                    # one pass over the test set gives both the accuracy and what the average needs
                    transfer_probabilities = class_probabilities(model, test_dataset, collator)[0]
                    result.scores[method][budget].append(accuracy(transfer_probabilities))
                else:
                    result.scores[method][budget].append(score(model, test_dataset))
                trained[method] = model
            if texts is not None:
                train_texts = [texts[0][i] for i in subsets[budget]]
                result.scores["tfidf_lr"][budget].append(
                    tfidf_logistic_regression(train_texts, [labels[i] for i in subsets[budget]], texts[1], test_labels)
                )
            if linear_source is not None:
                linear_probabilities = linear(subsets[budget])
                if not default_score:
                    transfer_probabilities = class_probabilities(trained["transfer"], test_dataset, collator)[0]
                result.scores["tfidf_lr_source"][budget].append(accuracy(linear_probabilities))
                result.scores["transfer_linear"][budget].append(
                    accuracy((linear_probabilities + transfer_probabilities) / 2)
                )
            runs.update(1)
    runs.close()
    return result


# ---------------------------------------------------------------------------------------------- what transferred


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) between two representations `[N, D1]`, `[N, D2]` of the same examples."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    y = np.asarray(y, dtype=np.float64) - np.mean(y, axis=0)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2
    return float(cross / (np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")))


@dataclass
class LayerChange:
    group: str
    weight_drift: float  # ||w_finetuned - w_start|| / ||w_start||
    cka: float | None  # similarity of the group's output representations before and after fine-tuning


def what_transferred(
    start_model, finetuned_model, dataset, collator, batch_size: int = 64, max_examples: int = 500
) -> list[LayerChange]:
    """
    Per layer group: how far fine-tuning moved the weights from where they started (the transferred values), and
    how similar the group's output representations (mean over time) stay on the target data (linear CKA).
    """
    start_params = dict(start_model.named_parameters())
    tuned_params = dict(finetuned_model.named_parameters())
    groups = finetuned_model.get_layer_groups()
    start_repr = _layer_representations(start_model, dataset, collator, batch_size, max_examples)
    tuned_repr = _layer_representations(finetuned_model, dataset, collator, batch_size, max_examples)
    out = []
    for index, (group, names) in enumerate(groups.items()):
        before = torch.cat([start_params[n].detach().flatten().float().cpu() for n in names])  # models may sit
        after = torch.cat([tuned_params[n].detach().flatten().float().cpu() for n in names])  # on two devices
        drift = float((after - before).norm() / before.norm().clamp_min(1e-12))
        cka = linear_cka(start_repr[index], tuned_repr[index]) if index < len(start_repr) else None
        out.append(LayerChange(group, drift, cka))
    return out


def _layer_representations(model, dataset, collator, batch_size, max_examples) -> list[np.ndarray]:
    model.eval()
    encoder = model.base_model
    collected: list[list[np.ndarray]] = []
    rows = range(min(len(dataset), max_examples))
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = collator(
                [
                    {k: v for k, v in dataset[i].items() if k not in ("labels", "length")}
                    for i in rows[start : start + batch_size]
                ]
            )
            batch = to_device(batch, encoder.device)
            mask = batch.get("attention_mask")
            out = encoder(
                **{k: v for k, v in batch.items() if k != "labels"}, use_cache=False, output_hidden_states=True
            )
            keep = mask[..., None].bool() if mask is not None else None
            for i, hidden in enumerate(out.hidden_states):
                if keep is None:
                    pooled = hidden.mean(1)
                else:
                    pooled = hidden.masked_fill(~keep, 0.0).sum(1) / keep.sum(1).clamp(min=1)
                if len(collected) <= i:
                    collected.append([])
                collected[i].append(pooled.float().cpu().numpy())
    return [np.concatenate(parts) for parts in collected]


def layer_change_table(changes: list[LayerChange]) -> str:
    lines = ["| layer group | weight drift (relative L2) | CKA before/after fine-tuning |", "|---|---|---|"]
    for c in changes:
        lines.append(f"| {c.group} | {c.weight_drift:.4f} | {'n/a' if c.cka is None else f'{c.cka:.3f}'} |")
    return "\n".join(lines)


def plot_layer_changes(changes: list[LayerChange], path) -> None:
    """Weight drift and CKA per layer group, as a PNG."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.5))
    left, right = figure.subplots(1, 2)
    names = [c.group for c in changes]
    left.bar(names, [c.weight_drift for c in changes], color="tab:orange")
    left.set_title("weight drift from the transferred values")
    right.bar(names, [c.cka if c.cka is not None else math.nan for c in changes], color="tab:blue")
    right.set_ylim(0, 1.05)
    right.set_title("CKA of representations, before vs after")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def snapshot(model):
    """A frozen copy of a model (e.g. right after transfer), to compare with after fine-tuning."""
    return copy.deepcopy(model).eval()
