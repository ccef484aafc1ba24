"""Inference for an audio model exported by common.sound.export, with numpy, soundfile
and onnxruntime alone: what a code competition's runtime has. No import from the
project, so this file ships in a bundle as it is.

The log-mel front end is common.spectrograms' in numpy: librosa's STFT (centred,
zero-padded, periodic Hann window) and the mel filterbank stored in the model's
metadata; resampling is band-limited by FFT, not soxr's, so a clip at another rate
than the model's comes out within a rounding of what training saw.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

META_KEY = "compete.audio"
MIN_SECONDS = 0.05  # as common.media: less is not a recording worth a prediction


class Unreadable(ValueError):
    """A file that holds no usable audio; the message is the reason."""


def read(path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at `sample_rate`. soundfile is given the bytes, so the
    container is found from them, not the name (WAV data inside an .mp3 reads)."""
    import soundfile
    try:
        data = Path(path).read_bytes()
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile reports every failure as a generic error
        raise Unreadable(" ".join(str(error).split()) or type(error).__name__) from None
    samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    if len(samples) < MIN_SECONDS * rate:
        raise Unreadable(f"{len(samples) / rate:.3f} s of audio (truncated?)")
    return resample(samples.mean(axis=1), rate, sample_rate)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return np.ascontiguousarray(samples, dtype=np.float32)
    length = int(round(len(samples) * target / rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    kept = np.zeros(length // 2 + 1, dtype=complex)
    count = min(len(spectrum), len(kept))
    kept[:count] = spectrum[:count]
    return (np.fft.irfft(kept, length) * (length / len(samples))).astype(np.float32)


def log_mel(samples: np.ndarray, filters: np.ndarray, n_fft: int, hop_length: int, top_db: float | None = None) -> np.ndarray:
    """(bands, frames) log power in dB, float16, as common.spectrograms.log_mel."""
    padded = np.pad(samples.astype(np.float32), n_fft // 2)
    if len(padded) < n_fft:
        padded = np.pad(padded, (0, n_fft - len(padded)))
    frames = 1 + (len(padded) - n_fft) // hop_length
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    strided = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length][:frames]
    power = np.abs(np.fft.rfft(strided * window, axis=1).astype(np.complex64)) ** 2
    mel = filters @ power.T
    decibels = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if top_db is not None:
        decibels = np.maximum(decibels, decibels.max() - top_db)
    return decibels.astype(np.float16)


def normalise(mel: np.ndarray) -> np.ndarray:
    x = mel - np.median(mel, axis=1, keepdims=True)
    return x / (x.std() + 1e-3)


def crops(array: np.ndarray, frames: int) -> np.ndarray:
    """Half-overlapping windows covering the clip, the last flush with its end."""
    x = array.astype(np.float32)
    length = x.shape[1]
    if length <= frames:
        window = np.zeros((x.shape[0], frames), dtype=np.float32)
        window[:, :length] = x
        return window[None]
    starts = list(range(0, length - frames + 1, frames // 2))
    if starts[-1] != length - frames:
        starts.append(length - frames)
    return np.stack([x[:, s:s + frames] for s in starts])


def load(path):
    """(onnxruntime session, metadata with the filterbank as an array)."""
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map[META_KEY])
    meta["filters"] = np.frombuffer(base64.b64decode(meta["filters"]), dtype=np.float32).reshape(meta["filters_shape"])
    return session, meta


def predict_onnx(path, files: list, batch: int = 256) -> np.ndarray:
    """As AudioModel.predict: binary P(second class) (n,), else (n, k); a file that
    cannot be read gets the training prior (its reason printed, one line)."""
    session, meta = load(path)
    mel = meta["mel"]
    prior = np.asarray(meta["prior"], dtype=np.float64)
    probabilities = np.tile(prior, (len(files), 1))
    name = session.get_inputs()[0].name
    for position, file in enumerate(files):
        try:
            samples = read(file, int(mel["sample_rate"]))
        except (Unreadable, OSError) as error:
            print(f"{file}: unreadable ({error}); predicted with the class prior")
            continue
        spectrogram = normalise(log_mel(samples, meta["filters"], int(mel["n_fft"]), int(mel["hop_length"]), mel.get("top_db")).astype(np.float32))
        windows = crops(spectrogram.astype(np.float16), int(meta["crop_frames"]))
        outputs = []
        for start in range(0, len(windows), batch):
            logits = session.run(None, {name: windows[start:start + batch][:, None]})[0].astype(np.float64)
            if meta["task"] == "multilabel":
                outputs.append(1.0 / (1.0 + np.exp(-logits)))
            else:
                logits -= logits.max(axis=1, keepdims=True)
                exp = np.exp(logits)
                outputs.append(exp / exp.sum(axis=1, keepdims=True))
        probabilities[position] = np.concatenate(outputs).mean(axis=0)
    return probabilities[:, 1] if meta["task"] == "binary" else probabilities
