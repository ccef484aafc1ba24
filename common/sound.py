"""Models on log-mel spectrograms: a fast baseline on pooled statistics, a CNN on log-mel
crops (or a timm backbone) trained with the shared trainer (random crop, mixup, and on
request gain and SpecAugment-style masks), test-time averaging over crops, the blend of
the two calibrated for log loss, and `AudioModel`, the whole path from a list of audio
files to probabilities for any classification task; `export` writes it as ONNX for
common/sound_inference.py, which predicts with numpy, soundfile and onnxruntime alone.

Tasks as in competitions/tabular/model.py: binary (y 0/1; predict gives P(second
class), shape (n,)), multiclass (y the class index; (n, k) probabilities), multilabel
(y (n, k) 0/1; (n, k) probabilities, one independent sigmoid per label).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, spectrograms
from common.metrics import multiclass_log_loss
# one copy of each, numpy alone, shipped with an export
from common.sound_inference import calibrated, crops, linear_probabilities, mixed  # noqa: F401

log = logging.getLogger("compete")

TASKS = ("binary", "multiclass", "multilabel")
SMALL = ("small", "cnn")  # the project's CNN below (common/backbones.py's name for its own, and birdcall's)


# ---------------------------------------------------------------- the fast baseline

def baseline(seed: int = 0):
    """Standardised pooled statistics into a multinomial logistic regression: linear,
    quick, and calibrated enough to blend."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, random_state=seed))


def fit_baseline(X: np.ndarray, y: np.ndarray, seed: int = 0):
    # One BLAS thread: on a few hundred rows, threads spin on each other (30x slower
    # on a busy 2-core machine) instead of sharing work.
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1, user_api="blas"):
        return baseline(seed).fit(X, y)


def class_probabilities(model, X: np.ndarray, classes: int) -> np.ndarray:
    """predict_proba over every class, zero for classes the model never saw."""
    out = np.zeros((len(X), classes))
    out[:, model.classes_] = model.predict_proba(X)
    return out


# ---------------------------------------------------------------- the CNN

@dataclass
class NetworkSettings:
    crop_frames: int = 128     # 2.56 s at 50 frames a second: a phrase or two
    width: int = 16            # channels of the first block; doubled per block
    epochs: int = 16
    batch_size: int = 64
    lr: float = 3e-3
    mixup: float = 0.4         # Beta(a, a) of fastai's MixUp; 0 turns it off
    dropout: float = 0.3
    weight_decay: float = 1e-2
    # Augmentation beyond the random crop (a time shift) and mixup; 0 turns each off.
    gain: float = 0.0          # contrast scaled by exp(U(-gain, gain)): a sound louder or fainter over the same floor
    time_masks: int = 0        # SpecAugment: this many spans of up to `mask_frames` frames set to the floor
    mask_frames: int = 16
    frequency_masks: int = 0   # and this many spans of up to `mask_bands` mel bands
    mask_bands: int = 8
    backbone: str = "cnn"      # the small CNN below ("cnn" or "small"), or a timm architecture by name (one input channel)
    crop_pool: str = "mean"    # how a clip's crops are averaged at prediction: "mean" probability or "geometric" (predict_network)


def network(classes: int, n_mels: int, settings: NetworkSettings):
    """The network `backbone` builds, with fresh weights (nothing read from any cache):
    the module a trained state dict is loaded into."""
    return backbone(classes, n_mels, settings, cached=False).net


def backbone(classes: int, n_mels: int, settings: NetworkSettings, weights: Path | str | None = None, cached: bool = True):
    """A common.backbones.Backbone on log-mel crops (one input channel). The small CNN
    ("small" or "cnn"): four conv blocks that halve time and frequency, then per-time-step
    features (channels x remaining bands, so pitch stays known) pooled over time by mean
    and max: a sound may sit anywhere in the crop. Any other name is built by
    common/backbones.py as for images: a timm architecture or hub name, pretrained
    weights from the local file `weights` or, with `cached`, from the Hugging Face cache
    offline (a colour first convolution summed to the log-mel's one channel); nothing is
    downloaded."""
    from common import backbones

    if settings.backbone not in SMALL:
        return backbones.make_backbone(settings.backbone, classes, weights, channels=1, dropout=settings.dropout, cached=cached)
    built = backbones.Backbone(_mel_cnn(classes, n_mels, settings), backbones.SMALL, False, ("head.",))
    if weights:
        backbones.load_weights(built.net, weights, built.head)
        built.pretrained, built.source = True, str(weights)
    return built


