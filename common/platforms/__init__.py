"""Platform runners: download a competition's data, submit, list submissions and read
the leaderboard, each on the platform the competition lives on.

A runner is a module named for its platform, found through the competition's `platform`
attribute in RUNNERS, so the CLI never branches on a competition or a platform; adding
a platform is one module and one line here. Every runner offers the same five calls:

    download(competition, out, quiet) -> list[Path]
    submit(competition, file, data_dir, message, dry_run, quiet) -> Receipt
    submissions(competition) -> DataFrame
    leaderboard(competition) -> DataFrame
    status(competition, reference) -> Status      one submission, by Receipt.reference

Runners that take a file (`CODE_SUBMISSION = False`) get it validated here against the
sample submission in the data folder before any network call; a code-submission runner
validates the file its bundle writes when run. A runner that also takes a code package
(`CODE_PACKAGES = True`: a folder with compete-package.json at its root, as `compete
package` writes for Kaggle) gets such a folder unvalidated, with two more options: the
runtime `profile` to prove it on, and `progress`, called with each step's line as it
happens (a code submission's steps take minutes to hours; without it the lines are the
receipt's).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Callable

import pandas as pd

from common import io
from common.platforms.errors import PlatformError, UncertainSubmission
from common.submission import InvalidSubmission

# Seconds between two looks at a submission's status while `submit --wait` waits: 5 s
# doubling to a minute, then every minute, 30 minutes in all (scoring a CSV takes
# seconds to minutes on Kaggle and Zindi; past that, `compete submissions` tells later).
SCORE_DELAYS = (5.0, 10.0, 20.0, 40.0) + (60.0,) * 28

log = logging.getLogger("compete")

RUNNERS = {
    "kaggle": "common.platforms.kaggle",
    "zindi": "common.platforms.zindi",
    "drivendata": "common.platforms.drivendata",
}


@dataclass
class Receipt:
    """What `submit` did: `submitted` is true only when the platform recorded an upload."""

    platform: str
    submitted: bool
    lines: list[str] = field(default_factory=list)
    reference: str | None = None  # the platform's id of the submission, for `status`
    run_dir: Path | None = None   # the run the upload was built from, where the runner knows it (a package's manifest)


@dataclass
class Status:
    """Where a submission is: "pending", "complete" (scored) or "error" (the platform
    could not score it; `detail` says why, in the platform's words)."""

    state: str
    public_score: float | None = None
    detail: str = ""


def find_submission(table: pd.DataFrame, file_name: str | None, message: str, since: datetime, id_column: str,
                    message_column: str) -> str | None:
    """The `id_column` of a listed submission (a runner's `submissions` table) of
    `file_name` (None: any file) whose `message_column` is `message`, made since `since`,
    or None. A row without a date counts: the list may leave it out."""
    since = since - timedelta(minutes=5)  # the two clocks may disagree a little
    for row in table.to_dict("records"):
        date = pd.Timestamp(row["date"]) if row["date"] else None
        if date is not None and date.tzinfo is None:
            date = date.tz_localize("UTC")
        if file_name in (None, row["file"]) and (row[message_column] or "") == (message or "") and (date is None or date >= since):
            return row[id_column]
    return None


def settle_ambiguous_upload(platform: str, competition, file: Path, cause, find: Callable[[], str | None],
                            found_as: str) -> Receipt:
    """An upload that ended in an error may still have been recorded: look at the
    platform's submission list (`find`, a few times) instead of sending the file again,
    which could submit it twice. `found_as` names what `find` returns ("id", "dated")."""
    from common.platforms import web

    slug, title = competition.slug, platform.title()
    try:
        found = web.look_again(find)
    except PlatformError as listing:
        raise UncertainSubmission(f"{slug}: the submission may or may not have been recorded ({cause}); listing "
                                  f"submissions failed too ({listing}); check `compete submissions {competition.name}` "
                                  f"before submitting again") from None
    if found is not None:
        return Receipt(platform, True, [f"submitted {file} to {slug} ({title} answered with an error, but its "
                                        f"submission list shows it, {found_as} {found}); not sent again",
                                        f"see `compete submissions {competition.name}` for its score"], str(found))
    raise UncertainSubmission(f"{slug}: the upload ended in an error ({cause}) and {title}'s list does not show it yet; "
                              f"check `compete submissions {competition.name}` in a minute before submitting again "
                              f"(not retried, to avoid a double submission)")


def runner(competition) -> ModuleType:
    """The runner module for the competition's platform."""
    platform = competition.platform
    if platform not in RUNNERS:
        raise PlatformError(f"{competition.name}: no runner for platform {platform!r}; known: {', '.join(sorted(RUNNERS))}")
    return importlib.import_module(RUNNERS[platform])


def check_submission(competition, file: Path, data_dir: Path) -> None:
    """Refuse `file` unless it matches the sample submission in `data_dir`."""
    problems = competition.validate_file(file, data_dir)
    if problems:
        raise InvalidSubmission(file, problems, context=f"not submitted, against the sample in {data_dir}")


def download(competition, out: Path, quiet: bool = False) -> list[Path]:
    """The platform's files for `competition`, unzipped into `out` where `compete run` reads them."""
    return runner(competition).download(competition, Path(out), quiet=quiet)


def submit(competition, file: Path, data_dir: Path, message: str, dry_run: bool = False, quiet: bool = False,
           profile: str | None = None, progress: Callable[[str], None] | None = None) -> Receipt:
    """Validate `file`, then upload it (or, with `dry_run`, stop just before the upload).
    A code submission (a bundle, a run directory, a package folder) is proven on the
    runtime `profile` (default: the package's or the competition's) instead."""
    from common.runtimes import runner as runtimes_runner

    module, file = runner(competition), Path(file)
    package = file.is_dir() and (file / runtimes_runner.PACKAGE_MANIFEST).is_file()
    if package and not getattr(module, "CODE_PACKAGES", False):
        raise PlatformError(f"{file}: a code package, but {competition.platform.title()} takes no code package for "
                            f"{competition.name}; submit the file the code writes")
    code = getattr(module, "CODE_SUBMISSION", False) or package
    if not code:
        if profile is not None:
            raise io.InputError(f"--profile {profile}: {competition.name} takes a file, not code; --profile is for code "
                                f"submissions (a bundle or a package folder)")
        check_submission(competition, file, Path(data_dir))
        from common.submission import submission_source
        compression = submission_source(file)[1]
        receipt = module.submit(competition, file, Path(data_dir), message, dry_run=dry_run, quiet=quiet)
        if compression:
            receipt.lines.insert(0, f"{file} ({compression}): valid")
        return receipt
    return module.submit(competition, file, Path(data_dir), message, dry_run=dry_run, quiet=quiet, profile=profile,
                         progress=progress)


def submissions(competition) -> pd.DataFrame:
    """This account's submissions to `competition`, newest first."""
    return runner(competition).submissions(competition)


def leaderboard(competition) -> pd.DataFrame:
    """The public leaderboard of `competition`, best first."""
    return runner(competition).leaderboard(competition)


def wait_for_score(competition, receipt: Receipt) -> Status:
    """Look at the submission's status after each of SCORE_DELAYS until it is scored or
    failed; a submission still pending after the last look comes back "pending"."""
    module = runner(competition)
    if not receipt.submitted or receipt.reference is None:
        return Status("error", detail=f"nothing was uploaded to {competition.platform.title()} from here, "
                                      f"so there is no score to wait for")
    from common.platforms import web

    def look() -> Status:
        status = module.status(competition, receipt.reference)
        if status.state == "pending":
            raise web.NotYet(status.detail or "pending")
        return status

    try:
        return web.retry(look, what="waiting for the score", retry_if=lambda error: isinstance(error, web.NotYet),
                         delays=SCORE_DELAYS, say=lambda error, delay: log.info(
                             "%s: submission %s not scored yet (%s); looking again in %.0f s",
                             competition.slug, receipt.reference, error, delay))
    except web.NotYet as still:
        waited = sum(SCORE_DELAYS)
        return Status("pending", detail=f"still {still} after {f'{waited / 60:.0f} min' if waited >= 120 else f'{waited:.0f} s'} "
                                        f"of waiting")
