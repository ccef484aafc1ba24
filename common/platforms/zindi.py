"""Zindi through a thin client of our own over the JSON API behind zindi.africa.

Zindi has no official client. The PyPI package `zindi` (0.0.4) wraps the same API, and
was read before deciding against it: its sign-in URL is fixed to the production host
(nothing can point it elsewhere), selecting a challenge joins it as a side effect
(accepting the rules on the user's behalf), it sends the session token in GET bodies
and prints and prompts (getpass) on the terminal, raises bare `Exception`s carrying the
server's text, writes downloads straight over the target with no resume or size check,
and needs pydantic and requests-toolbelt. The endpoints below are the ones it calls:

    POST /v1/auth/signin                          username, password -> data.auth_token
    GET  /v1/competitions/{slug}                  data.datafiles[].filename, data.pages[] (the Rules page)
    GET  /v1/competitions/{slug}/files/{name}     the file
    POST /v1/competitions/{slug}/submissions      multipart: file, comment
    GET  /v1/competitions/{slug}/submissions      this account's submissions (the submission board)
    GET  /v1/competitions/{slug}/participations   the leaderboard

These are the calls of the public client `eaedk/testing-zindi-package` (the source of the
PyPI `zindi` package): `zindi/user.py` (Zindian.__signin, download_dataset, submit,
leaderboard, submission_board, remaining_subimissions) and `zindi/utils.py` (download,
upload, n_subimissions_per_day). No public client reads a "limits" endpoint: the daily
allowance is read as `remaining_subimissions` does, from the challenge's Rules page
("You may make a maximum of N submissions per day.") against the submissions on the
board from the last 24 hours whose status is "successful" or "initial". When the Rules
page says nothing parsable, the allowance is unknown, never a reason to refuse.

Answers wrap their payload in {"data": ...}; a refusal carries data.errors (a string, or a
dict with "message"), with or without an HTTP error status. The session token travels in
the `auth-token` header and, for file transfers, also as the `auth_token` query parameter
that the site's own download links carry (*inferred* as required there); every log line
that could show a URL is redacted.

Credentials: ZINDI_USERNAME and ZINDI_PASSWORD, else `$ZINDI_CONFIG_DIR/zindi.json`
(default `~/.zindi/zindi.json`, `{"username": ..., "password": ...}`, mode 600).
The API's address is `$ZINDI_API_URL` (default https://api.zindi.africa).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

import pandas as pd

from common.platforms import Receipt, Status, find_submission, settle_ambiguous_upload
from common.platforms import web
from common.platforms.credentials import read_json
from common.submission import plain_csv
from common.platforms.errors import (AccessError, CredentialsError, LimitError, NetworkError, NotFoundError, PlatformError,
                                     ServerError, remember)

log = logging.getLogger("compete")

CODE_SUBMISSION = False
API = "https://api.zindi.africa"
WEB = "https://zindi.africa"


@dataclass(frozen=True)
class Credentials:
    source: str  # a path or the variables' names, never a value
    username: str
    password: str


def credentials() -> Credentials:
    username, password = os.environ.get("ZINDI_USERNAME"), os.environ.get("ZINDI_PASSWORD")
    if username and password:
        remember(password)
        return Credentials("ZINDI_USERNAME/ZINDI_PASSWORD", username, password)
    path = Path(os.environ.get("ZINDI_CONFIG_DIR") or Path.home() / ".zindi").expanduser() / "zindi.json"
    if path.is_file():
        values = read_json(path, "username", "password")
        remember(values["password"])
        return Credentials(str(path), values["username"], values["password"])
    raise CredentialsError(f"no Zindi credentials: set ZINDI_USERNAME and ZINDI_PASSWORD, or write "
                           f'{{"username": ..., "password": ...}} to {path} (chmod 600)')


class Refused(Exception):
    """Zindi answered, and the answer is a refusal (data.errors or an error status)."""

    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status


class ZindiClient:
    """One signed-in session against the API. Reads retry on transient failures; the
    upload that creates a submission is sent once."""

    def __init__(self, creds: Credentials, base_url: str | None = None):
        import requests
        self.creds = creds
        self.base = (base_url or os.environ.get("ZINDI_API_URL") or API).rstrip("/")
        self.host = urlsplit(self.base).netloc
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "compete (+https://zindi.africa)"
        self.token: str | None = None
        web.redact_logs()

    def _url(self, *parts: str) -> str:
        return "/".join([self.base, "v1", *(quote(part, safe="") for part in parts)])

    def explain(self, error: BaseException, slug: str = "") -> PlatformError:
        known = web.explain_transport(error, "Zindi", self.host)
        if known is not None:
            return known
        status = getattr(error, "status", None) or web.status_of(error)
        said = _said(error)
        lowered = said.lower()
        page = f"{WEB}/competitions/{slug}"
        if status == 401 or "token" in lowered and ("expired" in lowered or "invalid" in lowered):
            return CredentialsError(f"Zindi refused the session of {self.creds.username} ({said}); "
                                    f"check the credentials in {self.creds.source}")
        if any(word in lowered for word in ("limit", "maximum number", "per day", "daily", "too many")) or status == 429:
            return LimitError(f"{slug}: daily submission limit reached ({said}); try again tomorrow")
        if any(word in lowered for word in ("join", "particip", "rules", "accept", "not enrolled")):
            return AccessError(f"{slug}: competition not joined or rules not accepted ({said}); "
                               f"join it at {page} (this accepts its rules), then try again")
        if status == 404 or "not found" in lowered or "couldn't find" in lowered:
            return NotFoundError(f"{slug}: Zindi knows no competition or file by this name ({said}); check the slug at {page}")
        if status == 403:
            return AccessError(f"{slug}: Zindi refused access ({said}); join the competition at {page}, then try again")
        if status or isinstance(error, Refused):
            return PlatformError(f"{slug}: Zindi refused the request ({said})")
        return PlatformError(f"{slug}: Zindi request failed: {type(error).__name__}: {error}")

    def _payload(self, response):
        """The `data` of an answer; raises Refused for data.errors or an error status."""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        data = payload.get("data", payload) if isinstance(payload, dict) else payload
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors or response.status_code >= 400:
            if isinstance(errors, dict):
                errors = errors.get("message") or errors.get("base") or "; ".join(f"{k}: {v}" for k, v in errors.items())
            message = str(errors or response.reason or f"HTTP {response.status_code}")
            if response.status_code >= 500 or response.status_code == 429:
                response.raise_for_status()  # transient: the retry loop decides
            raise Refused(message, response.status_code if response.status_code >= 400 else None)
        return data

    def sign_in(self) -> None:
        def call():
            response = self.session.post(self._url("auth", "signin"), timeout=web.TIMEOUT,
                                         data={"username": self.creds.username, "password": self.creds.password})
            return self._payload(response)
        try:
            data = web.retry(call, what="Zindi sign-in", explain=self.explain)
        except PlatformError as error:
            if isinstance(error, (NetworkError, ServerError)):
                raise
            raise CredentialsError(f"Zindi refused the sign-in of {self.creds.username} from {self.creds.source} "
                                   f"({error}); check the username and password") from None
        token = data.get("auth_token") if isinstance(data, dict) else None
        if not token:
            raise CredentialsError(f"Zindi's sign-in answer for {self.creds.username} carries no session token")
        remember(token)
        self.token = token
        self.session.headers["auth-token"] = token

    def read(self, slug: str, *parts: str, params: dict | None = None):
        """GET a JSON resource of the competition (retried: reading changes nothing)."""
        url = self._url("competitions", slug, *parts)
        return web.retry(lambda: self._payload(self.session.get(url, params=params, timeout=web.TIMEOUT)),
                         what=f"Zindi {'/'.join(parts) or 'competition'}", explain=lambda e: self.explain(e, slug))

    def download(self, slug: str, name: str, target: Path, quiet: bool) -> Path:
        return web.download(self.session, self._url("competitions", slug, "files", name), target,
                            params={"auth_token": self.token}, quiet=quiet, explain=lambda e: self.explain(e, slug))

    def upload(self, slug: str, file: Path, comment: str) -> dict:
        """POST the submission once; the caller handles an ambiguous failure."""
        with open(file, "rb") as handle:
            response = self.session.post(self._url("competitions", slug, "submissions"), timeout=web.TIMEOUT,
                                         params={"auth_token": self.token},
                                         files={"file": (file.name, handle, "text/csv")}, data={"comment": comment})
        return self._payload(response)


def _said(error: BaseException) -> str:
    """The server's own words: data.errors of an error answer, else the exception's text."""
    response = getattr(error, "response", None)
    if response is not None:
        try:
            payload = response.json()
            errors = (payload.get("data") or payload).get("errors")
            if isinstance(errors, dict):
                errors = errors.get("message") or errors.get("base")
            if errors:
                return str(errors)
        except (ValueError, AttributeError):
            pass
        return f"HTTP {response.status_code} {response.reason}"
    return str(error)


def _client() -> ZindiClient:
    client = ZindiClient(credentials())
    client.sign_in()
    return client


def download(competition, out: Path, quiet: bool = False) -> list[Path]:
    """Every data file of the challenge into `out`, each resumable; zips are checked and
    unpacked beside the archive, which stays as Zindi ships it."""
    slug, out = competition.slug, Path(out)
    client = _client()
    details = client.read(slug)
    files = [item for item in (details.get("datafiles") or []) if isinstance(item, dict) and item.get("filename")]
    if not files:
        raise PlatformError(f"{slug}: Zindi lists no data files for this challenge; see {WEB}/competitions/{slug}/data")
    for item in dict((item["filename"], item) for item in files).values():
        name = Path(item["filename"]).name
        target = client.download(slug, item["filename"], out / name, quiet)
        expected = next((item[key] for key in ("size", "file_size", "bytes") if isinstance(item.get(key), int)), None)
        if expected is not None and target.stat().st_size != expected:
            target.unlink()
            raise PlatformError(f"{target}: {target.stat().st_size if target.exists() else 'wrong'} bytes, Zindi lists "
                                f"{expected}; deleted, download again")
        if target.suffix.lower() == ".zip":
            web.unpack(target, out)
    return sorted(path for path in out.iterdir() if not path.name.startswith(".") and not path.name.endswith((".part", ".part.json")))


def submit(competition, file: Path, data_dir: Path, message: str, dry_run: bool = False, quiet: bool = False) -> Receipt:
    """Upload a validated CSV with `message` as its comment. The upload is sent once: after
    an ambiguous failure the submission list says whether Zindi recorded it."""
    slug = competition.slug
    client = _client()
    per_day = daily_allowance(client.read(slug))
    remaining = None
    if per_day is not None:
        used = submitted_in_a_day(_submissions_table(client.read(slug, "submissions", params={"per_page": 1000})))
        remaining = max(per_day - used, 0)
        if remaining == 0:
            raise LimitError(f"{slug}: daily submission limit reached ({used} of {per_day} in the last 24 hours, "
                             f"as the Rules page allows); try again later")
    left = (f"{remaining} submission(s) left today ({per_day} a day)" if remaining is not None
            else "allowance unknown: the Rules page states no daily maximum")
    with plain_csv(file) as upload:
        # Zindi's upload takes a plain CSV: the public client refuses any other extension
        # (eaedk/testing-zindi-package zindi/user.py, Zindian.submit: allowed_extensions = ['csv'],
        # commit db9446c9e7b81c2ec336ea4cb9644843adf82786), so a compressed file goes decompressed.
        sent = [] if upload == Path(file) else [f"Zindi takes a plain CSV: {file}'s CSV is uploaded decompressed, as {upload.name}"]
        if dry_run:
            return Receipt("zindi", False, sent + [f"dry run: {file} is valid and signed in to {slug} ({left}); nothing uploaded"])
        started = datetime.now(timezone.utc)
        try:
            answer = client.upload(slug, upload, message)
        except Refused as refusal:
            raise client.explain(refusal, slug) from None
        except Exception as error:  # no answer, or a 5xx: recorded or not, only the list can say
            cause = client.explain(error, slug)
            if web.never_sent(error) or web.status_of(error) == 429:
                raise cause from None
            receipt = settle_ambiguous_upload("zindi", competition, file, cause, lambda: find_submission(
                _submissions_table(client.read(slug, "submissions", params={"per_page": 50})), upload.name, message, started,
                "id", "comment"), "id")
            receipt.lines[:0] = sent
            return receipt
    ident = answer.get("id") if isinstance(answer, dict) else None
    return Receipt("zindi", True, sent + [f"submitted {file} to {slug}" + (f" (id {ident})" if ident else ""),
                                          f"see `compete submissions {competition.name}` for its score"],
                   str(ident) if ident else None)


# The sentence `n_subimissions_per_day` in eaedk/testing-zindi-package zindi/utils.py
# splits the Rules page on; matched here across tags and spacing.
DAILY_MAXIMUM = re.compile(r"You may make a maximum of\s+(\d+)\s+submissions?\s+per\s+day", re.IGNORECASE)
# The statuses that count against the allowance in zindi/user.py remaining_subimissions.
COUNTED_STATUSES = ("successful", "initial")


def daily_allowance(details) -> int | None:
    """Submissions a day as the challenge's Rules page states them, or None (unknown)."""
    pages = details.get("pages") if isinstance(details, dict) else None
    for page in pages if isinstance(pages, list) else []:
        if isinstance(page, dict) and str(page.get("title", "")).strip().lower() == "rules":
            text = " ".join(re.sub(r"<[^>]+>", " ", str(page.get("content_html") or "")).split())
            found = DAILY_MAXIMUM.search(text)
            if found:
                return int(found.group(1))
    return None