def _mel_cnn(classes: int, n_mels: int, settings: NetworkSettings):
    import torch
    from torch import nn

    class MelCNN(nn.Module):
        def __init__(self):
            super().__init__()
            widths = [1] + [settings.width * 2 ** i for i in range(4)]
            self.blocks = nn.Sequential(*[
                nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                              nn.MaxPool2d(2))
                for a, b in zip(widths[:-1], widths[1:])])
            bands = n_mels // 16
            self.head = nn.Sequential(nn.Dropout(settings.dropout), nn.Linear(2 * widths[-1] * bands, classes))

        def forward(self, x):
            x = self.blocks(x)                       # (batch, channels, bands, time)
            x = x.flatten(1, 2)                      # (batch, channels * bands, time)
            x = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
            return self.head(x)

    return MelCNN()


def random_crop(frames: int, settings: NetworkSettings | None = None):
    """A shard transform: a random window of `frames` (zero-padded when the clip is
    shorter, at a random offset), as a (1, bands, frames) float tensor; then the
    settings' gain and masks, each drawn only when it is on (with all of them off, the
    same random numbers as a crop alone)."""
    import torch

    def transform(array: np.ndarray, rng: np.random.Generator):
        x = array.astype(np.float32)
        length = x.shape[1]
        if length >= frames:
            start = int(rng.integers(0, length - frames + 1))
            window = x[:, start:start + frames]
        else:
            window = np.zeros((x.shape[0], frames), dtype=np.float32)
            start = int(rng.integers(0, frames - length + 1))
            window[:, start:start + length] = x
        if settings is not None:
            window = augment(window, settings, rng)
        return torch.from_numpy(np.ascontiguousarray(window))[None]
    return transform


def augment(window: np.ndarray, settings: NetworkSettings, rng: np.random.Generator) -> np.ndarray:
    """Gain and SpecAugment masks (Park et al. 2019) on one normalised log-mel crop.
    A normalised crop's floor is 0 (each band minus its median), so a mask is zeros."""
    window = np.array(window, dtype=np.float32)
    if settings.gain:
        window *= np.float32(np.exp(rng.uniform(-settings.gain, settings.gain)))
    bands, frames = window.shape
    for _ in range(settings.time_masks):
        width = int(rng.integers(0, min(settings.mask_frames, frames) + 1))
        start = int(rng.integers(0, frames - width + 1))
        window[:, start:start + width] = 0.0
    for _ in range(settings.frequency_masks):
        width = int(rng.integers(0, min(settings.mask_bands, bands) + 1))
        start = int(rng.integers(0, bands - width + 1))
        window[start:start + width, :] = 0.0
    return window


