"""The project's stand-in for Kaggle's `kaggle_evaluation` (tests/fixtures/kaggle_evaluation):
a notebook serving `predict` and the demo competition's gateway, as separate processes
over 127.0.0.1 the way the rerun runs them in two containers, or in one process the way
a notebook tests itself with `run_local_gateway`.

Each test copies the package into a synthetic competition folder, as Kaggle ships it
inside the competition's data, and gives the processes ports of their own
(COMPETE_GRPC_PORTS) so that parallel runs on one machine do not meet.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("grpc")

FIXTURE = Path(__file__).parent / "fixtures" / "kaggle_evaluation"
TEST = pd.DataFrame({"id": [10, 11, 12, 20, 21, 30], "batch": [1, 1, 1, 2, 2, 3], "x": [1.0, 2, 3, 4, 5, 6]})

NOTEBOOK = """\
import os, sys, time
import pandas as pd
import kaggle_evaluation.demo_inference_server

calls = 0

def predict(batch):
    global calls
    calls += 1
{body}
    return pd.DataFrame({{"prediction": batch["x"] * 2}})

server = kaggle_evaluation.demo_inference_server.DemoInferenceServer(predict)
if os.getenv("KAGGLE_IS_COMPETITION_RERUN"):
    server.serve()
else:
    server.run_local_gateway({data_paths})
print("notebook done", flush=True)
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


class Rerun:
    """A competition folder holding the package and test.csv, a notebook, and the runs."""

    def __init__(self, root: Path, ports: list[int]):
        self.data = root / "competition"
        self.data.mkdir()
        shutil.copytree(FIXTURE, self.data / "kaggle_evaluation", ignore=shutil.ignore_patterns("__pycache__"))
        TEST.to_csv(self.data / "test.csv", index=False)
        self.working = root / "working"   # the notebook's /kaggle/working
        self.working.mkdir()
        self.output = root / "gateway"    # the gateway container's working directory
        self.output.mkdir()
        self.env = {key: value for key, value in os.environ.items() if key != "KAGGLE_IS_COMPETITION_RERUN"}
        self.env.update(PYTHONPATH=str(self.data), COMPETE_GRPC_PORTS=",".join(map(str, ports)),
                        PYTHONDONTWRITEBYTECODE="1")
        self.server: subprocess.Popen | None = None

    def notebook(self, body: str = "", data_paths: str = "None") -> Path:
        path = self.working / "notebook.py"
        path.write_text(NOTEBOOK.format(body=textwrap.indent(textwrap.dedent(body), "    "), data_paths=data_paths))
        return path

    def run_local(self, body: str = "") -> subprocess.CompletedProcess:
        script = self.notebook(body, data_paths=f"({str(self.data)!r},)")
        return subprocess.run([sys.executable, str(script)], cwd=self.working, env=self.env,
                              capture_output=True, text=True, check=False, timeout=120)

    def start_server(self, body: str = "") -> subprocess.Popen:
        script = self.notebook(body)
        self.server = subprocess.Popen([sys.executable, str(script)], cwd=self.working,
                                       env={**self.env, "KAGGLE_IS_COMPETITION_RERUN": "True"},
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self.server

    def run_gateway(self, **settings) -> tuple[dict, float]:
        env = {**self.env, "KAGGLE_IS_COMPETITION_RERUN": "True", "COMPETE_INFERENCE_SERVER_HOST": "127.0.0.1",
               **{key: str(value) for key, value in settings.items()}}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "kaggle_evaluation.demo_gateway"], cwd=self.output, env=env,
                              capture_output=True, text=True, check=False, timeout=120)
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        return json.loads((self.output / "result.json").read_text()), elapsed

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait(timeout=30)


@pytest.fixture
def rerun(tmp_path):
    run = Rerun(tmp_path, free_ports(2))
    yield run
    run.stop()


def expected_submission() -> pd.DataFrame:
    return pd.DataFrame({"id": TEST["id"], "prediction": TEST["x"] * 2})


def test_local_gateway_in_the_notebook_writes_the_parquet_row_ids_first(rerun):
    done = rerun.run_local()
    assert done.returncode == 0, done.stderr
    assert "notebook done" in done.stdout
    submission = pd.read_parquet(rerun.working / "submission.parquet")
    assert list(submission.columns) == ["id", "prediction"]
    pd.testing.assert_frame_equal(submission, expected_submission())
    # outside the rerun Kaggle's gateway raises its errors and writes no result.json
    assert not (rerun.working / "result.json").exists()


def test_local_gateway_raises_a_wrong_answer_in_the_notebook(rerun):
    done = rerun.run_local('return pd.DataFrame({"prediction": [0.0]})')
    assert done.returncode != 0
    assert "INVALID_SUBMISSION" in done.stderr and "expected 3 rows but received 1" in done.stderr


