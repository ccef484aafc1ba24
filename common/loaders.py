"""Streaming batch loading for data larger than memory: tar shards, shard + buffer
shuffling, class balancing, worker/rank splitting and exact mid-epoch resume.

Generic: a sample is (key, array, label) - an image, a log-mel crop, anything that is
a numpy array - so every media competition shares this module.

API (stable; later changes are additive only)

    write_shards(samples, out_dir, samples_per_shard=1000, metadata=None, progress=False) -> ShardSet
        Pack an iterable of (key: str, array: np.ndarray, label: int | np.ndarray)
        into webdataset tar shards `out_dir/shard-000000.tar ...`, plus `index.json`
        (shard names and counts, metadata) and `labels.npy` (every label, shard order,
        read memory-mapped for balancing). Same samples, same bytes.
    pack_shard(number, samples) -> (tar bytes, labels); write_shard(out_dir, number, bytes, labels);
    finish_shards(out_dir, [(name, labels), ...], metadata) -> ShardSet
        The same in pieces, so shards can be packed anywhere (a Dask worker) and
        written here: each shard is a pure function of its own samples.
    pack_groups(out_dir, groups, pack_group, metadata=None, workers=4, progress=False, **shared) -> ShardSet
        One shard a group, `pack_group(group, pool=..., **shared)` -> (tar bytes, labels,
        unreadable): on the Dask cluster under --scheduler (common.parallel; a worker
        returns its shard's bytes, so no disk is shared), else here with a process pool
        for the group's decoding. The same bytes either way; the groups' unreadable
        items are listed in the metadata (a set of none raises NothingReadable).
    cached_shards(name, fingerprint, samples=None, build=None, **write_kwargs) -> ShardSet
        `write_shards` (or `build(directory)`) into `io.cache_dir("shards", name,
        fingerprint)` unless a complete set is already there; an interrupted prepare is
        never mistaken for a complete one. Under torchrun rank 0 packs, the others wait.
    ShardSet(directory_or_url)            .count, .shards, .metadata, .labels (memmap)
        A URL (https://host/set, s3://bucket/set where fsspec's backend is installed)
        streams each shard as it is read, never downloading the set first.
    read_shards(shard_set) -> iterator of (key, array, label) in written order.
    ShardStream(shard_set, shuffle=True, buffer_size=1000, interleave=4, seed=0,
                balance=0.0, transform=None, with_keys=False, rank=None, world_size=None,
                equalize=None)
        A torch IterableDataset yielding (x, label) or (x, label, key), where
        x = transform(array, rng) (default: torch.from_numpy(array)) and `rng` is a
        numpy Generator fixed by (seed, epoch, stream, position), so augmentation
        replays exactly after a resume. `balance` p > 0 repeats or drops samples with
        weight ~ frequency(rarest positive class) ** -p (0.5: square root, 1: inverse),
        keeping the epoch length about the same; `equalize` (default: on under DDP
        for a shuffled stream) cuts every stream to the shortest so ranks never wait
        on each other. rank and world_size default to the process group's
        (common.distributed), read when the stream is used.
    StreamLoader(stream, batch_size, num_workers=0, **DataLoader kwargs)
        A torch DataLoader over a ShardStream with an exact len(), set_epoch(epoch),
        state_dict() -> {"epoch", "batches"} and load_state_dict(state): the next
        iteration resumes after the batches already consumed, same batches in the
        same order as an uninterrupted epoch (same num_workers and world size).

How shuffling works: each (rank, worker) stream owns every k-th shard of an order
permuted per epoch; it reads `interleave` shards at once, round robin, into a buffer
of `buffer_size` samples and emits a random member whenever the buffer is full. Memory
is the buffer (plus one open tar member per interleaved shard), whatever the data set
size. The emission order is a pure function of (seed, epoch, stream), so resuming
replays the plan as integers - no data is read for the part already consumed - and
re-reads only the shards that still had samples in the buffer.
"""
from __future__ import annotations

