import json

import pytest
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig

import hf_rnn_transfer  # noqa: F401  (registers the Auto classes)
from hf_rnn_transfer import RNNConfig


def test_round_trip_keeps_every_field(tmp_path):
    config = RNNConfig(
        cell_type="gru",
        vocab_size=100,
        embedding_size=8,
        hidden_size=16,
        num_layers=3,
        bidirectional=True,
        pooling="concat",
        num_labels=3,
        embedding_dropout=0.1,
        layer_dropout=0.2,
        classifier_dropout=0.3,
        pad_token_id=0,
    )
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, RNNConfig)
    for name in (
        "cell_type",
        "vocab_size",
        "embedding_size",
        "hidden_size",
        "num_layers",
        "bidirectional",
        "pooling",
        "num_labels",
        "embedding_dropout",
        "layer_dropout",
        "classifier_dropout",
        "pad_token_id",
    ):
        assert getattr(loaded, name) == getattr(config, name), name
    assert loaded.output_size == 32 and loaded.num_directions == 2


def test_model_type_is_unique_in_transformers():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    assert RNNConfig.model_type not in CONFIG_MAPPING_NAMES


def test_continuous_input_with_normalisation():
    config = RNNConfig(input_size=2, input_mean=[0.0, 1.0], input_std=[1.0, 2.0], channel_names=["x", "y"])
    assert not config.is_token_input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab_size": 10, "cell_type": "transformer"}, "'cell_type' expected one of ('lstm', 'gru', 'rnn')"),
        ({"vocab_size": 10, "input_size": 3}, "exactly one of `vocab_size`"),
        ({"vocab_size": 0}, "field 'vocab_size'"),
        ({"vocab_size": 10, "hidden_size": -4}, "field 'hidden_size'"),
        ({"vocab_size": 10, "num_layers": 0}, "field 'num_layers'"),
        ({"vocab_size": 10, "hidden_size": "big"}, "field 'hidden_size'"),
        ({"vocab_size": 10, "pooling": "attention"}, "'pooling' expected one of ('last', 'mean', 'max', 'concat')"),
        ({"vocab_size": 10, "layer_dropout": 1.5}, "field 'layer_dropout'"),
        ({"vocab_size": 10, "pad_token_id": 10}, "pad_token_id must be in [0, vocab_size=10)"),
        ({"vocab_size": 10, "hidden_sizes": [8]}, "hidden_sizes must list one positive integer per layer (2)"),
        ({"vocab_size": 10, "classifier_max_len": 8}, "classifier_max_len needs classifier_bptt"),
        ({"input_size": 2, "input_mean": [0.0], "input_std": [1.0]}, "one entry per input channel (2)"),
        ({"input_size": 1, "input_mean": [0.0], "input_std": [0.0]}, "input_std must be strictly positive"),
        ({"input_size": 1, "input_mean": [0.0]}, "must be given together"),
        ({"vocab_size": 10, "input_mean": [0.0]}, "only applies to continuous input"),
        ({"input_size": 3, "tie_word_embeddings": True}, "tie_word_embeddings needs token input"),
        ({"vocab_size": 10, "forecasting_loss": "huber"}, "'forecasting_loss' expected one of ('mse', 'mae')"),
        ({"vocab_size": 10, "problem_type": "ranking"}, "problem_type must be one of"),
        ({"vocab_size": 10, "task_labels": {"books": ["only-one"]}}, "task_labels['books'] must list at least two"),
        ({"vocab_size": 10, "task_labels": {}}, "task_labels must map each task name"),
        ({"vocab_size": 10, "adaptive_softmax_cutoffs": [6, 3]}, "adaptive_softmax_cutoffs must be increasing"),
        ({"vocab_size": 10, "adaptive_softmax_cutoffs": [4, 10]}, "between 1 and vocab_size - 1 (9)"),
        ({"input_size": 3, "adaptive_softmax_cutoffs": [2]}, "adaptive_softmax_cutoffs needs token input"),
        (
            {"vocab_size": 100, "hidden_size": 8, "adaptive_softmax_cutoffs": [10, 20, 40]},
            "leave the last 0 of the 8-wide output",
        ),
        (
            {"vocab_size": 10, "adaptive_softmax_cutoffs": [4], "tie_word_embeddings": True},
            "adaptive_softmax_cutoffs and tie_word_embeddings exclude each other",
        ),
        ({"vocab_size": 10, "adaptive_softmax_div_value": 0.5}, "field 'adaptive_softmax_div_value'"),
    ],
)
def test_invalid_values_name_the_field(kwargs, message):
    """transformers 5's `@strict` validation: field validators and `validate_architecture` name what is wrong."""
    with pytest.raises(StrictDataclassError) as err:
        RNNConfig(**kwargs)
    assert message in str(err.value)


def test_no_arguments_build_a_token_config_as_transformers_configs_do():
    assert RNNConfig().vocab_size == 32_000
    assert AutoConfig.for_model("rnn_transfer").vocab_size == 32_000
    assert RNNConfig(input_size=3).vocab_size is None
    assert RNNConfig(vocab_size=10, layer_dropout=0).layer_dropout == 0  # an int where a float is expected


def test_config_file_with_unknown_cell_type_fails_clearly(tmp_path):
    RNNConfig(vocab_size=10).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    data["cell_type"] = "lstn"
    path.write_text(json.dumps(data))
    with pytest.raises(StrictDataclassError, match="'cell_type' expected one of \\('lstm', 'gru', 'rnn'\\), got lstn"):
        AutoConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("typo", "meant"), [("hiden_size", "hidden_size"), ("num_layer", "num_layers"), ("celltype", "cell_type")]
)
def test_a_misspelled_field_is_refused_with_the_field_it_resembles(typo, meant):
    with pytest.raises(ValueError, match=f"unknown field '{typo}': did you mean '{meant}'"):
        RNNConfig(vocab_size=10, **{typo: 16})


def test_other_custom_attributes_are_kept_as_transformers_allows():
    assert RNNConfig(vocab_size=10, dataset_note="kitchen").dataset_note == "kitchen"
