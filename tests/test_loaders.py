"""common.loaders: shards round-trip, shuffle quality, worker/rank split, balance, resume."""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
import torch

from common import io
from common.loaders import ShardSet, ShardStream, StreamLoader, cached_shards, read_shards, sample_weights, write_shards


def make_samples(count: int, multi_label: bool = True):
    rng = np.random.default_rng(0)
    for index in range(count):
        array = rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)
        label = (rng.random(4) < [0.6, 0.2, 0.1, 0.02]).astype(np.uint8) if multi_label else np.int64(index % 3)
        yield f"dir/sample.{index}.JPG", array, label


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    # 20 shards of 50: shard of a sample = index // 50
    return write_shards(make_samples(1000), tmp_path_factory.mktemp("shards"), samples_per_shard=50)


def shard_of(key: str) -> int:
    return int(key.split(".")[1]) // 50


def test_round_trip_keeps_keys_arrays_labels_and_order(tmp_path):
    original = list(make_samples(120))
    shard_set = write_shards(original, tmp_path / "a", samples_per_shard=50)
    assert len(shard_set.shards) == 3 and shard_set.count == 120
    back = list(read_shards(tmp_path / "a"))
    assert [k for k, _, _ in back] == [k for k, _, _ in original]  # keys with dots and slashes survive
    for (_, array, label), (_, array0, label0) in zip(back, original):
        assert array.dtype == np.uint8 and np.array_equal(array, array0) and np.array_equal(label, label0)
    assert np.array_equal(shard_set.labels, np.stack([label for _, _, label in original]))
    # same samples, same bytes
    write_shards(original, tmp_path / "b", samples_per_shard=50)
    digest = lambda d: [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())]
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_a_union_streams_every_sample_of_its_sets(tmp_path):
    samples = list(make_samples(130))
    both = ShardSet.union([write_shards(samples[:70], tmp_path / "a", samples_per_shard=30),
                           write_shards(samples[70:], tmp_path / "b", samples_per_shard=30)])
    assert both.count == 130 and both.counts.tolist() == [30, 30, 10, 30, 30] and both.starts.tolist() == [0, 30, 60, 70, 100]
    names = [key for key, _, _ in samples]
    assert [key for key, _, _ in read_shards(both)] == names                                  # every sample, in order
    assert np.array_equal(both.labels, np.stack([label for _, _, label in samples]))
    shuffled = keys_of(StreamLoader(ShardStream(both, seed=1, with_keys=True), batch_size=32))
    assert sorted(shuffled) == sorted(names) and shuffled != names
    balanced = keys_of(StreamLoader(ShardStream(both, seed=1, with_keys=True, balance=1.0), batch_size=32))
    assert abs(len(balanced) - 130) <= 5 and set(balanced) < set(names)   # the labels of both sets weigh the draw


def test_integer_labels_round_trip(tmp_path):
    shard_set = write_shards(make_samples(10, multi_label=False), tmp_path, samples_per_shard=4)
    labels = [int(label) for _, _, label in read_shards(shard_set)]
    assert labels == [i % 3 for i in range(10)]
    _, y = next(iter(StreamLoader(ShardStream(shard_set, shuffle=False), batch_size=10)))
    assert y.tolist() == labels


def test_incomplete_set_is_refused(tmp_path):
    write_shards(make_samples(10), tmp_path, samples_per_shard=4)
    (tmp_path / "index.json").unlink()
    with pytest.raises(io.InputError, match="not a shard set"):
        ShardSet(tmp_path)


