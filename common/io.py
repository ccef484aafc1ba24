"""Robust reading of platform files, atomic writes, and cache directories.

Platforms ship CSVs with byte-order marks, Windows line ends and quoted fields, and
users often leave the download zipped: every reader here takes the data folder as the
platform ships it and finds a file whether it sits loose, under another case, or
inside a zip.
"""
from __future__ import annotations

import contextlib
import contextvars
import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import pandas as pd

log = logging.getLogger("compete")


class InputError(ValueError):
    """Bad user input: the message is one line naming the file and the row, id or column.
    The command line exits with `exit_code`: 2, input that cannot be read or used."""

    exit_code = 2


class Unexpected(Exception):
    """A bug, not the user's input, already told in one line: what failed on what, and
    where its traceback is kept (common.runs.StageFailed). The command line exits 2."""

    exit_code = 2


class CheckFailed(InputError):
    """Input that was read, and failed a check: an invalid submission (an empty file
    included), a bundle that fails its runtime test. The command line exits 1."""

    exit_code = 1


@dataclass(frozen=True)
class Source:
    """A file that is either on disk, gzip-compressed on disk (`compression="gzip"`), or
    a member of a zip archive. Compressed bytes are read through the unpack limit."""

    path: Path
    member: str | None = None
    compression: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return Path(self.member).name if self.member else self.path.name

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        if self.compression == "gzip":
            import gzip
            with open(self.path, "rb") as raw, gzip.GzipFile(fileobj=raw) as handle:
                budget = _Budget(self.path, unpack_limit())
                yield io.BufferedReader(_BoundedReader(handle, budget, self.path.name, self.path), COPY_BLOCK)
        elif self.member is None:
            with open(self.path, "rb") as handle:
                yield handle
        else:
            with open_member(self.path, self.member) as handle:
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


def unpacked_once(archive: Path | str, *cache: str) -> Path:
    """A zip unpacked once into the cache folder `cache` (bounded by safe_extract, each
    file checked against the manifest written with it on every later use: a damaged file
    would otherwise be read as it now is). Unpacked beside, then renamed: a killed unzip
    never passes for a finished one."""
    archive = Path(archive)
    target = cache_dir(*cache) / hash_files([archive])
    if target.is_dir():
        why = folder_damage(target)
        if why is not None:
            if why != UNFINISHED:
                rebuilding(target, why)
            shutil.rmtree(target)
    if not target.is_dir():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        safe_extract(archive, partial, manifest=True)
        os.replace(partial, target)
    return target


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

    Errors name the file and the line: a byte that is not UTF-8 is located by row,
    with the encoding the line looks like."""
    source = source if isinstance(source, Source) else Source(Path(source))
    kwargs.setdefault("encoding", "utf-8-sig")
    try:
        with source.open() as handle:
            return pd.read_csv(handle, **kwargs)
    except FileNotFoundError:
        raise InputError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{source}: is a folder, not a CSV file") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{source}: file is empty") from None
    except pd.errors.ParserError as error:
        raise InputError(f"{source}: cannot parse CSV: {_parser_message(error)}") from None
    except UnicodeDecodeError:
        raise InputError(_encoding_message(source)) from None


def _parser_message(error: Exception) -> str:
    text = _one_line(error)
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        expected, line, found = fields.groups()
        return f"row {line} has {found} fields, the header {expected} (an unquoted separator inside a value?)"
    if "EOF inside string" in text:
        return f"{text}: a quoted value never ends, the file looks cut short"
    return text


def _encoding_message(source: Source) -> str:
    """Where a file stops being UTF-8, by row, and what the line looks like instead."""
    with source.open() as handle:
        if handle.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            return f"{source}: is UTF-16 text, not UTF-8; save it as UTF-8 (\"CSV UTF-8\" in Excel)"
    with source.open() as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                byte = line[error.start:error.start + 1].hex()
                shown = line.decode("cp1252", errors="replace").strip()[:60]
                return (f"{source}: row {number} is not UTF-8 (byte 0x{byte}); it reads as latin-1/Windows-1252: "
                        f"{shown!r}; save the file as UTF-8")
    return f"{source}: not UTF-8 text"


# --- checked reading of a platform's input files --------------------------------------
# Every competition's `load` reads its files through these, so every file of every
# command gets the same checks, and the same one-line messages, before any training.

SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "bars"}


def _as_source(source) -> Source:
    return source if isinstance(source, Source) else Source(Path(source))


def find_file(path: Source | Path | str) -> Source:
    """`path` as a Source, failing in one line when it is absent or a folder."""
    source = _as_source(path)
    if source.member is None and not source.path.is_file():
        raise InputError(f"{source}: {'is a folder, not a CSV file' if source.path.is_dir() else 'file not found'}")
    return source


def header_line(source: Source | Path | str) -> str:
    source = _as_source(source)
    with source.open() as handle:
        first = handle.readline()
    return first.decode("utf-8-sig", errors="replace").rstrip("\r\n")


def header_names(source: Source | Path | str, separator: str = ",") -> list[str]:
    """The column names of the first line, as written (no de-duplication)."""
    return next(csv.reader([header_line(source)], delimiter=separator), [])


def _last_line(source: Source) -> bytes:
    """The file's last line including its line end (if it has one)."""
    with source.open() as handle:
        if source.member is None and source.compression is None:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - (1 << 16)))
            tail = handle.read()
        else:  # a zip member or a gzip stream cannot seek: stream it, keeping the end
            tail = b""
            for block in iter(lambda: handle.read(1 << 20), b""):
                tail = (tail + block)[-(1 << 16):]
    body = tail[:-1] if tail.endswith(b"\n") else tail
    return tail[body.rfind(b"\n") + 1:]


