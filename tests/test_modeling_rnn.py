"""The model family: every head x cell x direction, padding invariance, state continuation, round trips, errors."""

import json

import pytest
import torch
from datasets import Dataset
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTimeSeriesPrediction,
    AutoModelForTokenClassification,
)

from hf_rnn_transfer import (
    RNNConfig,
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTimeSeriesForecasting,
    RNNForTokenClassification,
    RNNModel,
)

from .conftest import training_losses

CELLS = ["lstm", "gru", "rnn"]
DIRECTIONS = [False, True]
VOCAB, CHANNELS, BATCH, TIME = 40, 3, 4, 9
HEADS = {
    "encoder": RNNModel,
    "sequence": RNNForSequenceClassification,
    "token": RNNForTokenClassification,
    "causal_lm": RNNForCausalLM,
    "forecast": RNNForTimeSeriesForecasting,
}
AUTO = {
    "encoder": AutoModel,
    "sequence": AutoModelForSequenceClassification,
    "token": AutoModelForTokenClassification,
    "causal_lm": AutoModelForCausalLM,
    "forecast": AutoModelForTimeSeriesPrediction,
}
MATRIX = [
    (head, cell, bidirectional)
    for head in HEADS
    for cell in CELLS
    for bidirectional in DIRECTIONS
    if not (head == "causal_lm" and bidirectional)
]


def make_config(head: str, cell: str = "lstm", bidirectional: bool = False, **overrides) -> RNNConfig:
    kwargs = dict(
        cell_type=cell,
        bidirectional=bidirectional,
        embedding_size=8,
        hidden_size=12,
        num_layers=2,
        num_labels=3,
        pooling="concat",
    )
    if head == "forecast":
        kwargs.update(input_size=CHANNELS, input_mean=[1.0, -2.0, 0.5], input_std=[2.0, 1.0, 0.5], prediction_length=2)
    else:
        kwargs.update(vocab_size=VOCAB, pad_token_id=0)
    kwargs.update(overrides)
    return RNNConfig(**kwargs)


def make_inputs(config: RNNConfig, batch: int = BATCH, time: int = TIME) -> dict:
    if config.is_token_input:
        return {"input_ids": torch.randint(1, config.vocab_size, (batch, time))}
    return {"input_values": torch.randn(batch, time, config.input_size) * 3 + 1}


def make_labels(head: str, config: RNNConfig, batch: int = BATCH, time: int = TIME):
    if head == "sequence":
        return torch.randint(0, config.num_labels, (batch,))
    if head == "token":
        labels = torch.randint(0, config.num_labels, (batch, time))
        labels[:, -2:] = -100
        return labels
    if head == "causal_lm":
        return None  # labels = input_ids
    if head == "forecast":
        return torch.randn(batch, config.prediction_length, config.input_size)
    return None


def main_output(head: str, out) -> torch.Tensor:
    if head == "encoder":
        return out.last_hidden_state
    if head == "forecast":
        return out.predictions
    return out.logits


