"""Audio: wav files to log-mel frames (`transformers.audio_utils`, no torchaudio), as continuous `input_values`."""

import wave
from pathlib import Path

import numpy as np
from datasets import Dataset
from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

from .labels import require_columns


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A PCM wav file as mono float32 in [-1, 1], and its sampling rate."""
    with wave.open(str(path), "rb") as handle:
        rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
        frames = handle.readframes(handle.getnframes())
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None:
        raise ValueError(f"{path}: {8 * width}-bit samples are not supported (8, 16 or 32-bit PCM).")
    audio = np.frombuffer(frames, dtype=dtype).astype(np.float32)
    audio = (audio - 128) / 128 if width == 1 else audio / float(np.iinfo(dtype).max)
    return audio.reshape(-1, channels).mean(axis=1), rate


def resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (`scipy.signal.resample_poly`): its low-pass filter removes what lies above the new
    Nyquist frequency, so downsampling does not fold high frequencies back into the band (aliasing)."""
    from math import gcd

    from scipy.signal import resample_poly

    if rate == target_rate:
        return audio
    if rate <= 0 or target_rate <= 0:
        raise ValueError(f"sampling rates must be positive, got {rate} -> {target_rate} Hz.")
    common = gcd(int(rate), int(target_rate))
    return resample_poly(audio, target_rate // common, rate // common).astype(np.float32)


def log_mel(audio: np.ndarray, sampling_rate: int, n_mels: int = 40, frame_ms: float = 25, hop_ms: float = 10):
    """Log-mel frames `[frames, n_mels]` (Hann window, power spectrum, Slaney mel scale)."""
    frame = int(sampling_rate * frame_ms / 1000)
    hop = int(sampling_rate * hop_ms / 1000)
    fft = 1 << (frame - 1).bit_length()
    if len(audio) < frame:
        audio = np.pad(audio, (0, frame - len(audio)))
    filters = mel_filter_bank(
        num_frequency_bins=fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=20.0,
        max_frequency=sampling_rate / 2,
        sampling_rate=sampling_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    features = spectrogram(
        audio,
        window_function(frame, "hann"),
        frame_length=frame,
        hop_length=hop,
        fft_length=fft,
        power=2.0,
        mel_filters=filters,
        log_mel="log10",
        mel_floor=1e-10,
        center=False,
    )
    return features.T.astype(np.float32)


def prepare_audio(
    dataset: Dataset,
    path_column: str = "file",
    label_column: str | None = "label",
    root: str | Path = ".",
    sampling_rate: int = 8000,
    resample_audio: bool = False,
    n_mels: int = 40,
) -> Dataset:
    """
    Read each row's wav file and compute log-mel frames: `input_values` `[frames, n_mels]`, `labels`, `length`.

    Raises:
        ValueError: a file recorded at another rate than `sampling_rate` unless `resample_audio=True`; a missing
            column.
    """
    require_columns(dataset, path_column, *([label_column] if label_column else []))

    def convert(batch):
        values = []
        for name in batch[path_column]:
            audio, rate = read_wav(Path(root) / name)
            if rate != sampling_rate:
                if not resample_audio:
                    raise ValueError(
                        f"{name} is sampled at {rate} Hz, not {sampling_rate} Hz: pass "
                        "resample_audio=True to resample it, or set sampling_rate."
                    )
                audio = resample(audio, rate, sampling_rate)
            values.append(log_mel(audio, sampling_rate, n_mels).tolist())
        out = {"input_values": values, "length": [len(v) for v in values]}
        if label_column:
            out["labels"] = batch[label_column]
        return out

    return dataset.map(convert, batched=True, batch_size=64, remove_columns=dataset.column_names)
