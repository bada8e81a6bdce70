"""The chunked classifier encoder (ULMFiT's classifier `bptt`/`max_len`) and per-layer hidden sizes."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError

from hf_rnn_transfer import RNNConfig, RNNForCausalLM, RNNForSequenceClassification, RNNModel
from hf_rnn_transfer.transfer import transfer


def config(**overrides):
    values = dict(vocab_size=50, pad_token_id=0, embedding_size=8, hidden_size=12, num_layers=2, num_labels=3)
    values.update(overrides)
    return RNNConfig(**values)


def padded_batch(lengths=(11, 7, 3, 1), seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (len(lengths), max(lengths)), generator=generator)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
        mask[row, :length] = 1
    return ids, mask


def pair(cell="lstm", pooling="concat", **chunking):
    reference = RNNForSequenceClassification(config(cell_type=cell, pooling=pooling)).eval()
    chunked = RNNForSequenceClassification(config(cell_type=cell, pooling=pooling, **chunking)).eval()
    chunked.load_state_dict(reference.state_dict())
    return reference, chunked


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "concat"])
@pytest.mark.parametrize("chunking", [dict(classifier_bptt=3), dict(classifier_bptt=4, classifier_max_len=11)])
def test_chunked_equals_unchunked_when_max_len_covers_the_input(cell, pooling, chunking):
    reference, chunked = pair(cell, pooling, **chunking)
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).logits
        got = chunked(input_ids=ids, attention_mask=mask).logits
        hidden = chunked.rnn(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
        full = reference.rnn(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(hidden.hidden_states, full.hidden_states):  # every layer, zero at padding
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_max_len_pools_and_backpropagates_only_over_the_last_positions():
    reference, chunked = pair("lstm", "mean", classifier_bptt=2, classifier_max_len=3)
    ids, mask = padded_batch((11, 7, 3, 1))
    with torch.no_grad():
        hidden = reference.rnn(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        expected = torch.stack([hidden[r, max(0, n - 3) : n].mean(0) for r, n in enumerate((11, 7, 3, 1))])
        got = chunked.rnn(input_ids=ids, attention_mask=mask, use_cache=False)
    assert got.pooling_mask.sum(1).tolist() == [3, 3, 3, 1]
    torch.testing.assert_close(chunked.pooler(got.last_hidden_state, got.pooling_mask), expected, atol=1e-5, rtol=0)
    # gradients: chunks wholly before every sequence's last 3 positions ran without a graph
    chunked.train()
    embeddings = chunked.rnn.embeddings(ids).detach().requires_grad_(True)
    chunked(inputs_embeds=embeddings, attention_mask=mask, labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    per_position = embeddings.grad.abs().sum(-1)
    assert per_position[0, 8:].sum() > 0 and per_position[0, :8].sum() == 0  # row 0: 11 long, kept 8..10
    # the shortest row (1 long) forces its chunk (0..1) to keep a graph: its only position gets a gradient
    assert per_position[3, 0] > 0


def test_chunked_classifier_trains_saves_and_loads(tmp_path):
    model = RNNForSequenceClassification(config(classifier_bptt=4, classifier_max_len=6, hidden_sizes=[12, 6]))
    ids, mask = padded_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    labels = torch.tensor([0, 1, 2, 0])
    first = None
    for _ in range(30):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    model.save_pretrained(tmp_path)
    loaded = RNNForSequenceClassification.from_pretrained(tmp_path).eval()
    assert (loaded.config.classifier_bptt, loaded.config.classifier_max_len, loaded.config.hidden_sizes) == (
        4,
        6,
        [12, 6],
    )
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=ids, attention_mask=mask).logits, model.eval()(input_ids=ids, attention_mask=mask).logits
        )


def test_per_layer_sizes_build_every_head_and_transfer_by_layer():
    narrow = config(hidden_sizes=[12, 6])
    assert [layer.hidden_size for layer in RNNModel(narrow).layers] == [12, 6] and narrow.output_size == 6
    assert RNNForSequenceClassification(narrow).classifier.in_features == 6
    lm = RNNForCausalLM(config(hidden_sizes=[12, 6], tie_word_embeddings=True))
    assert lm.projection.in_features == 6 and lm.decoder.weight is lm.rnn.embeddings.weight
    ids, mask = padded_batch()
    assert lm(input_ids=ids, attention_mask=mask, labels=ids).logits.shape == (4, 11, 50)
    # the same sizes: everything moves; another top size: the first layer moves, the second is named
    target, report = transfer(lm, RNNForSequenceClassification(config(hidden_sizes=[12, 6], classifier_bptt=5)))
    assert {r.status for r in report.tensors if r.target.startswith("rnn.layers")} == {"copied"}
    with pytest.raises(ValueError, match="rnn.layers.1: hidden size 6 into 8"):
        transfer(lm, RNNForSequenceClassification(config(hidden_sizes=[12, 8])))
    moved, _ = transfer(lm, RNNForSequenceClassification(config(hidden_sizes=[12, 8])), transfer_layers=1)
    torch.testing.assert_close(moved.rnn.layers[0].weight_hh_l0, lm.rnn.layers[0].weight_hh_l0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(hidden_sizes=[12]), "one positive integer per layer"),
        (dict(hidden_sizes=[12, 0]), "one positive integer per layer"),
        (dict(classifier_bptt=0), "field 'classifier_bptt'"),
        (dict(classifier_max_len=10), "classifier_max_len needs classifier_bptt"),
        (dict(classifier_bptt=8, bidirectional=True), "needs a unidirectional model"),
    ],
)
def test_bad_chunking_and_size_settings_are_named(overrides, message):
    with pytest.raises(StrictDataclassError, match=message):
        config(**overrides)
