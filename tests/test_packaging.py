"""common.packaging: the bundle, and the local hidden-test runtime passing a good
bundle and failing bad ones (network, time limit, crash, bad output, zip escape)."""
from __future__ import annotations

import json
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from common import io, packaging
from common.competition import get
from competitions.serengeti import model as M

needs_sandbox = pytest.mark.skipif(not packaging.sandbox_available()[0], reason="unshare --net --mount unavailable here")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("serengeti")
    get("serengeti").synth(out, seed=1, scale="small")
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An untrained network starting at a prior: enough to make a valid bundle fast."""
    import torch
    torch.manual_seed(0)
    prior = np.full(len(M.CLASSES), 0.02)
    path = tmp_path_factory.mktemp("run")
    M.SerengetiModel(M.SerengetiNet().start_at(prior), prior).save(path / M.WEIGHTS)
    return path


@pytest.fixture(scope="module")
def bundle(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "submission.zip"
    packaging.build(get("serengeti"), run_dir, out, dockerfile=True)
    return out


def test_bundle_holds_main_weights_and_only_the_code_it_needs(bundle, run_dir, tmp_path):
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {"main.py", "model.pt", "bundle.json", "competitions/serengeti/model.py", "competitions/serengeti/data.py",
            "common/io.py", "common/submission.py"} <= names
    # no training code, no registry, no other competition
    assert not {"competitions/serengeti/synth.py", "common/trainers.py", "common/loaders.py", "common/competition.py",
                "cli.py"} & names
    assert not any(name.startswith("competitions/house_prices") for name in names)
    stub = zipfile.ZipFile(bundle).read("competitions/serengeti/__init__.py").decode()
    assert stub == packaging.STUB_INIT
    manifest = json.loads(zipfile.ZipFile(bundle).read("bundle.json"))
    assert manifest["competition"] == "serengeti" and any(r.startswith("torch==") for r in manifest["requirements"])
    # same run, same bundle bytes
    again = tmp_path / "again.zip"
    packaging.build(get("serengeti"), run_dir, again)
    assert again.read_bytes() == bundle.read_bytes()


def test_dockerfile_follows_the_drivendata_layout(bundle):
    context = bundle.with_name("submission_runtime")
    dockerfile = (context / "Dockerfile").read_text()
    assert "--network none" in dockerfile and "/code_execution/data" in dockerfile and "readonly" in dockerfile
    assert "python main.py" in (context / "entrypoint.sh").read_text()
    assert "torch==" in (context / "requirements.txt").read_text()


def test_package_needs_a_trained_run(tmp_path):
    with pytest.raises(io.InputError, match="model.pt: not found"):
        packaging.build(get("serengeti"), tmp_path, tmp_path / "s.zip")
    with pytest.raises(io.InputError, match="not a code competition"):
        packaging.build(get("house-prices"), tmp_path, tmp_path / "s.zip")


@needs_sandbox
def test_good_bundle_passes_with_read_only_data(bundle, data, tmp_path):
    result = packaging.run_bundle(bundle, data, out=tmp_path / "submission.csv", time_limit=300)
    assert result.ok, result.reason + "\n" + result.log.read_text()
    assert result.isolated
    frame = io.read_csv(tmp_path / "submission.csv")
    sample = io.read_csv(data / "submission_format.csv")
    assert list(frame.columns) == list(sample.columns) and len(frame) == len(sample)
    log = result.log.read_text()
    assert "unreadable" in log  # the corrupt and missing test images are reported, not fatal


def make_bundle(path: Path, main: str, members: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("main.py", main)
        archive.writestr("bundle.json", json.dumps({"competition": "serengeti"}))
        for name, content in (members or {}).items():
            archive.writestr(name, content)
    return path


COPY_FORMAT = """
import os, shutil
from pathlib import Path
data = Path(os.environ["COMPETE_DATA_DIR"])
out = Path(os.environ["COMPETE_SUBMISSION_DIR"]) / "submission.csv"
shutil.copy(data / "submission_format.csv", out)
"""


@needs_sandbox
def test_bundle_that_reaches_for_the_network_fails(data, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    connections = []

    def accept():
        for _ in range(40):
            try:
                connections.append(server.accept())
            except OSError:
                pass

    thread = threading.Thread(target=accept)
    thread.start()
    main = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'leak')\n" + COPY_FORMAT
    result = packaging.run_bundle(make_bundle(tmp_path / "net.zip", main), data, time_limit=60)
    thread.join()
    server.close()
    assert not result.ok and "network" in result.reason
    assert connections == []


@needs_sandbox
def test_bundle_over_the_time_limit_is_killed(data, tmp_path):
    main = "import subprocess, time\nsubprocess.Popen(['sleep', '300'])\ntime.sleep(300)\n"
    result = packaging.run_bundle(make_bundle(tmp_path / "slow.zip", main), data, time_limit=3)
    assert not result.ok and "time limit of 3 s exceeded" in result.reason
    assert result.seconds < 30


@needs_sandbox
def test_bundle_that_crashes_fails_with_its_last_line(data, tmp_path):
    result = packaging.run_bundle(make_bundle(tmp_path / "crash.zip", "raise SystemExit('model file is gone')\n"), data, time_limit=60)
    assert not result.ok and "exited with code 1" in result.reason and "model file is gone" in result.reason


@needs_sandbox
def test_bundle_cannot_write_into_the_data(data, tmp_path):
    main = "import os\nopen(os.path.join(os.environ['COMPETE_DATA_DIR'], 'planted.txt'), 'w').write('x')\n" + COPY_FORMAT
    result = packaging.run_bundle(make_bundle(tmp_path / "write.zip", main), data, time_limit=60)
    assert not result.ok and "Read-only file system" in result.reason
    assert not (data / "planted.txt").exists()


@needs_sandbox
def test_bundle_writing_a_bad_file_fails_validation(data, tmp_path):
    main = COPY_FORMAT + "out.write_text(out.read_text().replace('0.0', '1.5', 1))\n"
    result = packaging.run_bundle(make_bundle(tmp_path / "bad.zip", main), data, time_limit=60)
    assert not result.ok and "invalid" in result.reason and "out_of_domain" in result.reason
    missing = packaging.run_bundle(make_bundle(tmp_path / "none.zip", "print('forgot')\n"), data, time_limit=60)
    assert not missing.ok and "no submission.csv" in missing.reason


@needs_sandbox
def test_bundle_missing_a_module_fails_here_as_on_the_platform(data, tmp_path):
    # the project is installed in this environment; the runtime must not let the bundle see it
    main = "from competitions.serengeti.model import bundle_main\n" + COPY_FORMAT
    result = packaging.run_bundle(make_bundle(tmp_path / "incomplete.zip", main), data, time_limit=60)
    assert not result.ok and "ModuleNotFoundError" in result.reason


def test_zip_path_escape_is_refused(data, tmp_path):
    bundle = make_bundle(tmp_path / "evil.zip", COPY_FORMAT, {"../escaped.py": "print('out')"})
    with pytest.raises(io.InputError, match="escapes"):
        packaging.run_bundle(bundle, data, workdir=tmp_path / "work")
    assert not (tmp_path / "escaped.py").exists()


def test_cli_reports_one_line_and_exit_codes(data, tmp_path):
    runner = CliRunner()
    bad = make_bundle(tmp_path / "crash.zip", "raise SystemExit(3)\n")
    result = runner.invoke(cli.main, ["runtime", "test", str(bad), "--data", str(data), "--time-limit", "60"])
    if packaging.sandbox_available()[0]:
        assert result.exit_code == 1 and "FAILED: main.py exited with code 3" in result.output
    evil = make_bundle(tmp_path / "evil.zip", COPY_FORMAT, {"../../x.py": ""})
    result = runner.invoke(cli.main, ["runtime", "test", str(evil), "--data", str(data)])
    assert result.exit_code == 2 and "escapes the extraction folder" in result.output and "Traceback" not in result.output
