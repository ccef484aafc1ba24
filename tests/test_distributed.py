"""Beyond one process: DDP under torchrun with gloo on the CPU (same weights as one
process, checkpoints resumable on another number of processes), and shards streamed
from a URL."""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas.testing
import pytest
import torch

from common.loaders import ShardSet, ShardStream, StreamLoader, read_shards, write_shards
from tests.conftest import ROOT
from tests.test_trainers import vector_samples

SCRIPT = textwrap.dedent('''
    import json, os, sys, torch
    from torch import nn
    from fastai.callback.core import Callback
    from common import distributed, trainers
    from common.loaders import ShardStream, StreamLoader

    shards, run_dir, batch, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    stop_epoch, stop_step = int(os.environ.get("STOP_AFTER_EPOCH", -1)), int(os.environ.get("STOP_AT_STEP", -1))
    torch.set_num_threads(1)
    distributed.start()

    class Stop(Callback):  # every process dies right after a checkpoint, as if the job were killed
        order = 95
        def _stop(self):
            distributed.barrier()
            os._exit(3)
        def after_batch(self):
            if self.training and self.train_iter == stop_step:
                self._stop()
        def after_epoch(self):
            if self.epoch == stop_epoch:
                self._stop()

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    train = StreamLoader(ShardStream(shards, buffer_size=64, seed=3), batch_size=batch)
    valid = StreamLoader(ShardStream(shards, shuffle=False), batch_size=64)
    learn = trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), run_dir, epochs=epochs, lr=1e-2,
                           checkpoint_every=2, quiet=True, seed=0, cbs=[Stop()])
    if distributed.is_main():
        torch.save(learn.model.state_dict(), run_dir + "/final.pt")
        with open(run_dir + "/done.json", "w") as handle:
            json.dump({"world_size": distributed.world_size(), "epochs_done": learn.epochs_done,
                       "train_batches": len(train)}, handle)
''')


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(vector_samples(240), tmp_path_factory.mktemp("shards"), samples_per_shard=30)


