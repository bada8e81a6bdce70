"""
Choosing the fine-tuning's stopping point and strength from the label budget itself, never from the test set.

With a strong source and few target labels, a fixed recipe can leave the model where it started or pull it below the
source: the few labels are noise as often as signal. `fit_within_budget` runs k-fold cross-validation inside the
budget: every fold fine-tunes on the other folds with the full recipe and, at the end of each epoch, scores the
held-out fold for each mix of the fine-tuned weights with the starting (transferred) ones (weight-space ensembling,
WiSE-FT: Wortsman et al. 2022; mix 0 is the source itself, 1 the fine-tuned model). Among the (epoch, mix) pairs
whose held-out score over all folds is within one standard error of the best, the one closest to the source wins
(the smallest mix: Breiman's one-standard-error rule, so noise does not move the model; then the latest epoch, as
a mid-run epoch of the one-cycle schedule is no nearer the source); the final model trains on the whole budget with
the same recipe, stops at that epoch and takes that mix. When the source's own answers are the target's labels,
mix 0 is the source zero-shot, so a budget that cannot show an improvement keeps the source.

The standard error is, by default (`rule="paired_standard_error"`), that of each candidate's per-row difference from
the best candidate on the same held-out rows: two close candidates are right and wrong on mostly the same rows, so a
gain seen row after row is kept where the binomial error of an accuracy (`rule="one_standard_error"`) would call it
noise and keep the source. The paired rule needs a score that returns one value per held-out row
(`evaluation.row_accuracy`, or minus `evaluation.row_losses`). Measured on three Amazon targets
(`benchmarks/sentiment_sources.py`, docs/benchmarks.md), it was never below the binomial rule and up to 0.006 above it.

`rule="source_or_best"` uses the same paired error as a test rather than a pull: the source is kept unless the best
candidate beats it by more than one standard error of their per-row difference, and then the best is taken, not the
candidate nearest the source. `rule="fine_tuned_unless_worse"` pulls the other way: among the candidates within one
paired error of the best, the one farthest from the source (on kitchen it won 1.4 points at 1,000 labels and lost
0.4-0.6 at 50-100; on electronics it lost at every budget). `rule="best"` takes the highest held-out score.
`BudgetSelection.for_rule` re-chooses from one cross-validation with another rule, so rules can be compared on the same
held-out scores.

When the transfer re-initialised the task head (the source answered other labels, or had no classifier: a UCR target
from another set's source, a language model), the starting model is the source's encoder under a random classifier.
Then only the fine-tuned weights are candidates (mix 1: a mix with a random head is no model to keep), and the rules
pull towards the recipe's full run instead of towards the start: among the epochs within one error of the best, the
latest. Pulling towards the start there stopped early or kept a random head's share: on five UCR targets, 3 seeds,
0.623 on average, 0.704 now, 0.713 for the fixed recipe (`benchmarks/selection_new_head.py`, docs/benchmarks.md).
A model trained from scratch starts random everywhere: `random_start=True` (what `compare` and `auto` pass for their
scratch runs) treats it the same way, so scratch's stopping epoch is not pulled towards its random start.
"""

import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from transformers import TrainerCallback

DEFAULT_MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)


def mix_weights(start: dict[str, torch.Tensor], model: torch.nn.Module, mix: float) -> None:
    """Set `model`'s floating-point weights to `start + mix * (current - start)` in place (mix 1 leaves them)."""
    if mix == 1.0:
        return
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in start and tensor.is_floating_point():
                reference = start[name].to(tensor.device, tensor.dtype)
                tensor.copy_(reference + mix * (tensor - reference))


def starting_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of `model`'s floating-point weights (the point a mix moves away from)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


