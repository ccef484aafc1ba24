"""Synthetic Fowl Escapades data, written exactly as Zindi ships it, with an answer key.

Every species has a voice: a pitch band, a sweep shape, a call length, a trill rate,
harmonics, an envelope and a phrase rhythm. Each recording varies the voice a little
(another bird of the species), calls it in phrases over coloured noise, sometimes with
a second bird of the same species or a quieter one of another species calling over it.
Recordings come at several sample rates, some in stereo, from seconds to tens of
seconds long. The species come in twenty pairs that share a pitch band and a timbre
and differ only in time (sweep direction, trill rate or phrase rhythm), as real
confusable species do: a spectrum averaged over the clip cannot tell a pair apart, a
model that looks at the time axis can.

The download's dirt is here too: some `.mp3` files hold WAV data, a few are truncated,
a few are not audio at all (empty, an HTML error page, random bytes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.media import encode_audio
from competitions.birdcall.data import ID, LABEL, SPECIES

TRAIN_CLIPS, TEST_CLIPS = 1857, 911          # the real competition's size
SMALL_TRAIN, SMALL_TEST = 4, 2               # clips per species at scale "small"
SAMPLE_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
RATE_WEIGHTS = (0.10, 0.25, 0.05, 0.10, 0.40, 0.10)
VOICE_SEED = 2020  # voices are the species' own: the same whatever the data seed
ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
# Share of clips with each kind of dirt (at least one of each at any scale).
DIRT = {"wav_bytes": 0.03, "truncated": 0.008, "truncated_empty": 0.004, "empty": 0.002, "html": 0.002, "random_bytes": 0.002}
FATAL_DIRT = ("truncated_empty", "empty", "html", "random_bytes")


@dataclass(frozen=True)
class Voice:
    pitch: float            # Hz at the middle of a call
    span: float             # sweep extent as a fraction of pitch; the sign is the direction
    shape: str              # linear | arch | wobble | flat
    call_seconds: float
    trill: float            # amplitude-modulation rate in Hz, 0 for a pure whistle
    harmonics: tuple        # relative amplitude of harmonics 1, 2, ...
    attack: float           # share of the call spent rising
    calls_per_phrase: int
    gap: float              # seconds between calls of a phrase


def voices() -> list[Voice]:
    """One voice per species, in SPECIES order, in twenty pairs: species 2k+1 is
    species 2k with one temporal trait changed (sweep direction for twelve pairs, trill
    rate for four, phrase rhythm for four)."""
    rng = np.random.default_rng(VOICE_SEED)
    result = []
    for pair in range(len(SPECIES) // 2):
        voice = Voice(
            pitch=float(np.exp(rng.uniform(np.log(800), np.log(5000)))),
            span=float(rng.choice([-1, 1]) * rng.uniform(0.25, 0.6)),
            shape=str(rng.choice(["linear", "linear", "arch", "wobble", "flat"])),
            call_seconds=float(rng.uniform(0.12, 0.5)),
            trill=float(rng.choice([0.0, rng.uniform(8, 30)], p=[0.6, 0.4])),
            harmonics=tuple(round(float(a), 3) for a in np.r_[1.0, rng.uniform(0, 0.7, size=int(rng.integers(0, 3)))]),
            attack=float(rng.uniform(0.05, 0.5)),
            calls_per_phrase=int(rng.integers(1, 6)),
            gap=float(rng.uniform(0.04, 0.25)),
        )
        result.extend(_confusable_pair(voice, pair))
    return result


def _confusable_pair(voice: Voice, pair: int) -> tuple[Voice, Voice]:
    """Two voices with the same band and timbre, one temporal trait apart."""
    change = pair % 5
    if change <= 2:
        voice = replace(voice, shape="linear" if voice.shape == "flat" else voice.shape)
        return voice, replace(voice, span=-voice.span)
    if change == 3:
        return voice, replace(voice, trill=14.0 if voice.trill == 0 or voice.trill > 22 else voice.trill * 2.0)
    return voice, replace(voice, calls_per_phrase=1 if voice.calls_per_phrase > 2 else 5,
                          gap=voice.gap * 2.5 if voice.calls_per_phrase > 2 else voice.gap)


@dataclass(frozen=True)
class ClipPlan:
    id: str
    split: str               # train | test
    species: int
    seconds: float
    sample_rate: int
    channels: int
    dirt: str                # "" or a key of DIRT
    seed: int
    id3: bool                # an ID3v2 tag before the first frame, as many encoders write


def synth(out_dir: Path, seed: int = 0, scale: str = "small") -> None:
    """Write Train.csv, Train/<ID>.mp3, Test/<ID>.mp3, SampleSubmission.csv and answers/."""
    if scale not in ("small", "full"):
        raise io.InputError(f"scale must be small or full, not {scale!r}")
    out_dir = Path(out_dir)
    plans = plan(seed, scale)
    (out_dir / "Train").mkdir(parents=True, exist_ok=True)
    (out_dir / "Test").mkdir(parents=True, exist_ok=True)
    jobs = [(out_dir, clip) for clip in plans]
    workers = min(os.cpu_count() or 1, 4) if len(jobs) > 100 else 1
    from joblib import Parallel, delayed
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log
    # loky workers, not fork: safe after torch has started its threads, and in notebooks.
    written = Parallel(n_jobs=workers, backend="loky", return_as="generator", batch_size=16)(
        delayed(_write_clip)(job) for job in jobs)
    for _ in tqdm(written, total=len(jobs), desc="birdcall synth", unit="clip", disable=len(jobs) <= 400):
        pass

    train = [c for c in plans if c.split == "train"]
    test = [c for c in plans if c.split == "test"]
    io.write_csv(pd.DataFrame({ID: [c.id for c in train], LABEL: [SPECIES[c.species] for c in train]}), out_dir / "Train.csv")
    sample = pd.DataFrame({ID: [c.id for c in test]})
    for name in SPECIES:
        sample[name] = 1.0 / len(SPECIES)
    io.write_csv(sample, out_dir / "SampleSubmission.csv", float_format="%.3f")
    solution = pd.DataFrame({ID: [c.id for c in test]})
    for position, name in enumerate(SPECIES):
        solution[name] = [int(c.species == position) for c in test]
    answers = out_dir / "answers"
    io.write_csv(solution, answers / "solution.csv")
    io.write_csv(pd.DataFrame({ID: [c.id for c in test], LABEL: [SPECIES[c.species] for c in test]}), answers / "test_labels.csv")
    io.write_csv(pd.DataFrame([{ID: c.id, "split": c.split, "dirt": c.dirt, "sample_rate": c.sample_rate,
                                "channels": c.channels, "seconds": round(c.seconds, 3)} for c in plans]),
                 answers / "clips.csv")


def plan(seed: int, scale: str) -> list[ClipPlan]:
    """Every decision about every clip, drawn up front so the bytes do not depend on
    how the clips are spread over processes."""
    rng = np.random.default_rng(seed)
    if scale == "full":
        weights = rng.lognormal(0.0, 0.4, len(SPECIES))
        totals = _apportion(weights, TRAIN_CLIPS + TEST_CLIPS)
        tests = _apportion(totals.astype(float), TEST_CLIPS, floor=1)
        seconds = lambda n: np.clip(rng.lognormal(np.log(5.0), 0.6, n), 2.0, 30.0)  # noqa: E731
    else:
        totals = np.full(len(SPECIES), SMALL_TRAIN + SMALL_TEST)
        tests = np.full(len(SPECIES), SMALL_TEST)
        seconds = lambda n: rng.uniform(1.0, 3.0, n)  # noqa: E731
    labels = np.repeat(np.arange(len(SPECIES)), totals)
    is_test = np.concatenate([np.r_[np.ones(t, bool), np.zeros(n - t, bool)] for n, t in zip(totals, tests)])
    count = len(labels)
    durations = seconds(count)
    rates = rng.choice(SAMPLE_RATES, size=count, p=RATE_WEIGHTS)
    channels = np.where(rng.random(count) < 0.25, 2, 1)
    dirt = np.array([""] * count, dtype=object)
    order = rng.permutation(count)
    cursor = 0
    for kind, share in DIRT.items():
        wanted = max(1, int(round(share * count)))
        dirt[order[cursor:cursor + wanted]] = kind
        cursor += wanted
    # Undecodable clips on both sides, so even a small run meets them in train and test.
    for side, kind in ((True, "html"), (False, "truncated_empty")):
        if not np.isin(dirt[is_test == side], FATAL_DIRT).any():
            dirt[order[cursor:][is_test[order[cursor:]] == side][0]] = kind
    ids = _ids(rng, count)
    seeds = rng.integers(0, 2**63 - 1, size=count)
    id3 = rng.random(count) < 0.2
    clips = [ClipPlan(ids[i], "test" if is_test[i] else "train", int(labels[i]), float(durations[i]), int(rates[i]),
                      int(channels[i]), str(dirt[i]), int(seeds[i]), bool(id3[i])) for i in range(count)]
    shuffled = rng.permutation(count)  # rows in no order that follows the species
    return [clips[i] for i in shuffled]


def _apportion(weights: np.ndarray, total: int, floor: int = 1) -> np.ndarray:
    """Integers proportional to `weights`, each >= floor, summing to `total`."""
    share = weights / weights.sum() * total
    counts = np.maximum(np.floor(share).astype(int), floor)
    while counts.sum() < total:
        counts[np.argmax(share - counts)] += 1
    while counts.sum() > total:
        counts[np.argmax(np.where(counts > floor, counts - share, -np.inf))] -= 1
    return counts


def _ids(rng: np.random.Generator, count: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        candidate = "".join(rng.choice(ID_ALPHABET, 6))
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    return ids


def _write_clip(job) -> None:
    out_dir, clip = job
    folder = "Train" if clip.split == "train" else "Test"
    path = Path(out_dir) / folder / f"{clip.id}.mp3"
    rng = np.random.default_rng(clip.seed)
    if clip.dirt in ("empty", "html", "random_bytes"):
        content = {"empty": b"",
                   "html": b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
                           b"<body><h1>Service Unavailable</h1></body></html>\n",
                   "random_bytes": rng.integers(0, 256, size=int(rng.integers(2000, 20000)), dtype=np.uint8).tobytes()}[clip.dirt]
        io.write_bytes(path, content)
        return
    samples = recording(clip, rng)
    content = encode_audio(samples, clip.sample_rate, "wav" if clip.dirt == "wav_bytes" else "mp3")
    if clip.id3 and clip.dirt != "wav_bytes":
        content = _id3_header() + content
    if clip.dirt == "truncated":
        content = content[: int(len(content) * rng.uniform(0.3, 0.8))]
    elif clip.dirt == "truncated_empty":
        content = content[: int(rng.integers(40, 300))]
    io.write_bytes(path, content)


def _id3_header() -> bytes:
    """A minimal ID3v2.3 tag naming only the encoder, as LAME writes."""
    text = b"\x00LAME 3.100"
    frame = b"TSSE" + len(text).to_bytes(4, "big") + b"\x00\x00" + text
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def recording(clip: ClipPlan, rng: np.random.Generator) -> np.ndarray:
    """One field recording: phrases of the clip's species over noise, maybe with others."""
    all_voices = voices()
    rate, frames = clip.sample_rate, int(clip.seconds * clip.sample_rate)
    bird = _individual(all_voices[clip.species], rng)
    signal = _phrases(bird, frames, rate, rng, density=1.0)
    if rng.random() < 0.2:  # a second bird of the same species, overlapping
        signal += 0.6 * _phrases(_individual(all_voices[clip.species], rng), frames, rate, rng, density=0.5)
    if rng.random() < 0.35:  # a quieter bird of another species
        other = int(rng.integers(len(SPECIES) - 1))
        other += other >= clip.species
        signal += 10 ** (-rng.uniform(8, 18) / 20) * _phrases(_individual(all_voices[other], rng), frames, rate, rng, density=0.5)
    active = np.abs(signal) > 1e-4
    level = np.sqrt(np.mean(signal[active] ** 2)) if active.any() else 1.0
    noise = _coloured_noise(frames, rng) * level * 10 ** (-rng.uniform(2, 20) / 20)
    mixed = signal + noise
    if clip.channels == 2:
        second = mixed * rng.uniform(0.6, 1.0) + _coloured_noise(frames, rng) * level * 0.05
        mixed = np.stack([mixed, second], axis=1)
    peak = np.abs(mixed).max() or 1.0
    return (mixed / peak * rng.uniform(0.3, 0.9)).astype(np.float32)