def submitted_in_a_day(table: pd.DataFrame, now: datetime | None = None) -> int:
    """Submissions of the last 24 hours that count (remaining_subimissions's rule)."""
    now = now or datetime.now(timezone.utc)
    dates = pd.to_datetime(table["date"], errors="coerce", utc=True)
    return int(((dates >= now - timedelta(days=1)) & table["status"].isin(COUNTED_STATUSES)).sum())


def _submissions_table(rows) -> pd.DataFrame:
    rows = rows.get("results", rows.get("data", [])) if isinstance(rows, dict) else rows or []
    return pd.DataFrame([{
        "date": row.get("created_at") or "",
        "id": str(row.get("id", "")),
        "file": Path(str(row.get("filename") or "")).name,
        "comment": row.get("comment") or "",
        "status": row.get("status") or "",
        "public_score": row.get("public_score") if row.get("public_score") is not None else "",
        "private_score": row.get("private_score") if row.get("private_score") is not None else "",
    } for row in rows if isinstance(row, dict)], columns=["date", "id", "file", "comment", "status", "public_score", "private_score"])


def submissions(competition) -> pd.DataFrame:
    """This account's submissions, newest first."""
    table = _submissions_table(_client().read(competition.slug, "submissions", params={"per_page": 50}))
    return table.sort_values("date", ascending=False, kind="stable").reset_index(drop=True)