def centre_crop(frames: int):
    crop = random_crop(frames)

    def transform(array: np.ndarray, rng):
        length = array.shape[1]
        middle = max(0, (length - frames) // 2)
        return crop(array[:, middle:middle + frames], np.random.default_rng(0))
    return transform


def fingerprint(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _label(label, multilabel: bool):
    return np.asarray(label, dtype=np.float32) if multilabel else int(label)


def _label_repr(labels, multilabel: bool) -> list:
    return [tuple(map(int, label)) for label in labels] if multilabel else list(map(int, labels))


def train_network(train: list, train_labels: np.ndarray, train_keys: list[str],
                  valid: list, valid_labels: np.ndarray, valid_keys: list[str],
                  classes: int, settings: NetworkSettings, run_dir: Path, seed: int, quiet: bool,
                  name: str = "audio", multilabel: bool = False, minutes: float | None = None,
                  weights: Path | str | None = None):
    """One CNN on normalised log-mels, through common.trainers with crops streamed
    from cached shards (random crop, augmentation, mixup); returns the trained module
    on the CPU. Labels are class indices (cross-entropy) or, `multilabel`, rows of 0/1
    (one binary cross-entropy per label). `minutes` caps the epochs at what fits;
    `weights` is a local file of pretrained weights for the backbone."""
    import torch
    from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat

    from common import backbones, loaders, trainers

    def shards(part, arrays, labels, keys):
        samples = lambda: ((k, a, _label(l, multilabel)) for k, a, l in zip(keys, arrays, labels))  # noqa: E731
        return loaders.cached_shards(name, fingerprint(part, keys, _label_repr(labels, multilabel)), samples,
                                     samples_per_shard=256)

    train_set = shards("train", train, train_labels, train_keys)
    valid_set = shards("valid", valid, valid_labels, valid_keys)
    augmented = settings if (settings.gain or settings.time_masks or settings.frequency_masks) else None

    def train_loader():
        return loaders.StreamLoader(
            loaders.ShardStream(train_set, shuffle=True, buffer_size=len(train), seed=seed,
                                transform=random_crop(settings.crop_frames, augmented)),
            batch_size=settings.batch_size, drop_last=False)
    valid_loader = loaders.StreamLoader(
        loaders.ShardStream(valid_set, shuffle=False, transform=centre_crop(settings.crop_frames)),
        batch_size=256)
    n_mels = train[0].shape[0]
    # The weights are drawn here, before the trainer seeds its loop, and torch starts
    # each process from a random seed: seed first, or no two runs agree.
    torch.manual_seed(seed)
    built = backbone(classes, n_mels, settings, weights)
    module = built.net
    # a pretrained body fine-tunes at a tenth of the new head's rate, as for images
    lr = slice(settings.lr * backbones.BODY_RATE, settings.lr) if built.pretrained else settings.lr
    loss = BCEWithLogitsLossFlat() if multilabel else CrossEntropyLossFlat()
    budget = None if minutes is None else trainers.fit_budget(module, train_loader, loss, run_dir, minutes * 60,
                                                              settings.epochs, len(valid) / settings.batch_size, name="audio")
    epochs = settings.epochs if budget is None else budget["epochs"]
    callbacks = [mixup(settings.mixup)] if settings.mixup else []
    learn = trainers.train(module, train_loader(), valid_loader, loss, run_dir,
                           epochs=epochs, lr=lr, seed=seed, quiet=quiet, cbs=callbacks, wd=settings.weight_decay,
                           checkpoint_every=0, splitter=built.groups if built.pretrained else None, budget=budget)
    return learn.model.to("cpu").eval()


def mixup(alpha: float):
    """fastai's MixUp, safe on a batch of one clip: its `squeeze` makes the mixing weight
    a scalar there and the batch fails (birdcall's full synthetic set through
    PLATFORM:SLUG met one in its first epoch and the run ended). A lone clip is left
    unmixed."""
    import torch
    from fastai.callback.mixup import MixUp

    class LoneSafeMixUp(MixUp):
        def before_batch(self):
            if self.y.size(0) > 1:
                return super().before_batch()
            self.lam, self.yb1 = torch.ones(1, device=self.x.device), self.yb

    return LoneSafeMixUp(alpha)


def predict_network(module, arrays: list, frames: int, batch: int = 512, multilabel: bool = False,
                    pool: str = "mean") -> np.ndarray:
    """Mean probabilities over every crop of each clip: softmax over classes, or one
    sigmoid per label when `multilabel`. `pool="geometric"` (classes only) averages the
    crops' log-probabilities instead and renormalises: a crop that hears the species
    clearly then moves the clip's answer as much as an unsure crop holds it back, where
    the mean of probabilities lets the unsure crops dilute it."""
    if pool not in ("mean", "geometric") or (pool == "geometric" and multilabel):
        raise ValueError(f"pool {pool!r}: 'mean', or 'geometric' for one label per clip")
    import torch
    windows, owners = [], []
    for index, array in enumerate(arrays):
        pieces = crops(array, frames)
        windows.append(pieces)
        owners.extend([index] * len(pieces))
    stacked = np.concatenate(windows)
    owners = np.asarray(owners)
    outputs = []
    module.eval()
    with torch.no_grad():
        for start in range(0, len(stacked), batch):
            x = torch.from_numpy(stacked[start:start + batch])[:, None]
            logits = module(x)
            outputs.append((torch.sigmoid(logits) if multilabel else
                            torch.log_softmax(logits, dim=1) if pool == "geometric" else torch.softmax(logits, dim=1)).numpy())
    values = np.concatenate(outputs).astype(np.float64)
    summed = np.zeros((len(arrays), values.shape[1]))
    np.add.at(summed, owners, values)
    summed /= np.bincount(owners, minlength=len(arrays))[:, None]
    if pool == "mean":
        return summed
    summed = np.exp(summed - summed.max(axis=1, keepdims=True))
    return summed / summed.sum(axis=1, keepdims=True)


def state_dict(module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def settings_dict(settings: NetworkSettings) -> dict:
    return asdict(settings)


# ---------------------------------------------------------------- blending and calibration
# Log loss punishes a confident mistake without limit, so every probability that leaves
# here has been through a temperature fitted on held-out predictions and a floor (also
# fitted) that bounds the worst case.

@dataclass
class Calibration:
    """p_cnn * blend + p_baseline * (1 - blend), sharpened or softened by a temperature
    on the log scale, shifted by a log-scale bias per class when fitted with one, then
    floored and renormalised."""

    blend: float = 0.0
    temperature: float = 1.0
    floor: float = 1e-3
    bias: list | None = None      # one log-scale offset per class (fit_calibration's class_bias)

    def apply(self, baseline: np.ndarray, cnn: np.ndarray | None) -> np.ndarray:
        return calibrated(baseline, cnn, self.blend, self.temperature, self.floor, self.bias)


FLOORS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-2)


def fit_calibration(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray, class_bias: bool = False) -> Calibration:
    """Blend weight, temperature and floor minimising log loss on out-of-fold predictions.
    `class_bias`: at the chosen blend, the temperature refitted together with a log-scale
    offset per class (bias-corrected temperature scaling, Alexandari et al. 2020), which
    corrects a blend that favours some classes over others, as one temperature cannot
    (birdcall's nested CV on one CNN fold: 0.2405 to 0.2247)."""
    from scipy.optimize import minimize_scalar
    blends = np.linspace(0, 1, 21) if cnn is not None else [0.0]
    best = None
    for blend in blends:
        def loss(log_t, blend=blend):
            return multiclass_log_loss(y, Calibration(blend, float(np.exp(log_t)), 1e-6).apply(baseline, cnn))
        found = minimize_scalar(loss, bounds=(np.log(0.2), np.log(5.0)), method="bounded")
        if best is None or found.fun < best[0]:
            best = (found.fun, float(blend), float(np.exp(found.x)))
    _, blend, temperature = best
    bias = None
    if class_bias:
        temperature, bias = _temperature_and_bias(Calibration(blend).apply(baseline, cnn), y, baseline.shape[1], temperature)
    floor = min(FLOORS, key=lambda f: multiclass_log_loss(y, Calibration(blend, temperature, f, bias).apply(baseline, cnn)))
    return Calibration(blend, temperature, floor, bias)


def _temperature_and_bias(mixed: np.ndarray, y: np.ndarray, classes: int, temperature: float,
                          penalty: float = 0.3) -> tuple[float, list]:
    """softmax(log(mixed) / T + b) fitted by L-BFGS for log loss, b shrunk towards 0 by
    `penalty` * |b|^2 / n (0.3 rather than 1: on birdcall's seed-0 first CNN fold, over two
    splits into sub-folds, the nested log loss 0.2247 -> 0.2169 and 0.2277 -> 0.2224). Written here: scikit-learn's multinomial regression cannot
    share one slope across the classes."""
    from scipy.optimize import minimize

    logs, n = np.log(np.clip(mixed, 1e-12, None)), len(y)
    truth = np.eye(classes)[y]

    def loss(theta):
        scale, bias = theta[0], theta[1:]
        z = logs * scale + bias
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        residual = (np.exp(log_p) - truth) / n
        value = -log_p[np.arange(n), y].mean() + penalty * (bias ** 2).sum() / n
        return value, np.r_[(residual * logs).sum(), residual.sum(axis=0) + 2 * penalty * bias / n]

    start = np.r_[1.0 / temperature, np.zeros(classes)]
    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0.2, 5.0)] + [(None, None)] * classes)
    return float(1.0 / found.x[0]), [round(float(b), 6) for b in found.x[1:]]


