"""Every run in MLflow: params, metrics, per-epoch losses and artifacts read back through
MLflow's own API and a real `mlflow server`; `compete runs`; and a tracking server that
is down or silent never stops a run."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from common import io, runs, tracking
from common.competition import BaseCompetition, OutOfFold, Report
from common.metrics import RMSE_OF_LOGS
from common.options import Options, option
from common.submission import SubmissionFormat
from conftest import label_table, register

NAME = "tracking-demo"


@dataclasses.dataclass
class DemoOptions(Options):
    folds: int = option(3, "folds of the mean-price model")


class TrackingDemo(BaseCompetition):
    """A competition small enough to run in a second: the model is the mean price of
    the other folds; fit leaves per-fold scores and a plot, as real ones do."""

    name = NAME
    platform = "kaggle"
    slug = "house-prices-advanced-regression-techniques"
    metric = RMSE_OF_LOGS
    submission = SubmissionFormat("sample_submission.csv", id_column="Id", domain="positive")
    options = DemoOptions

    def load(self, data_dir: Path) -> pd.DataFrame:
        return io.read_csv(io.find(data_dir, "train.csv"))

    def fit(self, data: pd.DataFrame, options: DemoOptions, run_dir: Path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        prices = data["SalePrice"].to_numpy(dtype=float)
        folds = np.arange(len(prices)) % options.folds
        scores = [RMSE_OF_LOGS(prices[folds == fold], np.full((folds == fold).sum(), prices[folds != fold].mean()))
                  for fold in range(options.folds)]
        figure, axis = plt.subplots()
        axis.plot(scores)
        figure.savefig(Path(run_dir) / "folds.png")
        plt.close(figure)
        others = np.array([prices[folds != fold].mean() for fold in folds])   # each row: the mean of the other folds
        ids = data[["Id"]]
        out_of_fold = OutOfFold(ids.assign(SalePrice=others), ids.assign(SalePrice=prices), folds)
        return float(prices.mean()), Report(cv_score=float(np.mean(scores)), fold_scores=scores, note="mean of the other folds",
                                            out_of_fold=out_of_fold)

    def predict(self, model: float, data) -> pd.DataFrame:
        return pd.DataFrame({"Id": [1461, 1462, 1463], "SalePrice": model})


@pytest.fixture
def demo(monkeypatch, tmp_path):
    register(TrackingDemo, monkeypatch)
    monkeypatch.chdir(tmp_path)  # runs/ and submissions/ land here, not in the checkout
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    pd.DataFrame({"Id": range(1, 31), "SalePrice": rng.integers(100_000, 300_000, 30)}).to_csv(data / "train.csv", index=False)
    (data / "sample_submission.csv").write_text("Id,SalePrice\n1461,180000\n1462,180000\n1463,180000\n")
    return data


def run_dir_of(result) -> Path:
    return Path(next(line for line in result.output.splitlines() if line.startswith("run: ")).split(": ", 1)[1])


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "tracking stopped" in line]


def test_a_run_reads_back_through_search_runs(compete, demo, tracking_store):
    import mlflow
    result = compete.in_process("run", NAME, "--data", demo, "--seed", 3)
    assert result.exit_code == 0, result.output
    run_dir = run_dir_of(result)
    metrics = json.loads((run_dir / "metrics.json").read_text())

    found = mlflow.search_runs(experiment_names=[NAME], filter_string=f"attributes.run_name = '{run_dir.name}'")
    assert len(found) == 1
    row = found.iloc[0]
    assert row["run_id"] == metrics["mlflow_run_id"] and row["status"] == "FINISHED"
    assert row["params.seed"] == "3" and row["params.fast"] == "False" and row["params.folds"] == "3"
    assert "params.quiet" not in found.columns  # how a run talks, not what it computes
    assert row["metrics.cv_score"] == pytest.approx(metrics["cv_score"])
    assert row["metrics.wall_seconds"] > 0 and row["metrics.fit_seconds"] >= 0
    assert row["tags.run_dir"] == str(run_dir.resolve())

    client = mlflow.MlflowClient()
    history = client.get_metric_history(row["run_id"], "fold_scores")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
        [(fold, pytest.approx(score)) for fold, score in enumerate(metrics["fold_scores"])]
    artifacts = {item.path for item in client.list_artifacts(row["run_id"])}
    assert {"metrics.json", "config.json", "log.txt", "folds.png", "submission"} <= artifacts
    submitted = [item.path for item in client.list_artifacts(row["run_id"], "submission")]
    assert submitted == [f"submission/{run_dir.name}.csv"]
    stored = json.loads(Path(client.download_artifacts(row["run_id"], "metrics.json", str(demo.parent))).read_text())
    assert stored["submissions"] == [{"file": metrics["submission"], "sha256": io.sha256(metrics["submission"])}]
    assert not list(Path.cwd().glob("**/mlflow.db")) and not list(Path.cwd().glob("**/mlruns"))


def test_without_a_tracking_uri_runs_are_kept_in_a_store_beside_the_run_directories(compete, demo, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    before = compete.in_process("runs", NAME)
    assert before.exit_code == 0 and "no tracked runs of tracking-demo" in before.output
    assert not Path("runs").exists()  # looking creates no store
    result = compete.in_process("run", NAME, "--data", demo, "--quiet")
    assert result.exit_code == 0, result.output
    run_dir = run_dir_of(result)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mlflow_tracking_uri"] == f"sqlite:///{Path('runs/mlflow.db').resolve()}"
    stored = Path("runs/mlartifacts") / NAME
    assert (next(stored.glob("*/artifacts/metrics.json"))).is_file()
    assert sorted(path.name for path in Path.cwd().iterdir()) == ["data", "runs", "submissions"]  # no mlruns/, no mlflow.db
    after = compete.in_process("runs", NAME)
    assert after.exit_code == 0 and run_dir.name in after.output


def test_compete_runs_lists_newest_first_and_plots_cv_against_lb(compete, demo):
    first = compete.in_process("run", NAME, "--data", demo, "--quiet")
    time.sleep(1.1)  # run directories are named to the second
    second = compete.in_process("run", NAME, "--data", demo, "--seed", 7, "--set", "folds=4", "--quiet")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    older, newer = run_dir_of(first), run_dir_of(second)
    submission = Path(json.loads((older / "metrics.json").read_text())["submission"])
    assert runs.record_leaderboard(TrackingDemo(), submission, 0.4242, "77") == older

    listed = compete.in_process("runs", NAME, "--plot", "cv-lb.png")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["run", "cv", "lb", "options", "wall", "status", "from"]
    rows = {line.split()[0]: line for line in lines[1:] if line.split()[0] in (older.name, newer.name)}
    order = [line.split()[0] for line in lines[1:]]
    assert order.index(newer.name) < order.index(older.name)
    assert "0.4242" in rows[older.name] and "seed=" not in rows[older.name] and "folds=" not in rows[older.name]
    assert "folds=4 seed=7" in rows[newer.name] and "0.4242" not in rows[newer.name]
    assert "plot: cv-lb.png (1 run(s) with both scores)" in listed.output
    from PIL import Image
    with Image.open("cv-lb.png") as image:
        assert image.format == "PNG" and image.size[0] > 300


def test_the_table_names_each_runs_study_or_blend_and_compare_shows_what_differs(compete, demo):
    """`compete runs` says which study trial or blend made a run; `--compare` puts two runs'
    scores side by side, then only the options (or a blend's members) that differ."""
    first = run_dir_of(compete.in_process("run", NAME, "--data", demo, "--quiet", "--seed", 1, check=True))
    time.sleep(1.1)  # run directories are named to the second
    second = run_dir_of(compete.in_process("run", NAME, "--data", demo, "--quiet", "--seed", 2, "--set", "folds=3", check=True))
    blended = run_dir_of(compete.in_process("blend", NAME, first, second, "--data", demo, check=True))
    tuned = compete.in_process("tune", NAME, "--data", demo, "--trials", 2, "--search", "folds=2..5", "--quiet", check=True)
    study = re.search(r"^study (\S+) ", tuned.output, re.M).group(1)
    trials = [Path(line.rsplit("run: ", 1)[1]) for line in tuned.output.splitlines() if line.startswith("trial ")]
    assert len(trials) == 2

    table = compete.in_process("runs", NAME, check=True).output.splitlines()
    made_by = {line.split()[0]: line.rstrip() for line in table[1:] if line.strip()}
    assert made_by[blended.name].endswith(f"blend of {first.name},{second.name}")
    for number, trial in enumerate(trials):
        assert made_by[trial.name].endswith(f"study {study} #{number}")
    assert not made_by[first.name].endswith(("#0", "#1", second.name))   # a plain run: made by neither

    compared = compete.in_process("runs", NAME, "--compare", first, second, check=True).output.splitlines()
    assert compared[0].split() == [first.name, second.name]
    rows = {line.split()[0]: line.split()[1:] for line in compared[1:]}
    cv = [json.loads((run / "metrics.json").read_text())["cv_score"] for run in (first, second)]
    assert rows["cv"][0] == "rmsle" and [float(value) for value in rows["cv"][1:]] == pytest.approx(cv, abs=1e-5)
    assert rows["seed"] == ["1", "2"] and "folds" not in rows and "fast" not in rows   # only what differs
    against = compete.in_process("runs", NAME, "--compare", blended, trials[0], check=True).output.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in against[1:]}
    assert rows["from"][:3] == ["blend", "of", f"{first.name},{second.name}"] and rows["from"][3:] == ["study", study, "#0"]
    assert rows["members"][0] == f"{first.name},{second.name}"
    gone = compete.in_process("runs", NAME, "--compare", first, "no-such-run")
    assert gone.exit_code == 2 and gone.stdout == "" and "no-such-run: not a run directory (no config.json)" in gone.stderr