@pytest.mark.parametrize(("head", "cell", "bidirectional"), MATRIX)
def test_forward_shapes_and_loss(head, cell, bidirectional):
    config = make_config(head, cell, bidirectional)
    model = HEADS[head](config)
    inputs = make_inputs(config)
    labels = make_labels(head, config)
    if head == "causal_lm":
        labels = inputs["input_ids"]
    kwargs = {} if labels is None else {"labels": labels}
    out = model(**inputs, **kwargs, output_hidden_states=True, use_cache=True)
    expected = {
        "encoder": (BATCH, TIME, config.output_size),
        "sequence": (BATCH, config.num_labels),
        "token": (BATCH, TIME, config.num_labels),
        "causal_lm": (BATCH, TIME, VOCAB),
        "forecast": (BATCH, config.prediction_length, CHANNELS),
    }[head]
    assert tuple(main_output(head, out).shape) == expected
    assert len(out.hidden_states) == config.num_layers + 1
    assert len(out.recurrent_state) == config.num_layers
    state_tensors = 2 if cell == "lstm" else 1
    for layer_state in out.recurrent_state:
        assert len(layer_state) == state_tensors
        assert tuple(layer_state[0].shape) == (config.num_directions, BATCH, config.hidden_size)
    if head != "encoder":
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        out.loss.backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("use_cache", [False, True])
@pytest.mark.parametrize(("head", "cell", "bidirectional"), MATRIX)
def test_padding_does_not_change_a_sequence(head, cell, bidirectional, use_cache):
    """A sequence batched with longer, right-padded ones gives the outputs it gives alone, whether the batch runs
    packed or (unidirectional, no state wanted) on the padded tensor; so does its final state."""
    config = make_config(head, cell, bidirectional)
    model = HEADS[head](config).eval()
    inputs = make_inputs(config)
    name = next(iter(inputs))
    lengths = [TIME, 5, 2, 7]
    mask = torch.zeros(BATCH, TIME, dtype=torch.long)
    for i, length in enumerate(lengths):
        mask[i, :length] = 1
    if name == "input_ids":
        inputs[name] = inputs[name].masked_fill(mask == 0, config.pad_token_id)
    with torch.no_grad():
        out = model(**inputs, attention_mask=mask, use_cache=use_cache)
        batched = main_output(head, out)
        for i, length in enumerate(lengths):
            single = model(**{name: inputs[name][i : i + 1, :length]}, use_cache=True)
            alone = main_output(head, single)
            got = batched[i : i + 1, :length] if head in ("encoder", "token", "causal_lm") else batched[i : i + 1]
            torch.testing.assert_close(got, alone, rtol=1e-5, atol=1e-5)
            if head == "encoder" and length < TIME:
                assert batched[i, length:].abs().max() == 0  # padded positions are zero
            if use_cache:
                for layer_batched, layer_alone in zip(out.recurrent_state, single.recurrent_state):
                    for a, b in zip(layer_batched, layer_alone):
                        torch.testing.assert_close(a[:, i : i + 1], b, rtol=1e-5, atol=1e-5)
        if not use_cache and head != "causal_lm":
            assert out.recurrent_state is None


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", DIRECTIONS)
def test_left_padding_is_handled_like_right_padding(cell, bidirectional):
    config = make_config("token", cell, bidirectional)
    model = RNNForTokenClassification(config).eval()
    ids = torch.randint(1, VOCAB, (2, 6))
    right = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    left_ids = torch.stack([ids[0], torch.cat([torch.zeros(3, dtype=torch.long), ids[1, :3]])])
    left = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
    with torch.no_grad():
        r = model(input_ids=ids, attention_mask=right).logits
        l_ = model(input_ids=left_ids, attention_mask=left).logits
    torch.testing.assert_close(l_[0], r[0])
    torch.testing.assert_close(l_[1, 3:], r[1, :3])  # each real token keeps its position in the input


@pytest.mark.parametrize(("head", "cell", "bidirectional"), MATRIX)
def test_save_and_reload_through_auto_class_is_bitwise_identical(head, cell, bidirectional, tmp_path):
    config = make_config(head, cell, bidirectional)
    model = HEADS[head](config).eval()
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    assert {"modeling_rnn.py", "configuration_rnn.py"} <= files
    loaded = AUTO[head].from_pretrained(tmp_path).eval()
    assert type(loaded) is HEADS[head]
    inputs = make_inputs(config)
    with torch.no_grad():
        assert torch.equal(main_output(head, model(**inputs)), main_output(head, loaded(**inputs)))


def test_causal_lm_checkpoint_loads_into_classifier_with_only_the_head_new(tmp_path):
    lm = RNNForCausalLM(make_config("causal_lm"))
    lm.save_pretrained(tmp_path)
    classifier, info = RNNForSequenceClassification.from_pretrained(tmp_path, num_labels=2, output_loading_info=True)
    assert info["missing_keys"] == {"classifier.weight", "classifier.bias"}
    assert info["unexpected_keys"] == {"decoder.weight", "decoder.bias"}
    for name, tensor in lm.rnn.state_dict().items():
        assert torch.equal(classifier.rnn.state_dict()[name], tensor), name


