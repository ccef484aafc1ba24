"""Serengeti platform files -> typed frames; images -> small arrays with the code
submission's own reader (competitions/serengeti/inference.py `read_image`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.submission import SubmissionFormat, read_sample
from competitions.serengeti.inference import read_image  # noqa: F401  (shared with the code submission)

log = logging.getLogger("compete")

ID = "seq_id"
FILE = "file_name"
TIME = "datetime"
CLASSES = (
    "aardvark", "aardwolf", "baboon", "bat", "batearedfox", "buffalo", "bushbuck", "caracal", "cattle", "cheetah",
    "civet", "dikdik", "duiker", "eland", "elephant", "empty", "gazellegrants", "gazellethomsons", "genet", "giraffe",
    "guineafowl", "hare", "hartebeest", "hippopotamus", "honeybadger", "hyenaspotted", "hyenastriped", "impala",
    "insectspider", "jackal", "koribustard", "leopard", "lionfemale", "lionmale", "mongoose", "monkeyvervet", "ostrich",
    "otherbird", "porcupine", "reedbuck", "reptiles", "rhinoceros", "rodents", "secretarybird", "serval", "steenbok",
    "topi", "vulture", "warthog", "waterbuck", "wildcat", "wildebeest", "zebra", "zorilla",
)
EMPTY = CLASSES.index("empty")
IMAGE_SIZE = (128, 96)       # (width, height) the network reads each frame at: the real 2048x1536 at 1/8 (JPEG draft scale), halved
STEM = 2                     # the network's first stride: IMAGE_SIZE / STEM is the size of its first features
WEIGHTS = "model.pt"         # the trained network in a run directory and in a code bundle
TRAIN_METADATA, TRAIN_LABELS = "train_metadata.csv", "train_labels.csv"
TEST_METADATA, SUBMISSION_FORMAT = "test_metadata.csv", "submission_format.csv"
SUBMISSION = SubmissionFormat(SUBMISSION_FORMAT, id_column=ID, domain="probability", columns=CLASSES)


@dataclass
class SerengetiData:
    """Image rows (one per file) with their sequence, and the label of each sequence."""

    root: Path
    train: pd.DataFrame                  # seq_id, file_name, datetime, season
    labels: pd.DataFrame                 # seq_id + CLASSES (0/1), one row per sequence
    test: pd.DataFrame | None = None     # present only where test_metadata.csv is (the hidden runtime, synthetic data)


def read_metadata(source) -> pd.DataFrame:
    frame = io.read_table(source, [ID, FILE], dtype=str, keep_default_na=False)
    blank = frame[(frame[ID].str.strip() == "") | (frame[FILE].str.strip() == "")]
    if len(blank):
        raise io.InputError(f"{source}: {len(blank)} row(s) without {ID} or {FILE}, first at line {blank.index[0] + 2}")
    frame["season"] = frame[ID].map(season_of)
    return frame


def season_of(seq_id: str) -> str:
    """`SER_S1#B04#1#1` -> `S1`; an id of another shape is its own group."""
    parts = str(seq_id).split("#")
    return parts[0].split("_")[-1] if len(parts) == 4 else str(seq_id)


def site_of(seq_id: str) -> str:
    """`SER_S1#B04#1#1` -> `B04` (the camera site); an id of another shape is its own site."""
    parts = str(seq_id).split("#")
    return parts[1] if len(parts) == 4 else str(seq_id)


def read_labels(source) -> pd.DataFrame:
    frame = io.read_table(source, [ID, *CLASSES], dtype=str, keep_default_na=False)
    values = frame[list(CLASSES)].apply(lambda column: pd.to_numeric(column.str.strip(), errors="coerce"))
    bad = values.isna() | ~values.isin([0, 1])
    if bad.to_numpy().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        # the value as written in the file (text), never a numpy repr
        raise io.InputError(f"{source}: row {row + 2} ({ID} {frame[ID].iloc[row]}): {CLASSES[column]}="
                            f"{frame[CLASSES[column]].iloc[row]!r} is not 0 or 1 ({int(bad.to_numpy().any(axis=1).sum())} row(s) in all)")
    io.unique(frame, ID, source)
    return pd.concat([frame[[ID]], values.astype(np.uint8)], axis=1)


def load(data_dir: Path) -> SerengetiData:
    data_dir = Path(data_dir)
    train = read_metadata(io.find(data_dir, TRAIN_METADATA))
    labels_source = io.find(data_dir, TRAIN_LABELS)
    labels = read_labels(labels_source)
    unlabelled = sorted(set(train[ID]) - set(labels[ID]))
    if unlabelled:
        raise io.InputError(f"{labels_source}: {len(unlabelled)} sequence(s) of {TRAIN_METADATA} have no label, first {unlabelled[0]}")
    test_source = io.find(data_dir, TEST_METADATA, required=False)
    test = read_metadata(test_source) if test_source else None
    sample_source = io.find(data_dir, SUBMISSION_FORMAT, required=False)
    if sample_source is not None:  # only where the hidden runtime (or synthetic data) has it
        sample = read_sample(sample_source, SUBMISSION)
        if test is not None:
            absent = sorted(set(test[ID]) - set(sample[ID]))
            if absent:
                raise io.InputError(f"{test_source}: {len(absent)} sequence(s) are not in {SUBMISSION_FORMAT}, first {absent[0]}")
    return SerengetiData(root=image_root(data_dir, train[FILE].iloc[0]), train=train, labels=labels, test=test)


def image_root(data_dir: Path, example: str) -> Path:
    """The folder the metadata's relative paths start from: the data folder, or one
    folder down (an unzipped archive's own folder)."""
    data_dir = Path(data_dir)
    for candidate in [data_dir, *sorted(p for p in data_dir.iterdir() if p.is_dir())]:
        if (candidate / example).exists():
            return candidate
    return data_dir
