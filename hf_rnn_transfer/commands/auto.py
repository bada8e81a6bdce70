"""`hf-rnn-transfer auto` / `auto_transfer()`: transfer that configures itself.

Given a labelled target (the label budget), candidate sources (folders, Hub repo ids, or a Hub search by tag) and
optionally a test split, it:

1. ranks every usable candidate with a transferability score on the budget's rows (LogME by default; a forward pass
   each, no training) and shortlists the top `shortlist`;
2. validates inside the budget, by k-fold cross-validation (never the test split), in stages: each shortlisted source
   with the recommended recipe; then, for the best source, the other fine-tuning strategies; then fewer transferred
   layers with the best strategy; and the same architecture from scratch as the floor. Every trial also chooses its
   stopping epoch and its mix with the transferred weights (`cross_validate`). With `ensemble=N`, the average of the
   top N ranked sources, each fine-tuned with the recommended recipe, is validated on the same folds
   (`held_out_member_probabilities`) and preferred when within the trial rule's margin of the best; the averages of
   the top k < N are scored on the same predictions; a smaller one that beats the top N by more than one standard
   error of their per-row difference sets it aside and competes with no margin (`ensemble_min_size`). Every trial keeps
   its held-out score row by row, so the trial rule can ask whether a strategy's lead over the recipe is more than
   noise;
3. fine-tunes the winner on the whole budget as chosen, scores it on the test split, and writes a report (markdown
   and JSON) and a model card that say what was tried, what each step cost and why the winner won.

Bad candidates (a missing folder, a source that reads series for a text target or tokens for series, a config that
is not an hf-rnn-transfer model) are skipped with the reason in the report; none usable is an error. A budget too
small to split into the folds is not validated: the top-ranked source is fine-tuned with the recommended recipe, and
the report says so. Ties keep the preferred trial: the ensemble, then the higher-ranked source, then the recommended
recipe.

Example:

```python
>>> from hf_rnn_transfer import auto_transfer
>>> result = auto_transfer(["runs/books", "runs/dvd", "alice/reviews-lm"], raw_target, budget=100)
>>> print(result.to_markdown())
>>> result.model.save_pretrained("runs/auto")
```
"""

import json
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..budget_selection import cross_validate, fit_selected, paired_standard_error
from ..selection import SCORES
from ..transfer_config import TransferConfig
from .compare import CompareArguments
from .finetune import SourceArguments, selection_score, target_score, transferred_model
from .target_data import (
    TargetDataArguments,
    check_source,
    encode_target,
    is_classifier_of,
    load_source_config,
    refuse_unread_options,
)

# name -> what it changes in the recommended recipe (`RecommendedTrainingArguments`)
STRATEGIES = {
    "gradual": {},  # the recommended recipe: gradual unfreezing, discriminative rates, slanted triangular
    "full": {"freezing_strategy": "none", "discriminative_lr": False},
    "l2sp": {"freezing_strategy": "none", "discriminative_lr": False, "l2sp_alpha": 0.01, "l2sp_beta": 0.0},
    "frozen_encoder": {"freezing_strategy": "encoder", "discriminative_lr": False},
}
# name -> which of the source's layers move
LAYER_CHOICES = {"all": {}, "embedding": {"transfer_layers": 0}}
SCRATCH = "scratch"
# the stage of a smaller top-k ensemble chosen on the held-out scores (it competes without the ensemble's margin)
ENSEMBLE_SIZE = "ensemble size"


# how the validated trials compete (`_best`): by their mean held-out scores, and under ensemble_recipe_or_best also row
# by row (each trial keeps its per-row held-out scores)
TRIAL_RULES = ("ensemble_recipe_or_best", "ensemble_or_best", "one_standard_error", "best")


