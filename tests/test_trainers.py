"""common.trainers: a run killed mid-epoch and resumed ends with the same weights as
an uninterrupted one; early stopping, the CSV log, local-only backbones."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn

from common import io, trainers
from common.loaders import ShardStream, StreamLoader, write_shards

SCRIPT = textwrap.dedent('''
    import os, signal, sys, time, torch
    import numpy as np
    from torch import nn
    from fastai.callback.core import Callback
    from common import trainers
    from common.loaders import ShardStream, StreamLoader

    shards, run_dir, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
    quiet, every = os.environ.get("QUIET", "1") == "1", int(os.environ.get("EVERY", "5"))
    torch.set_num_threads(1)

    class Slow(Callback):  # gives the test time to kill the process mid-epoch
        def after_batch(self):
            time.sleep(pause)

    class KillAfterEpoch(Callback):  # SIGKILL right after the checkpoint of this epoch
        order = 95
        def after_epoch(self):
            if self.epoch == int(os.environ.get("KILL_AFTER_EPOCH", "-1")):
                os.kill(os.getpid(), signal.SIGKILL)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    jitter = lambda array, rng: torch.from_numpy(array + rng.normal(0, 0.1, array.shape).astype(np.float32))
    train = StreamLoader(ShardStream(shards, buffer_size=40, seed=3, transform=jitter), batch_size=16, num_workers=1)
    valid = StreamLoader(ShardStream(shards, shuffle=False), batch_size=64)
    learn = trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), run_dir, epochs=3, lr=1e-2,
                           checkpoint_every=every, quiet=quiet, seed=0, cbs=[Slow(), KillAfterEpoch()])
    torch.save(learn.model.state_dict(), run_dir + "/final.pt")
''')


def vector_samples(count: int) -> list:
    """(key, 8 features, 3 labels) samples a small network can learn: the features lean
    towards the labels."""
    rng = np.random.default_rng(0)
    samples = []
    for index in range(count):
        label = rng.integers(0, 2, 3).astype(np.float32)
        features = (rng.normal(size=8) + np.repeat(label, 3)[:8]).astype(np.float32)
        samples.append((f"s{index}", features, label))
    return samples


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(vector_samples(480), tmp_path_factory.mktemp("shards"), samples_per_shard=40)


def run_script(tmp_path, shards, run_dir, pause=0.0, environment=(), **popen):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    environment = dict(os.environ, PYTHONWARNINGS="ignore", **dict(environment))
    return subprocess.Popen([sys.executable, str(script), str(shards.directory), str(run_dir), str(pause)],
                            env=environment, **popen)


def same_weights(first, second):
    first, second = torch.load(first / "final.pt"), torch.load(second / "final.pt")
    return all(torch.equal(first[name], second[name]) for name in first)


# Extended to keep CI under 20 min: by default the "pipe" variant of the progress test below
# kills a run after its first checkpoint and asserts the resumed weights equal an unkilled
# run's, and the truncated-checkpoint test resumes to the same weights too.
@pytest.mark.extended
def test_killed_run_resumes_to_the_same_weights(tmp_path, shards):
    clean = tmp_path / "clean"
    assert run_script(tmp_path, shards, clean).wait(timeout=120) == 0

    killed = tmp_path / "killed"
    process = run_script(tmp_path, shards, killed, pause=0.05)
    checkpoint = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 90
    state = None
    while time.time() < deadline:
        if checkpoint.exists():
            try:
                state = torch.load(checkpoint, weights_only=False)
            except Exception:  # caught between write and rename is impossible (atomic), but be safe
                state = None
            # in the second epoch, part way through it
            if state is not None and state["epoch"] == 1 and state["batches"] > 0:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state is not None and state["batches"] > 0 and not state["finished"], "not killed mid-epoch"
    assert not (killed / "final.pt").exists()

    assert run_script(tmp_path, shards, killed).wait(timeout=120) == 0
    assert same_weights(clean, killed)
    history = (killed / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,valid_loss") and len(history) == 4  # header + 3 epochs, no repeats
    # the log continues across the kill: same losses as the clean run (the time column aside)
    without_time = lambda lines: [line.rsplit(",", 1)[0] for line in lines]
    assert without_time(history) == without_time((clean / "history.csv").read_text().splitlines())


def loaders(shards):
    return (StreamLoader(ShardStream(shards, buffer_size=40), batch_size=32),
            StreamLoader(ShardStream(shards, shuffle=False), batch_size=64))


def test_early_stopping_and_a_finished_run_is_not_retrained(tmp_path, shards):
    model = nn.Sequential(nn.Linear(8, 3))
    train, valid = loaders(shards)
    # lr 0: the validation loss never improves, so patience 1 stops after the second epoch
    trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), tmp_path, epochs=6, lr=0.0, patience=1, quiet=True, one_cycle=False)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert len(lines) == 3
    assert (tmp_path / "checkpoints" / "best.pth").is_file()
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["finished"]
    started = time.perf_counter()
    trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), tmp_path, epochs=6, lr=0.0, patience=1, quiet=True, one_cycle=False)
    assert (tmp_path / "history.csv").read_text().splitlines() == lines
    assert time.perf_counter() - started < 10


def test_device_is_cpu_without_accelerators():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert trainers.device().type in (expected, "mps")


def test_backbone_loads_from_a_local_file_only(tmp_path):
    source = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    same = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    trainers.load_backbone(same, tmp_path / "weights.pth")
    assert torch.equal(same[0].weight, source[0].weight) and torch.equal(same[1].bias, source[1].bias)
    # a head for other classes keeps its fresh weights; the body loads
    other_head = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 5))
    fresh = other_head[1].weight.clone()
    trainers.load_backbone(other_head, tmp_path / "weights.pth", head=("1.",))
    assert torch.equal(other_head[0].weight, source[0].weight) and torch.equal(other_head[1].weight, fresh)
    with pytest.raises(io.InputError, match="nothing is downloaded"):
        trainers.load_backbone(same, tmp_path / "absent.pth")


def test_a_backbone_that_loads_fewer_tensors_than_the_model_needs_is_an_error_naming_the_counts(tmp_path):
    torch.save({"encoder.weight": torch.zeros(4, 4)}, tmp_path / "other.pth")
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    before = model[0].weight.clone()
    with pytest.raises(io.InputError, match=r"other.pth: 0 of the 2 tensors the model needs load .*2 missing, e.g. '0.weight'"):
        trainers.load_backbone(model, tmp_path / "other.pth", head=("1.",))
    # a body tensor of another shape counts as not loaded, too
    torch.save(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)).state_dict(), tmp_path / "narrow.pth")
    with pytest.raises(io.InputError, match=r"0 of the 2 tensors .*2 of another shape"):
        trainers.load_backbone(model, tmp_path / "narrow.pth", head=("1.",))
    assert torch.equal(model[0].weight, before)  # nothing half-loaded


def test_early_stopping_records_the_epochs_it_trained(tmp_path, shards):
    model = nn.Sequential(nn.Linear(8, 3))
    train, valid = loaders(shards)
    learn = trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), tmp_path, epochs=9, lr=0.0, patience=3,
                           quiet=True, one_cycle=False)
    assert learn.epochs_done == 4 == len((tmp_path / "history.csv").read_text().splitlines()) - 1
    again = trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), tmp_path, epochs=9, lr=0.0, patience=3,
                           quiet=True, one_cycle=False)
    assert again.epochs_done == 4  # the finished run, read back from its checkpoint


def _run_on_a_terminal(command_environment, run):
    """Run the training script with stdout and stderr on a pseudo-terminal; returns
    (exit code, what the terminal showed)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    primary, secondary = pty.openpty()
    # A terminal has a size: on a 0 x 0 one, tqdm draws nothing at all.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = run(command_environment, stdout=secondary, stderr=secondary, stdin=subprocess.DEVNULL)
    os.close(secondary)
    shown = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    return process.wait(timeout=120), shown.decode("utf-8", "replace")