def test_tied_decoder_shares_the_embedding_and_survives_a_round_trip(tmp_path):
    config = make_config("causal_lm", tie_word_embeddings=True)  # hidden 12 != embedding 8: projected
    lm = RNNForCausalLM(config)
    assert lm.decoder.weight is lm.rnn.embeddings.weight
    lm.save_pretrained(tmp_path)
    loaded = RNNForCausalLM.from_pretrained(tmp_path)
    assert loaded.decoder.weight is loaded.rnn.embeddings.weight
    assert torch.equal(loaded.decoder.weight, lm.decoder.weight)


@pytest.mark.parametrize("cell", CELLS)
def test_truncated_bptt_state_continues_the_stream_exactly(cell):
    lm = RNNForCausalLM(make_config("causal_lm", cell)).eval()
    ids = torch.randint(1, VOCAB, (2, 12))
    with torch.no_grad():
        full = lm(input_ids=ids)
        first = lm(input_ids=ids[:, :5])
        second = lm(input_ids=ids[:, 5:], recurrent_state=first.recurrent_state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], dim=1), full.logits)
    for a, b in zip(second.recurrent_state, full.recurrent_state):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y)


def test_shift_labels_train_every_position_of_a_chunk():
    lm = RNNForCausalLM(make_config("causal_lm"))
    ids = torch.randint(1, VOCAB, (2, 6))
    targets = torch.randint(1, VOCAB, (2, 6))
    out = lm(input_ids=ids, shift_labels=targets)
    expected = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(out.loss, expected)
    # with `labels`, the last position has no next token inside the chunk and is ignored
    out = lm(input_ids=ids, labels=ids)
    expected = torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize("cell", CELLS)
def test_generate_uses_the_state_and_matches_recomputation(cell):
    lm = RNNForCausalLM(make_config("causal_lm", cell)).eval()
    prompt = torch.randint(1, VOCAB, (2, 4))
    generated = lm.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert generated.shape == (2, 10)
    ids = prompt
    with torch.no_grad():
        for _ in range(6):
            next_id = lm(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
    assert torch.equal(generated, ids)
    sampled = lm.generate(prompt, max_new_tokens=5, do_sample=True, top_k=10, pad_token_id=0)
    assert sampled.shape == (2, 9)


def test_sequence_classification_problem_types():
    config = make_config("sequence", num_labels=4, problem_type="multi_label_classification")
    model = RNNForSequenceClassification(config)
    inputs = make_inputs(config)
    labels = torch.randint(0, 2, (BATCH, 4)).float()
    out = model(**inputs, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels))
    regression = RNNForSequenceClassification(make_config("sequence", num_labels=1))
    targets = torch.randn(BATCH)
    out = regression(**inputs, labels=targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), targets))


def test_forecasting_normalises_inputs_and_denormalises_predictions():
    config = make_config("forecast")
    model = RNNForTimeSeriesForecasting(config).eval()
    x = torch.randn(2, 7, CHANNELS)
    mean, std = torch.tensor(config.input_mean), torch.tensor(config.input_std)
    with torch.no_grad():
        out = model(input_values=x, output_hidden_states=True)
        # the first hidden state is the projection of the normalised input
        torch.testing.assert_close(out.hidden_states[0], model.rnn.input_projection((x - mean) / std))
    labels = torch.randn(2, 2, CHANNELS)
    loss = model(input_values=x, labels=labels).loss
    normalised_prediction = (out.predictions - mean) / std
    torch.testing.assert_close(loss, torch.nn.functional.mse_loss(normalised_prediction, (labels - mean) / std))


# ----------------------------------------------------------------------------------------------- bad input


