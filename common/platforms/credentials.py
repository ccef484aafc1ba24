"""Credential files: read only when no other user of the machine can read them."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from common.platforms.errors import CredentialsError, remember


def check_private(path: Path) -> Path:
    """Refuse a credentials file that group or others may read or write, saying how to fix it."""
    path = Path(path)
    if os.name != "nt":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise CredentialsError(f"{path} is open to other users (mode {mode:o}); "
                                   f"run `chmod 600 {path}` and try again")
    return path


def read_secret(path: Path) -> str:
    """The stripped text of a private file, remembered as a secret."""
    text = check_private(path).read_text(encoding="utf-8").strip()
    if not text:
        raise CredentialsError(f"{path} is empty")
    remember(text)
    return text


def read_json(path: Path, *keys: str) -> dict:
    """The given keys of a private JSON file (values remembered as secrets by the caller)."""
    check_private(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CredentialsError(f"{path}: not a JSON object") from None
    missing = [key for key in keys if not isinstance(payload, dict) or not payload.get(key)]
    if missing:
        raise CredentialsError(f"{path}: no {', '.join(missing)} in it")
    return {key: str(payload[key]) for key in keys}