def test_the_leaderboard_score_is_found_from_a_copy_of_the_submission(compete, demo, tmp_path):
    import mlflow
    result = compete.in_process("run", NAME, "--data", demo, "--quiet")
    run_dir = run_dir_of(result)
    copy = tmp_path / "elsewhere.csv"
    copy.write_bytes(Path(json.loads((run_dir / "metrics.json").read_text())["submission"]).read_bytes())
    assert runs.record_leaderboard(TrackingDemo(), copy, 0.5, None) == run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["lb_score"] == 0.5
    assert mlflow.MlflowClient().get_run(metrics["mlflow_run_id"]).data.metrics["lb_score"] == 0.5
    stranger = tmp_path / "stranger.csv"
    stranger.write_text("Id,SalePrice\n1461,1\n1462,1\n1463,1\n")
    assert runs.record_leaderboard(TrackingDemo(), stranger, 0.5, None) is None


def test_fit_then_predict_records_the_file_on_the_run_it_came_from(compete, demo, tmp_path):
    import mlflow
    fitted = compete.in_process("fit", NAME, "--data", demo, "--quiet")
    assert fitted.exit_code == 0, fitted.output
    run_dir = run_dir_of(fitted)
    for name in ("first.csv", "second.csv"):
        made = compete.in_process("predict", NAME, "--data", demo, "--run-dir", run_dir, "--out", tmp_path / name)
        assert made.exit_code == 0, made.output
    assert runs.record_leaderboard(TrackingDemo(), tmp_path / "first.csv", 0.3) == run_dir
    run_id = json.loads((run_dir / "metrics.json").read_text())["mlflow_run_id"]
    client = mlflow.MlflowClient()
    assert client.get_run(run_id).data.metrics["lb_score"] == 0.3
    assert {item.path for item in client.list_artifacts(run_id, "submission")} == {"submission/first.csv",
                                                                                   "submission/second.csv"}


