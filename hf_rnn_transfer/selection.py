"""Choosing the source: transferability scores from one forward pass over the target data, no fine-tuning.

- LogME (You et al. 2021): the log marginal evidence of a Bayesian linear model from the features to the labels.
- LEEP (Nguyen et al. 2020): how well the source's own label distribution, re-mapped empirically, predicts the
  target labels (sources with a classification head only).
- H-score (Bao et al. 2019): tr(cov(f)^-1 cov(E[f | y])), the between-class share of the feature variance.

Higher is better for all three. `rank_sources` scores candidate checkpoints and returns a ranking table.

Example:

```python
>>> ranking = rank_sources(["alice/books-clf", "alice/dvd-clf", "alice/reviews-lm"], kitchen, text_column="text")
>>> print(ranking.to_markdown())
```
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from . import modeling_rnn
from .data.collators import DataCollatorForSeries
from .modeling_rnn import RNNPreTrainedModel

SCORES = ("logme", "leep", "hscore")


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
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0)
    labels = np.asarray(labels)
    covariance = f.T @ f / len(f)
    covariance += shrinkage * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    class_means = np.zeros_like(f)
    for c in np.unique(labels):
        class_means[labels == c] = f[labels == c].mean(axis=0)
    between = class_means.T @ class_means / len(f)
    return float(np.trace(np.linalg.solve(covariance, between)))


@torch.no_grad()
def extract_features(model: RNNPreTrainedModel, batches) -> tuple[np.ndarray, np.ndarray | None]:
    """
    Sequence features `[last, max, mean]` of the encoder's top layer over `batches`, and the source head's class
    probabilities when the model is a sequence classifier (else `None`).
    """
    model.eval()
    encoder = model.base_model
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
        hidden = encoder(**inputs, use_cache=False).last_hidden_state
        mask = inputs.get("attention_mask")
        features.append(pooler(hidden, mask).float().cpu().numpy())
        if classifier:  # the source head's own prediction, from the same forward pass
            logits = model.classifier(model.pooler(hidden, mask))
            probabilities.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(features), (np.concatenate(probabilities) if probabilities else None)


def _with_pooling(config, pooling):
    clone = type(config).from_dict(config.to_dict())
    clone.pooling = pooling
    return clone


@dataclass
class SourceScore:
    source: str
    logme: float
    leep: float | None
    hscore: float
    seconds: float


@dataclass
class SourceRanking:
    """Scores per candidate, best LogME first; `to_markdown()` for a report."""

    scores: list[SourceScore] = field(default_factory=list)

    def ranked(self, by: str = "logme") -> list[str]:
        if by not in SCORES:
            raise ValueError(f"rank by one of {SCORES}, got {by!r}.")
        usable = [s for s in self.scores if getattr(s, by) is not None]
        return [s.source for s in sorted(usable, key=lambda s: getattr(s, by), reverse=True)]

    def to_markdown(self) -> str:
        rows = ["| rank | source | LogME | LEEP | H-score | seconds |", "|---|---|---|---|---|---|"]
        for i, name in enumerate(self.ranked(), 1):
            s = next(x for x in self.scores if x.source == name)
            leep_text = f"{s.leep:.4f}" if s.leep is not None else "n/a (no classification head)"
            rows.append(f"| {i} | {s.source} | {s.logme:.4f} | {leep_text} | {s.hscore:.4f} | {s.seconds:.2f} |")
        return "\n".join(rows)

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
) -> SourceRanking:
    """
    Score each candidate source on the target `dataset` with LogME, LEEP and H-score.

    Args:
        candidates: models, local directories or Hub repo ids (with `revision`/`token`).
        dataset: the target training set: raw texts in `text_column` (each candidate tokenises them with its own
            tokenizer) or series in `values_column`, and labels in `label_column`.
        tokenizers: `{candidate name: tokenizer}` for in-memory models; paths and repo ids load their own.
        max_examples: score on a fixed subset this large (the first rows; shuffle beforehand).

    Returns:
        A `SourceRanking` (best LogME first), with the seconds each candidate took.
    """
    if not candidates:
        raise ValueError("rank_sources needs at least one candidate.")
    from .transfer import load_source

    rows = dataset.select(range(min(len(dataset), max_examples))) if max_examples else dataset
    if label_column not in rows.column_names:
        raise ValueError(f"missing label column {label_column!r}; the dataset has {rows.column_names}.")
    labels = np.asarray(rows[label_column])
    ranking = SourceRanking()
    for candidate in candidates:
        start = time.perf_counter()
        model, name, _ = load_source(candidate, revision, token)
        name = str(candidate) if isinstance(candidate, (str, Path)) else name  # as the user named it
        if model.config.is_token_input:
            if text_column not in rows.column_names:
                raise ValueError(f"missing text column {text_column!r}; the dataset has {rows.column_names}.")
            tokenizer = (tokenizers or {}).get(name) or (tokenizers or {}).get(str(candidate))
            if tokenizer is None:
                if isinstance(candidate, RNNPreTrainedModel):
                    raise ValueError(f"pass tokenizers={{{name!r}: tokenizer}} for the in-memory candidate {name}.")
                tokenizer = AutoTokenizer.from_pretrained(str(candidate), revision=revision, token=token)
            collate = DataCollatorWithPadding(tokenizer)
            texts = rows[text_column]
            batches = (
                collate([dict(tokenizer(t, truncation=True, max_length=max_length)) for t in texts[i : i + batch_size]])
                for i in range(0, len(texts), batch_size)
            )
        else:
            collate = DataCollatorForSeries()
            values = rows[values_column]
            batches = (
                collate([{"input_values": v} for v in values[i : i + batch_size]])
                for i in range(0, len(values), batch_size)
            )
        features, probabilities = extract_features(model, batches)
        ranking.scores.append(
            SourceScore(
                source=name,
                logme=logme(features, labels),
                leep=leep(probabilities, labels) if probabilities is not None else None,
                hscore=hscore(features, labels),
                seconds=time.perf_counter() - start,
            )
        )
    return ranking
