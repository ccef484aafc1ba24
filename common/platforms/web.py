"""HTTP plumbing shared by the runners: retries with backoff where a retry is safe,
downloads that resume, archives checked and unpacked safely, and a client's own
prints and logs passed through redaction.

Only reads are retried here (listings, downloads). An upload that creates a submission
is never retried blindly: each runner decides from what the platform recorded.
"""
from __future__ import annotations

import contextlib
import io as text_io
import json
import logging
import os
import random
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from common import io
from common.platforms.errors import NetworkError, PlatformError, ServerError, redact

log = logging.getLogger("compete")

RETRY_DELAYS = (1.0, 2.0, 4.0)  # seconds before each further attempt; 25% jitter is added
TIMEOUT = (15, 120)             # seconds to connect, and between two reads
MAX_RESUMES = 20                # resumes of one download within one run
CHUNK = 1 << 16  # small, as a dropped connection loses the chunk being read

T = TypeVar("T")


class Interrupted(Exception):
    """A transfer stopped before its announced end; the bytes so far are kept for a resume."""


def status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def is_transient(error: BaseException) -> bool:
    """Worth another try: the network dropped, the server failed (5xx) or asked to slow down."""
    import requests
    if isinstance(error, (Interrupted, NetworkError, ServerError)):
        return True
    if isinstance(error, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return True
    status = status_of(error)
    return status is not None and (status >= 500 or status == 429)


def is_offline(error: BaseException) -> bool:
    """No answer at all (refused, DNS, timeout): as opposed to an answer that is an error."""
    import requests
    return isinstance(error, (requests.ConnectionError, requests.Timeout)) and status_of(error) is None


def never_sent(error: BaseException) -> bool:
    """Whether a failed request surely never reached the server (refused, or no address)."""
    return is_offline(error) and cause(error) in ("connection refused", "name lookup failed (DNS)")


def network_error(error: BaseException, platform: str, host: str) -> NetworkError:
    reason = cause(error)
    return NetworkError(f"cannot reach {platform} ({host}): {reason}; check the network connection and try again")


def explain_transport(error: BaseException, platform: str, host: str) -> PlatformError | None:
    """The failures every platform shares (no network, a dropped transfer, a 5xx), or None."""
    import requests
    if isinstance(error, PlatformError):
        return error
    if isinstance(error, Interrupted):
        return NetworkError(f"{error}; run the same command again to resume")
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return NetworkError(f"the connection to {platform} ({host}) dropped during a transfer; "
                            f"run the same command again to resume")
    if is_offline(error):
        return network_error(error, platform, host)
    status = status_of(error)
    if status is not None and status >= 500:
        return ServerError(f"{platform} answered HTTP {status} (a server error on its side); try again later")
    return None


_CAUSES = (
    (r"Name or service not known|getaddrinfo failed|nodename nor servname|Temporary failure in name resolution",
     "name lookup failed (DNS)"),
    (r"Connection refused", "connection refused"),
    (r"timed out|Timeout", "timed out"),
    (r"Connection reset|Connection aborted|RemoteDisconnected", "connection dropped"),
)


def cause(error: BaseException) -> str:
    """The kind of network failure behind `error`, in words."""
    text = str(error)
    for pattern, meaning in _CAUSES:
        if re.search(pattern, text):
            return meaning
    return type(error).__name__


def retry(call: Callable[[], T], *, what: str, retry_if: Callable[[BaseException], bool] = is_transient,
          explain: Callable[[BaseException], BaseException] | None = None,
          delays: Sequence[float] | None = None, progressed: Callable[[], bool] | None = None,
          say: Callable[[BaseException, float], None] | None = None) -> T:
    """`call()`, tried again after each failure that `retry_if` accepts, waiting each of
    `delays` in turn (RETRY_DELAYS by default; 25% jitter is added); the last failure
    leaves as `explain(error)` (as itself without `explain`). The one retry loop of the
    runners: reads, resumed downloads, the upload steps before a submission exists, and
    polls (where the "failure" is NotYet).

    `progressed()`, asked after a failed try, says whether the try moved forward (a
    download that got further): that refills the delays, up to MAX_RESUMES times.
    `say(error, delay)` reports a retry (default: a warning naming `what`)."""
    delays = RETRY_DELAYS if delays is None else tuple(delays)
    pending, refills = list(delays), 0
    while True:
        try:
            return call()
        except Exception as error:  # every failure leaves as one explained, redacted line
            if progressed is not None and refills < MAX_RESUMES and progressed():
                pending, refills = list(delays), refills + 1
            if not pending or not retry_if(error):
                if explain is None:
                    raise
                raise explain(error) from None
            delay = pending.pop(0) * (1 + 0.25 * random.random())
            if say is None:
                log.warning("%s failed (%s); retrying in %.1f s", what, summary(error), delay)
            else:
                say(error, delay)
            time.sleep(delay)


class NotYet(Exception):
    """What a poll raises while the thing it waits for is not there yet."""


def look_again(find: Callable[[], T | None]) -> T | None:
    """`find()` now and after each of RETRY_DELAYS until it finds something: a platform's
    list may show a new entry only a moment after it was made."""
    def attempt() -> T:
        found = find()
        if found is None:
            raise NotYet()
        return found
    try:
        return retry(attempt, what="looking again", retry_if=lambda error: isinstance(error, NotYet),
                     say=lambda error, delay: None)
    except NotYet:
        return None


def summary(error: BaseException) -> str:
    """A short, secret-free description: the HTTP status or the kind of network failure."""
    status = status_of(error)
    return f"HTTP {status}" if status else f"{type(error).__name__}: {cause(error)}"


def download(session, url: str, target: Path, *, explain: Callable[[BaseException], PlatformError],
             headers: dict | None = None, params: dict | None = None, quiet: bool = False) -> Path:
    """Fetch `url` into `target`, resuming a partial file left by an earlier attempt.

    Bytes go to `target.part`; beside it `target.part.json` keeps the server's validator
    (ETag or Last-Modified) and total size, so a resume asks `If-Range` and restarts from
    zero when the file changed on the server. The finished file replaces `target`
    atomically after its size matched the announced one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    state = target.with_name(target.name + ".part.json")

    def attempt() -> None:
        have = part.stat().st_size if part.exists() else 0
        saved = _read_state(state) if have else {}
        request_headers = dict(headers or {})
        if have and saved:
            request_headers["Range"] = f"bytes={have}-"
            if saved.get("validator"):
                request_headers["If-Range"] = saved["validator"]
        with session.get(url, headers=request_headers, params=params, stream=True, timeout=TIMEOUT) as response:
            if response.status_code == 416:  # nothing after `have`: whole already, or stale
                total = _range_total(response.headers.get("Content-Range", ""))
                if total is not None and total == have == saved.get("size"):
                    return
                _discard(part, state)
                raise Interrupted(f"{target.name}: the partial file did not match the server's; restarting")
            if response.status_code >= 400:
                _ = response.content  # read the refusal's body now, for its message
            response.raise_for_status()
            if response.status_code == 206:
                start = _range_start(response.headers.get("Content-Range", ""))
                total = _range_total(response.headers.get("Content-Range", ""))
                if start != have or (saved.get("size") is not None and total != saved["size"]):
                    _discard(part, state)
                    raise Interrupted(f"{target.name}: the server answered another range; restarting")
                mode = "ab"
            else:
                have, mode = 0, "wb"
                length = response.headers.get("Content-Length")
                total = int(length) if length and not response.headers.get("Content-Encoding") else None
                io.write_text(state, json.dumps({"validator": response.headers.get("ETag") or response.headers.get("Last-Modified"),
                                                 "size": total}))
            from common.progress import tqdm  # a bar on a terminal, plain lines in a log
            with open(part, mode) as handle, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                   unit_divisor=1024, desc=target.name, disable=quiet) as bar:
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
                    bar.update(len(chunk))
        size = part.stat().st_size
        if total is not None and size != total:
            raise Interrupted(f"{target.name}: {size} of {total} bytes arrived")

    def size() -> int:
        return part.stat().st_size if part.exists() else 0

    # A transfer that moves forward is worth continuing: every try that added bytes
    # refills the retry budget, up to MAX_RESUMES resumes in one run.
    sizes = [size()]

    def progressed() -> bool:
        sizes.append(size())
        return sizes[-1] > sizes[-2]

    retry(attempt, what=f"download of {target.name}", explain=explain, progressed=progressed,
          say=lambda error, delay: log.warning("download of %s stopped at %d bytes (%s); resuming in %.1f s",
                                               target.name, size(), summary(error), delay))
    os.replace(part, target)
    state.unlink(missing_ok=True)
    return target


def _read_state(path: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(path.read_text())
        if isinstance(state, dict):
            return state
    return {}


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _range_start(content_range: str) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/", content_range)
    return int(match.group(1)) if match else None


def _range_total(content_range: str) -> int | None:
    match = re.search(r"/(\d+)\s*$", content_range)
    return int(match.group(1)) if match else None


def unpack(archive: Path, out: Path) -> list[Path]:
    """Check every member's CRC, then extract refusing paths that escape `out`. A damaged
    archive is deleted, so running the download again fetches it anew."""
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as opened:
            io.check_archive(archive)  # declared sizes first: checking the CRCs of a zip bomb would inflate it
            corrupt = opened.testzip()
    except zipfile.BadZipFile:
        corrupt = "its directory"
    if corrupt is not None:
        archive.unlink()
        raise PlatformError(f"{archive}: damaged download ({corrupt} fails its check); deleted it, "
                            f"run the same command again to download it anew")
    return io.safe_extract(archive, out)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


_FILTERED_LOGGERS = ("compete", "urllib3.connectionpool", "kaggle.api.kaggle_api_extended", "kagglesdk.kaggle_env")


def redact_logs() -> None:
    """Blank secrets in records of the loggers a platform request writes to (a URL with a
    token in its query, a client's debug line), whatever handler a caller attached."""
    for name in _FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
            logger.addFilter(_RedactingFilter())


class _RedactedLines(text_io.TextIOBase):
    """A text stream that forwards whole lines, redacted, to the log and (unless quiet) stderr."""

    def __init__(self, quiet: bool):
        self.quiet, self.pending = quiet, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def close_lines(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = ""

    def _emit(self, line: str) -> None:
        line = redact(line).rstrip()
        if line.strip():
            log.info(line)
            if not self.quiet:
                print(line, file=sys.stderr)


@contextlib.contextmanager
def client_output(quiet: bool):
    """Route what a third-party client prints on stdout through redaction to stderr and
    the log, so it can neither leak a secret nor mix with this command's own output."""
    redact_logs()
    stream = _RedactedLines(quiet)
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.close_lines()
