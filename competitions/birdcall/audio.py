"""Birdcall clips to model-ready waveforms, and the quarantine of clips that are not audio.

Decoding trusts bytes, not names (common.media sniffs the container: RIFF/WAVE, ID3
or an MPEG frame sync, fLaC, OggS); every clip is resampled to one rate and
downmixed to mono. A clip that cannot be decoded is not a crash: it is quarantined
with its file name and the reason, and a test clip in quarantine still gets the
class prior so the submission stays complete.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.media import DecodeError, read_audio

log = logging.getLogger("compete")

SAMPLE_RATE = 16000  # calls of these species sit below 8 kHz


def decode(path: Path | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples at `sample_rate`; DecodeError with the reason otherwise."""
    if path is None or not Path(path).is_file():
        raise DecodeError("file not found")
    return read_audio(path, sample_rate=sample_rate, mono=True).samples


@dataclass
class Quarantine:
    """Clips that could not be used, with why: written beside the run, and logged."""

    rows: list = field(default_factory=list)

    def add(self, split: str, clip_id: str, path, reason: str) -> None:
        self.rows.append({"split": split, "ID": clip_id, "file": str(path) if path is not None else "", "reason": reason})

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self, split: str) -> set[str]:
        return {row["ID"] for row in self.rows if row["split"] == split}

    def report(self, run_dir: Path | None = None) -> None:
        for row in self.rows:
            log.warning("quarantined %s clip %s (%s): %s", row["split"], row["ID"], Path(row["file"]).name or "-", row["reason"])
        if run_dir is not None:
            io.write_csv(pd.DataFrame(self.rows, columns=["split", "ID", "file", "reason"]), Path(run_dir) / "quarantine.csv")