def _short_row(source: Source, expected: int, separator: str) -> tuple[int, int] | None:
    """The first row with fewer fields than the header, as (line, fields), else None.
    pandas pads such a row with blanks, so a lost value would pass unseen."""
    mark = separator.encode()
    with source.open() as handle:
        # A quick count first: a separator inside quotes can only add to it, so only a
        # line that looks short needs the real CSV reader (quotes, values over lines).
        suspect = any(0 < len(line.strip()) and line.count(mark) + 1 < expected for line in handle)
    if not suspect:
        return None
    with source.open() as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=separator)
        for fields in reader:
            if fields and len(fields) < expected:
                return reader.line_num, len(fields)
    return None


def check_separator(source: Source, header: str, columns=(), separator: str = ",") -> None:
    """A file separated by something else than `separator` fails naming what it uses."""
    fields = header.split(separator)
    if columns and all(column in [f.strip().strip('"') for f in fields] for column in columns):
        return
    for other, name in SEPARATORS.items():
        if other != separator and header.count(other) >= max(1, header.count(separator) + 1):
            raise InputError(f"{source}: fields are separated by {name} ({other!r}), not {separator!r} "
                             f"(header {header[:60]!r}); save it comma-separated")


def read_table(source: Source | Path | str, columns=(), min_rows: int = 1, complete: bool = True,
               **kwargs) -> pd.DataFrame:
    """A platform file read and checked before anything uses it: present, UTF-8 (else the
    row that is not), comma-separated (else the separator it uses), a header with
    `columns` and no duplicate names, at least `min_rows` rows, and a last row that is
    whole. `complete`: the file must end with a line end, as the platforms ship them; a
    last line without one is a cut download."""
    source = find_file(source)
    header = header_line(source)
    if not header.strip():
        raise InputError(f"{source}: file is empty" + ("" if not header else " (its first line is blank)"))
    separator = kwargs.get("sep", ",")
    check_separator(source, header, columns, separator)
    frame = read_csv(source, **kwargs)
    names = next(csv.reader([header], delimiter=separator), [])
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InputError(f"{source}: column(s) {', '.join(map(repr, duplicated))} appear more than once in the header")
    missing = [column for column in columns if column not in names]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(names[:12])}"
                         + ("..." if len(names) > 12 else ""))
    if len(frame) < min_rows:
        raise InputError(f"{source}: no data rows, only a header" if len(frame) == 0 else
                         f"{source}: {len(frame)} row(s); need at least {min_rows}")
    short = _short_row(source, len(names), separator) if len(names) > 1 else None
    last = _last_line(source)
    if short and not (short[0] == len(frame) + 1 and not last.endswith(b"\n")):  # a cut last row is said below
        raise InputError(f"{source}: row {short[0]} has {short[1]} of {len(names)} fields: a value is lost "
                         f"(or the line was broken); fix the row or download the file again")
    if len(frame) and not last.endswith(b"\n"):
        line = len(frame) + 1  # the header is line 1 (values spanning lines aside)
        found = len(next(csv.reader([last.decode("utf-8", errors="replace")], delimiter=separator), []))
        if found < len(names):
            raise InputError(f"{source}: row {line} (the last) has {found} of {len(names)} fields: "
                             f"the file is cut short; download it again")
        if complete:
            raise InputError(f"{source}: row {line} (the last) has no line end: the file looks cut short; "
                             f"download it again (or end it with a newline if it is whole)")
    return frame


