"""`TransferConfig`: validated, serialisable, saved beside the weights; lineage and L2-SP survive a reload."""

import json

import pytest
import torch
from datasets import Dataset
from huggingface_hub import HfApi
from transformers import HfArgumentParser

from hf_rnn_transfer import (
    RNNConfig,
    RNNForCausalLM,
    RNNForSequenceClassification,
    TransferConfig,
    TransferTrainer,
    TransferTrainingArguments,
)
from hf_rnn_transfer.transfer import TransferReport, source_reference_weights, transfer
from hf_rnn_transfer.transfer_config import TransferArguments, transfer_config_from_arguments

from .conftest import ALICE


def config(**overrides) -> RNNConfig:
    values = dict(vocab_size=30, embedding_size=8, hidden_size=12, num_layers=2, pad_token_id=0)
    return RNNConfig(**{**values, **overrides})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"transfer_layers": -1}, "transfer_layers must be None (all), a count k >= 0 or a list"),
        ({"transfer_layers": True}, "transfer_layers must be None"),
        ({"transfer_layers": "first"}, "transfer_layers takes all, a count k or layer indices"),
        ({"transfer_head": "yes"}, "transfer_head must be True or False"),
        ({"source": ""}, "source must be a non-empty string"),
        ({"channel_map": "ecg"}, "channel_map takes target=source pairs"),
        ({"average_weights": [1, 1]}, "average_weights needs average_sources"),
        ({"average_sources": ["a/b"], "average_weights": [1]}, "one non-negative weight per source (2"),
    ],
)
def test_bad_values_are_refused_naming_the_field(values, message):
    with pytest.raises(ValueError) as err:
        TransferConfig(**values)
    assert message in str(err.value)


def test_round_trip_and_unknown_keys(tmp_path):
    original = TransferConfig(source="alice/lm", revision="a" * 40, transfer_layers=[0, 2], channel_map={"x": "y"})
    original.save_pretrained(tmp_path)
    assert TransferConfig.from_pretrained(tmp_path) == original
    assert TransferConfig.from_dict(json.loads((tmp_path / "transfer_config.json").read_text())) == original
    with pytest.raises(ValueError, match="'transfer_layer' \\(did you mean 'transfer_layers'\\?\\)"):
        TransferConfig.from_dict({"transfer_layer": 1})
    with pytest.raises(ValueError, match="Unknown TransferConfig field"):
        transfer(RNNForCausalLM(config()), RNNForSequenceClassification(config()), transfer_layer=1)


def test_command_line_flags_come_from_the_config():
    (arguments,) = HfArgumentParser(TransferArguments).parse_args_into_dataclasses(
        ["--source", "alice/lm", "--transfer_layers", "0,2", "--channel_map", "a=x,b=y", "--transfer_head", "true"]
    )
    parsed = transfer_config_from_arguments(arguments)
    assert parsed == TransferConfig(
        source="alice/lm", transfer_layers=[0, 2], channel_map={"a": "x", "b": "y"}, transfer_head=True
    )
    (arguments,) = HfArgumentParser(TransferArguments).parse_args_into_dataclasses(["--transfer_layers", "1"])
    assert transfer_config_from_arguments(arguments).transfer_layers == 1


def test_a_config_object_and_keywords_give_the_same_transfer():
    source = RNNForCausalLM(config())
    by_config, report = transfer(source, RNNForSequenceClassification(config()), TransferConfig(transfer_layers=1))
    by_keyword, same = transfer(source, RNNForSequenceClassification(config()), transfer_layers=1)
    assert [(t.target, t.status) for t in report.tensors] == [(t.target, t.status) for t in same.tensors]
    assert by_config.transfer_config.transfer_layers == 1
    with pytest.raises(ValueError, match="remap_vocabulary=False"):
        from hf_rnn_transfer.data import train_tokenizer

        a = train_tokenizer(["one two three"] * 3, min_frequency=1)
        b = train_tokenizer(["four five six"] * 3, min_frequency=1)
        transfer(
            RNNForCausalLM(config(vocab_size=len(a))),
            RNNForSequenceClassification(config(vocab_size=len(b))),
            remap_vocabulary=False,
            source_tokenizer=a,
            target_tokenizer=b,
        )


def test_explicit_channel_map():
    source = RNNForSequenceClassification(
        RNNConfig(input_size=2, channel_names=["lead_i", "lead_ii"], hidden_size=8, num_layers=1, embedding_size=6)
    )
    target = RNNForSequenceClassification(
        RNNConfig(input_size=1, channel_names=["ecg"], hidden_size=8, num_layers=1, embedding_size=6)
    )
    model, report = transfer(source, target, channel_map={"ecg": "lead_ii"})
    torch.testing.assert_close(model.rnn.input_projection.weight[:, 0], source.rnn.input_projection.weight[:, 1])
    assert report.input_channels["matched"] == ["ecg"]
    with pytest.raises(ValueError, match="channel_map names channels the models do not have \\(source 'v5'\\)"):
        transfer(source, RNNForSequenceClassification(target.config), channel_map={"ecg": "v5"})


