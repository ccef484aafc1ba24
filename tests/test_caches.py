"""Every cache entry carries the checksum written with it and is checked when read: a
damaged entry (a valid array of zeros, cut short, random bytes) is rebuilt with one log
line naming it, never used, never a crash."""
from __future__ import annotations

import io as bytes_io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from common import io, loaders


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPETE_CACHE", str(tmp_path / "cache"))


def damaged_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "damaged cache entry" in record.getMessage()]


def zeros_like_npy(path: Path) -> None:
    """Overwrite an .npy entry with a VALID array of zeros of the same shape and dtype:
    what np.load alone would accept."""
    array = np.load(path)
    buffer = bytes_io.BytesIO()
    np.save(buffer, np.zeros_like(array))
    path.write_bytes(buffer.getvalue())


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def zero_bytes(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


# ---------------------------------------------------------------- birdcall's log-mel cache

@pytest.fixture(scope="module")
def clips(competition_data) -> list[Path]:
    return sorted((competition_data("birdcall") / "Train").iterdir())[:3]


@pytest.mark.parametrize("spoil", [zeros_like_npy, truncate, random_bytes])
def test_a_damaged_log_mel_entry_is_computed_again_with_one_line(clips, spoil, caplog):
    from common import spectrograms as features

    first = features.compute(clips, quiet=True)
    assert all(isinstance(mel, np.ndarray) for mel in first)
    entry = io.cache_dir("logmel", features.SETTINGS.key) / f"{features.file_hash(clips[1])}.npy"
    assert io.checksum_path(entry).read_text().split()[0] == io.sha256(entry)  # written with its checksum
    spoil(entry)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compete"):
        again = features.compute(clips, quiet=True)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # never the zeros
    (line,) = damaged_lines(caplog)
    assert str(entry) in line and "rebuilding" in line
    assert io.recorded_checksum(entry) == io.sha256(entry)  # rebuilt whole, with a new checksum
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compete"):
        features.compute(clips, quiet=True)
    assert damaged_lines(caplog) == []


def test_a_log_mel_entry_without_its_checksum_is_recomputed_quietly(clips, caplog):
    """Killed between the entry and its checksum (or written by an older compete):
    unfinished, not damaged."""
    from common import spectrograms as features

    first = features.compute(clips, quiet=True)
    entry = io.cache_dir("logmel", features.SETTINGS.key) / f"{features.file_hash(clips[0])}.npy"
    zeros_like_npy(entry)
    io.checksum_path(entry).unlink()
    with caplog.at_level(logging.WARNING, logger="compete"):
        again = features.compute(clips, quiet=True)
    assert np.array_equal(first[0], again[0]) and damaged_lines(caplog) == []


def test_a_damaged_clip_in_an_unzipped_folder_is_unpacked_again(competition_data, tmp_path, caplog):
    """birdcall's Train.zip, unpacked once into the cache: a clip changed there would
    get a new log-mel key and be heard as it now is."""
    from competitions.birdcall import data as bird_data

    small = competition_data("birdcall")
    data = tmp_path / "zipped"
    data.mkdir()
    with zipfile.ZipFile(data / "Train.zip", "w") as archive:
        for path in sorted((small / "Train").iterdir())[:4]:
            archive.write(path, f"Train/{path.name}")
    folder = bird_data.clip_folder(data, "Train")
    clip = sorted(folder.iterdir())[1]
    original = clip.read_bytes()
    zero_bytes(clip)
    with caplog.at_level(logging.WARNING, logger="compete"):
        again = bird_data.clip_folder(data, "Train")
    assert (again / clip.name).read_bytes() == original
    (line,) = damaged_lines(caplog)
    assert clip.name in line and "rebuilding" in line


# ---------------------------------------------------------------- shard sets (serengeti, birdcall)

def samples(count: int = 40):
    rng = np.random.default_rng(1)
    return [(f"s{i}", rng.normal(size=(3, 8)).astype(np.float32), i % 3) for i in range(count)]


def cached(builds: list) -> loaders.ShardSet:
    def build(directory):
        builds.append(directory)
        return loaders.write_shards(samples(), directory, samples_per_shard=10)
    return loaders.cached_shards("test", "fingerprint", build=build)


def read(shard_set) -> list:
    return [(key, array.tobytes(), label.tobytes()) for key, array, label in loaders.read_shards(shard_set)]


@pytest.mark.parametrize("spoil, file", [(truncate, "shard-000001.tar"), (random_bytes, "shard-000002.tar"),
                                         (zero_bytes, "shard-000000.tar"), (zeros_like_npy, loaders.LABELS),
                                         (truncate, loaders.INDEX)])
def test_a_damaged_shard_set_is_packed_again_with_one_line(spoil, file, caplog):
    builds = []
    first = cached(builds)
    expected = read(first)
    index = json.loads((first.directory / loaders.INDEX).read_text())
    assert all(len(shard["sha256"]) == 64 and shard["size"] for shard in index["shards"])
    spoil(first.directory / file)
    with caplog.at_level(logging.WARNING, logger="compete"):
        again = cached(builds)
    assert len(builds) == 2
    assert read(again) == expected
    (line,) = damaged_lines(caplog)
    assert str(first.directory) in line and file in line
    cached(builds)
    assert len(builds) == 2  # whole again: reused


def test_a_shard_set_too_large_to_hash_at_open_is_checked_shard_by_shard_as_it_is_read(monkeypatch):
    """Over VERIFY_AT_OPEN only the sizes are checked when the set is opened; the reader
    hashes each shard before yielding any of its samples, and a shard that differs is
    one line naming it and `compete cache clear`."""
    builds = []
    first = cached(builds)
    monkeypatch.setattr(loaders, "VERIFY_AT_OPEN", 0)
    random_bytes(first.directory / "shard-000002.tar")   # same size: only the hash tells
    shard_set = cached(builds)
    assert len(builds) == 1
    with pytest.raises(io.InputError) as refused:
        read(shard_set)
    assert "shard-000002.tar: damaged cache shard" in str(refused.value) and "compete cache clear" in str(refused.value)
    workers = loaders.StreamLoader(loaders.ShardStream(shard_set, shuffle=False), batch_size=5, num_workers=1)
    with pytest.raises(io.InputError) as in_a_worker:     # raised in a loader worker: still its own one line
        list(workers)
    assert str(in_a_worker.value) == str(refused.value)
    truncate(first.directory / "shard-000003.tar")       # a size that differs is still caught when opened
    cached(builds)
    assert len(builds) == 2


def test_a_shard_set_written_before_checksums_is_packed_again(caplog):
    builds = []
    first = cached(builds)
    io.checksum_path(first.directory / loaders.INDEX).unlink()
    with caplog.at_level(logging.WARNING, logger="compete"):
        cached(builds)
    assert len(builds) == 2
    assert "no checksum" in damaged_lines(caplog)[0]


def test_truncated_serengeti_shards_are_packed_again_and_read_whole(competition_data, caplog):
    """The issue's case (truncated shards in the cache made every later `fit` fail, in
    a loader worker's traceback): serengeti's prepare step, as `fit` calls it, packs
    them again with one line, and the stream its training reads is whole. (Through
    prepare_shards rather than two CLI fits: the same path in seconds, not a minute.)"""
    from competitions import REGISTRY
    from competitions.serengeti import data as serengeti_data
    from competitions.serengeti import prepare

    data = REGISTRY.competition("serengeti").load(competition_data("serengeti"))
    frames = data.train.merge(data.labels, on=serengeti_data.ID, how="left")
    first = prepare.prepare_shards(frames, data.root, "train")
    keys = sorted(key for key, _, _ in loaders.read_shards(first))
    for shard in first.shards:
        truncate(shard)
    with caplog.at_level(logging.WARNING, logger="compete"):
        again = prepare.prepare_shards(frames, data.root, "train")
    (line,) = damaged_lines(caplog)
    assert "shard-000000.tar" in line and "truncated" in line
    from competitions.serengeti import model as serengeti_model
    stream = loaders.StreamLoader(loaders.ShardStream(again, with_keys=True, buffer_size=8, transform=serengeti_model.plain),
                                  batch_size=4)
    assert sorted(key for _, _, batch in stream for key in batch) == keys