def require_columns(frame: pd.DataFrame, columns, source) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns[:12]))}")


def _row(position: int) -> int:
    """The file line of a frame's row `position` (line 1 is the header)."""
    return int(position) + 2


def _where(frame: pd.DataFrame, position: int, id_column: str | None) -> str:
    named = f" ({id_column} {frame[id_column].iloc[position]})" if id_column and id_column in frame else ""
    return f"row {_row(position)}{named}"


def shown(value) -> str:
    """A cell as the file holds it: quoted text, never a numpy repr like np.int64(2)."""
    return repr(value if isinstance(value, str) else str(value))


def _rows(count: int) -> str:
    return f" ({count} rows)" if count > 1 else ""


def _text(column: pd.Series) -> pd.Series:
    return column.astype("string").str.strip()


def integer_ids(frame: pd.DataFrame, column: str, source) -> pd.Series:
    """`column` as int64: a blank or a value that is not a whole number ("10.5", "7a")
    fails naming its row, so an id is never rounded into another one."""
    text = _text(frame[column])
    blank = text.isna() | (text == "")
    if blank.any():
        position = int(np.flatnonzero(blank.to_numpy())[0])
        raise InputError(f"{source}: row {_row(position)}: {column} is blank{_rows(int(blank.sum()))}")
    whole = text.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(dtype=bool)
    if not whole.all():
        position = int(np.flatnonzero(~whole)[0])
        raise InputError(f"{source}: row {_row(position)}: {column}={shown(text.iloc[position])} is not an integer id"
                         f"{_rows(int((~whole).sum()))}")
    return text.astype("int64")


def unique(frame: pd.DataFrame, column: str, source) -> None:
    duplicated = frame[column].duplicated()
    if duplicated.any():
        position = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(f"{source}: row {_row(position)}: {column} {frame[column].iloc[position]} appears more than once "
                         f"({int(duplicated.sum())} repeat(s))")


def numbers(frame: pd.DataFrame, column: str, source, id_column: str | None = None, missing=(),
            required: bool = False, positive: bool = False) -> pd.Series:
    """`column` as float. Blank cells and the `missing` tokens (e.g. "NA") are NaN unless
    `required`; anything else that is not a finite number fails naming row, id and value."""
    text = _text(frame[column])
    absent = text.isna() | (text == "") | text.isin(list(missing))
    values = pd.to_numeric(text.mask(absent), errors="coerce").astype(float)
    checks = [(~absent & values.isna(), "is not a number"),
              (~absent & values.notna() & ~np.isfinite(values), "is not a finite number")]
    if required:
        checks.insert(0, (absent, "is missing"))
    if positive:
        checks.append((values.notna() & np.isfinite(values) & (values <= 0), "must be a positive number"))
    for bad, says in checks:
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            value = "" if says == "is missing" else f"={shown(frame[column].iloc[position])}"
            raise InputError(f"{source}: {_where(frame, position, id_column)}: {column}{value} {says}{_rows(int(bad.sum()))}")
    return values


_DAY_MONTH_SWAP = str.maketrans({"d": "m", "m": "d"})