@dataclass
class AutoArguments:
    """Arguments of `hf-rnn-transfer auto` (the data flags and the recipe's flags come beside them)."""

    candidates: list[str] = field(
        default_factory=list, metadata={"help": "Candidate sources: folders written by save_pretrained or Hub ids."}
    )
    hub_search: str | None = field(
        default=None,
        metadata={"help": "Also take every model on the Hub carrying this tag (e.g. hf-rnn-transfer) as a candidate."},
    )
    budget: int | None = field(
        default=None,
        metadata={"help": "Use this many class-balanced labelled rows of the train split (default: all of them)."},
    )
    max_unlabelled: int = field(
        default=400,
        metadata={"help": "Rank the sources on up to this many --domain_file texts too, pseudo-labelled by a linear "
                  "model fitted on the budget (a fixed random sample). Measured on 21 review sources: a better "
                  "ranking, but auto's accuracy no better (docs/benchmarks.md)."},
    )  # fmt: skip
    rank_by: str = field(
        default="logme", metadata={"help": "Score that ranks the candidates.", "choices": list(SCORES)}
    )
    shortlist: int = field(default=3, metadata={"help": "How many top-ranked sources are validated by fine-tuning."})
    folds: int = field(default=3, metadata={"help": "k of the cross-validation inside the budget (>= 2)."})
    strategies: list[str] = field(
        default_factory=lambda: list(STRATEGIES),
        metadata={"help": f"Fine-tuning strategies to try on the best source, from {list(STRATEGIES)}."},
    )
    layer_choices: list[str] = field(
        default_factory=lambda: list(LAYER_CHOICES),
        metadata={"help": f"What moves: {list(LAYER_CHOICES)} (embedding: only the embedding, fresh layers)."},
    )
    trial_rule: str = field(
        default="ensemble_recipe_or_best",
        metadata={
            "help": "How a trial wins: ensemble_recipe_or_best (the default: as ensemble_or_best, after setting aside "
            "every other strategy or layer choice of a source that does not beat that source's recommended recipe by "
            "more than one standard error of their per-row held-out difference), ensemble_or_best (the ensemble when "
            "its held-out score is within one binomial standard error of the best, else the highest-scoring trial), "
            "one_standard_error (the preferred trial - the ensemble, then the higher-ranked source, then the "
            "recommended recipe - within one standard error of the best) or best (the highest score; ties keep the "
            "preferred trial).",
            "choices": list(TRIAL_RULES),
        },
    )
    ensemble: int = field(
        default=5,
        metadata={
            "help": "Also validate the average of the top-N ranked sources, each fine-tuned with the recommended "
            "recipe (N >= 2; 0: single sources only). When it wins, the result is a SourceEnsemble (a folder of "
            "member models, each with its own tokenizer). Under every rule but best it is the preferred trial: a "
            "single source replaces it only when it scores more than one standard error higher.",
        },
    )
    ensemble_min_size: int = field(
        default=2,
        metadata={
            "help": "With --ensemble N, also score the averages of the top k (ensemble_min_size <= k < N) on the same "
            "held-out predictions: no extra training. A smaller average that beats the top N by more than one "
            "standard error of their per-row held-out difference sets it aside and then wins only with the highest "
            "held-out score, with no margin (N: the top N only).",
        },
    )
    try_scratch: bool = field(
        default=True, metadata={"help": "Also validate the architecture from scratch; it wins if transfer cannot."}
    )
    scratch_epochs: float | None = field(
        default=None,
        metadata={
            "help": "Longest run of the scratch floor (default: twice the recipe's epochs: random weights need "
            "longer); its stopping epoch is chosen inside the budget like every trial's."
        },
    )
    scratch_learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate of the scratch floor (default: the recipe's)."}
    )
    report: str | None = field(default=None, metadata={"help": "Report path (default: OUTPUT_DIR/auto_report.md)."})
    endpoint: str | None = field(default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT or offline Hub)."})
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory."})
    push_to: str | None = field(default=None, metadata={"help": "Push the chosen model to this repo id."})

    def __post_init__(self):
        for name in self.strategies:
            if name not in STRATEGIES:
                raise ValueError(f"--strategies: unknown {name!r}; choose from {list(STRATEGIES)}.")
        for name in self.layer_choices:
            if name not in LAYER_CHOICES:
                raise ValueError(f"--layer_choices: unknown {name!r}; choose from {list(LAYER_CHOICES)}.")
        if not self.strategies or not self.layer_choices:
            raise ValueError("auto needs at least one strategy and one layer choice.")
        if self.trial_rule not in TRIAL_RULES:
            raise ValueError(f"--trial_rule must be one of {TRIAL_RULES}, got {self.trial_rule!r}.")
        if self.shortlist < 1:
            raise ValueError(f"--shortlist must be at least 1, got {self.shortlist}.")
        if self.folds < 2:
            raise ValueError(f"--folds must be at least 2 (cross-validation), got {self.folds}.")
        if self.ensemble == 1 or self.ensemble < 0:
            raise ValueError(f"--ensemble must be 0 (off) or at least 2 members, got {self.ensemble}.")
        if self.ensemble_min_size < 2 or (self.ensemble and self.ensemble_min_size > self.ensemble):
            raise ValueError(
                f"--ensemble_min_size must be at least 2 and at most --ensemble ({self.ensemble}), got "
                f"{self.ensemble_min_size}."
            )
        if self.scratch_epochs is not None and self.scratch_epochs < 1:
            raise ValueError(f"--scratch_epochs must be at least 1, got {self.scratch_epochs}.")
        if self.scratch_learning_rate is not None and not self.scratch_learning_rate > 0:
            raise ValueError(f"--scratch_learning_rate must be positive, got {self.scratch_learning_rate}.")
        if self.budget is not None and self.budget < 2:
            raise ValueError(f"--budget must be at least 2 labelled rows, got {self.budget}.")


@dataclass
class Trial:
    """One validated configuration: a source (or scratch), what moved, the strategy, and its cross-validated score."""

    stage: str
    source: str
    layers: str
    strategy: str
    score: float
    epochs: int
    mix: float
    seconds: float
    members: list[str] = field(default_factory=list)  # an ensemble's sources, best-ranked first
    held_out: np.ndarray | None = field(default=None, repr=False)  # per budget row, in its order (None: not kept)

    def describe(self) -> str:
        if self.members:
            return f"the average of {len(self.members)} sources fine-tuned alike ({', '.join(self.members)})"
        if self.source == SCRATCH:
            return "the same architecture from scratch"
        return f"{self.source} ({self.layers} layers, {self.strategy})"


