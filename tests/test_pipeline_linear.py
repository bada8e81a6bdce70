"""`TextClassificationWithLinearPipeline`: `pipeline("text-classification")` averaging the RNN's and the linear
companion's probabilities, found beside the model or given, with mismatched labels and weights refused."""

import json
import textwrap

import numpy as np
import pytest
import torch
from transformers import pipeline

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, TextClassificationWithLinearPipeline
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.linear_model import LinearTextClassifier
from hf_rnn_transfer.pipeline_linear import LINEAR_PIPELINE, LINEAR_PIPELINE_TASK

from .conftest import WITHOUT_THE_PACKAGE, run_child

LABELS = {0: "negative", 1: "positive"}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A small (untrained) RNN classifier with its tokenizer and a linear model fitted beside it."""
    folder = tmp_path_factory.mktemp("kitchen")
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    tokenizer = train_tokenizer(reviews["text"][:300], vocab_size=400, model_max_length=64)
    torch.manual_seed(0)
    config = RNNConfig(
        vocab_size=len(tokenizer), pad_token_id=0, embedding_size=8, hidden_size=8, num_layers=1,
        id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
    )  # fmt: skip
    config.custom_pipelines = {LINEAR_PIPELINE_TASK: dict(LINEAR_PIPELINE)}  # as finetune --linear_companion sets
    RNNForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    LinearTextClassifier.fit(reviews["text"][:300], reviews["label"][:300], LABELS).save_pretrained(folder)
    return folder


TEXTS = ["The lid broke after a week.", "Great pan, heats evenly and cleans up easily.", "ok"]


def _table(answers) -> np.ndarray:
    """`top_k=None` answers as an array: one row per text, one column per label id."""
    return np.array([[dict((d["label"], d["score"]) for d in row)[n] for n in LABELS.values()] for row in answers])


def _rnn_probabilities(folder, texts):
    return _table(pipeline("text-classification", model=str(folder), top_k=None)(texts))


def _ensemble(folder, **kwargs):
    return pipeline(
        "text-classification", model=str(folder), pipeline_class=TextClassificationWithLinearPipeline, **kwargs
    )


def test_answers_are_the_average_of_both_models(model_folder):
    classify = _ensemble(model_folder)
    assert isinstance(classify, TextClassificationWithLinearPipeline)
    linear = LinearTextClassifier.from_pretrained(str(model_folder)).predict_proba(TEXTS)
    expected = (linear + _rnn_probabilities(model_folder, TEXTS)) / 2
    answers = classify(TEXTS, batch_size=2)
    assert [a["label"] for a in answers] == [LABELS[i] for i in expected.argmax(-1)]
    np.testing.assert_allclose([a["score"] for a in answers], expected.max(-1), rtol=1e-5)
    full = classify(TEXTS[0], top_k=None)
    np.testing.assert_allclose(sorted(d["score"] for d in full), sorted(expected[0]), rtol=1e-5)


def test_the_weight_moves_between_the_two_models(model_folder):
    linear = LinearTextClassifier.from_pretrained(str(model_folder))
    only_linear = _ensemble(model_folder, linear_model=linear, linear_weight=1.0, top_k=None)
    np.testing.assert_allclose(_table(only_linear(TEXTS)), linear.predict_proba(TEXTS), rtol=1e-5)
    saved_weight = LinearTextClassifier.from_pretrained(str(model_folder))
    saved_weight.ensemble_weight = 1.0  # the share saved with the linear model is the pipeline's default
    by_default = _ensemble(model_folder, linear_model=saved_weight, top_k=None)
    np.testing.assert_allclose(_table(by_default(TEXTS)), linear.predict_proba(TEXTS), rtol=1e-5)
    only_rnn = _ensemble(model_folder, linear_weight=0.0)
    expected = _rnn_probabilities(model_folder, TEXTS)
    np.testing.assert_allclose([a["score"] for a in only_rnn(TEXTS)], expected.max(-1), rtol=1e-5)


def test_refusals(model_folder, tmp_path):
    def build(**kwargs):
        return _ensemble(model_folder, **kwargs)

    with pytest.raises(ValueError, match=r"linear_weight \(the linear model's share\) is in \[0, 1\]"):
        build(linear_weight=1.5)
    other = LinearTextClassifier.fit(["good", "bad", "meh"], [0, 1, 2], {0: "a", 1: "b", 2: "c"})
    with pytest.raises(ValueError, match="are not the RNN's"):
        build(linear_model=other)
    with pytest.raises(FileNotFoundError, match="holds no linear model"):
        build(linear_model=str(tmp_path))
    with pytest.raises(ValueError, match="classifies single texts"):
        build()({"text": "a", "text_pair": "b"})


# Where only transformers is installed: neither the package nor scikit-learn can be imported.
REMOTE = WITHOUT_THE_PACKAGE + textwrap.dedent(
    """
    sys.modules["sklearn"] = None  # as if not installed: importing it fails, find_spec answers None
    from transformers import pipeline

    classify = pipeline(sys.argv[2], model=sys.argv[1], trust_remote_code=True, top_k=None)
    answers = classify(json.loads(sys.argv[3]))
    print(json.dumps({"module": type(classify).__module__, "class": type(classify).__name__, "answers": answers}))
    """
)


def test_remote_code_averages_without_the_package_or_scikit_learn(model_folder, tmp_path):
    """The save ships `pipeline_linear.py` and `linear_model.py` and names the task in `config.custom_pipelines`:
    `pipeline("text-classification-with-linear", trust_remote_code=True)` answers with the same average in a process
    that can import neither hf_rnn_transfer nor scikit-learn."""
    config = json.loads((model_folder / "config.json").read_text())
    assert config["custom_pipelines"][LINEAR_PIPELINE_TASK]["impl"] == LINEAR_PIPELINE["impl"]
    assert (model_folder / "pipeline_linear.py").is_file() and (model_folder / "linear_model.py").is_file()
    child = run_child(REMOTE, model_folder, LINEAR_PIPELINE_TASK, json.dumps(TEXTS), tmp_path=tmp_path)
    assert (
        child["module"].startswith("transformers_modules") and child["class"] == type(_ensemble(model_folder)).__name__
    )
    expected = _table(_ensemble(model_folder, top_k=None)(TEXTS))
    np.testing.assert_allclose(_table(child["answers"]), expected, rtol=1e-5)


def test_fitting_without_scikit_learn_says_what_to_install(monkeypatch):
    import sys

    for name in ("sklearn", "sklearn.feature_extraction.text", "sklearn.linear_model"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    with pytest.raises(ImportError, match=r"needs scikit-learn \(pip install scikit-learn\); loading and scoring"):
        LinearTextClassifier.fit(["good", "bad"], [0, 1], LABELS)
