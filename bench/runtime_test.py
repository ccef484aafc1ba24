"""`compete runtime test` of the serengeti bundle against the named baseline measured in
the same run, `compete predict` on the same data and network (torch, no sandbox): the
cost of proving the bundle as the hakuna-madata runtime would (environment check, mount
and network namespaces, memory cgroup, ONNX on onnxruntime), and whether it predicts the
same (max |difference| of the two files).

Target: runtime test / predict <= 2 in wall time; max difference <= 1e-5.
Usage: python bench/runtime_test.py [--scale small|full]   (small: ~1 min on 2 cores)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _command import ROOT, compete  # noqa: E402 (bench/ is the script's folder)
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="small", choices=["small", "full"])
    arguments = parser.parse_args()
    import torch

    from competitions.serengeti import model as serengeti_model

    scratch = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    try:
        data, run_dir = scratch / "data", scratch / "run"
        compete("data", "synth", "serengeti", "--out", data, "--scale", arguments.scale, "--seed", "0")
        torch.manual_seed(0)
        prior = np.full(len(serengeti_model.CLASSES), 0.02)
        run_dir.mkdir()
        serengeti_model.SerengetiModel(serengeti_model.SerengetiNet().start_at(prior), prior).save(run_dir / serengeti_model.WEIGHTS)
        compete("package", "serengeti", "--run-dir", run_dir, "--out", scratch / "submission.zip")
        baseline, _ = compete("predict", "serengeti", "--data", data, "--run-dir", run_dir, "--out", scratch / "predict.csv")
        seconds, _ = compete("runtime", "test", scratch / "submission.zip", "--data", data, "--memory-limit", "2",
                             "--out", scratch / "runtime.csv")
        resources = json.loads((scratch / "submission.runtime" / "resources.json").read_text())
        ours = pd.read_csv(scratch / "runtime.csv").set_index("seq_id")
        theirs = pd.read_csv(scratch / "predict.csv").set_index("seq_id").loc[ours.index, ours.columns]
        difference = float(np.abs(ours.to_numpy() - theirs.to_numpy()).max())
        print(f"scale {arguments.scale}: {len(ours)} sequences")
        print(f"baseline compete predict: {baseline:.1f} s wall")
        print(f"compete runtime test:     {seconds:.1f} s wall (main.py itself {resources['wall_seconds']:.1f} s, "
              f"CPU {resources['cpu_seconds']:.1f} s, peak memory {resources['peak_memory_mb']:.0f} MB, "
              f"limit: {resources['memory_limit']})")
        print(f"ratio runtime test / predict: {seconds / baseline:.2f}   max |difference|: {difference:.1e}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