class _MixScorer(TrainerCallback):
    """At each epoch's end, score the held-out rows for every mix, then put the trained weights back."""

    def __init__(self, model, start, heldout, score, mixes, rows_needed: bool = False):
        self.model, self.start, self.heldout, self.score, self.mixes = model, start, heldout, score, mixes
        self.rows_needed = rows_needed
        self.scores: list[list[float]] = []  # [epoch][mix]
        self.row_scores: list[list[np.ndarray]] = []  # [epoch][mix] -> one value per held-out row, when given

    def on_epoch_end(self, args, state, control, **kwargs):
        trained = starting_weights(self.model)
        was_training = self.model.training
        means, per_row = [], []
        for mix in self.mixes:
            mix_weights(self.start, self.model, mix)
            values = np.asarray(self.score(self.model, self.heldout), dtype=float)
            self.model.load_state_dict(trained, strict=False)
            if values.ndim == 1 and len(values) == len(self.heldout):
                per_row.append(values)
            elif values.ndim != 0:
                raise ValueError(
                    f"score returned {values.shape[0] if values.ndim == 1 else values.shape} values for "
                    f"{len(self.heldout)} held-out rows: return one number, or one per row."
                )
            elif self.rows_needed:
                raise ValueError(
                    f"the paired rules {PAIRED_RULES} compare candidates row by row: the score must return one "
                    "value per held-out row (e.g. hf_rnn_transfer.evaluation.row_accuracy), not one number."
                )
            means.append(float(values.mean()))
        self.model.train(was_training)
        self.scores.append(means)
        if per_row:
            self.row_scores.append(per_row)


class _StopAfterEpochs(TrainerCallback):
    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, args, state, control, **kwargs):
        if round(state.epoch) >= self.epochs:
            control.should_training_stop = True


@dataclass
class BudgetSelection:
    """What `fit_within_budget` chose, and the cross-validated scores it chose from."""

    epochs: int
    mix: float
    folds: int
    mixes: list[float]
    scores: list[list[float]] = field(default_factory=list)  # [epoch][mix], mean over folds
    trainings: int = 0
    rule: str = "one_standard_error"
    trainer: object = field(default=None, repr=False, compare=False)  # the final run's (None when mix 0 won)
    rows: int = 0  # held-out rows over all folds (the budget)
    means: np.ndarray | None = field(default=None, repr=False, compare=False)  # the unrounded scores
    row_scores: np.ndarray | None = field(default=None, repr=False, compare=False)  # [epoch, mix, row], if scored
    row_order: np.ndarray | None = field(default=None, repr=False, compare=False)  # the budget row of each `row`
    head_transferred: bool = True  # False: a new head, so mix 1 only and the rules pull towards the full recipe

    def for_rule(self, rule: str) -> "BudgetSelection":
        """The choice another rule makes from the same cross-validation (no training): compare rules on one run.

        Example:

        ```python
        >>> chosen = cross_validate(make_model, budget_rows, args, collator, row_score)
        >>> {rule: (chosen.for_rule(rule).epochs, chosen.for_rule(rule).mix) for rule in SELECTION_RULES}
        ```
        """
        if rule not in SELECTION_RULES:
            raise ValueError(f"rule must be one of {SELECTION_RULES}, got {rule!r}.")
        means = self.means if self.means is not None else np.asarray(self.scores, dtype=float)
        if rule in PAIRED_RULES and self.row_scores is None:
            raise ValueError(
                f"rule={rule!r} needs the per-row held-out scores, which this selection does not have (a score "
                "returning one number, or folds that ended early): use 'one_standard_error' or 'best'."
            )
        source = self.mixes.index(0.0) if 0.0 in self.mixes else None
        epoch, mix = _choose(means, self.rows, rule, self.row_scores, source, toward_start=self.head_transferred)
        return replace(self, epochs=epoch + 1, mix=self.mixes[mix], rule=rule, trainer=None)

    @property
    def best_score(self) -> float:
        """The chosen (epoch, mix)'s held-out score: exact when this selection ran (`scores` are rounded for JSON, and
        a rounded score would break ties with trials scored exactly, such as `auto`'s ensembles)."""
        means = self.means if self.means is not None else self.scores
        return float(means[self.epochs - 1][self.mixes.index(self.mix)])

    def held_out_rows(self) -> np.ndarray | None:
        """The chosen (epoch, mix)'s held-out score of every budget row, in the budget's row order (None without
        per-row scores): what lets `auto` compare two trials row by row."""
        if self.row_scores is None or self.row_order is None:
            return None
        rows = np.empty(len(self.row_order))
        rows[self.row_order] = self.row_scores[self.epochs - 1, self.mixes.index(self.mix)]
        return rows

    @property
    def source_score(self) -> float:
        """The held-out score of mix 0 (the starting model), if it was tried."""
        return self.scores[0][self.mixes.index(0.0)] if 0.0 in self.mixes else float("nan")

    def summary(self) -> str:
        start = (
            f"the starting model {self.source_score:.3f}"
            if self.head_transferred
            else "a random head (new, or from scratch): fine-tuned weights only, the latest epoch within the error"
        )
        return (
            f"chosen by {self.folds}-fold cross-validation inside the budget: stop after epoch {self.epochs}, mix "
            f"{self.mix:g} of the fine-tuned weights (held-out score {self.best_score:.3f}; {start})"
        )

    def to_dict(self) -> dict:
        """The choice and its scores (JSON-ready)."""
        return {
            "epochs": self.epochs,
            "mix": self.mix,
            "folds": self.folds,
            "mixes": list(self.mixes),
            "scores": self.scores,
            "trainings": self.trainings,
            "rule": self.rule,
            "head_transferred": self.head_transferred,
        }