def test_server_and_gateway_as_two_processes_pass(rerun):
    server = rerun.start_server()
    result, _ = rerun.run_gateway()
    assert result == {"Succeeded": True}
    pd.testing.assert_frame_equal(pd.read_parquet(rerun.output / "submission.parquet"), expected_submission())
    # in the rerun serve() blocks: the notebook is still serving after the gateway is done
    assert server.poll() is None


def test_serve_returns_at_once_outside_the_rerun(rerun):
    script = rerun.notebook().read_text().replace("server.run_local_gateway(None)", "server.serve()")
    (rerun.working / "notebook.py").write_text(script)
    done = subprocess.run([sys.executable, "notebook.py"], cwd=rerun.working, env=rerun.env,
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "notebook done" in done.stdout


def test_server_on_the_fallback_port_is_found(rerun):
    first, _ = map(int, rerun.env["COMPETE_GRPC_PORTS"].split(","))
    # Something else holds the first port, as 50051 may be. Bound, not listening: a listener
    # that speaks no HTTP/2 would hold the gateway's first call ~20 s before gRPC gives up on it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        rerun.start_server()
        result, _ = rerun.run_gateway()
    assert result == {"Succeeded": True}


def test_wrong_row_count_is_an_invalid_submission(rerun):
    rerun.start_server('if calls == 2:\n    return pd.DataFrame({"prediction": [1.0, 2.0, 3.0]})')
    result, _ = rerun.run_gateway()
    assert result["Succeeded"] is False
    assert (result["ErrorType"], result["ErrorName"]) == (6, "INVALID_SUBMISSION")
    assert "expected 2 rows but received 3" in result["ErrorDetails"]
    assert not (rerun.output / "submission.parquet").exists()


def test_wrong_columns_are_an_invalid_submission(rerun):
    rerun.start_server('return pd.DataFrame({"SalePrice": batch["x"]})')
    result, _ = rerun.run_gateway()
    assert result["ErrorName"] == "INVALID_SUBMISSION" and "SalePrice" in result["ErrorDetails"]


def test_exception_in_predict_is_reported_with_its_message(rerun):
    rerun.start_server('raise ValueError("model file missing")')
    result, _ = rerun.run_gateway()
    assert (result["ErrorType"], result["ErrorName"]) == (3, "SERVER_RAISED_EXCEPTION")
    assert "model file missing" in result["ErrorDetails"]


def test_server_that_never_starts_fails_at_the_start_limit(rerun):
    result, elapsed = rerun.run_gateway(COMPETE_STARTUP_LIMIT_SECONDS=2)
    assert (result["ErrorType"], result["ErrorName"]) == (1, "SERVER_NEVER_STARTED")
    assert 2 <= elapsed < 30


def test_slow_later_call_fails_at_its_deadline(rerun):
    rerun.start_server("if calls == 2:\n    time.sleep(4)")
    result, elapsed = rerun.run_gateway(COMPETE_RESPONSE_TIMEOUT_SECONDS=1)
    assert (result["ErrorType"], result["ErrorName"]) == (7, "GRPC_DEADLINE_EXCEEDED")
    assert elapsed < 4 + 15   # it gave up at the deadline, not after the call


def test_slow_first_call_has_no_deadline(rerun):
    rerun.start_server("if calls == 1:\n    time.sleep(3)")
    result, elapsed = rerun.run_gateway(COMPETE_RESPONSE_TIMEOUT_SECONDS=1)
    assert result == {"Succeeded": True}
    assert elapsed >= 3


def test_real_defaults_are_kept():
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("COMPETE_") and key != "KAGGLE_IS_COMPETITION_RERUN"}
    env["PYTHONPATH"] = str(FIXTURE.parent)
    code = ("from kaggle_evaluation.core import relay, base_gateway; import kaggle_evaluation.demo_gateway as g; "
            "print(relay.GRPC_PORTS, relay.STARTUP_LIMIT_SECONDS, relay.DEFAULT_DEADLINE_SECONDS, "
            "base_gateway.server_host(), g.DemoGateway().client.endpoint_deadline_seconds)")
    done = subprocess.run([sys.executable, "-B", "-c", code], env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[50051,", *[f"{port}," for port in range(60053, 60062)], "60062]",
                                   "900.0", "3600", "localhost", "300.0"]
    rerun_env = {**env, "KAGGLE_IS_COMPETITION_RERUN": "True"}
    code = "from kaggle_evaluation.core import base_gateway as b; print(b.server_host())"
    done = subprocess.run([sys.executable, "-B", "-c", code], env=rerun_env, capture_output=True, text=True, check=False, timeout=60)
    assert done.stdout.strip() == "inference_server"