def nested_calibrated(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray, fold_of: np.ndarray,
                      class_bias: bool = False) -> np.ndarray:
    """Honest calibrated blend of the OOF: each fold's calibration fitted on the others."""
    calibrated = np.zeros_like(baseline)
    for fold in np.unique(fold_of):
        inside, outside = fold_of == fold, fold_of != fold
        calibration = fit_calibration(baseline[outside], None if cnn is None else cnn[outside], y[outside], class_bias)
        calibrated[inside] = calibration.apply(baseline[inside], None if cnn is None else cnn[inside])
    return calibrated


def nested_score(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray, fold_of: np.ndarray,
                 class_bias: bool = False) -> float:
    return multiclass_log_loss(y, nested_calibrated(baseline, cnn, y, fold_of, class_bias))


# ---------------------------------------------------------------- any audio classification task

@dataclass
class AudioSettings:
    """What a generic audio model needs decided; the rest follows from the data."""

    sample_rate: int = spectrograms.SAMPLE_RATE   # every clip is resampled to this
    clip_seconds: float = 2.56    # the training crop; test-time averaging covers whole clips
    n_mels: int = 64              # a multiple of 16: the CNN halves the bands four times
    epochs: int = 16
    minutes: float | None = None  # a time budget: the epochs are cut to what fits
    backbone: str = "small"       # the project's small from-scratch CNN, or a timm architecture or hub name (common/backbones.py)
    weights: str | None = None    # a local file of pretrained weights for the backbone
    seed: int = 0
    width: int = 16
    batch_size: int = 64
    lr: float = 3e-3
    mixup: float = 0.4
    gain: float = 0.5
    time_masks: int = 2
    frequency_masks: int = 2

    @classmethod
    def of(cls, options) -> "AudioSettings":
        """An AudioSettings as it is, or one from a run's options read by name (as
        common/vision.py reads them: a missing or None knob keeps the default here).
        `fast`: two epochs; otherwise a ten-minute budget unless `minutes` says."""
        if isinstance(options, cls):
            return options
        known = {name: getattr(options, name) for name in cls.__dataclass_fields__
                 if name not in ("width", "minutes", "weights") and getattr(options, name, None) is not None}
        fast = bool(getattr(options, "fast", False))
        settings = cls(**known)
        settings.epochs = 2 if fast and getattr(options, "epochs", None) is None else settings.epochs
        minutes = getattr(options, "minutes", None)
        settings.minutes = minutes if minutes is not None else (None if fast else 10.0)
        weights = getattr(options, "weights", None)
        settings.weights = str(weights) if weights is not None else None
        return settings

    def mels(self) -> spectrograms.MelSettings:
        """50 frames a second at any rate; a window of ~64 ms rounded up to a power of two."""
        hop = int(round(self.sample_rate / 50))
        n_fft = 1 << int(np.ceil(np.log2(self.sample_rate * 0.064)))
        return spectrograms.MelSettings(sample_rate=self.sample_rate, n_fft=n_fft, hop_length=hop, n_mels=self.n_mels,
                                        fmin=min(50.0, self.sample_rate / 8), fmax=self.sample_rate / 2, top_db=80.0)

    def network(self) -> NetworkSettings:
        frames = max(16, int(round(self.clip_seconds * self.mels().frames_per_second)))
        return NetworkSettings(crop_frames=frames, width=self.width, epochs=self.epochs, batch_size=self.batch_size,
                               lr=self.lr, mixup=self.mixup, gain=self.gain, time_masks=self.time_masks,
                               frequency_masks=self.frequency_masks, backbone=self.backbone)


