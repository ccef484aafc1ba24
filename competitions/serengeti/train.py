"""Serengeti's training stage: the network started at the class prior, the shard
streams it reads, the epochs the time budget allows (common.trainers.fit_budget) and
the one-cycle training itself, with the torch threads the loader's workers leave."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from competitions.serengeti.data import CLASSES, ID, SerengetiData
from competitions.serengeti.prepare import Prepared


DEFAULT_MINUTES = 28.0   # the training budget when none is given: the validated fit and the final one together


@dataclass
class Trained:
    """The trained model and what a report says of its training."""
    model: object               # model.SerengetiModel
    prior: np.ndarray           # each label's share of the training sequences
    epochs_done: int
    budget: dict                # fit_budget's decision as last re-planned: epochs, seconds_per_batch, seconds, first_plan
    most: int                   # the epoch cap
    minutes: float | None       # the validated fit's share of the time budget; None: the cap alone
    threads: int


@dataclass
class Refitted:
    """The final model, trained on from the validated one on every site."""
    model: object               # model.SerengetiModel
    epochs_done: int
    sequences: int              # the training sequences of every site
    budget: dict


def train(data: SerengetiData, prepared: Prepared, options, run_dir: Path) -> Trained:
    """`options`: the competition's SerengetiOptions."""
    import torch

    from common import trainers
    from competitions.serengeti import model as serengeti_model

    most = epoch_cap(options) - refit_epochs(options)
    minutes = budget_minutes(options)
    minutes = None if minutes is None else minutes * (1 - options.refit)
    workers = min(2, os.cpu_count() or 1) if options.workers is None else options.workers
    shard_sets, frames = prepared.shard_sets, prepared.frames
    train_sequences = data.labels[ID].isin(frames.loc[prepared.train_mask, ID])
    prior = data.labels.loc[train_sequences, list(CLASSES)].to_numpy(dtype=float).mean(axis=0)
    torch.manual_seed(options.seed)
    net = serengeti_model.SerengetiNet(width=options.width, stem=options.stem).start_at(prior)
    if options.backbone:
        trainers.load_backbone(net, options.backbone, head=("head.",))

    threads = options.threads or max(1, (os.cpu_count() or 1) - workers)
    learn, budget = _fit(net, shard_sets["train"], shard_sets["valid"], options, run_dir, most,
                         None if minutes is None else minutes * 60, options.seed, options.lr, threads, workers, "serengeti",
                         patience=options.patience,
                         report=True)  # each epoch's validation loss to tune's pruner
    model = serengeti_model.SerengetiModel(learn.model.cpu(), prior, options.image_size, options.width)
    return Trained(model, prior, learn.epochs_done, {**budget, **(learn.budget or {}), "first_plan": budget["epochs"]},
                   most, minutes, threads)


def budget_minutes(options) -> float | None:
    """The whole training budget (the validated fit and the final one on every site);
    None: no budget, the epoch caps alone (--fast, so a quick run's bytes never depend
    on the machine's speed)."""
    return options.minutes if options.minutes is not None else (None if options.fast else DEFAULT_MINUTES)


def epoch_cap(options) -> int:
    """The epochs of the validated fit and the final one together, at most."""
    return options.epochs or (2 if options.fast else 40)


def refit_epochs(options) -> int:
    """The final fit's share of the epoch cap (at least one, and one left to validate);
    0 without a final fit."""
    import math

    cap = epoch_cap(options)
    return min(cap - 1, max(1, math.ceil(options.refit * cap))) if options.refit else 0


def refit(trained: Trained, prepared: Prepared, options, run_dir: Path, started: float) -> Refitted | None:
    """The final model: the validated network trained on, now on every site (the
    held-out sites' sequences of every season join the training ones), for what is left
    of the whole training budget since `started` (time.perf_counter(); about the
    `options.refit` share, more when the validated fit stopped early, less when the
    validation ran long), or refit_epochs epochs without a budget. A one-cycle of its own
    at a third of the peak rate: a warm restart, not a fresh start. The cv was measured
    before, on sites this network had not seen; None without a final fit (refit 0, or an
    epoch cap of 1). Checkpoints in run_dir/refit, so a killed run resumes here."""
    import time

    from common import loaders
    from competitions.serengeti import model as serengeti_model

    most = refit_epochs(options)
    if not most:
        return None
    workers = min(2, os.cpu_count() or 1) if options.workers is None else options.workers
    every = loaders.ShardSet.union([prepared.shard_sets[part] for part in ("train", "valid", "rest") if part in prepared.shard_sets])
    minutes = budget_minutes(options)
    seconds = None if minutes is None else max(1.0, minutes * 60 - (time.perf_counter() - started))
    # the held-out sequences validate again (fastai's loop wants a validation set): now training ones, not a score
    learn, budget = _fit(trained.model.net, every, prepared.shard_sets["valid"], options, Path(run_dir) / "refit", most,
                         seconds, options.seed + 1, options.lr / 3, trained.threads, workers, "serengeti refit")
    model = serengeti_model.SerengetiModel(learn.model.cpu(), trained.prior, options.image_size, options.width)
    return Refitted(model, learn.epochs_done, every.count, {**budget, **(learn.budget or {})})


def _fit(net, train_set, valid_set, options, run_dir: Path, most: int, seconds: float | None, seed: int, lr: float,
         threads: int, workers: int, name: str, **extra):
    """One one-cycle training of `net` on the shard set `train_set` (augmented, shuffled
    by `seed`), validated on `valid_set`, on `threads` torch threads beside the loader's
    `workers`: its epochs fitted to `seconds` and re-planned at each epoch's end
    (common.trainers.fit_budget, Replan), or `most` without a budget. `extra`: more of
    trainers.train's options. The fastai learner and the budget it trained under."""
    import torch

    from common import loaders, trainers
    from competitions.serengeti import model as serengeti_model

    def train_loader():
        # ~110 KB a sequence at 128x96: the shuffle buffer holds a few hundred
        return loaders.StreamLoader(
            loaders.ShardStream(train_set, buffer_size=400, seed=seed, balance=options.balance,
                                transform=serengeti_model.augment), batch_size=options.batch_size, num_workers=workers)

    valid_loader = loaders.StreamLoader(loaders.ShardStream(valid_set, shuffle=False, transform=serengeti_model.plain),
                                        batch_size=64, num_workers=workers)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        budget = {"epochs": most, "seconds_per_batch": None, "seconds": None} if seconds is None else trainers.fit_budget(
            net, train_loader, serengeti_model.loss, run_dir, seconds, most,
            valid_loader.batch_size * len(valid_loader) / options.batch_size, name=name)
        learn = trainers.train(net, train_loader(), valid_loader, serengeti_model.loss, run_dir, epochs=budget["epochs"],
                               lr=lr, checkpoint_every=options.checkpoint_every, seed=seed, quiet=options.quiet, wd=1e-4,
                               budget=budget,  # re-planned at each epoch's end from the measured speed
                               **extra)
    finally:
        torch.set_num_threads(threads_before)
    return learn, budget
