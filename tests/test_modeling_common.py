"""The common model tests, run over every head (as transformers' ModelTesterMixin and timm's common tests do): save/load
round trip, remote code, batching and padding invariance, gradient flow to every parameter, dtypes, resizing the
embeddings, and the uniform head API (`get_classifier` / `reset_classifier`)."""

import json
import textwrap
from dataclasses import dataclass

import pytest
import torch

from hf_rnn_transfer import (
    RNNConfig,
    RNNForCausalLM,
    RNNForMultiTaskSequenceClassification,
    RNNForSequenceClassification,
    RNNForTimeSeriesForecasting,
    RNNForTokenClassification,
    RNNModel,
)

from .conftest import WITHOUT_THE_PACKAGE, run_child

VOCAB, CHANNELS, TIME = 20, 3, 7
TOKENS = dict(vocab_size=VOCAB, pad_token_id=0)
SERIES = dict(input_size=CHANNELS)


@dataclass
class Head:
    """How to build, feed and read one head."""

    model_class: type
    config: dict
    output: str  # the output field that carries the prediction

    @property
    def tokens(self) -> bool:
        return "vocab_size" in self.config

    def build(self, **overrides):
        shape = dict(embedding_size=6, hidden_size=8, num_layers=2, num_labels=3, **self.config)
        return self.model_class(RNNConfig(**{**shape, **overrides})).eval()

    def inputs(self, batch: int = 3, lengths=None, seed: int = 0) -> dict:
        generator = torch.Generator().manual_seed(seed)
        lengths = lengths or [TIME] * batch
        mask = torch.zeros(batch, TIME, dtype=torch.long)
        for row, length in enumerate(lengths):
            mask[row, :length] = 1
        if self.tokens:
            values = {"input_ids": torch.randint(1, VOCAB, (batch, TIME), generator=generator) * mask}
        else:
            values = {"input_values": torch.randn(batch, TIME, CHANNELS, generator=generator) * mask[..., None]}
        values["attention_mask"] = mask
        if self.model_class is RNNForMultiTaskSequenceClassification:
            values["task_ids"] = torch.arange(batch) % 2
        return values

    def labels(self, inputs: dict):
        batch = inputs["attention_mask"].shape[0]
        if self.model_class in (RNNForSequenceClassification, RNNForMultiTaskSequenceClassification):
            return torch.arange(batch) % 2
        if self.model_class is RNNForTokenClassification:
            return (inputs["input_ids"] % 3).masked_fill(inputs["attention_mask"] == 0, -100)
        if self.model_class is RNNForCausalLM:
            return inputs["input_ids"]
        if self.model_class is RNNForTimeSeriesForecasting:
            return torch.randn(batch, 1, CHANNELS)
        return None

    def predict(self, model, inputs: dict) -> torch.Tensor:
        with torch.no_grad():
            return getattr(model(**inputs), self.output)


HEADS = {
    "encoder-tokens": Head(RNNModel, TOKENS, "last_hidden_state"),
    "encoder-series": Head(RNNModel, SERIES, "last_hidden_state"),
    "sequence": Head(RNNForSequenceClassification, {**TOKENS, "pooling": "concat"}, "logits"),
    "sequence-series": Head(RNNForSequenceClassification, {**SERIES, "bidirectional": True}, "logits"),
    "multitask": Head(
        RNNForMultiTaskSequenceClassification,
        {**TOKENS, "task_labels": {"books": ["neg", "pos"], "dvd": ["bad", "ok", "good"]}},
        "logits",
    ),
    "token": Head(RNNForTokenClassification, {**TOKENS, "bidirectional": True}, "logits"),
    "causal_lm": Head(RNNForCausalLM, {**TOKENS, "tie_word_embeddings": True}, "logits"),
    "causal_lm-adaptive": Head(
        RNNForCausalLM, {**TOKENS, "adaptive_softmax_cutoffs": [5, 12], "adaptive_softmax_div_value": 2}, "logits"
    ),
    "forecast": Head(RNNForTimeSeriesForecasting, SERIES, "predictions"),
}
PER_POSITION = ("last_hidden_state",)


@pytest.fixture(params=list(HEADS), ids=list(HEADS))
def head(request) -> Head:
    return HEADS[request.param]


def test_save_and_load_round_trip(head, tmp_path):
    model = head.build()
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    drop = ("_name_or_path",)
    assert {k: v for k, v in loaded.config.to_dict().items() if k not in drop} == {
        k: v for k, v in model.config.to_dict().items() if k not in drop
    }
    inputs = head.inputs()
    torch.testing.assert_close(head.predict(loaded, inputs), head.predict(model, inputs))


def test_a_padded_batch_gives_each_row_what_it_gives_alone(head):
    """Batching and padding invariance: right padding changes nothing at the real positions."""
    model = head.build()
    inputs = head.inputs(lengths=[TIME, 4, 2])
    batched = head.predict(model, inputs)
    for row, length in enumerate([TIME, 4, 2]):
        alone = {k: v[row : row + 1, :length] if v.dim() > 1 else v[row : row + 1] for k, v in inputs.items()}
        single = head.predict(model, alone)
        if batched.dim() == 3 and batched.shape[1] == TIME:  # per-position outputs: compare the real positions
            torch.testing.assert_close(batched[row, :length], single[0], atol=1e-5, rtol=1e-4)
        else:
            torch.testing.assert_close(batched[row], single[0], atol=1e-5, rtol=1e-4)