def test_epoch_losses_from_the_shared_trainer_reach_mlflow_as_they_happen(tmp_path, tracking_store):
    import mlflow
    import torch
    from fastai.callback.core import Callback
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from common import trainers

    seen_live = []

    class AskMlflow(Callback):  # after the tracking callback, while training still runs
        order = 57

        def after_epoch(self):
            history = mlflow.MlflowClient().get_metric_history(tracker.run_id, "cnn/fold1/valid_loss")
            seen_live.append(sorted(m.step for m in history))

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(64)
    loader = DataLoader(TensorDataset(x, y[:, None]), batch_size=16)
    run_dir = tmp_path / "20300101-000000-seed0"
    with tracking.scope() as tracker:
        tracker.start("trainer-demo", run_dir, {"epochs": 3}, {})
        trainers.train(nn.Linear(4, 1), loader, loader, nn.MSELoss(), run_dir / "cnn" / "fold1", epochs=3,
                       lr=0.05, quiet=True, cbs=[AskMlflow()])
    assert seen_live == [[0], [0, 1], [0, 1, 2]]
    client = mlflow.MlflowClient()
    csv = pd.read_csv(run_dir / "cnn" / "fold1" / "history.csv")
    for name in ("train_loss", "valid_loss"):
        logged = sorted(client.get_metric_history(tracker.run_id, f"cnn/fold1/{name}"), key=lambda m: m.step)
        assert [m.value for m in logged] == pytest.approx(csv[name].tolist(), rel=1e-5)
    assert client.get_run(tracker.run_id).info.status == "FINISHED"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1, its own store in tmp; stopped after the test."""
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        log.close()


@pytest.mark.slow
def test_a_run_reads_back_from_a_real_mlflow_server_over_rest(compete, demo, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = compete.in_process("run", NAME, "--data", demo, "--seed", 2, "--quiet")
    assert result.exit_code == 0, result.output
    assert not warnings_of(result)
    run_dir = run_dir_of(result)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mlflow_tracking_uri"] == mlflow_server

    api = f"{mlflow_server}/api/2.0/mlflow"
    experiment = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": NAME}, timeout=10).json()
    found = requests.post(f"{api}/runs/search", json={"experiment_ids": [experiment["experiment"]["experiment_id"]]},
                          timeout=10).json()["runs"]
    assert [run["info"]["run_id"] for run in found] == [metrics["mlflow_run_id"]]
    data = found[0]["data"]
    params = {item["key"]: item["value"] for item in data["params"]}
    values = {item["key"]: item["value"] for item in data["metrics"]}
    assert params["seed"] == "2" and values["cv_score"] == pytest.approx(metrics["cv_score"])
    assert found[0]["info"]["status"] == "FINISHED"
    listed = requests.get(f"{api}/artifacts/list", params={"run_id": metrics["mlflow_run_id"]}, timeout=10).json()
    assert {"metrics.json", "folds.png"} <= {item["path"] for item in listed["files"]}

    shown = compete.in_process("runs", NAME)
    assert shown.exit_code == 0 and run_dir.name in shown.output and "seed=2" in shown.output


class Failing(ThreadingHTTPServer):
    """A tracking server that answers its health check, then fails every call (503)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FailingHandler)
        self.calls = 0


