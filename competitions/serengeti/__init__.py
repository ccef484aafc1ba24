"""DrivenData "Hakuna Ma-data: Identify Wildlife on the Serengeti with AI for Earth":
camera-trap sequences, 54 labels, mean binary log loss, a code submission."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, plots
from common.competition import BaseCompetition, OutOfFold, Report
from common.metrics import MEAN_BINARY_LOG_LOSS
from common.options import Options, option
from competitions.serengeti import data as serengeti_data
from competitions.serengeti import inference
from competitions.serengeti.data import CLASSES, FILE, ID, SUBMISSION_FORMAT, TEST_METADATA, WEIGHTS, SerengetiData

log = logging.getLogger("compete")


@dataclass
class SerengetiOptions(Options):
    minutes: float | None = option(None, "training time budget in minutes: the number of epochs is fitted to it from the "
                                         "measured speed of the first batches; None: 20 (with --fast: no budget, the "
                                         "epoch cap alone, so a quick run's bytes never depend on the machine's speed)",
                                 above=0)
    epochs: int | None = option(None, "training epochs at most (the time budget and early stopping may end sooner); "
                                      "None: 40 (2 with --fast)", minimum=1)
    backbone: Path | None = option(None, "a state dict (.pth) of weights to start from, e.g. weights/resnet50.pth "
                                         "(the head is trained anew)")
    width: int = option(32, "channels of the network's first block", minimum=1, search=(16, 64), log=True)
    stem: int = option(serengeti_data.STEM, "stride of the network's first layer (its features are the frame's size / stem)",
                     minimum=1)
    image_width: int = option(serengeti_data.IMAGE_SIZE[0], "pixels across that each frame is resized to", minimum=1)
    image_height: int = option(serengeti_data.IMAGE_SIZE[1], "pixels down that each frame is resized to", minimum=1)
    lr: float = option(3e-3, "peak learning rate (one-cycle)", above=0, search=(3e-4, 3e-2), log=True)
    batch_size: int = option(32, "sequences per training batch", minimum=1)
    balance: float = option(0.0, "0: sample sequences as they come; 1: every class as often (shard stream balancing)",
                           minimum=0, maximum=1, search=(0.0, 1.0))
    valid_share: float = option(0.5, "share of the last training season held out for validation, the rest of it trains "
                                     "(1: the whole season, the strictest stand-in for the hidden test season; 0.5 trains "
                                     "on ~17% more sequences at full scale for a validation set half the size)",
                                above=0, maximum=1)
    patience: int = option(8, "epochs without a better validation loss before stopping (the one-cycle peak makes a few "
                              "early epochs noisy: 4 stopped a 22-epoch full-scale run at epoch 5)", minimum=1)
    checkpoint_every: int = option(200, "batches between checkpoints (a killed run resumes from the last; "
                                 "0: at the end of each epoch only)", minimum=0)
    workers: int | None = option(None, "data loader processes; None: up to 2", minimum=0)
    threads: int | None = option(None, "torch threads while training; None: the cores the loader's worker processes "
                                       "leave (1 on 2 cores: measured 0.46 s a step with 1 thread vs 0.87 s with 2 at load "
                                       "~4); fixed by the option and the core count, never by the load, so the same seed "
                                       "gives the same bytes", minimum=1)

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.image_width, self.image_height)


class Serengeti(BaseCompetition):
    name = "serengeti"
    platform = "drivendata"
    slug = "camera-trap-serengeti"
    url = "https://www.drivendata.org/competitions/59/camera-trap-serengeti"
    metric = MEAN_BINARY_LOG_LOSS
    submission = serengeti_data.SUBMISSION
    description = "DrivenData, camera-trap multi-label images, code submission"
    data_files = (serengeti_data.TRAIN_METADATA, serengeti_data.TRAIN_LABELS)
    float_format = "%.6f"
    # The code submission (common/packaging.py): the function main.py calls and the
    # run files it needs beside it, for the runtime the competition's bundles run in.
    bundle_entry = "competitions.serengeti.inference:run"
    bundle_files = (inference.MODEL, inference.META)
    runtime_profile = "hakuna-madata"
    options = SerengetiOptions

    def synth(self, out_dir: Path, seed: int, scale: str) -> None:
        from competitions.serengeti.synth import synth
        synth(out_dir, seed, scale)

    def load(self, data_dir: Path) -> serengeti_data.SerengetiData:
        return serengeti_data.load(data_dir)

    def sample(self, data_dir: Path) -> pd.DataFrame:
        if io.find(data_dir, SUBMISSION_FORMAT, required=False) is None:
            raise io.InputError(
                f"{data_dir}: no {SUBMISSION_FORMAT}. On the real competition it and {TEST_METADATA} exist only "
                f"inside DrivenData's hidden runtime: build the code submission with `compete package serengeti "
                f"--run-dir RUN --out submission.zip` and prove it with `compete runtime test submission.zip --data DIR`")
        return super().sample(data_dir)

    def fit(self, data: SerengetiData, options: SerengetiOptions, run_dir: Path):
        import torch

        from common import loaders, trainers
        from competitions.serengeti import model as serengeti_model

        started = time.perf_counter()
        if data.test is None:
            log.warning("serengeti: no %s here (the real one exists only in the hidden runtime); training only", TEST_METADATA)
        most = options.epochs or (2 if options.fast else 40)
        minutes = options.minutes if options.minutes is not None else (None if options.fast else 20.0)
        workers = min(2, os.cpu_count() or 1) if options.workers is None else options.workers
        if not 0 < options.valid_share <= 1:
            raise io.InputError(f"valid_share: {options.valid_share!r} is not a share in (0, 1]")
        frames = data.train.merge(data.labels, on=ID, how="left")
        valid_mask = validation_split(frames, options.seed, options.valid_share)
        log.info("serengeti: %d images in %d sequences; validation: %d sequences (%s)", len(frames), frames[ID].nunique(),
                 frames.loc[valid_mask, ID].nunique(),
                 f"{options.valid_share:.0%} of the last training season" if frames["season"].nunique() > 1 else "20% of sequences")
        shard_sets, unreadable = {}, []
        for part, mask in (("train", ~valid_mask), ("valid", valid_mask)):
            shard_sets[part] = prepare_shards(frames[mask], data.root, part, options.image_size, quiet=options.quiet)
            unreadable += shard_sets[part].metadata["unreadable"]
        # counted (metrics.json's unusable_rows) and fatal when they are most of the images
        io.unusable_rows(serengeti_data.TRAIN_METADATA, len(frames), {"image_unreadable": frames[FILE].isin(unreadable).to_numpy()},
                         examples=frames[FILE])
        prepared = time.perf_counter()

        train_sequences = data.labels[ID].isin(frames.loc[~valid_mask, ID])
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
            budget = {"epochs": most, "seconds_per_batch": None, "seconds": None} if minutes is None else fit_budget(
                net, train_loader, serengeti_model.loss, run_dir, minutes * 60, most,
                valid_loader.batch_size * len(valid_loader) / options.batch_size)
            learn = trainers.train(net, train_loader(), valid_loader, serengeti_model.loss, run_dir, epochs=budget["epochs"],
                                   lr=options.lr, checkpoint_every=options.checkpoint_every,
                                   patience=options.patience, seed=options.seed, quiet=options.quiet, wd=1e-4,
                                   report=True)  # each epoch's validation loss to tune's pruner
        finally:
            torch.set_num_threads(threads_before)
        trained = time.perf_counter()
        model = serengeti_model.SerengetiModel(learn.model.cpu(), prior, options.image_size, options.width)

        # Cross-validation score: the held-out sequences of the last season, as at test time
        # (a sequence with no readable frame gets the prior there too).
        # every validation sequence on every process (rank 0 scores; under torchrun the others' copy is discarded)
        stream = loaders.ShardStream(shard_sets["valid"], shuffle=False, transform=serengeti_model.plain, with_keys=True, rank=0, world_size=1)
        keys = []

        def batches():
            for inputs, _, batch_keys in loaders.StreamLoader(stream, batch_size=64, num_workers=0):
                keys.extend(batch_keys)
                yield (inputs,)

        probabilities = serengeti_model.sequence_probabilities(model, batches(), quiet=options.quiet)
        valid_sequences = pd.unique(frames.loc[valid_mask, ID])
        predicted = serengeti_model.assemble(valid_sequences, dict(zip(keys, probabilities)), prior)
        truth_frame = data.labels.set_index(ID).loc[valid_sequences, list(CLASSES)].reset_index()
        truth = truth_frame[list(CLASSES)].to_numpy(dtype=float)
        cv = self.metric(truth, predicted[list(CLASSES)].to_numpy())
        baseline = self.metric(truth, np.tile(np.clip(prior, serengeti_model.CLIP, 1 - serengeti_model.CLIP), (len(truth), 1)))
        log.info("serengeti: cv %.5f, class-prior baseline %.5f (ratio %.3f)", cv, baseline, cv / baseline)
        title = plots.cv_title("serengeti", self.metric.name, cv)
        plots.per_label_scores(label_log_losses(truth, predicted[list(CLASSES)].to_numpy()), run_dir / "label_scores.png",
                               f"{title}: by label", "binary log loss on the validation sequences")
        plots.training_curves({"network": run_dir / "history.csv"}, run_dir / "training_curves.png", f"{title}: loss by epoch")
        report = Report(
            cv_score=cv, fold_scores=[cv],
            note=f"mean binary log loss on the validation sequences ({options.valid_share:.0%} of the last season, held out), "
                 "each sequence read whole (its frames and their motion)",
            decisions=dict(prior_baseline=round(baseline, 6), ratio_to_prior=round(cv / baseline, 4),
                           epochs=learn.epochs_done, epochs_asked=budget["epochs"], epochs_most=most,
                           minutes_budget=minutes, threads=threads, seconds_per_batch=budget["seconds_per_batch"],
                           stopped_early=learn.epochs_done < budget["epochs"],
                           train_sequences=shard_sets["train"].count, valid_sequences=shard_sets["valid"].count,
                           unreadable_images=unreadable, prepare_seconds=round(prepared - started, 2),
                           train_seconds=round(trained - prepared, 2),
                           out_of_fold_note="a hold-out, not K folds: out_of_fold.csv holds the validation sequences "
                                            "only, all in fold 1; a blend of runs made with the same seed and "
                                            "valid_share works on those rows"),
            # what a blend reads: the held-out sequences' probabilities (runs.OUT_OF_FOLD)
            out_of_fold=OutOfFold(predicted.reset_index(drop=True), truth_frame, np.zeros(len(predicted), dtype=int)))
        return model, report

    def save_model(self, model, run_dir: Path) -> None:
        model.save(Path(run_dir) / WEIGHTS)
        model.export(run_dir)

    def load_model(self, run_dir: Path):
        # torch loads here, not at import: `compete list` stays light.
        from competitions.serengeti import model as serengeti_model
        return serengeti_model.SerengetiModel.load(Path(run_dir) / WEIGHTS)

    def predict(self, model, data: SerengetiData) -> pd.DataFrame:
        from competitions.serengeti import model as serengeti_model

        if data.test is None:
            raise io.InputError(
                f"{data.root}: no {TEST_METADATA}. On the real competition the test images, {TEST_METADATA} and "
                f"{SUBMISSION_FORMAT} exist only inside DrivenData's hidden runtime: train with `compete fit serengeti` "
                f"(a model already trained lies in its run directory), then `compete package serengeti --run-dir RUN "
                f"--out submission.zip` and `compete runtime test submission.zip --data DIR`")
        root = serengeti_data.image_root(data.root, data.test[FILE].iloc[0])
        predictions, bad = serengeti_model.predict_folder(model, data.test, root)
        return predictions


def label_log_losses(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Each label's binary log loss, by the metric itself (their mean is the cv score)."""
    return {label: MEAN_BINARY_LOG_LOSS(truth[:, [i]], predicted[:, [i]]) for i, label in enumerate(CLASSES)}


