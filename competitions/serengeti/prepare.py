"""Serengeti's data preparation, run once before training (as Lightning's
`prepare_data`): the hold-out split, and every sequence's frames decoded, resized and
packed into tar shards in the cache. Under torchrun rank 0 packs and the other ranks
wait for it and open the same shards (common.loaders.cached_shards)."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from competitions.serengeti import data as serengeti_data
from competitions.serengeti import inference
from competitions.serengeti.data import CLASSES, FILE, ID, SerengetiData

log = logging.getLogger("compete")
SHARD_SEQUENCES = 300   # ~44 MB of 128x96 frame stacks and 64x64 crop stacks a shard


@dataclass
class Prepared:
    """What training and validation read: every training image with its sequence's
    labels, which of them train and which validate (the held-out sites' other seasons
    do neither until the final fit on every site), the shard sets ("train", "valid" and,
    when there are any, "rest": those other seasons) and the images none could read."""
    frames: pd.DataFrame
    train_mask: np.ndarray
    valid_mask: np.ndarray
    shard_sets: dict            # "train" and "valid": common.loaders.ShardSet
    unreadable: list[str]


def prepare(data: SerengetiData, seed: int, valid_share: float, size: tuple[int, int], quiet: bool = True) -> Prepared:
    """Split the training sequences (validation_split) and pack each part's shards;
    unreadable images are counted (metrics.json's unusable_rows) and fatal when they are
    most of the images."""
    if not 0 < valid_share <= 1:
        raise io.InputError(f"valid_share: {valid_share!r} is not a share in (0, 1]")
    frames = data.train.merge(data.labels, on=ID, how="left")
    train_mask, valid_mask = validation_split(frames, seed, valid_share)
    sites = frames.loc[valid_mask, ID].map(serengeti_data.site_of).unique()
    log.info("serengeti: %d images in %d sequences; validation: %d sequences of %s at %d held-out site(s) (%s), "
             "training: %d sequences at the other sites (%d at the held-out sites left unused)",
             len(frames), frames[ID].nunique(), frames.loc[valid_mask, ID].nunique(),
             "the last training season" if frames["season"].nunique() > 1 else "every season", len(sites),
             " ".join(sorted(sites)), frames.loc[train_mask, ID].nunique(), frames.loc[~train_mask & ~valid_mask, ID].nunique())
    shard_sets, unreadable = {}, []
    rest = ~train_mask & ~valid_mask   # the held-out sites' earlier seasons: the final fit on every site reads them
    # each camera's background in each season, from its own bursts (a key is one site in one season: no part
    # lends another its scenes), as the code submission computes it from the set it predicts
    backgrounds = inference.site_backgrounds(data.root, inference.group_sequences(frames[ID], frames[FILE]), size)
    for part, mask in (("train", train_mask), ("valid", valid_mask), ("rest", rest)):
        if part == "rest" and not rest.any():
            continue
        shard_sets[part] = prepare_shards(frames[mask], data.root, part, size, quiet=quiet, backgrounds=backgrounds)
        unreadable += shard_sets[part].metadata["unreadable"]
    io.unusable_rows(serengeti_data.TRAIN_METADATA, len(frames), {"image_unreadable": frames[FILE].isin(unreadable).to_numpy()},
                     examples=frames[FILE])
    return Prepared(frames, train_mask, valid_mask, shard_sets, unreadable)


def validation_split(frames: pd.DataFrame, seed: int, share: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) masks over `frames` as the hidden test differs from training: a
    later season, from cameras training never saw. `share` of the last season's camera
    sites (chosen by hash) are held out: their last-season sequences validate, and none
    of their sequences trains (their earlier seasons are left unused); the other sites'
    sequences of every season train. At least one site is held out and one trains; with
    a single season the held-out sites' sequences of it validate; with a single site, a
    fifth of the sequences by hash."""
    def hashed(values, modulo=2 ** 32):
        return values.map(lambda s: int(hashlib.md5(f"{seed}:{s}".encode()).hexdigest()[:8], 16) % modulo)

    seasons = sorted(frames["season"].unique(), key=lambda s: (len(s), s))
    last = (frames["season"] == seasons[-1]).to_numpy()
    site = frames[ID].map(serengeti_data.site_of)
    candidates = pd.Series(site[last].unique())
    if len(candidates) < 2:
        valid = (hashed(frames[ID], 5) == 0).to_numpy()
        return ~valid, valid
    count = int(min(len(candidates) - 1, max(1, round(share * len(candidates)))))
    held = set(candidates.iloc[np.argsort(hashed(candidates).to_numpy(), kind="stable")[:count]])
    at_held = site.isin(held).to_numpy()
    return ~at_held, at_held & last


def burst_sample(frames: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """One shard sample of a sequence: a record of its frame stack and its crop stack
    (inference.read_burst), stored as one .npy (model.parts reads it back)."""
    kind = np.dtype([("frames", np.uint8, frames.shape), ("crops", np.uint8, crops.shape)])
    record = np.zeros(1, kind)
    record["frames"], record["crops"] = frames, crops
    return record


def _decode(job):
    root, files, size, backgrounds = job
    frames, crops, bad = inference.read_burst(root, files, size, backgrounds)
    return (burst_sample(frames, crops) if frames is not None else None), bad


def _pack_group(group, root: str, size: tuple[int, int], pool=None):
    """Decode one shard's sequences and pack them, a sequence's frames as one stack
    (a Dask task under --scheduler: the worker returns the tar's bytes, so no shared
    disk is needed)."""
    from common import loaders

    number, sequences, labels, backgrounds = group
    jobs = [(root, files, size, backgrounds.get(inference.site_key(seq_id))) for seq_id, files in sequences]
    stacks = pool.map(_decode, jobs, chunksize=16) if pool is not None else map(_decode, jobs)
    samples, unreadable = [], []
    for (seq_id, _), label, (stack, bad) in zip(sequences, labels, stacks):
        unreadable += bad
        if stack is not None:
            samples.append((seq_id, stack, label))
    return (*loaders.pack_shard(number, samples), unreadable)


def prepare_shards(frames: pd.DataFrame, root: Path, part: str, size: tuple[int, int] = serengeti_data.IMAGE_SIZE,
                   quiet: bool = True, backgrounds: dict | None = None):
    """Decode and resize every sequence's frames once into tar shards in the cache,
    one sample a sequence (its frame stack and crop stack, burst_sample, a single frame
    against its camera's background in `backgrounds`, inference.site_backgrounds; its
    label); a sequence with no readable frame is left out. The key is the metadata and labels
    themselves (hashing 6 TB of images is not an option). One shard per
    SHARD_SEQUENCES sequences, packed on the Dask cluster under --scheduler
    (common.parallel) and here otherwise: the same bytes either way."""
    from common import loaders, parallel

    columns = [ID, FILE, *CLASSES]
    fingerprint = hashlib.sha256(pd.util.hash_pandas_object(frames[columns], index=False).to_numpy().tobytes()
                                 + f"{Path(root).resolve()}|{tuple(size)}|{part}|stacks+crops{inference.CROP}|backgrounds"
                                 f"{inference.BACKGROUND_BURSTS},{inference.BACKGROUND_READS}".encode()).hexdigest()[:16]
    sequences = inference.group_sequences(frames[ID], frames[FILE])
    backgrounds = backgrounds or {}
    first = frames.drop_duplicates(ID).set_index(ID)
    labels = first.loc[[seq_id for seq_id, _ in sequences], list(CLASSES)].to_numpy(dtype=np.uint8)
    groups = []
    for number, chosen in enumerate(parallel.split(len(sequences), SHARD_SEQUENCES)):
        keys = {inference.site_key(seq_id) for seq_id, _ in sequences[chosen]}   # a shard carries its own sites' backgrounds
        groups.append((number, sequences[chosen], labels[chosen], {key: backgrounds[key] for key in keys if key in backgrounds}))

    def build(directory: Path):
        return loaders.pack_groups(directory, groups, _pack_group, metadata={"classes": list(CLASSES), "image_size": list(size), "crop": inference.CROP},
                                   workers=min(4, os.cpu_count() or 1), progress=not quiet, root=str(root), size=tuple(size))

    return loaders.cached_shards("serengeti", fingerprint, build=build)
