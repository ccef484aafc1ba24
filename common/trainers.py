"""The trainer shared by the media competitions, built on fastai.

As in fastai, everything around the loop is a callback: progress, checkpoints,
mixed precision, early stopping, the CSV log. Generic: any torch model, any loss,
any pair of loaders (a `common.loaders.StreamLoader` gets exact mid-epoch resume).

API (stable; later changes are additive only)

    device() -> torch.device            cuda, else mps, else cpu
    load_backbone(model, path, strict=False) -> model
        Pretrained weights from a LOCAL file only (a state_dict saved by torch.save,
        e.g. a torchvision model built with weights=None); never a download.
    train(model, train_loader, valid_loader, loss_func, run_dir, epochs, lr=1e-3,
          checkpoint_every=200, patience=None, monitor="valid_loss", metrics=(),
          seed=0, quiet=False, resume=True, one_cycle=True, opt_func=Adam, cbs=())
        -> fastai Learner with the best weights (by `monitor`) loaded.
        Writes run_dir/checkpoints/last.pt every `checkpoint_every` optimiser steps and
        every epoch (model, optimiser, grad scaler, RNG states, loader position,
        early-stopping state), run_dir/checkpoints/best.pth and run_dir/history.csv.
        A process killed at any point and started again with the same arguments
        resumes from last.pt and ends with the same weights as a run never killed
        (same seed, same loader settings). `train` seeds the training randomness but
        cannot re-seed weights that already exist: seed torch (torch.manual_seed) before
        building the model, or two runs with the same seed start from different weights.

Mixed precision (fastai's MixedPrecision, fp16 + grad scaler) is used on CUDA only.
"""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from common import io

log = logging.getLogger("compete")