def paired_standard_error(differences: np.ndarray) -> np.ndarray:
    """The standard error of the mean of per-row differences between two candidates scored on the same rows (along the
    last axis, at least 2 rows): how far apart their means may be by noise alone when they agree on most rows."""
    return differences.std(axis=-1, ddof=1) / np.sqrt(differences.shape[-1])


SELECTION_RULES = ("one_standard_error", "paired_standard_error", "source_or_best", "fine_tuned_unless_worse", "best")
# the rules that compare candidates row by row
PAIRED_RULES = ("paired_standard_error", "source_or_best", "fine_tuned_unless_worse")


def _choose(
    means: np.ndarray,
    rows: int,
    rule: str,
    row_scores: np.ndarray | None = None,
    source_index: int | None = None,
    toward_start: bool = True,
) -> tuple[int, int]:
    """The (epoch, mix) index pair to keep from the cross-validated scores `[epoch, mix]`.

    `best`: the highest score (ties, within float error, to the smaller mix, then the later epoch).
    `source_or_best`: the starting model (mix index `source_index`) unless the best candidate beats it by more than
    one standard error of their per-row difference (`row_scores`), then the best: a test against the source, not a
    pull of every choice towards it (without mix 0 among the candidates, `best`).
    `one_standard_error` (Breiman et al.'s rule): among the candidates scoring within one standard error of the best,
    the one closest to the source (smallest mix), then the latest epoch. For scores in [0, 1] (accuracy) the error is
    the binomial one over the held-out rows, sqrt(p (1 - p) / n); otherwise it is 0 and the rule is `best`. A budget
    whose held-out rows cannot tell a change from noise so keeps the source.
    `paired_standard_error`: the same, with each candidate's own error: that of its per-row difference from the best
    candidate on the same rows (`row_scores` `[epoch, mix, row]`), std / sqrt(n).
    `fine_tuned_unless_worse`: the paired errors of `paired_standard_error`, pulled the other way: among the
    candidates within one error of the best, the one farthest from the source (largest mix, then latest epoch), so
    the recipe's full fine-tuning is kept unless the held-out rows show it worse than the best beyond noise.
    `toward_start=False` (a re-initialised head): every pull goes the other way, towards the full recipe (largest mix,
    then latest epoch), and `source_or_best` tests the best against the full recipe's last epoch.
    The pull towards the source is along the mix only, never towards an earlier epoch: under the recipe's one-cycle
    (slanted triangular) schedule an epoch before the last is a model at a high learning rate, not one nearer the
    source, and on 20-100 held-out rows the earliest epoch within the error is mostly noise
    (`benchmarks/selection_kept_head.py`).
    """
    # to the source: the smallest mix, then the latest epoch (the source itself, mix 0, is the same model at every
    # epoch: reported as epoch 1); to the full run: the largest mix, then the latest epoch
    start = lambda em: (-em[1], -em[0] if em[1] == source_index else em[0])  # noqa: E731
    recipe = lambda em: (em[1], em[0])  # noqa: E731
    nearest, farthest = (start, recipe) if toward_start else (recipe, start)
    candidates = [(e, m) for e in range(means.shape[0]) for m in range(means.shape[1])]
    top = float(means.max())
    margin = 1e-9
    best = max((em for em in candidates if means[em] >= top - margin), key=nearest)
    if rule in PAIRED_RULES and row_scores is None:
        raise ValueError(f"rule={rule!r} needs the per-row scores of every candidate.")
    if rule == "source_or_best":
        if toward_start and source_index is None or rows < 2:
            return best
        source = (0, source_index) if toward_start else (means.shape[0] - 1, means.shape[1] - 1)
        difference = row_scores[best] - row_scores[source]
        error = paired_standard_error(difference)
        return best if means[best] - means[source] > error + margin else source
    if rule in ("paired_standard_error", "fine_tuned_unless_worse"):
        differences = row_scores[best][None, None] - row_scores  # [epoch, mix, row]
        errors = paired_standard_error(differences) if rows > 1 else 0 * means
        within = [em for em in candidates if means[em] >= top - margin - errors[em]]
        return max(within, key=farthest if rule == "fine_tuned_unless_worse" else nearest)
    if rule == "one_standard_error" and 0.0 <= float(means.min()) and top <= 1.0:
        margin += float(np.sqrt(top * (1.0 - top) / rows))
    return max((em for em in candidates if means[em] >= top - margin), key=nearest)


