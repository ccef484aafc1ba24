"""Loader memory: peak RSS of one streamed epoch as the data set grows 10x, against the
named baseline, a map-style Dataset holding the same arrays in memory. Each case runs
in a fresh process (ru_maxrss of the child), on 64x48x3 uint8 samples.

Target: the stream's peak stays flat (ratio ~1.0) while the baseline's grows ~10x.
Usage: python bench/loaders_memory.py [--samples N]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
import numpy as np, torch
from common.loaders import ShardSet, ShardStream, StreamLoader, read_shards
shards, mode = sys.argv[1], sys.argv[2]
if mode == "bare":
    loader = []
elif mode == "stream":
    loader = StreamLoader(ShardStream(shards, buffer_size=1000, interleave=4), batch_size=64, num_workers=0)
else:
    arrays = [(torch.from_numpy(a), torch.from_numpy(l)) for _, a, l in read_shards(shards)]
    loader = torch.utils.data.DataLoader(arrays, batch_size=64, shuffle=True)
count = sum(len(batch[0]) for batch in loader)
print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def make(directory: Path, count: int):
    import numpy as np
    sys.path.insert(0, str(ROOT))
    from common.loaders import write_shards
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)

    def samples():
        for index in range(count):
            yield f"s{index}", np.roll(base, index, axis=1), (rng.random(54) < 0.05).astype(np.uint8)

    write_shards(samples(), directory, samples_per_shard=1000)


def peak(shards: Path, mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), str(shards), mode],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=3000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        measure(Path(scratch), arguments.samples)


def measure(scratch: Path, samples: int):
    sizes = [samples, samples * 10]
    results = {}
    for size in sizes:
        make(scratch / str(size), size)
        for mode in ("stream", "in-memory"):
            results[mode, size] = peak(scratch / str(size), mode)
    bare = peak(scratch / str(sizes[0]), "bare")[1]
    for mode in ("in-memory", "stream"):
        small, large = results[mode, sizes[0]][1], results[mode, sizes[1]][1]
        label = "baseline map-style in memory" if mode == "in-memory" else "shard stream (buffer 1000)"
        print(f"{label:30s} peak RSS {small:6d} MB at {sizes[0]:6d} samples, {large:6d} MB at {sizes[1]:6d}: ratio {large / small:5.2f}x; "
              f"above the {bare} MB of torch itself: {small - bare} -> {large - bare} MB")
    data_mb = sum(p.stat().st_size for p in (scratch / str(sizes[1])).iterdir()) / 2 ** 20
    print(f"(the {sizes[1]}-sample shard set is {data_mb:.0f} MB on disk)")


if __name__ == "__main__":
    main()