def _individual(voice: Voice, rng: np.random.Generator) -> Voice:
    """Another bird of the species: the voice, slightly off."""
    return replace(
        voice,
        pitch=voice.pitch * float(np.exp(rng.normal(0, 0.04))),
        span=voice.span * float(np.exp(rng.normal(0, 0.1))),
        call_seconds=voice.call_seconds * float(np.exp(rng.normal(0, 0.12))),
        trill=voice.trill * float(np.exp(rng.normal(0, 0.08))),
        gap=voice.gap * float(np.exp(rng.normal(0, 0.12))),
    )


def _phrases(voice: Voice, frames: int, rate: int, rng: np.random.Generator, density: float) -> np.ndarray:
    out = np.zeros(frames)
    time = rng.uniform(0, 0.8)
    seconds = frames / rate
    while time < seconds:
        loudness = rng.uniform(0.3, 1.0)
        calls = max(1, voice.calls_per_phrase + int(rng.integers(-1, 2)))
        for _ in range(calls):
            length = voice.call_seconds * float(np.exp(rng.normal(0, 0.05)))
            call = _call(voice, length, rate, pitch_jitter=float(np.exp(rng.normal(0, 0.015))))
            start = int(time * rate)
            end = min(frames, start + len(call))
            if start < frames:
                out[start:end] += loudness * call[: end - start]
            time += length + voice.gap
        time += rng.uniform(0.3, 1.5) / density
    return out