def _head_transferred(model: torch.nn.Module) -> bool:
    """Whether the model's task head starts from its source's: False when its transfer re-initialised the head (the
    source answered other labels, or had none). A model built without a transfer counts as its own start."""
    report, get_head = getattr(model, "transfer_report", None), getattr(model, "get_classifier", None)
    if report is None or get_head is None:
        return True
    head = get_head()
    prefix = next((name for name, module in model.named_modules() if module is head), "")
    names = {f"{prefix}.{n}" if prefix else n for n, _ in head.named_parameters()}
    return not names & set(report.by_status("reinitialised"))


def fold_indices(labels: Sequence, folds: int, seed: int) -> list[np.ndarray]:
    """`folds` disjoint index sets covering every row, class-stratified when the labels are class ids."""
    rng = np.random.default_rng(seed)
    labels = list(labels)
    if labels and not isinstance(labels[0], list):
        assigned = [[] for _ in range(folds)]
        offset = 0
        for cls in sorted(set(labels)):
            members = rng.permutation([i for i, label in enumerate(labels) if label == cls])
            for j, index in enumerate(members):
                assigned[(offset + j) % folds].append(index)
            offset += len(members)
        return [np.sort(np.asarray(a, dtype=int)) for a in assigned]
    order = rng.permutation(len(labels))
    return [np.sort(part) for part in np.array_split(order, folds)]