@dataclass
class AutoTransferResult:
    """What `auto_transfer` did: the ranking, the trials, the choice and why, the final model and its test score."""

    model: object
    tokenizer: object
    ranking: object
    skipped: dict[str, str]
    trials: list[Trial]
    chosen: Trial
    reason: str
    rows: int
    metric: str
    test_score: float | None = None
    seconds: dict = field(default_factory=dict)
    fallback: str | None = None
    trainer: object = field(default=None, repr=False)
    heads: dict[str, str] = field(default_factory=dict)  # sources answering the target's label names: kept or not
    ensemble_sizes: dict[int, float] = field(default_factory=dict)  # top-k average -> held-out score (same folds)

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "metric": self.metric,
            "skipped": self.skipped,
            "ranking": self.ranking.to_dict() if self.ranking is not None else None,
            "trials": [_trial_dict(t) for t in self.trials],
            "chosen": _trial_dict(self.chosen),
            "reason": self.reason,
            "fallback": self.fallback,
            "heads": self.heads,
            "ensemble_sizes": self.ensemble_sizes,
            "test_score": self.test_score,
            "seconds": self.seconds,
        }

    def to_markdown(self) -> str:
        lines = ["# Automated transfer", ""]
        lines.append(f"Target: {self.rows} labelled rows (the budget); every choice below was made on them alone.")
        if self.skipped:
            lines += ["", "## Skipped candidates", ""]
            lines += [f"- `{name}`: {why}" for name, why in self.skipped.items()]
        if self.ranking is not None:
            lines += ["", f"## 1. Ranking ({self.seconds.get('ranking', 0):.1f} s)", "", self.ranking.to_markdown()]
        if self.heads:
            lines += ["", "## Classifier heads", ""]
            lines.append("Sources whose labels carry the target's names: their head is kept only if its zero-shot "
                         "answers beat the majority class by more than one standard error.")  # fmt: skip
            lines.append("")
            lines += [f"- `{name}`: {why}" for name, why in self.heads.items()]
        if self.fallback:
            lines += ["", "## 2. Validation", "", self.fallback]
        else:
            lines += ["", f"## 2. Validation inside the budget ({self.seconds.get('validation', 0):.1f} s)", ""]
            lines.append(f"| stage | source | layers | strategy | held-out {self.metric} | epochs | mix | seconds |")
            lines.append("|---|---|---|---|---|---|---|---|")
            for t in self.trials:
                mark = " **(chosen)**" if t is self.chosen else ""
                lines.append(
                    f"| {t.stage} | {t.source}{mark} | {t.layers} | {t.strategy} | {t.score:.4f} | {t.epochs} | "
                    f"{t.mix:g} | {t.seconds:.1f} |"
                )
        lines += ["", "## 3. Choice", "", self.reason]
        if self.test_score is not None:
            lines += ["", f"Test {self.metric} of the chosen model: **{self.test_score:.4f}**."]
        total = sum(self.seconds.values())
        costs = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        lines += ["", f"Time: {total:.1f} s ({costs})."]
        return "\n".join(lines) + "\n"

    def comparison(self) -> dict:
        """The trials as a model card's comparison table."""
        return {
            "summary": self.reason,
            "header": ["stage", "source", "layers", "strategy", f"held-out {self.metric}", "seconds"],
            "rows": [
                [t.stage, t.source, t.layers, t.strategy, f"{t.score:.4f}", f"{t.seconds:.1f}"] for t in self.trials
            ],
        }


def _trial_dict(trial: Trial) -> dict:
    """A trial for the JSON report (without its per-row held-out scores)."""
    return {k: v for k, v in asdict(trial).items() if k != "held_out"}


def hub_candidates(tag: str, endpoint: str | None, token) -> list[str]:
    """Repo ids of the Hub's models carrying `tag` (through `HfApi.list_models`)."""
    from huggingface_hub import HfApi

    return [m.id for m in HfApi(endpoint=endpoint, token=token).list_models(filter=tag)]


def usable_candidates(candidates, target_is_text: bool, token) -> tuple[dict, dict[str, str]]:
    """`{name: (config, tokenizer)}` for the candidates that can serve the target, and `{name: why}` for the rest."""
    usable, skipped = {}, {}
    for name in dict.fromkeys(candidates):  # a candidate named twice is scored once
        try:
            check_source(name)
            config, tokenizer = load_source_config(name, None, token)
        except (OSError, ValueError) as err:
            skipped[name] = f"cannot be read: {err}"
            continue
        if config.is_token_input != target_is_text:
            reads, has = ("tokens", "series") if config.is_token_input else ("series", "texts")
            skipped[name] = f"wrong input kind: it reads {reads}, the target holds {has}"
            continue
        usable[name] = (config, tokenizer)
    return usable, skipped


def budget_rows(raw, budget: int | None, label_column: str):
    """The first `budget` rows of a seeded class-balanced order of the train split (all rows without a budget)."""
    from ..evaluation import balanced_budget_indices

    train = raw["train"]
    if budget is None or budget >= len(train):
        return raw
    if label_column not in train.column_names:
        raise ValueError(f"missing label column {label_column!r}; the dataset has {train.column_names}.")
    labels = train[label_column]
    ids = {v: i for i, v in enumerate(sorted(set(labels), key=str))}
    indices = balanced_budget_indices([ids[v] for v in labels], [budget], 0)[budget]
    out = type(raw)(dict(raw))
    out["train"] = train.select(indices)
    return out