class AudioModel:
    """Audio files to class probabilities: cached log-mels; the CNN trained through the
    shared trainer on random crops (with gain, SpecAugment masks and mixup), averaged
    over crops covering each whole clip at test time; the fast baseline on pooled
    statistics; and their blend, fitted on the held-out clips (for one label per clip:
    birdcall's blend weight, temperature and floor minimising log loss; for several, a
    blend weight minimising the mean binary log loss). A clip that cannot be decoded is
    left out of training and gets the training prior at test time, each logged by file
    (birdcall's quarantine)."""

    def __init__(self, task: str, classes: list, settings: AudioSettings | None = None):
        if task not in TASKS:
            raise ValueError(f"task {task!r}: one of {', '.join(TASKS)}")
        settings = AudioSettings.of(settings) if settings is not None else AudioSettings()
        if settings.backbone not in SMALL:
            from common import backbones
            backbones.check(settings.backbone)
        if settings.n_mels < 16 or settings.n_mels % 16:
            raise io.InputError(f"n_mels {settings.n_mels}: a multiple of 16 (the CNN halves the bands four times)")
        if task == "binary" and len(classes) != 2:
            raise ValueError(f"a binary task has two classes, not {len(classes)}")
        self.task, self.classes, self.settings = task, list(classes), settings
        self.prior: np.ndarray | None = None
        self.state: dict | None = None
        self.linear: dict | None = None          # the fast baseline, as the arrays inference needs
        self.calibration: dict = {}              # Calibration's fields, or {"blend": w} for multilabel
        self.history: dict = {}

    @property
    def outputs(self) -> int:
        return len(self.classes)

    def _labels(self, y) -> np.ndarray:
        y = np.asarray(y)
        if self.task == "multilabel":
            if y.ndim != 2 or y.shape[1] != self.outputs:
                raise ValueError(f"multilabel y has shape (n, {self.outputs}), not {y.shape}")
            return y.astype(np.float32)
        return y.astype(int)

    def _features(self, files: list, split: str, quiet: bool | None, run_dir: Path | None = None):
        """Normalised float16 log-mels and pooled statistics of the files that decode,
        and their positions; the rest quarantined with their reasons (quarantine.csv in
        `run_dir`)."""
        mels = spectrograms.compute(list(files), self.settings.mels(), quiet=quiet, desc=f"log-mel {split}")
        quarantine = spectrograms.Quarantine()
        readable = []
        for position, (path, mel) in enumerate(zip(files, mels)):
            if isinstance(mel, str):
                quarantine.add(split, Path(path).name if path is not None else "-", path,
                               mel + ("; predicted with the class prior" if split == "test" else ""))
            else:
                readable.append(position)
        quarantine.report(run_dir)
        arrays = [spectrograms.normalise(mels[i].astype(np.float32)).astype(np.float16) for i in readable]
        pooled = np.stack([spectrograms.pooled(mels[i]) for i in readable]) if readable else np.zeros((0, 0), np.float32)
        return arrays, pooled, np.asarray(readable, dtype=int)

    def fit(self, files: list, y, run_dir: Path, quiet: bool = False, valid=None) -> "AudioModel":
        """Train on `files` with labels `y`. `valid` = (files, y) held out for the choice
        of epoch and the blend; without it a fifth of the clips is held out (stratified
        when it can be), and the baseline is fitted again on every clip after."""
        run_dir = Path(run_dir)
        files, y = list(files), self._labels(y)
        if len(files) != len(y):
            raise ValueError(f"{len(files)} files but {len(y)} labels")
        arrays, pooled, readable = self._features(files, "train", quiet, run_dir)
        where = Path(files[0]).parent if files else Path("training files")
        unreadable = np.ones(len(files), dtype=bool)
        unreadable[readable] = False
        io.unusable_rows(where, len(files), {"clip_unreadable": unreadable},
                         examples=pd.Series([Path(f).name for f in files], name="file"))
        y = y[readable]
        keys = [spectrograms.file_hash(files[i]) for i in readable]
        if valid is None:
            fit_rows, valid_rows = self._holdout(y)
            train_part = ([arrays[i] for i in fit_rows], y[fit_rows], [keys[i] for i in fit_rows])
            valid_part = ([arrays[i] for i in valid_rows], y[valid_rows], [keys[i] for i in valid_rows])
            pooled_fit, pooled_valid = pooled[fit_rows], pooled[valid_rows]
        else:
            valid_files, valid_y = list(valid[0]), self._labels(valid[1])
            valid_arrays, pooled_valid, valid_readable = self._features(valid_files, "valid", quiet)
            train_part, pooled_fit = (arrays, y, keys), pooled
            valid_part = (valid_arrays, valid_y[valid_readable], [spectrograms.file_hash(valid_files[i]) for i in valid_readable])
        self.prior = self._prior(y)
        network_settings = self.settings.network()
        multilabel = self.task == "multilabel"
        started = time.perf_counter()
        module = train_network(*train_part, *valid_part, self._network_outputs(), network_settings, run_dir,
                               self.settings.seed, quiet, multilabel=multilabel, minutes=self.settings.minutes,
                               weights=self.settings.weights)
        self.state = state_dict(module)
        y_valid = valid_part[1]
        cnn = predict_network(module, valid_part[0], network_settings.crop_frames, multilabel=multilabel)
        base = linear_probabilities(pooled_valid, linear_baseline(pooled_fit, train_part[1], self.task, self._network_outputs(),
                                                                  self.settings.seed), self._network_outputs())
        self.calibration = fit_label_blend(base, cnn, y_valid) if multilabel else asdict(fit_calibration(base, cnn, y_valid))
        self.linear = linear_baseline(pooled if valid is None else pooled_fit, y, self.task, self._network_outputs(), self.settings.seed)
        score = (lambda p: mean_binary_log_loss(y_valid, p)) if multilabel else (lambda p: multiclass_log_loss(y_valid, p))
        self.history = {"train_clips": len(train_part[0]), "valid_clips": len(y_valid), "quarantined": int(unreadable.sum()),
                        "seconds": round(time.perf_counter() - started, 2), "calibration": self.calibration,
                        "valid_log_loss": {"cnn": score(np.clip(cnn, 1e-15, 1 - 1e-15)), "baseline": score(np.clip(base, 1e-15, 1 - 1e-15)),
                                           "blend": score(np.clip(self._combine(base, cnn), 1e-15, 1 - 1e-15))}}
        log.info("audio %s model: %d training clips, %d held out, %d unreadable (%.0f s); held-out log loss: cnn %.4f, "
                 "baseline %.4f, blend %.4f (not nested: fitted on these clips)", self.task, len(train_part[0]), len(y_valid),
                 int(unreadable.sum()), self.history["seconds"], *self.history["valid_log_loss"].values())
        return self

    def _holdout(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
        size = max(1, int(round(0.2 * len(y))))
        stratify = self.task != "multilabel" and np.bincount(y).min(initial=0) >= 2 and size >= len(np.unique(y))
        splitter = (StratifiedShuffleSplit if stratify else ShuffleSplit)(n_splits=1, test_size=size, random_state=self.settings.seed)
        fit_rows, valid_rows = next(splitter.split(np.zeros(len(y)), y if stratify else None))
        return np.sort(fit_rows), np.sort(valid_rows)

    def _network_outputs(self) -> int:
        return 2 if self.task == "binary" else self.outputs

    def _prior(self, y: np.ndarray) -> np.ndarray:
        if self.task == "multilabel":
            return (y.sum(axis=0) + 1.0) / (len(y) + 2.0)
        k = self._network_outputs()
        return (np.bincount(y, minlength=k) + 1.0) / (len(y) + k)

    def _combine(self, base: np.ndarray, cnn: np.ndarray) -> np.ndarray:
        if self.task == "multilabel":
            return mixed(base, cnn, self.calibration["blend"])
        return calibrated(base, cnn, **self.calibration)

    def module(self):
        if self.state is None:
            raise ValueError("the audio model is not fitted")
        module = network(self._network_outputs(), self.settings.n_mels, self.settings.network())
        module.load_state_dict(self.state)
        return module.eval()

    def predict(self, files: list) -> np.ndarray:
        """Probabilities for every file, in order: the blend of the CNN's mean over crops
        covering each clip and the baseline's; the training prior for a file that cannot
        be decoded."""
        files = list(files)
        arrays, pooled, readable = self._features(files, "test", None)
        probabilities = np.tile(self.prior, (len(files), 1))
        if len(readable):
            cnn = predict_network(self.module(), arrays, self.settings.network().crop_frames,
                                  multilabel=self.task == "multilabel")
            probabilities[readable] = self._combine(linear_probabilities(pooled, self.linear, self._network_outputs()), cnn)
        return probabilities[:, 1] if self.task == "binary" else probabilities


def linear_baseline(X: np.ndarray, y: np.ndarray, task: str, outputs: int, seed: int) -> dict:
    """The fast baseline fitted (standardised pooled statistics, logistic regression; one
    per label for multilabel), kept as the plain arrays inference applies with numpy."""
    if task == "multilabel":
        return {"labels": [_linear(X, y[:, j].astype(int), 2, seed) for j in range(y.shape[1])]}
    return _linear(X, y, outputs, seed)


def _linear(X: np.ndarray, y: np.ndarray, outputs: int, seed: int) -> dict:
    if len(np.unique(y)) < 2:  # one class seen: its smoothed frequency, nothing to fit
        return {"constant": ((np.bincount(y, minlength=outputs) + 1.0) / (len(y) + outputs)).tolist()}
    fitted = fit_baseline(X, y, seed)
    scaler, regression = fitted[0], fitted[-1]
    return {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(), "coef": regression.coef_.tolist(),
            "intercept": regression.intercept_.tolist(), "classes": regression.classes_.tolist()}


def fit_label_blend(baseline: np.ndarray, cnn: np.ndarray, y: np.ndarray) -> dict:
    """The weight of the CNN, per task, minimising the mean binary log loss of the labels."""
    return {"blend": float(min(np.linspace(0, 1, 21), key=lambda w: mean_binary_log_loss(y, mixed(baseline, cnn, w))))}


def mean_binary_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# ---------------------------------------------------------------- export for code competitions

def export(model: AudioModel, path: Path | str, profile: str = "hakuna-madata") -> Path:
    """The network as ONNX (at the opset the runtime profile's onnxruntime reads: one that
    has it, e.g. DrivenData's; Kaggle's notebook image has none), with what
    inference needs beside the weights in its metadata (task, classes, prior, the
    baseline's arrays and the blend, log-mel settings and filterbank, crop length): common.sound_inference.predict_exported reads
    it with numpy, soundfile and onnxruntime alone."""
    import base64

    import onnx
    import torch

    from common.packaging import export_onnx

    path = Path(path)
    settings = model.settings.network()
    example = torch.zeros(1, 1, model.settings.n_mels, settings.crop_frames)
    export_onnx(model.module(), example, path, profile=profile)
    mels = model.settings.mels()
    filters = np.ascontiguousarray(spectrograms.mel_filters(mels), dtype=np.float32)
    meta = {"task": model.task, "classes": [str(c) for c in model.classes], "prior": model.prior.tolist(),
            "linear": model.linear, "calibration": model.calibration,
            "mel": asdict(mels), "crop_frames": settings.crop_frames, "filters_shape": list(filters.shape),
            "filters": base64.b64encode(filters.tobytes()).decode("ascii")}
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    # and a TorchScript copy carrying the same metadata, for a runtime with torch and no
    # onnxruntime (Kaggle's image): sound_inference.load runs whichever it can
    module = model.module().eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # TorchScript is deprecated, and still what torch alone loads
        traced = torch.jit.trace(module, example)
        with io.atomic_path(script_path(path)) as temporary:
            torch.jit.save(traced, str(temporary), _extra_files={META_KEY: json.dumps(meta)})
    return io.write_bytes(path, graph.SerializeToString())


from common.sound_inference import META_KEY, predict_exported, script_path  # noqa: E402,F401  (one module a bundle can ship alone)