def fit_within_budget(
    make_model: Callable[[], torch.nn.Module],
    train_dataset,
    args,
    collator,
    score: Callable[[torch.nn.Module, object], float],
    folds: int = 4,
    mixes: Sequence[float] = DEFAULT_MIXES,
    label_column: str = "labels",
    rule: str = "paired_standard_error",
    progress: bool = False,
    domain_dataset=None,
    replay_dataset=None,
    random_start: bool | None = None,
    **final_trainer_kwargs,
) -> tuple[torch.nn.Module, BudgetSelection]:
    """
    Fine-tune with the stopping epoch and the mix towards the starting weights chosen by k-fold cross-validation
    inside `train_dataset` (the budget); see the module docstring.

    Args:
        make_model: builds the starting model (e.g. the transferred one) afresh; called `folds + 1` times.
        train_dataset: the budget's encoded rows (with `label_column`).
        args: the recipe (`TransferTrainingArguments`); its epochs are the longest run considered.
        collator: the data collator.
        score: `score(model, dataset)`, higher is better: one number (e.g. accuracy), or one per row (e.g.
            `row_accuracy`, whose mean is the accuracy), which `rule="paired_standard_error"` needs.
        folds: k of the cross-validation (>= 2; each row is held out once).
        mixes: weights of the fine-tuned model in the mix with the starting one, each in [0, 1].
        rule: `paired_standard_error` (default: the candidate closest to the source among those within one
            standard error of the best held-out score, the error of each candidate's per-row difference from the
            best on the same rows; `score` must give one value per row), `one_standard_error` (the same with the
            binomial error of an accuracy: keeps the source more often), `source_or_best` (the source unless the
            best beats it beyond the paired error of their difference, then the best), `fine_tuned_unless_worse`
            (the paired errors pulled the other way: the candidate farthest from the source within one error of the
            best) or `best` (the highest score).
        domain_dataset: unlabelled target rows for domain-adversarial training (every run gets them).
        replay_dataset: the source's labelled rows for source replay (every run gets them; never held out).
        random_start: whether the starting model's head is random, so only the fine-tuned weights are candidates and
            the rules lean to the full recipe: True for a model trained from scratch; None (default) reads it from
            the model's transfer report (a re-initialised head); False: the start is a trained model.
        final_trainer_kwargs: more arguments of the final run's trainer (e.g. `eval_dataset`, `compute_metrics`,
            `processing_class`); it runs with `args` as given (its evaluation, saving and logging), the folds quietly.

    Returns:
        `(model, selection)`: the final model (trained on the whole budget, stopped and mixed as chosen) and a
        `BudgetSelection` with the choice and the cross-validated score of every (epoch, mix).

    Example:

    ```python
    >>> model, chosen = fit_within_budget(lambda: transfer(source, RNNForSequenceClassification(cfg)), budget_rows,
    ...                                   args, collator, score=lambda m, d: accuracy_of(m, d, collator))
    >>> chosen.summary()
    ```
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=folds + 1, desc="selection inside the budget", disable=not progress)
    chosen = cross_validate(
        make_model, train_dataset, args, collator, score, folds, mixes, label_column, rule, domain_dataset,
        on_fold=lambda: bar.update(1), replay_dataset=replay_dataset, random_start=random_start,
    )  # fmt: skip
    model = fit_selected(
        make_model, train_dataset, args, collator, chosen, domain_dataset, replay_dataset, **final_trainer_kwargs
    )
    bar.update(1)
    bar.close()
    return model, chosen


def cross_validate(
    make_model: Callable[[], torch.nn.Module],
    train_dataset,
    args,
    collator,
    score: Callable[[torch.nn.Module, object], float],
    folds: int = 4,
    mixes: Sequence[float] = DEFAULT_MIXES,
    label_column: str = "labels",
    rule: str = "paired_standard_error",
    domain_dataset=None,
    on_fold: Callable[[], None] | None = None,
    replay_dataset=None,
    random_start: bool | None = None,
) -> BudgetSelection:
    """
    The cross-validation half of `fit_within_budget` (same arguments): the held-out score of every (epoch, mix) and
    the choice among them, without the final training (`fit_selected` does it). `on_fold` is called after each fold.
    """
    from .trainer import TransferTrainer

    if folds < 2:
        raise ValueError(f"fit_within_budget needs at least 2 folds, got {folds}.")
    if rule not in SELECTION_RULES:
        raise ValueError(f"rule must be one of {SELECTION_RULES}, got {rule!r}.")
    mixes = sorted({float(m) for m in mixes})
    if not mixes or any(not 0.0 <= m <= 1.0 for m in mixes):
        raise ValueError(f"mixes must be numbers in [0, 1] (0 = the starting model, 1 = fine-tuned), got {mixes}.")
    if len(train_dataset) < 2 * folds:
        raise ValueError(
            f"{len(train_dataset)} training rows cannot be split into {folds} folds of at least 2; use fewer folds "
            "or more labels."
        )
    epochs = int(np.ceil(args.num_train_epochs))
    if epochs < 1 or args.max_steps > 0:
        raise ValueError("selection inside the budget counts epochs: set num_train_epochs >= 1 and no max_steps.")
    quiet = dict(save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no")
    parts = fold_indices(train_dataset[label_column], folds, args.seed)
    first = make_model()
    head_transferred = _head_transferred(first) if random_start is None else not random_start
    if not head_transferred:
        mixes = [1.0]  # a mix with a random head is no model to keep (see the module docstring)
    totals = np.zeros((epochs, len(mixes)))
    fold_rows: list[np.ndarray] = []
    for k, heldout in enumerate(parts):
        train_rows = np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k]))
        model = first if k == 0 else make_model()
        scorer = _MixScorer(
            model, starting_weights(model), train_dataset.select(heldout), score, mixes,
            rows_needed=rule in PAIRED_RULES,
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="budget-fold-") as fold_dir:  # nothing of the folds is kept
            trainer = TransferTrainer(
                model=model,
                args=replace(args, output_dir=fold_dir, **quiet),
                train_dataset=train_dataset.select(train_rows),
                data_collator=collator,
                domain_dataset=domain_dataset,
                replay_dataset=replay_dataset,
            )
            trainer.add_callback(scorer)
            trainer.train()
        scores = np.asarray(scorer.scores[:epochs])
        totals[: len(scores)] += scores * len(heldout)
        if scorer.row_scores:
            fold_rows.append(np.asarray(scorer.row_scores[:epochs]))  # [epoch, mix, held-out row]
        if on_fold is not None:
            on_fold()
    means = totals / len(train_dataset)
    complete = len(fold_rows) == folds and all(r.shape[0] == epochs for r in fold_rows)
    row_scores = np.concatenate(fold_rows, axis=-1) if complete else None
    if rule in PAIRED_RULES and row_scores is None:  # a fold stopped before the last epoch
        warnings.warn("some folds ended early: choosing with the binomial one-standard-error rule", stacklevel=2)
        rule = "one_standard_error"
    selection = BudgetSelection(
        epochs=0,
        mix=0.0,
        folds=folds,
        mixes=mixes,
        scores=means.round(6).tolist(),
        trainings=folds,
        rule=rule,
        rows=len(train_dataset),
        head_transferred=head_transferred,
    )
    selection.means, selection.row_scores = means, row_scores
    selection.row_order = np.concatenate(parts) if row_scores is not None else None
    return selection.for_rule(rule)


def fit_selected(
    make_model,
    train_dataset,
    args,
    collator,
    chosen: BudgetSelection,
    domain_dataset=None,
    replay_dataset=None,
    **final_trainer_kwargs,
) -> torch.nn.Module:
    """The final half of `fit_within_budget`: train `make_model()` on the whole budget, stop at `chosen.epochs` and
    take `chosen.mix` (mix 0 keeps the starting model untrained). Sets `chosen.trainer` and `model.budget_selection`."""
    from .trainer import TransferTrainer

    model = make_model()
    start = starting_weights(model)
    if chosen.mix > 0.0:
        trainer = TransferTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            data_collator=collator,
            domain_dataset=domain_dataset,
            replay_dataset=replay_dataset,
            **final_trainer_kwargs,
        )
        trainer.add_callback(_StopAfterEpochs(chosen.epochs))
        trainer.train()
        mix_weights(start, model, chosen.mix)
        chosen.trainer = trainer
        chosen.trainings = chosen.folds + 1
    else:
        chosen.trainings = chosen.folds  # the starting model needs no final training
    model.eval()
    model.budget_selection = chosen
    return model
