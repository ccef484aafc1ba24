"""common/runtimes/notebook.py: a Kaggle code-competition rerun emulated. A package's
notebook runs headless in the sandbox with the competition's files read-only at both
input paths, its dataset at its own, /kaggle/working the writable working directory,
no network, the time cap and KAGGLE_IS_COMPETITION_RERUN; the hidden test replaces the
public one with --hidden; the output is validated, kept and scored, and a failure is
one line naming Kaggle's class."""
from __future__ import annotations

import http.server
import json
import shutil
import threading
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from common import runtimes
from competitions import REGISTRY
from common.runtimes import runner, sandbox

needs_sandbox = pytest.mark.skipif(not runner.sandbox_available()[0], reason="no mount/network namespaces here")

SLUG = "demo-rerun"
DATASET = "demo-model"
COMPETITION = f"kaggle:{SLUG}"
INPUT = f"/kaggle/input/competitions/{SLUG}"

# A notebook as Kaggle's templates write it: read the competition's files under
# /kaggle/input, import the model code from the attached dataset, write
# /kaggle/working/submission.csv. It predicts 2x + 0.5 where the truth is 2x: RMSE 0.5.
TEMPLATE = [
    "import os, sys\nimport pandas as pd\nsys.path.insert(0, '/kaggle/input/" + DATASET + "')\nimport helper",
    "folder = '" + INPUT + "' if os.path.isdir('" + INPUT + "') else '/kaggle/input/" + SLUG + "'\n"
    "test = pd.read_csv(os.path.join(folder, 'test.csv'))\n"
    "test[['id']].assign(y=helper.FACTOR * test.x + 0.5).to_csv('/kaggle/working/submission.csv', index=False)",
]

# What the notebook can see and change, printed as one JSON line for the test to read.
PROBE = """
import errno, json, os
def writable(folder):
    try:
        with open(os.path.join(folder, 'probe.txt'), 'w') as handle:
            handle.write('x')
        return 'written'
    except OSError as error:
        return errno.errorcode[error.errno]
facts = {
    'cwd': os.getcwd(),
    'input': sorted(os.listdir('/kaggle/input')),
    'competition': sorted(os.listdir('%(input)s')),
    'alias': sorted(os.listdir('/kaggle/input/%(slug)s')),
    'dataset': sorted(os.listdir('/kaggle/input/%(dataset)s')),
    'rerun': os.environ.get('KAGGLE_IS_COMPETITION_RERUN'),
    'host': {path: os.path.exists(path) for path in %(host)r},
    'home': sorted(os.listdir(%(home)r)) if os.path.isdir(%(home)r) else [],
    'writes': {folder: writable(folder) for folder in ['/kaggle/working', '/tmp', '/kaggle/temp', '/kaggle', '/kaggle/input',
               '%(input)s', '/kaggle/input/%(slug)s', '/kaggle/input/%(dataset)s']},
}
print('FACTS ' + json.dumps(facts))
"""


@pytest.fixture
def profile():
    return runtimes.profile("kaggle-notebook")


