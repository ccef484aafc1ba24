"""Dask for the data stages that grow with the data (a panel's features, a prediction
over every row, packing images into shards).

`compete run/fit/predict --scheduler ADDRESS` opens `using(ADDRESS)` around the stage;
the competition's code calls `map_chunks` and never learns which engine ran it.
Without a scheduler nothing is started and `map_chunks` runs in this process, chunk
after chunk: the single-machine path. Either way the results come back in the order
of the chunks, so a stage whose chunks are computed independently gives the same bytes
on one machine and on a cluster.

    using(address)          context manager: a distributed.Client on ADDRESS
                            ("tcp://host:8786", or a Client / LocalCluster object)
    active() -> bool        a cluster is in use; describe() says which, for the log
    map_chunks(function, chunks, **shared) -> iterator of results, in chunk order
        function(chunk, **shared) for each chunk; `shared` objects (a feature
        context, a model) are sent to every worker once, not once per chunk. At most
        `window` chunks are in flight, so memory stays flat however many there are.
    split(length, size) -> list of slices covering range(length)
"""
from __future__ import annotations

import contextlib
import logging
from collections import deque
from typing import Any, Callable, Iterable, Iterator

from common import io

log = logging.getLogger("compete")

_client = None


CONNECT_SECONDS = 30  # Dask retries a refused connection until then: a scheduler still starting gets that long


@contextlib.contextmanager
def using(address):
    """Run `map_chunks` on the Dask cluster at `address` inside the block. None: the
    single-machine path (nothing started)."""
    global _client
    if address is None:
        yield None
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise io.InputError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
    owned = isinstance(address, str)
    try:
        client = Client(address, timeout=CONNECT_SECONDS) if owned else (address if isinstance(address, Client) else Client(address))
    except (OSError, TimeoutError) as error:
        raise io.InputError(f"--scheduler {address}: cannot reach the Dask scheduler ({' '.join(str(error).split())[:160]})") from None
    previous, _client = _client, client
    try:
        yield client
    finally:
        _client = previous
        if owned or not isinstance(address, Client):
            client.close()


def active() -> bool:
    return _client is not None


def describe() -> str:
    """What runs the data stages, for the run's log."""
    if _client is None:
        return "this process (no --scheduler)"
    return f"Dask at {_client.scheduler.address}, {len(_client.scheduler_info().get('workers', {}))} worker(s)"


def split(length: int, size: int) -> list[slice]:
    size = max(1, int(size))
    return [slice(start, min(start + size, length)) for start in range(0, length, size)] or [slice(0, 0)]


def map_chunks(function: Callable, chunks: Iterable, window: int | None = None, **shared: Any) -> Iterator:
    """`function(chunk, **shared)` for each chunk, yielded in chunk order."""
    if _client is None:
        for chunk in chunks:
            yield function(chunk, **shared)
        return
    client = _client
    # one future a value: scatter([value]), as scatter(a tuple) would give a tuple of futures
    scattered = {name: client.scatter([value], broadcast=True, hash=False)[0] for name, value in shared.items()}
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = window or 2 * workers
    pending: deque = deque()
    try:
        for chunk in chunks:
            pending.append(client.submit(function, chunk, pure=False, **scattered))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        for future in scattered.values():
            future.release()