CHECKPOINT = "last.pt"


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_backbone(model: nn.Module, path: Path | str, strict: bool = False) -> nn.Module:
    """Load pretrained weights from a local file into `model` (missing and unexpected
    keys are logged, so a head of another size is fine with strict=False)."""
    path = Path(path)
    if not path.is_file():
        raise io.InputError(f"{path}: pretrained weights not found (a local file saved with torch.save is needed; nothing is downloaded)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that is not a state dict, a truncated file
        raise io.InputError(f"{path}: cannot read weights: {' '.join(str(error).split())[:200]}") from None
    state = state.get("model", state.get("state_dict", state)) if isinstance(state, dict) else state
    result = model.load_state_dict(state, strict=strict)
    log.info("backbone %s: %d tensors loaded, %d missing, %d unexpected", path.name,
             len(state) - len(result.unexpected_keys), len(result.missing_keys), len(result.unexpected_keys))
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _callbacks():
    """fastai's pieces, imported lazily: fastai is heavy and the inference bundles
    never need it."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fastai's own use of deprecated torch APIs
        from fastai.callback import schedule  # noqa: F401  (adds Learner.fit_one_cycle)
        from fastai.callback.core import Callback
        from fastai.callback.fp16 import MixedPrecision
        from fastai.callback.progress import ProgressCallback
        from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback, TrackerCallback
        from fastai.data.core import DataLoaders
        from fastai.learner import Learner

    class Loaders(DataLoaders):
        """fastai's DataLoaders over plain torch loaders; Learner moves each batch to
        the model's device."""

        def __init__(self, train, valid, target):
            super().__init__(train, valid)
            self._device = target

        @property
        def device(self):
            return self._device

        @device.setter
        def device(self, value):
            self._device = value

    class ResumableLearner(Learner):
        first_epoch = 0

        # fastai's SkipToEpoch still runs every callback's after_epoch for skipped
        # epochs (logging and early-stopping on stale values): start the loop later instead.
        def _do_fit(self):
            from fastai.learner import CancelEpochException
            for epoch in range(self.first_epoch, self.n_epoch):
                self.epoch = epoch
                self._with_events(self._do_epoch, "epoch", CancelEpochException)

    class SaveBest(SaveModelCallback):
        """fastai's SaveModelCallback, logging instead of printing."""

        def after_epoch(self):
            TrackerCallback.after_epoch(self)
            if self.new_best:
                log.info("better model at epoch %d: %s %.6f", self.epoch, self.monitor, self.best)
                self._save(self.fname)

    class EpochLoader(Callback):
        """Tell a loader with set_epoch which epoch it serves (shuffle per epoch)."""
        order = -5

        def before_train(self):
            if hasattr(self.dls.train, "set_epoch"):
                self.dls.train.set_epoch(self.epoch)

    class CSVHistory(Callback):
        """One line per epoch in history.csv (appending across resumes) and in the log."""
        order = 55

        def __init__(self, path: Path):
            self.path = Path(path)

        def after_epoch(self):
            names, values = list(self.recorder.metric_names), list(self.recorder.log)
            if not self.path.exists() or self.path.stat().st_size == 0:
                self.path.write_text(",".join(map(str, names)) + "\n")
            with open(self.path, "a") as handle:
                handle.write(",".join(_format(value) for value in values) + "\n")
            log.info("epoch %s", "  ".join(f"{n}={_format(v)}" for n, v in zip(names, values)))

    class Checkpoint(Callback):
        """Save everything a resume needs every `every` steps, every epoch and at the
        end; restore it when training starts from a checkpoint."""
        order = 90  # after MixedPrecision (creates the scaler) and the trackers reset their state

        def __init__(self, directory: Path, every: int, state: dict | None):
            self.directory, self.every, self.state = Path(directory), every, state
            self.restore_rng_at = None

        # ---- saving
        def _save(self, epoch: int, batches: int, finished: bool = False):
            loader = self.dls.train
            payload = {
                "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "scaler": self.learn.scaler.state_dict() if getattr(self.learn, "scaler", None) is not None else None,
                "rng": _rng_state(),
                "epoch": epoch, "batches": batches, "train_iter": self.learn.train_iter,
                "loader": {"epoch": epoch, "batches": batches} if hasattr(loader, "state_dict") else None,
                "trackers": {type(cb).__name__: {"best": cb.best, **({"wait": cb.wait} if hasattr(cb, "wait") else {})}
                             for cb in self.learn.cbs if isinstance(cb, TrackerCallback) and hasattr(cb, "best")},
                "smooth_loss": {"val": self.recorder.smooth_loss.val, "count": self.recorder.smooth_loss.count},
                "finished": finished,
            }
            with io.atomic_path(self.directory / CHECKPOINT) as temporary:
                torch.save(payload, temporary)

        def after_batch(self):
            if not self.training or not self.every:
                return
            # The last batch of an epoch is saved by the epoch checkpoint instead, so a
            # resume never starts inside an epoch with nothing left to train.
            batches = self.iter + 1 + (self.state_batches_skipped if self.epoch == self.resumed_epoch else 0)
            if self.learn.train_iter % self.every == 0 and batches < len(self.dls.train):
                self._save(self.epoch, batches)

        def after_epoch(self):
            self._save(self.epoch + 1, 0)

        def after_fit(self):
            self._save(self.epoch + 1, 0, finished=True)

        # ---- restoring
        state_batches_skipped = 0
        resumed_epoch = -1

        def before_fit(self):
            if self.state is None:
                return
            state = self.state
            self.learn.train_iter = state["train_iter"]
            if state["scaler"] is not None and getattr(self.learn, "scaler", None) is not None:
                self.learn.scaler.load_state_dict(state["scaler"])
            for cb in self.learn.cbs:
                saved = state["trackers"].get(type(cb).__name__)
                if saved is not None and isinstance(cb, TrackerCallback):
                    for key, value in saved.items():
                        setattr(cb, key, value)
            if "smooth_loss" in state:  # so the logged train_loss continues, not restarts
                self.recorder.smooth_loss.val = state["smooth_loss"]["val"]
                self.recorder.smooth_loss.count = state["smooth_loss"]["count"]
            self.resumed_epoch, self.state_batches_skipped = state["epoch"], state["batches"]
            if state["loader"] is not None:
                self.dls.train.load_state_dict(state["loader"])
            # Mid-epoch: the uninterrupted run drew its loader iterator before the
            # checkpoint, so restore after ours is drawn; at an epoch boundary, before.
            self.restore_rng_at = "before_batch" if state["batches"] else "before_train"

        def before_train(self):
            if self.epoch == self.resumed_epoch and self.state_batches_skipped:
                self.learn.pct_train += self.state_batches_skipped / (len(self.dls.train) * self.n_epoch)
            if self.restore_rng_at == "before_train":
                _set_rng_state(self.state["rng"])
                self.restore_rng_at = None

        def before_batch(self):
            if self.restore_rng_at == "before_batch" and self.training:
                _set_rng_state(self.state["rng"])
                self.restore_rng_at = None

    return dict(Callback=Callback, MixedPrecision=MixedPrecision, ProgressCallback=ProgressCallback,
                EarlyStoppingCallback=EarlyStoppingCallback, SaveBest=SaveBest,
                Loaders=Loaders, Learner=ResumableLearner, EpochLoader=EpochLoader, CSVHistory=CSVHistory,
                Checkpoint=Checkpoint)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def train(model: nn.Module, train_loader, valid_loader, loss_func: Callable, run_dir: Path | str, epochs: int,
          lr: float = 1e-3, checkpoint_every: int = 200, patience: int | None = None, monitor: str = "valid_loss",
          metrics: Sequence = (), seed: int = 0, quiet: bool = False, resume: bool = True, one_cycle: bool = True,
          opt_func: Callable | None = None, cbs: Sequence = (), wd: float | None = None):
    """Train `model`; see the module docstring. Returns the fastai Learner."""
    parts = _callbacks()
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    target = device()

    state = None
    if resume and (checkpoints / CHECKPOINT).is_file():
        state = torch.load(checkpoints / CHECKPOINT, map_location="cpu", weights_only=False)
        log.info("resuming from %s: epoch %d, %d batches into it%s", checkpoints / CHECKPOINT, state["epoch"],
                 state["batches"], " (finished)" if state["finished"] else "")
    else:
        seed_everything(seed)
        (run_dir / "history.csv").unlink(missing_ok=True)

    if opt_func is None:
        from fastai.optimizer import Adam as opt_func
    callbacks = [parts["EpochLoader"](), parts["CSVHistory"](run_dir / "history.csv"),
                 parts["SaveBest"](monitor=monitor, fname="best"),
                 parts["Checkpoint"](checkpoints, checkpoint_every, state)]
    if patience:
        callbacks.append(parts["EarlyStoppingCallback"](monitor=monitor, patience=patience))
    if target.type == "cuda":
        callbacks.append(parts["MixedPrecision"]())
    learn = parts["Learner"](parts["Loaders"](train_loader, valid_loader, target), model, loss_func=loss_func,
                             opt_func=opt_func, lr=lr, metrics=list(metrics), cbs=callbacks + list(cbs),
                             path=run_dir, model_dir="checkpoints", wd=wd)
    if quiet:
        learn.remove_cb(parts["ProgressCallback"])
    learn.logger = lambda *args, **kwargs: None  # epochs are logged by CSVHistory

    if state is not None:
        model.load_state_dict(state["model"])
        model.to(target)
        learn.create_opt()
        learn.opt.load_state_dict(state["optimizer"])
        learn.first_epoch = state["epoch"]
        if state["finished"]:
            best = checkpoints / "best.pth"
            if best.is_file():
                learn.load("best", with_opt=False)
            return learn

    started = time.perf_counter()
    if one_cycle:
        learn.fit_one_cycle(epochs, lr, wd=wd)
    else:
        learn.fit(epochs, lr, wd=wd)
    log.info("trained %d epoch(s) on %s in %.1f s", epochs - learn.first_epoch, target, time.perf_counter() - started)
    return learn
