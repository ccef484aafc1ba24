"""DrivenData: code competitions with no API for downloads, uploads, submissions or the
leaderboard. `submit` does what can be done locally and says exactly what is left:

1. build the bundle from a run directory (or take a built `submission.zip`), with the
   packager every code submission uses (common/packaging.py);
2. run it as the hidden-test runtime would, on the data folder given, with no network;
3. validate the `submission.csv` it wrote against the submission format there;
4. print the bundle's path, size and checksum, and where to upload it.

A competition may set `url` (its page, e.g. https://www.drivendata.org/competitions/59/
camera-trap-serengeti) so the instructions link straight to it.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from common import io
from common.platforms import Receipt, check_submission
from common.platforms.errors import PlatformError

log = logging.getLogger("compete")

CODE_SUBMISSION = True
SITE = "https://www.drivendata.org/competitions/"


def page(competition) -> str:
    return (getattr(competition, "url", None) or "").rstrip("/") or f"{SITE} (the competition “{competition.slug}”)"


def download(competition, out: Path, quiet: bool = False) -> list[Path]:
    raise PlatformError(
        f"{competition.name}: DrivenData offers no download API; sign in at {page(competition)}, accept the rules, "
        f"and download the files listed on its data page by hand, unzipped into {out} (large image sets are linked "
        f"from there); or make format-faithful data with `compete data synth {competition.name} --out {out}`")


def submit(competition, file: Path, data_dir: Path, message: str, dry_run: bool = False, quiet: bool = False) -> Receipt:
    """Build (from a run directory) or take (a .zip) the bundle, prove it runs and writes a
    valid submission on `data_dir`, then say what to upload where."""
    from common import packaging
    file, data_dir = Path(file), Path(data_dir)
    if file.is_dir():
        bundle = Path("submissions") / competition.name / f"{file.name}.zip"
        packaging.build(competition, file, bundle)
        log.info("%s: built %s from %s", competition.name, bundle, file)
    elif file.suffix.lower() == ".zip" and file.is_file():
        bundle = file
    else:
        raise PlatformError(f"{file}: give a run directory (from `compete fit {competition.name}`) or a built "
                            f"submission.zip (from `compete package {competition.name}`)")

    with tempfile.TemporaryDirectory(prefix="compete-runtime-") as scratch:
        written = Path(scratch) / "submission.csv"
        result = packaging.runtime_test(bundle, data_dir, out=written)
        check_submission(competition, written, data_dir)
        rows = len(pd.read_csv(written, usecols=[0]))
    took = getattr(result, "seconds", None)
    size = bundle.stat().st_size
    lines = [
        f"{bundle}: {size / 1e6:.1f} MB, sha256 {io.sha256(bundle)[:16]}, passed the runtime test on {data_dir} "
        f"(no network; {rows} rows" + (f" in {took:.0f} s" if took is not None else "") + ", valid against the submission format)",
        ("dry run: " if dry_run else "") + "DrivenData has no upload API; to submit, by hand:",
        f"  1. open {page(competition)}/submissions/ (signed in, rules accepted)",
        f"  2. choose “Make new submission”, upload {bundle.resolve()}",
        f"  3. description: {message}",
        "  4. the score appears on that page when the hidden-test run ends",
    ]
    return Receipt("drivendata", False, lines)


def submissions(competition) -> pd.DataFrame:
    raise PlatformError(f"{competition.name}: DrivenData offers no API for submissions; see {page(competition)}/submissions/")


def leaderboard(competition) -> pd.DataFrame:
    raise PlatformError(f"{competition.name}: DrivenData offers no API for the leaderboard; see {page(competition)}/leaderboard/")
