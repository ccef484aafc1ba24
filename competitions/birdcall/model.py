"""Birdcall models: a fast baseline on pooled log-mel statistics, a CNN on log-mel
crops trained with the shared trainer, their blend, and log-loss calibration.

Log loss punishes a confident mistake without limit, so every probability that leaves
here has been through a temperature fitted on out-of-fold predictions and a floor
(also fitted) that bounds the worst case.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from common.metrics import multiclass_log_loss

log = logging.getLogger("compete")


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


def network(classes: int, n_mels: int, settings: NetworkSettings):
    """Four conv blocks that halve time and frequency, then per-time-step features
    (channels x remaining bands, so pitch stays known) pooled over time by mean and
    max: a call may sit anywhere in the crop."""
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


def random_crop(frames: int):
    """A shard transform: a random window of `frames` (zero-padded when the clip is
    shorter, at a random offset), as a (1, bands, frames) float tensor."""
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
        return torch.from_numpy(np.ascontiguousarray(window))[None]
    return transform


def centre_crop(frames: int):
    crop = random_crop(frames)

    def transform(array: np.ndarray, rng):
        length = array.shape[1]
        middle = max(0, (length - frames) // 2)
        return crop(array[:, middle:middle + frames], np.random.default_rng(0))
    return transform


def crops(array: np.ndarray, frames: int) -> np.ndarray:
    """Windows of `frames` with half-window stride covering the whole clip, the last
    one flush with its end: test-time averaging sees every call."""
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


def fingerprint(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def train_network(train: list, train_labels: np.ndarray, train_keys: list[str],
                  valid: list, valid_labels: np.ndarray, valid_keys: list[str],
                  classes: int, settings: NetworkSettings, run_dir: Path, seed: int, quiet: bool):
    """One CNN on normalised log-mels, through common.trainers with crops streamed
    from cached shards (random crop + mixup); returns the trained module on the CPU."""
    import torch
    from fastai.callback.mixup import MixUp
    from fastai.losses import CrossEntropyLossFlat

    from common import loaders, trainers

    def shards(name, arrays, labels, keys):
        samples = lambda: ((k, a, int(l)) for k, a, l in zip(keys, arrays, labels))  # noqa: E731
        return loaders.cached_shards("birdcall", fingerprint(name, keys, list(map(int, labels))), samples,
                                     samples_per_shard=256)

    train_set = shards("train", train, train_labels, train_keys)
    valid_set = shards("valid", valid, valid_labels, valid_keys)
    train_loader = loaders.StreamLoader(
        loaders.ShardStream(train_set, shuffle=True, buffer_size=len(train), seed=seed,
                            transform=random_crop(settings.crop_frames)),
        batch_size=settings.batch_size, drop_last=False)
    valid_loader = loaders.StreamLoader(
        loaders.ShardStream(valid_set, shuffle=False, transform=centre_crop(settings.crop_frames)),
        batch_size=256)
    n_mels = train[0].shape[0]
    # The weights are drawn here, before the trainer seeds its loop, and torch starts
    # each process from a random seed: seed first, or no two runs agree.
    torch.manual_seed(seed)
    module = network(classes, n_mels, settings)
    callbacks = [MixUp(settings.mixup)] if settings.mixup else []
    learn = trainers.train(module, train_loader, valid_loader, CrossEntropyLossFlat(), run_dir,
                           epochs=settings.epochs, lr=settings.lr, seed=seed, quiet=quiet,
                           cbs=callbacks, wd=settings.weight_decay, checkpoint_every=0)
    return learn.model.to("cpu").eval()


def predict_network(module, arrays: list, frames: int, batch: int = 512) -> np.ndarray:
    """Mean softmax over every crop of each clip."""
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
            outputs.append(torch.softmax(module(x), dim=1).numpy())
    probabilities = np.concatenate(outputs)
    summed = np.zeros((len(arrays), probabilities.shape[1]))
    np.add.at(summed, owners, probabilities)
    return summed / np.bincount(owners, minlength=len(arrays))[:, None]


# ---------------------------------------------------------------- blending and calibration

@dataclass
class Calibration:
    """p_cnn * blend + p_baseline * (1 - blend), sharpened or softened by a temperature
    on the log scale, then floored and renormalised."""

    blend: float = 0.0
    temperature: float = 1.0
    floor: float = 1e-3

    def apply(self, baseline: np.ndarray, cnn: np.ndarray | None) -> np.ndarray:
        mixed = baseline if cnn is None or self.blend == 0 else self.blend * cnn + (1 - self.blend) * baseline
        logits = np.log(np.clip(mixed, 1e-12, None)) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p = np.maximum(p, self.floor)
        return p / p.sum(axis=1, keepdims=True)


FLOORS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-2)


def fit_calibration(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray) -> Calibration:
    """Blend weight, temperature and floor minimising log loss on out-of-fold predictions."""
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
    floor = min(FLOORS, key=lambda f: multiclass_log_loss(y, Calibration(blend, temperature, f).apply(baseline, cnn)))
    return Calibration(blend, temperature, floor)


def nested_calibrated(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """Honest calibrated blend of the OOF: each fold's calibration fitted on the others."""
    calibrated = np.zeros_like(baseline)
    for fold in np.unique(fold_of):
        inside, outside = fold_of == fold, fold_of != fold
        calibration = fit_calibration(baseline[outside], None if cnn is None else cnn[outside], y[outside])
        calibrated[inside] = calibration.apply(baseline[inside], None if cnn is None else cnn[inside])
    return calibrated


def nested_score(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray, fold_of: np.ndarray) -> float:
    return multiclass_log_loss(y, nested_calibrated(baseline, cnn, y, fold_of))


@dataclass
class BirdModel:
    species: list
    prior: np.ndarray                  # train label frequencies: the answer for an unreadable clip
    mel_settings: dict
    baseline: object                   # fitted on every usable training clip
    calibration: Calibration
    network_settings: dict | None = None
    networks: list = field(default_factory=list)   # state dicts, one per fold; averaged at test time

    def network_modules(self):
        settings = NetworkSettings(**self.network_settings)
        modules = []
        for state in self.networks:
            module = network(len(self.species), self.mel_settings["n_mels"], settings)
            module.load_state_dict(state)
            modules.append(module.eval())
        return modules, settings


def state_dict(module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def settings_dict(settings: NetworkSettings) -> dict:
    return asdict(settings)
