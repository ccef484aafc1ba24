"""Fowl Escapades files: Train.csv, the Train/ and Test/ clips, SampleSubmission.csv.

The clip folders may sit loose, one folder down, or still zipped (Train.zip,
Test.zip); a zip is unpacked once into the cache, keyed by its hash. Clips are found
by ID whatever the case of their name or extension.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common import io
from common.submission import SubmissionFormat, read_sample

log = logging.getLogger("compete")

ID, LABEL = "ID", "common_name"
# The submission's columns, in Zindi's order (SampleSubmission.csv).
SPECIES = [
    "Ring-necked Dove", "Black Cuckoo", "Red-chested Cuckoo", "Fiery-necked Nightjar",
    "Green Wood Hoopoe", "Crested Barbet", "Cape Batis", "Olive Bushshrike",
    "Orange-breasted Bushshrike", "Bokmakierie", "Black-backed Puffback", "Southern Boubou",
    "Black-headed Oriole", "Fork-tailed Drongo", "African Paradise Flycatcher", "Sabota Lark",
    "Eastern Clapper Lark", "Rufous-naped Lark", "Dark-capped Bulbul", "Sombre Greenbul",
    "Long-billed Crombec", "African Reed Warbler", "Rattling Cisticola", "Levaillants Cisticola",
    "Tawny-flanked Prinia", "Karoo Prinia", "Bar-throated Apalis", "Green-backed Camaroptera",
    "Chestnut-vented Warbler", "Cape White-eye", "Karoo Scrub Robin", "White-browed Scrub Robin",
    "Cape Robin-Chat", "White-browed Robin-Chat", "Chorister Robin-Chat",
    "Southern Double-collared Sunbird", "White-bellied Sunbird", "African Pipit",
    "African Rock Pipit", "Cape Bunting",
]
AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg")
SUBMISSION = SubmissionFormat("SampleSubmission.csv", id_column=ID, domain="probability", columns=tuple(SPECIES))


@dataclass
class BirdData:
    train: pd.DataFrame   # ID, common_name, label (index into species), path (None when absent)
    test: pd.DataFrame    # ID, path (None when absent)
    species: list[str]    # the sample submission's columns, in its order
    source: Path


def load(data_dir: Path) -> BirdData:
    """Read Train.csv and SampleSubmission.csv and find every clip.

    A label that is not a column of the sample is an error naming the row; a clip
    that is missing is counted and reported, and its row kept (test rows still get a
    prediction)."""
    data_dir = Path(data_dir)
    train_source = io.find(data_dir, "Train.csv")
    sample_source = io.find(data_dir, SUBMISSION.sample_file)
    train = io.read_table(train_source, [ID, LABEL], dtype=str, keep_default_na=False)
    sample = read_sample(sample_source, SUBMISSION)
    species = list(SUBMISSION.columns)
    test_ids = sample[ID]

    train[ID] = train[ID].str.strip()
    train[LABEL] = train[LABEL].str.strip()
    blank = train[ID] == ""
    if blank.any():
        raise io.InputError(f"{train_source}: row {int(blank.to_numpy().nonzero()[0][0]) + 2}: {ID} is blank"
                            + (f" ({int(blank.sum())} rows)" if blank.sum() > 1 else ""))
    io.unique(train, ID, train_source)
    index = {name: position for position, name in enumerate(species)}
    unknown = ~train[LABEL].isin(index)
    if unknown.any():
        row = int(unknown.to_numpy().nonzero()[0][0])
        raise io.InputError(f"{train_source}: row {row + 2} (ID {train[ID].iloc[row]}): common_name "
                            f"{train[LABEL].iloc[row]!r} is not a column of {sample_source.name}" + (f" ({int(unknown.sum())} rows)" if unknown.sum() > 1 else ""))
    train["label"] = train[LABEL].map(index).astype(int)

    train["path"] = _paths(data_dir, "Train", train[ID])
    test = pd.DataFrame({ID: test_ids.str.strip()})
    test["path"] = _paths(data_dir, "Test", test[ID])
    # A row without its clip cannot be heard: counted (and fatal when most are missing,
    # e.g. a Test.zip never unzipped); a test row still gets the class prior.
    for source, frame in ((train_source, train), (sample_source, test)):
        io.unusable_rows(source, len(frame), {"clip_missing": frame["path"].isna().to_numpy()}, examples=frame[ID])
    return BirdData(train=train, test=test, species=species, source=data_dir)


def _paths(data_dir: Path, folder: str, ids: pd.Series) -> list:
    """Each ID's clip in `folder`, or None when it is not there."""
    root = clip_folder(data_dir, folder)
    by_id: dict[str, Path] = {}
    if root is not None:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
                by_id.setdefault(path.stem.upper(), path)
    return [by_id.get(str(i).upper()) for i in ids]


def clip_folder(data_dir: Path, folder: str) -> Path | None:
    """`folder` loose (any case), one folder down, or unpacked from `<folder>.zip`."""
    wanted = folder.lower()
    for candidate in [data_dir, *sorted(p for p in data_dir.iterdir() if p.is_dir())]:
        for child in sorted(candidate.iterdir()):
            if child.is_dir() and child.name.lower() == wanted:
                return child
    archive = io.find(data_dir, f"{folder}.zip", required=False)
    if archive is None or archive.member is not None:
        return None
    unpacked = io.unpacked_once(archive.path, "birdcall", "unzipped")
    nested = [p for p in unpacked.rglob("*") if p.is_dir() and p.name.lower() == wanted]
    return nested[0] if nested else unpacked