def test_bad_inputs_get_clear_errors():
    token_model = RNNForSequenceClassification(make_config("sequence"))
    series_model = RNNForTimeSeriesForecasting(make_config("forecast"))
    ids = torch.randint(1, VOCAB, (2, 5))
    with pytest.raises(ValueError, match=r"vocabulary has 40 tokens \(valid ids 0..39\)"):
        token_model(input_ids=ids + VOCAB)
    with pytest.raises(ValueError, match="Pass exactly one of `input_ids` or `inputs_embeds`"):
        token_model(input_ids=ids, inputs_embeds=torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="Pass exactly one of"):
        token_model()
    with pytest.raises(ValueError, match="pass `input_ids`, not `input_values`"):
        token_model(input_values=torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"must have shape \[batch, time, 3\]"):
        series_model(input_values=torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"must have shape \[batch, time, 3\]"):
        series_model(input_values=torch.randn(2, 5))
    with pytest.raises(TypeError, match="input_ids"):  # a forecaster reads series only
        series_model(input_values=torch.randn(2, 5, 3), input_ids=ids)
    encoder = RNNModel(make_config("forecast"))
    with pytest.raises(ValueError, match="Pass exactly one of `input_values`"):
        encoder(input_values=torch.randn(2, 5, 3), input_ids=ids)
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1] = 0
    with pytest.raises(ValueError, match=r"`attention_mask` rows \[1\] are all zero"):
        token_model(input_ids=ids, attention_mask=mask)
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 2\] \(num_labels=3\)"):
        token_model(input_ids=ids, labels=torch.tensor([0, 3]))
    token_head = RNNForTokenClassification(make_config("token"))
    with pytest.raises(ValueError, match="token labels must be class ids"):
        token_head(input_ids=ids, labels=torch.full((2, 5), 7))
    with pytest.raises(ValueError, match="forecasting labels must have shape"):
        series_model(input_values=torch.randn(2, 5, 3), labels=torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="bidirectional must be False for RNNForCausalLM"):
        RNNForCausalLM(make_config("causal_lm", bidirectional=True))
    with pytest.raises(ValueError, match="needs continuous input"):
        RNNForTimeSeriesForecasting(make_config("sequence"))
    with pytest.raises(ValueError, match="one entry per layer"):
        token_model(input_ids=ids, recurrent_state=((torch.zeros(1, 2, 12), torch.zeros(1, 2, 12)),))


# ----------------------------------------------------------------------------------------------- training


def _train(model, dataset, tmp_path, steps=80, lr=1e-2) -> list[float]:
    return training_losses(model, dataset, tmp_path, steps, lr, batch_size=8)


@pytest.mark.parametrize("head", ["sequence", "token", "causal_lm", "forecast"])
def test_plain_transformers_trainer_reduces_the_loss(head, tmp_path):
    """Each head trains with the unmodified transformers Trainer on a learnable task, then saves and reloads."""
    config = make_config(head, "gru", pooling="last")
    generator = torch.Generator().manual_seed(0)
    n = 64
    if head == "forecast":
        t = torch.arange(12).float()
        phase = torch.rand(n, 1, generator=generator) * 6
        series = torch.sin(t[None] * 0.7 + phase)[..., None].repeat(1, 1, CHANNELS)
        rows = {"input_values": series[:, :10].tolist(), "labels": series[:, 10:].tolist()}
    else:
        ids = torch.randint(1, VOCAB, (n, TIME), generator=generator)
        if head == "sequence":
            rows = {"input_ids": ids.tolist(), "labels": (ids[:, -1] % 3).tolist()}
        elif head == "token":
            rows = {"input_ids": ids.tolist(), "labels": (ids % 3).tolist()}
        else:
            start = torch.randint(0, VOCAB, (n, 1), generator=generator)
            ids = (torch.arange(TIME)[None] * 3 + start) % (VOCAB - 1) + 1  # a counting sequence
            rows = {"input_ids": ids.tolist(), "labels": ids.tolist()}
    dataset = Dataset.from_dict(rows).with_format("torch")
    model = HEADS[head](config)
    losses = _train(model, dataset, tmp_path)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    model.save_pretrained(tmp_path / "model")
    AUTO[head].from_pretrained(tmp_path / "model")


@pytest.mark.parametrize("pooling", ["mean", "concat", "max", "last"])
def test_nan_or_inf_in_masked_padding_never_reaches_the_pooled_output(pooling):
    config = make_config("forecast", pooling=pooling)
    model = RNNForSequenceClassification(config).eval()
    values = torch.randn(2, 6, CHANNELS)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    clean = model(input_values=values, attention_mask=mask).logits
    values[1, 3:] = float("nan")
    values[1, 4] = float("inf")
    dirty = model(input_values=values, attention_mask=mask).logits
    assert torch.isfinite(dirty).all()
    torch.testing.assert_close(dirty, clean)


