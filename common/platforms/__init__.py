"""Platform runners: download a competition's data, submit, list submissions and read
the leaderboard, each on the platform the competition lives on.

A runner is a module named for its platform, found through the competition's `platform`
attribute in RUNNERS, so the CLI never branches on a competition or a platform; adding
a platform is one module and one line here. Every runner offers the same four calls:

    download(competition, out, quiet) -> list[Path]
    submit(competition, file, data_dir, message, dry_run, quiet) -> Receipt
    submissions(competition) -> DataFrame
    leaderboard(competition) -> DataFrame

Runners that take a file (`CODE_SUBMISSION = False`) get it validated here against the
sample submission in the data folder before any network call; a code-submission runner
validates the file its bundle writes when run.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

import pandas as pd

from common import io
from common.platforms.errors import PlatformError, UncertainSubmission

RUNNERS = {
    "kaggle": "common.platforms.kaggle",
    "zindi": "common.platforms.zindi",
    "drivendata": "common.platforms.drivendata",
}


class InvalidSubmission(io.InputError):
    """The file differs from the sample submission: nothing was sent."""


@dataclass
class Receipt:
    """What `submit` did: `submitted` is true only when the platform recorded an upload."""

    platform: str
    submitted: bool
    lines: list[str] = field(default_factory=list)


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
                                        f"see `compete submissions {competition.name}` for its score"])
    raise UncertainSubmission(f"{slug}: the upload ended in an error ({cause}) and {title}'s list does not show it yet; "
                              f"check `compete submissions {competition.name}` in a minute before submitting again "
                              f"(not retried, to avoid a double submission)")


def runner(competition) -> ModuleType:
    """The runner module for the competition's platform."""
    platform = getattr(competition, "platform", None)
    if platform not in RUNNERS:
        raise PlatformError(f"{competition.name}: no runner for platform {platform!r}; known: {', '.join(sorted(RUNNERS))}")
    return importlib.import_module(RUNNERS[platform])


def check_submission(competition, file: Path, data_dir: Path) -> None:
    """Refuse `file` unless it matches the sample submission in `data_dir`."""
    from common.submission import read_submission
    problems = competition.validate(read_submission(file), data_dir)
    if problems:
        listed = "; ".join(str(problem) for problem in problems)
        raise InvalidSubmission(f"{file}: not submitted, {len(problems)} problem(s) against the sample in {data_dir}: {listed}")


def download(competition, out: Path, quiet: bool = False) -> list[Path]:
    """The platform's files for `competition`, unzipped into `out` where `compete run` reads them."""
    return runner(competition).download(competition, Path(out), quiet=quiet)


def submit(competition, file: Path, data_dir: Path, message: str, dry_run: bool = False, quiet: bool = False) -> Receipt:
    """Validate `file`, then upload it (or, with `dry_run`, stop just before the upload)."""
    module = runner(competition)
    if not getattr(module, "CODE_SUBMISSION", False):
        check_submission(competition, Path(file), Path(data_dir))
    return module.submit(competition, Path(file), Path(data_dir), message, dry_run=dry_run, quiet=quiet)


def submissions(competition) -> pd.DataFrame:
    """This account's submissions to `competition`, newest first."""
    return runner(competition).submissions(competition)


def leaderboard(competition) -> pd.DataFrame:
    """The public leaderboard of `competition`, best first."""
    return runner(competition).leaderboard(competition)
