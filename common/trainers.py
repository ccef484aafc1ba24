"""The trainer shared by the media competitions, built on fastai.

As in fastai, everything around the loop is a callback: progress, checkpoints,
mixed precision, early stopping, the CSV log, data parallelism. Generic: any torch
model, any loss, any pair of loaders (a `common.loaders.StreamLoader` gets exact
mid-epoch resume).

API (stable; later changes are additive only)

    device() -> torch.device            cuda, else mps, else cpu
    load_backbone(model, path, head=()) -> model
        Pretrained weights from a LOCAL file only (a state_dict saved by torch.save,
        e.g. a torchvision model built with weights=None); never a download. Every
        tensor of the model outside the `head` prefixes must be in the file with its
        shape, or it is an error naming the counts.
    train(model, train_loader, valid_loader, loss_func, run_dir, epochs, lr=1e-3,
          checkpoint_every=200, patience=None, monitor="valid_loss", metrics=(),
          seed=0, quiet=False, resume=True, one_cycle=True, opt_func=Adam, cbs=(),
          report=False, budget=None)
        -> fastai Learner with the best weights (by `monitor`) loaded; its
           `epochs_done` is how many epochs were trained in all (early stopping
           included, resumes included), `train_iter` the optimiser steps in all, and
           `resumed` where this call started: None, or the checkpoint's
           {"epoch", "batches", "train_iter", "world_size"} (a run's report can say it
           resumed and how many steps it trained itself: train_iter - resumed["train_iter"]).
        `cbs` are extra fastai callbacks (e.g. a per-epoch tracker), added beside the
        trainer's own; they run on every process, so one that writes should check
        `common.distributed.is_main()`.
        `report`: tell common.callbacks each epoch's `monitor` (step = epoch), for
        `compete tune`'s pruner; a fit of one network per fold reports per fold instead.
        `budget`: fit_budget's decision; the epochs are then re-planned at each epoch's
        end from the measured speed so the run ends within its seconds (Replan), and
        `learn.budget` is the last plan (budget.json keeps it for a resume).
        Writes run_dir/checkpoints/last.pt every `checkpoint_every` optimiser steps and
        every epoch (model, optimiser, grad scaler, RNG states, loader position,
        early-stopping state), run_dir/checkpoints/best.pth and run_dir/history.csv.
        Each checkpoint is written whole beside before it moves in, the one it replaces
        is kept as previous.pt, and both are checked against the sha256 written with
        them (checkpoints.sha256): a damaged last.pt resumes from previous.pt, and a
        run with no usable checkpoint starts again, each with one log line.
        A process killed at any point and started again with the same arguments
        resumes from last.pt and ends with the same weights as a run never killed
        (same seed, same loader settings, same number of processes). `train` seeds the
        training randomness but cannot re-seed weights that already exist: seed torch
        (torch.manual_seed) before building the model, or two runs with the same seed
        start from different weights.

Under torchrun (common.distributed) the model is wrapped in DistributedDataParallel
(gradients averaged over processes), each process reads its own shards
(common.loaders splits them by rank), the validation loss and metrics are reduced over
processes, and only rank 0 shows progress, logs, and writes: the checkpoint holds every
rank's RNG state and is read by rank 0 and broadcast, so a resume works without a
shared file system and on a different number of processes (mid-epoch, the position
is then carried over as the share of the epoch done).

Mixed precision (fastai's MixedPrecision, fp16 + grad scaler) is used on CUDA only.
"""
from __future__ import annotations

import hashlib
import io as bytes_io
import logging
import os
import random
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from common import callbacks as fit_callbacks
from common import distributed, io, tracking

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # fastai's own use of deprecated torch APIs
    from fastai.callback import schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.callback.core import Callback, CancelFitException
    from fastai.callback.fp16 import MixedPrecision
    from fastai.callback.progress import ProgressCallback
    from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback, TrackerCallback
    from fastai.data.core import DataLoaders
    from fastai.learner import AvgLoss, AvgMetric, CancelEpochException, Learner, load_model
    from fastai.metrics import AccumMetric

