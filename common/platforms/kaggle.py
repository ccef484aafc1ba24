"""Kaggle through the official `kaggle` client.

The client authenticates when imported and exits without credentials, so it is imported
only inside these calls, after the credentials were found where the client looks for
them and checked:

1. `KAGGLE_API_TOKEN` (the token, or the path of a file holding it);
2. `access_token` (or `access_token.txt`) in the Kaggle folder;
3. `KAGGLE_USERNAME` and `KAGGLE_KEY` (the legacy API key);
4. `kaggle.json` in the Kaggle folder (legacy; `{"username": ..., "key": ...}`);
5. `~/.kaggle/credentials.json`, written by `kaggle auth login` (OAuth).

The Kaggle folder is `$KAGGLE_CONFIG_DIR`, else `~/.kaggle` (or `~/.config/kaggle` when
only that exists). A file any other user may read is refused with the `chmod 600` fix.

The client reaches `https://api.kaggle.com`; with `KAGGLE_API_ENVIRONMENT=LOCALHOST` it
reaches `http://localhost` instead, and like any `requests` program it honours
`HTTP_PROXY`: the tests use both to put a local server in Kaggle's place.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from common.platforms import Receipt, Status, find_submission, settle_ambiguous_upload
from common.platforms import web
from common.platforms.credentials import check_private, read_json, read_secret
from common.platforms.errors import (AccessError, CredentialsError, LimitError, NotFoundError, PlatformError,
                                     remember, remember_basic_auth)

log = logging.getLogger("compete")

CODE_SUBMISSION = False
CODE_PACKAGES = True   # a package folder (compete package --profile kaggle-notebook) goes to kaggle_code.py
HOST = "api.kaggle.com"
SOCKET_TIMEOUT_SECONDS = 120
WEB = "https://www.kaggle.com"
SUBMIT_ATTEMPTS = 3  # tries of the steps before a submission exists (start upload, upload)


@dataclass(frozen=True)
class Credentials:
    source: str              # where they were found: a path or a variable name, never the value
    token: str | None = None
    username: str | None = None
    key: str | None = None
    oauth: bool = False


def config_dir() -> Path:
    """Where the client keeps kaggle.json: `$KAGGLE_CONFIG_DIR`, ~/.kaggle, or ~/.config/kaggle."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser()
    home = Path.home() / ".kaggle"
    if not home.exists():
        xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
        if xdg.exists():
            return xdg
    return home


def credentials() -> Credentials:
    """The first credentials found in the client's order; refuses exposed files."""
    folder = config_dir()
    token = os.environ.get("KAGGLE_API_TOKEN")
    if token:
        path = Path(token).expanduser()
        if path.is_file():
            return Credentials(str(path), token=read_secret(path))
        remember(token)
        return Credentials("KAGGLE_API_TOKEN", token=token)
    for path in dict.fromkeys((folder / "access_token", folder / "access_token.txt",
                               Path.home() / ".kaggle" / "access_token", Path.home() / ".kaggle" / "access_token.txt")):
        if path.is_file():
            return Credentials(str(path), token=read_secret(path))
    username, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    if username and key:
        remember_basic_auth(username, key)
        return Credentials("KAGGLE_USERNAME/KAGGLE_KEY", username=username, key=key)
    legacy = folder / "kaggle.json"
    if legacy.is_file():
        values = read_json(legacy, "username", "key")
        remember_basic_auth(values["username"], values["key"])
        return Credentials(str(legacy), username=values["username"], key=values["key"])
    oauth = Path.home() / ".kaggle" / "credentials.json"
    if oauth.is_file():
        check_private(oauth)
        return Credentials(str(oauth), oauth=True)
    raise CredentialsError(f"no Kaggle credentials: create an API token at {WEB}/settings (API, Generate New Token) "
                           f"and save it to {folder / 'access_token'} (chmod 600), or set KAGGLE_API_TOKEN")