import functools
import io as _io
import json
import math
import random
import shutil
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from common import distributed, io

INDEX = "index.json"
LABELS = "labels.npy"
FORMAT = "compete-shards/1"


# ---------------------------------------------------------------- writing shards

def write_shards(samples: Iterable[tuple[str, np.ndarray, Any]], out_dir: Path | str, samples_per_shard: int = 1000,
                 metadata: dict | None = None, progress: bool = False, total: int | None = None) -> "ShardSet":
    """Pack (key, array, label) samples into tar shards; see the module docstring."""
    from itertools import islice

    from common.progress import tqdm  # a bar on a terminal, plain lines in a log

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = iter(tqdm(samples, total=total, desc="packing shards", disable=not progress, unit="sample"))
    packed = []
    while group := list(islice(samples, samples_per_shard)):
        packed.append(write_shard(out_dir, len(packed), *pack_shard(len(packed), group)))
    return finish_shards(out_dir, packed, metadata)


def pack_shard(number: int, samples: Iterable[tuple[str, np.ndarray, Any]]) -> tuple[bytes, list[np.ndarray]]:
    """Shard `number` of a set, as tar bytes, and its samples' labels. A pure function
    of its samples: packed here or on a Dask worker, the same bytes."""
    import webdataset as wds

    buffer, labels = _io.BytesIO(), []
    # a fixed integer mtime: same samples, same bytes, and no pax header per member
    # (a float mtime makes tarfile write one, tripling the parsing cost on read)
    with wds.TarWriter(buffer, mtime=0) as writer:
        for offset, (key, array, label) in enumerate(samples):
            label_array = np.asarray(label)
            writer.write({"__key__": f"{number:06d}{offset:06d}", "npy": np.ascontiguousarray(array),
                          "label.npy": label_array, "key.txt": str(key)})
            labels.append(label_array)
    return buffer.getvalue(), labels


def write_shard(out_dir: Path, number: int, content: bytes, labels: list[np.ndarray]) -> tuple[str, list[np.ndarray]]:
    """Write shard `number` packed by `pack_shard` into `out_dir`; (name, labels) for
    `finish_shards`. An empty shard (every sample of its group unreadable) is skipped."""
    name = f"shard-{number:06d}.tar"
    if labels:
        io.write_checked(Path(out_dir) / name, content)  # its sha256 goes into the index (finish_shards)
    return name, labels


def finish_shards(out_dir: Path | str, packed: list[tuple[str, list[np.ndarray]]], metadata: dict | None = None) -> "ShardSet":
    """labels.npy and, last, index.json for shards written by `write_shard`, in order."""
    out_dir = Path(out_dir)
    packed = [(name, labels) for name, labels in packed if labels]
    if not packed:
        raise io.InputError(f"{out_dir}: no samples to pack")
    stacked = np.stack([label for _, labels in packed for label in labels])
    labels_digest, labels_size = io.write_checked(out_dir / LABELS, lambda handle: np.save(handle, stacked))
    shards = [{"name": name, "count": len(labels), "size": (out_dir / name).stat().st_size,
               "sha256": io.recorded_checksum(out_dir / name)} for name, labels in packed]
    index = {"format": FORMAT, "count": len(stacked), "shards": shards, "label_shape": list(stacked.shape[1:]),
             "label_dtype": str(stacked.dtype), "labels": {"size": labels_size, "sha256": labels_digest},
             "metadata": metadata or {}}
    # index.json last: its presence marks a complete set; its own checksum beside it
    io.write_checked(out_dir / INDEX, (json.dumps(index, indent=1) + "\n").encode())
    return ShardSet(out_dir)


class NothingReadable(io.InputError):
    """No group of `pack_groups` had one readable sample; `unreadable` lists what the
    groups said of each item, for the caller's own one line."""

    def __init__(self, message: str, unreadable: list):
        super().__init__(message)
        self.unreadable = unreadable


