"""Hosting: turn a folder of labelled files into a competition whose files say nothing
about their labels except through their content.

What a participant sees of a file besides its content is its name, its place in a
list, its size, its format, its tags and its timestamps; each can carry the label
(a scraper names files after the species, lists them species by species, keeps one
source's bitrate, leaves the species in an ID3 title, downloads species after
species). So every file is re-encoded to one format with no tags (audio: mono constant-bitrate MP3
at one rate; images: RGB JPEG without EXIF), named by a random id from `secrets`, listed
in id order, written in id order, and stamped with one fixed time.

Generic over media: the file's kind is read from its magic bytes (common.media).
"""
from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, media

log = logging.getLogger("compete")

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ID_LENGTH = 6
AUDIO_RATE = 22050              # every recording re-encoded at this rate, mono
JPEG_QUALITY = 90
FIXED_TIME = 1577836800         # 2020-01-01 00:00:00 UTC: every file's mtime and atime


HIDDEN = Path("answers") / "hidden"   # the hidden test of a code competition: the host's, never shipped


@dataclass
class MaskResult:
    out: Path
    classes: list[str]
    train: int
    test: int
    rejected: int   # files that could not be read, listed in answers/rejected.csv
    hidden: int = 0  # hidden test files (answers/hidden/), with --hidden-test


def labelled_files(source: Path) -> pd.DataFrame:
    """(file, label) rows from a folder with one sub-folder per class, or from a CSV
    with columns file,label (paths relative to the CSV's folder)."""
    source = Path(source)
    if source.is_file():
        frame = io.read_csv(source, dtype=str, keep_default_na=False)
        columns = {c.lower(): c for c in frame.columns}
        if "file" not in columns or "label" not in columns:
            raise io.InputError(f"{source}: needs columns file,label; found {', '.join(frame.columns)}")
        frame = frame.rename(columns={columns["file"]: "file", columns["label"]: "label"})[["file", "label"]]
        frame["file"] = [str((source.parent / f).resolve()) if not Path(f).is_absolute() else f for f in frame["file"]]
        missing = [f for f in frame["file"] if not Path(f).is_file()]
        if missing:
            raise io.InputError(f"{source}: {len(missing)} listed file(s) do not exist, e.g. {missing[0]}")
        return frame
    if not source.is_dir():
        raise io.InputError(f"{source}: not a folder of labelled files or a CSV of file,label")
    rows = [(str(path), folder.name) for folder in sorted(p for p in source.iterdir() if p.is_dir())
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.name.startswith(".")]
    if not rows:
        raise io.InputError(f"{source}: no files in sub-folders (one sub-folder per class is expected)")
    return pd.DataFrame(rows, columns=["file", "label"])


def random_ids(count: int, taken: set[str] | None = None) -> list[str]:
    """Unique ids of ID_LENGTH characters drawn from a cryptographic source, so no
    seed, clock or order can be recovered from them."""
    taken = set(taken or ())
    ids: list[str] = []
    while len(ids) < count:
        candidate = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
        if candidate not in taken:
            taken.add(candidate)
            ids.append(candidate)
    return ids


def split(labels: pd.Series, test_size: float, seed: int) -> np.ndarray:
    """True for test rows: `test_size` of each class (at least one of each side when a
    class has two or more files), chosen by `seed`."""
    if not 0 < test_size < 1:
        raise io.InputError(f"--test-size must be between 0 and 1, not {test_size}")
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for _, positions in sorted(labels.groupby(labels, sort=True).indices.items()):
        count = len(positions)
        tests = int(round(count * test_size))
        if count >= 2:
            tests = min(max(tests, 1), count - 1)
        is_test[rng.permutation(positions)[:tests]] = True
    return is_test


