"""The shared trainer's samples/s on 1 process (the named baseline) against 2 processes
under torchrun (DDP, gloo on the CPU), on the serengeti network and 64x48 3-frame sequences
streamed from shards: the same epoch of images either way, 32 a batch per process,
1 thread per process (OMP_NUM_THREADS=1), so the ratio is what a second process (a
second core, or GPU) adds, with DDP's gradient all-reduce paid.

Target: close to 2x on 2 idle cores; less when the cores are shared.
Usage: python bench/trainer_processes.py [--images 2048] [--epochs 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time, torch
sys.path.insert(0, {root!r})
from fastai.callback.core import Callback
from common import distributed, trainers
from common.loaders import ShardStream, StreamLoader
from competitions.serengeti import model as M

shards, run_dir, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
distributed.start()

class Clock(Callback):  # the training phase of each epoch (loading included); validation aside
    seconds, samples = 0.0, 0
    def before_train(self):
        self.started = time.perf_counter()
    def after_batch(self):
        if self.training:
            Clock.samples += len(self.yb[0])
    def after_train(self):
        Clock.seconds += time.perf_counter() - self.started

torch.manual_seed(0)
net = M.SerengetiNet()
train = StreamLoader(ShardStream(shards, buffer_size=256, transform=M.augment), batch_size=32)
valid = StreamLoader(ShardStream(shards, shuffle=False, transform=M.plain), batch_size=128)
trainers.train(net, train, valid, M.loss, run_dir, epochs=epochs, checkpoint_every=0, quiet=True, cbs=[Clock()])
seconds = distributed.all_sum([Clock.seconds])[0] / distributed.world_size()
samples = distributed.all_sum([Clock.samples])[0]
if distributed.is_main():
    print(json.dumps(dict(samples=samples, seconds=seconds)))
"""


def make(directory: Path, images: int) -> None:
    import numpy as np
    sys.path.insert(0, str(ROOT))
    from common.loaders import write_shards
    from competitions.serengeti.data import CLASSES
    from competitions.serengeti.prepare import burst_sample
    rng = np.random.default_rng(0)
    # one sample a sequence, as serengeti's shards hold: a stack of its 3 frames and of their crops
    samples = ((f"image{i}", burst_sample(rng.integers(0, 255, (3, 48, 64, 3), dtype=np.uint8),
                                          rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)),
                (rng.random(len(CLASSES)) < 0.05).astype(np.uint8)) for i in range(images))
    write_shards(samples, directory, samples_per_shard=128)


def run(shards: Path, work: Path, processes: int, epochs: int) -> dict:
    import json
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] \
        if processes > 1 else [sys.executable]
    script = work / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    done = subprocess.run([*launcher, str(script), str(shards), str(work / f"run{processes}"), str(epochs)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{processes} process(es) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as work:
        work = Path(work)
        make(work / "shards", args.images)
        results = {}
        for processes in (1, 2):
            result = results[processes] = run(work / "shards", work, processes, args.epochs)
            print(f"{processes} process(es): {result['samples']:,.0f} samples in {result['seconds']:.1f} s of training "
                  f"steps: {result['samples'] / result['seconds']:,.0f} samples/s")
        one, two = (results[n]["samples"] / results[n]["seconds"] for n in (1, 2))
        print(f"samples/s, 2 processes / 1 process: {two / one:.2f}")


if __name__ == "__main__":
    main()