def pack_groups(out_dir: Path | str, groups: Iterable, pack_group: Callable, metadata: dict | None = None,
                workers: int = 4, progress: bool = False, **shared) -> "ShardSet":
    """Shard number k from groups[k] (a group starts with its number, for pack_shard)
    by `pack_group(group, pool=None, **shared)` -> (tar bytes, labels, unreadable), on
    the Dask cluster when common.parallel has one (each worker returns the tar's bytes,
    so no shared disk is needed; `shared` is sent once) and here otherwise, where `pool`
    is a process pool of `workers` (None for workers <= 1) the group may decode on.
    Written in group order; a group none of whose samples could be read is no shard.
    As serengeti's frames and the generic images are packed (one copy of the engine
    choice)."""
    import contextlib
    from concurrent.futures import ProcessPoolExecutor

    from common import parallel
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log

    groups = list(groups)
    unreadable, packed = [], []
    with contextlib.ExitStack() as stack:
        if parallel.active():
            results = parallel.map_chunks(pack_group, groups, **shared)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers)) if workers > 1 else None
            results = (pack_group(group, pool=pool, **shared) for group in groups)
        for number, (content, labels, bad) in enumerate(tqdm(results, total=len(groups), desc="packing shards",
                                                             disable=not progress, unit="shard")):
            packed.append(write_shard(out_dir, number, content, labels))
            unreadable += bad
    if not any(labels for _, labels in packed):
        raise NothingReadable(f"{out_dir}: no samples to pack ({len(unreadable)} unreadable)", unreadable)
    return finish_shards(out_dir, packed, metadata={**(metadata or {}), "unreadable": unreadable})


def cached_shards(name: str, fingerprint: str, samples: Callable[[], Iterable] | Iterable | None = None,
                  build: Callable[[Path], "ShardSet"] | None = None, **write_kwargs) -> "ShardSet":
    """Shards for `fingerprint` (e.g. io.hash_files of the inputs plus the resize
    settings), packed once into the cache and reused after: `write_shards(samples)`,
    or `build(directory)` for a packer of its own (e.g. one shard a Dask task)."""
    target = io.cache_dir("shards", name) / fingerprint
    if not distributed.is_main():
        # under torchrun rank 0 packs and the others wait for it (a shared cache is assumed;
        # across machines without one, serve the shards at a URL)
        distributed.barrier()
        return ShardSet(target)
    try:
        return _pack_once(target, fingerprint, build or (lambda building: write_shards(
            samples() if callable(samples) else samples, building, **write_kwargs)))
    finally:
        distributed.barrier()


VERIFY_AT_OPEN = 4 * 10 ** 9  # bytes of shards hashed when a cached set is opened: ~4 s from the page cache (1 GB in 0.8-1.0 s at load 4)


def damage(directory: Path | str) -> str | None:
    """Why a cached shard set cannot be used, or None. The index against its checksum,
    labels.npy and every shard against the size and sha256 the index records; a set
    over VERIFY_AT_OPEN bytes has its shards' sizes checked here and each shard's
    sha256 checked by the reader before any of its samples is used."""
    directory = Path(directory)
    why = io.damage(directory / INDEX)
    if why is not None:
        return f"{INDEX}: {why}"
    index = json.loads((directory / INDEX).read_bytes())
    if "labels" not in index or any("sha256" not in shard for shard in index["shards"]):
        return f"{INDEX} records no checksums (written by an older compete)"
    why = io.damage(directory / LABELS, index["labels"]["sha256"], index["labels"]["size"])
    if why is not None:
        return f"{LABELS}: {why}"
    for shard in index["shards"]:
        path = directory / shard["name"]
        if not path.is_file():
            return f"{shard['name']}: missing"
        if path.stat().st_size != shard["size"]:
            return f"{shard['name']}: {path.stat().st_size} bytes where {shard['size']} were written (truncated or overwritten)"
    if sum(shard["size"] for shard in index["shards"]) <= VERIFY_AT_OPEN:
        for shard in index["shards"]:
            why = io.damage(directory / shard["name"], shard["sha256"], shard["size"])
            if why is not None:
                return f"{shard['name']}: {why}"
    return None


