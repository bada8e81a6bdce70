"""UCR series and array columns: normalisation, missing values, forecasting windows, real training steps."""

import numpy as np
import pytest
from datasets import Dataset

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, RNNForTimeSeriesForecasting
from hf_rnn_transfer.data import (
    DataCollatorForSeries,
    forecasting_windows,
    load_ucr,
    prepare_series,
    series_statistics,
)

from .conftest import SHARED_DATA, training_losses

UCR = SHARED_DATA / "ucr"


def train(model, dataset, tmp_path, steps=40, lr=1e-2):
    return training_losses(model, dataset, tmp_path, steps, lr, collator=DataCollatorForSeries())


@pytest.mark.needs_data
def test_ucr_ecg200_to_a_trained_classifier(tmp_path):
    raw = load_ucr("ECG200", root=UCR)
    assert len(raw["train"]) == 100 and raw["train"].features["label"].names == ["-1", "1"]
    series, labels = prepare_series(raw)
    assert np.asarray(series["train"][0]["input_values"]).shape == (96, 1)
    mean, std = series_statistics(series["train"])
    stacked = np.concatenate([np.asarray(r) for r in series["train"]["input_values"]])
    assert mean == pytest.approx(stacked.mean(0).tolist(), abs=1e-5) and std == pytest.approx(
        stacked.std(0).tolist(), abs=1e-5
    )
    model = RNNForSequenceClassification(
        RNNConfig(
            input_size=1,
            input_mean=mean,
            input_std=std,
            hidden_size=32,
            embedding_size=16,
            num_layers=1,
            cell_type="gru",
            id2label=labels.id2label,
            label2id=labels.label2id,
        )
    )
    losses = train(model, series["train"].remove_columns("length"), tmp_path)
    assert sum(losses[-8:]) / 8 < 0.85 * sum(losses[:8]) / 8, losses


@pytest.mark.needs_data
def test_forecasting_windows_train_the_forecasting_head(tmp_path):
    series, _ = prepare_series(load_ucr("GunPointAgeSpan", root=UCR)["train"].select(range(40)), label_column=None)
    windows = forecasting_windows(series, context_length=40, prediction_length=5, stride=20)
    first = np.asarray(series[0]["input_values"])
    np.testing.assert_allclose(windows[0]["input_values"], first[:40])
    np.testing.assert_allclose(windows[0]["labels"], first[40:45])
    mean, std = series_statistics(series)
    model = RNNForTimeSeriesForecasting(
        RNNConfig(
            input_size=1,
            input_mean=mean,
            input_std=std,
            hidden_size=32,
            embedding_size=16,
            num_layers=1,
            prediction_length=5,
        )
    )
    losses = train(model, windows, tmp_path, steps=60)
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, losses


@pytest.mark.needs_data
def test_multichannel_arrays_missing_values_and_bad_series():
    data = Dataset.from_dict(
        {"values": [[[1.0, 10.0], [np.nan, 20.0], [3.0, 30.0]], [[0.0, 0.0], [1.0, 1.0]]], "label": [0, 1]}
    )
    with pytest.raises(ValueError, match=r"1 NaN value\(s\): pass impute='linear'"):
        prepare_series(data)
    filled, _ = prepare_series(data, impute="linear")
    assert filled[0]["input_values"] == [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]
    assert prepare_series(data, impute="zero")[0][0]["input_values"][1] == [0.0, 20.0]
    infinite = Dataset.from_dict({"values": [[1.0, np.inf]], "label": [0]})
    with pytest.raises(ValueError, match="infinite values"):
        prepare_series(infinite)
    mixed = Dataset.from_dict({"values": [[[1.0, 2.0]], [[1.0, 2.0, 3.0]]], "label": [0, 1]})
    with pytest.raises(ValueError, match=r"different channel counts \[2, 3\]"):
        prepare_series(mixed)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['series'\]"):
        prepare_series(data, values_column="series")
    with pytest.raises(FileNotFoundError, match="UCR files not found"):
        load_ucr("NoSuchSet", root=UCR)


def test_series_collator_pads_and_masks():
    batch = DataCollatorForSeries()(
        [{"input_values": [[1.0], [2.0], [3.0]], "labels": 1}, {"input_values": [[4.0]], "labels": 0}]
    )
    assert batch["input_values"].shape == (2, 3, 1) and batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [1, 0] and batch["input_values"][1, 1:].abs().sum() == 0
    with pytest.raises(ValueError, match="mixes series with"):
        DataCollatorForSeries()([{"input_values": [[1.0]]}, {"input_values": [[1.0, 2.0]]}])


def test_series_labels_may_be_strings_and_unknown_test_labels_are_refused():
    from datasets import DatasetDict

    values = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    data = DatasetDict(
        train=Dataset.from_dict({"values": values, "label": ["walk", "run", "walk"]}),
        test=Dataset.from_dict({"values": values[:1], "label": ["run"]}),
    )
    series, labels = prepare_series(data)
    assert labels.names == ["run", "walk"] and labels.label2id == {"run": 0, "walk": 1}
    assert series["train"]["labels"] == [1, 0, 1] and series["test"]["labels"] == [0]
    data["test"] = Dataset.from_dict({"values": values[:1], "label": ["jump"]})
    with pytest.raises(ValueError, match="'jump'.*never had"):
        prepare_series(data)


def test_empty_series_and_empty_datasets_are_named():
    from datasets import Dataset, DatasetDict

    with pytest.raises(ValueError, match="series 0 of a batch in 'values' is empty"):
        prepare_series(DatasetDict({"train": Dataset.from_dict({"values": [[]], "label": [0]})}))
    with pytest.raises(ValueError, match="the 'train' split has no rows"):
        prepare_series(DatasetDict({"train": Dataset.from_dict({"values": [], "label": []})}))
    with pytest.raises(ValueError, match="at least one non-empty series"):
        series_statistics(Dataset.from_dict({"input_values": []}))


def test_series_statistics_read_a_flat_series_as_one_channel():
    from datasets import Dataset

    flat = Dataset.from_dict({"input_values": [[1.0, 2.0, 3.0], [5.0, 9.0]]})
    one_channel = Dataset.from_dict({"input_values": [[[1.0], [2.0], [3.0]], [[5.0], [9.0]]]})
    assert series_statistics(flat) == series_statistics(one_channel)
    assert series_statistics(flat)[0] == [4.0]