def leaderboard(competition) -> pd.DataFrame:
    """The public leaderboard's first page: rank, name (user or team), score, submissions."""
    rows = _client().read(competition.slug, "participations", params={"page": 0, "per_page": 50})
    rows = rows.get("results", []) if isinstance(rows, dict) else rows or []
    table = pd.DataFrame([{
        "rank": row.get("public_rank"),
        "name": (row.get("team") or {}).get("title") or (row.get("user") or {}).get("username") or "",
        "score": row.get("best_public_score"),
        "submissions": row.get("submission_count"),
        "date": row.get("best_public_submitted_at") or "",
    } for row in rows if isinstance(row, dict)], columns=["rank", "name", "score", "submissions", "date"])
    return table.sort_values("rank", kind="stable", na_position="last").reset_index(drop=True)


# Statuses as the `zindi` package reads them (KameniAlexNea/zindi, zindi/utils.py,
# print_submission_board): "successful" and "initial" are valid submissions, any other is
# not. That "initial" means not scored yet, and where a failed one's reason lies, are
# inferred: the reason is taken from the first of these fields that the row has.
_VALID = {"successful", "initial"}
_REASONS = ("error", "errors", "error_message", "status_description", "message")


def status(competition, reference: str) -> Status:
    """Where submission `reference` (its id) is: scored, not yet, or refused by Zindi."""
    rows = _client().read(competition.slug, "submissions", params={"per_page": 50})
    rows = rows.get("results", rows.get("data", [])) if isinstance(rows, dict) else rows or []
    row = next((row for row in rows if isinstance(row, dict) and str(row.get("id")) == str(reference)), None)
    if row is None:
        return Status("pending", detail="not listed yet")
    state = str(row.get("status") or "").lower()
    if state and state not in _VALID:
        reason = next((str(row[name]) for name in _REASONS if row.get(name)), "")
        return Status("error", detail=f"status {state!r}" + (f": {reason}" if reason else ""))
    if state == "successful" and row.get("public_score") is not None:
        return Status("complete", float(row["public_score"]))
    return Status("pending", detail=state or "no status yet")