def validation_split(frames: pd.DataFrame, seed: int, share: float = 1.0) -> np.ndarray:
    """The validation set: `share` of the last training season's sequences (by hash),
    like the hidden test season is a season of its own; the rest of that season
    trains with the others. With a single season, a fifth of the sequences by hash."""
    def hashed(modulo):
        return frames[ID].map(lambda s: int(hashlib.md5(f"{seed}:{s}".encode()).hexdigest()[:8], 16) % modulo)

    seasons = sorted(frames["season"].unique(), key=lambda s: (len(s), s))
    if len(seasons) > 1:
        return ((frames["season"] == seasons[-1]) & (hashed(1000) < share * 1000)).to_numpy()
    return (hashed(5) == 0).to_numpy()


def fit_budget(net, make_loader, loss, run_dir: Path, seconds: float, most: int, valid_batches: int) -> dict:
    """common.trainers.fit_budget, its log line naming serengeti."""
    from common import trainers
    return trainers.fit_budget(net, make_loader, loss, run_dir, seconds, most, valid_batches, name="serengeti")


def budget_epochs(seconds: float, per_batch: float, batches: int, valid_batches: float, most: int) -> int:
    from common import trainers
    return trainers.budget_epochs(seconds, per_batch, batches, valid_batches, most)


SHARD_SEQUENCES = 300   # ~33 MB of 128x96 frame stacks a shard


