"""Models on log-mel spectrograms: a fast baseline on pooled statistics, a CNN on log-mel
crops trained with the shared trainer (random crop, mixup, and on request gain and
SpecAugment-style masks), test-time averaging over crops, and `AudioModel`, the whole
path from a list of audio files to probabilities for any classification task.

Tasks as in competitions/tabular/model.py: binary (y 0/1; predict gives P(second
class), shape (n,)), multiclass (y the class index; (n, k) probabilities), multilabel
(y (n, k) 0/1; (n, k) probabilities, one independent sigmoid per label).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from common import io, spectrograms

log = logging.getLogger("compete")

TASKS = ("binary", "multiclass", "multilabel")


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


def network(classes: int, n_mels: int, settings: NetworkSettings):
    """Four conv blocks that halve time and frequency, then per-time-step features
    (channels x remaining bands, so pitch stays known) pooled over time by mean and
    max: a sound may sit anywhere in the crop."""
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


def crops(array: np.ndarray, frames: int) -> np.ndarray:
    """Windows of `frames` with half-window stride covering the whole clip, the last
    one flush with its end: test-time averaging sees every sound."""
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


def _label(label, multilabel: bool):
    return np.asarray(label, dtype=np.float32) if multilabel else int(label)


def _label_repr(labels, multilabel: bool) -> list:
    return [tuple(map(int, label)) for label in labels] if multilabel else list(map(int, labels))


def train_network(train: list, train_labels: np.ndarray, train_keys: list[str],
                  valid: list, valid_labels: np.ndarray, valid_keys: list[str],
                  classes: int, settings: NetworkSettings, run_dir: Path, seed: int, quiet: bool,
                  name: str = "audio", multilabel: bool = False, minutes: float | None = None):
    """One CNN on normalised log-mels, through common.trainers with crops streamed
    from cached shards (random crop, augmentation, mixup); returns the trained module
    on the CPU. Labels are class indices (cross-entropy) or, `multilabel`, rows of 0/1
    (one binary cross-entropy per label). `minutes` caps the epochs at what fits."""
    import torch
    from fastai.callback.mixup import MixUp
    from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat

    from common import loaders, trainers

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
    module = network(classes, n_mels, settings)
    loss = BCEWithLogitsLossFlat() if multilabel else CrossEntropyLossFlat()
    epochs = settings.epochs
    if minutes is not None:
        epochs = epochs_within(module, train_loader, loss, len(train), len(valid), settings, minutes * 60, run_dir)
    callbacks = [MixUp(settings.mixup)] if settings.mixup else []
    learn = trainers.train(module, train_loader(), valid_loader, loss, run_dir,
                           epochs=epochs, lr=settings.lr, seed=seed, quiet=quiet,
                           cbs=callbacks, wd=settings.weight_decay, checkpoint_every=0)
    return learn.model.to("cpu").eval()


def epochs_within(module, make_loader, loss, train_clips: int, valid_clips: int, settings: NetworkSettings,
                  seconds: float, run_dir: Path) -> int:
    """How many epochs (at most the settings') fit in `seconds`: a few timed steps of a
    copy of the network on the real loader, an epoch counted as its batches plus a
    validation pass at a third of a step per batch. One-cycle needs the length up
    front, so the budget picks it rather than cutting a schedule short; the decision is
    kept in the run directory, so a resumed run keeps its epochs."""
    import copy

    import torch

    path = Path(run_dir) / "budget.json"
    if path.is_file():
        return int(json.loads(path.read_text())["epochs"])
    trial = copy.deepcopy(module).train()
    optimiser = torch.optim.Adam(trial.parameters(), lr=1e-4)
    timings, mark = [], time.perf_counter()
    for step, (inputs, target) in enumerate(make_loader()):
        optimiser.zero_grad()
        loss(trial(inputs), target).backward()
        optimiser.step()
        now = time.perf_counter()
        if step:  # the first batch also pays for opening the shards
            timings.append(now - mark)
        mark = now
        if step >= 3:
            break
    per_batch = float(np.median(timings)) if timings else 0.0
    batches = -(-train_clips // settings.batch_size) + valid_clips / settings.batch_size / 3
    epochs = int(max(1, min(settings.epochs, seconds // max(per_batch * batches, 1e-9))))
    io.write_text(path, json.dumps({"epochs": epochs, "seconds_per_batch": per_batch, "seconds": seconds}))
    log.info("time budget %.0f s: %d epoch(s) of %d (%.3f s a batch)", seconds, epochs, settings.epochs, per_batch)
    return epochs


def predict_network(module, arrays: list, frames: int, batch: int = 512, multilabel: bool = False) -> np.ndarray:
    """Mean probabilities over every crop of each clip: softmax over classes, or one
    sigmoid per label when `multilabel`."""
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
            outputs.append((torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).numpy())
    probabilities = np.concatenate(outputs)
    summed = np.zeros((len(arrays), probabilities.shape[1]))
    np.add.at(summed, owners, probabilities)
    return summed / np.bincount(owners, minlength=len(arrays))[:, None]


def state_dict(module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def settings_dict(settings: NetworkSettings) -> dict:
    return asdict(settings)