def auto_transfer(
    candidates: list[str],
    raw,
    data_args: TargetDataArguments | None = None,
    auto_args: AutoArguments | None = None,
    training_args=None,
    token=None,
    budget: int | None = None,
    unlabelled_texts: list[str] | None = None,
) -> AutoTransferResult:
    """
    Rank the candidates on the target's labels, validate the shortlist and the strategies inside the budget, and
    fine-tune the winner (see the module docstring).

    Args:
        candidates: folders or Hub repo ids (`auto_args.hub_search` adds the Hub's models with a tag).
        raw: the target `DatasetDict`: a `train` split (the labelled budget, texts or series) and optionally `test`.
        data_args: its columns (`TargetDataArguments`; default text/label).
        auto_args: the search (`AutoArguments`); `budget` overrides its budget.
        training_args: the base recipe (`RecommendedTrainingArguments`; default: the recommended recipe, seed 0, no
            checkpoints written).
        token: Hub token for private candidates (never stored).
        unlabelled_texts: unlabelled target texts (never its test data) the ranking also scores the candidates on,
            labelled by a linear model fitted on the budget (`rank_sources`); text targets only.

    Returns:
        An `AutoTransferResult` (`model`, `to_markdown()`, `to_dict()`).
    """
    from datasets import DatasetDict
    from transformers import set_seed
    from transformers.utils import logging

    from ..selection import rank_sources
    from ..trainer import RecommendedTrainingArguments, TransferTrainer

    data_args = data_args or TargetDataArguments()
    auto_args = auto_args or AutoArguments()
    if training_args is None:  # the recommended recipe, nothing left on disk (the caller saves `result.model`)
        import tempfile

        with tempfile.TemporaryDirectory(prefix="auto-") as folder:
            recipe = RecommendedTrainingArguments.for_experiment(folder, disable_tqdm=False)
            return auto_transfer(candidates, raw, data_args, auto_args, recipe, token, budget, unlabelled_texts)
    budget = budget if budget is not None else auto_args.budget
    if not isinstance(raw, DatasetDict) or "train" not in raw:
        raise ValueError("auto_transfer needs a DatasetDict with a 'train' split (the labelled budget).")
    if data_args.target_text_column:
        raise ValueError("auto chooses among sources for classification targets; for text outputs use finetune.")
    if training_args.select_folds:
        training_args = replace(training_args, select_folds=0)  # auto does its own selection
    clock = {}
    raw = budget_rows(raw, budget, data_args.label_column)
    train = raw["train"]
    text = data_args.text_column in train.column_names
    if not text and data_args.values_column not in train.column_names:
        raise ValueError(
            f"the target has neither a {data_args.text_column!r} (texts) nor a {data_args.values_column!r} (series) "
            f"column; it has {train.column_names}."
        )
    names = list(candidates) + (
        hub_candidates(auto_args.hub_search, auto_args.endpoint, token) if auto_args.hub_search else []
    )
    if not names:
        raise ValueError("auto needs candidate sources: --candidates and/or --hub_search.")
    usable, skipped = usable_candidates(names, text, token)
    for name, why in skipped.items():
        warnings.warn(f"auto: skipping candidate {name}: {why}", stacklevel=2)
    if not usable:
        raise ValueError("no usable candidate: " + "; ".join(f"{n}: {w}" for n, w in skipped.items()))

    start = time.perf_counter()
    progress = not training_args.disable_tqdm
    rows_for_ranking = train
    if not text:
        from ..data import prepare_series

        rows_for_ranking, _ = prepare_series(train, data_args.values_column, data_args.label_column,
                                             impute=data_args.impute)  # fmt: skip
    ranking = rank_sources(
        list(usable), rows_for_ranking, text_column=data_args.text_column,
        label_column=data_args.label_column if text else "labels", max_examples=None, token=token,
        tokenizers={name: tokenizer for name, (_, tokenizer) in usable.items() if tokenizer is not None},
        max_length=data_args.max_length, by=auto_args.rank_by, progress=progress,
        unlabelled_texts=unlabelled_texts, max_unlabelled=auto_args.max_unlabelled,
    )  # fmt: skip
    clock["ranking"] = time.perf_counter() - start
    order = ranking.ranked() + [n for n in usable if n not in ranking.ranked()]  # unscorable ones last
    targets = {}

    def target_for(name):
        if name not in targets:
            config, tokenizer = usable[name]
            targets[name] = (encode_target(raw, config, tokenizer, data_args), tokenizer)
        return targets[name]

    heads: dict[str, str] = {}  # name -> why its classifier head was kept or re-initialised (the report's)
    kept: dict[str, bool] = {}

    def head_kept(name) -> bool:
        """Keep a source's head when it answers the target's labels by name and, on the budget, by meaning."""
        target, _ = target_for(name)
        if not is_classifier_of(usable[name][0], target.labels.id2label):
            return False
        if name not in kept:
            from ..evaluation import answers_mean_the_labels

            with_head = transferred_model(SourceArguments(source=name, transfer_head=True), target, token)
            # on the training device: an evaluation on another device would reset Accelerate's shared state under the
            # recipe's (on a GPU machine, the fallback's training then found its model on the CPU, its batches on CUDA)
            with_head.to(training_args.device)
            same, zero_shot, majority = answers_mean_the_labels(with_head, target.splits["train"], target.collator)
            verdict = "kept" if same else "re-initialised: the label names match, not their meaning"
            heads[name] = f"zero-shot {zero_shot:.3f} on the budget, majority class {majority:.3f}: head {verdict}"
            kept[name] = same
        return kept[name]

    def builder(name, layers, strategy):
        target, _ = target_for(name)
        transfer = TransferConfig(**LAYER_CHOICES[layers], transfer_head=head_kept(name))
        source_args = SourceArguments(source=name, **{k: v for k, v in asdict(transfer).items() if v is not None})

        def make_model():
            set_seed(training_args.seed)
            return transferred_model(source_args, target, token)

        return make_model

    def scratch_builder(name):
        target, _ = target_for(name)
        template = transferred_model(SourceArguments(source=name), target, token)

        def make_model():
            from ..configuration_rnn import RNNConfig

            set_seed(training_args.seed)
            return type(template)(RNNConfig.from_dict(template.config.to_dict()))

        return make_model

    trials: list[Trial] = []
    ensemble_sizes: dict[int, np.ndarray] = {}  # size -> the top-k average's held-out correctness, per row
    folds = auto_args.folds
    first = order[0]
    target, _ = target_for(first)
    can_validate = len(target.splits["train"]) >= 2 * folds
    fallback = None
    start = time.perf_counter()
    if not can_validate:
        fallback = (
            f"{len(target.splits['train'])} labelled rows cannot be split into {folds} folds of at least 2 rows: "
            f"nothing was validated. Fallback: the top-ranked source, {first}, with the recommended recipe "
            "(all layers, gradual unfreezing) for the recipe's epochs."
        )
        warnings.warn("auto: " + fallback, stacklevel=2)
        chosen = Trial("fallback", first, "all", "gradual", float("nan"), int(np.ceil(training_args.num_train_epochs)),
                       1.0, 0.0)  # fmt: skip
        make_final, final_args = builder(first, "all", "gradual"), training_args
    else:
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # the trials train quietly; the bar below shows progress and the ETA
        members = _ensemble_members(ranking, auto_args.ensemble)
        plan = _plan_size(auto_args, len(order)) + len(members)
        from tqdm.auto import tqdm

        bar = tqdm(total=plan * folds, desc="auto: validating inside the budget", disable=not progress)
        selections = {}

        def validate(stage, name, layers, strategy):
            target, _ = target_for(name)
            args = _strategy_arguments(training_args, strategy)
            t0 = time.perf_counter()
            chosen = cross_validate(builder(name, layers, strategy), target.splits["train"], args, target.collator,
                                    selection_score(target), folds, training_args.select_mixes,
                                    rule=training_args.select_rule, on_fold=lambda: bar.update(1))  # fmt: skip
            trial = Trial(stage, name, layers, strategy, chosen.best_score, chosen.epochs, chosen.mix,
                          time.perf_counter() - t0, held_out=chosen.held_out_rows())  # fmt: skip
            trials.append(trial)
            selections[id(trial)] = chosen

        for name in order[: auto_args.shortlist]:
            validate("source", name, "all", auto_args.strategies[0])
        rows = len(target.splits["train"])
        if members:
            from ..ensemble import held_out_member_probabilities

            t0 = time.perf_counter()
            strategy = auto_args.strategies[0]
            probabilities, labels = held_out_member_probabilities(
                [builder(name, "all", strategy) for name in members],
                [target_for(name)[0].splits["train"] for name in members],
                _strategy_arguments(training_args, strategy), [target_for(name)[0].collator for name in members],
                folds, on_fold=lambda: bar.update(1),
            )  # fmt: skip
            t1 = time.perf_counter()
            size, ensemble_sizes = _ensemble_size(probabilities, labels, auto_args.ensemble_min_size)
            # the folds' trainings are the top N's cost; a smaller ensemble reuses them and costs only its scoring
            seconds = {"ensemble": t1 - t0, ENSEMBLE_SIZE: time.perf_counter() - t1}
            for stage, k in [("ensemble", len(members))] + ([(ENSEMBLE_SIZE, size)] if size < len(members) else []):
                trials.append(Trial(stage, f"ensemble of {k}", "all", strategy, float(ensemble_sizes[k].mean()),
                                    int(np.ceil(training_args.num_train_epochs)), 1.0, seconds[stage],
                                    members=members[:k], held_out=ensemble_sizes[k]))  # fmt: skip
        best = _best([t for t in trials if not t.members], rows, auto_args.trial_rule)  # the source to tune
        for strategy in auto_args.strategies[1:]:
            validate("strategy", best.source, "all", strategy)
        best = _best([t for t in trials if not t.members], rows, auto_args.trial_rule)
        for layers in auto_args.layer_choices:
            if layers != "all":
                validate("layers", best.source, layers, best.strategy)
        if auto_args.try_scratch:
            t0 = time.perf_counter()
            scratch_args = scratch_recipe(auto_args, training_args)
            chosen_scratch = cross_validate(scratch_builder(first), target.splits["train"], scratch_args,
                                            target.collator, selection_score(target), folds, [1.0],
                                            rule=training_args.select_rule, on_fold=lambda: bar.update(1),
                                            random_start=True)  # fmt: skip
            trials.append(Trial("floor", SCRATCH, "none", "scratch", chosen_scratch.best_score, chosen_scratch.epochs,
                                1.0, time.perf_counter() - t0, held_out=chosen_scratch.held_out_rows()))  # fmt: skip
            selections[id(trials[-1])] = chosen_scratch
        bar.close()
        logging.set_verbosity(verbosity)
        chosen = _best(trials, rows, auto_args.trial_rule)
        if chosen.source == SCRATCH:
            make_final, final_args = scratch_builder(first), scratch_args
        else:  # a source, or an ensemble's members (each trains with the chosen strategy's arguments)
            make_final = builder(chosen.source, chosen.layers, chosen.strategy) if not chosen.members else None
            final_args = _strategy_arguments(training_args, chosen.strategy)
        selection = selections.get(id(chosen))  # none for an ensemble
    clock["validation"] = time.perf_counter() - start
    sizes = {k: float(v.mean()) for k, v in ensemble_sizes.items()}
    size_note = _size_note(ensemble_sizes, len(train)) if len(ensemble_sizes) > 1 else ""
    if chosen.members:
        return _final_ensemble(chosen, [target_for(name) for name in chosen.members], builder, final_args, clock,
                               dict(ranking=ranking, skipped=skipped, trials=trials, rows=len(train), heads=heads,
                                    ensemble_sizes=sizes,
                                    reason=_reason(chosen, trials, auto_args.folds, "accuracy", len(train),
                                                   auto_args.trial_rule) + size_note))  # fmt: skip
    final_target, tokenizer = target_for(first if chosen.source == SCRATCH else chosen.source)

    start = time.perf_counter()
    if fallback:
        model = make_final()
        trainer = TransferTrainer(model, final_args, train_dataset=final_target.splits["train"],
                                  data_collator=final_target.collator)  # fmt: skip
        trainer.train()
    else:
        model = fit_selected(make_final, final_target.splits["train"], final_args, final_target.collator, selection)
        trainer = selection.trainer or TransferTrainer(model, final_args, data_collator=final_target.collator)
    clock["final training"] = time.perf_counter() - start
    metric = "accuracy"
    test_score = None
    if "test" in final_target.splits:
        test_score = float(target_score(final_target)(model, final_target.splits["test"]))
    reason = fallback or _reason(chosen, trials, auto_args.folds, metric, len(train), auto_args.trial_rule) + size_note
    return AutoTransferResult(
        model=model, tokenizer=tokenizer, ranking=ranking, skipped=skipped, trials=trials, chosen=chosen,
        reason=reason, rows=len(train), metric=metric, test_score=test_score, seconds=clock, fallback=fallback,
        trainer=trainer, heads=heads, ensemble_sizes=sizes,
    )  # fmt: skip