# "terminal" is extended (CI's 20 min): "pipe", as under nohup or CI, runs by default and
# checks the same kill, resume and same weights; the terminal variant adds redrawn bars.
@pytest.mark.parametrize("output", [pytest.param("terminal", marks=pytest.mark.extended), "pipe"])
def test_killed_after_its_first_checkpoint_resumes_with_progress_on(tmp_path, shards, output):
    clean = tmp_path / "clean"
    assert run_script(tmp_path, shards, clean).wait(timeout=120) == 0
    killed = tmp_path / "killed"
    # progress on, a line every 0.05 s where it is not a terminal; checkpoints at the end of each epoch only
    progress = {"QUIET": "0", "EVERY": "0", "TQDM_MININTERVAL": "0.05"}

    def run(environment, **streams):
        return run_script(tmp_path, shards, killed, environment=environment, **streams)

    def launch(environment):
        if output == "terminal":
            return _run_on_a_terminal(environment, run)
        process = run(environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        shown = process.communicate(timeout=120)[0]
        return process.returncode, shown.decode("utf-8", "replace")

    first = launch({**progress, "KILL_AFTER_EPOCH": "0"})
    assert first[0] == -signal.SIGKILL, first[1][-2000:]
    state = torch.load(killed / "checkpoints" / "last.pt", weights_only=False)
    assert (state["epoch"], state["batches"], state["finished"]) == (1, 0, False)
    second = launch(progress)
    assert second[0] == 0, second[1][-2000:]
    assert "epoch 2/3 train" in second[1] or "epoch 3/3 train" in second[1]  # the bars showed, from the resumed epoch on
    assert "epoch 1/3" not in second[1] and "Traceback" not in second[1]
    if output == "pipe":  # whole lines, nothing redrawn
        assert "\r" not in second[1]
    assert same_weights(clean, killed)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, shards):
    folder = tmp_path_factory.mktemp("clean")
    assert run_script(folder, shards, folder / "run").wait(timeout=120) == 0
    return folder / "run"


