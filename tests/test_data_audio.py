"""FSDD wav files to log-mel frames, a few training steps, and sample-rate checks."""

import csv
import wave
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import DataCollatorForSeries, prepare_audio, read_wav, series_statistics

# 60 recordings of one speaker ship with the tests (CC BY-SA 4.0, see its PROVENANCE.md): runs on any clone
FSDD = Path(__file__).parent / "fixtures" / "fsdd"


def fsdd_rows(count=60):
    rows = list(csv.DictReader((FSDD / "recordings.csv").open()))
    rows = [r for r in rows if r["speaker"] == "jackson"][:count]
    return Dataset.from_dict({"file": [r["file"] for r in rows], "label": [int(r["label"]) for r in rows]})


def test_fsdd_digits_to_log_mel_frames_and_training(tmp_path):
    features = prepare_audio(fsdd_rows(), root=FSDD, sampling_rate=8000, n_mels=20)
    first = np.asarray(features[0]["input_values"])
    assert first.shape[1] == 20 and first.shape[0] == features[0]["length"] > 10 and np.isfinite(first).all()
    mean, std = series_statistics(features)
    model = RNNForSequenceClassification(
        RNNConfig(
            input_size=20,
            input_mean=mean,
            input_std=std,
            hidden_size=32,
            embedding_size=32,
            num_layers=1,
            num_labels=10,
            pooling="concat",
        )
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=40,
        per_device_train_batch_size=16,
        learning_rate=1e-2,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        seed=0,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=features.remove_columns("length"), data_collator=DataCollatorForSeries()
    )
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:8]) / 8, losses


def test_another_sample_rate_is_refused_or_resampled(tmp_path):
    audio, rate = read_wav(FSDD / "recordings" / "0_jackson_0.wav")
    assert rate == 8000 and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    path = tmp_path / "16k.wav"
    upsampled = np.interp(np.arange(2 * len(audio)) / 16000, np.arange(len(audio)) / 8000, audio)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((upsampled * 32767).astype(np.int16).tobytes())
    rows = Dataset.from_dict({"file": [str(path)], "label": [0]})
    with pytest.raises(ValueError, match="sampled at 16000 Hz, not 8000 Hz: pass resample_audio=True"):
        prepare_audio(rows, root="/")
    resampled = prepare_audio(rows, root="/", resample_audio=True)
    original = prepare_audio(Dataset.from_dict({"file": ["recordings/0_jackson_0.wav"], "label": [0]}), root=FSDD)
    assert abs(resampled[0]["length"] - original[0]["length"]) <= 1


def test_resampling_does_not_alias_and_keeps_the_band():
    """Downsampling 16 -> 8 kHz: a 6 kHz tone (above the new 4 kHz Nyquist) is filtered out instead of folding back
    to 2 kHz at full level; a 1 kHz tone keeps its level."""
    import numpy as np

    from hf_rnn_transfer.data.audio import resample

    t = np.arange(16000) / 16000
    high = resample(np.sin(2 * np.pi * 6000 * t).astype(np.float32), 16000, 8000)
    low = resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 16000, 8000)
    assert len(high) == len(low) == 8000
    rms = lambda x: float(np.sqrt(np.mean(x[200:-200] ** 2)))  # noqa: E731 (edges: filter warm-up)
    assert rms(high) < 0.05 * rms(np.sin(2 * np.pi * 6000 * t))
    assert abs(rms(low) - 1 / np.sqrt(2)) < 0.02
    assert len(resample(low, 8000, 11025)) == 11025  # a ratio that is not an integer