def _tiny_dataset(n=16):
    torch.manual_seed(1)
    ids = torch.randint(1, 30, (n, 6))
    return Dataset.from_dict({"input_ids": ids.tolist(), "labels": (ids[:, 0] > 15).long().tolist()})


def _train_with_l2sp(model, tmp_path, steps=2):
    args = TransferTrainingArguments.for_experiment(
        str(tmp_path / "l2sp"), max_steps=steps, per_device_train_batch_size=8, l2sp_alpha=0.1, learning_rate=0.05
    )
    trainer = TransferTrainer(model=model, args=args, train_dataset=_tiny_dataset())
    reference = {n: r.clone() for n, r in trainer._l2sp_reference.items() if r is not None}
    trainer.train()
    return reference


def test_saved_and_reloaded_model_keeps_its_transfer_and_trains_with_l2sp(tmp_path):
    source = RNNForCausalLM(config())
    source.save_pretrained(tmp_path / "source")
    model = RNNForSequenceClassification.from_pretrained(tmp_path / "source", num_labels=2, transfer_layers=1)
    _train_with_l2sp(model, tmp_path)  # moves the weights away from the source
    model.save_pretrained(tmp_path / "finetuned")
    assert {"transfer_config.json", "transfer_report.json"} <= {p.name for p in (tmp_path / "finetuned").iterdir()}

    reloaded = RNNForSequenceClassification.from_pretrained(tmp_path / "finetuned")
    assert reloaded.transfer_config == model.transfer_config
    assert reloaded.transfer_config.source == str(tmp_path / "source")
    assert isinstance(reloaded.transfer_report, TransferReport)
    assert reloaded.transfer_report.counts() == model.transfer_report.counts()
    assert not hasattr(reloaded, "transfer_reference")
    reference = _train_with_l2sp(reloaded, tmp_path)
    # the reference is the source's weights, not the fine-tuned ones the reload started from
    torch.testing.assert_close(reference["rnn.layers.0.weight_hh_l0"], source.rnn.layers[0].weight_hh_l0)
    assert "rnn.layers.1.weight_hh_l0" not in reference  # not transferred: pulled towards zero by beta only
    # saving a model that was not built by a transfer into the same folder removes the stale lineage
    RNNForSequenceClassification(config(num_labels=2)).save_pretrained(tmp_path / "finetuned")
    assert not (tmp_path / "finetuned" / "transfer_config.json").exists()
    assert (
        getattr(RNNForSequenceClassification.from_pretrained(tmp_path / "finetuned"), "transfer_config", None) is None
    )


def test_hub_lineage_is_pinned_and_survives_a_round_trip(hub, tmp_path):
    source = RNNForCausalLM(config())
    first = source.push_to_hub("alice/pinned-source", token=ALICE).oid
    model = RNNForSequenceClassification.from_pretrained(
        "alice/pinned-source", transfer=TransferConfig(), num_labels=2, token=ALICE
    )
    assert model.transfer_config.source == "alice/pinned-source" and model.transfer_config.revision == first
    model.push_to_hub("alice/pinned-target", token=ALICE)
    RNNForCausalLM(config()).push_to_hub("alice/pinned-source", token=ALICE)  # the source moves on
    assert HfApi().model_info("alice/pinned-source").sha != first

    pulled = RNNForSequenceClassification.from_pretrained("alice/pinned-target", token=ALICE)
    assert pulled.transfer_config.revision == first
    assert pulled.transfer_report.source == f"alice/pinned-source@{first}"
    reference = source_reference_weights(pulled)
    torch.testing.assert_close(reference["rnn.layers.1.weight_ih_l0"], source.rnn.layers[1].weight_ih_l0)
    _train_with_l2sp(pulled, tmp_path)


def test_l2sp_without_lineage_says_how_to_get_one(tmp_path):
    with pytest.raises(ValueError, match="L2-SP needs to know which weights came from the source"):
        _train_with_l2sp(RNNForSequenceClassification(config(num_labels=2)), tmp_path)
    model, _ = transfer(RNNForCausalLM(config()), RNNForSequenceClassification(config(num_labels=2)))
    del model.transfer_reference
    model.transfer_config = model.transfer_config.replace(source=None)
    with pytest.raises(ValueError, match="does not record the source"):
        _train_with_l2sp(model, tmp_path)


def test_hub_lineage_is_pinned_with_a_transformers_that_has_no_resolve_revision(hub, monkeypatch):
    """transformers 5.17 (seen on a GPU image) has no `resolve_revision`: the load asks the Hub for the commit."""
    from hf_rnn_transfer import modeling_rnn

    monkeypatch.setattr(modeling_rnn, "resolve_revision", None)
    first = RNNForCausalLM(config()).push_to_hub("alice/pinned-old", token=ALICE).oid
    model = RNNForSequenceClassification.from_pretrained(
        "alice/pinned-old", transfer=TransferConfig(), num_labels=2, token=ALICE
    )
    assert model.transfer_config.revision == first
    assert RNNForCausalLM.from_pretrained("alice/pinned-old", revision="main", token=ALICE).loaded_commit == first
    with pytest.raises(OSError, match="alice/missing-old"):
        RNNForCausalLM.from_pretrained("alice/missing-old", token=ALICE)