def day_month_times(text: pd.Series, platform_format: str, source, column: str) -> tuple[pd.Series, str, np.ndarray]:
    """Parse dates whose day/month order is decided from the data, not guessed per row.

    Rows that only fit `platform_format` (a day above 12 where it wants the day) and rows
    that only fit the swapped order decide it; a file holding both kinds fails naming a
    row of each. Returns (times, order, unparsed): order is "platform" or "swapped";
    `unparsed` marks rows that fit neither (the caller counts them)."""
    swapped_format = re.sub(r"%([dm])", lambda m: "%" + m.group(1).translate(_DAY_MONTH_SWAP), platform_format)
    text = text.astype("string").str.strip()
    as_platform = pd.to_datetime(text, format=platform_format, errors="coerce")
    as_swapped = pd.to_datetime(text, format=swapped_format, errors="coerce")
    only_platform = (as_platform.notna() & as_swapped.isna()).to_numpy()
    only_swapped = (as_swapped.notna() & as_platform.isna()).to_numpy()
    if only_platform.any() and only_swapped.any():
        a, b = int(np.flatnonzero(only_platform)[0]), int(np.flatnonzero(only_swapped)[0])
        raise InputError(f"{source}: {column} mixes day/month orders: row {_row(a)} {text.iloc[a]!r} reads only as "
                         f"{platform_format}, row {_row(b)} {text.iloc[b]!r} only as {swapped_format} "
                         f"({int(only_platform.sum())} vs {int(only_swapped.sum())} rows)")
    if only_swapped.any():
        first = int(np.flatnonzero(only_swapped)[0])
        log.warning("%s: %s is in %s order, not the platform's %s (row %d: %r and %d more): read as such",
                    source, column, swapped_format, platform_format, _row(first), text.iloc[first], int(only_swapped.sum()) - 1)
        return as_swapped, "swapped", as_swapped.isna().to_numpy()
    return as_platform, "platform", as_platform.isna().to_numpy()


# --- rows that cannot be used ---------------------------------------------------------

_unusable: contextvars.ContextVar[dict | None] = contextvars.ContextVar("unusable", default=None)
MOST = 0.5  # a file where more than this share of rows is unusable fails


@contextlib.contextmanager
def counting_unusable() -> Iterator[dict]:
    """Collect, file by file and kind by kind, the rows `unusable_rows` reports while
    the block runs (runs.py records them in metrics.json)."""
    tally: dict = {}
    token = _unusable.set(tally)
    try:
        yield tally
    finally:
        _unusable.reset(token)


def unusable_rows(source, total: int, kinds: dict[str, np.ndarray], examples: pd.Series | None = None) -> dict[str, int]:
    """Count the rows of `source` that cannot be used, by kind; log them with their first
    row (and its value in `examples`, an id column), and fail when they are most of the
    file. Returns the counts of the kinds found."""
    masks = {kind: np.asarray(mask, dtype=bool) for kind, mask in kinds.items()}
    counts = {kind: int(mask.sum()) for kind, mask in masks.items() if mask.any()}
    if not counts:
        return {}
    any_bad = np.logical_or.reduce(list(masks.values()))
    def first(kind: str) -> str:
        position = int(np.flatnonzero(masks[kind])[0])
        named = f", {examples.name} {examples.iloc[position]}" if examples is not None else ""
        return f"{kind} {counts[kind]} (first row {_row(position)}{named})"
    described = ", ".join(first(kind) for kind in counts)
    tally = _unusable.get()
    if tally is not None:
        tally.setdefault(_as_source(source).name, {}).update(counts)
    bad = int(any_bad.sum())
    if total and bad > MOST * total:
        raise InputError(f"{source}: {bad} of {total} rows cannot be used: {described}: most of the file is unusable")
    log.warning("%s: %d of %d rows cannot be used and are left out: %s", source, bad, total, described)
    return counts


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


@contextlib.contextmanager
def atomic_folder(path: Path | str) -> Iterator[Path]:
    """Yield an empty folder beside `path` to build in; on success it takes `path`'s
    place whole (an old folder is moved aside first and removed last, so `path` never
    holds half of either), on failure it is removed and `path` is untouched. Folders and
    files get the modes a plain mkdir and open() would: mkdtemp's folder is owner-only,
    and so are some libraries' files (save_pretrained's weights)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".building", dir=path.parent))
    try:
        yield building
        umask = os.umask(0)
        os.umask(umask)
        for item in [building, *building.rglob("*")]:
            item.chmod((0o777 if item.is_dir() else 0o666) & ~umask)
        if not path.exists():
            os.replace(building, path)
            return
        aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, aside / path.name)
        try:
            os.replace(building, path)
        except OSError:
            os.replace(aside / path.name, path)
            raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)


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


def cache_root() -> Path:
    """`$COMPETE_CACHE`, default ~/.cache/compete (README: "Where compete writes")."""
    return Path(os.environ.get("COMPETE_CACHE", Path.home() / ".cache" / "compete"))


def read_pickle(path: Path | str, missing: str):
    """The object a run pickled at `path` (its model); `missing` is what to tell the
    user when there is none."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no trained model here; {missing}")
    with open(path, "rb") as handle:
        return pickle.load(handle)


