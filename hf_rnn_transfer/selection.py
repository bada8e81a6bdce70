"""Choosing the source: transferability scores from one forward pass over the target data, no fine-tuning.

- LogME (You et al. 2021): the log marginal evidence of a Bayesian linear model from the features to the labels.
- LEEP (Nguyen et al. 2020): how well the source's own label distribution, re-mapped empirically, predicts the
  target labels (sources with a classification head only).
- H-score (Bao et al. 2019): tr(cov(f)^-1 cov(E[f | y])), the between-class share of the feature variance.

Higher is better for all three. `rank_sources` scores candidate checkpoints and returns a ranking table.

With few labels the scores are noisy: on review sentiment LogME on 100 labelled reviews ranks 19-20 sources at +0.53
mean Kendall tau against their fine-tuned accuracy, on 500 or 1,000 at +0.66. Unlabelled target texts close part of
that gap (`unlabelled_texts`): a TF-IDF + logistic regression fitted on the labelled rows labels them, and every score
reads the labelled and the pseudo-labelled rows together (+0.59 with 400 texts, +0.58 with 900: means over five random
samples of them, each sample above +0.53; docs/benchmarks.md). The pseudo-labels come
from a model that shares nothing with the candidates on purpose: labels from the candidates' own consensus were more
accurate (0.76-0.85 against 0.68-0.76) but reward agreeing with it, errors included, and ranked no better (+0.60 to
+0.62 against +0.60 on one sample of 900 texts).

Example:

```python
>>> ranking = rank_sources(["alice/books-clf", "alice/dvd-clf", "alice/reviews-lm"], kitchen, text_column="text")
>>> print(ranking.to_markdown())
```
"""

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from . import modeling_rnn
from .data.collators import DataCollatorForSeries
from .data.timeseries import series_statistics
from .modeling_rnn import RNNPreTrainedModel

INPUT_STATISTICS = ("target", "source")
SCORES = ("logme", "leep", "nleep", "hscore", "shrinkage_hscore", "gbc")
SCORE_NAMES = {
    "logme": "LogME",
    "leep": "LEEP",
    "nleep": "N-LEEP",
    "hscore": "H-score",
    "shrinkage_hscore": "shrinkage H-score",
    "gbc": "GBC",
}


