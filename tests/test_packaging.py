"""common.packaging and common.runtimes: the bundle, and the local hidden-test runtime
emulating a profile (paths, read-only data, no network, limits, environment check)
passing good bundles and failing bad ones, each with one clear reason."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cli
from common import io, packaging, runtimes
from common.runtimes import environment, runner
from competitions import REGISTRY
from competitions.serengeti import model as serengeti_model

needs_sandbox = pytest.mark.skipif(not runner.sandbox_available()[0], reason="no mount/network namespaces here")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("serengeti")
    REGISTRY.competition("serengeti").synth(out, seed=1, scale="small")
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An untrained network starting at a prior, saved as a run of before the ONNX
    export (model.pt only): enough to make a real bundle fast."""
    import torch
    torch.manual_seed(0)
    prior = np.full(len(serengeti_model.CLASSES), 0.02)
    path = tmp_path_factory.mktemp("run")
    serengeti_model.SerengetiModel(serengeti_model.SerengetiNet().start_at(prior), prior).save(path / serengeti_model.WEIGHTS)
    (path / "config.json").write_text(json.dumps({"competition": "serengeti"}))  # what `compete predict` checks a run by
    return path


@pytest.fixture(scope="module")
def bundle(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "submission.zip"
    packaging.build_bundle(REGISTRY.competition("serengeti"), run_dir, out, dockerfile=True)
    return out


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A private temp folder for the run's scratch space, to see what is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def run_bundle(bundle: Path, data: Path, competition: str | None = None, **options):
    """The runtime test as `compete runtime test` calls it."""
    return runner.run_test(bundle, runner.resolve(REGISTRY, bundle, data, competition), data, **options)


def make_bundle(path: Path, main: str, members: dict | None = None, manifest: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("main.py", main)
        if manifest:
            archive.writestr("bundle.json", json.dumps({"competition": "serengeti"}))
        for name, content in (members or {}).items():
            archive.writestr(name, content)
    return path


# DrivenData's benchmark style (drivendataorg/ai4earth-serengeti-runtime,
# benchmark/inference-py/main.py): data at /inference/data, submission.csv written into
# the working directory, beside main.py.
BENCHMARK = """
import logging
from pathlib import Path

import numpy as np
import pandas as pd

logging.basicConfig(level=logging.INFO)
DATA_PATH = Path("/inference/data")
submission_format = pd.read_csv(DATA_PATH / "submission_format.csv", index_col=0)
test_metadata = pd.read_csv(DATA_PATH / "test_metadata.csv")
logging.info("%d sequences, %d images", len(submission_format), len(test_metadata))
assert Path("/inference/submission/submission.zip").is_file()   # the zip stays where the runtime put it
output = pd.DataFrame(np.full(submission_format.shape, 0.02), index=submission_format.index,
                      columns=submission_format.columns)
output.to_csv("submission.csv", index=True)
"""

COPY_FORMAT = """
import shutil
shutil.copy("/inference/data/submission_format.csv", "submission.csv")
"""


# ---------------------------------------------------------------- profiles

def test_profiles_are_data_citing_their_repository(compete):
    assert {"hakuna-madata", "snomed-ct"} <= set(runtimes.names())
    hakuna = runtimes.profile("hakuna-madata")
    assert "drivendataorg/ai4earth-serengeti-runtime" in hakuna.source and "runtime/entrypoint.sh" in hakuna.source
    assert (hakuna.root, hakuna.data, hakuna.output, hakuna.python) == ("/inference", "/inference/data", "submission.csv", "3.6.9")
    assert hakuna.version_of("onnxruntime") == (True, "1.1.0") and hakuna.version_of("numpy")[0]  # numpy comes with pandas
    assert not hakuna.version_of("tqdm")[0] or hakuna.version_of("tqdm")[1] is None
    current = runtimes.profile("snomed-ct")
    assert current.data == "/code_execution/data" and "conda-lock" in current.source
    assert current.version_of("numpy") == (True, "1.25.2")
    result = compete.in_process("runtime", "profiles")
    assert result.exit_code == 0 and "hakuna-madata" in result.output and "/code_execution" in result.output
    with pytest.raises(io.InputError, match="known: hakuna-madata"):
        runtimes.profile("nope")


# ---------------------------------------------------------------- the bundle

def test_bundle_holds_main_the_onnx_model_and_only_the_code_it_needs(bundle, run_dir, tmp_path):
    archive = zipfile.ZipFile(bundle)
    names = set(archive.namelist())
    assert {"main.py", "model.onnx", "model.json", "bundle.json", "competitions/serengeti/inference.py"} <= names
    assert not {"competitions/serengeti/model.py", "common/io.py", "model.pt", "cli.py"} & names
    main = archive.read("main.py").decode()
    assert 'Path("/inference/data")' in main and 'HERE / "submission.csv"' in main
    manifest = json.loads(archive.read("bundle.json"))
    assert manifest["profile"] == "hakuna-madata" and manifest["requirements"] == ["numpy", "onnxruntime", "pillow"]
    again = tmp_path / "again.zip"
    packaging.build_bundle(REGISTRY.competition("serengeti"), run_dir, again)
    assert again.read_bytes() == bundle.read_bytes()  # same run, same bundle bytes


def test_the_serengeti_bundle_passes_the_hakuna_madata_checks(bundle, tmp_path):
    import onnx

    zipfile.ZipFile(bundle).extractall(tmp_path / "code")
    assert environment.check(tmp_path / "code", runtimes.profile("hakuna-madata")) == []
    model = onnx.load(str(tmp_path / "code" / "model.onnx"))
    assert max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")) <= 11
    assert model.ir_version <= 6   # onnxruntime 1.1 (microsoft/onnxruntime docs/Versioning.md)


def python36() -> str | None:
    """A Python 3.6 interpreter that runs, if the machine has one (pyenv keeps several)."""
    candidates = [shutil.which("python3.6"), *map(str, sorted(Path.home().glob(".pyenv/versions/3.6*/bin/python3.6")))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


PYTHON36 = python36()


@pytest.mark.skipif(PYTHON36 is None, reason="no Python 3.6 interpreter here to cross-check the syntax check")
def test_a_real_python_36_compiles_every_file_of_the_bundle(bundle, tmp_path):
    zipfile.ZipFile(bundle).extractall(tmp_path / "code")
    files = sorted(str(path) for path in (tmp_path / "code").rglob("*.py"))
    compiled = subprocess.run([PYTHON36, "-m", "py_compile", *files], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr


def test_dockerfile_follows_the_profile(bundle):
    context = bundle.with_name("submission_runtime")
    dockerfile = (context / "Dockerfile").read_text()
    assert "--network none" in dockerfile and "target=/inference/data,readonly" in dockerfile
    assert "FROM python:3.6-slim" in dockerfile
    assert "python main.py" in (context / "entrypoint.sh").read_text()
    assert "onnxruntime==1.1.0" in (context / "requirements.txt").read_text().splitlines()


def test_package_needs_a_trained_run(tmp_path):
    with pytest.raises(io.InputError, match="not found, and no model to make it from"):
        packaging.build_bundle(REGISTRY.competition("serengeti"), tmp_path, tmp_path / "s.zip")
    with pytest.raises(io.InputError, match="not a code competition"):
        packaging.build_bundle(REGISTRY.competition("uberct"), tmp_path, tmp_path / "s.zip")


def test_package_from_your_own_folder_zips_it_as_pack_submission_does(compete, tmp_path):
    folder = tmp_path / "submission_src"
    (folder / "assets").mkdir(parents=True)
    (folder / "main.py").write_text(COPY_FORMAT)
    (folder / "assets" / "weights.bin").write_bytes(b"w")
    (folder / ".env").write_text("SECRET=1")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"x")
    compete.in_process("package", "serengeti", "--from", folder, "--out", tmp_path / "a.zip", check=True)
    assert zipfile.ZipFile(tmp_path / "a.zip").namelist() == ["assets/weights.bin", "main.py"]
    compete.in_process("package", "serengeti", "--from", folder, "--out", tmp_path / "b.zip", check=True)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    (folder / "main.py").unlink()
    missing = compete.in_process("package", "serengeti", "--from", folder, "--out", tmp_path / "c.zip")
    assert missing.exit_code == 2 and "no main.py at its root" in missing.output and not (tmp_path / "c.zip").exists()
    neither = compete.in_process("package", "serengeti", "--out", tmp_path / "d.zip")
    assert neither.exit_code == 2 and "--run-dir" in neither.output


# ---------------------------------------------------------------- the environment check

def check_zip(tmp_path: Path, members: dict, profile="hakuna-madata") -> list[str]:
    code = tmp_path / "unpacked"
    for name, text in members.items():
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        (code / name).write_text(text)
    return environment.check(code, runtimes.profile(profile))


def test_environment_check_names_file_line_and_package(tmp_path):
    problems = check_zip(tmp_path, {
        "main.py": "import helpers.tools\nimport catboost\nfrom PIL import Image\nimport cv2, sklearn\n",
        "helpers/__init__.py": "",
        "helpers/tools.py": "import os\n\nif (n := len(os.sep)):\n    pass\n",
        "later.py": "from __future__ import annotations\nimport dataclasses, formatter\ntry:\n    import xformers\nexcept ImportError:\n    xformers = None\n",
        "requirements.txt": "pandas>=1.0\nonnxruntime\n",
    })
    assert any(p.startswith("main.py:2: imports catboost") for p in problems)
    assert any(p.startswith("helpers/tools.py:3: not valid Python 3.6.9") for p in problems)
    assert any(p.startswith("later.py:1: `from __future__ import annotations`") for p in problems)
    assert any(p.startswith("requirements.txt:1: requires pandas>=1.0; the hakuna-madata runtime has pandas 0.25.1") for p in problems)
    # PIL is pillow, cv2 opencv, sklearn scikit-learn; dataclasses is a 3.6 backport there, formatter still
    # in 3.6's standard library; a guarded import is optional
    assert len(problems) == 4, problems
    # the same files on the 3.10 runtime: the syntax is fine; formatter left the standard library in 3.10, and
    # its lock file has no catboost, opencv or onnxruntime
    current = environment.check(tmp_path / "unpacked", runtimes.profile("snomed-ct"))
    assert [p.split(",")[0] for p in current] == ["later.py:2: imports formatter", "main.py:2: imports catboost",
                                                  "main.py:4: imports cv2",
                                                  "requirements.txt:2: requires onnxruntime"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter, the one for old opsets
def test_an_onnx_model_newer_than_the_runtime_is_named(tmp_path):
    import torch

    code = tmp_path / "code"
    code.mkdir()
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(code / "model.onnx"), opset_version=17, dynamo=False)
    problems = environment.check(code, runtimes.profile("hakuna-madata"))
    assert problems and problems[0].startswith("model.onnx: ONNX opset 17; the hakuna-madata runtime's onnxruntime 1.1.0 reads opsets up to 11")
    assert "has no onnxruntime" in environment.check(code, runtimes.profile("snomed-ct"))[0]


# ---------------------------------------------------------------- running as the runtime does

@needs_sandbox
def test_a_bundle_in_drivendatas_benchmark_style_passes(compete, data, tmp_path, scratch):
    bundle = make_bundle(tmp_path / "benchmark.zip", BENCHMARK, manifest=False)
    result = compete.in_process("runtime", "test", bundle, "--data", data, "--competition", "serengeti", "--out", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    assert "passed on hakuna-madata" in result.output
    frame = pd.read_csv(tmp_path / "out.csv")
    assert list(frame.columns) == list(pd.read_csv(data / "submission_format.csv").columns)
    log = (tmp_path / "benchmark.runtime" / "log.txt").read_text()
    assert "GPU unavailable; falling back to CPU." in log and "90 sequences" in log
    assert not Path("/inference").exists()           # the runtime's paths exist only inside the sandbox
    assert list(scratch.iterdir()) == []             # nothing left in the temp folder


@needs_sandbox
def test_a_python_environment_under_the_temp_folder_still_runs_the_bundle(data, tmp_path):
    """A checkout and its .venv under /tmp (as a CI clone may be) stay visible inside
    the sandbox, whose own /tmp is private: the bundle's interpreter must still start."""
    import site
    import sys
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = next((venv / "lib").glob("python3*/site-packages"))
    (packages / "host.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    bundle = make_bundle(tmp_path / "benchmark.zip", BENCHMARK, manifest=False)
    done = subprocess.run([str(venv / "bin" / "python"), "-c", "import cli; cli.main()", "runtime", "test", str(bundle),
                           "--data", str(data), "--competition", "serengeti"],
                          env={**os.environ, "PYTHONPATH": str(Path(cli.__file__).parent)}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed on hakuna-madata" in done.stdout


@needs_sandbox
def test_the_serengeti_bundle_runs_on_hakuna_madata_and_matches_compete_predict(compete, bundle, run_dir, data, tmp_path):
    result = compete.in_process("runtime", "test", bundle, "--data", data, "--out", tmp_path / "runtime.csv")
    assert result.exit_code == 0, result.output
    compete.in_process("predict", "serengeti", "--data", data, "--run-dir", run_dir, "--out", tmp_path / "predict.csv", check=True)
    ours = pd.read_csv(tmp_path / "runtime.csv").set_index("seq_id")
    theirs = pd.read_csv(tmp_path / "predict.csv").set_index("seq_id")
    assert list(ours.index) == list(theirs.index) and list(ours.columns) == list(theirs.columns)
    assert np.abs(ours.to_numpy() - theirs.to_numpy()).max() <= 1e-5
    log = (bundle.with_name("submission.runtime") / "log.txt").read_text()
    assert "unreadable" in log  # the corrupt and missing test images are counted, not fatal


@needs_sandbox
def test_a_bundle_importing_what_the_runtime_lacks_fails_before_running(compete, data, tmp_path):
    bundle = make_bundle(tmp_path / "catboost.zip", "import catboost\n" + COPY_FORMAT)
    result = compete.in_process("runtime", "test", bundle, "--data", data)
    assert result.exit_code == 1
    assert "main.py:1: imports catboost, which the hakuna-madata runtime does not have" in result.output
    assert "Running submission" not in (tmp_path / "catboost.runtime" / "log.txt").read_text()
    skipped = compete.in_process("runtime", "test", bundle, "--data", data, "--skip-env-check")   # here catboost is installed: it runs
    assert skipped.exit_code == 0 and "environment check against hakuna-madata skipped" in skipped.output


@needs_sandbox
def test_python_38_syntax_in_a_helper_module_fails_naming_file_and_line(compete, data, tmp_path):
    bundle = make_bundle(tmp_path / "walrus.zip", "import helper\n" + COPY_FORMAT,
                         {"helper.py": "import os\n\n\ndef size():\n    if (n := len(os.sep)):\n        return n\n"})
    result = compete.in_process("runtime", "test", bundle, "--data", data)
    assert result.exit_code == 1 and "helper.py:5: not valid Python 3.6.9" in result.output


@needs_sandbox
def test_a_bundle_allocating_past_the_memory_limit_fails_on_memory(compete, data, tmp_path, scratch):
    hog = "import numpy as np\nblocks = [np.ones(50 * 2 ** 20 // 8) for _ in range(30)]\n" + COPY_FORMAT
    result = compete.in_process("runtime", "test", make_bundle(tmp_path / "hog.zip", hog), "--data", data, "--memory-limit", "0.5")
    assert result.exit_code == 1 and "memory limit of 0.5 GB exceeded (memory cgroup" in result.output
    assert list(scratch.iterdir()) == []
    for line in Path("/proc/self/cgroup").read_text().splitlines():   # the child cgroup is gone too (v1 here)
        if ":memory:" in line:
            parent = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/")
            assert not [child for child in parent.iterdir() if child.name.startswith(f"compete-runtime-{os.getpid()}-")]


@needs_sandbox
def test_without_a_cgroup_the_limit_is_rlimit_as_and_says_so(compete, data, tmp_path, monkeypatch):
    from common.runtimes import cgroups

    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path / "no-cgroups")
    hog = "import numpy as np\nblocks = [np.ones(50 * 2 ** 20 // 8) for _ in range(40)]\n" + COPY_FORMAT
    result = compete.in_process("runtime", "test", make_bundle(tmp_path / "hog.zip", hog), "--data", data, "--memory-limit", "1")
    assert result.exit_code == 1
    assert "memory limit of 1 GB exceeded (RLIMIT_AS 1 GB (address space; no memory cgroup controller is mounted))" in result.output


@needs_sandbox
def test_a_torch_bundle_allocating_100_mb_passes_under_2_gb_with_a_plausible_report(compete, data, tmp_path):
    main = "import torch\nx = torch.ones(100 * 2 ** 20 // 4)\nassert x.sum() > 0\n" + COPY_FORMAT
    result = compete.in_process("runtime", "test", make_bundle(tmp_path / "torch.zip", main), "--data", data, "--memory-limit", "2")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "torch.runtime" / "resources.json").read_text())
    assert report["memory_limit"].startswith("memory cgroup") and "2 GB" in report["memory_limit"]
    assert report["peak_memory_mb"] >= 100 and report["peak_rss_mb"] >= 100   # at least what it allocated
    assert report["peak_memory_mb"] < 2048
    assert 0 < report["cpu_seconds"] and 0 < report["wall_seconds"] < 300 and report["gpu_memory_mb"] is None
    assert f"peak memory {report['peak_memory_mb']:.0f} MB" in result.output


@needs_sandbox
def test_a_smoke_run_sees_only_the_first_items(compete, data, tmp_path):
    main = BENCHMARK + "\nassert len(submission_format) == 3, len(submission_format)\n" \
                       "assert set(test_metadata.seq_id) <= set(submission_format.index)\n"
    result = compete.in_process("runtime", "test", make_bundle(tmp_path / "smoke.zip", main), "--data", data, "--smoke", "3",
                          "--out", tmp_path / "smoke.csv")
    assert result.exit_code == 0, result.output
    assert "smoke run: the first 3 row(s) of submission_format.csv" in result.output
    assert len(pd.read_csv(tmp_path / "smoke.csv")) == 3
    assert len(pd.read_csv(data / "submission_format.csv")) == 90   # the data itself is untouched


@needs_sandbox
def test_the_current_runtime_has_its_own_layout(compete, data, tmp_path):
    current = ("import shutil\nshutil.copy('/code_execution/data/submission_format.csv', 'submission.csv')\n"
               "print('predicted the notes')\n")
    bundle = make_bundle(tmp_path / "current.zip", current)
    passed = compete.in_process("runtime", "test", bundle, "--data", data, "--profile", "snomed-ct", "--smoke", "2")
    assert passed.exit_code == 0, passed.output
    assert "predicted the notes" in (tmp_path / "current.runtime" / "log.txt").read_text()   # a smoke test logs
    full = compete.in_process("runtime", "test", bundle, "--data", data, "--profile", "snomed-ct")
    assert full.exit_code == 0, full.output
    # a full run may not log (the entrypoint sends main.py's output to private_log.txt)
    assert "predicted the notes" not in (tmp_path / "current.runtime" / "log.txt").read_text()
    assert "predicted the notes" in (tmp_path / "current.runtime" / "private_log.txt").read_text()
    # a bundle written for Hakuna Ma-data's paths does not find its data there
    failed = compete.in_process("runtime", "test", make_bundle(tmp_path / "old.zip", COPY_FORMAT), "--data", data, "--profile", "snomed-ct")
    assert failed.exit_code == 1 and "/inference/data/submission_format.csv" in failed.output


# ---------------------------------------------------------------- hostile bundles

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
    result = run_bundle(make_bundle(tmp_path / "net.zip", main), data, time_limit=60)
    thread.join()
    server.close()
    assert not result.ok and "network" in result.reason
    assert connections == []


@needs_sandbox
def test_bundle_over_the_time_limit_is_killed(data, tmp_path, scratch):
    main = "import subprocess, time\nsubprocess.Popen(['sleep', '300'])\ntime.sleep(300)\n"
    result = run_bundle(make_bundle(tmp_path / "slow.zip", main), data, time_limit=3)
    assert not result.ok and "time limit of 3 s exceeded" in result.reason
    assert result.seconds < 30
    assert list(scratch.iterdir()) == []


@needs_sandbox
def test_bundle_that_crashes_fails_with_its_last_line(data, tmp_path):
    result = run_bundle(make_bundle(tmp_path / "crash.zip", "raise SystemExit('model file is gone')\n"), data, time_limit=60)
    assert not result.ok and "exited with code 1" in result.reason and "model file is gone" in result.reason


@needs_sandbox
def test_bundle_cannot_write_into_the_data(data, tmp_path):
    main = "open('/inference/data/planted.txt', 'w').write('x')\n" + COPY_FORMAT
    result = run_bundle(make_bundle(tmp_path / "write.zip", main), data, time_limit=60)
    assert not result.ok and "Read-only file system" in result.reason
    assert not (data / "planted.txt").exists()


@needs_sandbox
def test_root_in_the_bundle_cannot_remount_the_data_or_see_the_hosts_processes(data, tmp_path):
    main = ("import os, subprocess\n"
            "remount = subprocess.run(['mount', '-o', 'remount,rw', '/inference/data'], capture_output=True, text=True)\n"
            "assert remount.returncode != 0, 'remounted the data read-write'\n"
            "processes = [entry for entry in os.listdir('/proc') if entry.isdigit()]\n"
            "assert os.getpid() == 1 and len(processes) < 5, processes\n" + COPY_FORMAT)
    result = run_bundle(make_bundle(tmp_path / "root.zip", main), data, time_limit=60)
    assert result.ok, result.reason


@needs_sandbox
def test_the_container_holds_the_test_files_alone_and_nothing_of_the_host(data, tmp_path):
    """Hakuna Ma-data's container holds the test metadata, the submission format and the
    test images: no answers, no training labels or metadata, no training images, and
    nothing of the user's machine (home, this checkout, the folder the data sits in).
    The folders that lead to the Python environment may exist, holding that alone."""
    test_images = sorted({Path(name).parts[0] for name in pd.read_csv(data / "test_metadata.csv")["file_name"]})
    train_images = sorted({Path(name).parts[0] for name in pd.read_csv(data / "train_metadata.csv")["file_name"]})
    from common.runtimes.sandbox import python_environment
    home, checkout = Path.home(), Path(cli.__file__).resolve().parent
    secrets = [checkout / "cli.py", checkout / "README.md", checkout / ".git", data / "train_labels.csv", tmp_path]
    # what of home shows: only the first step of a path that leads to the Python environment
    leading = sorted({Path(path).relative_to(home).parts[0] for path in python_environment() if Path(path).is_relative_to(home)})
    main = (f"import os, json\nfrom pathlib import Path\n"
            f"seen = sorted(os.listdir('/inference/data'))\n"
            f"there = [p for p in {[str(path) for path in secrets]!r} if os.path.exists(p)]\n"
            f"home = sorted(os.listdir({str(home)!r})) if os.path.isdir({str(home)!r}) else []\n"
            f"print(json.dumps({{'seen': seen, 'there': there, 'home': home}}))\n" + COPY_FORMAT)
    result = run_bundle(make_bundle(tmp_path / "peek.zip", main), data, time_limit=60)
    assert result.ok, result.reason
    report = json.loads([line for line in result.log.read_text().splitlines() if line.startswith("{")][-1])
    assert report["seen"] == sorted(["submission_format.csv", "test_metadata.csv", *test_images])
    assert not set(train_images) & set(report["seen"]) and "answers" not in report["seen"]
    assert report["there"] == [] and report["home"] == leading


@needs_sandbox
def test_a_bundle_copying_the_answers_finds_none(data, tmp_path):
    main = "import shutil\nshutil.copy('/inference/data/answers/solution.csv', 'submission.csv')\n"
    result = run_bundle(make_bundle(tmp_path / "cheat.zip", main), data, time_limit=60)
    assert not result.ok and "No such file or directory: '/inference/data/answers/solution.csv'" in result.reason


@needs_sandbox
def test_bundle_cannot_write_outside_its_folders(data, tmp_path):
    planted = Path("/var/tmp") / f"compete-planted-{tmp_path.name}"
    main = f"open({str(planted)!r}, 'w').write('x')\n" + COPY_FORMAT
    result = run_bundle(make_bundle(tmp_path / "escape.zip", main), data, time_limit=60)
    assert not result.ok and ("Read-only file system" in result.reason or "No such file" in result.reason)  # /var is not there
    assert not planted.exists()


@needs_sandbox
def test_bundle_writing_a_bad_file_or_none_fails(data, tmp_path):
    main = COPY_FORMAT + "text = open('submission.csv').read()\nopen('submission.csv', 'w').write(text.replace('0.0', '1.5', 1))\n"
    result = run_bundle(make_bundle(tmp_path / "bad.zip", main), data, time_limit=60)
    assert not result.ok and "submission.csv is invalid" in result.reason and "out_of_domain" in result.reason
    # the old layout's output folder is not where this runtime takes the file from
    elsewhere = "import shutil\nshutil.copy('/inference/data/submission_format.csv', '/inference/submission/submission.csv')\n"
    missing = run_bundle(make_bundle(tmp_path / "none.zip", elsewhere), data, time_limit=60)
    assert not missing.ok and "wrote no submission.csv in its working directory /inference" in missing.reason


@needs_sandbox
def test_bundle_missing_a_module_fails_here_as_on_the_platform(data, tmp_path):
    # the project is installed in this environment; the runtime must not let the bundle see it
    main = "from competitions.serengeti.inference import run\n" + COPY_FORMAT
    result = run_bundle(make_bundle(tmp_path / "incomplete.zip", main), data, time_limit=60, skip_env_check=True)
    assert not result.ok and "ModuleNotFoundError" in result.reason


@needs_sandbox
def test_a_bundle_climbing_out_by_chroot_finds_no_host_to_write_on(data, tmp_path):
    """The classic escape: chroot into a subfolder keeping a descriptor on the root,
    chdir("..") up from it, chroot("."). After pivot_root it climbs to the sandbox's own
    root, where the host's folders are not."""
    target = tmp_path / "outside" / "escaped.txt"
    main = ("import os\nbefore = sorted(os.listdir('/'))\nos.makedirs('/tmp/jail', exist_ok=True)\n"
            "outside = os.open('/', os.O_RDONLY)\nos.chroot('/tmp/jail')\nos.fchdir(outside)\n"
            "for _ in range(64):\n    os.chdir('..')\nos.chroot('.')\n"
            "print('climbed to the same root' if sorted(os.listdir('/')) == before else 'climbed out', flush=True)\n"
            f"try:\n    os.makedirs({str(target.parent)!r}, exist_ok=True)\n    open({str(target)!r}, 'w').write('x')\n"
            f"except OSError as error:\n    print('could not write:', error)\nos.chdir('/inference')\n" + COPY_FORMAT)
    result = run_bundle(make_bundle(tmp_path / "climb.zip", main), data, time_limit=60)
    assert result.ok, result.reason                       # it may pass: it wrote its submission
    assert "climbed to the same root" in result.log.read_text()
    assert not target.exists() and not target.parent.exists()


@needs_sandbox
def test_a_fork_bomb_bundle_is_held_at_the_process_limit_and_reported(compete, data, tmp_path, monkeypatch):
    import functools

    import psutil

    from common.runtimes import sandbox
    monkeypatch.setattr(sandbox, "run", functools.partial(sandbox.run, process_limit=64))
    marker = f"bomb-{os.getpid()}-{tmp_path.name}"
    main = (f"import os, subprocess, time\n# {marker}\n"
            "for _ in range(200):\n    try:\n        if os.fork() == 0:\n            time.sleep(600)\n"
            "    except OSError:\n        break\n"
            "subprocess.run(['true'], check=True)\n" + COPY_FORMAT)   # the bundle's own work: it cannot fork any more
    result = compete.in_process("runtime", "test", make_bundle(tmp_path / "bomb.zip", main), "--data", data, "--time-limit", "60")
    assert result.exit_code == 1
    assert "process limit of 64 reached (" in result.output and "pids cgroup" in result.output
    report = json.loads((tmp_path / "bomb.runtime" / "resources.json").read_text())
    assert report["peak_processes"] == 64 and report["forks_refused"] > 0
    assert "processes 64 at most" in result.output
    assert f"peak memory {report['peak_memory_mb']:.0f} MB (cgroup: resident + page cache + tmpfs)" in result.output
    assert f"peak resident {report['peak_rss_mb']:.0f} MB (anonymous memory, polled)" in result.output
    assert report["peak_rss_mb"] < 1024                  # not the sum over 64 processes sharing their pages
    assert not [process for process in psutil.process_iter(["cmdline"]) if marker in " ".join(process.info["cmdline"] or [])]


@needs_sandbox
def test_a_bundle_filling_the_disk_fails_at_the_disk_limit_naming_the_folder(compete, data, tmp_path, monkeypatch):
    import functools

    from common.runtimes import sandbox
    monkeypatch.setattr(sandbox, "run", functools.partial(sandbox.run, disk_limit_gb=0.05))
    main = "with open('/tmp/filler', 'wb') as handle:\n    for _ in range(100):\n        handle.write(b'x' * 2 ** 20)\n" + COPY_FORMAT
    result = compete.in_process("runtime", "test", make_bundle(tmp_path / "filler.zip", main), "--data", data)
    assert result.exit_code == 1
    assert "disk limit of 0.05 GB reached in /tmp (" in result.output and "No space left on device" in result.output
    report = json.loads((tmp_path / "filler.runtime" / "resources.json").read_text())
    assert report["disk_full"] == ["/tmp"] and report["disk_written_mb"]["/tmp"] > 30


@needs_sandbox
def test_a_submission_linked_to_a_host_file_is_not_followed_on_the_host(data, tmp_path):
    """A link is resolved where it is read: inside, /etc/... is the sandbox's; copied out
    as it is, the runtime test would read the host's file as the bundle's output."""
    host_file = tmp_path / "host-only.csv"
    shutil.copy(data / "submission_format.csv", host_file)     # a valid output, if the host side followed the link
    main = f"import os\nos.symlink({str(host_file)!r}, 'submission.csv')\n"
    result = run_bundle(make_bundle(tmp_path / "link.zip", main), data, time_limit=60)
    assert not result.ok and "wrote no submission.csv" in result.reason
    assert "not copied back out of /inference: submission.csv (a link to" in result.log.read_text()


def test_zip_path_escape_is_refused_leaving_nothing(compete, data, tmp_path, scratch):
    evil = make_bundle(tmp_path / "evil.zip", COPY_FORMAT, {"../../x.py": ""})
    result = compete.in_process("runtime", "test", evil, "--data", data)
    assert result.exit_code == 2 and "escapes the extraction folder" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.py").exists() and list(scratch.iterdir()) == []


def test_a_zip_with_a_bad_crc_is_one_line_and_leaves_nothing(compete, data, tmp_path, scratch):
    bundle = make_bundle(tmp_path / "damaged.zip", COPY_FORMAT, {"weights.bin": "w" * 5000})
    raw = bytearray(bundle.read_bytes())
    offset = raw.index(b"w" * 100)
    raw[offset:offset + 4] = b"XXXX"                     # the stored bytes no longer match their CRC
    bundle.write_bytes(bytes(raw))
    result = compete.in_process("runtime", "test", bundle, "--data", data)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {bundle}: member 'weights.bin' fails its CRC check; the zip is damaged, build it again"
    assert list(scratch.iterdir()) == [] and not (tmp_path / "damaged.runtime").exists()


@needs_sandbox
def test_keep_keeps_the_scratch_folder(compete, data, tmp_path, scratch):
    result = compete.in_process("runtime", "test", make_bundle(tmp_path / "kept.zip", COPY_FORMAT), "--data", data, "--keep")
    assert result.exit_code == 0, result.output
    kept = [path for path in scratch.iterdir() if path.name.startswith("compete-runtime-")]
    assert len(kept) == 1 and f"kept: {kept[0]}" in result.output and (kept[0] / "code" / "main.py").is_file()
