"""The platforms' known failures, each one line that says what to do, with secrets removed.

Every message that leaves a runner (an exception, a printed line, a log record) passes
through `redact`, which blanks every secret the runners have seen in this process and
anything shaped like a credential (bearer tokens, basic auth, token=... pairs), so a
password or API key never reaches a terminal, a log file or a run directory.
"""
from __future__ import annotations

import base64
import re

from common import io

MASK = "***"
_secrets: set[str] = set()

# Credential-shaped text, for secrets the runners were never told about (a client's
# verbose dump, an upstream error that echoes a header or a query string). Narrow on
# purpose: the log filter applies them to every other "compete" log line too.
_PATTERNS = [
    re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+|token\s+)?)[^\s\"',;})\]]+|(\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(\b(?:auth[-_]?token|access[-_]?token|api[-_]?key|password|passwd|client[-_]?secret)"
               r"[\"']?\s*[:=]\s*[\"']?)(?!\.\.\.)[^\"'&\s,;}]+"),  # "..." is a help text's placeholder, not a secret
]


def remember(*secrets: str | None) -> None:
    """Register secrets to blank from every message from now on."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            _secrets.add(secret)


def remember_basic_auth(username: str, key: str) -> None:
    """Register the header form of a username/key pair (the key itself separately)."""
    remember(key, base64.b64encode(f"{username}:{key}".encode()).decode())


def redact(text: object) -> str:
    text = str(text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1) or m.group(2)}{MASK}", text)
    return _PATTERNS[1].sub(lambda m: f"{m.group(1)}{MASK}", text)


class PlatformError(io.InputError):
    """A platform refused or failed a request: one line, redacted, saying what to do."""

    def __init__(self, message: object):
        super().__init__(redact(" ".join(str(message).split())))


class RuntimeTestFailed(PlatformError, io.CheckFailed):
    """A code submission failed its local runtime test: a failed check (exit 1), not bad input."""


class CredentialsError(PlatformError):
    """Credentials missing, unreadable, exposed to other users, expired or refused."""


class AccessError(PlatformError):
    """Signed in, but the competition is not joined or its rules are not accepted."""


class NotFoundError(PlatformError):
    """No competition (or file) by that slug, as far as this account can see."""


class LimitError(PlatformError):
    """The daily submission limit is reached (or requests are rate-limited)."""


class NetworkError(PlatformError):
    """The platform cannot be reached: network down, DNS, connection refused, timeout."""


class ServerError(PlatformError):
    """The platform failed (5xx) and retrying, where safe, did not help."""


class UncertainSubmission(PlatformError):
    """An upload failed in a way that leaves unknown whether the platform recorded it."""