def _pack_once(target: Path, fingerprint: str, build: Callable[[Path], "ShardSet"]) -> "ShardSet":
    if (target / INDEX).is_file():
        why = damage(target)
        if why is None:
            return ShardSet(target)
        io.rebuilding(target, why)
        shutil.rmtree(target, ignore_errors=True)
    with io.atomic_folder(target) as building:
        build(building)
    return ShardSet(target)


def is_url(location) -> bool:
    """A remote location (http://, https://, s3://, gs://, ...) rather than a local path."""
    return "://" in str(location) and not str(location).startswith("file://")


def _open(location: Path | str):
    """A binary stream over a local file or a URL, read as it is consumed: never a
    full download. http(s), sftp, scp and gs go through webdataset's gopen (curl,
    gsutil), anything else through fsspec where its backend is installed (s3fs, ...)."""
    if not is_url(location):
        return open(location, "rb", buffering=1 << 20)
    from urllib.parse import urlparse

    from webdataset.gopen import gopen, gopen_schemes

    if urlparse(str(location)).scheme in gopen_schemes:
        return gopen(str(location), "rb", bufsize=1 << 20)
    import fsspec
    try:
        return fsspec.open(str(location), "rb").open()
    except (ImportError, ValueError) as error:
        raise io.InputError(f"{location}: cannot open ({error}); install the fsspec backend for this scheme") from None


def _read_all(location: Path | str) -> bytes:
    try:
        with _open(location) as handle:
            content = handle.read()
    except io.InputError:
        raise
    except Exception:  # curl's exit status (a 404, a refused connection), an object store's error
        content = b""
    if not content:
        raise io.InputError(f"{location}: cannot read (absent, empty or unreachable)")
    return content