def _ensemble_members(ranking, size: int) -> list[str]:
    """The top `size` scored candidates (none when fewer than two could be ranked, or `size` is 0)."""
    members = ranking.ranked()[:size] if size else []
    return members if len(members) >= 2 else []


def _final_ensemble(chosen: Trial, targets: list, builder, args, clock: dict, report: dict) -> AutoTransferResult:
    """Fine-tune every member of the chosen ensemble on the whole budget and score their average on the test split."""
    from ..ensemble import SourceEnsemble
    from ..evaluation import class_probabilities
    from ..trainer import TransferTrainer

    start = time.perf_counter()
    models, trainer = [], None
    for name, (target, _) in zip(chosen.members, targets):
        model = builder(name, chosen.layers, chosen.strategy)()
        trainer = TransferTrainer(model, args, train_dataset=target.splits["train"], data_collator=target.collator)
        trainer.train()
        models.append(model.eval())
    ensemble = SourceEnsemble(models, [tokenizer for _, tokenizer in targets], chosen.members)
    clock["final training"] = time.perf_counter() - start
    test_score = None
    if all("test" in target.splits for target, _ in targets):
        parts = [class_probabilities(m, t.splits["test"], t.collator) for m, (t, _) in zip(models, targets)]
        test_score = float((ensemble.average([p for p, _ in parts]).argmax(-1) == parts[0][1]).mean())
    return AutoTransferResult(model=ensemble, tokenizer=None, chosen=chosen, metric="accuracy", test_score=test_score,
                              seconds=clock, trainer=trainer, **report)  # fmt: skip