@pytest.mark.parametrize(
    "inputs",
    [
        {"input_ids": torch.zeros(2, 0, dtype=torch.long)},
        {"input_ids": torch.zeros(0, 4, dtype=torch.long)},
        {"inputs_embeds": torch.zeros(1, 0, 8)},
    ],
)
def test_zero_length_input_is_refused_by_name(inputs):
    model = RNNForSequenceClassification(make_config("sequence"))
    with pytest.raises(ValueError, match="needs at least one sequence of at least one position"):
        model(**inputs)


def test_an_empty_text_in_a_batch_is_named():
    model = RNNForSequenceClassification(make_config("sequence"))
    with pytest.raises(ValueError, match=r"rows \[1\] are all zero.*an empty text"):
        model(input_ids=torch.tensor([[3, 4], [0, 0]]), attention_mask=torch.tensor([[1, 1], [0, 0]]))


def test_causal_lm_labels_outside_the_vocabulary_are_refused():
    lm = RNNForCausalLM(make_config("causal_lm"))
    ids = torch.tensor([[3, 4, 5]])
    with pytest.raises(ValueError, match=rf"token ids in \[0, {VOCAB - 1}\] or -100.*got values in \[4, {VOCAB + 5}\]"):
        lm(input_ids=ids, labels=torch.tensor([[3, 4, VOCAB + 5]]))