def cache_dir(*parts: str) -> Path:
    """`$COMPETE_CACHE/<parts>` (default ~/.cache/compete), created on demand."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- checked cache entries ------------------------------------------------------------
# Every entry compete writes into the cache carries the sha256 of its bytes, hashed while
# they are written and kept beside it (ENTRY.sha256, as `sha256sum` writes it, so
# `sha256sum -c` checks it by hand); a reader checks it and never uses an entry that
# differs. The sidecar lands after the entry: an entry without one is unfinished.

CHECKSUM_SUFFIX = ".sha256"


def checksum_path(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


class _HashingWriter(io.RawIOBase):
    """A binary file that hashes what goes through it (torch.save and np.save write
    to any object with write())."""

    def __init__(self, handle: IO[bytes]):
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)


def write_hashed(path: Path | str, content) -> tuple[str, int]:
    """Write `path` atomically, hashing the bytes as they go: `content` is bytes, or a
    function given a binary file to write into. Returns (sha256, size)."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            writer = _HashingWriter(handle)
            if isinstance(content, (bytes, bytearray, memoryview)):
                writer.write(content)
            else:
                content(writer)
    return writer.digest.hexdigest(), writer.size


def write_checked(path: Path | str, content) -> tuple[str, int]:
    """Write a cache entry atomically, then its checksum (`write_hashed`'s arguments).
    Returns (sha256, size)."""
    path = Path(path)
    checksum_path(path).unlink(missing_ok=True)  # an old checksum never vouches for new bytes
    digest, size = write_hashed(path, content)
    write_text(checksum_path(path), f"{digest}  {path.name}\n")
    return digest, size


def recorded_checksum(path: Path | str) -> str | None:
    try:
        return checksum_path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None


