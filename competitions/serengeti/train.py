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


@dataclass
class Trained:
    """The trained model and what a report says of its training."""
    model: object               # model.SerengetiModel
    prior: np.ndarray           # each label's share of the training sequences
    epochs_done: int
    budget: dict                # fit_budget's decision as last re-planned: epochs, seconds_per_batch, seconds, first_plan
    most: int                   # the epoch cap
    minutes: float | None       # the time budget; None: the cap alone
    threads: int


def train(data: SerengetiData, prepared: Prepared, options, run_dir: Path) -> Trained:
    """`options`: the competition's SerengetiOptions."""
    import torch

    from common import loaders, trainers
    from competitions.serengeti import model as serengeti_model

    most = options.epochs or (2 if options.fast else 40)
    minutes = options.minutes if options.minutes is not None else (None if options.fast else 20.0)
    workers = min(2, os.cpu_count() or 1) if options.workers is None else options.workers
    shard_sets, frames = prepared.shard_sets, prepared.frames
    train_sequences = data.labels[ID].isin(frames.loc[prepared.train_mask, ID])
    prior = data.labels.loc[train_sequences, list(CLASSES)].to_numpy(dtype=float).mean(axis=0)
    torch.manual_seed(options.seed)
    net = serengeti_model.SerengetiNet(width=options.width, stem=options.stem).start_at(prior)
    if options.backbone:
        trainers.load_backbone(net, options.backbone, head=("head.",))

    def train_loader():
        # ~110 KB a sequence at 128x96: the shuffle buffer holds a few hundred
        return loaders.StreamLoader(
            loaders.ShardStream(shard_sets["train"], buffer_size=400, seed=options.seed, balance=options.balance,
                                transform=serengeti_model.augment), batch_size=options.batch_size, num_workers=workers)

    valid_loader = loaders.StreamLoader(loaders.ShardStream(shard_sets["valid"], shuffle=False, transform=serengeti_model.plain),
                                        batch_size=64, num_workers=workers)
    threads_before = torch.get_num_threads()
    threads = options.threads or max(1, (os.cpu_count() or 1) - workers)
    torch.set_num_threads(threads)
    try:
        budget = {"epochs": most, "seconds_per_batch": None, "seconds": None} if minutes is None else trainers.fit_budget(
            net, train_loader, serengeti_model.loss, run_dir, minutes * 60, most,
            valid_loader.batch_size * len(valid_loader) / options.batch_size, name="serengeti")
        learn = trainers.train(net, train_loader(), valid_loader, serengeti_model.loss, run_dir, epochs=budget["epochs"],
                               lr=options.lr, checkpoint_every=options.checkpoint_every,
                               patience=options.patience, seed=options.seed, quiet=options.quiet, wd=1e-4,
                               report=True,  # each epoch's validation loss to tune's pruner
                               budget=budget)  # re-planned at each epoch's end from the measured speed
    finally:
        torch.set_num_threads(threads_before)
    model = serengeti_model.SerengetiModel(learn.model.cpu(), prior, options.image_size, options.width)
    return Trained(model, prior, learn.epochs_done, {**budget, **(learn.budget or {}), "first_plan": budget["epochs"]},
                   most, minutes, threads)
