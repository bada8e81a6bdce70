import pytest
from torch import nn

from hf_rnn_transfer import RNNConfig, RNNForCausalLM, RNNForSequenceClassification, RNNModel
from hf_rnn_transfer.freezing import FreezingSchedule, discriminative_learning_rates, dropout_modules_by_group

GROUPS = ["embedding", "layer_0", "layer_1", "head"]


def test_every_model_exposes_its_groups_bottom_to_top():
    model = RNNForSequenceClassification(RNNConfig(vocab_size=20, embedding_size=4, hidden_size=4, num_layers=2))
    groups = model.get_layer_groups()
    assert list(groups) == GROUPS
    assert groups["embedding"] == ["rnn.embeddings.weight"] and groups["head"] == [
        "classifier.weight",
        "classifier.bias",
    ]
    assert sorted(n for names in groups.values() for n in names) == sorted(n for n, _ in model.named_parameters())
    lm = RNNForCausalLM(RNNConfig(vocab_size=20, embedding_size=4, hidden_size=4, tie_word_embeddings=True))
    assert lm.get_layer_groups()["head"] == ["decoder.bias"]  # the tied decoder weight is the embedding
    series = RNNModel(RNNConfig(input_size=3, hidden_size=4, num_layers=1))
    assert list(series.get_layer_groups()) == ["input_projection", "layer_0"]


@pytest.mark.parametrize(
    ("strategy", "kwargs", "expected"),
    [
        ("none", {}, GROUPS),
        ("embeddings", {}, GROUPS[1:]),
        ("layers", {"freeze_layers": 1}, ["layer_1", "head"]),
        ("encoder", {}, ["head"]),
    ],
)
def test_static_strategies(strategy, kwargs, expected):
    schedule = FreezingSchedule(strategy, GROUPS, **kwargs)
    assert schedule.trainable(epoch=0) == expected and schedule.trainable(epoch=7.5, step=900) == expected


def test_gradual_unfreezing_from_the_top_by_epoch_and_by_step():
    by_epoch = FreezingSchedule("gradual", GROUPS, interval=1, unit="epoch")
    assert [by_epoch.trainable(epoch=e) for e in (0, 0.99, 1, 2, 3, 10)] == [
        ["head"],
        ["head"],
        ["layer_1", "head"],
        ["layer_0", "layer_1", "head"],
        GROUPS,
        GROUPS,
    ]
    by_step = FreezingSchedule("gradual", GROUPS, interval=5, unit="step")
    assert by_step.trainable(step=4) == ["head"] and by_step.trainable(step=5) == ["layer_1", "head"]
    assert by_step.num_stages == 4 and "every 5 steps" in by_step.describe()


def test_chain_thaw_trains_the_head_then_each_group_alone_then_all():
    schedule = FreezingSchedule("chain_thaw", GROUPS, interval=1, unit="step")
    assert [schedule.trainable(step=s) for s in range(6)] == [
        ["head"],
        ["embedding"],
        ["layer_0"],
        ["layer_1"],
        GROUPS,
        GROUPS,
    ]


def test_discriminative_learning_rates_divide_by_the_factor_per_group():
    rates = discriminative_learning_rates(GROUPS, 1e-2, 2.6)
    assert rates["head"] == 1e-2 and rates["layer_1"] == pytest.approx(1e-2 / 2.6)
    assert rates["embedding"] == pytest.approx(1e-2 / 2.6**3)


def test_each_dropout_belongs_to_the_group_whose_output_it_drops():
    model = RNNForSequenceClassification(RNNConfig(vocab_size=20, embedding_size=4, hidden_size=4, num_layers=3))
    groups = dropout_modules_by_group(model)
    assert groups["embedding"] == [model.rnn.embedding_dropout]
    assert groups["layer_0"] == [model.rnn.layer_dropouts[0]] and groups["layer_2"] == []
    assert groups["head"] == [model.dropout] and all(isinstance(d, nn.Dropout) for g in groups.values() for d in g)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "thaw"}, "freezing_strategy must be one of"),
        ({"strategy": "gradual", "unit": "batch"}, "unfreeze_unit must be one of epoch, step"),
        ({"strategy": "gradual", "interval": 0}, "unfreeze_interval must be positive"),
        ({"strategy": "layers", "freeze_layers": 3}, "freeze_layers must be between 0 and 2"),
    ],
)
def test_bad_schedules_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FreezingSchedule(group_names=GROUPS, **kwargs)
