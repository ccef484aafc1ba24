"""Packing a folder of images into shards (common/vision.py's `pack`, the generic image
path's prepare stage) as the folder grows 4x: peak memory and wall time here (a decode
pool of 2 processes) and on a Dask LocalCluster of 2 worker processes (`--scheduler`:
one shard a task, the tar bytes sent back), against the named baseline, every image
decoded into a list in memory. Each case runs in a fresh process (ru_maxrss of that
process, plus the largest Dask worker's for Dask), on JPEGs of 160x160 packed at 128x128.

Target: the packer's peak stays flat (ratio ~1.0 from 1x to 4x) while the baseline's
grows with the folder; Dask's shards are the same bytes as here (sha256 of the set).
Usage: python bench/image_pack_scale.py [--images 2000] [--factor 4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDE, SIZE = 160, 128

CHILD = """
import hashlib, json, os, resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np
folder, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = [os.path.join(folder, f"img{{i:06d}}.jpg") for i in range(count)]
labels = (np.arange(count) % 5).astype(np.int64)
from common import images, parallel, vision
started = time.perf_counter()
workers_peak = 0
if mode == "baseline":
    decoded = [images.read_image(path, {size}) for path in files]
    digest = str(sum(int(a[0, 0, 0]) for a in decoded))
else:
    cluster = None
    if mode == "dask":
        from dask.distributed import LocalCluster
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with parallel.using(cluster.scheduler_address if cluster else None) as client:
        packed = vision.pack(files, labels, {size}, "train", workers=2, quiet=True)
        if client is not None:
            workers_peak = max(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024).values())
    if cluster is not None:
        cluster.close()
    hashed = hashlib.sha256()
    for path in sorted(packed.directory.iterdir()):
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                hashed.update(block)
    digest = hashed.hexdigest()[:16]
seconds = time.perf_counter() - started
# the decode pool's children count too (RUSAGE_CHILDREN: the largest of them)
print(json.dumps({{"seconds": round(seconds, 2), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
                  "workers_mb": workers_peak, "digest": digest}}))
"""


def make(folder: Path, count: int) -> None:
    """Smooth colour fields with a little noise (JPEG-sized like photos, not like noise)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, SIDE, dtype=np.float32)
    for index in range(count):
        colour = rng.uniform(40, 215, 3).astype(np.float32)
        field = colour * (0.6 + 0.4 * ramp[:, None, None] * ramp[None, :, None])
        field += rng.normal(0, 6, field.shape[:2] + (1,)).astype(np.float32)
        Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).save(folder / f"img{index:06d}.jpg", quality=85)


def case(folder: Path, count: int, mode: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-pack-cache-") as cache:
        env = {**os.environ, "COMPETE_CACHE": cache, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), size=SIZE), str(folder), str(count), mode],
                             capture_output=True, text=True, env=env)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)  # past one shard (SHARD_IMAGES) at both sizes
    parser.add_argument("--factor", type=int, default=4)
    arguments = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; JPEGs {SIDE}x{SIDE} packed at {SIZE}x{SIZE}")
    with tempfile.TemporaryDirectory(prefix="bench-pack-") as scratch:
        folder = Path(scratch) / "images"
        sizes = [arguments.images, arguments.images * arguments.factor]
        make(folder, sizes[-1])
        results = {}
        for count in sizes:
            for mode in ("baseline", "here", "dask"):
                results[count, mode] = found = case(folder, count, mode)
                print(f"{count:6d} images  {mode:8s}  {found['seconds']:7.2f} s  peak {found['peak_mb']:5d} MB  "
                      f"largest pool child {found['children_mb']:4d} MB  largest Dask worker {found['workers_mb']:4d} MB")
        small, large = sizes
        for mode in ("baseline", "here"):
            print(f"{mode}: peak x{results[large, mode]['peak_mb'] / results[small, mode]['peak_mb']:.2f} "
                  f"for x{arguments.factor} the images")
        print(f"dask: client peak x{results[large, 'dask']['peak_mb'] / results[small, 'dask']['peak_mb']:.2f}, "
              f"largest worker x{results[large, 'dask']['workers_mb'] / max(1, results[small, 'dask']['workers_mb']):.2f}")
        for count in sizes:
            same = results[count, "here"]["digest"] == results[count, "dask"]["digest"]
            print(f"{count} images: dask / here wall {results[count, 'dask']['seconds'] / results[count, 'here']['seconds']:.2f}; "
                  f"same shard bytes: {same}")


if __name__ == "__main__":
    main()