def _ensemble_size(probabilities: np.ndarray, labels: np.ndarray, smallest: int) -> tuple[int, dict[int, np.ndarray]]:
    """The ensemble's size from the members' held-out probabilities (`[members, rows, classes]`, best-ranked first):
    the top N unless the average of a smaller top k (k >= `smallest`) beats it by more than one standard error of their
    per-row difference; then the highest-scoring such k (ties: the larger). Returns it and every size's per-row
    correctness. The sizes share members, so they agree on most rows and the paired error is the fair noise here."""
    from ..ensemble import ensemble_correctness

    full = len(probabilities)
    sizes = {k: ensemble_correctness(probabilities, labels, k) for k in range(min(smallest, full), full + 1)}
    beaten = [
        k for k in sizes if k < full and sizes[k].mean() > sizes[full].mean() + _row_margin(sizes[k] - sizes[full])
    ]
    return (max(beaten, key=lambda k: (sizes[k].mean(), k)) if beaten else full), sizes


def _size_note(sizes: dict[int, np.ndarray], rows: int) -> str:
    """The report's sentence on the ensemble sizes scored on the same held-out predictions."""
    scores = " / ".join(f"{sizes[k].mean():.4f}" for k in sorted(sizes))
    return (
        f" The averages of the top {' / '.join(str(k) for k in sorted(sizes))} sources scored {scores} held out on "
        f"the same predictions (no extra training): a smaller average is tried when it beats the top {max(sizes)} by "
        f"more than one standard error of their per-row difference over the {rows} rows, and then wins only with the "
        "highest held-out score (chosen on these scores, it claims no margin)."
    )


def _row_margin(lead: np.ndarray) -> float:
    """One standard error of a per-row lead (float error when there is one row)."""
    return float(paired_standard_error(lead)) + 1e-9 if len(lead) > 1 else 1e-9


def _plan_size(args: AutoArguments, candidates: int) -> int:
    return (
        min(args.shortlist, candidates)
        + len(args.strategies)
        - 1
        + len([c for c in args.layer_choices if c != "all"])
        + int(args.try_scratch)
    )


