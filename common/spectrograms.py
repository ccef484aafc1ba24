"""The audio front end: clips decoded by their bytes to mono waveforms at one rate, and
log-mel spectrograms computed once per clip and cached by the clip's content hash, in
parallel across cores; the quarantine of clips that are not audio; and the pooled
statistics a fast baseline reads.

Decoding trusts bytes, not names (common.media sniffs the container: RIFF/WAVE, ID3
or an MPEG frame sync, fLaC, OggS); every clip is resampled to one rate and
downmixed to mono. A clip that cannot be decoded is not a crash: it is quarantined
with its file name and the reason, and a test clip in quarantine gets the class
prior so the submission stays complete.

A cache entry is keyed by the sha256 of the file's bytes and the spectrogram settings,
so renaming or moving the data folder costs nothing, and a changed file is recomputed.
A clip that cannot be decoded is cached as its reason, so it is reported again
without being decoded again. Every entry carries the sha256 written with it
(io.write_checked) and is checked when read: a damaged one is computed again.
"""
from __future__ import annotations

import functools
import hashlib
import io as _bytes_io
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.media import DecodeError, read_audio
# numpy alone, so they live in the module a code competition's bundle ships; used here
from common.sound_inference import (RHYTHM_BINS, SWEEP_GROUPS, normalise, phrases, pooled, rhythm,  # noqa: F401
                                    spectrum, sweep)

log = logging.getLogger("compete")

SAMPLE_RATE = 16000  # speech, birds and most events sit below 8 kHz


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


@dataclass(frozen=True)
class MelSettings:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 320      # 20 ms: 50 frames a second
    n_mels: int = 64
    fmin: float = 50.0         # below this is rumble and handling noise
    fmax: float = 8000.0       # the Nyquist frequency at 16 kHz
    # dB below the clip's loudest cell that count as silence (librosa's power_to_db
    # top_db); None: only the absolute floor. A clip recorded at a lower rate than the
    # model's has empty top bands, whose rounding noise the floor would spread over 30 dB.
    top_db: float | None = None

    @property
    def key(self) -> str:
        # a setting left at None is not in the text: keys from before it existed still match
        text = ",".join(f"{k}={v}" for k, v in asdict(self).items() if v is not None)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length


SETTINGS = MelSettings()
PARALLEL_FROM = 300  # clips


def log_mel(samples: np.ndarray, settings: MelSettings = SETTINGS) -> np.ndarray:
    """(n_mels, frames) log power in dB, float16 (the cache's size halves, the model
    never needs more than three significant digits of a decibel)."""
    import librosa
    power = np.abs(librosa.stft(samples, n_fft=settings.n_fft, hop_length=settings.hop_length)) ** 2
    mel = mel_filters(settings) @ power
    decibels = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if settings.top_db is not None:
        decibels = np.maximum(decibels, decibels.max() - settings.top_db)
    return decibels.astype(np.float16)


@functools.lru_cache(maxsize=4)
def mel_filters(settings: MelSettings) -> np.ndarray:
    """The mel filterbank, built once per process: librosa's melspectrogram rebuilds it
    on every call, which costs more than the STFT of a short clip."""
    import librosa
    return librosa.filters.mel(sr=settings.sample_rate, n_fft=settings.n_fft, n_mels=settings.n_mels,
                               fmin=settings.fmin, fmax=settings.fmax)


def file_hash(path: Path | str) -> str:
    return io.sha256(path)[:24]


def compute(paths: list, settings: MelSettings = SETTINGS, workers: int | None = None,
            quiet: bool | None = False, desc: str = "log-mel") -> list:
    """For every path: its log-mel array, or a string saying why it is not audio.

    Cached entries are read back; the rest are computed in parallel (one process per
    core) with a progress bar (quiet=None: a bar only on a terminal)."""
    # one cache for every competition: an entry is named by the clip's bytes and the settings
    cache = io.cache_dir("logmel", settings.key)
    results: list = [None] * len(paths)
    todo = []
    for position, path in enumerate(paths):
        if path is None or not Path(path).is_file():
            results[position] = "file not found"
            continue
        key = file_hash(path)
        cached = _read_cache(cache, key)
        if cached is None:
            todo.append((position, str(path), key))
        else:
            results[position] = cached
    if todo:
        from joblib import Parallel, delayed
        from common.progress import tqdm  # a bar on a terminal, plain lines in a log
        workers = workers or os.cpu_count() or 1
        # A worker process pays seconds of imports: worth it only for many clips.
        workers = 1 if len(todo) < PARALLEL_FROM else workers
        from threadpoolctl import threadpool_limits
        jobs = (delayed(_compute_one)(path, key, str(cache), settings) for _, path, key in todo)
        # One BLAS thread per process (joblib sets the same inside its workers): the
        # filterbank product is small, and threads cost 8x more than they bring.
        with threadpool_limits(1, user_api="blas"):
            done = Parallel(n_jobs=workers, backend="loky", return_as="generator", batch_size=4)(jobs)
            for (position, _, _), result in tqdm(zip(todo, done), total=len(todo), desc=desc, unit="clip", disable=quiet):
                results[position] = result
    return results


def _compute_one(path: str, key: str, cache: str, settings: MelSettings):
    cache = Path(cache)
    try:
        mel = log_mel(decode(path, settings.sample_rate), settings)
    except DecodeError as error:
        reason = str(error)
        io.write_checked(cache / f"{key}.error", reason.encode("utf-8"))
        return reason
    io.write_checked(cache / f"{key}.npy", lambda handle: np.save(handle, mel))
    return mel


def _read_cache(cache: Path, key: str):
    """The entry's array (or the reason the clip is not audio), when it matches the
    checksum written with it; None to compute it again (io.read_checked logs a damaged
    entry once, naming it)."""
    content = io.read_checked(cache / f"{key}.npy")
    if content is not None:
        try:
            return np.load(_bytes_io.BytesIO(content))
        except (ValueError, OSError, EOFError):
            io.discard(cache / f"{key}.npy")  # a checksum over bytes that never were an array
            return None
    content = io.read_checked(cache / f"{key}.error")
    return content.decode("utf-8", errors="replace") if content is not None else None