def test_cached_shards_are_built_once_and_never_half(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPETE_CACHE", str(tmp_path))
    calls = []

    def broken():
        yield from list(make_samples(5))
        raise RuntimeError("killed while packing")

    with pytest.raises(RuntimeError):
        cached_shards("t", "abc", broken, samples_per_shard=2)
    assert not (tmp_path / "shards" / "t" / "abc").exists()

    def samples():
        calls.append(1)
        return make_samples(7)

    first = cached_shards("t", "abc", samples, samples_per_shard=2)
    second = cached_shards("t", "abc", samples, samples_per_shard=2)
    assert first.count == second.count == 7 and len(calls) == 1


def keys_of(loader) -> list[str]:
    return [key for batch in loader for key in batch[2]]


def test_shuffle_mixes_shards_and_changes_per_epoch(shards):
    stream = ShardStream(shards, buffer_size=200, interleave=4, seed=1, with_keys=True)
    loader = StreamLoader(stream, batch_size=25)
    first = keys_of(loader)
    assert sorted(first) == sorted(f"dir/sample.{i}.JPG" for i in range(1000))  # every sample once
    runs, longest, previous = 1, 1, None
    for key in first:
        runs = runs + 1 if shard_of(key) == previous else 1
        longest, previous = max(longest, runs), shard_of(key)
    assert longest <= 8, f"{longest} samples of one shard in a row"
    # the first 100 samples come from many shards, not from the first one read
    assert len({shard_of(k) for k in first[:100]}) >= 6
    loader.set_epoch(1)
    second = keys_of(loader)
    assert second != first and sorted(second) == sorted(first)
    # and the order is a function of (seed, epoch): the same again
    loader.set_epoch(0)
    assert keys_of(loader) == first


def test_no_shuffle_is_the_written_order(shards):
    keys = keys_of(StreamLoader(ShardStream(shards, shuffle=False, with_keys=True), batch_size=64))
    assert keys == [f"dir/sample.{i}.JPG" for i in range(1000)]


def test_ranks_and_workers_split_the_shards_without_overlap(shards):
    seen = []
    lengths = []
    for rank in range(2):
        stream = ShardStream(shards, buffer_size=50, seed=3, with_keys=True, rank=rank, world_size=2)
        loader = StreamLoader(stream, batch_size=16, num_workers=2)
        batches = [list(batch[2]) for batch in loader]
        keys = [key for batch in batches for key in batch]
        assert len(keys) == len(stream) and len(batches) == len(loader)
        seen += keys
        lengths.append(len(keys))
    assert len(seen) == len(set(seen))
    assert lengths[0] == lengths[1]  # equalized under DDP, so no rank waits for another
    assert len(seen) >= 900


def test_fewer_shards_than_streams_split_by_sample_so_no_rank_starves(tmp_path):
    few = write_shards(make_samples(103), tmp_path, samples_per_shard=60)  # 2 shards, 4 streams
    seen, lengths = [], []
    for rank in range(2):
        loader = StreamLoader(ShardStream(few, buffer_size=20, seed=1, with_keys=True, rank=rank, world_size=2),
                              batch_size=8, num_workers=2)
        keys = [key for batch in loader for key in batch[2]]
        assert len(keys) == len(loader.dataset) and sum(1 for _ in loader) == len(loader)
        seen += keys
        lengths.append(len(keys))
    assert len(seen) == len(set(seen)) == 100 and lengths == [50, 50]  # 4 streams of 25 (103 cut to the shortest)
    everything = [key for rank in range(2) for batch in StreamLoader(
        ShardStream(few, shuffle=False, with_keys=True, rank=rank, world_size=2), batch_size=8) for key in batch[2]]
    assert sorted(everything) == sorted(f"dir/sample.{i}.JPG" for i in range(103))  # ordered streams keep every sample


def test_len_is_exact_with_workers(shards):
    loader = StreamLoader(ShardStream(shards, buffer_size=64, seed=0), batch_size=32, num_workers=2)
    assert sum(1 for _ in loader) == len(loader)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_gives_the_remaining_batches(shards, workers):
    def loader():
        return StreamLoader(ShardStream(shards, buffer_size=100, seed=5, with_keys=True,
                                        transform=lambda a, rng: torch.tensor(rng.random())), batch_size=32, num_workers=workers)

    reference = loader()
    reference.set_epoch(2)
    batches = [(list(b[2]), b[0]) for b in reference]
    for consumed in (1, 7, len(batches) - 1):
        resumed = loader()
        resumed.load_state_dict({"epoch": 2, "batches": consumed})
        rest = [(list(b[2]), b[0]) for b in resumed]
        assert [keys for keys, _ in rest] == [keys for keys, _ in batches[consumed:]]
        # augmentation randomness replays too
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(rest, batches[consumed:]))


def test_state_dict_counts_consumed_batches(shards):
    loader = StreamLoader(ShardStream(shards, buffer_size=50), batch_size=100)
    iterator = iter(loader)
    next(iterator), next(iterator)
    assert loader.state_dict() == {"epoch": 0, "batches": 2}


def test_balance_lifts_rare_classes_and_keeps_epoch_length(shards):
    plain = torch.cat([y for _, y in StreamLoader(ShardStream(shards, seed=0), batch_size=100)]).float().mean(0)
    stream = ShardStream(shards, seed=0, balance=1.0)
    balanced = torch.cat([y for _, y in StreamLoader(stream, batch_size=100)]).float().mean(0)
    assert balanced[3] > 3 * plain[3]          # the rarest class
    assert balanced[0] < plain[0]              # the commonest
    assert 800 <= len(stream) <= 1200


def test_sample_weights_favour_the_rarest_positive_class():
    labels = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 0]])
    weights = sample_weights(labels, 1.0)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[3] > weights[0] and weights[4] > weights[0]
    assert Counter(np.round(sample_weights(np.array([0, 0, 0, 1]), 1.0), 6))[round(weights.mean(), 6)] == 0