def _api(creds: Credentials):
    """A client holding `creds`. Its import authenticates on its own: what it prints goes
    through redaction, and whatever it concluded is replaced by the checked credentials."""
    # The official client sets no timeouts, so a silent network would hang a call forever;
    # a per-operation socket timeout (not a total one: long downloads still finish) fixes that.
    if socket.getdefaulttimeout() is None:
        socket.setdefaulttimeout(SOCKET_TIMEOUT_SECONDS)
    with web.client_output(quiet=True):
        try:
            from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError:
            raise PlatformError("the official kaggle client is not installed: `pip install kaggle` "
                                "(or `make venv`, which installs it)") from None
        except SystemExit:
            raise CredentialsError("the kaggle client exited while importing; check its credentials") from None
        api = KaggleApi()
        # The client reads these settings once, at import; a long-lived process (a notebook,
        # the tests) may have changed them since.
        folder = config_dir()
        api.config_dir, api.config = str(folder), str(folder / "kaggle.json")
        local = os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST"
        api.args = [arg for arg in api.args if arg != "--local"] + (["--local"] if local else [])
        if creds.oauth:
            try:
                api.authenticate()
            except SystemExit:
                raise CredentialsError(f"Kaggle refused the sign-in from {creds.source}; run `kaggle auth login` again") from None
            except Exception as error:  # the OAuth refresh is a request of its own
                raise _explain(error, "sign-in", creds) from None
        else:
            api.config_values = {api.CONFIG_NAME_TOKEN: creds.token} if creds.token else {
                api.CONFIG_NAME_USER: creds.username, api.CONFIG_NAME_KEY: creds.key}
    return api


def _explain(error: BaseException, slug: str, creds: Credentials) -> PlatformError:
    """One line saying what went wrong and what to do."""
    known = web.explain_transport(error, "Kaggle", HOST)
    if known is not None:
        return known
    status = web.status_of(error)
    said = _server_message(error)
    lowered = said.lower()
    rules = f"{WEB}/competitions/{slug}/rules"
    if status == 401:
        return CredentialsError(f"Kaggle refused the credentials from {creds.source} (expired or revoked?); "
                                f"create a new token at {WEB}/settings")
    if status in (400, 429) and any(word in lowered for word in ("daily", "allowance", "limit", "maximum")):
        return LimitError(f"{slug}: daily submission limit reached ({said}); submissions reset at 00:00 UTC")
    if status in (400, 403) and any(word in lowered for word in ("rules", "participate", "join", "accept")):
        return AccessError(f"{slug}: competition not joined or rules not accepted ({said}); "
                           f"join and accept the rules at {rules}, then try again")
    if status == 404 or "competitions.get" in lowered or "not found" in lowered:
        return NotFoundError(f"{slug}: Kaggle knows no competition by this slug that this account can see ({said}); "
                             f"check the slug at {WEB}/competitions/{slug}")
    if status == 403:
        return AccessError(f"{slug}: Kaggle refused access ({said}); check the slug, then join and accept the rules at {rules}")
    if status is not None:
        return PlatformError(f"{slug}: Kaggle answered HTTP {status} ({said})")
    return PlatformError(f"{slug}: Kaggle request failed: {type(error).__name__}: {error}")