def test_adaptive_softmax_gives_normalised_log_probs_and_their_loss():
    torch.manual_seed(0)
    config = RNNConfig(
        vocab_size=60, pad_token_id=0, embedding_size=8, hidden_size=16, num_layers=1, adaptive_softmax_cutoffs=[10, 30]
    )
    lm = RNNForCausalLM(config).eval()
    ids = torch.randint(1, 60, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    out = lm(input_ids=ids, attention_mask=mask, labels=ids)
    torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(3, 9))  # a distribution at every position
    targets = torch.nn.functional.pad(ids, (0, 1), value=-100)[:, 1:].masked_fill(mask == 0, -100)
    keep = targets != -100
    picked = out.logits[keep].gather(-1, targets[keep][:, None]).squeeze(-1)
    torch.testing.assert_close(out.loss, -picked.mean())  # the loss is the mean NLL of the shifted targets
    summed = lm(input_ids=ids, attention_mask=mask, labels=ids, num_items_in_batch=torch.tensor(40))
    torch.testing.assert_close(summed.loss, -picked.sum() / 40)  # the Trainer's gradient-accumulation contract
    lm.train()
    step = lm(input_ids=ids, labels=ids)
    assert step.logits is None and step.loss.requires_grad  # training computes only the targets' clusters
    assert lm(input_ids=ids).logits.shape == (3, 9, 60)  # without labels it gives the distribution
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the Trainer's --bf16 on a CPU
        loss = lm(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and lm.decoder.head.weight.grad is not None
    assert lm.get_output_embeddings() is None  # nothing to tie or resize
    generated = lm.eval().generate(ids[:, :3], max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert generated.shape == (3, 7)


def test_adaptive_softmax_lm_transfers_its_encoder_and_reinitialises_a_remapped_decoder():
    from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
    from hf_rnn_transfer.transfer import transfer

    texts = load_amazon_reviews("kitchen")["text"][:200]
    old, new = train_tokenizer(texts[:100], vocab_size=400), train_tokenizer(texts[100:], vocab_size=400)
    shape = dict(pad_token_id=0, embedding_size=8, hidden_size=16, num_layers=1, adaptive_softmax_cutoffs=[50, 150])
    source = RNNForCausalLM(RNNConfig(vocab_size=len(old), **shape))
    target, report = transfer(
        source,
        RNNForCausalLM(RNNConfig(vocab_size=len(new), **shape)),
        source_tokenizer=old,
        target_tokenizer=new,
        remap_vocabulary=True,
        transfer_head=True,
    )
    torch.testing.assert_close(target.rnn.layers[0].weight_hh_l0, source.rnn.layers[0].weight_hh_l0)
    assert "frequency order" in str(report)  # the decoder's clusters cannot follow a new vocabulary
    classifier, _ = transfer(source, RNNForSequenceClassification(RNNConfig(vocab_size=len(old), **shape)))
    torch.testing.assert_close(classifier.rnn.embeddings.weight, source.rnn.embeddings.weight)


def test_save_is_checksummed_and_flipped_bytes_are_refused_on_load(tmp_path):
    model = RNNForSequenceClassification(make_config("sequence"))
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert set(config["safetensors_sha256"]) == {"model.safetensors"}
    loaded = RNNForSequenceClassification.from_pretrained(tmp_path / "m")
    assert not hasattr(loaded.config, "safetensors_sha256")  # it describes files, not the model in memory
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte inside a tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(OSError, match="does not match the checksum"):
        RNNForSequenceClassification.from_pretrained(tmp_path / "m")


def test_an_interrupted_save_cannot_load_as_a_mixed_model(tmp_path):
    old, new = (
        RNNForSequenceClassification(make_config("sequence")),
        RNNForSequenceClassification(make_config("sequence", hidden_size=16)),
    )
    old.save_pretrained(tmp_path / "m")
    new.save_pretrained(tmp_path / "staged")
    # a save cut off after the new config landed but before its weights: new config beside old weights
    (tmp_path / "m" / "config.json").write_text((tmp_path / "staged" / "config.json").read_text())
    with pytest.raises(OSError, match="a save was interrupted"):
        RNNForSequenceClassification.from_pretrained(tmp_path / "m")
    new.save_pretrained(tmp_path / "m")  # saving again repairs it
    assert RNNForSequenceClassification.from_pretrained(tmp_path / "m").config.hidden_size == 16
    assert not [p for p in tmp_path.iterdir() if ".saving-" in p.name]  # no staging folder left behind


def test_save_pretrained_onto_a_file_is_refused_and_the_file_kept(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        RNNForSequenceClassification(make_config("sequence")).save_pretrained(target)
    assert target.read_text() == "mine"


def _sequence_log_prob(lm, prompt: torch.Tensor, continuation: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token) over the continuation, recomputed from scratch (no carried state)."""
    ids = torch.cat([prompt, continuation], dim=1)
    with torch.no_grad():
        log_probs = lm(input_ids=ids).logits.log_softmax(-1)
    steps = range(prompt.shape[1] - 1, ids.shape[1] - 1)
    return sum(log_probs[:, t].gather(-1, ids[:, t + 1 : t + 2]).squeeze(-1) for t in steps)


@pytest.mark.parametrize("cell", CELLS)
def test_beam_search_matches_an_exhaustive_search(cell):
    """Beam search must reorder the recurrent state with the beams: with as many beams as prefixes it is exact, and
    every returned score is the real log-probability of its sequence."""
    vocab, new_tokens = 5, 3
    config = make_config("causal_lm", cell, vocab_size=vocab, pad_token_id=None, initializer_range=1.0)
    torch.manual_seed(0)
    lm = RNNForCausalLM(config).eval()
    prompt = torch.tensor([[1, 2], [3, 0]])
    search = dict(max_new_tokens=new_tokens, do_sample=False, length_penalty=0.0, early_stopping=True)
    out = lm.generate(
        prompt,
        num_beams=vocab ** (new_tokens - 1),
        num_return_sequences=2,
        output_scores=True,
        return_dict_in_generate=True,
        **search,
    )
    continuations = torch.cartesian_prod(*[torch.arange(vocab)] * new_tokens)
    for row in range(prompt.shape[0]):
        rows = prompt[row : row + 1].expand(len(continuations), -1)
        exact = _sequence_log_prob(lm, rows, continuations)
        best = exact.topk(2)
        got = out.sequences[2 * row : 2 * row + 2, prompt.shape[1] :]
        assert got.tolist() == continuations[best.indices].tolist()
        torch.testing.assert_close(out.sequences_scores[2 * row : 2 * row + 2], best.values, atol=1e-4, rtol=0)
    small = lm.generate(
        prompt, num_beams=3, num_return_sequences=3, output_scores=True, return_dict_in_generate=True, **search
    )
    rescored = _sequence_log_prob(lm, prompt.repeat_interleave(3, 0), small.sequences[:, prompt.shape[1] :])
    torch.testing.assert_close(small.sequences_scores, rescored, atol=1e-4, rtol=0)