def killed_after_first_epoch(tmp_path, shards):
    """A run SIGKILLed right after its second epoch's first checkpoint... the end of
    epoch 1: last.pt is that epoch's end, previous.pt a mid-epoch one before it."""
    run_dir = tmp_path / "killed"
    assert run_script(tmp_path, shards, run_dir, environment={"KILL_AFTER_EPOCH": "1"}).wait(timeout=120) == -signal.SIGKILL
    checkpoints = run_dir / "checkpoints"
    assert {path.name for path in checkpoints.iterdir()} >= {"last.pt", "previous.pt", "checkpoints.sha256"}
    previous = torch.load(checkpoints / "previous.pt", weights_only=False)
    assert (previous["epoch"], previous["finished"]) == (1, False) and previous["batches"] > 0
    return run_dir


def test_a_truncated_last_checkpoint_resumes_from_the_one_before_to_the_same_weights(tmp_path, shards, clean_run):
    """The issue's case: killed, last.pt cut short ("PytorchStreamReader failed reading
    zip archive" and no resume before): previous.pt resumes, exactly."""
    run_dir = killed_after_first_epoch(tmp_path, shards)
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    resumed = run_script(tmp_path, shards, run_dir, stderr=subprocess.PIPE, text=True)
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    lines = [line for line in stderr.splitlines() if "last.pt" in line]
    assert len(lines) == 1 and "resuming from previous.pt instead (epoch 1," in lines[0], stderr
    assert same_weights(clean_run, run_dir)
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 4  # header + 3 epochs: the epoch trained again is not repeated


def checkpoints(tmp_path, count: int = 2):
    """`count` small checkpoints written in turn as the trainer writes them."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for step in range(count):
        payload = {key: None for key in trainers.STATE_KEYS} | {"epoch": step, "batches": 7, "model": torch.full((64,), step)}
        trainers.write_checkpoint(payload, folder)
    return folder


def test_checkpoints_are_written_with_their_checksums_and_the_one_before_kept(tmp_path):
    folder = checkpoints(tmp_path, 3)
    assert sorted(path.name for path in folder.iterdir()) == ["checkpoints.sha256", "last.pt", "previous.pt"]
    assert (folder / "checkpoints.sha256").read_text().split() == [io.sha256(folder / "last.pt"), io.sha256(folder / "previous.pt")]
    state, used = trainers._usable_checkpoint(folder / "last.pt")
    assert used.name == "last.pt" and state["epoch"] == 2
    assert torch.load(folder / "previous.pt", weights_only=False)["epoch"] == 1


def compete_warnings(caplog) -> list[str]:
    """The warnings compete logged: other loggers reach caplog too, and an earlier test
    of the suite may have left compete's own logger at INFO."""
    import logging
    return [record.getMessage() for record in caplog.records
            if record.name.startswith("compete") and record.levelno >= logging.WARNING]