def scratch_recipe(auto_args: AutoArguments, training_args):
    """The scratch floor's recipe: compare's scratch recipe (no freezing, no discriminative rates, a linear schedule
    after a 10% warm-up) for `scratch_epochs` (default twice the recipe's) at `scratch_learning_rate` (default the
    recipe's). Compare's shorter default (10 epochs at 3e-3) left the floor under-trained: on
    GunPointMaleVersusFemale it scored 0.737 on test where 40 epochs at the recipe's 5e-3 reach 0.98-1.0."""
    epochs = auto_args.scratch_epochs or 2 * training_args.num_train_epochs
    rate = auto_args.scratch_learning_rate or training_args.learning_rate
    return CompareArguments(scratch_epochs=epochs, scratch_learning_rate=rate).scratch_training_arguments(training_args)


def _strategy_arguments(training_args, strategy: str):
    return replace(training_args, **STRATEGIES[strategy])


def _margin(score: float, rows: int, rule: str) -> float:
    """How far below the best a trial may score and still count as as good: one binomial standard error of an
    accuracy over the held-out rows under `one_standard_error`, `ensemble_or_best` and `ensemble_recipe_or_best` (the
    last two grant it to the ensemble only; float error otherwise)."""
    if rule in ("one_standard_error", "ensemble_or_best", "ensemble_recipe_or_best") and 0.0 <= score <= 1.0:
        return float(np.sqrt(score * (1.0 - score) / rows)) + 1e-9
    return 1e-9


def _paired_margin(better: Trial, other: Trial, rows: int) -> float:
    """One standard error of `better`'s per-row lead over `other` on the same held-out rows (the binomial error of
    `better`'s accuracy when either kept no per-row scores)."""
    if better.held_out is None or other.held_out is None or len(better.held_out) != len(other.held_out):
        return _margin(better.score, rows, "one_standard_error")
    return _row_margin(np.asarray(better.held_out) - np.asarray(other.held_out))


def _recipe_of(trial: Trial, trials: list[Trial]) -> Trial | None:
    """The recommended-recipe trial of `trial`'s source (its shortlist run), when `trial` is a variant of it."""
    if trial.members or trial.stage not in ("strategy", "layers"):
        return None
    return next((t for t in trials if t.stage == "source" and t.source == trial.source), None)


def _set_aside(trial: Trial, trials: list[Trial], rows: int) -> Trial | None:
    """Under `ensemble_recipe_or_best`: the recipe trial that `trial` (a variant of its source) fails to beat by more
    than one paired standard error, else None."""
    recipe = _recipe_of(trial, trials)
    if recipe is not None and trial.score <= recipe.score + _paired_margin(trial, recipe, rows):
        return recipe
    return None


def _best(trials: list[Trial], rows: int, rule: str = "best") -> Trial:
    """The first trial in order of preference (the ensemble, then the higher-ranked source, then the recommended recipe)
    whose held-out score is within the rule's margin of the highest; under `best` that is the highest, ties keeping
    the preferred trial. `ensemble_or_best` gives only the ensemble the one-standard-error margin: among single
    sources the ranking's order is no evidence (on the UCR pool its Kendall tau is 0.19), so the highest score wins.
    `ensemble_recipe_or_best` first sets aside every variant of a source (another strategy, fewer layers) that does
    not beat the source's recommended recipe by more than one standard error of their per-row difference, then chooses
    as `ensemble_or_best`: the variants of one source are near-copies, so most of their gaps on a few dozen held-out
    rows are noise, and taking the highest of several noisy scores picks the noise (the winner's curse). Under every
    rule, a smaller ensemble (`ENSEMBLE_SIZE`, chosen on the held-out scores) sets the top N aside and has no margin:
    it wins only with the highest score."""
    if rule == "ensemble_recipe_or_best":
        return _best([t for t in trials if not _set_aside(t, trials, rows)], rows, "ensemble_or_best")
    if any(t.stage == ENSEMBLE_SIZE for t in trials):  # the top N lost to a smaller top k row by row
        trials = [t for t in trials if t.stage != "ensemble"]
    top = max(t.score for t in trials)
    preferred = [t for t in trials if t.members] + [t for t in trials if not t.members]

    def margin(t: Trial) -> float:  # a size chosen on these held-out scores spent its selection on them already
        return _margin(top, rows, rule) if t.stage != ENSEMBLE_SIZE else 1e-9

    if rule == "ensemble_or_best":
        return next((t for t in preferred if t.members and t.score >= top - margin(t)), None) or _best(trials, rows)
    return next(t for t in preferred if t.score >= top - margin(t))