def damage(path: Path | str, digest: str | None = None, size: int | None = None) -> str | None:
    """Why the entry at `path` cannot be used, in words, or None when it holds what its
    checksum says (`digest` and `size` when a manifest records them, else its sidecar)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    digest = digest or recorded_checksum(path)
    if digest is None:
        return "no checksum (unfinished, or written by an older compete)"
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"{actual} bytes where {size} were written (truncated or overwritten)"
    if sha256(path) != digest:
        return "its bytes differ from their checksum (overwritten or damaged)"
    return None


def read_checked(path: Path | str) -> bytes | None:
    """The bytes of a cache entry that matches its checksum, else None, for the caller
    to rebuild it. An unfinished entry (no checksum yet: killed between the two writes,
    or written by an older compete) is rebuilt quietly; a damaged one is removed, with
    its checksum, and gets one log line naming it."""
    path = Path(path)
    digest = recorded_checksum(path)
    if digest is None or not path.is_file():
        return None
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != digest:
        rebuilding(path, "its bytes differ from their checksum: overwritten, truncated or damaged")
        discard(path)
        return None
    return content


def discard(path: Path | str) -> None:
    """Remove a cache entry (a file or a folder) and its checksum."""
    import shutil
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    checksum_path(path).unlink(missing_ok=True)


def rebuilding(path: Path | str, why: str) -> None:
    """The one line a damaged cache entry gets."""
    log.warning("%s: damaged cache entry (%s); rebuilding it", path, why)


TEMP_PREFIX = "compete-"  # every temp folder compete makes starts so (compete-runtime-* from `runtime test --keep`)


def clear_cache() -> list[tuple[Path, int]]:
    """Remove the cache (features, shards, unzipped clips, wheels, error logs) and the
    temp folders compete left in the temp dir; returns what went, with its size in bytes."""
    import shutil
    removed = []
    candidates = sorted(cache_root().iterdir()) if cache_root().is_dir() else []
    candidates += sorted(Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*"))
    for path in candidates:
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        removed.append((path, size))
    return removed


# --- archives: bounded unpacking --------------------------------------------------------
# A zip declares each member's size, and can lie: every unpack checks the declared total
# against a limit first, then counts the bytes it actually writes, and stops at the limit.

UNPACK_LIMIT_VARIABLE = "COMPETE_UNPACK_LIMIT_GB"
UNPACK_LIMIT_GB = 64.0          # a competition's data archive (README: "Archives")
BUNDLE_UNPACK_LIMIT_GB = 4.0    # a code submission's bundle: code and model weights
GB = 10 ** 9
COPY_BLOCK = 1 << 20


def unpack_limit(default_gb: float = UNPACK_LIMIT_GB) -> int:
    """The most bytes one archive may unpack to: $COMPETE_UNPACK_LIMIT_GB when set (it
    raises or lowers every command's limit), else `default_gb`."""
    text = os.environ.get(UNPACK_LIMIT_VARIABLE, "").strip()
    if not text:
        return int(default_gb * GB)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InputError(f"{UNPACK_LIMIT_VARIABLE}={text!r}: not a positive number of GB")
    return int(value * GB)


def _size(count: float) -> str:
    for unit, scale in (("GB", GB), ("MB", 10 ** 6), ("kB", 10 ** 3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} bytes"


def _over_limit(archive, what: str, limit: int) -> InputError:
    return InputError(f"{archive}: {what}, over the {_size(limit)} unpack limit (a zip bomb?); "
                      f"if the archive is genuine, raise it with {UNPACK_LIMIT_VARIABLE}=N (GB)")


BUNDLE_RATIO = 100              # code and weights never deflate 100:1; zeros deflate 1000:1
RATIO_FLOOR = 100 * 10 ** 6     # below this unpacked size the ratio does not matter


def check_archive(archive: Path | str, limit: int | None = None, ratio: float | None = None) -> list[zipfile.ZipInfo]:
    """The members of a zip, checked before anything is unpacked: readable, and the
    sizes it declares (their sum) within `limit` (default `unpack_limit()`). `ratio`
    (a code bundle's): refuse an archive over RATIO_FLOOR that expands more than that
    many times, unless COMPETE_UNPACK_LIMIT_GB is set (the user vouches for it)."""
    limit = unpack_limit() if limit is None else limit
    try:
        with zipfile.ZipFile(archive) as opened:
            members = opened.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise InputError(f"{archive}: cannot be read as a zip ({_one_line(error)})") from None
    declared = sum(member.file_size for member in members)
    if declared > limit:
        largest = max(members, key=lambda member: member.file_size)
        raise _over_limit(archive, f"declares {_size(declared)} unpacked ({largest.filename!r} alone "
                                   f"{_size(largest.file_size)})", limit)
    packed = max(1, sum(member.compress_size for member in members))
    if ratio and declared > RATIO_FLOOR and declared > ratio * packed and not os.environ.get(UNPACK_LIMIT_VARIABLE):
        raise InputError(f"{archive}: expands {_size(packed)} into {_size(declared)} ({declared / packed:.0f} times; "
                         f"code and model weights compress less than {ratio:g} times): a zip bomb?; if it is genuine, "
                         f"set {UNPACK_LIMIT_VARIABLE}=N (GB) to unpack it")
    return members


class _Budget:
    """Bytes an unpack may still produce; the count is of bytes actually read out, never
    of what the zip's headers say."""

    def __init__(self, archive, limit: int):
        self.archive, self.limit, self.used = archive, limit, 0

    def spend(self, count: int, member: str) -> None:
        self.used += count
        if self.used > self.limit:
            raise _over_limit(self.archive, f"{member!r} unpacks past the limit ({_size(self.used)} so far)", self.limit)


def copy_bounded(source: IO[bytes], target: IO[bytes], budget: _Budget, member: str, digest=None) -> int:
    """Copy block by block, counting (and hashing into `digest`): stops with an
    InputError once the budget is spent."""
    copied = 0
    while block := source.read(COPY_BLOCK):
        budget.spend(len(block), member)
        target.write(block)
        if digest is not None:
            digest.update(block)
        copied += len(block)
    return copied


class _BoundedReader(io.RawIOBase):
    """A decompressing stream (a zip member, a gzip file) that fails once more than the
    limit has been read from it, and says in one line when its bytes cannot be
    decompressed."""

    def __init__(self, handle: IO[bytes], budget: _Budget, member: str, where=None):
        self.handle, self.budget, self.member, self.where = handle, budget, member, where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.handle.read(len(buffer))
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
            raise InputError(f"{self.where or self.budget.archive}: cannot be decompressed ({_one_line(error) or type(error).__name__}); "
                             f"the file is damaged, cut short, or its headers lie about its sizes") from None
        self.budget.spend(len(data), self.member)
        buffer[:len(data)] = data
        return len(data)


def _member_error(archive, member: str, error: Exception) -> InputError:
    return InputError(f"{archive}: member {member!r} cannot be unpacked ({_one_line(error)}); "
                      f"the zip is damaged or its sizes are forged")


MANIFEST = ".compete-manifest.json"
UNFINISHED = "no manifest (unfinished, or unpacked by an older compete)"


def folder_damage(folder: Path | str) -> str | None:
    """Why a folder unpacked with `manifest` cannot be used, or None when every file
    listed is there with the size and sha256 written into the manifest."""
    folder = Path(folder)
    try:
        listed = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return UNFINISHED
    for name, (size, digest) in sorted(listed.items()):
        why = damage(folder / name, digest, size)
        if why is not None:
            return f"{name}: {why}"
    return None


def open_member(archive: Path | str, member: str, limit: int | None = None):
    """A context manager: `member` of the zip as a bounded binary stream (data read in
    place, never unpacked to disk)."""
    return _open_member(Path(archive), member, unpack_limit() if limit is None else limit)


@contextlib.contextmanager
def _open_member(archive: Path, member: str, limit: int) -> Iterator[IO[bytes]]:
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo(member)
        if info.file_size > limit:
            raise _over_limit(f"{archive}!{member}", f"declares {_size(info.file_size)} unpacked", limit)
        with opened.open(info) as handle:
            try:
                yield io.BufferedReader(_BoundedReader(handle, _Budget(f"{archive}!{member}", limit), member,
                                                       f"{archive}!{member}"), COPY_BLOCK)
            except zipfile.BadZipFile as error:
                raise _member_error(archive, member, error) from None


def safe_extract(archive: Path | str, destination: Path | str, limit: int | None = None,
                 manifest: bool = False) -> list[Path]:
    """Unzip refusing any member that would land outside `destination` (zip slip), a
    symbolic link, and an archive that declares or writes more than `limit` bytes
    (default `unpack_limit()`) or more than the disk has free. Members are unpacked into
    a staging folder beside `destination` and moved in at the end: a refused or failed
    unpack leaves nothing behind. `manifest` (a cache entry): each file's size and
    sha256, hashed while it is written, land last in MANIFEST (see `folder_damage`)."""
    import shutil

    limit = unpack_limit() if limit is None else limit
    members = check_archive(archive, limit)
    destination = Path(destination).resolve()
    for member in members:
        target = (destination / member.filename).resolve()
        if not target.is_relative_to(destination) or member.filename.startswith("/"):
            raise InputError(f"{archive}: member {member.filename!r} escapes the extraction folder")
        if (member.external_attr >> 16) & 0o170000 == 0o120000:
            raise InputError(f"{archive}: member {member.filename!r} is a symbolic link")
    created = not destination.exists()
    destination.parent.mkdir(parents=True, exist_ok=True)
    declared = sum(member.file_size for member in members)
    free = shutil.disk_usage(destination.parent).free
    if declared > free:
        raise InputError(f"{archive}: unpacks to {_size(declared)}, but {destination.parent} has {_size(free)} free")
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.unpacking-", dir=destination.parent))
    budget = _Budget(archive, limit)
    hashes: dict[str, list] = {}
    try:
        with zipfile.ZipFile(archive) as opened:
            for member in members:
                target = staging / member.filename
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with opened.open(member) as source, open(target, "wb") as sink:
                        digest = hashlib.sha256()
                        size = copy_bounded(source, sink, budget, member.filename, digest)
                        hashes[Path(member.filename).as_posix()] = [size, digest.hexdigest()]
                except (zipfile.BadZipFile, EOFError, NotImplementedError) as error:
                    raise _member_error(archive, member.filename, error) from None
        destination.mkdir(parents=True, exist_ok=True)
        written = []
        for member in members:
            target = destination / member.filename
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / member.filename, target)
            written.append(target)
        if manifest:
            write_text(destination / MANIFEST, json.dumps(hashes, indent=0, sort_keys=True) + "\n")
        return written
    except BaseException:
        if created:
            shutil.rmtree(destination, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