def mask(source: Path, out: Path, top: int, test_size: float = 0.33, seed: int = 0,
         label_column: str = "label", quiet: bool = False, hidden_test: float | None = None) -> MaskResult:
    """Build a competition in `out` from labelled files; see the module docstring.

    Writes Train.csv (ID,<label_column>), Train/<ID>.<ext>, Test/<ID>.<ext>,
    SampleSubmission.csv (ID + one column per class, uniform probabilities), and the
    host's private answers/: solution.csv (one-hot, submission shape), test_labels.csv,
    mapping.csv (which original file each id came from) and rejected.csv.

    With `hidden_test` (a share of each class's test files), a code competition's pair:
    those files form the hidden test the platform alone holds, in the public test's own
    layout under answers/hidden/ (Test/, SampleSubmission.csv, and its answers/), which
    `compete runtime test --hidden` shows instead of the public test, as a rerun does."""
    out = Path(out)
    if hidden_test is not None and not 0 < hidden_test < 1:
        raise io.InputError(f"--hidden-test must be a share between 0 and 1, not {hidden_test}")
    if out.exists() and any(out.iterdir()):
        raise io.InputError(f"{out}: exists and is not empty; masking writes a fresh folder")
    files = labelled_files(source)
    counts = files["label"].value_counts()
    if top < 1:
        raise io.InputError(f"--top must be at least 1, not {top}")
    ranked = sorted(counts.index, key=lambda label: (-counts[label], label))
    classes = sorted(ranked[:top])
    kept = files[files["label"].isin(classes)].reset_index(drop=True)
    log.info("%d files in %d classes; keeping the top %d classes (%d files)", len(files), len(counts), len(classes), len(kept))

    kinds = [media.sniff_file(path) for path in kept["file"]]
    readable = np.array([kind in media.AUDIO_KINDS or kind in media.IMAGE_KINDS for kind in kinds])
    rejected = kept.loc[~readable].assign(reason=[f"not audio or an image ({k})" for k, r in zip(kinds, readable) if not r])
    kept = kept.loc[readable].reset_index(drop=True)
    kinds = [k for k, r in zip(kinds, readable) if r]
    families = {"audio" if k in media.AUDIO_KINDS else "image" for k in kinds}
    if len(families) > 1:
        raise io.InputError(f"{source}: mixes audio and images; mask one kind of media at a time")

    kept["split"] = np.where(split(kept["label"], test_size, seed), "test", "train")
    if hidden_test is not None:
        tests = np.flatnonzero(kept["split"] == "test")
        hidden_rows = tests[split(kept["label"].iloc[tests].reset_index(drop=True), hidden_test, seed + 1)]
        kept.loc[hidden_rows, "split"] = "hidden"
    kept["ID"] = random_ids(len(kept))
    extension = ".mp3" if families == {"audio"} else ".jpg"
    # Work in id order: the order files are written in (inode numbers, directory
    # order) then follows the random ids, not the classes.
    kept = kept.sort_values("ID").reset_index(drop=True)
    folders = {"train": out / "Train", "test": out / "Test", "hidden": out / HIDDEN / "Test"}
    targets = [folders[s] / f"{i}{extension}" for s, i in zip(kept["split"], kept["ID"])]
    for folder in set(folders[s] for s in kept["split"]) | {out / "Train", out / "Test"}:
        folder.mkdir(parents=True, exist_ok=True)

    from joblib import Parallel, delayed
    from tqdm.auto import tqdm
    jobs = [delayed(_reencode)(str(src), str(dst)) for src, dst in zip(kept["file"], targets)]
    workers = min(os.cpu_count() or 1, 4) if len(jobs) >= 200 else 1
    results = list(tqdm(Parallel(n_jobs=workers, backend="loky", return_as="generator")(jobs),
                        total=len(jobs), desc="masking", unit="file", disable=quiet))
    failed = np.array([result is not None for result in results])
    if failed.any():
        rejected = pd.concat([rejected, kept.loc[failed, ["file", "label"]].assign(reason=[r for r in results if r is not None])])
        for target in np.asarray(targets, dtype=object)[failed]:
            Path(target).unlink(missing_ok=True)
        kept = kept.loc[~failed].reset_index(drop=True)
    for target in sorted(out.glob("T*/*")) + sorted((out / HIDDEN).glob("T*/*")):
        os.utime(target, (FIXED_TIME, FIXED_TIME))
    for count, what in ((len(rejected), "file(s) could not be read and were left out, listed in answers/rejected.csv"),):
        if count:
            log.warning("%d %s", count, what)

    train = kept[kept["split"] == "train"]
    test = kept[kept["split"] == "test"]
    hidden = kept[kept["split"] == "hidden"]
    io.write_csv(pd.DataFrame({"ID": train["ID"], label_column: train["label"]}), out / "Train.csv")
    answers = out / "answers"
    written = [out / "Train.csv"]
    for folder, rows in ((out, test), (out / HIDDEN, hidden)):
        if folder != out and hidden_test is None:
            continue
        written.append(_write_test_side(folder, rows, classes, label_column))
    io.write_csv(kept[["ID", "split", "label", "file"]], answers / "mapping.csv")
    io.write_csv(rejected.reindex(columns=["file", "label", "reason"]), answers / "rejected.csv")
    for path in written:
        os.utime(path, (FIXED_TIME, FIXED_TIME))
    return MaskResult(out, classes, len(train), len(test), len(rejected), len(hidden))


def _write_test_side(folder: Path, test: pd.DataFrame, classes: list[str], label_column: str) -> Path:
    """One test set's SampleSubmission.csv (uniform probabilities) and its answers/
    (solution.csv one-hot, test_labels.csv); returns the sample's path."""
    sample = pd.DataFrame({"ID": test["ID"].to_numpy()})
    for name in classes:
        sample[name] = 1.0 / len(classes)
    io.write_csv(sample, folder / "SampleSubmission.csv", float_format="%.6f")
    solution = pd.DataFrame({"ID": test["ID"].to_numpy()})
    for name in classes:
        solution[name] = (test["label"].to_numpy() == name).astype(int)
    io.write_csv(solution, folder / "answers" / "solution.csv")
    io.write_csv(pd.DataFrame({"ID": test["ID"], label_column: test["label"]}), folder / "answers" / "test_labels.csv")
    return folder / "SampleSubmission.csv"


def _reencode(source: str, target: str) -> str | None:
    """Re-encode one file with nothing of its origin left; None, or why it failed."""
    kind = media.sniff_file(source)
    try:
        if kind in media.AUDIO_KINDS:
            audio = media.read_audio(source, sample_rate=AUDIO_RATE, mono=True)
            peak = float(np.abs(audio.samples).max()) or 1.0
            # One loudness for every file: a recordist's gain is not the species.
            media.write_audio(target, audio.samples / peak * 0.9, AUDIO_RATE, "mp3", constant_bitrate=True)
        else:
            from PIL import Image, ImageOps
            with Image.open(source) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")
                with io.atomic_path(target) as temporary:
                    image.save(temporary, format="JPEG", quality=JPEG_QUALITY, optimize=False)
        return None
    except media.DecodeError as error:
        return str(error)
    except OSError as error:
        return " ".join(str(error).split())
