"""Birdcall's folds: the stratified split, each model's out-of-fold probabilities
(the pooled log-mel baseline; one CNN per fold) and the out-of-fold files a run keeps."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import callbacks, io, sound
from common.competition import OutOfFold
from common.metrics import MULTICLASS_LOG_LOSS
from competitions.birdcall.data import ID, LABEL
from competitions.birdcall.prepare import Clips

log = logging.getLogger("compete")


def fold_count(y: np.ndarray, classes: int, asked: int | None) -> int:
    """`asked`, or five folds (one CNN per fold, averaged at test time; --fast, the
    baseline alone, the same five); never more than the rarest species' clips. Five rather than three:
    each network sees 4/5 of the clips and five are averaged, which on seed 0's data at
    full size took the test log loss from 0.2034 to 0.1742 and the nested CV from 0.2491
    to 0.1912, for about twice the CNN's time."""
    counts = np.bincount(y, minlength=classes)
    return asked or max(2, min(5, int(counts[counts > 0].min())))


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> tuple[list, np.ndarray]:
    """The (fit, valid) index pairs and each clip's fold."""
    from sklearn.model_selection import StratifiedKFold

    split = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    fold_of = np.zeros(len(y), dtype=int)
    for fold, (_, valid) in enumerate(split):
        fold_of[valid] = fold
    return split, fold_of


def baseline_oof(pooled: np.ndarray, y: np.ndarray, split: list, classes: int, seed: int, report: bool = False) -> np.ndarray:
    """`report`: tell common.callbacks each fold's figure (when the baseline is the model: --fast)."""
    oof = np.zeros((len(y), classes))
    for fold, (fit_rows, valid) in enumerate(split):
        fitted = sound.fit_baseline(pooled[fit_rows], y[fit_rows], seed)
        oof[valid] = sound.class_probabilities(fitted, pooled[valid], classes)
        if report:
            callbacks.scored(fold, folds_so_far(oof, y, split[:fold + 1]))
    return oof


def folds_so_far(oof: np.ndarray, y: np.ndarray, split: list) -> float:
    """Log loss over the held-out clips of the folds done: comparable between runs at the same fold (tune's pruner)."""
    done = np.concatenate([valid for _, valid in split])
    return MULTICLASS_LOG_LOSS(y[done], np.clip(oof[done], 1e-15, 1))


def cnn_oof(clips: Clips, split: list, classes: int, settings, run_dir: Path, seed: int, quiet: bool):
    """One CNN per fold: its out-of-fold probabilities, and the state dicts averaged at test time."""
    arrays, y, keys = clips.arrays, clips.y, clips.keys
    oof, networks = np.zeros((len(y), classes)), []
    for fold, (fit_rows, valid) in enumerate(split):
        fold_started = time.perf_counter()
        module = sound.train_network(
            [arrays[i] for i in fit_rows], y[fit_rows], [keys[i] for i in fit_rows],
            [arrays[i] for i in valid], y[valid], [keys[i] for i in valid],
            classes, settings, Path(run_dir) / "cnn" / f"fold{fold + 1}", seed + fold, quiet, name="birdcall")
        oof[valid] = sound.predict_network(module, [arrays[i] for i in valid], settings.crop_frames, pool=settings.crop_pool)
        networks.append(sound.state_dict(module))
        log.info("cnn fold %d/%d: log loss %.4f, accuracy %.3f (%.0f s)", fold + 1, len(split),
                 MULTICLASS_LOG_LOSS(y[valid], np.clip(oof[valid], 1e-15, 1)),
                 float((oof[valid].argmax(1) == y[valid]).mean()), time.perf_counter() - fold_started)
        callbacks.scored(fold, folds_so_far(oof, y, split[:fold + 1]))
    return oof, networks


def out_of_fold(clips: Clips, fold_of: np.ndarray, species: list, probabilities: np.ndarray) -> OutOfFold:
    """What a blend reads: each usable clip's nested probabilities in submission shape (ID
    and a column per species), the one-hot truth, its fold. Quarantined clips have no
    prediction and are not in it (the same clips for every run on the same data)."""
    ids = clips.train[[ID]].reset_index(drop=True)
    truth = np.eye(len(species), dtype=int)[clips.y]
    return OutOfFold(pd.concat([ids, pd.DataFrame(probabilities, columns=species)], axis=1),
                     pd.concat([ids, pd.DataFrame(truth, columns=species)], axis=1), fold_of)


def write_oof(path: Path, clips: Clips, fold_of: np.ndarray, species: list, oof_baseline: np.ndarray,
              oof_cnn: np.ndarray | None, calibrated: np.ndarray) -> None:
    """Each clip's fold and the probability every model gave its true species."""
    y, rows = clips.y, np.arange(len(clips.y))
    oof = pd.DataFrame({ID: clips.train[ID], "fold": fold_of + 1, LABEL: clips.train[LABEL]})
    oof["baseline_p_true"] = oof_baseline[rows, y]
    if oof_cnn is not None:
        oof["cnn_p_true"] = oof_cnn[rows, y]
    oof["p_true"] = calibrated[rows, y]
    oof["predicted"] = [species[i] for i in calibrated.argmax(1)]
    io.write_csv(oof, path, float_format="%.6f")