def _server_message(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if response is not None:
        try:
            payload = response.json()
            if isinstance(payload, dict) and payload.get("message"):
                return str(payload["message"])
        except ValueError:
            pass
    return str(error) or type(error).__name__


def _read(call, what: str, slug: str, creds: Credentials):
    """A call that changes nothing on Kaggle: retried with backoff on transient failures."""
    return web.retry(call, what=what, explain=lambda error: _explain(error, slug, creds))


def download(competition, out: Path, quiet: bool = False) -> list[Path]:
    """Download the competition's archive (resuming a partial one), check it, and unzip it
    into `out`. The archive is kept in `out/.download/` until it was unpacked."""
    slug, creds = competition.slug, credentials()
    api = _api(creds)
    staging = Path(out) / ".download"
    with web.client_output(quiet):
        # The client resumes a partial archive itself (Range + If-Range) and retries a
        # dropped transfer with backoff; retried here is only the request that starts it.
        web.retry(lambda: api.competition_download_files(slug, path=str(staging), quiet=quiet),
                  what="download", explain=lambda error: _explain(error, slug, creds),
                  retry_if=lambda error: web.is_transient(error) and _is_rpc(error))
    archives = sorted(staging.glob("*.zip"))
    if not archives:
        raise PlatformError(f"{slug}: Kaggle sent no archive into {staging}")
    for archive in archives:
        web.unpack(archive, out)
    shutil.rmtree(staging)
    return sorted(path for path in Path(out).iterdir() if not path.name.startswith("."))


def submit(competition, file: Path, data_dir: Path, message: str, dry_run: bool = False, quiet: bool = False,
           profile: str | None = None, progress=None) -> Receipt:
    """Upload a validated CSV. Refuses early when today's allowance is used up. Steps
    before the submission exists are retried; the final one never is: after an ambiguous
    failure the submission list says whether Kaggle recorded it. A package folder is a
    code submission: see kaggle_code.py."""
    if Path(file).is_dir():
        from common.platforms import kaggle_code
        return kaggle_code.submit(competition, Path(file), Path(data_dir), message, dry_run=dry_run, quiet=quiet,
                                  profile=profile, progress=progress)
    slug, creds = competition.slug, credentials()
    api = _api(creds)
    with web.client_output(quiet):
        limits = _read(lambda: api.competition_get_submission_limits(slug), "submission limits", slug, creds)
    _check_limits(limits, slug)
    left = f"{limits.num_allowed_now} submission(s) left today" if limits is not None else "allowance unknown"
    if dry_run:
        return Receipt("kaggle", False, [f"dry run: {file} is valid and {slug} accepts it ({left}); nothing uploaded"])

    started = datetime.now(timezone.utc)

    def attempt():
        with web.client_output(quiet):
            response = api.competition_submit(str(file), message, slug, quiet=quiet)
        if response.message == api.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE:
            raise _UploadFailed("the file did not reach Kaggle's storage")
        return response

    def before_submission_exists(error: BaseException) -> bool:
        status = web.status_of(error)
        return isinstance(error, _UploadFailed) or (
            (status is None or status >= 500) and _before_creation(error) and web.is_transient(error))

    try:
        response = web.retry(attempt, what="kaggle: starting the upload", retry_if=before_submission_exists,
                             delays=web.RETRY_DELAYS[:SUBMIT_ATTEMPTS - 1], say=lambda error, delay: log.warning(
                                 "kaggle: starting the upload failed (%s); nothing was submitted, trying again in %.1f s",
                                 error if isinstance(error, _UploadFailed) else web.summary(error), delay))
    except _UploadFailed:
        raise PlatformError(f"{slug}: the upload of {file} failed {SUBMIT_ATTEMPTS} times; nothing was submitted; "
                            f"try again later") from None
    except Exception as error:
        status = web.status_of(error)
        if (status is None or status >= 500) and not _before_creation(error):  # recorded or not, only the list says
            return settle_ambiguous_upload(
                "kaggle", competition, file, _explain(error, slug, creds),
                lambda: find_submission(submissions(competition, api=api, creds=creds), file.name, message, started, "ref",
                                                        "description"), "ref")
        raise _explain(error, slug, creds) from None  # a refusal (4xx), or no luck before the submission existed
    return Receipt("kaggle", True, [f"submitted {file} to {slug}: {response.message or 'accepted'}"
                                    + (f" (ref {response.ref})" if response.ref else ""),
                                    f"see `compete submissions {competition.name}` for its score"],
                   str(response.ref) if response.ref else None)


class _UploadFailed(Exception):
    """The client's own word that the file never reached Kaggle's storage: no submission exists yet."""


def _url(error: BaseException) -> str:
    request = getattr(error, "request", None) or getattr(getattr(error, "response", None), "request", None)
    return str(getattr(request, "url", ""))


def _is_rpc(error: BaseException) -> bool:
    """Whether the failed request was an API call (not the transfer the client retries itself)."""
    return urlsplit(_url(error)).path.startswith(("/v1/", "/api/v1/"))


def _before_creation(error: BaseException) -> bool:
    """Whether the failed request came before the one that creates the submission."""
    return "StartSubmissionUpload" in _url(error)


def _check_limits(limits, slug: str) -> None:
    if limits is None:
        return
    if limits.num_allowed_now == 0 and limits.num_total == 0 and limits.num_today == 0:
        raise AccessError(f"{slug}: no team on this competition yet, so no submission is allowed; join and accept "
                          f"the rules at {WEB}/competitions/{slug}/rules, then try again")
    if limits.num_allowed_now == 0:
        scope = "lifetime" if limits.limited_by_total else "daily"
        raise LimitError(f"{slug}: {scope} submission limit reached ({limits.num_today} today, {limits.num_total} in all); "
                         + ("no more submissions are possible" if limits.limited_by_total else "submissions reset at 00:00 UTC"))


def submissions(competition, api=None, creds: Credentials | None = None) -> pd.DataFrame:
    """This account's submissions, newest first: date, file, description, status, scores."""
    slug = competition.slug
    creds = creds or credentials()
    api = api or _api(creds)
    with web.client_output(quiet=True):
        rows = _read(lambda: api.competition_submissions(slug), "listing submissions", slug, creds) or []
    return pd.DataFrame([{
        "date": row.date.isoformat(timespec="seconds") if row.date else "",
        "ref": str(row.ref),
        "file": row.file_name or "",
        "description": row.description or "",
        "status": getattr(row.status, "name", str(row.status)).lower(),
        "public_score": row.public_score or "",
        "private_score": row.private_score or "",
    } for row in rows if row is not None], columns=["date", "ref", "file", "description", "status", "public_score", "private_score"])


def leaderboard(competition) -> pd.DataFrame:
    """The top of the public leaderboard: rank, team, score, date."""
    slug, creds = competition.slug, credentials()
    api = _api(creds)
    with web.client_output(quiet=True):
        rows = _read(lambda: api.competition_leaderboard_view(slug), "reading the leaderboard", slug, creds) or []
    return pd.DataFrame([{
        "rank": rank,
        "team": row.team_name,
        "score": row.score,
        "date": row.submission_date.isoformat(timespec="seconds") if row.submission_date else "",
    } for rank, row in enumerate((r for r in rows if r is not None), start=1)], columns=["rank", "team", "score", "date"])


def status(competition, reference: str) -> Status:
    """Where submission `reference` (its ref) is. The states are kagglesdk's SubmissionStatus
    (kagglesdk/competitions/types/submission_status.py: PENDING, COMPLETE, ERROR); an ERROR
    carries Kaggle's reason in error_description."""
    slug, creds = competition.slug, credentials()
    api = _api(creds)
    with web.client_output(quiet=True):
        rows = _read(lambda: api.competition_submissions(slug), "listing submissions", slug, creds) or []
    row = next((row for row in rows if row is not None and str(row.ref) == str(reference)), None)
    if row is None:
        return Status("pending", detail="not listed yet")
    state = getattr(row.status, "name", str(row.status)).lower()
    if state == "error":
        return Status("error", detail=row.error_description or "Kaggle gave no reason")
    if state == "complete" and row.public_score not in (None, ""):
        return Status("complete", float(row.public_score))
    return Status("pending", detail="scored, the public score not shown yet" if state == "complete" else state)
