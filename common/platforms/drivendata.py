"""DrivenData: code competitions with no API for downloads, uploads, submissions or the
leaderboard. `submit` does what can be done locally and says exactly what is left:

1. build the bundle from a run directory (or take a built `submission.zip`), with the
   packager every code submission uses (common/packaging.py);
2. run it as the competition's hidden-test runtime would (the profile given, else its
   `runtime_profile`, e.g. hakuna-madata, as `compete runtime test` finds it:
   common.runtimes.runner.profile_for; a drivendata:SLUG competition declares none, so
   it needs `--profile`), on the data folder given, with no network, and validate the
   `submission.csv` it wrote against the submission format there;
3. print the bundle's path, size and checksum, and where to upload it.

A competition may set `url` (its page, e.g. https://www.drivendata.org/competitions/59/
camera-trap-serengeti) so the instructions link straight to it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from common import io
from common.platforms import Receipt
from common.platforms.errors import PlatformError, RuntimeTestFailed

log = logging.getLogger("compete")

CODE_SUBMISSION = True
SITE = "https://www.drivendata.org/competitions/"


def page(competition, section: str = "") -> str:
    """The competition's page (or one of its tabs); without `url`, where to find it."""
    url = competition.url
    if url:
        return url.rstrip("/") + (f"/{section}/" if section else "/")
    return f"{SITE} (competition {competition.slug!r}" + (f", tab {section!r})" if section else ")")


def download(competition, out: Path, quiet: bool = False) -> list[Path]:
    raise PlatformError(
        f"{competition.name}: DrivenData offers no download API; sign in, accept the rules and download "
        f"the files listed at {page(competition, 'data')} by hand, unzipped into {out} (large image sets are linked "
        f"from there); or make format-faithful data with `compete data synth {competition.name} --out {out}`")


def submit(competition, file: Path, data_dir: Path, message: str, dry_run: bool = False, quiet: bool = False,
           profile: str | None = None, progress=None) -> Receipt:
    """Build (from a run directory) or take (a .zip) the bundle, prove it runs and writes a
    valid submission on `data_dir` in the runtime `profile` (default: the competition's),
    then say what to upload where. (`progress` is unused: the lines come at the end.)"""
    from common import packaging
    from common.runtimes import runner
    file, data_dir = Path(file), Path(data_dir)
    target = runner.profile_for(competition, profile)  # no profile at all: one line asking for --profile, before any work
    if file.is_dir():
        bundle = Path("submissions") / competition.name / f"{file.resolve().name}.zip"
        packaging.build_bundle(competition, file, bundle, profile=target.name)
        log.info("%s: built %s from %s", competition.name, bundle, file)
    elif file.suffix.lower() == ".zip" and file.is_file():
        bundle = file
    else:
        raise PlatformError(f"{file}: give a run directory (from `compete fit {competition.name}`) or a built "
                            f"submission.zip (from `compete package {competition.name}`)")
    isolated, why = runner.sandbox_available()
    if not isolated:
        raise PlatformError(f"{bundle}: cannot run it as the {target.name} runtime would here ({why}); "
                            f"upload it by hand at {page(competition, 'submissions')} once `compete runtime test` passes "
                            f"on a machine that can")
    result = runner.run_test(bundle, competition, data_dir, profile=target.name)
    if not result.ok:
        raise RuntimeTestFailed(f"{bundle}: not ready to upload, the {result.profile} runtime test on {data_dir} failed: "
                                f"{result.reason} (log: {result.log})")
    lines = [
        f"{bundle}: {bundle.stat().st_size / 1e6:.1f} MB, sha256 {io.sha256(bundle)[:16]}; ran as the {result.profile} "
        f"runtime would (no network) on {data_dir} in {result.seconds:.0f} s and wrote a valid submission (log: {result.log})",
        ("dry run: nothing to upload from here anyway; " if dry_run else "") + "DrivenData has no upload API, so by hand:",
        f"  1. sign in (rules accepted) and open {page(competition, 'submissions')}",
        f"  2. choose \"Make new submission\" and upload {bundle.resolve()}",
        f"  3. description: {message}",
        "  4. the score appears on that page when the hidden-test run ends",
    ]
    return Receipt("drivendata", False, lines)


def submissions(competition) -> pd.DataFrame:
    raise PlatformError(f"{competition.name}: DrivenData offers no API for submissions; see {page(competition, 'submissions')}")


def leaderboard(competition) -> pd.DataFrame:
    raise PlatformError(f"{competition.name}: DrivenData offers no API for the leaderboard; see {page(competition, 'leaderboard')}")


def status(competition, reference: str):
    raise PlatformError(f"{competition.name}: DrivenData offers no API for a submission's score; see {page(competition, 'submissions')}")