def logme(features: np.ndarray, labels: np.ndarray, max_iterations: int = 100) -> float:
    """
    LogME: the evidence, per example, of a Bayesian ridge regression from `features` `[N, D]` to each one-hot
    class target, with its prior and noise precisions set by evidence maximisation; averaged over classes.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    n, d = features.shape
    u, singular, _ = np.linalg.svd(features, full_matrices=False)
    sigma = singular**2
    rank = int((sigma > 1e-10 * max(sigma.max(initial=0), 1e-30)).sum())
    u, sigma = u[:, :rank], sigma[:rank]
    evidences = []
    for cls in np.unique(labels):
        y = (labels == cls).astype(np.float64)
        z = u.T @ y
        outside = max(float(y @ y - z @ z), 0.0)  # the part of y no linear map of the features reaches
        alpha, beta = 1.0, 1.0
        for _ in range(max_iterations):
            gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
            m_norm = float((beta**2 * sigma * z**2 / (alpha + beta * sigma) ** 2).sum())
            residual = float(((alpha / (alpha + beta * sigma)) ** 2 * z**2).sum()) + outside
            new_alpha = gamma / max(m_norm, 1e-12)
            new_beta = (n - gamma) / max(residual, 1e-12)
            converged = abs(new_alpha - alpha) / alpha < 1e-5 and abs(new_beta - beta) / beta < 1e-5
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        m_norm = float((beta**2 * sigma * z**2 / (alpha + beta * sigma) ** 2).sum())
        residual = float(((alpha / (alpha + beta * sigma)) ** 2 * z**2).sum()) + outside
        log_det = float(np.log(alpha + beta * sigma).sum()) + (d - rank) * np.log(alpha)
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - n / 2 * np.log(2 * np.pi)
            - beta / 2 * residual
            - alpha / 2 * m_norm
            - log_det / 2
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def leep(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """LEEP from the source head's probabilities `[N, Z]` over its own labels and the target labels `[N]`."""
    theta = np.asarray(source_probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    joint = np.stack([theta[labels == c].sum(axis=0) for c in classes]) / len(labels)  # P(y, z)
    conditional = joint / np.clip(joint.sum(axis=0, keepdims=True), 1e-12, None)  # P(y | z)
    expected = theta @ conditional.T  # [N, |Y|]: sum_z P(y | z) theta_z
    index = np.searchsorted(classes, labels)
    return float(np.mean(np.log(np.clip(expected[np.arange(len(labels)), index], 1e-12, None))))


def hscore(features: np.ndarray, labels: np.ndarray, shrinkage: float = 1e-3) -> float:
    """H-score: tr(cov(f)^-1 cov(E[f|y])), with a little shrinkage so that the covariance inverts."""
    f = _centred(features)
    covariance = f.T @ f / len(f)
    covariance += shrinkage * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    return float(np.trace(np.linalg.solve(covariance, _between_class(f, labels))))


def shrinkage_hscore(features: np.ndarray, labels: np.ndarray) -> float:
    """
    H-score with a Ledoit-Wolf shrunk covariance (Ibrahim et al. 2022): with few rows and many feature dimensions
    the sample covariance is near-singular and the plain H-score saturates at its ceiling (C - 1) for any features,
    noise included; the shrinkage intensity is estimated from the data, and the between-class covariance is shrunk
    by the same factor.
    """
    from sklearn.covariance import ledoit_wolf

    f = _centred(features)
    covariance, alpha = ledoit_wolf(f, assume_centered=True)
    return float(np.trace(np.linalg.solve(covariance, (1.0 - alpha) * _between_class(f, labels))))


def gbc(features: np.ndarray, labels: np.ndarray, dimensions: int = 64) -> float:
    """
    Gaussian Bhattacharyya coefficient (Pandy et al. 2022): minus the summed overlap of every pair of classes, each a
    diagonal Gaussian in the first `dimensions` whitened principal components of the features. 0 is perfect separation.
    """
    f = _principal_components(features, dimensions, whiten=True)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    means = [f[labels == c].mean(axis=0) for c in classes]
    variances = [f[labels == c].var(axis=0) + 1e-6 for c in classes]
    total = 0.0
    for i in range(len(classes)):
        for j in range(len(classes)):
            if i == j:
                continue
            pooled = (variances[i] + variances[j]) / 2
            distance = ((means[i] - means[j]) ** 2 / pooled).sum() / 8 + 0.5 * (
                np.log(pooled).sum() - 0.5 * (np.log(variances[i]).sum() + np.log(variances[j]).sum())
            )
            total += np.exp(-distance)
    return float(-total)


def nleep(features: np.ndarray, labels: np.ndarray, components_per_class: int = 5, seed: int = 0) -> float:
    """
    N-LEEP (Li et al. 2021): LEEP with the source head replaced by a Gaussian mixture fitted on the features (reduced
    by PCA to the components keeping 80% of the variance), so any source is scorable: a language model, a forecaster
    or an encoder without a classification head as well as a classifier.
    """
    from sklearn.mixture import GaussianMixture

    f = _principal_components(features, None, whiten=False, keep_variance=0.8)
    classes = len(np.unique(labels))
    components = max(2, min(components_per_class * classes, len(f) // 2))
    mixture = GaussianMixture(components, covariance_type="diag", reg_covar=1e-4, random_state=seed, max_iter=200)
    return leep(mixture.fit(f).predict_proba(f), labels)


def _centred(features) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    return f - f.mean(axis=0)


def _between_class(centred: np.ndarray, labels) -> np.ndarray:
    labels = np.asarray(labels)
    class_means = np.zeros_like(centred)
    for c in np.unique(labels):
        class_means[labels == c] = centred[labels == c].mean(axis=0)
    return class_means.T @ class_means / len(centred)


def _principal_components(features, dimensions, whiten: bool, keep_variance: float | None = None) -> np.ndarray:
    """The features projected on their leading principal components: `dimensions` of them, or as many as keep
    `keep_variance` of the variance (at least one)."""
    f = _centred(features)
    _, singular, vt = np.linalg.svd(f, full_matrices=False)
    variance = singular**2
    if keep_variance is not None:
        dimensions = int(np.searchsorted(np.cumsum(variance) / max(variance.sum(), 1e-30), keep_variance) + 1)
    dimensions = max(1, min(dimensions, int((variance > 1e-10 * max(variance.max(initial=0), 1e-30)).sum()) or 1))
    projected = f @ vt[:dimensions].T
    if whiten:
        projected /= np.sqrt(variance[:dimensions] / len(f)) + 1e-12
    return projected


SCORE_FUNCTIONS = {
    "logme": logme,
    "nleep": nleep,
    "hscore": hscore,
    "shrinkage_hscore": shrinkage_hscore,
    "gbc": gbc,
}


@torch.no_grad()
def extract_features(
    model: RNNPreTrainedModel, batches, layer: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """
    Sequence features `[last, max, mean]` of one encoder layer over `batches` (`layer`: its index, default the top
    one), and the source head's class probabilities when the model is a sequence classifier (else `None`).
    """
    model.eval()
    encoder = model.base_model
    layers = encoder.config.num_layers
    if layer is not None and not 0 <= layer < layers:
        raise ValueError(f"feature layer {layer} does not exist: the source has layers 0..{layers - 1}.")
    pooler = modeling_rnn.RNNSequencePooler(_with_pooling(encoder.config, "concat"))
    features, probabilities = [], []
    classifier = isinstance(model, modeling_rnn.RNNForSequenceClassification) and model.config.problem_type in (
        None,
        "single_label_classification",
    )
    for batch in batches:
        inputs = {
            k: v.to(encoder.device) for k, v in batch.items() if k in ("input_ids", "input_values", "attention_mask")
        }
        output = encoder(**inputs, use_cache=False, output_hidden_states=layer is not None)
        hidden = output.last_hidden_state
        chosen = hidden if layer is None else output.hidden_states[layer + 1]  # [0] is the embedding
        mask = inputs.get("attention_mask")
        features.append(pooler(chosen, mask).float().cpu().numpy())
        if classifier:  # the source head's own prediction, from the same forward pass
            logits = model.classifier(model.pooler(hidden, mask))
            probabilities.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(features), (np.concatenate(probabilities) if probabilities else None)


def _with_pooling(config, pooling):
    clone = type(config).from_dict(config.to_dict())
    clone.pooling = pooling
    return clone


def feature_scores(
    features: np.ndarray, labels: np.ndarray, probabilities: np.ndarray | None, scores=SCORES
) -> dict[str, float | None]:
    """Every score in `scores` of one candidate's features (LEEP is `None` without a source head)."""
    out = {}
    for name in scores:
        if name == "leep":
            out[name] = leep(probabilities, labels) if probabilities is not None else None
        else:
            out[name] = SCORE_FUNCTIONS[name](features, labels)
    return out


def degenerate_warnings(values: dict, untrained: dict | None, classes: int, rows: int, dimensions: int) -> list[str]:
    """
    Why a candidate's scores may say nothing: the plain H-score at its ceiling (C - 1: too few rows for the feature
    dimensions, so any features fill it), or a score no better than the same architecture's untrained encoder.
    """
    warnings = []
    ceiling = classes - 1
    if values.get("hscore") is not None and values["hscore"] >= 0.9 * ceiling:
        warnings.append(
            f"H-score {values['hscore']:.3f} is at its ceiling {ceiling} ({rows} rows for {dimensions} feature "
            "dimensions): it cannot rank; use shrinkage_hscore"
        )
    for name, value in values.items():
        reference = (untrained or {}).get(name)
        if value is None or reference is None:
            continue
        tolerance = 0.02 * max(abs(reference), 0.05)  # untrained encoders of other seeds differ by about this
        if value <= reference + tolerance:
            warnings.append(f"{name} {value:.4f} is no better than an untrained encoder's ({reference:.4f})")
    return warnings


@dataclass
class SourceScore:
    """One candidate's transferability scores, what an untrained encoder of its architecture scores, and warnings."""

    source: str
    scores: dict[str, float | None]
    seconds: float
    untrained: dict[str, float | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getattr__(self, name):
        # `score.logme` etc.: the scores by name
        if name in SCORES:
            return self.__dict__["scores"].get(name)
        raise AttributeError(name)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "scores": self.scores,
            "seconds": self.seconds,
            "untrained": self.untrained,
            "warnings": self.warnings,
        }


@dataclass
class SourceRanking:
    """Scores per candidate, best first by `by` (LogME unless told); `to_markdown()` for a report."""

    scores: list[SourceScore] = field(default_factory=list)
    by: str = "logme"
    labelled_rows: int | None = None
    pseudo_labelled_rows: int = 0  # unlabelled target texts scored with a linear model's labels
    input_statistics: str | None = None  # how series were standardised ("target" or "source"); None for texts

    def ranked(self, by: str | None = None) -> list[str]:
        """Candidate names, best first (ties keep the order the candidates were given); those without the score
        (LEEP of a source without a classification head) are left out."""
        by = by or self.by
        if by not in SCORES:
            raise ValueError(f"rank by one of {SCORES}, got {by!r}.")
        usable = [s for s in self.scores if s.scores.get(by) is not None]
        return [s.source for s in sorted(usable, key=lambda s: -s.scores[by])]

    def score_of(self, source: str) -> SourceScore:
        return next(s for s in self.scores if s.source == source)

    def to_markdown(self) -> str:
        names = [n for n in SCORES if any(n in s.scores for s in self.scores)]
        header = ["rank", "source", *(SCORE_NAMES[n] for n in names), "seconds", "warnings"]
        rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        ranked = self.ranked()
        order = ranked + [s.source for s in self.scores if s.source not in ranked]
        for i, name in enumerate(order, 1):
            s = self.score_of(name)
            cells = ["n/a (no classification head)" if s.scores.get(n) is None else f"{s.scores[n]:.4f}" for n in names]
            rows.append(
                f"| {i} | {s.source} | " + " | ".join(cells) + f" | {s.seconds:.2f} | {'; '.join(s.warnings)} |"
            )
        if self.pseudo_labelled_rows:
            rows.append(
                f"\nScored on {self.labelled_rows} labelled rows and {self.pseudo_labelled_rows} unlabelled target "
                "texts labelled by a TF-IDF + logistic regression fitted on the labelled rows."
            )
        if self.input_statistics:
            how = {
                "target": "the target rows' own per-channel statistics, as fine-tuning standardises them",
                "source": "each source's own training statistics",
            }[self.input_statistics]
            rows.append(f"\nSeries standardised by {how}.")
        return "\n".join(rows)

    def to_dict(self) -> dict:
        return {
            "by": self.by,
            "ranked": self.ranked(),
            "labelled_rows": self.labelled_rows,
            "pseudo_labelled_rows": self.pseudo_labelled_rows,
            "input_statistics": self.input_statistics,
            "candidates": [s.to_dict() for s in self.scores],
        }

    def write(self, path) -> None:
        with open(path, "w") as handle:
            handle.write(self.to_markdown() + "\n")


def rank_sources(
    candidates,
    dataset,
    text_column: str = "text",
    values_column: str = "input_values",
    label_column: str = "label",
    tokenizers: dict | None = None,
    max_examples: int | None = 1000,
    batch_size: int = 64,
    max_length: int = 256,
    revision: str | None = None,
    token: str | None = None,
    scores=SCORES,
    by: str = "logme",
    feature_layer: int | None = None,
    compare_untrained: bool = True,
    progress: bool = False,
    unlabelled_texts: Sequence[str] | None = None,
    max_unlabelled: int | None = 400,
    input_statistics: str = "target",
) -> SourceRanking:
    """
    Score each candidate source on the target `dataset` (LogME, LEEP, N-LEEP, H-score, shrinkage H-score, GBC).

    Args:
        candidates: models, local directories or Hub repo ids (with `revision`/`token`).
        dataset: the target training set: raw texts in `text_column` (each candidate tokenises them with its own
            tokenizer) or series in `values_column`, and labels in `label_column`.
        tokenizers: `{candidate name: tokenizer}` for in-memory models; paths and repo ids load their own.
        max_examples: score on a fixed subset this large (the first rows; shuffle beforehand).
        scores: which scores to compute; `by`: the one the ranking sorts on.
        feature_layer: the encoder layer whose outputs are scored (default the top one); score the layer that will
            be transferred when not every layer moves.
        compare_untrained: also score the same architecture with untrained weights and warn where a candidate is no
            better (the score cannot tell it from chance features).
        unlabelled_texts: unlabelled texts of the target (never its test data), for a text target: a TF-IDF + logistic
            regression fitted on the labelled rows labels the first `max_unlabelled` of them (shuffle beforehand),
            and the candidates are scored on those rows too. Needs scikit-learn; costs a forward pass over them.
        input_statistics: for series, how a candidate standardises the target rows before its features are read:
            `"target"` (default) with the rows' own per-channel mean and standard deviation, as `finetune` and `auto`
            standardise the target for the transferred layers, so the scores read the features fine-tuning starts
            from; `"source"` with the statistics the source was trained with (or none, if it has none).

    Returns:
        A `SourceRanking` (best first by `by`), with the seconds each candidate took and its warnings.
    """
    from tqdm.auto import tqdm

    if not candidates:
        raise ValueError("rank_sources needs at least one candidate.")
    unknown = [n for n in [*scores, by] if n not in SCORES]
    if unknown:
        raise ValueError(f"unknown score(s) {unknown}; choose from {SCORES}.")
    if by not in scores:
        scores = (*scores, by)
    if input_statistics not in INPUT_STATISTICS:
        raise ValueError(f"input_statistics must be one of {INPUT_STATISTICS}, got {input_statistics!r}.")
    from .transfer import load_source

    rows = dataset.select(range(min(len(dataset), max_examples))) if max_examples else dataset
    if label_column not in rows.column_names:
        raise ValueError(f"missing label column {label_column!r}; the dataset has {rows.column_names}.")
    labels = np.asarray(rows[label_column])
    classes = len(np.unique(labels))
    if classes < 2:
        raise ValueError(f"the target rows hold {classes} class: ranking needs at least two labels.")
    ranking = SourceRanking(by=by, labelled_rows=len(rows))
    if unlabelled_texts is not None:
        rows, labels = with_pseudo_labels(rows, labels, unlabelled_texts, text_column, max_unlabelled)
        ranking.pseudo_labelled_rows = len(rows) - ranking.labelled_rows
    statistics = None  # the target rows' per-channel mean and std, once a series candidate needs them
    for candidate in tqdm(candidates, desc="scoring sources", disable=not progress):
        start = time.perf_counter()
        model, name, _ = load_source(candidate, revision, token)
        name = str(candidate) if isinstance(candidate, (str, Path)) else name  # as the user named it
        if not model.config.is_token_input:
            ranking.input_statistics = input_statistics
            if input_statistics == "target":
                _require_series(rows, values_column, name)
                statistics = statistics or series_statistics(rows, values_column)  # the same rows for every candidate
                model = _standardised_as_target(model, statistics, values_column, name, copy_first=candidate is model)
        batches, order = _batches(model, candidate, name, rows, text_column, values_column, tokenizers, batch_size,
                                  max_length, revision, token)  # fmt: skip
        features, probabilities = _in_row_order(extract_features(model, batches, feature_layer), order)
        values = feature_scores(features, labels, probabilities, scores)
        untrained = {}
        if compare_untrained:
            with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
                torch.manual_seed(0)
                fresh = type(model)(model.config).to(model.device)
            fresh_features, _ = _in_row_order(extract_features(fresh, batches, feature_layer), order)
            untrained = feature_scores(fresh_features, labels, None, [n for n in scores if n != "leep"])
        warnings = degenerate_warnings(values, untrained, classes, len(rows), features.shape[1])
        ranking.scores.append(SourceScore(name, values, time.perf_counter() - start, untrained, warnings))
    return ranking


def with_pseudo_labels(rows, labels: np.ndarray, unlabelled_texts, text_column: str = "text",
                       max_unlabelled: int | None = 400):  # fmt: skip
    """
    The labelled `rows` followed by up to `max_unlabelled` of `unlabelled_texts`, and their labels: the given ones,
    then those a TF-IDF + logistic regression fitted on the labelled rows predicts (texts that repeat a labelled one,
    or are empty, are left out).

    Returns:
        `(rows, labels)`: a `Dataset` with `text_column` only, and the labels in the given labels' values.
    """
    from datasets import Dataset

    from .linear_model import LinearTextClassifier

    if text_column not in rows.column_names:
        raise ValueError(
            f"unlabelled texts are pseudo-labelled for a text target, but the target has no {text_column!r} column "
            f"(it has {rows.column_names}): leave them out for series."
        )
    if isinstance(unlabelled_texts, str):
        raise ValueError("unlabelled_texts is a list of texts, not one string.")
    if max_unlabelled is not None and max_unlabelled < 1:
        raise ValueError(f"max_unlabelled must be at least 1 (or None for all), got {max_unlabelled}.")
    labelled = list(rows[text_column])
    seen = set(labelled)
    extra = []
    for text in unlabelled_texts:
        if not isinstance(text, str):
            raise ValueError(f"unlabelled_texts must hold strings; found {type(text).__name__}.")
        if text.strip() and text not in seen:
            extra.append(text)
            seen.add(text)
        if max_unlabelled is not None and len(extra) == max_unlabelled:
            break
    if not extra:
        raise ValueError("unlabelled_texts holds no text that is not empty and not one of the labelled rows.")
    classes, ids = np.unique(labels, return_inverse=True)
    linear = LinearTextClassifier.fit(labelled, ids, fit_texts=labelled + extra)
    pseudo = classes[np.asarray(linear.predict_proba(extra)).argmax(axis=1)]
    return Dataset.from_dict({text_column: labelled + extra}), np.concatenate([labels, pseudo])


def _require_series(rows, values_column: str, name: str) -> None:
    if values_column not in rows.column_names:
        raise ValueError(
            f"{name} reads series, but the target has no {values_column!r} column (it has {rows.column_names}): a "
            "text target needs a source that reads tokens."
        )


def _standardised_as_target(model, statistics, values_column: str, name: str, copy_first: bool):
    """`model` reading the target rows standardised by their own per-channel `statistics` (mean, std; `copy_first`
    for a model the caller passed in memory: its own statistics stay as they were)."""
    mean, std = statistics
    if len(mean) != model.config.input_size:
        raise ValueError(
            f"{name} reads series of {model.config.input_size} channel(s); the target's {values_column!r} holds "
            f"{len(mean)}. Select the source's channels, or transfer with channel_names to remap them first."
        )
    model = copy.deepcopy(model) if copy_first else model
    model.base_model.set_normalization(mean, std)
    return model


def _batches(model, candidate, name, rows, text_column, values_column, tokenizers, batch_size, max_length, revision,
             token):  # fmt: skip
    """The target rows in batches as this candidate reads them (its own tokenizer's ids, or series values), and the
    row order they follow: a list, as each candidate reads them twice.

    The rows go shortest first, so each batch pads to a similar length: an unpacked recurrent layer runs every padded
    step, and on review texts of mixed lengths that is most of the work. Features of real positions do not depend on
    the padding (`RNNModel` zeroes padded outputs), so the order changes the cost, not the scores.
    """
    if model.config.is_token_input:
        if text_column not in rows.column_names:
            raise ValueError(f"missing text column {text_column!r}; the dataset has {rows.column_names}.")
        tokenizer = (tokenizers or {}).get(name) or (tokenizers or {}).get(str(candidate))
        if tokenizer is None:
            if isinstance(candidate, RNNPreTrainedModel):
                raise ValueError(f"pass tokenizers={{{name!r}: tokenizer}} for the in-memory candidate {name}.")
            tokenizer = AutoTokenizer.from_pretrained(str(candidate), revision=revision, token=token)
        collate = DataCollatorWithPadding(tokenizer)
        encoded = tokenizer(list(rows[text_column]), truncation=True, max_length=max_length)
        examples = [{key: encoded[key][i] for key in encoded} for i in range(len(rows))]
        lengths = [len(e["input_ids"]) for e in examples]
    else:
        _require_series(rows, values_column, name)
        collate = DataCollatorForSeries()
        examples = [{"input_values": v} for v in rows[values_column]]
        lengths = [len(e["input_values"]) for e in examples]
    order = np.argsort(lengths, kind="stable")
    batches = [
        collate([examples[i] for i in order[start : start + batch_size]])
        for start in range(0, len(examples), batch_size)
    ]
    return batches, order


def _in_row_order(extracted: tuple[np.ndarray, np.ndarray | None], order: np.ndarray):
    """`extract_features`' output over rows read in `order`, put back in the rows' own order."""
    features, probabilities = extracted
    restore = np.argsort(order)
    return features[restore], (None if probabilities is None else probabilities[restore])


def fine_tuning_proxy(make_model, rows, args, collator, score, folds: int = 2, label_column: str = "labels") -> float:
    """
    A short fine-tuning as a transferability score: for each of `folds` folds of the budget `rows` (encoded), fine-tune
    `make_model()` with `args` (a few epochs) on the others and score the held-out fold; the mean over rows. It costs
    `folds` short trainings per candidate, far more than a feature score, and predicts what a feature score cannot:
    how the source moves under fine-tuning.
    """
    import tempfile
    from dataclasses import replace

    from .budget_selection import fold_indices
    from .trainer import TransferTrainer

    parts = fold_indices(rows[label_column], folds, args.seed)
    total = 0.0
    quiet = dict(save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no", select_folds=0)
    for k, heldout in enumerate(parts):
        train_rows = np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k]))
        model = make_model()
        with tempfile.TemporaryDirectory(prefix="proxy-fold-") as fold_dir:
            fold_args = replace(args, output_dir=fold_dir, **quiet)
            TransferTrainer(
                model=model, args=fold_args, train_dataset=rows.select(train_rows), data_collator=collator
            ).train()
        total += float(score(model, rows.select(heldout))) * len(heldout)
    return total / len(rows)