def train(tmp_path, shards, run_dir, processes: int, batch: int, epochs: int = 4, **environment):
    """The script on `processes` CPU processes under torchrun (gloo), or plainly on one."""
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] \
        if processes > 1 else [sys.executable]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", **environment}
    process = subprocess.Popen([*launcher, str(script), str(shards.location), str(run_dir), str(batch), str(epochs)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output = process.communicate(timeout=300)[0]
    finally:
        if process.poll() is None:  # never leave a worker behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, output


def weights(run_dir):
    return torch.load(run_dir / "final.pt")


def close(first, second, tolerance=1e-5):
    return all(torch.allclose(first[name], second[name], atol=tolerance, rtol=0) for name in first)


@pytest.fixture(scope="module")
def one_process(shards, tmp_path_factory):
    """Full-batch steps: one process takes all 240 samples per step; two take 120 each
    and DDP averages their gradients, which is the same step."""
    tmp_path = tmp_path_factory.mktemp("single")
    code, output = train(tmp_path, shards, tmp_path / "run", processes=1, batch=240)
    assert code == 0, output[-3000:]
    return weights(tmp_path / "run")


@pytest.mark.slow
def test_two_gloo_processes_train_to_the_weights_of_one(tmp_path, shards, one_process):
    code, output = train(tmp_path, shards, tmp_path / "run", processes=2, batch=120)
    assert code == 0, output[-3000:]
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert done["world_size"] == 2 and done["train_batches"] == 1  # each rank saw half the shards
    two = weights(tmp_path / "run")
    assert close(one_process, two)
    # and the test can fail: the first step alone moves the weights far beyond the tolerance
    torch.manual_seed(0)
    untrained = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).state_dict()
    assert not close(untrained, two, tolerance=1e-3)
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 5  # written once (rank 0): header + 4 epochs


# Extended to keep CI under 20 min: the mid-epoch test below resumes a two-process
# checkpoint on one process by default, from a harder place (inside an epoch).
@pytest.mark.slow
@pytest.mark.extended
def test_a_two_process_checkpoint_resumes_on_one_process(tmp_path, shards, one_process):
    run_dir = tmp_path / "run"
    code, output = train(tmp_path, shards, run_dir, processes=2, batch=120, STOP_AFTER_EPOCH="1")
    assert code != 0 and not (run_dir / "final.pt").exists(), output[-3000:]
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert (state["world_size"], state["epoch"], state["batches"], len(state["rng"])) == (2, 2, 0, 2)

    code, output = train(tmp_path, shards, run_dir, processes=1, batch=240)
    assert code == 0, output[-3000:]
    assert close(one_process, weights(run_dir))  # as if never stopped
    assert len((run_dir / "history.csv").read_text().splitlines()) == 5


@pytest.mark.slow
def test_a_mid_epoch_checkpoint_of_two_processes_resumes_on_one_at_the_same_share_of_the_epoch(tmp_path, shards):
    run_dir = tmp_path / "run"
    # 4 batches of 30 per rank and epoch: step 6 is half-way through the second epoch
    code, output = train(tmp_path, shards, run_dir, processes=2, batch=30, STOP_AT_STEP="6")
    assert code != 0, output[-3000:]
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert (state["world_size"], state["epoch"], state["batches"]) == (2, 1, 2)
    code, output = train(tmp_path, shards, run_dir, processes=1, batch=30)
    assert code == 0, output[-3000:]
    assert "2 of 4 batches into epoch 1 becomes 4 of 8" in output
    done = json.loads((run_dir / "done.json").read_text())
    assert done["epochs_done"] == 4 and len((run_dir / "history.csv").read_text().splitlines()) == 5
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["finished"]


# ---------------------------------------------------------------- shards at a URL

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requested: list

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.requested.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def serving(directory):
    """A static HTTP server on 127.0.0.1 over `directory`; yields (base URL, paths requested)."""
    requested: list[str] = []
    handler = functools.partial(type("Handler", (_QuietHandler,), {"requested": requested}), directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_shards_served_over_http_stream_and_train(tmp_path, shards):
    from torch import nn

    from common import trainers

    with serving(shards.directory) as (url, requested):
        remote = ShardSet(url + "/")
        assert remote.count == shards.count and len(remote.shards) == len(shards.shards)
        assert [key for key, _, _ in read_shards(remote)] == [key for key, _, _ in read_shards(shards)]
        assert np.array_equal(remote.labels, shards.labels)
        # the same batches as from the local copy, through the streaming loader
        local_batches = [x for x, _ in StreamLoader(ShardStream(shards, buffer_size=50, seed=1), batch_size=32)]
        remote_batches = [x for x, _ in StreamLoader(ShardStream(remote, buffer_size=50, seed=1), batch_size=32)]
        assert all(torch.equal(a, b) for a, b in zip(local_batches, remote_batches)) and len(local_batches) == len(remote_batches)
        requested.clear()
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 3))
        learn = trainers.train(model, StreamLoader(ShardStream(remote, buffer_size=50), batch_size=32),
                               StreamLoader(ShardStream(remote, shuffle=False), batch_size=64),
                               nn.BCEWithLogitsLoss(), tmp_path / "run", epochs=2, lr=1e-2, quiet=True)
        assert learn.epochs_done == 2
        assert {path.rsplit("/", 1)[-1] for path in requested} == {path.name for path in shards.shards}
        assert learn.recorder.values[-1][1] < learn.recorder.values[0][1]  # it learned from what it streamed


def test_an_unreachable_shard_url_is_one_clear_error(tmp_path):
    from common import io

    with serving(tmp_path) as (url, _):
        with pytest.raises(io.InputError, match=r"127\.0\.0\.1.*index\.json: cannot read"):
            ShardSet(url + "/absent")


# ---------------------------------------------------------------- Dask for the data stages