@pytest.mark.parametrize("spoil", ["same size, other bytes", "a valid checkpoint of another run", "zeros"])
def test_a_last_checkpoint_that_differs_from_its_checksum_is_not_used(tmp_path, spoil, caplog):
    import logging

    folder = checkpoints(tmp_path)
    last = folder / "last.pt"
    size = last.stat().st_size
    if spoil == "a valid checkpoint of another run":
        torch.save({key: None for key in trainers.STATE_KEYS} | {"epoch": 9, "batches": 0}, last)
    else:
        last.write_bytes(np.random.default_rng(0).bytes(size) if spoil.startswith("same") else bytes(size))
    with caplog.at_level(logging.WARNING, logger="compete"):
        state, used = trainers._usable_checkpoint(last)
    assert used.name == "previous.pt" and state["epoch"] == 0
    (line,) = compete_warnings(caplog)
    assert "differ from their checksum" in line and "resuming from previous.pt instead (epoch 0, 7 batches" in line


def test_checkpoints_of_an_older_compete_without_checksums_still_resume(tmp_path, caplog):
    import logging

    folder = checkpoints(tmp_path)
    (folder / "checkpoints.sha256").unlink()
    with caplog.at_level(logging.WARNING, logger="compete"):
        state, used = trainers._usable_checkpoint(folder / "last.pt")
    assert used.name == "last.pt" and state["epoch"] == 1 and not compete_warnings(caplog)


def test_killed_as_a_checkpoint_moves_in_resumes_from_the_whole_next_one(tmp_path):
    """The instant between last.pt becoming previous.pt and the next one moving in."""
    folder = checkpoints(tmp_path)
    payload = {key: None for key in trainers.STATE_KEYS} | {"epoch": 5, "batches": 0}
    digest, _ = io.write_hashed(folder / trainers.WRITING, lambda handle: torch.save(payload, handle))
    (folder / "checkpoints.sha256").write_text(f"{digest}\n{io.sha256(folder / 'last.pt')}\n")
    (folder / "last.pt").replace(folder / "previous.pt")
    state, used = trainers._usable_checkpoint(folder / "last.pt")
    assert used.name == trainers.WRITING and state["epoch"] == 5


def test_no_usable_checkpoint_trains_again_from_the_start_with_one_line(tmp_path, shards, caplog):
    import logging

    model = nn.Sequential(nn.Linear(8, 3))
    train, valid = loaders(shards)
    trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), tmp_path, epochs=2, lr=1e-2, quiet=True)
    for name in ("last.pt", "previous.pt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"PK\x03\x04 not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="compete"):
        learn = trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), tmp_path, epochs=2, lr=1e-2, quiet=True)
    (line,) = compete_warnings(caplog)
    assert "no usable checkpoint" in line and "training starts again" in line
    assert learn.first_epoch == 0 and learn.epochs_done == 2
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 3
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["finished"]


def test_a_damaged_best_model_keeps_the_weights_training_ended_with(tmp_path, shards, caplog):
    import logging

    model = nn.Sequential(nn.Linear(8, 3))
    train, valid = loaders(shards)
    trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), tmp_path, epochs=2, lr=1e-2, quiet=True)
    best = tmp_path / "checkpoints" / "best.pth"
    assert io.recorded_checksum(best) == io.sha256(best)
    best.write_bytes(best.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="compete"):
        trainers.train(model, train, valid, nn.BCEWithLogitsLoss(), tmp_path, epochs=2, lr=1e-2, quiet=True)
    (line,) = compete_warnings(caplog)
    assert "best.pth is damaged" in line and "keeps the weights training ended with" in line


