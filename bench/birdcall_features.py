"""birdcall: log-mel extraction throughput (files/s and real-time factor) of
`features.compute` against the named baseline measured in the same run: plain
`librosa.load(path, sr=16000)` + `librosa.feature.melspectrogram` + `power_to_db`
over the clips in a Python loop (same mel settings; files it cannot read are skipped).

Three figures for ours: cold (empty cache, every core), warm (everything cached), and
one process (empty cache, one core), so the gain from parallelism and the gain from
the code are told apart.

Usage: python bench/birdcall_features.py [DATA_DIR]   (synthesises --scale full when absent)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def audio_seconds(paths) -> float:
    import soundfile
    total = 0.0
    for path in paths:
        try:
            total += soundfile.info(str(path)).duration
        except Exception:
            pass
    return total


def baseline(paths, settings) -> float:
    import librosa
    started = time.perf_counter()
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                samples, _ = librosa.load(path, sr=settings.sample_rate)
        except Exception:
            continue
        mel = librosa.feature.melspectrogram(y=samples, sr=settings.sample_rate, n_fft=settings.n_fft,
                                             hop_length=settings.hop_length, n_mels=settings.n_mels,
                                             fmin=settings.fmin, fmax=settings.fmax)
        librosa.power_to_db(mel)
    return time.perf_counter() - started


def ours(paths, workers=None) -> float:
    from common import spectrograms as features
    from competitions.birdcall.prepare import MEL_SETTINGS
    started = time.perf_counter()
    features.compute(paths, MEL_SETTINGS, workers=workers, quiet=True)
    return time.perf_counter() - started


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "birdcall-synth-full"
    if not (data_dir / "Train.csv").exists():
        from competitions.birdcall.synth import synth
        synth(data_dir, seed=0, scale="full")
    paths = sorted((data_dir / "Train").iterdir()) + sorted((data_dir / "Test").iterdir())
    limit = int(os.environ.get("BENCH_FILES", "0")) or len(paths)
    paths = paths[:limit]
    from common import spectrograms as features
    from competitions.birdcall.prepare import MEL_SETTINGS
    seconds_of_audio = audio_seconds(paths)
    print(f"{len(paths)} files, {seconds_of_audio / 3600:.2f} h of audio, {os.cpu_count()} cores")

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["COMPETE_CACHE"] = cache
        rows.append(("baseline: librosa.load + melspectrogram loop", baseline(paths, MEL_SETTINGS)))
        rows.append(("ours, cold cache, all cores", ours(paths)))
        rows.append(("ours, warm cache", ours(paths)))
    with tempfile.TemporaryDirectory() as cache:
        os.environ["COMPETE_CACHE"] = cache
        features.PARALLEL_FROM = 10**9
        rows.append(("ours, cold cache, one process", ours(paths, workers=1)))
    base = rows[0][1]
    print(f"{'':48s} {'seconds':>8s} {'files/s':>8s} {'x real time':>12s} {'vs baseline':>12s}")
    for label, seconds in rows:
        print(f"{label:48s} {seconds:8.1f} {len(paths) / seconds:8.1f} {seconds_of_audio / seconds:12.0f} {base / seconds:11.1f}x")


if __name__ == "__main__":
    main()