class FailingHandler(BaseHTTPRequestHandler):
    server: Failing

    def log_message(self, *args):
        pass

    def _answer(self):
        self.server.calls += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = 200 if self.path.startswith("/health") else 503
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK" if status == 200 else b"no")

    do_GET = do_POST = _answer


@pytest.fixture
def unreachable(request, monkeypatch):
    """A tracking URI where nothing listens, where something listens and never answers,
    or where a server answers only errors."""
    if request.param == "refused":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
        yield
    elif request.param == "silent":
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)  # connections queue and no byte ever comes back
            monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{silent.getsockname()[1]}")
            yield
    else:
        server = Failing()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_address[1]}")
        yield
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(240)  # MLflow's own retries, unbounded, would take minutes per call
@pytest.mark.parametrize("unreachable", ["refused", "silent", "failing"], indirect=True)
def test_an_unreachable_tracking_server_is_one_warning_and_the_run_goes_on(compete, demo, unreachable):
    result = compete.in_process("run", NAME, "--data", demo)
    assert result.exit_code == 0, result.output
    assert len(warnings_of(result)) == 1, result.stderr
    assert "the run goes on" in warnings_of(result)[0] and "127.0.0.1" in warnings_of(result)[0]
    run_dir = run_dir_of(result)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "cv_score" in metrics and "mlflow_run_id" not in metrics
    assert Path(metrics["submission"]).is_file() and (run_dir / "folds.png").is_file()
    listed = compete.in_process("runs", NAME)
    assert listed.exit_code == 2 and "cannot read the tracked runs" in listed.output