def _decode(job):
    root, files, size = job
    return inference.read_frames(root, files, size)


def _pack_group(group, root: str, size: tuple[int, int], pool=None):
    """Decode one shard's sequences and pack them, a sequence's frames as one stack
    (a Dask task under --scheduler: the worker returns the tar's bytes, so no shared
    disk is needed)."""
    from common import loaders

    number, sequences, labels = group
    jobs = [(root, files, size) for _, files in sequences]
    stacks = pool.map(_decode, jobs, chunksize=16) if pool is not None else map(_decode, jobs)
    samples, unreadable = [], []
    for (seq_id, _), label, (stack, bad) in zip(sequences, labels, stacks):
        unreadable += bad
        if stack is not None:
            samples.append((seq_id, stack, label))
    return (*loaders.pack_shard(number, samples), unreadable)


def prepare_shards(frames: pd.DataFrame, root: Path, part: str, size: tuple[int, int] = serengeti_data.IMAGE_SIZE,
                   quiet: bool = True):
    """Decode and resize every sequence's frames once into tar shards in the cache,
    one sample a sequence (its frame stack, inference.stack_frames; its label); a
    sequence with no readable frame is left out. The key is the metadata and labels
    themselves (hashing 6 TB of images is not an option). One shard per
    SHARD_SEQUENCES sequences, packed on the Dask cluster under --scheduler
    (common.parallel) and here otherwise: the same bytes either way."""
    from common import loaders, parallel
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log

    columns = [ID, FILE, *CLASSES]
    fingerprint = hashlib.sha256(pd.util.hash_pandas_object(frames[columns], index=False).to_numpy().tobytes()
                                 + f"{Path(root).resolve()}|{tuple(size)}|{part}|stacks".encode()).hexdigest()[:16]
    sequences = inference.group_sequences(frames[ID], frames[FILE])
    first = frames.drop_duplicates(ID).set_index(ID)
    labels = first.loc[[seq_id for seq_id, _ in sequences], list(CLASSES)].to_numpy(dtype=np.uint8)
    groups = [(number, sequences[chosen], labels[chosen])
              for number, chosen in enumerate(parallel.split(len(sequences), SHARD_SEQUENCES))]

    def build(directory: Path):
        unreadable, packed = [], []
        with contextlib.ExitStack() as stack:
            if parallel.active():
                results = parallel.map_chunks(_pack_group, groups, root=str(root), size=tuple(size))
            else:
                pool = stack.enter_context(ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)))
                results = (_pack_group(group, str(root), tuple(size), pool) for group in groups)
            for number, (content, shard_labels, bad) in enumerate(tqdm(results, total=len(groups), desc="packing shards",
                                                                     disable=quiet, unit="shard")):
                packed.append(loaders.write_shard(directory, number, content, shard_labels))
                unreadable += bad
        return loaders.finish_shards(directory, packed, metadata={"classes": list(CLASSES), "image_size": list(size),
                                                                  "unreadable": unreadable})

    return loaders.cached_shards("serengeti", fingerprint, build=build)