def write_test(folder: Path, ids, x, answers: bool = True) -> None:
    frame = pd.DataFrame({"id": ids, "x": x})
    frame.to_csv(folder / "test.csv", index=False)
    frame[["id"]].assign(y=0.0).to_csv(folder / "sample_submission.csv", index=False)
    if answers:
        (folder / "answers").mkdir()
        frame[["id"]].assign(y=2 * frame.x).to_csv(folder / "answers" / "solution.csv", index=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny Kaggle competition: 40 training rows with y = 2x, a public test of 10 rows,
    the answers; and a hidden test of 7 other rows with its own sample and answers."""
    rng = np.random.default_rng(0)
    public = tmp_path_factory.mktemp("public")
    pd.DataFrame({"id": range(40), "x": rng.normal(size=40)}).assign(y=lambda f: 2 * f.x).to_csv(public / "train.csv", index=False)
    write_test(public, range(40, 50), rng.normal(size=10))
    hidden = tmp_path_factory.mktemp("hidden")
    write_test(hidden, range(100, 107), rng.normal(size=7))
    return public, hidden


def make_package(folder: Path, cells: list[str] | None = None, script: str | None = None, metric: str | None = "rmse",
                 **metadata) -> Path:
    """A package folder as `compete package` writes it (its layout: common/packaging.py): the
    kernel with the notebook (or a script), the dataset with the model code."""
    kernel, dataset = folder / "kernel", folder / "dataset"
    kernel.mkdir(parents=True)
    dataset.mkdir()
    if script is not None:
        code_file, kernel_type = "script.py", "script"
        (kernel / code_file).write_text(script)
    else:
        code_file, kernel_type = "notebook.ipynb", "notebook"
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nbformat.write(notebook, kernel / code_file)
    (kernel / "kernel-metadata.json").write_text(json.dumps({
        "id": "OWNER/demo-rerun-notebook", "title": "demo rerun notebook", "code_file": code_file, "language": "python",
        "kernel_type": kernel_type, "is_private": True, "enable_gpu": False, "enable_tpu": False,
        "enable_internet": False, "competition_sources": [SLUG], "dataset_sources": [f"OWNER/{DATASET}"],
        "kernel_sources": [], "model_sources": [], **metadata}))
    (dataset / "dataset-metadata.json").write_text(json.dumps({"title": "demo model", "id": f"OWNER/{DATASET}",
                                                               "licenses": [{"name": "CC0-1.0"}]}))
    (dataset / "helper.py").write_text("FACTOR = 2.0\n")
    manifest = {"competition": COMPETITION, "platform": "kaggle", "profile": "kaggle-notebook", "slug": SLUG,
                "kernel": "kernel", "dataset": "dataset", "output": "submission.csv"}
    (folder / "compete-package.json").write_text(json.dumps({**manifest, **({"metric": metric} if metric else {})}))
    return folder


def rerun(compete, package: Path, data: Path, *options):
    return compete.in_process("runtime", "test", package, "--data", data, "--profile", "kaggle-notebook", *options)


def facts(package: Path) -> dict:
    log = (package.with_name(package.name + ".runtime") / "log.txt").read_text()
    lines = [line for line in log.splitlines() if line.startswith("FACTS ")]
    assert lines, log
    return json.loads(lines[-1][len("FACTS "):])


def probe(host: list[str]) -> str:
    return PROBE % {"input": INPUT, "slug": SLUG, "dataset": DATASET, "host": host, "home": str(Path.home())}


# ---------------------------------------------------------------- what passes

@needs_sandbox
def test_a_notebook_written_as_kaggles_templates_passes_and_is_scored(compete, profile, data, tmp_path):
    public, _ = data
    package = make_package(tmp_path / "package", [probe([str(tmp_path), str(runner.PROJECT_ROOT / "cli.py"), str(runner.PROJECT_ROOT / ".git")]),
                                                  *TEMPLATE])
    result = rerun(compete, package, public, "--out", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    assert "passed on kaggle-notebook" in result.output
    test = pd.read_csv(public / "test.csv")
    kept = pd.read_csv(tmp_path / "out.csv")
    assert list(kept["id"]) == list(test["id"]) and np.allclose(kept["y"], 2 * test["x"] + 0.5)
    assert f"score against {public / 'answers'}: rmse 0.500000" in result.output
    seen = facts(package)
    assert seen["cwd"] == "/kaggle/working"
    assert seen["input"] == sorted(["competitions", SLUG, DATASET])          # both input paths, and the dataset
    assert seen["competition"] == seen["alias"] == ["sample_submission.csv", "test.csv", "train.csv"]   # no answers/
    assert seen["dataset"] == ["helper.py"]                                  # as uploaded: no metadata file
    assert seen["rerun"] == profile.environment["KAGGLE_IS_COMPETITION_RERUN"]
    assert not any(seen["host"].values()), seen["host"]                       # the test's folder, the checkout
    interpreter = sandbox.python_environment()       # of home, only what leads to the interpreter may be there
    assert all(any(path.startswith(f"{Path.home()}/{entry}/") for path in interpreter) for entry in seen["home"]), seen["home"]
    assert {folder for folder, outcome in seen["writes"].items() if outcome == "written"} == {"/kaggle/working", *profile.writable}
    assert set(seen["writes"].values()) == {"written", "EROFS"}
    executed = nbformat.read(package.with_name("package.runtime") / "__notebook__.ipynb", as_version=4)
    assert "FACTS " in executed.cells[0].outputs[0]["text"]                   # the executed notebook, with its outputs


@needs_sandbox
def test_hidden_test_replaces_the_public_one_and_a_notebook_fit_to_the_public_ids_fails_there(compete, profile, data, tmp_path):
    public, hidden = data
    hard_coded = [("import pandas as pd\n"
                   "pd.DataFrame({'id': range(40, 50), 'y': 0.0}).to_csv('/kaggle/working/submission.csv', index=False)")]
    package = make_package(tmp_path / "package", hard_coded)
    assert rerun(compete, package, public).exit_code == 0                     # fits the public test
    result = rerun(compete, package, public, "--hidden", hidden)
    assert result.exit_code == 1
    assert "FAILED: Submission Scoring Error: submission.csv is invalid: row_count: 10 rows, expected 7" in result.output
    good = make_package(tmp_path / "good", TEMPLATE)
    result = rerun(compete, good, public, "--hidden", hidden, "--out", tmp_path / "hidden.csv")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "hidden.csv")["id"]) == list(range(100, 107))
    assert f"score against {hidden / 'answers'}: rmse 0.500000" in result.output


# ---------------------------------------------------------------- what fails, and how Kaggle names it

@needs_sandbox
def test_reading_a_host_path_fails_as_an_exception(compete, profile, data, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("id,y\n40,1\n")
    package = make_package(tmp_path / "package", [f"import pandas as pd\npd.read_csv({str(secret)!r})"])
    result = rerun(compete, package, data[0])
    assert result.exit_code == 1
    assert f"FAILED: Notebook Threw Exception: FileNotFoundError: [Errno 2] No such file or directory: '{secret}'" in result.output


@needs_sandbox
def test_the_internet_is_off(compete, profile, data, tmp_path):
    """A server on the host's loopback is out of reach: the notebook's network
    namespace has a loopback of its own and nothing else."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"id,y\n")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/weights.csv"
        package = make_package(tmp_path / "package", [f"import urllib.request\nurllib.request.urlopen({url!r}, timeout=10).read()"])
        result = rerun(compete, package, data[0])
    finally:
        server.shutdown()
    assert result.exit_code == 1
    assert "FAILED: Notebook Threw Exception: URLError: <urlopen error [Errno 111] Connection refused>" in result.output
    assert "(the rerun has no internet)" in result.output
    assert requests == []


@needs_sandbox
def test_writing_into_the_input_fails(compete, profile, data, tmp_path):
    package = make_package(tmp_path / "package", [f"open('{INPUT}/test.csv', 'w').write('id,x\\n')"])
    result = rerun(compete, package, data[0])
    assert result.exit_code == 1
    assert f"FAILED: Notebook Threw Exception: OSError: [Errno 30] Read-only file system: '{INPUT}/test.csv'" in result.output
    assert pd.read_csv(data[0] / "test.csv").shape == (10, 2)


@needs_sandbox
def test_a_notebook_over_the_time_cap_is_a_notebook_timeout(compete, profile, data, tmp_path):
    package = make_package(tmp_path / "package", ["print('started', flush=True)", "import time\ntime.sleep(120)"])
    result = rerun(compete, package, data[0], "--time-limit", "8")
    assert result.exit_code == 1
    assert "FAILED: Notebook Timeout: the rerun passed the time cap of 8 s" in result.output
    log = (tmp_path / "package.runtime" / "log.txt").read_text()
    assert "started" in log                                                    # the outputs reach the log as they come
    resources = json.loads((tmp_path / "package.runtime" / "resources.json").read_text())
    assert 8 <= resources["wall_seconds"] < 30


@needs_sandbox
def test_a_notebook_writing_no_file_is_submission_csv_not_found(compete, profile, data, tmp_path):
    package = make_package(tmp_path / "package", ["import pandas as pd\nprint(len(pd.read_csv('" + INPUT + "/test.csv')))"])
    result = rerun(compete, package, data[0])
    assert result.exit_code == 1
    assert "FAILED: Submission CSV Not Found: the notebook ran through but wrote no /kaggle/working/submission.csv" in result.output


@needs_sandbox
def test_a_script_that_raises_names_the_exceptions_last_line(compete, profile, data, tmp_path):
    package = make_package(tmp_path / "package", script="import pandas as pd\n\n\ndef fit():\n    raise ValueError('no model for 7 rows')\n\n\nfit()\n")
    result = rerun(compete, package, data[0])
    assert result.exit_code == 1
    assert "FAILED: Notebook Threw Exception: ValueError: no model for 7 rows" in result.output
    assert "in fit()" in (tmp_path / "package.runtime" / "log.txt").read_text()     # the traceback is in the log


@needs_sandbox
def test_a_kernel_past_the_memory_limit_exceeds_allowed_compute(compete, profile, data, tmp_path):
    hog = "import numpy as np\nblocks = [np.ones(50 * 2 ** 20 // 8) for _ in range(30)]"
    package = make_package(tmp_path / "package", [hog])
    result = rerun(compete, package, data[0], "--memory-limit", "0.5")
    assert result.exit_code == 1
    assert "FAILED: Notebook Exceeded Allowed Compute: memory limit of 0.5 GB exceeded (memory cgroup" in result.output


# ---------------------------------------------------------------- refused before running

def test_a_notebook_with_internet_on_is_refused(compete, profile, data, tmp_path):
    package = make_package(tmp_path / "package", TEMPLATE)
    metadata = json.loads((package / "kernel" / "kernel-metadata.json").read_text())
    del metadata["enable_internet"]                      # the client pushes it as true
    (package / "kernel" / "kernel-metadata.json").write_text(json.dumps(metadata))
    result = rerun(compete, package, data[0], "--unisolated")
    assert result.exit_code == 1
    assert "enable_internet is absent: the kaggle client then pushes the notebook with internet on" in result.output


def test_a_notebook_importing_what_the_image_lacks_fails_the_environment_check(compete, profile, data, tmp_path):
    """What the image lacks is named by cell and line; the dataset's modules and a
    package shipped in the competition's files (kaggle_evaluation) are the notebook's own."""
    public = tmp_path / "data"
    shutil.copytree(data[0], public)
    (public / "kaggle_evaluation").mkdir()
    (public / "kaggle_evaluation" / "__init__.py").write_text("")
    package = make_package(tmp_path / "package", ["import helper\nimport kaggle_evaluation",
                                                  "import os\nimport compete_missing_library"])
    result = rerun(compete, package, public, "--unisolated")
    assert result.exit_code == 1
    assert "environment check failed: notebook.ipynb cell 2 line 2: imports compete_missing_library, which the kaggle-notebook " \
           "runtime does not have" in result.output
    assert "(and " not in result.output                    # helper and kaggle_evaluation are not reported
    assert "Running notebook.ipynb" not in (tmp_path / "package.runtime" / "log.txt").read_text()


def test_an_unreadable_package_is_a_usage_error(compete, profile, data, tmp_path):
    package = make_package(tmp_path / "package", TEMPLATE)
    (package / "kernel" / "notebook.ipynb").unlink()
    result = rerun(compete, package, data[0], "--unisolated")
    assert result.exit_code == 2
    assert "code_file 'notebook.ipynb' is not a file of" in result.output


def test_the_layout_shows_each_input_path_read_only_and_working_alone_writable(profile, data, tmp_path):
    """The notebook's sandbox, as a second one (the gateway's) will be built beside it."""
    from common.runtimes import notebook

    package = notebook.read_package(make_package(tmp_path / "package", TEMPLATE))
    view = runner.data_view(profile, data[0])
    box = notebook.layout(package, view, profile, SLUG, tmp_path / "work")
    assert {mount.target for mount in box.mounts if mount.writable} == {"/kaggle/working", *profile.writable}
    targets = {mount.target for mount in box.mounts}
    assert {"/kaggle", INPUT, f"/kaggle/input/{SLUG}", f"/kaggle/input/{DATASET}/helper.py"} <= targets
    assert not [target for target in targets if "answers" in target or target.endswith("dataset-metadata.json")]
    assert box.workdir == "/kaggle/working"
    assert REGISTRY.competition(COMPETITION).slug == SLUG


@needs_sandbox
def test_a_notebook_filling_its_disk_exceeds_allowed_compute(compete, profile, data, tmp_path, monkeypatch):
    """Kaggle's FAQ: "requesting more RAM or disk than available". /kaggle/working is
    bounded (20 GB by default; 0.05 GB here), and a notebook filling it is that class."""
    import functools

    from common.runtimes import sandbox
    monkeypatch.setattr(sandbox, "run", functools.partial(sandbox.run, disk_limit_gb=0.05))
    filler = "with open('/kaggle/working/big.bin', 'wb') as out:\n    for _ in range(100):\n        out.write(bytes(2 ** 20))"
    result = rerun(compete, make_package(tmp_path / "package", [filler]), data[0])
    assert result.exit_code == 1
    assert "FAILED: Notebook Exceeded Allowed Compute: disk limit of 0.05 GB reached in /kaggle/working" in result.output
