"""The generic image path beyond one process, through the real CLI on small synthetic
cactus folders: two gloo processes under torchrun (rank 0 packs, each rank streams half
the images, rank 0 alone writes) with the shards packed on a Dask cluster, the shards
Dask packs byte for byte those packed here, a `compete fit` SIGKILLed after its first
checkpoint resumed from it, and a resumed torchrun's ranks agreeing on the time budget."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from competitions.tabular import media_synth
from tests.conftest import ROOT
from tests.test_distributed import cluster  # noqa: F401  (the fixture: a Dask LocalCluster on 127.0.0.1)

CACTUS = media_synth.LAYOUTS[0]
SMALL_RUN = ("--fast", "--quiet", "--set", "width=8")


def environment(tmp_path, tracking_store) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
            "COMPETE_CACHE": str(tmp_path / "cache"), "MLFLOW_TRACKING_URI": tracking_store}


def finished(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """What the process printed; it and its children are killed if it overruns."""
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:  # never leave a worker behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_image_shards_packed_on_dask_are_the_bytes_packed_here(tmp_path, cluster, monkeypatch):  # noqa: F811
    from common import parallel, vision

    data = media_synth.make(tmp_path / "data", CACTUS, rows=40, seed=0)
    train = pd.read_csv(data / "train.csv")
    files = [data / "train" / name for name in train["id"]]
    files[3].write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    labels = train["has_cactus"].to_numpy(dtype=np.uint8)
    monkeypatch.setattr(vision, "SHARD_IMAGES", 8)  # several shards, so several Dask tasks
    sets = {}
    for where in ("here", "dask"):
        monkeypatch.setenv("COMPETE_CACHE", str(tmp_path / f"cache-{where}"))
        with parallel.using(cluster.scheduler_address if where == "dask" else None):
            sets[where] = vision.pack(files, labels, 32, "train", workers=1, quiet=True)
    here, dask = sets["here"], sets["dask"]
    assert len(here.shards) == math.ceil(len(files) / 8) and "pack_images" in cluster.scheduler.task_prefixes
    names = sorted(path.name for path in here.directory.iterdir())
    assert names == sorted(path.name for path in dask.directory.iterdir())
    for name in names:
        assert (here.directory / name).read_bytes() == (dask.directory / name).read_bytes(), name
    # the unreadable image is left out and named; the others in order with their labels
    assert here.metadata["unreadable"][0][0] == str(files[3]) and here.count == len(files) - 1
    from common.loaders import read_shards
    read = list(read_shards(here))
    assert [key for key, _, _ in read] == [str(path) for i, path in enumerate(files) if i != 3]
    assert np.array_equal([int(label) for _, _, label in read], np.delete(labels, 3))
    assert read[0][1].shape == (32, 32, 3)


@pytest.mark.slow
@pytest.mark.extended   # by default: serengeti's torchrun test (the shared trainer's DDP), Dask image shards' bytes (this file)
def test_torchrun_two_gloo_processes_train_an_image_folder_packed_on_dask(compete, tmp_path, cluster,  # noqa: F811
                                                                           tracking_store):
    data = media_synth.make(tmp_path / "data", CACTUS, rows=100, seed=1)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(ROOT / "cli.py"),
               "run", f"kaggle:{CACTUS}", "--data", str(data), "--run-dir", str(tmp_path / "run"),
               "--out", str(tmp_path / "submission.csv"), *SMALL_RUN, "--set", "batch_size=16",
               "--scheduler", cluster.scheduler_address]
    process = subprocess.Popen(command, env={**environment(tmp_path, tracking_store), "TMPDIR": str(scratch)}, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    stdout, stderr = finished(process, timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert stdout.count("run: ") == 1 and stdout.count("submission: ") == 1  # rank 0 alone speaks and writes
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs"] == 2
    trained = metrics["train_images"]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    # each rank streamed half the training images: half the batches of one process
    assert state["world_size"] == 2 and state["loader"]["of"] == math.ceil(math.ceil(trained / 2) / 16) < math.ceil(trained / 16)
    assert "pack_images" in cluster.scheduler.task_prefixes  # the shards were packed on the cluster's workers
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "data stages: Dask at tcp://127.0.0.1" in log and "training on 2 process(es)" in log
    assert log.count("image model: binary") == 1
    compete("validate", f"kaggle:{CACTUS}", tmp_path / "submission.csv", "--data", data)  # the same format as one process
    assert not [path.name for path in scratch.iterdir() if path.name.startswith("compete-rank")]  # rank 1 wrote nothing left


# Extended to keep CI under 20 min (16 s): by default the trainer's kill test (tests/test_trainers.py,
# the "pipe" variant) SIGKILLs a run after its first checkpoint and resumes it to the same weights.
@pytest.mark.slow
@pytest.mark.extended
def test_a_killed_image_fit_resumes_from_its_last_checkpoint(tmp_path, tracking_store):
    data = media_synth.make(tmp_path / "data", CACTUS, rows=100, seed=1)
    run_dir = tmp_path / "run"
    # 80 training images in batches of 16: 5 steps an epoch, 20 in all, a checkpoint every 2
    command = [sys.executable, "-c", "import cli; cli.main()", "fit", f"kaggle:{CACTUS}", "--data", str(data),
               "--run-dir", str(run_dir), *SMALL_RUN, "--set", "batch_size=16", "--set", "epochs=4",
               "--set", "checkpoint_every=2", "--set", "patience=20"]
    env = environment(tmp_path, tracking_store)
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, first.stderr.read().decode()[-3000:]
    killed_at = torch.load(checkpoint, weights_only=False)
    assert 0 < killed_at["train_iter"] < 20 and not killed_at["finished"]

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    decisions = json.loads((run_dir / "metrics.json").read_text())
    resumed = decisions["resumed_from"]
    assert (resumed["epoch"], resumed["batches"], resumed["train_iter"]) == \
        (killed_at["epoch"], killed_at["batches"], killed_at["train_iter"])
    # the rerun trained only what the killed run had not: fewer steps than the whole schedule
    assert decisions["train_steps"] == 20 and decisions["epochs"] == 4
    assert decisions["train_steps_this_run"] == 20 - killed_at["train_iter"]
    assert f"resuming from {checkpoint}: epoch {killed_at['epoch']}" in (run_dir / "log.txt").read_text()
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 4  # no epoch written twice


BUDGET = '''
import json, sys, torch
from pathlib import Path
from common import distributed, trainers
distributed.start()
run = Path(sys.argv[1]) / ("main" if distributed.is_main() else "scratch")  # as common/runs.py gives rank > 0 a scratch folder
run.mkdir(parents=True, exist_ok=True)
if distributed.is_main():  # a resumed run: rank 0's folder holds the decision
    (run / "budget.json").write_text(json.dumps({"epochs": 3, "seconds_per_batch": 0.1, "seconds": 60}))
decision = trainers.fit_budget(torch.nn.Linear(2, 1), lambda: [(torch.zeros(4, 2), torch.zeros(4, 1))] * 5,
                               torch.nn.functional.mse_loss, run, 60, 10, 1)
print(json.dumps(distributed.all_gather(decision["epochs"])), flush=True)
'''


@pytest.mark.slow
def test_a_resumed_torchrun_takes_rank_zeros_budget_on_every_rank(tmp_path):
    """Rank 0 returned the kept decision while the others waited for its broadcast: a
    resumed torchrun with a time budget hung there."""
    script = tmp_path / "budget.py"
    script.write_text(BUDGET)
    process = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
                                str(tmp_path / "runs")], env=environment(tmp_path, "sqlite://"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    stdout, stderr = finished(process, timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1]) == [3, 3]
