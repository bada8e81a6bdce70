"""`LinearTextClassifier`: TF-IDF + logistic regression, the linear model that ships beside a fine-tuned RNN.

On review sentiment the RNN and a linear model trained on the same labels err on different texts: the average of
their class probabilities beats either alone (`docs/benchmarks.md`, "ensemble"). `finetune --linear_companion`
trains one beside the RNN and saves it in the model's folder as two files, never a pickle:

- `linear_model.json`: format, settings, labels and vocabulary (one term per feature, in feature order);
- `linear_model.safetensors`: `idf`, `coef`, `intercept` and `classes` (float64/int64).

Fitting needs scikit-learn; scoring needs only numpy and safetensors, and reproduces scikit-learn's
`TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)` + `LogisticRegression.predict_proba` exactly.
`TextClassificationWithLinearPipeline` (in `pipeline_linear.py`) averages it with the RNN. This file imports nothing
of the package: it ships beside checkpoints as the pipeline's remote code.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

LINEAR_CONFIG_NAME = "linear_model.json"
LINEAR_WEIGHTS_NAME = "linear_model.safetensors"
LINEAR_FORMAT = "hf-rnn-transfer/tfidf-logistic-regression"
LINEAR_FORMAT_VERSION = 1
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # scikit-learn's default: words of two or more characters
MAX_CONFIG_BYTES = 512 << 20  # a vocabulary of millions of n-grams still fits; a larger JSON file is refused unread


class LinearTextClassifier:
    """
    TF-IDF of word 1-2 grams (lowercased, sublinear tf, l2-normalised) followed by logistic regression.

    Args:
        vocabulary: the terms, in feature order.
        idf: inverse document frequency per term.
        coef, intercept: the logistic regression, one row per class (one row in all for two classes, as
            scikit-learn stores it: the score of the second class).
        classes: the class id of each row of `coef` (two classes: the two ids).
        id2label: every class of the task (ids 0..n-1); classes the regression never saw get probability 0.
        training: what it was trained on (counts, weights), for the record.
        ensemble_weight: the linear model's share when averaged with the RNN it ships beside (what
            `TextClassificationWithLinearPipeline` uses unless told otherwise; `finetune` chooses it inside the budget).

    Example:

    ```python
    >>> linear = LinearTextClassifier.fit(["good pan", "bad pan"], [1, 0], {0: "negative", 1: "positive"})
    >>> linear.save_pretrained("runs/kitchen")
    >>> LinearTextClassifier.from_pretrained("runs/kitchen").predict_proba(["a good knife"]).argmax(-1)
    array([1])
    ```
    """

    def __init__(
        self, vocabulary, idf, coef, intercept, classes, id2label, training: dict | None = None, ensemble_weight=0.5
    ):
        self.vocabulary = list(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.classes = np.asarray(classes, dtype=np.int64)
        self.id2label = {int(k): str(v) for k, v in id2label.items()}
        self.training = dict(training or {})
        self.ensemble_weight = ensemble_weight
        self._check()
        self._index = {term: i for i, term in enumerate(self.vocabulary)}
        self._tokens = re.compile(TOKEN_PATTERN)

    @property
    def num_classes(self) -> int:
        return len(self.id2label)

    def _check(self, where: str = "LinearTextClassifier") -> None:
        """Refuse inconsistent parts (e.g. from a tampered or truncated download) with what is wrong."""
        size, rows = len(self.vocabulary), len(self.classes)
        if not all(isinstance(term, str) and term for term in self.vocabulary):
            raise ValueError(f"{where}: the vocabulary must be a list of non-empty strings.")
        if len(set(self.vocabulary)) != size:
            raise ValueError(f"{where}: the vocabulary repeats a term.")
        if sorted(self.id2label) != list(range(len(self.id2label))) or len(self.id2label) < 2:
            raise ValueError(f"{where}: id2label must number 2+ classes 0..n-1, got ids {sorted(self.id2label)}.")
        if self.classes.ndim != 1 or rows < 2 or len(set(self.classes.tolist())) != rows:
            raise ValueError(f"{where}: classes must be 2+ distinct class ids, got {self.classes.tolist()}.")
        if self.classes.min() < 0 or self.classes.max() >= self.num_classes:
            raise ValueError(f"{where}: classes {self.classes.tolist()} are not all ids of id2label {self.id2label}.")
        expected_rows = 1 if rows == 2 else rows
        if self.idf.shape != (size,):
            raise ValueError(f"{where}: idf has shape {self.idf.shape}, expected ({size},) (one per term).")
        if self.coef.shape != (expected_rows, size) or self.intercept.shape != (expected_rows,):
            raise ValueError(
                f"{where}: coef {self.coef.shape} / intercept {self.intercept.shape} do not fit {rows} classes and "
                f"{size} terms: expected ({expected_rows}, {size}) / ({expected_rows},)."
            )
        for name in ("idf", "coef", "intercept"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{where}: {name} holds NaN or infinite values.")
        weight = self.ensemble_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise ValueError(f"{where}: ensemble_weight (the linear model's share) must be in [0, 1], got {weight!r}.")

    # ------------------------------------------------------------------------------------------------- fitting

    @staticmethod
    def fit_vectorizer(texts: Sequence[str], min_df: int = 1):
        """The scikit-learn `TfidfVectorizer` this model reproduces, fitted on `texts` (to share between fits on
        the same vocabulary: `fit(..., vectorizer=, features=)`)."""
        TfidfVectorizer, _ = _scikit_learn()
        vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, min_df=min_df, lowercase=True, token_pattern=TOKEN_PATTERN
        )
        return vectorizer.fit(list(texts))

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: Sequence[int],
        id2label: dict | None = None,
        sample_weight: Sequence[float] | None = None,
        fit_texts: Sequence[str] | None = None,
        min_df: int = 1,
        C: float = 10.0,
        training: dict | None = None,
        vectorizer=None,
        features=None,
    ) -> LinearTextClassifier:
        """
        Fit the vocabulary and idf on `fit_texts` (default `texts`), then the logistic regression on `texts`.

        Args:
            texts, labels: the labelled texts (labels are class ids).
            id2label: the task's classes (default: "0".."n-1" up to the largest label).
            sample_weight: a weight per labelled text (e.g. target labels counted more than source labels).
            fit_texts: the texts the vocabulary and idf read, e.g. with the target domain's unlabelled texts.
            min_df: a term's least document count to enter the vocabulary.
            C: inverse regularisation strength of the logistic regression.
            training: a record of what it was trained on, saved with it.
            vectorizer, features: a vectorizer from `fit_vectorizer` (then `fit_texts` and `min_df` are its own)
                and, optionally, its transform of `texts`: many fits on one vocabulary skip the text processing.
        """
        _, LogisticRegression = _scikit_learn()
        labels = [int(label) for label in labels]
        if len(texts) != len(labels) or not texts:
            raise ValueError(f"fit takes as many labels as texts (1+), got {len(texts)} texts, {len(labels)} labels.")
        if len(set(labels)) < 2:
            raise ValueError("the linear model needs labelled texts of 2+ classes; all labels are the same class.")
        if id2label is None:
            id2label = {i: str(i) for i in range(max(labels) + 1)}
        if vectorizer is None:
            vectorizer = cls.fit_vectorizer(texts if fit_texts is None else fit_texts, min_df)
        if features is None:
            features = vectorizer.transform(texts)
        classifier = LogisticRegression(max_iter=3000, C=C)
        classifier.fit(features, labels, sample_weight=sample_weight)
        vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
        record = {"labelled_texts": len(texts), "vocabulary_texts": len(texts if fit_texts is None else fit_texts)}
        record.update({"min_df": vectorizer.min_df, "C": C, **(training or {})})
        parts = (vectorizer.idf_, classifier.coef_, classifier.intercept_, classifier.classes_)
        return cls(vocabulary, *parts, id2label, record)

    # ------------------------------------------------------------------------------------------------- scoring

    def _terms(self, text: str) -> list[str]:
        """Words of 2+ characters, lowercased, and each pair of neighbours (scikit-learn's 1-2 gram analyzer)."""
        words = self._tokens.findall(text.lower())
        return words + [f"{a} {b}" for a, b in zip(words, words[1:])]

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """The regression's scores, one row per text (one column for two classes)."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string.")
        scores = np.tile(self.intercept, (len(texts), 1))
        for row, text in enumerate(texts):
            counts = Counter(self._index[t] for t in self._terms(text) if t in self._index)
            if not counts:
                continue
            features = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64, count=len(counts))
            weights = tf * self.idf[features]
            weights /= np.sqrt(np.dot(weights, weights))
            scores[row] += self.coef[:, features] @ weights
        return scores

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, one row per text and one column per class of `id2label`."""
        scores = self.decision_function(texts)
        if len(self.classes) == 2:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            known = np.stack([1.0 - positive, positive], axis=1)
        else:
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            known = shifted / shifted.sum(axis=1, keepdims=True)
        probabilities = np.zeros((len(texts), self.num_classes))
        probabilities[:, self.classes] = known
        return probabilities

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The label name of the most probable class of each text."""
        return [self.id2label[int(i)] for i in self.predict_proba(texts).argmax(-1)]

    # ------------------------------------------------------------------------------------------- saving, loading

    def save_pretrained(self, save_directory, overwrite: bool = True) -> list[str]:
        """Write `linear_model.json` and `linear_model.safetensors` into `save_directory` (created if missing);
        with `overwrite=False`, refuse to replace an existing linear model there."""
        from safetensors.numpy import save_file

        os.makedirs(save_directory, exist_ok=True)
        paths = [os.path.join(save_directory, name) for name in (LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME)]
        if not overwrite and any(os.path.exists(p) for p in paths):
            raise FileExistsError(f"{save_directory} already holds a linear model; pass overwrite=True to replace it.")
        config = {
            "format": LINEAR_FORMAT,
            "version": LINEAR_FORMAT_VERSION,
            "analyzer": {"ngram_range": [1, 2], "lowercase": True, "token_pattern": TOKEN_PATTERN},
            "tfidf": {"sublinear_tf": True, "norm": "l2"},
            "id2label": {str(k): v for k, v in self.id2label.items()},
            "training": self.training,
            "ensemble_weight": self.ensemble_weight,
            "vocabulary": self.vocabulary,
        }
        with open(paths[0], "w", encoding="utf-8") as handle:
            json.dump(config, handle, ensure_ascii=False)
        tensors = {"idf": self.idf, "coef": self.coef, "intercept": self.intercept, "classes": self.classes}
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, paths[1], metadata={"format": "np"})
        return paths

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str, revision: str | None = None, token: str | None = None
    ) -> LinearTextClassifier:
        """Load from a folder, or from a Hub repo (`revision`, `token`) through `hf_hub_download`; every part is
        checked (format, version, shapes, finite values) before use."""
        from safetensors.numpy import load_file

        files = _resolve_files(str(path_or_repo_id), revision, token)
        where = f"{path_or_repo_id}/{LINEAR_CONFIG_NAME}"
        if os.path.getsize(files[0]) > MAX_CONFIG_BYTES:
            raise ValueError(f"{where} is larger than {MAX_CONFIG_BYTES >> 20} MiB: refused.")
        with open(files[0], encoding="utf-8") as handle:
            try:
                config = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where} is not valid JSON: {error}") from None
        if not isinstance(config, dict) or config.get("format") != LINEAR_FORMAT:
            raise ValueError(f"{where} is not a linear model of hf-rnn-transfer (format {LINEAR_FORMAT!r}).")
        if config.get("version") != LINEAR_FORMAT_VERSION:
            raise ValueError(
                f"{where} has format version {config.get('version')!r}; this hf-rnn-transfer reads version "
                f"{LINEAR_FORMAT_VERSION}: upgrade the package."
            )
        expected = {"ngram_range": [1, 2], "lowercase": True, "token_pattern": TOKEN_PATTERN}
        if config.get("analyzer") != expected or config.get("tfidf") != {"sublinear_tf": True, "norm": "l2"}:
            raise ValueError(f"{where}: unsupported analyzer/tfidf settings; expected {expected}, sublinear l2 tf-idf.")
        id2label, vocabulary = config.get("id2label"), config.get("vocabulary")
        if not isinstance(id2label, dict) or not all(str(k).isdigit() for k in id2label):
            raise ValueError(f"{where}: id2label must map class ids to names.")
        if not isinstance(vocabulary, list):
            raise ValueError(f"{where}: vocabulary must be a list of terms.")
        try:
            tensors = load_file(files[1])
        except Exception as error:  # safetensors raises its own error types for a corrupt header
            where = f"{path_or_repo_id}/{LINEAR_WEIGHTS_NAME}"
            raise ValueError(f"{where} is not a readable safetensors file: {error}") from None
        missing = {"idf", "coef", "intercept", "classes"} - set(tensors)
        if missing:
            raise ValueError(f"{path_or_repo_id}/{LINEAR_WEIGHTS_NAME} lacks {sorted(missing)}.")
        training = config.get("training") if isinstance(config.get("training"), dict) else {}
        try:
            return cls(
                vocabulary, tensors["idf"], tensors["coef"], tensors["intercept"], tensors["classes"],
                {int(k): v for k, v in id2label.items()}, training, config.get("ensemble_weight", 0.5),
            )  # fmt: skip
        except ValueError as error:
            raise ValueError(f"{path_or_repo_id}: {error}") from None


class SourceAndTargetFits:
    """
    Many fits of the linear model on one source's labelled texts plus different rows of the target's texts (budgets,
    folds), sharing one vocabulary (fitted on the source's and every target text) and the texts' features: each fit
    is the regression alone. With source texts, a target label weighs `target_weight` source labels.

    Args:
        source_texts, source_labels: the source task's labelled texts (class ids of the target), possibly none.
        target_texts: every target text a fit may take rows of.
        id2label: the task's classes.
        target_weight: a target label's weight beside a source label.
        min_df: a term's least document count to enter the vocabulary.
    """

    def __init__(self, source_texts, source_labels, target_texts, id2label, target_weight=10.0, min_df=2):
        import scipy.sparse

        self.source_texts, self.source_labels = list(source_texts), [int(v) for v in source_labels]
        self.target_texts = list(target_texts)
        self.id2label, self.target_weight = id2label, target_weight
        self.vectorizer = LinearTextClassifier.fit_vectorizer(self.source_texts + self.target_texts, min_df)
        self._target = self.vectorizer.transform(self.target_texts)
        self._source = (  # scikit-learn refuses to transform no texts
            self.vectorizer.transform(self.source_texts)
            if self.source_texts
            else scipy.sparse.csr_matrix((0, self._target.shape[1]))
        )
        self._stack = scipy.sparse.vstack

    def fit(self, rows: Sequence[int], labels: Sequence[int], training: dict | None = None) -> LinearTextClassifier:
        """The linear model on the source plus the target texts `rows`, labelled `labels`."""
        rows = list(rows)
        weights = [1.0] * len(self.source_texts) + [self.target_weight] * len(rows) if self.source_texts else None
        return LinearTextClassifier.fit(
            self.source_texts + [self.target_texts[i] for i in rows],
            self.source_labels + [int(v) for v in labels],
            self.id2label,
            sample_weight=weights,
            fit_texts=self.source_texts + self.target_texts,
            training=training,
            vectorizer=self.vectorizer,
            features=self._stack([self._source, self._target[rows]]).tocsr(),
        )


def has_linear_model(path: str) -> bool:
    """Whether a folder holds a linear model (both files)."""
    return all(os.path.isfile(os.path.join(path, name)) for name in (LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME))


def _scikit_learn():
    """scikit-learn's `TfidfVectorizer` and `LogisticRegression`, imported when fitting: scoring runs where only
    transformers is installed (this file is the pipeline's remote code, and transformers requires every import it
    finds outside a `try` block)."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:
        raise ImportError(
            "fitting a LinearTextClassifier needs scikit-learn (pip install scikit-learn); loading and scoring one "
            "do not."
        ) from error
    return TfidfVectorizer, LogisticRegression


def _is_repo_id(value: str) -> bool:
    """Whether `value` has the form of a Hub repo id (`name` or `namespace/name`), by huggingface_hub's rule."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def _resolve_files(path_or_repo_id: str, revision: str | None, token: str | None) -> list[str]:
    """The two files' local paths: in a folder, or downloaded from a Hub repo."""
    names = (LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME)
    if os.path.isdir(path_or_repo_id):
        if not has_linear_model(path_or_repo_id):
            raise FileNotFoundError(
                f"{path_or_repo_id} holds no linear model ({' and '.join(names)}): train one beside the RNN with "
                "`hf-rnn-transfer finetune --linear_companion` (or LinearTextClassifier.fit(...).save_pretrained)."
            )
        return [os.path.join(path_or_repo_id, name) for name in names]
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    if not _is_repo_id(path_or_repo_id):
        raise FileNotFoundError(f"{path_or_repo_id} is neither a folder nor a Hub repo id (namespace/name).")
    try:
        return [hf_hub_download(path_or_repo_id, name, revision=revision, token=token) for name in names]
    except EntryNotFoundError:
        raise FileNotFoundError(
            f"{path_or_repo_id} (revision {revision or 'main'}) has no linear model ({' and '.join(names)}): push "
            "one with `hf-rnn-transfer finetune --linear_companion --push_to ...`."
        ) from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{path_or_repo_id} is not a folder, and there is no Hub repo of that name (or no access to it with this "
            "token)."
        ) from None


__all__ = [
    "LinearTextClassifier",
    "SourceAndTargetFits",
    "has_linear_model",
    "LINEAR_CONFIG_NAME",
    "LINEAR_WEIGHTS_NAME",
]