def test_every_parameter_gets_a_gradient(head):
    model = head.build().train()
    inputs = head.inputs(batch=4)
    labels = head.labels(inputs)
    output = model(**inputs, **({"labels": labels} if labels is not None else {}))
    loss = output.loss if labels is not None else output.last_hidden_state.pow(2).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_runs_in_other_dtypes(head, dtype):
    model = head.build()
    reference = head.predict(model, head.inputs())
    model = model.to(dtype)
    inputs = head.inputs()
    if not head.tokens:
        inputs["input_values"] = inputs["input_values"].to(dtype)
    output = head.predict(model, inputs)
    assert output.dtype == dtype and torch.isfinite(output.double()).all()
    if dtype is torch.float64:  # the multi-task head fills the columns a task lacks with the dtype's lowest value
        same_scale = [t.double().clamp(min=-1e30) for t in (output, reference)]
        torch.testing.assert_close(*same_scale, atol=1e-5, rtol=1e-4)


def test_resize_token_embeddings(head):
    model = head.build()
    if not head.tokens:
        assert model.get_input_embeddings() is None  # series read an input projection, not an embedding
        return
    if getattr(model, "adaptive", False):
        with pytest.raises(ValueError, match="an adaptive softmax's vocabulary is fixed"):
            model.resize_token_embeddings(VOCAB + 5)
        return
    model.resize_token_embeddings(VOCAB + 5)
    assert model.config.vocab_size == VOCAB + 5 and model.get_input_embeddings().weight.shape[0] == VOCAB + 5
    inputs = head.inputs()
    inputs["input_ids"][0, 0] = VOCAB + 4  # a new token
    output = head.predict(model, inputs)
    assert torch.isfinite(output).all()
    if isinstance(model, RNNForCausalLM):
        assert output.shape[-1] == VOCAB + 5
        assert model.decoder.weight.data_ptr() == model.rnn.embeddings.weight.data_ptr()  # still tied


def test_get_and_reset_classifier(head):
    model = head.build()
    classifier = model.get_classifier()
    if head.model_class is RNNModel:
        assert isinstance(classifier, torch.nn.Identity)
        with pytest.raises(ValueError, match="has no head to reset"):
            model.reset_classifier(2)
        return
    before = {n: p.clone() for n, p in classifier.named_parameters()}
    if head.model_class in (RNNForSequenceClassification, RNNForTokenClassification):
        model.reset_classifier(id2label={0: "a", 1: "b", 2: "c", 3: "d", 4: "e"})
        assert model.get_classifier().out_features == 5 and model.config.label2id["e"] == 4
        with pytest.raises(ValueError, match="num_labels >= 1"):
            model.reset_classifier(0)
    elif head.model_class is RNNForMultiTaskSequenceClassification:
        model.reset_classifier(task_labels={"music": ["x", "y", "z", "w"]})
        assert list(model.get_classifier()) == ["music"] and model.get_classifier()["music"].out_features == 4
        inputs = head.inputs()
        inputs["task_ids"] = torch.zeros_like(inputs["task_ids"])
        assert head.predict(model, inputs).shape[-1] == 4
        return
    elif head.model_class is RNNForTimeSeriesForecasting:
        model.reset_classifier(prediction_length=4)
        assert head.predict(model, head.inputs()).shape[1] == 4
    elif model.adaptive:
        model.reset_classifier()
        assert isinstance(model.get_classifier(), torch.nn.AdaptiveLogSoftmaxWithLoss)
    else:
        model.reset_classifier()
        assert model.get_classifier().weight.data_ptr() == model.rnn.embeddings.weight.data_ptr()  # re-tied
        return
    after = dict(model.get_classifier().named_parameters())
    assert any(after[n].shape != b.shape or not torch.equal(after[n], b) for n, b in before.items())
    assert torch.isfinite(head.predict(model, head.inputs())).all()


CHILD = WITHOUT_THE_PACKAGE + textwrap.dedent(
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification
    from transformers import AutoModelForTimeSeriesPrediction, AutoModelForTokenClassification

    auto = {"RNNModel": AutoModel, "RNNForSequenceClassification": AutoModelForSequenceClassification,
            "RNNForMultiTaskSequenceClassification": AutoModel, "RNNForTokenClassification":
            AutoModelForTokenClassification, "RNNForCausalLM": AutoModelForCausalLM,
            "RNNForTimeSeriesForecasting": AutoModelForTimeSeriesPrediction}
    out = {}
    for name, spec in json.loads(sys.argv[1]).items():
        model = auto[spec["class"]].from_pretrained(spec["folder"], trust_remote_code=True).eval()
        inputs = {k: torch.tensor(v) for k, v in spec["inputs"].items()}
        with torch.no_grad():
            out[name] = {"class": type(model).__name__, "output": getattr(model(**inputs), spec["output"]).tolist()}
    print(json.dumps(out))
    """
)


def test_every_head_loads_as_remote_code_without_the_package(tmp_path):
    specs, expected = {}, {}
    for name, head in HEADS.items():
        model = head.build()
        model.save_pretrained(tmp_path / name)
        inputs = head.inputs()
        specs[name] = {
            "class": head.model_class.__name__,
            "folder": str(tmp_path / name),
            "inputs": {k: v.tolist() for k, v in inputs.items()},
            "output": head.output,
        }
        expected[name] = head.predict(model, inputs)
    loaded = run_child(CHILD, json.dumps(specs), tmp_path=tmp_path)
    for name, head in HEADS.items():
        assert loaded[name]["class"] == head.model_class.__name__
        torch.testing.assert_close(torch.tensor(loaded[name]["output"]), expected[name], atol=1e-5, rtol=1e-4)
