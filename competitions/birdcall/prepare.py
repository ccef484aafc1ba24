"""Birdcall's data preparation: every training clip's log-mel (cached by
common.spectrograms), the ones that do not decode quarantined, and what the models read
of the rest."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, spectrograms
from common.spectrograms import Quarantine
from competitions.birdcall.data import ID, BirdData

# calls of these species sit below 8 kHz; below 300 Hz is wind and handling noise
MEL_SETTINGS = spectrograms.MelSettings(sample_rate=16000, n_fft=1024, hop_length=320, n_mels=64, fmin=300.0, fmax=8000.0)


@dataclass
class Clips:
    """The training clips that decoded: their rows, labels, cache keys and log-mels."""
    train: pd.DataFrame
    y: np.ndarray
    keys: list[str]
    arrays: list            # normalised log-mels, float16, for the CNN
    pooled: np.ndarray      # pooled statistics, for the baseline
    quarantined: int


def usable_clips(data: BirdData, run_dir: Path, quiet: bool) -> Clips:
    """Log-mels of every training clip; an undecodable clip is quarantined (reported in
    the run's quarantine.csv), never silently dropped."""
    mels = spectrograms.compute(list(data.train["path"]), MEL_SETTINGS, quiet=quiet, desc="log-mel train")
    quarantine = Quarantine()
    usable = []
    for row, spectrogram in zip(data.train.itertuples(), mels):
        if isinstance(spectrogram, str):
            quarantine.add("train", row.ID, row.path, spectrogram)
        else:
            usable.append(row.Index)
    quarantine.report(run_dir)
    # counted by kind beside the missing clips load found (metrics.json's unusable_rows); fatal when most
    unreadable = np.array([isinstance(m, str) for m in mels], dtype=bool) & data.train["path"].notna().to_numpy()
    io.unusable_rows("Train.csv", len(data.train), {"clip_unreadable": unreadable}, examples=data.train[ID])
    train = data.train.loc[usable].reset_index(drop=True)
    return Clips(train=train, y=train["label"].to_numpy(), keys=[spectrograms.file_hash(p) for p in train["path"]],
                 arrays=[spectrograms.normalise(mels[i].astype(np.float32)).astype(np.float16) for i in usable],
                 pooled=np.stack([spectrograms.pooled(mels[i]) for i in usable]), quarantined=len(quarantine))
