"""Inference for an audio model exported by common.sound.export, with numpy, soundfile
and onnxruntime alone: what a code competition's runtime has. No import from the
project, and Python 3.6 syntax (DrivenData's runtime), so this file ships in a bundle
as it is.

The numpy parts of training live here too, one copy for both sides: the pooled
statistics of the fast baseline, normalisation, crops, the blend and calibration.
The log-mel front end is common.spectrograms' in numpy: librosa's STFT (centred,
zero-padded, periodic Hann window) and the mel filterbank stored in the model's
metadata; resampling is band-limited by FFT, not soxr's, so a clip at another rate
than the model's comes out close to, not exactly, what training saw.
"""
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


def log_mel(samples: np.ndarray, filters: np.ndarray, n_fft: int, hop_length: int, top_db=None) -> np.ndarray:
    """(bands, frames) log power in dB, float16, as common.spectrograms.log_mel. The STFT
    is librosa.stft's defaults (librosa/librosa, librosa/core/spectrum.py at 5cf96067):
    centred frames zero-padded by n_fft // 2 (pad_mode="constant"), a periodic Hann
    window (get_window(fftbins=True)); within float16 rounding of librosa's (tested)."""
    padded = np.pad(samples.astype(np.float32), n_fft // 2)
    if len(padded) < n_fft:
        padded = np.pad(padded, (0, n_fft - len(padded)))
    frames = 1 + (len(padded) - n_fft) // hop_length
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    strided = np.stack([padded[start:start + n_fft] for start in range(0, frames * hop_length, hop_length)])
    power = np.abs(np.fft.rfft(strided * window, axis=1).astype(np.complex64)) ** 2
    mel = filters @ power.T
    decibels = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if top_db is not None:
        decibels = np.maximum(decibels, decibels.max() - top_db)
    return decibels.astype(np.float16)


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


# Pooled statistics for the fast baseline: the clip's spectrum, and how it moves in time.
def pooled(mel: np.ndarray) -> np.ndarray:
    """One vector per clip: the spectrum's statistics and the time statistics that tell
    confusable sounds apart (sweep direction, trill and pulse rhythm, calls per phrase)."""
    x = normalise(mel.astype(np.float32))
    return np.concatenate([spectrum(x), sweep(x), rhythm(x), phrases(x)]).astype(np.float32)


def spectrum(x: np.ndarray) -> np.ndarray:
    """Per-band mean, std, 50/90/99th percentiles of a normalised log-mel, and the mean
    absolute frame-to-frame change: what a clip-averaged spectrum knows."""
    quantiles = np.percentile(x, [50, 90, 99], axis=1)
    flux = np.abs(np.diff(x, axis=1)).mean(axis=1) if x.shape[1] > 1 else np.zeros(x.shape[0])
    return np.concatenate([x.mean(axis=1), x.std(axis=1), *quantiles, flux]).astype(np.float32)


SWEEP_LAGS = ((1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 2))   # (bands, frames)
SWEEP_GROUPS = 8


def sweep(x: np.ndarray) -> np.ndarray:
    """Which way the energy moves in pitch as time goes on: per band, the structure
    tensor's cross term (time slope times frequency slope, weighted by energy; its
    sign is the sweep's direction), and for a few (bands, frames) lags the rising
    diagonal's correlation against the falling one's, by band group and overall."""
    x = x if x.shape[1] >= 4 else np.pad(x, ((0, 0), (0, 4 - x.shape[1])))
    energy = np.maximum(x, 0)
    along_time = np.diff(x, axis=1)[:-1, :]
    along_pitch = np.diff(x, axis=0)[:, :-1]
    weight = energy[:-1, :-1]
    cross = (along_time * along_pitch * weight).mean(axis=1)
    scale = (along_pitch ** 2 * weight).mean(axis=1) + 1e-3
    out = [cross / scale, [cross.sum() / scale.sum()]]
    for bands, frames in SWEEP_LAGS:
        frames = min(frames, x.shape[1] - 1)
        rising = (energy[:-bands, :-frames] * energy[bands:, frames:]).mean(axis=1)
        falling = (energy[bands:, :-frames] * energy[:-bands, frames:]).mean(axis=1)
        total = rising + falling + 1e-3
        share = (rising - falling) / total
        usable = len(share) // SWEEP_GROUPS * SWEEP_GROUPS
        out += [share[:usable].reshape(SWEEP_GROUPS, -1).mean(axis=1), [(rising.sum() - falling.sum()) / total.sum()]]
    return np.concatenate(out).astype(np.float32)


RHYTHM_BANDS = 6        # the loudest bands: where the sound is
RHYTHM_WINDOW = 128     # frames (2.56 s) per modulation spectrum
RHYTHM_BINS = 25        # log-spaced modulation bins up to the frame rate's Nyquist (25 Hz)
RHYTHM_LAGS = 40        # autocorrelation lags (0.8 s)


def rhythm(x: np.ndarray) -> np.ndarray:
    """How the loudest bands' energy pulses: the log modulation spectrum of their
    envelope (trill rate, call rate) averaged over windows, and the envelope's
    autocorrelation (the phrase's rhythm)."""
    envelope = loudest_envelope(x)
    padded = np.pad(envelope, (0, max(0, RHYTHM_WINDOW - len(envelope))))
    window = np.hanning(RHYTHM_WINDOW)
    spectra = [np.abs(np.fft.rfft((padded[s:s + RHYTHM_WINDOW] - padded[s:s + RHYTHM_WINDOW].mean()) * window))
               for s in range(0, len(padded) - RHYTHM_WINDOW + 1, RHYTHM_WINDOW // 2)]
    modulation = np.mean(spectra, axis=0)[1:]
    modulation = modulation / (modulation.sum() + 1e-3)
    edges = np.unique(np.geomspace(1, len(modulation), RHYTHM_BINS + 1).astype(int))
    bins = np.log(np.array([modulation[a:b].mean() for a, b in zip(edges[:-1], edges[1:])]) + 1e-4)
    centred = envelope - envelope.mean()
    correlation = np.correlate(centred, centred, "full")[len(centred) - 1:]
    correlation = correlation / (correlation[0] + 1e-6)
    lags = np.zeros(RHYTHM_LAGS)
    count = min(RHYTHM_LAGS, len(correlation) - 1)
    lags[:count] = correlation[1:count + 1]
    return np.concatenate([bins, lags]).astype(np.float32)


def loudest_envelope(x: np.ndarray) -> np.ndarray:
    """The mean energy above the floor of the RHYTHM_BANDS loudest bands, frame by frame."""
    energy = np.maximum(x, 0)
    return energy[np.argsort(energy.mean(axis=1))[-RHYTHM_BANDS:]].mean(axis=0)


PHRASE_GAP = 15         # frames (0.3 s): calls closer than this belong to one phrase
PHRASE_ON = 0.3         # a frame is calling above this share of the envelope's 95th percentile


def phrases(x: np.ndarray) -> np.ndarray:
    """How calls group into phrases, which the autocorrelation's 0.8 s cannot see (a
    species calling 5 to a phrase beside one calling 2): the envelope split into calls
    (runs above PHRASE_ON of its 95th percentile) and the calls into phrases (gaps below
    PHRASE_GAP); the log of the mean and most calls per phrase, of the median and longest
    phrase, of the mean call and of the median gap inside a phrase (frames), the share of
    frames calling and the calls a second (at 50 frames a second). On birdcall's seed-0
    data the baseline's out-of-fold log loss goes from 0.4525 to 0.4467."""
    envelope = loudest_envelope(x)
    on = envelope > PHRASE_ON * np.percentile(envelope, 95) + 1e-6
    edges = np.diff(np.r_[0, on.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        return np.zeros(8, dtype=np.float32)
    gaps = starts[1:] - ends[:-1]
    phrase = np.cumsum(np.r_[True, gaps >= PHRASE_GAP]) - 1
    calls = np.bincount(phrase)
    first = np.r_[0, np.cumsum(calls)[:-1]]
    lengths = ends[first + calls - 1] - starts[first]
    inside = gaps[gaps < PHRASE_GAP]
    return np.array([np.log1p(calls.mean()), np.log1p(calls.max()), np.log1p(np.median(lengths)), np.log1p(lengths.max()),
                     np.log1p((ends - starts).mean()), np.log1p(np.median(inside)) if len(inside) else 0.0,
                     on.mean(), len(starts) / len(envelope) * 50], dtype=np.float32)


def normalise(mel: np.ndarray) -> np.ndarray:
    """Remove the recording's level and its noise floor: each band minus its median,
    the whole clip scaled by its overall spread. Recordings differ in gain and noise;
    what is heard in them does not."""
    x = mel - np.median(mel, axis=1, keepdims=True)
    return x / (x.std() + 1e-3)


def calibrated(baseline: np.ndarray, cnn, blend: float, temperature: float, floor: float, bias=None) -> np.ndarray:
    """p_cnn * blend + p_baseline * (1 - blend), sharpened or softened by a temperature
    on the log scale, shifted by a log-scale `bias` per class when there is one, then
    floored and renormalised (common.sound.Calibration)."""
    mixed = baseline if cnn is None or blend == 0 else blend * cnn + (1 - blend) * baseline
    logits = np.log(np.clip(mixed, 1e-12, None)) / temperature
    if bias is not None:
        logits = logits + np.asarray(bias, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    p = np.maximum(p, floor)
    return p / p.sum(axis=1, keepdims=True)


def mixed(baseline: np.ndarray, cnn: np.ndarray, blend: float) -> np.ndarray:
    """Per-label probabilities: p_cnn * blend + p_baseline * (1 - blend)."""
    return blend * cnn + (1 - blend) * baseline


def linear_probabilities(X: np.ndarray, linear: dict, outputs: int) -> np.ndarray:
    """The fast baseline's probabilities (common.sound.linear_baseline's arrays): a
    standardised logistic regression, zero for a class it never saw; one column per
    label for multilabel."""
    if "labels" in linear:
        return np.stack([linear_probabilities(X, label, 2)[:, 1] for label in linear["labels"]], axis=1)
    if "constant" in linear:
        return np.tile(np.asarray(linear["constant"], dtype=np.float64), (len(X), 1))
    coef = np.asarray(linear["coef"], dtype=np.float64)
    z = ((X - np.asarray(linear["mean"])) / np.asarray(linear["scale"])) @ coef.T + np.asarray(linear["intercept"])
    if coef.shape[0] == 1:  # two classes: scikit-learn's one logit for the second
        second = 1.0 / (1.0 + np.exp(-z[:, 0]))
        p = np.stack([1 - second, second], axis=1)
    else:
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
    out = np.zeros((len(X), outputs))
    out[:, np.asarray(linear["classes"], dtype=int)] = p
    return out


def script_path(path) -> Path:
    """The TorchScript copy common.sound.export writes beside the ONNX file."""
    return Path(path).with_suffix(".torchscript.pt")


def load(path):
    """(a function from a batch of crops to logits, the metadata with the filterbank as an
    array): onnxruntime on the ONNX file where it is installed, else torch on its
    TorchScript copy (Kaggle's image has torch and no onnxruntime); both carry the same
    metadata."""
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    if onnxruntime is not None and Path(path).is_file():
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = json.loads(session.get_modelmeta().custom_metadata_map[META_KEY])
        name = session.get_inputs()[0].name

        def logits(batch):
            return session.run(None, {name: batch})[0]
    else:
        import torch
        extra = {META_KEY: ""}
        module = torch.jit.load(str(script_path(path)), map_location="cpu", _extra_files=extra).eval()
        meta = json.loads(extra[META_KEY])

        def logits(batch):
            with torch.no_grad():
                return module(torch.from_numpy(batch)).numpy()
    meta["filters"] = np.frombuffer(base64.b64decode(meta["filters"]), dtype=np.float32).reshape(meta["filters_shape"])
    return logits, meta


def predict_exported(path, files: list, batch: int = 256) -> np.ndarray:
    """As AudioModel.predict: binary P(second class) (n,), else (n, k); a file that
    cannot be read gets the training prior (its reason printed, one line)."""
    network, meta = load(path)
    mel = meta["mel"]
    prior = np.asarray(meta["prior"], dtype=np.float64)
    probabilities = np.tile(prior, (len(files), 1))
    for position, file in enumerate(files):
        try:
            samples = read(file, int(mel["sample_rate"]))
        except (Unreadable, OSError) as error:
            print(f"{file}: unreadable ({error}); predicted with the class prior")
            continue
        spectrogram = log_mel(samples, meta["filters"], int(mel["n_fft"]), int(mel["hop_length"]), mel.get("top_db"))
        windows = crops(normalise(spectrogram.astype(np.float32)).astype(np.float16), int(meta["crop_frames"]))
        outputs = []
        for start in range(0, len(windows), batch):
            logits = network(windows[start:start + batch][:, None]).astype(np.float64)
            if meta["task"] == "multilabel":
                outputs.append(1.0 / (1.0 + np.exp(-logits)))
            else:
                logits -= logits.max(axis=1, keepdims=True)
                exp = np.exp(logits)
                outputs.append(exp / exp.sum(axis=1, keepdims=True))
        cnn = np.concatenate(outputs).mean(axis=0, keepdims=True)
        base = linear_probabilities(pooled(spectrogram)[None], meta["linear"], cnn.shape[1])
        if meta["task"] == "multilabel":
            probabilities[position] = mixed(base, cnn, meta["calibration"]["blend"])[0]
        else:
            probabilities[position] = calibrated(base, cnn, **meta["calibration"])[0]
    return probabilities[:, 1] if meta["task"] == "binary" else probabilities