@pytest.fixture
def cluster():
    """A Dask cluster of 2 in-process workers on 127.0.0.1, torn down after the test."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", scheduler_port=0,
                      dashboard_address=None) as local:
        yield local


def _scale(chunk, scale):
    return chunk * scale


def _shared(chunk, value):
    return value


def test_parallel_map_chunks_keeps_the_order_and_needs_no_cluster(cluster):
    from common import parallel

    chunks = [np.arange(start, start + 10) for start in range(0, 100, 10)]
    here = list(parallel.map_chunks(_scale, chunks, scale=3))
    assert not parallel.active()
    with parallel.using(cluster.scheduler_address):
        assert parallel.active()
        there = list(parallel.map_chunks(_scale, chunks, window=3, scale=3))
        shared = list(parallel.map_chunks(_shared, chunks[:2], value=(64, 48)))
    assert shared == [(64, 48), (64, 48)]  # a tuple reaches the workers as one value
    assert not parallel.active()
    assert all(np.array_equal(a, b) for a, b in zip(here, there)) and len(there) == 10
    assert np.array_equal(np.concatenate(there), np.arange(100) * 3)
    assert "scale" in cluster.scheduler.task_prefixes


def test_an_unreachable_scheduler_is_one_clear_error(monkeypatch):
    from common import io, parallel

    monkeypatch.setattr(parallel, "CONNECT_SECONDS", 2)   # Dask retries the refused port until then
    with pytest.raises(io.InputError, match="tcp://127.0.0.1:9: cannot reach the Dask scheduler"):
        with parallel.using("tcp://127.0.0.1:9"):
            pass


@pytest.fixture(scope="module")
def uberct_small(competition_data):
    return competition_data("uberct")


def test_uberct_features_in_chunks_on_dask_are_the_single_machine_frame(uberct_small, cluster):
    from common import parallel
    from competitions.uberct import data, features, panel

    context = features.Context(data.load(uberct_small))
    rows = context.block_rows(data.load(uberct_small).events, context.blocks()[0], 1.0, np.random.default_rng(0))
    whole = panel.features(context, rows)
    with parallel.using(cluster.scheduler_address):
        chunked = panel.features(context, rows, chunk_rows=len(rows) // 7 + 1)
    pandas.testing.assert_frame_equal(whole, chunked, check_exact=True)
    assert "features_of" in cluster.scheduler.task_prefixes  # the chunks ran on the workers


@pytest.mark.slow
def test_uberct_on_a_local_dask_cluster_writes_the_same_bytes_as_the_default_path(compete, uberct_small, cluster, tmp_path):
    compete("run", "uberct", "--data", uberct_small, "--fast", "--quiet", "--run-dir", tmp_path / "single",
            "--out", tmp_path / "single.csv", cwd=tmp_path)
    compete("run", "uberct", "--data", uberct_small, "--fast", "--quiet", "--run-dir", tmp_path / "dask",
            "--out", tmp_path / "dask.csv", "--scheduler", cluster.scheduler_address, cwd=tmp_path)
    assert (tmp_path / "single.csv").read_bytes() == (tmp_path / "dask.csv").read_bytes()
    assert {"features_of", "probabilities_of"} <= set(cluster.scheduler.task_prefixes)
    assert "data stages: Dask at tcp://127.0.0.1" in (tmp_path / "dask" / "log.txt").read_text()


def test_serengeti_shards_packed_by_dask_equal_those_packed_here(tmp_path, cluster, monkeypatch):
    from competitions.serengeti import prepare
    from common import parallel
    from competitions import REGISTRY
    from competitions.serengeti import data

    source = tmp_path / "data"
    REGISTRY.competition("serengeti").synth(source, seed=0, scale="small")
    loaded = data.load(source)
    frames = loaded.train.merge(loaded.labels, on=data.ID, how="left")
    monkeypatch.setattr(prepare, "SHARD_SEQUENCES", 15)  # several shards from the small set
    sets = {}
    for where in ("here", "dask"):
        monkeypatch.setenv("COMPETE_CACHE", str(tmp_path / f"cache-{where}"))
        with parallel.using(cluster.scheduler_address if where == "dask" else None):
            sets[where] = prepare.prepare_shards(frames, loaded.root, "train", quiet=True)
    here, dask = sets["here"], sets["dask"]
    assert len(here.shards) > 3 and "pack_group" in cluster.scheduler.task_prefixes
    names = sorted(path.name for path in here.directory.iterdir())
    assert names == sorted(path.name for path in dask.directory.iterdir())
    for name in names:
        assert (here.directory / name).read_bytes() == (dask.directory / name).read_bytes(), name
    # one sample a sequence; a sequence none of whose frames could be read is left out
    unreadable = frames[data.FILE].isin(here.metadata["unreadable"])
    assert unreadable.any() and here.count == frames.loc[~unreadable, data.ID].nunique()


@pytest.mark.slow
def test_torchrun_two_processes_fit_serengeti_through_the_cli(tmp_path):
    from competitions import REGISTRY

    data = tmp_path / "data"
    REGISTRY.competition("serengeti").synth(data, seed=0, scale="small")
    # the ranks' temp folder, short: the loader workers' sockets live in it, and a Unix
    # socket's path has at most 107 bytes (tmp_path, deeper under pytest-xdist, can pass it)
    scratch = Path(tempfile.mkdtemp(prefix="ddp-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "COMPETE_CACHE": str(tmp_path / "cache"), "TMPDIR": str(scratch)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(ROOT / "cli.py"),
               "fit", "serengeti", "--data", str(data), "--fast", "--quiet", "--run-dir", str(tmp_path / "run")]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=600)
        left = [path.name for path in scratch.iterdir() if path.name.startswith("compete-rank")]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    assert process.returncode == 0, stderr[-3000:]
    assert stdout.count("run: ") == 1  # rank 0 alone speaks
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["cv_score"] > 0
    assert metrics["epochs"] == 1 and metrics["refit_epochs"] == 1   # --fast: the validated fit, then the one on every site
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)["world_size"] == 2
    assert "training on 2 process(es)" in (tmp_path / "run" / "log.txt").read_text()
    assert not left  # rank 1's scratch is gone