class ShardSet:
    """A directory written by `write_shards`, local or at a URL (its files served
    as they are, e.g. by any static web server or an object store)."""

    def __init__(self, directory: Path | str):
        self.remote = is_url(directory)
        self.location = str(directory).rstrip("/") if self.remote else str(Path(directory))
        self.directory = None if self.remote else Path(directory)
        path = f"{self.location}/{INDEX}" if self.remote else self.directory / INDEX
        if not self.remote and not path.is_file():
            raise io.InputError(f"{self.directory}: not a shard set (no {INDEX}; was the prepare step interrupted?)")
        content = _read_all(path) if self.remote else path.read_bytes()
        try:
            index = json.loads(content)
        except ValueError:
            raise io.InputError(f"{path}: not a shard index (unreadable JSON)") from None
        if index.get("format") != FORMAT:
            raise io.InputError(f"{path}: unknown shard format {index.get('format')!r}, expected {FORMAT}")
        self.shards: list[Path | str] = [f"{self.location}/{shard['name']}" if self.remote else self.directory / shard["name"]
                                         for shard in index["shards"]]
        self.counts = np.array([shard["count"] for shard in index["shards"]], dtype=np.int64)
        self.checksums: list[str | None] = [shard.get("sha256") for shard in index["shards"]]
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.count = int(index["count"])
        self.metadata = index.get("metadata", {})
        self._labels = None

    @property
    def labels(self) -> np.ndarray:
        """Every label in shard order, memory-mapped."""
        if self._labels is None:
            if self.remote:  # one small file: read whole
                self._labels = np.load(_io.BytesIO(_read_all(f"{self.location}/{LABELS}")))
            else:
                self._labels = np.load(self.directory / LABELS, mmap_mode="r")
        return self._labels

    def __len__(self) -> int:
        return self.count

    @classmethod
    def union(cls, sets: Sequence["ShardSet"]) -> "ShardSet":
        """Every shard of `sets` as one set, in their order (e.g. a final fit on the
        training shards and the held-out ones), without copying a shard."""
        if len({shard_set.remote for shard_set in sets}) != 1:
            raise ValueError("a union of local and remote shard sets")
        joined = cls.__new__(cls)
        joined.remote, joined.directory = sets[0].remote, None
        joined.location = " + ".join(shard_set.location for shard_set in sets)
        joined.shards = [shard for shard_set in sets for shard in shard_set.shards]
        joined.checksums = [digest for shard_set in sets for digest in shard_set.checksums]
        joined.counts = np.concatenate([shard_set.counts for shard_set in sets])
        joined.starts = np.concatenate([[0], np.cumsum(joined.counts)[:-1]]).astype(np.int64)
        joined.count = int(sum(shard_set.count for shard_set in sets))
        joined.metadata = sets[0].metadata
        joined._labels = np.concatenate([np.asarray(shard_set.labels) for shard_set in sets])
        return joined

    def members(self, shard: int) -> Iterator[tuple[bytes, bytes, str]]:
        """Shard number `shard`'s samples, undecoded. A local shard is checked against
        the sha256 its index records before any sample of it is yielded (one more read
        of a file the page cache then holds: ~20 ms for 33 MB)."""
        path, digest = self.shards[shard], self.checksums[shard]
        if not self.remote and digest is not None and io.sha256(path) != digest:
            raise io.InputError(f"{path}: damaged cache shard (its bytes differ from their checksum); "
                                f"run `compete cache clear` and the same command again")
        return _shard_members(path)

    def __repr__(self) -> str:
        return f"ShardSet({self.location!r}, {self.count} samples in {len(self.shards)} shards)"


def _shard_members(path: Path | str) -> Iterator[tuple[bytes, bytes, str]]:
    """(array bytes, label bytes, key) of each sample of one shard, in order, undecoded."""
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    with _open(path) as handle:
        files = (dict(member, __url__=str(path)) for member in tar_file_iterator(handle))
        for sample in group_by_keys(files):
            yield sample["npy"], sample["label.npy"], sample["key.txt"].decode("utf-8")


_HEADERS: dict[bytes, tuple] = {}


