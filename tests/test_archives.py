"""Every archive compete unpacks is bounded: the sizes a zip declares are checked
against the limit before anything is written, the bytes actually written are counted,
and a refused archive leaves nothing behind (no partial folder), in one line, exit 2."""
from __future__ import annotations

import io as bytes_io
import re
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from common import io

ZEROS = 2 * 10 ** 9          # 2 GB of zeros...
BLOCK = 1 << 24


def zip_of_zeros(path: Path, size: int = ZEROS, declared: int | None = None, name: str = "zeros.bin") -> Path:
    """A zip holding `size` zero bytes deflated to about a thousandth (2 GB -> 2 MB), in
    about a second and without 2 GB in memory: one block of zeros is deflated once and
    its bytes repeated (a full flush ends it on a byte boundary with no reference
    behind it). `declared`: the size the headers claim (a forged zip lies smaller)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = size % BLOCK
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    ending = tail.compress(bytes(last)) + tail.flush()
    crc = 0
    zero_block = bytes(BLOCK)
    for _ in range(size // BLOCK):
        crc = zlib.crc32(zero_block, crc)
    crc = zlib.crc32(bytes(last), crc)
    compressed = len(block) * (size // BLOCK) + len(ending)
    declared = size if declared is None else declared
    encoded = name.encode()
    date = (0 << 9) | (1 << 5) | 1  # 1980-01-01
    with open(path, "wb") as handle:
        handle.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, date, crc, compressed, declared, len(encoded), 0))
        handle.write(encoded)
        for _ in range(size // BLOCK):
            handle.write(block)
        handle.write(ending)
        directory_at = handle.tell()
        handle.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, date, crc, compressed, declared,
                                 len(encoded), 0, 0, 0, 0, 0, 0))
        handle.write(encoded)
        directory_size = handle.tell() - directory_at
        handle.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, directory_size, directory_at, 0))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return zip_of_zeros(tmp_path_factory.mktemp("bomb") / "bomb.zip")


@pytest.fixture(scope="module")
def forged(tmp_path_factory) -> Path:
    return zip_of_zeros(tmp_path_factory.mktemp("forged") / "forged.zip", declared=1000)


def test_the_bomb_is_what_it_claims(bomb):
    """The fixture itself: a valid zip of 2 GB of zeros in about 2 MB."""
    assert bomb.stat().st_size < 3 * 10 ** 6
    with zipfile.ZipFile(bomb) as opened:
        (member,) = opened.infolist()
        assert member.file_size == ZEROS
        with opened.open(member) as stream:
            assert stream.read(1 << 20) == bytes(1 << 20)


def test_a_zip_bomb_is_refused_by_its_declared_size_before_anything_is_written(bomb, tmp_path, monkeypatch):
    monkeypatch.setenv(io.UNPACK_LIMIT_VARIABLE, "1")
    started = time.perf_counter()
    with pytest.raises(io.InputError) as refused:
        io.safe_extract(bomb, tmp_path / "out")
    assert time.perf_counter() - started < 2
    message = str(refused.value)
    assert "\n" not in message and str(bomb) in message and "declares 2 GB" in message
    assert "1 GB unpack limit" in message and f"{io.UNPACK_LIMIT_VARIABLE}=N" in message
    assert list(tmp_path.iterdir()) == []  # no folder, no staging left


def test_the_default_limit_is_64_gb_for_data_and_4_for_a_bundle(monkeypatch):
    monkeypatch.delenv(io.UNPACK_LIMIT_VARIABLE, raising=False)
    assert io.unpack_limit() == 64 * 10 ** 9
    assert io.unpack_limit(io.BUNDLE_UNPACK_LIMIT_GB) == 4 * 10 ** 9
    monkeypatch.setenv(io.UNPACK_LIMIT_VARIABLE, "100")
    assert io.unpack_limit() == io.unpack_limit(io.BUNDLE_UNPACK_LIMIT_GB) == 100 * 10 ** 9
    monkeypatch.setenv(io.UNPACK_LIMIT_VARIABLE, "lots")
    with pytest.raises(io.InputError, match="not a positive number"):
        io.unpack_limit()


def test_a_zip_that_declares_less_than_it_holds_is_refused_and_leaves_nothing(forged, tmp_path):
    """Headers claiming 1000 bytes for 2 GB: the unpack never trusts them (CPython's
    zipfile stops at the declared size and the CRC then fails), in seconds."""
    out = tmp_path / "out"
    started = time.perf_counter()
    with pytest.raises(io.InputError) as refused:
        io.safe_extract(forged, out)
    assert time.perf_counter() - started < 5
    assert "zeros.bin" in str(refused.value) and "sizes are forged" in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_the_bytes_written_are_counted_and_stop_at_the_limit(tmp_path):
    """The counting copy itself, fed a stream that never ends (what a zip whose sizes
    lie would give a reader that trusted no header): it stops at the limit."""
    class Endless(bytes_io.RawIOBase):
        read_so_far = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:] = bytes(len(buffer))
            self.read_so_far += len(buffer)
            return len(buffer)

    source, limit = Endless(), 50 * 10 ** 6
    with open(tmp_path / "sink", "wb") as sink, pytest.raises(io.InputError, match="unpacks past the limit"):
        io.copy_bounded(source, sink, io._Budget("endless.zip", limit), "endless")
    assert (tmp_path / "sink").stat().st_size <= limit
    assert source.read_so_far <= limit + 2 * io.COPY_BLOCK


def test_the_count_spans_members(tmp_path):
    """Members each under the limit, together over it: the count is of the whole archive."""
    archive = tmp_path / "three.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as opened:
        for number in range(3):
            opened.writestr(f"part{number}.bin", bytes(4 * 10 ** 6))
    with pytest.raises(io.InputError, match=r"declares 12 MB unpacked .*10 MB unpack limit"):
        io.safe_extract(archive, tmp_path / "out", limit=10 * 10 ** 6)
    assert sorted(tmp_path.iterdir()) == [archive]
    assert len(io.safe_extract(archive, tmp_path / "out", limit=12 * 10 ** 6)) == 3


def test_a_refused_unpack_into_an_existing_folder_leaves_its_files_as_they_were(forged, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "train.csv").write_text("kept\n")
    with pytest.raises(io.InputError):
        io.safe_extract(forged, out)
    assert [path.name for path in tmp_path.iterdir()] == ["data"]
    assert [path.name for path in out.iterdir()] == ["train.csv"] and (out / "train.csv").read_text() == "kept\n"


def test_a_data_zip_read_in_place_is_bounded(tmp_path, monkeypatch):
    """A CSV read straight out of a zip in the data folder (never unpacked to disk)."""
    folder = tmp_path / "data"
    folder.mkdir()
    zip_of_zeros(folder / "train.zip", size=300 * 10 ** 6, name="train.csv")
    monkeypatch.setenv(io.UNPACK_LIMIT_VARIABLE, "0.1")
    source = io.find(folder, "train.csv")
    with pytest.raises(io.InputError, match=r"train.zip!train.csv: declares 300 MB unpacked, over the 100 MB unpack limit"):
        io.read_csv(source)
    forged = zip_of_zeros(tmp_path / "forged.zip", size=300 * 10 ** 6, declared=1000, name="train.csv")
    with pytest.raises(io.InputError, match=r"forged.zip!train.csv: cannot be decompressed .*headers lie about its sizes"):
        io.Source(forged, "train.csv").read_bytes()


def test_runtime_test_refuses_a_bomb_bundle_in_seconds_and_leaves_no_folder(compete, bomb, tmp_path):
    """The runtime test's bundle: one line naming the archive, the limit and how to raise
    it, exit 2, and no compete-runtime-* folder in the temp folder."""
    data = tmp_path / "data"
    data.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    started = time.perf_counter()
    result = compete("runtime", "test", bomb, "--data", data, "--competition", "serengeti", check=False,
                     env={io.UNPACK_LIMIT_VARIABLE: "1", "TMPDIR": str(temp)})
    assert time.perf_counter() - started < 30
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "bomb.zip" in lines[0] and "1 GB unpack limit" in lines[0] and io.UNPACK_LIMIT_VARIABLE in lines[0]
    assert list(temp.iterdir()) == []


def test_runtime_test_refuses_a_bomb_bundle_by_its_ratio_with_the_default_limit(compete, bomb, tmp_path):
    """Under the default 4 GB bundle limit a 2 GB bomb fits: its 1000:1 ratio gives it
    away (no code or model compresses so), unless the limit is set by hand."""
    data = tmp_path / "data"
    data.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = compete("runtime", "test", bomb, "--data", data, "--competition", "serengeti", check=False,
                     env={"TMPDIR": str(temp), io.UNPACK_LIMIT_VARIABLE: ""})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(r"bomb.zip: expands 1.94 MB into 2 GB \(1028 times", lines[0]), lines
    assert io.UNPACK_LIMIT_VARIABLE in lines[0]
    assert list(temp.iterdir()) == []


def test_data_fetch_from_a_bomb_is_refused_and_writes_no_folder(compete, tmp_path):
    """A Kaggle zip whose train.csv is 300 MB of zeros, with the limit at 100 MB."""
    archive = zip_of_zeros(tmp_path / "house-prices.zip", size=300 * 10 ** 6, name="train.csv")
    with zipfile.ZipFile(archive, "a") as opened:  # appended: the bomb's member is kept as it is
        opened.writestr("test.csv", "Id\n1\n")
    out = tmp_path / "out"
    result = compete("data", "fetch", "house-prices", "--out", out, "--from", archive, check=False,
                     env={io.UNPACK_LIMIT_VARIABLE: "0.1"})
    assert result.exit_code == 2, result.output
    assert "house-prices.zip!train.csv" in result.stderr and "100 MB unpack limit" in result.stderr
    assert not out.exists()


def test_a_downloaded_competition_zip_is_bounded_before_its_crcs_are_read(bomb, tmp_path, monkeypatch):
    """The platforms' download: checking every member's CRC would inflate the bomb;
    the declared size refuses it first, and the download is kept (it is what the
    platform served: the user decides)."""
    from common.platforms import web

    monkeypatch.setenv(io.UNPACK_LIMIT_VARIABLE, "1")
    out = tmp_path / "out"
    started = time.perf_counter()
    with pytest.raises(io.InputError, match="1 GB unpack limit"):
        web.unpack(bomb, out)
    assert time.perf_counter() - started < 2
    assert not out.exists()