log = logging.getLogger("compete")

CHECKPOINT = "last.pt"
PREVIOUS = "previous.pt"          # the checkpoint before last.pt, kept in case last.pt is damaged
CHECKSUMS = "checkpoints.sha256"  # the sha256 of the two newest checkpoints written
WRITING = ".last.pt.writing"      # the next last.pt, whole, in the instant before it moves in
STATE_KEYS = {"model", "optimizer", "scaler", "rng", "epoch", "batches", "train_iter", "loader", "trackers", "finished"}


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_backbone(model: nn.Module, path: Path | str, head: Sequence[str] = ()) -> nn.Module:
    """Load pretrained weights from a local file (a torch.save state dict or safetensors)
    into `model`. Tensors whose names start with one of `head` may be absent or of
    another shape (a new head for other classes keeps its fresh weights); every other
    tensor must load."""
    from common.backbones import read_state   # one reader of weight files for every network

    return load_state(model, read_state(path), Path(path), head)


def load_state(model: nn.Module, state: dict, path: Path, head: Sequence[str] = ()) -> nn.Module:
    """`state` (read from `path`) into `model`, as `load_backbone` says."""
    own = model.state_dict()
    in_head = lambda name: any(name.startswith(prefix) for prefix in head)  # noqa: E731
    fits = {name: tensor for name, tensor in state.items() if name in own and own[name].shape == tensor.shape}
    needed = [name for name in own if not in_head(name)]
    absent = [name for name in needed if name not in fits]
    if absent:
        wrong_shape = [name for name in absent if name in state]
        raise io.InputError(
            f"{path}: {len(needed) - len(absent)} of the {len(needed)} tensors the model needs load from this file "
            f"({len(absent)} missing, e.g. {absent[0]!r}; {len(wrong_shape)} of another shape; {len(state) - len(fits)} "
            f"of the file's {len(state)} unused): it was saved from another architecture")
    model.load_state_dict(fits, strict=False)
    log.info("backbone %s: %d tensors loaded, %d head tensors left as initialised, %d of the file's unused",
             path.name, len(fits), len(own) - len(fits), len(state) - len(fits))
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