def test_each_epoch_is_reported_to_a_listener_and_its_stop_ends_the_fit_with_its_own_words(tmp_path, shards):
    """`report=True`: each epoch's valid_loss reaches common.callbacks (tune's pruner, step
    = epoch); a listener's Stop ends training after that epoch and reaches the caller as
    raised, not wrapped in fastai's words."""
    from common import callbacks
    heard = []
    train, valid = loaders(shards)
    with callbacks.listening(lambda step, value: heard.append((step, value))):
        trainers.train(nn.Sequential(nn.Linear(8, 3)), train, valid, nn.BCEWithLogitsLoss(), tmp_path / "heard",
                       epochs=3, lr=1e-2, quiet=True, report=True)
    history = np.loadtxt(tmp_path / "heard" / "history.csv", delimiter=",", skiprows=1, usecols=2)
    assert [step for step, _ in heard] == [0, 1, 2]
    assert np.allclose([value for _, value in heard], history, atol=1e-5)

    def prune(step, value):
        if step == 1:
            raise callbacks.Stop(f"pruned after epoch {step + 1}")
    with callbacks.listening(prune), pytest.raises(callbacks.Stop) as stopped:
        trainers.train(nn.Sequential(nn.Linear(8, 3)), train, valid, nn.BCEWithLogitsLoss(), tmp_path / "pruned",
                       epochs=5, lr=1e-2, quiet=True, report=True)
    assert str(stopped.value) == "pruned after epoch 2"
    assert len((tmp_path / "pruned" / "history.csv").read_text().splitlines()) == 1 + 2   # no epoch after the stop
    with callbacks.listening(prune):   # without report=True nothing is told (a fit of one network per fold)
        trainers.train(nn.Sequential(nn.Linear(8, 3)), train, valid, nn.BCEWithLogitsLoss(), tmp_path / "silent",
                       epochs=2, lr=1e-2, quiet=True)


def test_a_machine_slowed_after_the_first_epoch_gets_its_epochs_replanned_within_the_budget(tmp_path, monkeypatch):
    """A fake clock advanced by each loss call: 1 s a batch in the first epoch (3 training
    and 2 validation batches), 3 s after, as when load arrives mid-run."""
    import json

    calls, now = [], [0.0]

    def slowing_loss(output, target):
        calls.append(1)
        now.append(now[-1] + (1.0 if len(calls) <= 5 else 3.0))
        return nn.functional.binary_cross_entropy_with_logits(output, target)

    monkeypatch.setattr(trainers.Replan, "clock", staticmethod(lambda: now[-1]))
    samples = vector_samples(40)
    batches = [(torch.from_numpy(np.stack([f for _, f, _ in samples[i:i + 8]])),
                torch.from_numpy(np.stack([y for _, _, y in samples[i:i + 8]]))) for i in range(0, 40, 8)]
    train, valid = batches[:3], batches[3:]
    decision = {"epochs": 6, "seconds_per_batch": 1.0, "seconds": 50.0, "most": 6}
    learn = trainers.train(nn.Sequential(nn.Linear(8, 3)), train, valid, slowing_loss, tmp_path / "slowed", epochs=6,
                           lr=1e-2, quiet=True, budget=decision)
    # 5 s, then 15 s an epoch: after the second 30 s are left, two epochs' worth
    assert learn.epochs_done == 4 and now[-1] <= 50
    assert learn.opt.hypers[0]["lr"] < 1e-3   # the one-cycle schedule ended with the run (~5e-3 two thirds into 6 epochs)
    kept = json.loads((tmp_path / "slowed" / "budget.json").read_text())
    assert kept["epochs"] == 4 and kept["spent"] == 50 and kept["replanned"][:2] == [[1, 6], [2, 4]]
    # a machine faster than the first guess: the epochs grow to fill the budget, up to `most`
    now.append(0.0)
    quick = dict(decision, epochs=1, seconds=1000.0, most=3)
    learn = trainers.train(nn.Sequential(nn.Linear(8, 3)), train, valid, slowing_loss, tmp_path / "quick", epochs=1,
                           lr=1e-2, quiet=True, budget=quick)
    assert learn.epochs_done == 3 and learn.budget["epochs"] == 3