def _call(voice: Voice, seconds: float, rate: int, pitch_jitter: float) -> np.ndarray:
    count = max(2, int(seconds * rate))
    u = np.linspace(0.0, 1.0, count)
    if voice.shape == "linear":
        contour = 1 + voice.span * (u - 0.5)
    elif voice.shape == "arch":
        contour = 1 + voice.span * (0.25 - (u - 0.5) ** 2) * 2
    elif voice.shape == "wobble":
        contour = 1 + 0.5 * voice.span * np.sin(2 * np.pi * 3 * u)
    else:
        contour = np.ones(count)
    frequency = voice.pitch * pitch_jitter * contour
    phase = 2 * np.pi * np.cumsum(frequency) / rate
    wave = np.zeros(count)
    for order, amplitude in enumerate(voice.harmonics, start=1):
        if amplitude > 0 and order * frequency.max() < 0.45 * rate:
            wave += amplitude * np.sin(order * phase)
    rise = np.clip(u / max(voice.attack, 1e-3), 0, 1)
    fall = np.clip((1 - u) / max(1 - voice.attack, 1e-3), 0, 1)
    envelope = np.sin(0.5 * np.pi * rise) ** 2 * fall ** 1.5
    if voice.trill > 0:
        envelope *= (0.5 + 0.5 * np.sin(2 * np.pi * voice.trill * u * seconds)) ** 2
    return wave * envelope


def _coloured_noise(frames: int, rng: np.random.Generator) -> np.ndarray:
    """Noise between pink and brown, like wind and distant traffic, unit RMS."""
    from scipy import fft
    length = fft.next_fast_len(frames, real=True)  # a prime length makes the FFT crawl
    spectrum = fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(len(spectrum), dtype=float)
    frequencies[0] = 1.0
    spectrum /= frequencies ** rng.uniform(0.5, 1.0)
    noise = fft.irfft(spectrum, n=length)[:frames]
    return noise / (np.sqrt(np.mean(noise ** 2)) or 1.0)