def test_listing_and_help_import_no_mlflow(tmp_path):
    code = ("import sys, cli\n"
            "for args in (['--help'], ['list']):\n"
            "    try:\n"
            "        cli.main(args)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout + done.stderr


# Each process opens its MLflow run the moment the test says go, on a store none has made yet.
TOGETHER = """
import sys, time
from pathlib import Path
import mlflow  # noqa: F401  (imported before the start line: the processes meet at the store, not at imports)
from common import tracking
folder = Path(sys.argv[1])
(folder / f"ready-{sys.argv[2]}").touch()
while not (folder / "go").exists():
    time.sleep(0.01)
with tracking.scope() as tracker:
    tracker.start("together", folder / f"run-{sys.argv[2]}", {"seed": sys.argv[2]}, {})
    tracker.log_metrics({"cv_score": 0.5})
print(tracker.active)
"""


def test_runs_started_together_on_a_new_store_are_all_recorded(tmp_path):
    """MLflow makes a new SQLite store by migrating it on first use; two processes doing it
    at once used to break each other ("duplicate column name"), and one run was lost."""
    import mlflow
    store = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    environment = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    processes = [subprocess.Popen([sys.executable, "-c", TOGETHER, str(tmp_path), str(seed)], env=environment,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [out.strip() for out, _ in outputs] == ["True"] * 2, outputs
    assert not any("tracking stopped" in err for _, err in outputs), outputs
    client = mlflow.MlflowClient(store)
    found = client.search_runs([client.get_experiment_by_name("together").experiment_id])
    assert sorted(run.data.params["seed"] for run in found) == ["0", "1"]
    assert {run.info.status for run in found} == {"FINISHED"}


def test_the_experiment_opens_on_its_training_runs_with_the_cv_score_a_column(compete, demo):
    import mlflow
    result = compete.in_process("run", NAME, "--data", demo, "--quiet")
    assert result.exit_code == 0, result.output
    experiment = mlflow.MlflowClient().get_experiment_by_name(NAME)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags["mlflow.sharedViewState.compete"])
    assert isinstance(view["name"], str) and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    assert state["selectedColumns"][0] == "metrics.`cv_score`" and state["orderByKey"] == "metrics.`cv_score`"
    assert state["orderByAsc"] is True  # RMSLE: the lowest, the best, first
    listed = compete.in_process("runs", NAME)
    link = next(line for line in listed.output.splitlines() if line.startswith("browse: "))
    assert f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=compete" in link


def test_runs_of_a_platform_slug_name_the_metric_of_its_folder(compete, tmp_path, monkeypatch):
    """A `kaggle:SLUG` run is scored by the metric its folder says (accuracy for labels):
    `runs --compare` and `runs --plot` name that one, not the generic class's placeholder."""
    monkeypatch.chdir(tmp_path)
    folder = label_table(tmp_path / "table")
    name = "kaggle:labels-demo"
    made = [run_dir_of(compete.in_process("run", name, "--data", folder, "--fast", "--quiet", check=True))] * 2
    metric = json.loads((made[0] / "metrics.json").read_text())["metric"]
    assert metric == "accuracy"
    compared = compete.in_process("runs", name, "--compare", *made, check=True)
    assert compared.output.splitlines()[1].split()[:2] == ["cv", metric]
    from competitions import REGISTRY
    submission = Path(json.loads((made[0] / "metrics.json").read_text())["submission"])
    assert runs.record_leaderboard(REGISTRY.competition(name), submission, 0.7, "1") == made[0]
    drawn = {}
    monkeypatch.setattr(tracking, "plot_cv_against_leaderboard",
                        lambda cv, lb, labels, path, title, metric, competition: drawn.update(metric=metric) or path)
    compete.in_process("runs", name, "--plot", tmp_path / "cv-lb.png", check=True)
    assert drawn == {"metric": metric}