def _decode(raw: bytes) -> np.ndarray:
    """An .npy member as a writable array. The header (dtype, shape) of every sample of
    a shard is usually the same: parse each distinct one once, as np.load would parse
    it per sample through ast.literal_eval."""
    major = raw[6]
    size_bytes = 2 if major == 1 else 4
    end = 8 + size_bytes + int.from_bytes(raw[8:8 + size_bytes], "little")
    header = raw[:end]
    parsed = _HEADERS.get(header)
    if parsed is None:
        if len(_HEADERS) > 4096:
            _HEADERS.clear()
        stream = _io.BytesIO(header)
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(stream)
        if dtype.hasobject:
            raise ValueError("object arrays are not stored in shards")
        parsed = _HEADERS[header] = (shape, fortran, dtype)
    shape, fortran, dtype = parsed
    array = np.frombuffer(bytearray(raw[end:]), dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")


def read_shards(shard_set: ShardSet | Path | str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Every sample in written order: (key, array, label)."""
    shard_set = shard_set if isinstance(shard_set, ShardSet) else ShardSet(shard_set)
    for number in range(len(shard_set.shards)):
        for array, label, key in shard_set.members(number):
            yield key, _decode(array), _decode(label)


# ---------------------------------------------------------------- the plan

def sample_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Per-sample weight frequency(rarest positive class) ** -power, mean 1.

    Labels are class indices (n,) or multi-hot rows (n, classes); a row with no
    positive class counts as a class of its own."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        classes = labels.astype(np.int64)
        frequency = np.bincount(classes) / len(classes)
        weights = frequency[classes] ** -power
    else:
        positive = labels.reshape(len(labels), -1) > 0
        none = ~positive.any(axis=1)
        frequency = np.append(positive.mean(axis=0), none.mean())
        rarity = np.where(np.concatenate([positive, none[:, None]], axis=1), frequency ** -power, 0.0)
        weights = rarity.max(axis=1)
    return weights / weights.mean()


class _Plan:
    """The order one stream reads and emits samples in, as integers (shard, offset).

    Events are ("read", shard, offset) and ("emit", shard, offset); a pure function of
    the shard list, their repeat counts, the buffer size and the seed."""

    def __init__(self, shards: list[int], counts: np.ndarray, repeats: Callable[[int], np.ndarray | None],
                 buffer_size: int, interleave: int, seed: int):
        self.pending = deque(shards)
        self.counts = counts
        self.repeats = repeats
        self.buffer_size = max(1, buffer_size)
        self.interleave = max(1, interleave)
        self.random = random.Random(seed)
        self.open: deque = deque()  # [shard, next offset, repeats]
        self.buffer: list[tuple[int, int]] = []

    def _fill_open(self):
        while len(self.open) < self.interleave and self.pending:
            shard = self.pending.popleft()
            if self.counts[shard]:
                self.open.append([shard, 0, self.repeats(shard)])

    def events(self) -> Iterator[tuple[str, int, int, int]]:
        """("read", shard, offset, copies) and ("emit", shard, offset, 0) in order."""
        self._fill_open()
        while self.open:
            entry = self.open[0]
            shard, offset, repeats = entry
            entry[1] += 1
            self.open.rotate(-1)
            if entry[1] == self.counts[shard]:
                self.open.remove(entry)
                self._fill_open()
            copies = 1 if repeats is None else int(repeats[offset])
            yield "read", shard, offset, copies
            self.buffer.extend([(shard, offset)] * copies)
            while len(self.buffer) >= self.buffer_size:
                yield ("emit", *self._pop(), 0)
        while self.buffer:
            yield ("emit", *self._pop(), 0)

    def _pop(self) -> tuple[int, int]:
        position = self.random.randrange(len(self.buffer))
        self.buffer[position], self.buffer[-1] = self.buffer[-1], self.buffer[position]
        return self.buffer.pop()


class ShardStream(IterableDataset):
    """Samples of a ShardSet, streamed; see the module docstring."""

    def __init__(self, shard_set: ShardSet | Path | str, shuffle: bool = True, buffer_size: int = 1000, interleave: int = 4,
                 seed: int = 0, balance: float = 0.0, transform: Callable[[np.ndarray, np.random.Generator], Any] | None = None,
                 with_keys: bool = False, rank: int | None = None, world_size: int | None = None, equalize: bool | None = None):
        super().__init__()
        self.shard_set = shard_set if isinstance(shard_set, ShardSet) else ShardSet(shard_set)
        self.shuffle, self.seed, self.balance = shuffle, seed, balance
        self.buffer_size = buffer_size if shuffle else 1
        self.interleave = interleave if shuffle else 1
        self.transform, self.with_keys = transform, with_keys
        # None: the process group's, read when the stream is used (it may be built
        # before the trainer joins the group)
        self._rank, self._world_size, self._equalize = rank, world_size, equalize
        self.epoch = 0
        self.workers = 1          # set by StreamLoader to its num_workers
        self.skip: dict[int, int] = {}   # stream -> samples already consumed (resume)
        self.rotation = 0         # which stream the first worker serves (resume)
        self._weights = None

    @property
    def rank(self) -> int:
        return self._rank if self._rank is not None else distributed.rank()

    @property
    def world_size(self) -> int:
        return self._world_size if self._world_size is not None else distributed.world_size()

    @property
    def equalize(self) -> bool:
        # A shuffled (training) stream drives DDP's gradient all-reduce: every rank must
        # yield as many batches. An ordered one (validation, prediction) keeps every sample.
        return self._equalize if self._equalize is not None else (self.world_size > 1 and self.shuffle)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # -- which shards each stream owns
    def _streams(self) -> int:
        return self.world_size * self.workers

    def _strided(self) -> bool:
        # Fewer shards than streams (a small set on many processes): every stream reads
        # every shard and keeps every k-th sample, instead of some streams getting none.
        return len(self.shard_set.shards) < self._streams()

    def _shards_of(self, stream: int) -> list[int]:
        order = np.arange(len(self.shard_set.shards))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 1]).permutation(order)
        return [int(shard) for shard in (order if self._strided() else order[stream::self._streams()])]

    def _stream_repeats(self, stream: int, shard: int) -> np.ndarray | None:
        """How many times each sample of `shard` is emitted by `stream` (None: once)."""
        repeats = self._repeats(shard)
        if not self._strided():
            return repeats
        owned = (self.shard_set.starts[shard] + np.arange(self.shard_set.counts[shard])) % self._streams() == stream
        return owned.astype(np.int64) if repeats is None else repeats * owned

    def _repeats(self, shard: int) -> np.ndarray | None:
        if not self.balance:
            return None
        if self._weights is None:
            self._weights = sample_weights(self.shard_set.labels, self.balance)
        start = self.shard_set.starts[shard]
        weights = self._weights[start:start + self.shard_set.counts[shard]]
        draws = np.random.default_rng([self.seed, self.epoch, 2, shard]).random(len(weights))
        return (np.floor(weights) + (draws < weights - np.floor(weights))).astype(np.int64)

    def _natural_length(self, stream: int) -> int:
        shards = self._shards_of(stream)
        if not self.balance and not self._strided():
            return int(self.shard_set.counts[shards].sum())
        return int(sum(self._stream_repeats(stream, shard).sum() for shard in shards))

    def stream_lengths(self) -> list[int]:
        """Samples each of this rank's worker streams yields this epoch."""
        mine = [self.rank * self.workers + worker for worker in range(self.workers)]
        if not self.equalize:
            return [self._natural_length(stream) for stream in mine]
        shortest = min(self._natural_length(stream) for stream in range(self._streams()))
        return [shortest] * self.workers

    def __len__(self) -> int:
        return sum(self.stream_lengths())

    def _plan(self, stream: int) -> _Plan:
        return _Plan(self._shards_of(stream), self.shard_set.counts, functools.partial(self._stream_repeats, stream),
                     self.buffer_size, self.interleave,
                     seed=int(np.random.SeedSequence([self.seed, self.epoch, stream, 3]).generate_state(1)[0]))

    def __iter__(self):
        info = get_worker_info()
        slot = info.id if info is not None else 0
        if info is not None and info.num_workers != self.workers:
            raise RuntimeError(f"ShardStream planned for {self.workers} worker(s) but runs in {info.num_workers}: use StreamLoader")
        worker = (slot + self.rotation) % self.workers
        stream = self.rank * self.workers + worker
        length = self.stream_lengths()[worker]
        yield from self._samples(stream, length, self.skip.get(worker, 0))

    def _samples(self, stream: int, length: int, skip: int):
        plan = self._plan(stream)
        events = plan.events()
        emitted = 0
        cursors: dict[int, int] = {}
        # Fast-forward the plan past what was consumed before a resume: integers only.
        if skip:
            for kind, shard, offset, _ in events:
                if kind == "read":
                    cursors[shard] = offset + 1
                else:
                    emitted += 1
                    if emitted == skip:
                        break
        readers: dict[int, Iterator] = {}
        held: dict[tuple[int, int], list] = {}  # (shard, offset) -> [array bytes, label bytes, key, uses left]
        if skip:
            # Re-read only what the buffer still held at the resume point, and
            # reposition the shards that were open.
            wanted: dict[int, set[int]] = {}
            for shard, offset in plan.buffer:
                wanted.setdefault(shard, set()).add(offset)
            for shard in sorted(set(wanted) | {entry[0] for entry in plan.open}):
                reader = self.shard_set.members(shard)
                for offset in range(cursors.get(shard, 0)):
                    member = next(reader)
                    if offset in wanted.get(shard, ()):
                        held[(shard, offset)] = [*member, 0]
                readers[shard] = reader
            for item in plan.buffer:
                held[item][3] += 1
        for kind, shard, offset, copies in events:
            if emitted >= length:
                return
            if kind == "read":
                if shard not in readers:
                    readers[shard] = self.shard_set.members(shard)
                member = next(readers[shard])
                if copies:
                    held[(shard, offset)] = [*member, copies]
                continue
            entry = held[(shard, offset)]
            entry[3] -= 1
            if not entry[3]:
                del held[(shard, offset)]
            yield self._make(entry, np.random.default_rng([self.seed, self.epoch, stream, emitted]))
            emitted += 1

    def _make(self, entry, rng):
        array, label = _decode(entry[0]), _decode(entry[1])
        x = self.transform(array, rng) if self.transform is not None else torch.from_numpy(array)
        y = torch.from_numpy(np.ascontiguousarray(label)) if label.ndim else torch.tensor(label.item())
        return (x, y, entry[2]) if self.with_keys else (x, y)


class StreamLoader(DataLoader):
    """A DataLoader over a ShardStream that knows its length and resumes mid-epoch."""

    def __init__(self, stream: ShardStream, batch_size: int, num_workers: int = 0, **kwargs):
        super().__init__(stream, batch_size=batch_size, num_workers=num_workers, **kwargs)
        stream.workers = max(1, num_workers)
        self.epoch = 0
        self.batches = 0          # consumed in the current epoch
        self._resume_at = 0

    def _stream_batches(self) -> list[int]:
        return [math.ceil(length / self.batch_size) for length in self.dataset.stream_lengths()]

    def __len__(self) -> int:
        return sum(self._stream_batches())

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.batches, self._resume_at = epoch, 0, 0
        self.dataset.set_epoch(epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(int(state["epoch"]))
        self.batches = self._resume_at = int(state["batches"])

    def __iter__(self):
        stream = self.dataset
        skip_batches, rotation = _consumed_per_stream(self._stream_batches(), self._resume_at)
        stream.skip = {worker: batches * self.batch_size for worker, batches in skip_batches.items()}
        stream.rotation = rotation
        self.batches = self._resume_at
        try:
            for batch in super().__iter__():
                self.batches += 1
                yield batch
        except io.InputError as error:
            # from a loader worker torch raises it again with the worker's traceback as its
            # message: keep the error's own line
            raise type(error)(_own_line(str(error))) from None
        finally:
            stream.skip, stream.rotation = {}, 0
        # a finished epoch resumes at its start if iterated again
        self._resume_at = 0
        self.batches = 0


def _own_line(message: str) -> str:
    """The error's own message out of the text torch gives an error raised in a worker
    ("Caught InputError in DataLoader worker process 0. Original Traceback ...")."""
    if "Original Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    return last.split("Error: ", 1)[1] if "Error: " in last else last


def _consumed_per_stream(batches: list[int], consumed: int) -> tuple[dict[int, int], int]:
    """How many batches each worker stream had delivered after `consumed` batches, and
    which stream comes next. A DataLoader takes one batch from each worker in turn and
    passes over a worker that has run dry."""
    done = {worker: 0 for worker in range(len(batches))}
    order = [worker for round_ in range(max(batches, default=0)) for worker in range(len(batches)) if round_ < batches[worker]]
    for worker in order[:consumed]:
        done[worker] += 1
    following = order[consumed] if consumed < len(order) else 0
    return done, following