def _bare(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


# ---------------------------------------------------------------- fastai pieces

class Loaders(DataLoaders):
    """fastai's DataLoaders over plain torch loaders; Learner moves each batch to the
    model's device."""

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
    epochs_done = 0

    # fastai's SkipToEpoch still runs every callback's after_epoch for skipped
    # epochs (logging and early-stopping on stale values): start the loop later instead.
    # A while, not fastai's range: Replan may change n_epoch at an epoch's end.
    def _do_fit(self):
        epoch = self.first_epoch
        while epoch < self.n_epoch:
            self.epoch = epoch
            self._with_events(self._do_epoch, "epoch", CancelEpochException)
            epoch += 1


class Progress(Callback):
    """Each epoch's training and validation batches as a bar on stderr (plain lines where
    stderr is not a terminal: common.progress), in place of fastai's ProgressCallback,
    whose fastprogress bars and epoch table print to stdout, where only the command's
    result lines belong. The epoch's figures are CSVHistory's log line."""
    order = 60  # where fastai's ProgressCallback sits: after the Recorder

    bar = None

    def _open(self, phase: str):
        from common.progress import tqdm
        self._close()
        self.bar = tqdm(total=len(self.dl), desc=f"epoch {self.epoch + 1}/{self.n_epoch} {phase}", unit="batch",
                        leave=False)

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def before_train(self):
        self._open("train")

    def before_validate(self):
        self._open("valid")

    def after_batch(self):
        if self.bar is not None:
            self.bar.update(1)

    def after_train(self):
        self._close()

    def after_validate(self):
        self._close()

    def after_fit(self):
        self._close()


class SaveBest(SaveModelCallback):
    """fastai's SaveModelCallback, logging instead of printing; rank 0 writes and
    reads best.pth (atomically, with its sha256 beside it) and the other processes
    receive its weights."""

    def _save(self, name):
        if distributed.is_main():
            state = _bare(self.learn.model).state_dict()  # what fastai's save_model writes without the optimiser
            io.write_checked(Path(self.learn.path) / self.learn.model_dir / f"{name}.pth",
                             lambda handle: torch.save(state, handle))

    def after_epoch(self):
        TrackerCallback.after_epoch(self)
        if self.new_best:
            if distributed.is_main():
                log.info("better model at epoch %d: %s %.6f", self.epoch, self.monitor, self.best)
            self._save(self.fname)  # fastai's save_model writes on rank 0 only

    def after_fit(self):
        load_best(self.learn, self.fname)


def load_best(learn: Learner, name: str = "best") -> None:
    file = Path(learn.path) / learn.model_dir / f"{name}.pth"
    if distributed.is_main() and file.is_file():
        why = io.damage(file) if io.checksum_path(file).is_file() else None  # best.pth of an older compete: no sidecar
        if why is None:
            try:
                load_model(file, learn.model, None, with_opt=False, device=learn.dls.device)
            except Exception as error:  # torch's own words for a file that is not a checkpoint
                why = f"cannot be read: {' '.join(str(error).split())[:120]}"
        if why is not None:
            log.warning("%s is damaged (%s): the model keeps the weights training ended with", file, why)
    distributed.broadcast_module(_bare(learn.model))


class EpochLoader(Callback):
    """Tell a loader with set_epoch which epoch it serves (shuffle per epoch)."""
    order = -5

    def before_train(self):
        if hasattr(self.dls.train, "set_epoch"):
            self.dls.train.set_epoch(self.epoch)


class Replan(Callback):
    """Re-fit the epochs to the time budget at each epoch's end (fit_budget's first
    guess is timed on a few batches; load that arrives later would stretch the run):
    the epochs left are as many as the last epoch's measured length fits in the seconds
    left, so the run ends within its budget (at least the epoch just done, at most
    `most`). One-cycle follows: fastai sets each epoch's place in the schedule from
    epoch / n_epoch. Rank 0 decides and broadcasts; the decision, with the seconds
    spent, goes back to budget.json so a resumed run keeps it."""
    order = 60              # after CSVHistory (55): an epoch's line is written before the plan may change
    clock = staticmethod(time.perf_counter)

    def __init__(self, decision: dict, path: Path | None = None):
        self.decision, self.path = dict(decision), path
        self.seconds, self.most = float(decision["seconds"]), int(decision.get("most", decision["epochs"]))

    def before_fit(self):
        self.mark = self.clock()
        self.started = self.mark - float(self.decision.get("spent", 0.0))   # a resumed run's seconds already spent

    def after_epoch(self):
        import json
        import math

        now = self.clock()
        last, self.mark = now - self.mark, now
        done, epochs = self.epoch + 1, None
        if distributed.is_main():
            left = self.seconds - (now - self.started)
            more = math.floor(left / last) if last > 0 else self.n_epoch - done
            epochs = int(min(self.most, max(done, done + more)))
        epochs = distributed.broadcast(epochs)
        if epochs != self.n_epoch and distributed.is_main():
            log.info("budget: epoch %d took %.0f s, %.0f s of %.0f spent: %d epoch(s) in all, not %d",
                     done, last, now - self.started, self.seconds, epochs, self.n_epoch)
        self.learn.n_epoch = epochs
        self.decision.update(epochs=epochs, spent=round(now - self.started, 2))
        self.decision.setdefault("replanned", []).append([done, epochs])
        self.learn.budget = self.decision
        if self.path is not None and distributed.is_main():
            io.write_text(self.path, json.dumps(self.decision) + "\n")


class CSVHistory(Callback):
    """One line per epoch in history.csv (appending across resumes) and in the log."""
    order = 55

    def __init__(self, path: Path):
        self.path = Path(path)

    def after_epoch(self):
        self.learn.epochs_done = self.epoch + 1
        if not distributed.is_main():
            return
        names, values = list(self.recorder.metric_names), list(self.recorder.log)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.write_text(",".join(map(str, names)) + "\n")
        with open(self.path, "a") as handle:
            handle.write(",".join(_format(value) for value in values) + "\n")
        log.info("epoch %s", "  ".join(f"{n}={_format(v)}" for n, v in zip(names, values)))


class ReportEpochs(Callback):
    """Each epoch's `monitor` to common.callbacks (step = epoch). A listener's Stop (a
    pruned trial) ends the fit the way fastai's own cancel does, and `train` raises it
    again after: raised here it would reach the caller with fastai's words around it."""
    order = 57  # after the Recorder (50) has the epoch's values

    def __init__(self, monitor: str):
        self.monitor, self.stop = monitor, None

    def after_epoch(self):
        values = dict(zip(self.recorder.metric_names, self.recorder.log))
        if self.monitor not in values:
            return
        try:
            fit_callbacks.scored(self.epoch, float(values[self.monitor]))
        except fit_callbacks.Stop as stop:
            self.stop = stop
            raise CancelFitException() from None


class DataParallel(Callback):
    """Under torchrun: DistributedDataParallel around the model for the fit (DDP
    averages the gradients in backward), and the validation figures of every
    process reduced into one, so every rank sees the same valid_loss and takes the
    same early-stopping decision."""
    order = 11  # as fastai's DistributedTrainer: after TrainEvalCallback, before the Recorder (50)

    wrapped = None

    def before_fit(self):
        if distributed.world_size() > 1:
            ids = [distributed.local_rank()] if self.dls.device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def before_train(self):
        if self.wrapped is not None:
            self.learn.model = self.wrapped

    def before_validate(self):
        # The bare module: DDP's forward may broadcast buffers (BatchNorm's), a collective
        # that would wait forever on a rank with fewer validation batches.
        self.learn.model = _bare(self.model)

    def after_fit(self):
        self.learn.model = _bare(self.model)
        self.wrapped = None

    def after_validate(self):
        if distributed.world_size() == 1:
            return
        for metric in [self.recorder.loss, *self.recorder.metrics]:
            if isinstance(metric, (AvgLoss, AvgMetric)):
                metric.total, metric.count = distributed.all_sum([metric.total, metric.count])
            elif isinstance(metric, AccumMetric):
                everything = distributed.all_gather(([p.cpu() for p in metric.preds], [t.cpu() for t in metric.targs]))
                metric.preds = [p for preds, _ in everything for p in preds]
                metric.targs = [t for _, targs in everything for t in targs]
            else:
                raise TypeError(f"{type(metric).__name__}: no way to combine it over processes (use an AvgMetric or AccumMetric)")


class Checkpoint(Callback):
    """Save everything a resume needs every `every` steps, every epoch and at the
    end; restore it when training starts from a checkpoint."""
    order = 90  # after MixedPrecision (creates the scaler) and the trackers reset their state

    def __init__(self, directory: Path, every: int, state: dict | None):
        self.directory, self.every, self.state = Path(directory), every, state
        self.restore_rng_at = None

    # ---- saving
    def _save(self, epoch: int, batches: int, finished: bool = False):
        rng = distributed.gather(_rng_state())  # a collective: every rank takes part
        if not distributed.is_main():
            return
        loader = self.dls.train
        payload = {
            "model": _bare(self.model).state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.learn.scaler.state_dict() if getattr(self.learn, "scaler", None) is not None else None,
            "rng": rng, "world_size": distributed.world_size(),
            "epoch": epoch, "batches": batches, "train_iter": self.learn.train_iter,
            "loader": {"epoch": epoch, "batches": batches, "of": len(loader)} if hasattr(loader, "state_dict") else None,
            "trackers": {type(cb).__name__: {"best": cb.best, **({"wait": cb.wait} if hasattr(cb, "wait") else {})}
                         for cb in self.learn.cbs if isinstance(cb, TrackerCallback) and hasattr(cb, "best")},
            "smooth_loss": {"val": self.recorder.smooth_loss.val, "count": self.recorder.smooth_loss.count},
            "finished": finished,
        }
        write_checkpoint(payload, self.directory)

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
        batches = state["batches"]
        if state["loader"] is not None:
            saved_on = state.get("world_size", 1)
            if batches and saved_on != distributed.world_size():
                # Another number of processes splits the shards another way: no exact
                # position exists, so train the share of the epoch that was left.
                length = len(self.dls.train)
                mapped = min(length - 1, round(batches * length / max(state["loader"]["of"], 1)))
                if distributed.is_main():
                    log.warning("checkpoint of %d process(es) resumed on %d: %d of %d batches into epoch %d becomes %d of %d",
                                saved_on, distributed.world_size(), batches, state["loader"]["of"], state["epoch"], mapped, length)
                batches = mapped
            self.dls.train.load_state_dict({"epoch": state["loader"]["epoch"], "batches": batches})
        self.resumed_epoch, self.state_batches_skipped = state["epoch"], batches
        # Mid-epoch: the uninterrupted run drew its loader iterator before the
        # checkpoint, so restore after ours is drawn; at an epoch boundary, before.
        self.restore_rng_at = "before_batch" if batches else "before_train"

    def _restore_rng(self):
        states = self.state["rng"]
        states = states if isinstance(states, list) else [states]
        _set_rng_state(states[distributed.rank()] if len(states) == distributed.world_size() else states[0])
        self.restore_rng_at = None

    def before_train(self):
        if self.epoch == self.resumed_epoch and self.state_batches_skipped:
            self.learn.pct_train += self.state_batches_skipped / (len(self.dls.train) * self.n_epoch)
        if self.restore_rng_at == "before_train":
            self._restore_rng()

    def before_batch(self):
        if self.restore_rng_at == "before_batch" and self.training:
            self._restore_rng()


# ---------------------------------------------------------------- the one call

def write_checkpoint(payload: dict, directory: Path) -> None:
    """last.pt, written whole beside and hashed as it is written; the checkpoint it
    replaces becomes previous.pt. The checksums list the two newest: whatever instant
    a kill lands at, last.pt or previous.pt (or the whole next one) checks."""
    directory = Path(directory)
    digest, _ = io.write_hashed(directory / WRITING, lambda handle: torch.save(payload, handle))
    io.write_text(directory / CHECKSUMS, "".join(f"{known}\n" for known in [digest, *_checksums(directory)[:1]]))
    if (directory / CHECKPOINT).is_file():
        os.replace(directory / CHECKPOINT, directory / PREVIOUS)
    os.replace(directory / WRITING, directory / CHECKPOINT)


def _checksums(directory: Path) -> list[str]:
    try:
        return (directory / CHECKSUMS).read_text().split()
    except OSError:
        return []


def _load_checkpoint(path: Path, known: list[str]) -> tuple[dict | None, str | None]:
    """(state, None), or (None, why it cannot be used)."""
    if not path.is_file():
        return None, "missing"
    content = path.read_bytes()
    if known and hashlib.sha256(content).hexdigest() not in known:
        return None, "its bytes differ from their checksum: cut short or overwritten"
    try:
        state = torch.load(bytes_io.BytesIO(content), map_location="cpu", weights_only=False)
    except Exception as error:  # torch's own words for a file that is not a checkpoint
        return None, f"cannot be read: {' '.join(str(error).split())[:120]}"
    if not isinstance(state, dict) or not STATE_KEYS <= set(state):
        return None, "not a checkpoint of this trainer"
    return state, None


def _usable_checkpoint(path: Path) -> tuple[dict | None, Path | None]:
    """The newest checkpoint that checks: last.pt, else the next one written whole
    (killed as it moved in), else previous.pt, saying so in one line; None, with one
    line, when none does (training starts again)."""
    directory = path.parent
    candidates = [path, directory / WRITING, directory / PREVIOUS]
    if not any(candidate.is_file() for candidate in candidates):
        return None, None
    known, reasons = _checksums(directory), []
    for candidate in candidates:
        state, why = _load_checkpoint(candidate, known)
        if state is not None:
            if reasons:
                log.warning("%s: %s; resuming from %s instead (epoch %d, %d batches into it)", path, "; ".join(reasons),
                            candidate.name, state["epoch"], state["batches"])
            return state, candidate
        if candidate != directory / WRITING:
            reasons.append(why if candidate == path else f"{candidate.name}: {why}")
    log.warning("%s: no usable checkpoint (%s); training starts again", path, "; ".join(reasons))
    return None, None


def _read_checkpoint(path: Path, resume: bool) -> dict | None:
    """Rank 0 reads the checkpoint and every rank gets it: no shared disk needed."""
    state = None
    if distributed.is_main() and resume:
        state, path = _usable_checkpoint(path)
    if state is not None:
        log.info("resuming from %s: epoch %d, %d batches into it%s (written by %d process(es), resumed on %d)", path,
                 state["epoch"], state["batches"], " (finished)" if state["finished"] else "",
                 state.get("world_size", 1), distributed.world_size())
    return distributed.broadcast(state)


def _keep_history(path: Path, epochs: int) -> None:
    """history.csv as far as the checkpoint resumed from: its header and `epochs` rows
    (a kill between an epoch's row and its checkpoint, or a resume from previous.pt,
    would repeat rows)."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        if len(lines) > epochs + 1:
            io.write_text(path, "".join(lines[:epochs + 1]))


def train(model: nn.Module, train_loader, valid_loader, loss_func: Callable, run_dir: Path | str, epochs: int,
          lr: float = 1e-3, checkpoint_every: int = 200, patience: int | None = None, monitor: str = "valid_loss",
          metrics: Sequence = (), seed: int = 0, quiet: bool = False, resume: bool = True, one_cycle: bool = True,
          opt_func: Callable | None = None, cbs: Sequence = (), wd: float | None = None, splitter: Callable | None = None,
          report: bool = False, budget: dict | None = None):
    """Train `model`; see the module docstring. Returns the fastai Learner. `splitter`
    (fastai's): the model's parameter groups, e.g. [body, head], each with its own rate
    when `lr` is a slice (a pretrained body fine-tuned at a lower rate than its new head).
    `budget`: fit_budget's decision; with its seconds, the epochs are re-planned at each
    epoch's end from the measured speed (Replan), and `learn.budget` is the last plan."""
    distributed.start()
    main = distributed.is_main()
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    if main:
        checkpoints.mkdir(parents=True, exist_ok=True)
    target = device()

    state = _read_checkpoint(checkpoints / CHECKPOINT, resume)
    if state is None:
        # every rank its own stream of dropout masks; rank 0 draws as a single process would
        seed_everything(seed + distributed.rank())
        if main:
            (run_dir / "history.csv").unlink(missing_ok=True)
    elif main:
        _keep_history(run_dir / "history.csv", state["epoch"])

    if opt_func is None:
        from fastai.optimizer import Adam as opt_func
    callbacks = [EpochLoader(), DataParallel(), CSVHistory(run_dir / "history.csv"), SaveBest(monitor=monitor, fname="best"),
                 Checkpoint(checkpoints, checkpoint_every, state)]
    callbacks += tracking.epoch_callbacks()  # each epoch's losses to MLflow while a run is tracked
    if patience:
        callbacks.append(EarlyStoppingCallback(monitor=monitor, patience=patience))
    if budget is not None and budget.get("seconds"):
        callbacks.append(Replan(budget, run_dir / "budget.json"))
    reporter = ReportEpochs(monitor) if report and fit_callbacks.listened() else None
    if reporter is not None:
        callbacks.append(reporter)
    if target.type == "cuda":
        callbacks.append(MixedPrecision())
    extra = {"splitter": splitter} if splitter is not None else {}
    learn = ResumableLearner(Loaders(train_loader, valid_loader, target), model, loss_func=loss_func, opt_func=opt_func,
                             lr=lr, metrics=list(metrics), cbs=callbacks + list(cbs), path=run_dir,
                             model_dir="checkpoints", wd=wd, **extra)
    learn.remove_cb(ProgressCallback)
    if main and not quiet:
        learn.add_cb(Progress())
    learn.logger = lambda *args, **kwargs: None  # epochs are logged by CSVHistory
    learn.budget = budget
    learn.resumed = None if state is None else {"epoch": state["epoch"], "batches": state["batches"],
                                                "train_iter": state["train_iter"], "world_size": state.get("world_size", 1)}

    if state is not None:
        model.load_state_dict(state["model"])
        model.to(target)
        learn.create_opt()
        learn.opt.load_state_dict(state["optimizer"])
        learn.first_epoch = learn.epochs_done = state["epoch"]
        if state["finished"]:
            learn.train_iter = state["train_iter"]
            load_best(learn)
            return learn

    started = time.perf_counter()
    if one_cycle:
        learn.fit_one_cycle(epochs, lr, wd=wd)
    else:
        learn.fit(epochs, lr, wd=wd)
    if reporter is not None and reporter.stop is not None:
        raise reporter.stop
    if main:
        log.info("trained %d epoch(s) on %s%s in %.1f s", learn.epochs_done - learn.first_epoch, target,
                 f" x {distributed.world_size()} processes" if distributed.world_size() > 1 else "",
                 time.perf_counter() - started)
    return learn


def fit_budget(net, make_loader, loss, run_dir: Path, seconds: float, most: int, valid_batches: float,
               name: str = "training") -> dict:
    """How many epochs fit in `seconds`: time a few training steps of a copy of `net`
    on the real loader (decoding and augmenting included), then count an epoch as its
    batches plus a validation pass (`valid_batches` in training batches' worth of
    samples, each ~a third of a training step: no backward pass). One-cycle needs the
    length up front, so the budget picks it rather than cutting a schedule short; `train`
    given the decision re-plans it at each epoch's end (Replan). The decision is kept
    in the run directory (budget.json): a resumed run keeps its epochs,
    and every process of a torchrun uses rank 0's."""
    import copy
    import json

    path = Path(run_dir) / "budget.json"
    distributed.start()
    decision = None
    # rank 0's run directory alone holds the decision (the others' is a scratch folder):
    # read there and broadcast, so a resumed torchrun takes the same collectives on every rank
    if distributed.is_main() and path.is_file():
        decision = json.loads(path.read_text())
    elif distributed.is_main():
        trial = copy.deepcopy(net).train()
        optimiser = torch.optim.Adam(trial.parameters(), lr=1e-4)
        loader = make_loader()
        timings, mark = [], time.perf_counter()
        for step, (inputs, target) in enumerate(loader):
            optimiser.zero_grad()
            loss(trial(inputs), target).backward()
            optimiser.step()
            now = time.perf_counter()
            timings.append(now - mark)
            mark = now
            if len(timings) == 4:
                break
        # the first batch also starts the loader's workers: left out unless it is the only
        # one (a one-batch epoch timed at zero would be given every epoch whatever the budget)
        per_batch = float(np.median(timings[1:] if len(timings) > 1 else timings)) if timings else 0.0
        epochs = budget_epochs(seconds, per_batch, len(loader), valid_batches, most)
        decision = {"epochs": epochs, "seconds_per_batch": round(per_batch, 4), "seconds": seconds, "most": most}
        log.info("%s: %.2f s a batch, %d batches an epoch: %d epoch(s) in the %.0f-minute budget (at most %d)",
                 name, per_batch, len(loader), epochs, seconds / 60, most)
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        io.write_text(path, json.dumps(decision) + "\n")
    return distributed.broadcast(decision)


def budget_epochs(seconds: float, per_batch: float, batches: int, valid_batches: float, most: int) -> int:
    """The epochs of `batches` training steps and a validation pass (`valid_batches`
    in training batches' worth, each ~a third of a step) that fill `seconds`, rounded
    up so the whole budget trains (one epoch over rather than most of one unused);
    at least 1, at most `most`."""
    import math

    per_epoch = per_batch * (batches + valid_batches / 3)
    return int(max(1, min(most, math.ceil(seconds / per_epoch) if per_epoch else most)))
