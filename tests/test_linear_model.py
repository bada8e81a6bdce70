"""`LinearTextClassifier`: scikit-learn's answers exactly, saved as JSON + safetensors, loaded from a folder or the
offline Hub, and every tampered part refused by name."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from hf_rnn_transfer.data import load_amazon_reviews
from hf_rnn_transfer.linear_model import LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME, LinearTextClassifier

from .conftest import ALICE

LABELS = {0: "negative", 1: "positive"}


@pytest.fixture(scope="module")
def reviews():
    rows = load_amazon_reviews("kitchen").shuffle(seed=0)
    return rows["text"][:400], [int(v) for v in rows["label"][:400]], rows["text"][400:600]


@pytest.fixture(scope="module")
def fitted(reviews):
    texts, labels, _ = reviews
    return LinearTextClassifier.fit(texts, labels, LABELS, min_df=2, training={"note": "kitchen"})


def _sklearn_probabilities(texts, labels, test, **vectorizer):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, **vectorizer).fit(texts)
    regression = LogisticRegression(max_iter=3000, C=10.0).fit(tfidf.transform(texts), labels)
    return regression.predict_proba(tfidf.transform(test))


def test_scoring_reproduces_scikit_learn_and_learns(reviews, fitted):
    """No scikit-learn at scoring time, same probabilities (1e-12); two and three classes; above chance on kitchen."""
    texts, labels, test = reviews
    expected = _sklearn_probabilities(texts, labels, test, min_df=2)
    np.testing.assert_allclose(fitted.predict_proba(test), expected, atol=1e-12)
    held_out = load_amazon_reviews("kitchen").shuffle(seed=0)["label"][400:600]
    assert (fitted.predict_proba(test).argmax(-1) == np.asarray(held_out)).mean() > 0.7
    three = [i % 3 for i in range(len(texts))]
    expected = _sklearn_probabilities(texts, three, test)
    np.testing.assert_allclose(LinearTextClassifier.fit(texts, three).predict_proba(test), expected, atol=1e-12)
    # a class of the task that no training text has: its column is 0, the others still sum to 1
    skipping = LinearTextClassifier.fit(texts[:20], [0, 2] * 10, {0: "a", 1: "b", 2: "c"}).predict_proba(test[:5])
    assert skipping.shape == (5, 3) and np.all(skipping[:, 1] == 0) and np.allclose(skipping.sum(-1), 1)
    assert fitted.predict(["", "excellent excellent excellent"])[1] == "positive"  # an empty text: the intercept


def test_save_and_load_round_trip(tmp_path, reviews, fitted):
    paths = fitted.save_pretrained(tmp_path)
    assert sorted(p.rsplit("/", 1)[-1] for p in paths) == [LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME]
    loaded = LinearTextClassifier.from_pretrained(str(tmp_path))
    np.testing.assert_array_equal(loaded.predict_proba(reviews[2]), fitted.predict_proba(reviews[2]))
    assert loaded.id2label == LABELS and loaded.training["note"] == "kitchen" and loaded.training["min_df"] == 2
    with pytest.raises(FileExistsError, match="already holds a linear model"):
        fitted.save_pretrained(tmp_path, overwrite=False)


def _tamper(folder, config=None, tensors=None):
    if config is not None:
        data = json.loads((folder / LINEAR_CONFIG_NAME).read_text())
        config(data)
        (folder / LINEAR_CONFIG_NAME).write_text(json.dumps(data))
    if tensors is not None:
        weights = dict(load_file(folder / LINEAR_WEIGHTS_NAME))
        tensors(weights)
        save_file(weights, folder / LINEAR_WEIGHTS_NAME)


@pytest.mark.parametrize(
    "config, tensors, message",
    [
        (lambda c: c.update(format="pickle"), None, "is not a linear model of hf-rnn-transfer"),
        (lambda c: c.update(ensemble_weight=2), None, "ensemble_weight .* must be in \\[0, 1\\], got 2"),
        (lambda c: c.update(version=9), None, "format version 9; this hf-rnn-transfer reads version 1"),
        (lambda c: c["analyzer"].update(ngram_range=[1, 3]), None, "unsupported analyzer"),
        (lambda c: c.update(id2label={"x": "a"}), None, "id2label must map class ids"),
        (lambda c: c.update(id2label={"0": "a"}), None, "2\\+ classes"),
        (lambda c: c.update(vocabulary="abc"), None, "vocabulary must be a list"),
        (lambda c: c["vocabulary"].append(c["vocabulary"][0]), None, "repeats a term"),
        (lambda c: c["vocabulary"].append("zz qq xx"), None, "idf has shape"),
        (None, lambda w: w.update(coef=w["coef"][:, :-1]), "do not fit 2 classes"),
        (None, lambda w: w.update(classes=np.array([0, 5])), "are not all ids of id2label"),
        (None, lambda w: w.update(idf=np.full_like(w["idf"], np.nan)), "idf holds NaN"),
        (None, lambda w: w.pop("intercept"), "lacks \\['intercept'\\]"),
    ],
)
def test_tampered_files_are_refused(tmp_path, fitted, config, tensors, message):
    fitted.save_pretrained(tmp_path)
    _tamper(tmp_path, config, tensors)
    with pytest.raises(ValueError, match=message):
        LinearTextClassifier.from_pretrained(str(tmp_path))


def test_unreadable_and_missing_files_are_refused(tmp_path, fitted, monkeypatch):
    with pytest.raises(FileNotFoundError, match="holds no linear model .*finetune --linear_companion"):
        LinearTextClassifier.from_pretrained(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="neither a folder nor a Hub repo id"):
        LinearTextClassifier.from_pretrained(str(tmp_path / "missing" / "deeper"))
    fitted.save_pretrained(tmp_path)
    (tmp_path / LINEAR_WEIGHTS_NAME).write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        LinearTextClassifier.from_pretrained(str(tmp_path))
    (tmp_path / LINEAR_CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        LinearTextClassifier.from_pretrained(str(tmp_path))
    monkeypatch.setattr("hf_rnn_transfer.linear_model.MAX_CONFIG_BYTES", 4)
    with pytest.raises(ValueError, match="larger than"):
        LinearTextClassifier.from_pretrained(str(tmp_path))


def test_fit_refuses_what_cannot_train(reviews):
    texts, labels, _ = reviews
    with pytest.raises(ValueError, match="2\\+ classes"):
        LinearTextClassifier.fit(texts[:10], [1] * 10)
    with pytest.raises(ValueError, match="as many labels as texts"):
        LinearTextClassifier.fit(texts[:10], labels[:9])
    with pytest.raises(TypeError, match="list of texts"):
        LinearTextClassifier.fit(texts, labels).predict_proba("one string")


def test_loads_from_the_offline_hub_at_a_revision(tmp_path, hub, fitted, reviews):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint, token=ALICE)
    api.create_repo("alice/linear")
    fitted.save_pretrained(tmp_path / "v1")
    first = api.upload_folder(repo_id="alice/linear", folder_path=tmp_path / "v1").oid
    LinearTextClassifier.fit(reviews[0][:50], [1, 0] * 25, LABELS).save_pretrained(tmp_path / "v2")
    api.upload_folder(repo_id="alice/linear", folder_path=tmp_path / "v2")
    pinned = LinearTextClassifier.from_pretrained("alice/linear", revision=first, token=ALICE)
    np.testing.assert_array_equal(pinned.predict_proba(reviews[2]), fitted.predict_proba(reviews[2]))
    assert len(LinearTextClassifier.from_pretrained("alice/linear", token=ALICE).vocabulary) < len(fitted.vocabulary)
    api.create_repo("alice/empty")
    with pytest.raises(FileNotFoundError, match="has no linear model"):
        LinearTextClassifier.from_pretrained("alice/empty", token=ALICE)
    with pytest.raises(FileNotFoundError, match="alice/none is not a folder, and there is no Hub repo of that name"):
        LinearTextClassifier.from_pretrained("alice/none", token=ALICE)
