"""Robust reading of platform files, atomic writes, and cache directories.

Platforms ship CSVs with byte-order marks, Windows line ends and quoted fields, and
users often leave the download zipped: every reader here takes the data folder as the
platform ships it and finds a file whether it sits loose, under another case, or
inside a zip.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import pandas as pd


class InputError(ValueError):
    """Bad user input: the message is one line naming the file and the row, id or column.
    The command line exits with `exit_code`: 2, input that cannot be read or used."""

    exit_code = 2


class CheckFailed(InputError):
    """Input that was read, and failed a check: an invalid submission (an empty file
    included), a bundle that fails its runtime test. The command line exits 1."""

    exit_code = 1


@dataclass(frozen=True)
class Source:
    """A file that is either on disk or a member of a zip archive."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return Path(self.member).name if self.member else self.path.name

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        if self.member is None:
            with open(self.path, "rb") as handle:
                yield handle
        else:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as handle:
                yield handle

    def read_bytes(self) -> bytes:
        with self.open() as handle:
            return handle.read()


def find(data_dir: Path | str, name: str, required: bool = True) -> Source | None:
    """Locate `name` in a platform data folder: loose, under any letter case, one folder
    down (an unzipped archive's own folder), or inside a zip archive in the folder."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data folder not found")
    wanted = name.lower()
    direct = data_dir / name
    if direct.is_file():
        return Source(direct)
    for candidate in sorted(data_dir.iterdir()) + sorted(data_dir.glob("*/*")):
        if candidate.is_file() and candidate.name.lower() == wanted:
            return Source(candidate)
    for archive in sorted(data_dir.glob("*.zip")):
        if archive.name.lower() == wanted:
            return Source(archive)
        with contextlib.suppress(zipfile.BadZipFile):
            with zipfile.ZipFile(archive) as opened:
                for member in opened.namelist():
                    if Path(member).name.lower() == wanted and not member.endswith("/"):
                        return Source(archive, member)
    if required:
        raise InputError(f"{data_dir}: {name} not found (looked loose, one folder down and in *.zip)")
    return None


def csv_sources(data_dir: Path | str) -> list[Source]:
    """Every CSV of a platform data folder: loose, one folder down, or inside a zip in
    the folder (where `find` looks), in a stable order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data folder not found")
    found = [Source(path) for path in sorted(data_dir.iterdir()) + sorted(data_dir.glob("*/*"))
             if path.is_file() and path.suffix.lower() == ".csv" and not path.name.startswith(".")]
    for archive in sorted(data_dir.glob("*.zip")):
        with contextlib.suppress(zipfile.BadZipFile):
            with zipfile.ZipFile(archive) as opened:
                found += [Source(archive, member) for member in opened.namelist()
                          if member.lower().endswith(".csv") and not Path(member).name.startswith((".", "__MACOSX"))
                          and "__MACOSX" not in member]
    return found


def read_csv(source: Source | Path | str, **kwargs) -> pd.DataFrame:
    """Read a CSV tolerant of a UTF-8 BOM, CRLF line ends and quoted fields.

    Errors name the file and the line."""
    source = source if isinstance(source, Source) else Source(Path(source))
    kwargs.setdefault("encoding", "utf-8-sig")
    try:
        with source.open() as handle:
            return pd.read_csv(handle, **kwargs)
    except FileNotFoundError:
        raise InputError(f"{source}: file not found") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{source}: file is empty") from None
    except pd.errors.ParserError as error:
        raise InputError(f"{source}: cannot parse CSV: {_one_line(error)}") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{source}: not UTF-8 text at byte {error.start}") from None


def require_columns(frame: pd.DataFrame, columns, source) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns[:12]))}")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only on success,
    so a crash never leaves a half-written file where a finished one is expected."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    # mkstemp makes the file owner-only; give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_csv(frame: pd.DataFrame, path: Path | str, **kwargs) -> Path:
    """Write a frame as CSV atomically, with '\\n' line ends on every platform."""
    kwargs.setdefault("index", False)
    buffer = io.StringIO()
    frame.to_csv(buffer, lineterminator="\n", **kwargs)
    return write_text(path, buffer.getvalue())


def hash_files(paths, extra: str = "") -> str:
    """A short content hash of files (size + bytes) and a string: the key of a cache entry."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(Path(p) for p in paths):
        digest.update(str(path.name).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir(*parts: str) -> Path:
    """`$COMPETE_CACHE/<parts>` (default ~/.cache/compete), created on demand."""
    root = Path(os.environ.get("COMPETE_CACHE", Path.home() / ".cache" / "compete"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_extract(archive: Path | str, destination: Path | str) -> list[Path]:
    """Unzip refusing any member that would land outside `destination` (zip slip)."""
    destination = Path(destination).resolve()
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(archive) as opened:
        for member in opened.infolist():
            target = (destination / member.filename).resolve()
            if not target.is_relative_to(destination) or member.filename.startswith("/"):
                raise InputError(f"{archive}: member {member.filename!r} escapes the extraction folder")
            if (member.external_attr >> 16) & 0o170000 == 0o120000:
                raise InputError(f"{archive}: member {member.filename!r} is a symbolic link")
        for member in opened.infolist():
            opened.extract(member, destination)
            written.append(destination / member.filename)
    return written