def _reason(chosen: Trial, trials: list[Trial], folds: int, metric: str, rows: int, rule: str) -> str:
    others = [t for t in trials if t is not chosen]
    tied = [t for t in others if abs(t.score - chosen.score) <= 1e-9]
    how = (
        f"each member fine-tuned for {chosen.epochs} epochs, their class probabilities averaged"
        if chosen.members
        else f"stop after epoch {chosen.epochs}, mix {chosen.mix:g} of the fine-tuned weights"
    )
    text = (
        f"Chosen by the {rule} trial rule: {chosen.describe()}, held-out {metric} {chosen.score:.4f} in {folds}-fold "
        f"cross-validation inside the budget ({how})."
    )
    higher = [t for t in others if t.score > chosen.score + 1e-9]
    top = max(higher, key=lambda t: t.score) if higher else None
    recipe = _set_aside(top, trials, rows) if top is not None and rule == "ensemble_recipe_or_best" else None
    if recipe is not None:
        margin = _paired_margin(top, recipe, rows)
        text += (
            f" {top.describe()} scored {top.score:.4f}, but its lead over its source's recommended recipe "
            f"({recipe.score:.4f}) is within one standard error of their per-row difference ({margin:.3f} over {rows} "
            "held-out rows): a variant of a source replaces the recipe only beyond that noise, so it was set aside."
        )
    elif higher:
        kept = (
            f"the ensemble is kept (only the ensemble is preferred under the {rule} rule)"
            if rule in ("ensemble_or_best", "ensemble_recipe_or_best")
            else "the preferred trial (the ensemble, then the higher-ranked source, then the recommended recipe) is "
            "kept"
        )
        margin = _margin(top.score, rows, rule)
        text += (
            f" {top.describe()} scored {top.score:.4f}, within one standard error ({margin:.3f} over {rows} held-out "
            f"rows) of it: the folds cannot tell that gap from noise, so {kept}."
        )
    elif others:
        runner = max(others, key=lambda t: t.score)
        text += f" The highest score; next best: {runner.describe()} at {runner.score:.4f}."
    smaller = next((t for t in others if t.stage == ENSEMBLE_SIZE), None)
    ensemble = next((t for t in others if t.stage == "ensemble"), None)
    if smaller is not None and not chosen.members:
        text += (
            f" {smaller.describe()} scored {smaller.score:.4f}: its size was chosen on these held-out scores, so it "
            "has no margin and the highest score wins."
        )
    elif ensemble is not None and not chosen.members and rule in ("ensemble_or_best", "ensemble_recipe_or_best"):
        margin = _margin(chosen.score, rows, rule)
        text += (
            f" {ensemble.describe()} scored {ensemble.score:.4f}: the ensemble is kept unless a single trial leads it "
            f"by more than one standard error ({margin:.3f} over {rows} held-out rows), and this one leads by "
            f"{chosen.score - ensemble.score:.4f}."
        )
    if tied:
        text += (
            " Tied with " + ", ".join(t.describe() for t in tied) + ": the tie keeps the preferred trial (the "
            "ensemble, then the higher-ranked source, then the recommended recipe)."
        )
    floor = next((t for t in trials if t.source == SCRATCH), None)
    if floor is not None and chosen.source == SCRATCH:
        text += " No source beat training from scratch inside the budget: transfer would have hurt here."
    elif floor is not None:
        text += f" Scratch scored {floor.score:.4f}: transfer gains {chosen.score - floor.score:+.4f} held out."
    return text


def write_auto_report(result: AutoTransferResult, path: str | Path) -> str:
    """The markdown report at `path` and its JSON beside it (same name, .json); returns the markdown."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = result.to_markdown()
    path.write_text(text)
    path.with_suffix(".json").write_text(json.dumps(result.to_dict(), indent=1, default=float))
    return text


def run_auto(auto_args: AutoArguments, data_args: TargetDataArguments, training_args) -> AutoTransferResult:
    """`hf-rnn-transfer auto`: read the target, `auto_transfer` in a Hub session, save the chosen model with its
    tokenizer and card, write the report (and push when asked)."""
    from ..hub import build_model_card, resolve_hub
    from .target_data import read_target, read_unlabelled_texts

    refuse_unread_options("auto", data_args, training_args, reads=("--domain_file",))
    with training_args.main_process_first(desc="reading the target"):  # the first process writes the datasets cache
        raw = read_target(data_args)
    unlabelled = read_unlabelled_texts(data_args)
    namespace = (auto_args.push_to or "local/x").split("/")[0]
    with resolve_hub(auto_args.endpoint, None, auto_args.hub_root, namespace=namespace) as (endpoint, token):
        if auto_args.hub_search and auto_args.endpoint is None:
            auto_args = replace(auto_args, endpoint=endpoint)
        result = auto_transfer(auto_args.candidates, raw, data_args, auto_args, training_args, token,
                               unlabelled_texts=unlabelled)  # fmt: skip
        if not result.trainer.is_world_process_zero():
            return result
        output = Path(training_args.output_dir)
        result.model.save_pretrained(output)
        if result.tokenizer is not None:
            result.tokenizer.save_pretrained(output)
        report = auto_args.report or output / "auto_report.md"
        print(write_auto_report(result, report))
        card = _card(result, auto_args.push_to or f"local/{output.name}", data_args)
        (output / "README.md").write_text(str(build_model_card(result.model, card, result.tokenizer is not None)))
        if auto_args.push_to:
            from ..hub import push_model

            commit = push_model(result.model, auto_args.push_to, card=card, tokenizer=result.tokenizer, token=token,
                                extra_files={"auto_report.md": str(report)})  # fmt: skip
            print(f"pushed {auto_args.push_to}@{commit.oid}")
    return result


def _card(result: AutoTransferResult, repo_id: str, data_args: TargetDataArguments):
    from ..hub import CardContent, Metric

    transfer = getattr(result.model, "transfer_report", None)
    return CardContent(
        repo_id=repo_id,
        objective="classification, source and recipe chosen by hf-rnn-transfer auto",
        data_description=f"{data_args.dataset or data_args.train_file or 'target data'} ({result.rows} labelled rows)",
        metrics=[Metric(result.metric, result.test_score)] if result.test_score is not None else [],
        training=result.trainer.transfer_recipe() if hasattr(result.trainer, "transfer_recipe") else {},
        transfer=transfer.to_dict() if transfer is not None else None,
        comparison=result.comparison() if result.trials else None,
        summary=result.reason,
        ensemble=len(result.chosen.members),
        tags=["auto-transfer"],
    )
