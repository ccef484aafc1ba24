"""`compete package` for Kaggle: a run (or your own notebook or script) becomes a kernel
folder and a dataset folder the official client pushes and creates as they are.

The notebook is run here the way Kaggle lays out its inputs, in a fresh interpreter that
sees only the package (no checkout on its path): its submission must be the bytes
`compete predict` writes for the same run. The metadata goes through the kaggle client's
own checks, called offline (kernels_push and dataset_create_new stopped at their first
request)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from common import io, packaging, runtimes
from common.runtimes import environment

HOUSE_SLUG = "house-prices-advanced-regression-techniques"
OWNER = "tester"

PROFILE = runtimes.profile("kaggle-notebook")
# Kaggle's image without catboost: a run whose model needs it is refused for it.
LEAN = dataclasses.replace(PROFILE, name="kaggle-lean",
                           packages={name: version for name, version in PROFILE.packages.items() if name != "catboost"})


@pytest.fixture(autouse=True)
def profiles(monkeypatch):
    """The lean profile, and the Kaggle user the package's ids name."""
    monkeypatch.setitem(runtimes.PROFILES, "kaggle-lean", f"{__name__}:LEAN")
    monkeypatch.setenv("KAGGLE_USERNAME", OWNER)


@pytest.fixture(scope="module")
def tiny_house(house_data, tmp_path_factory) -> Path:
    """The real House Prices files cut to 300 train and 80 test rows: a run in seconds."""
    out = tmp_path_factory.mktemp("tiny-house")
    for name, rows in (("train.csv", 300), ("test.csv", 80), ("sample_submission.csv", 80)):
        lines = (house_data / name).read_text().splitlines(keepends=True)
        (out / name).write_text("".join(lines[:rows + 1]))
    return out


@pytest.fixture(scope="module")
def house_run(compete, tiny_house, tmp_path_factory) -> tuple[Path, Path]:
    """(a house-prices run, the submission `compete predict` writes with it)."""
    work = tmp_path_factory.mktemp("house-run")
    compete("fit", "house-prices", "--data", tiny_house, "--fast", "--set", "folds=2", "--quiet", "--run-dir",
            work / "run", cwd=work)
    compete("predict", "house-prices", "--data", tiny_house, "--run-dir", work / "run", "--out", work / "predicted.csv",
            cwd=work)
    return work / "run", work / "predicted.csv"


@pytest.fixture
def house_package(compete, house_run, tmp_path) -> Path:
    out = tmp_path / "package"
    compete.in_process("package", "house-prices", "--run-dir", house_run[0], "--profile", "kaggle-notebook", "--out", out,
                       check=True)
    return out


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def code_of(notebook: Path) -> str:
    snippets, problems = environment.notebook_code(notebook)
    assert problems == []
    return "\n".join(snippet.source for snippet in snippets)


def run_as_kaggle(package: Path, data: Path, where: Path, layout: str = "competitions") -> Path:
    """Run the package's notebook as Kaggle lays out its inputs (the competition's files at
    input/competitions/SLUG, or input/SLUG in the older `layout`, the dataset at
    input/DATASET-SLUG, working/ the working directory) under `where` instead of /kaggle,
    in an interpreter isolated from the checkout and its PYTHONPATH; returns the output."""
    manifest = read_json(package / "compete-package.json")
    inputs, working = where / "input", where / "working"
    competition = inputs / "competitions" / manifest["slug"] if layout == "competitions" else inputs / manifest["slug"]
    shutil.copytree(data, competition)
    if manifest["dataset"]:
        shutil.copytree(package / manifest["dataset"], inputs / manifest["dataset_id"].split("/")[1])
    working.mkdir(parents=True)
    source = code_of(package / "kernel" / manifest["code_file"]) if manifest["code_file"].endswith(".ipynb") \
        else (package / "kernel" / manifest["code_file"]).read_text()
    script = where / "notebook.py"
    script.write_text(source.replace("/kaggle/input", str(inputs)).replace("/kaggle/working", str(working)))
    environment_variables = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", str(script)], cwd=working, env=environment_variables,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return working / manifest["output"]


# ---------------------------------------------------------------- a run's package

def test_a_run_packages_as_a_kernel_and_a_dataset(house_package, house_run):
    files = files_of(house_package)
    assert sorted(name for name in files if not name.startswith("dataset/c")) == [
        "compete-package.json", "dataset/dataset-metadata.json", "dataset/model.pkl",
        "kernel/kernel-metadata.json", "kernel/notebook.ipynb"]
    # the vendored code: the inference entry and what it imports, packages' __init__ empty; none of the training stack
    code = sorted(name for name in files if name.startswith("dataset/c"))
    assert "dataset/competitions/house_prices/inference.py" in code and "dataset/common/submission.py" in code
    assert not any(name.endswith(("runs.py", "tracking.py", "competition.py", "cli.py", "options.py")) for name in code)
    assert files["dataset/competitions/house_prices/__init__.py"] == packaging.STUB_INIT.encode()
    assert files["dataset/model.pkl"] == (house_run[0] / "model.pkl").read_bytes()

    kernel = read_json(house_package / "kernel" / "kernel-metadata.json")
    dataset = read_json(house_package / "dataset" / "dataset-metadata.json")
    assert kernel["enable_internet"] is False and kernel["is_private"] is True and kernel["enable_gpu"] is False
    assert kernel["competition_sources"] == [HOUSE_SLUG]
    assert kernel["dataset_sources"] == [dataset["id"]] == [f"{OWNER}/house-prices-compete-model"]
    assert (kernel["code_file"], kernel["kernel_type"], kernel["language"]) == ("notebook.ipynb", "notebook", "python")
    assert kernel["id"] == f"{OWNER}/house-prices-compete-inference"
    assert dataset["licenses"] == [{"name": "CC0-1.0"}]
    manifest = read_json(house_package / "compete-package.json")
    assert manifest["run_dir"] == str(house_run[0].resolve()) and manifest["dataset_id"] == dataset["id"]
    assert {key: manifest[key] for key in ("competition", "platform", "profile", "slug", "kernel", "dataset", "output")} == {
        "competition": "house-prices", "platform": "kaggle", "profile": "kaggle-notebook", "slug": HOUSE_SLUG,
        "kernel": "kernel", "dataset": "dataset", "output": "submission.csv"}


def test_the_notebook_installs_nothing_and_reads_both_input_paths(house_package):
    path = house_package / "kernel" / "notebook.ipynb"
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4 and notebook.metadata.kernelspec.name == "python3"
    assert [cell.cell_type for cell in notebook.cells] == ["markdown", "code", "code"]
    assert "compete package" in notebook.cells[0].source
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "pip" not in code and "!" not in code and "%" not in code
    assert f"'/kaggle/input/competitions/{HOUSE_SLUG}'" in code and f"'/kaggle/input/{HOUSE_SLUG}'" in code
    assert "'/kaggle/input/house-prices-compete-model'" in code and "'/kaggle/working/submission.csv'" in code
    assert environment.check_notebook(path, "notebook.ipynb", runtimes.profile("kaggle-notebook"), {"competitions"}) == []


@pytest.mark.parametrize("layout", ["competitions", "older"])
def test_the_notebook_writes_what_compete_predict_writes(house_package, house_run, tiny_house, tmp_path, layout):
    written = run_as_kaggle(house_package, tiny_house, tmp_path / "kaggle", layout)
    assert written.read_bytes() == house_run[1].read_bytes()


def test_the_package_passes_the_rerun_emulation_writing_what_compete_predict_writes(compete, house_package, house_run,
                                                                                     tiny_house, tmp_path):
    from common.runtimes import runner
    if not runner.sandbox_available()[0]:
        pytest.skip("no sandbox here: the rerun emulation cannot run")
    # as a user types it: the package by a relative path, its profile read from its manifest
    result = compete("runtime", "test", house_package.name, "--data", tiny_house, "--out", tmp_path / "rerun.csv",
                     cwd=house_package.parent)
    assert "passed on kaggle-notebook" in result.stdout
    assert (tmp_path / "rerun.csv").read_bytes() == house_run[1].read_bytes()


def test_the_generic_tabular_package_writes_what_compete_predict_writes(compete, fast_run, tmp_path):
    made = fast_run("kaggle:example")
    run_dir = tmp_path / "run"
    shutil.copytree(made.run_dir, run_dir)   # predicting records on the run: not on the session's shared one
    compete("predict", "kaggle:example", "--data", made.data, "--run-dir", run_dir, "--out", tmp_path / "predicted.csv")
    compete.in_process("package", "kaggle:example", "--run-dir", run_dir, "--out", tmp_path / "package", check=True)
    kernel = read_json(tmp_path / "package" / "kernel" / "kernel-metadata.json")
    assert kernel["competition_sources"] == ["example"] and kernel["dataset_sources"] == [f"{OWNER}/example-compete-model"]
    written = run_as_kaggle(tmp_path / "package", made.data, tmp_path / "kaggle")
    assert written.read_bytes() == (tmp_path / "predicted.csv").read_bytes()


def test_same_run_same_bytes_and_a_package_is_replaced_whole(compete, house_run, house_package, tmp_path):
    again = tmp_path / "again"
    compete.in_process("package", "house-prices", "--run-dir", house_run[0], "--out", again, check=True)  # the default profile
    assert files_of(again) == files_of(house_package)
    (again / "kernel" / "stale.txt").write_text("from before")
    compete.in_process("package", "house-prices", "--run-dir", house_run[0], "--out", again, check=True)
    assert files_of(again) == files_of(house_package)
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []   # no building folder left


def test_an_out_folder_that_is_not_a_package_is_left_alone(compete, house_run, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = compete.in_process("package", "house-prices", "--run-dir", house_run[0], "--out", out)
    assert result.exit_code == 2 and "not a package of `compete package`" in result.output
    assert [path.name for path in out.iterdir()] == ["notes.txt"]


def test_a_run_needing_what_the_profile_lacks_is_refused(compete, house_run, tmp_path):
    result = compete.in_process("package", "house-prices", "--run-dir", house_run[0], "--profile", "kaggle-lean",
                                "--out", tmp_path / "lean")
    assert result.exit_code == 1
    assert "environment: dataset/competitions/house_prices/model.py:" in result.output
    assert "imports catboost, which the kaggle-lean runtime does not have" in result.output
    assert not (tmp_path / "lean").exists() and [path.name for path in tmp_path.iterdir()] == []


def test_a_competition_without_an_inference_entry_or_a_run_of_another_has_nothing_to_package(compete, house_run, tmp_path):
    result = compete.in_process("package", "uberct", "--run-dir", tmp_path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "not a code competition" in result.output
    other = compete.in_process("package", "kaggle:titanic", "--run-dir", house_run[0], "--out", tmp_path / "out")
    assert other.exit_code == 2 and "a run of house-prices, not kaggle:titanic" in other.output
    assert not (tmp_path / "out").exists()


def test_the_owner_is_the_kaggle_user_the_credentials_name(monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    assert packaging.kaggle_owner() == "OWNER"
    (tmp_path / "kaggle.json").write_text(json.dumps({"username": "someone", "key": "0" * 32}))
    (tmp_path / "kaggle.json").chmod(0o600)
    assert packaging.kaggle_owner() == "someone"
    monkeypatch.setenv("KAGGLE_USERNAME", "another")
    assert packaging.kaggle_owner() == "another"


# ---------------------------------------------------------------- your own notebook or script

KAGGLE_NOTEBOOK = [
    "import pandas as pd\nfrom pathlib import Path",
    ("from helpers import constant\n"
     "sample = pd.read_csv(Path('/kaggle/input/competitions/titanic/gender_submission.csv'))\n"
     "sample['Survived'] = constant()\n"
     "sample.to_csv('/kaggle/working/submission.csv', index=False)"),
]


def write_notebook(path: Path, cells: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# my submission")] + [nbformat.v4.new_code_cell(cell) for cell in cells]
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number}"
    nbformat.write(notebook, str(path))
    return path


@pytest.fixture
def own_folder(tmp_path) -> Path:
    folder = tmp_path / "mine"
    (folder / "weights").mkdir(parents=True)
    write_notebook(folder / "submit.ipynb", KAGGLE_NOTEBOOK)
    (folder / "helpers.py").write_text("def constant():\n    return 0\n")
    (folder / "weights" / "w.bin").write_bytes(b"\x00\x01")
    (folder / ".env").write_text("SECRET=1")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "helpers.cpython-312.pyc").write_bytes(b"x")
    return folder


def test_your_notebook_is_the_kernel_and_the_rest_its_dataset(compete, own_folder, tmp_path):
    out = tmp_path / "package"
    result = compete.in_process("package", "kaggle:titanic", "--from", own_folder, "--profile", "kaggle-notebook",
                                "--out", out, check=True)
    assert "/kaggle/input/titanic-compete-model/" in result.output
    assert sorted(files_of(out)) == ["compete-package.json", "dataset/dataset-metadata.json", "dataset/helpers.py",
                                     "dataset/weights/w.bin", "kernel/kernel-metadata.json", "kernel/submit.ipynb"]
    assert (out / "kernel" / "submit.ipynb").read_bytes() == (own_folder / "submit.ipynb").read_bytes()
    kernel = read_json(out / "kernel" / "kernel-metadata.json")
    assert (kernel["code_file"], kernel["kernel_type"], kernel["enable_internet"]) == ("submit.ipynb", "notebook", False)
    assert kernel["competition_sources"] == ["titanic"] and kernel["dataset_sources"] == [f"{OWNER}/titanic-compete-model"]


def test_your_script_is_the_kernel_and_with_nothing_else_there_is_no_dataset(compete, tmp_path):
    folder = tmp_path / "script"
    folder.mkdir()
    (folder / "predict.py").write_text("import numpy as np\nprint(np.zeros(2))\n")
    out = tmp_path / "package"
    compete.in_process("package", "kaggle:titanic", "--from", folder, "--out", out, check=True)
    assert sorted(files_of(out)) == ["compete-package.json", "kernel/kernel-metadata.json", "kernel/predict.py"]
    kernel = read_json(out / "kernel" / "kernel-metadata.json")
    assert (kernel["code_file"], kernel["kernel_type"], kernel["dataset_sources"]) == ("predict.py", "script", [])
    assert read_json(out / "compete-package.json")["dataset"] is None
    assert kernel["enable_gpu"] is False
    compete.in_process("package", "kaggle:titanic", "--from", folder, "--profile", "kaggle-notebook-gpu", "--out", out,
                       check=True)
    assert read_json(out / "kernel" / "kernel-metadata.json")["enable_gpu"] is True


@pytest.mark.parametrize("names", [("a.ipynb", "b.ipynb"), ("first.py", "second.py"), ()])
def test_not_exactly_one_notebook_or_script_is_refused_naming_what_is_there(compete, tmp_path, names):
    folder = tmp_path / "two"
    folder.mkdir()
    (folder / "data.csv").write_text("x\n1\n")
    for name in names:
        if name.endswith(".ipynb"):
            write_notebook(folder / name, ["print(1)"])
        else:
            (folder / name).write_text("print(1)\n")
    result = compete.in_process("package", "kaggle:titanic", "--from", folder, "--out", tmp_path / "out")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert all(name in result.output for name in names) and "at its root" in result.output
    assert not (tmp_path / "out").exists()


def test_a_notebook_that_installs_packages_is_refused_naming_the_cell(compete, own_folder, tmp_path):
    write_notebook(own_folder / "submit.ipynb", ["import pandas as pd", "!pip install -q onnxruntime\nimport onnxruntime"])
    result = compete.in_process("package", "kaggle:titanic", "--from", own_folder, "--out", tmp_path / "out")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("environment: ")]
    assert lines == [("environment: kernel/submit.ipynb cell 3 line 1: `!pip install -q onnxruntime` installs packages; "
                      "the rerun has no internet"),
                     ("environment: kernel/submit.ipynb cell 3 line 2: imports onnxruntime, which the kaggle-notebook "
                      "runtime does not have (it is neither Python 3.12.12's standard library nor a package of its "
                      "environment)")]
    assert not (tmp_path / "out").exists()


def test_notebook_code_reads_magics_as_ipython_does(tmp_path):
    path = write_notebook(tmp_path / "n.ipynb", [
        "import os\n%pip install foo",
        "%%time\nimport lightgbm\nimport missing_here\n!ls /kaggle/input",
        "%%bash\necho start\npython -m pip install bar",
        "files = !ls\n!apt-get -y install graphviz",
        "!pip show foo && echo install\n%matplotlib inline",
        "import kaggle_evaluation.core",
    ])
    _, problems = environment.notebook_code(path)
    assert problems == [
        "n.ipynb cell 2 line 2: `%pip install foo` installs packages; the rerun has no internet",
        "n.ipynb cell 4 line 3: `python -m pip install bar` installs packages; the rerun has no internet",
        "n.ipynb cell 5 line 2: `!apt-get -y install graphviz` installs packages; the rerun has no internet"]
    checked = environment.check_notebook(path, "n.ipynb", PROFILE, packaging.COMPETITION_MODULES)
    assert checked[len(problems):] == [
        ("n.ipynb cell 3 line 3: imports missing_here, which the kaggle-notebook runtime does not have (it is neither "
         "Python 3.12.12's standard library nor a package of its environment)")]
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(io.InputError, match="broken.ipynb: not a readable notebook"):
        environment.notebook_code(tmp_path / "broken.ipynb")


# ---------------------------------------------------------------- the kaggle client's own checks

CLIENT = r"""
import json, sys
from kaggle.api.kaggle_api_extended import KaggleApi
from slugify import slugify

class Reached(Exception):
    "The client got past its checks to its first request."

api = KaggleApi()
api.authenticate()   # the legacy key from the environment: no request
seen = {}

class Client:
    def __init__(self):
        from types import SimpleNamespace
        self.kernels = SimpleNamespace(kernels_api_client=SimpleNamespace(save_kernel=self.save))
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False
    def save(self, request):
        seen["kernel"] = {"slug": request.slug, "title": request.new_title, "type": request.kernel_type,
                          "language": request.language, "internet": request.enable_internet, "gpu": request.enable_gpu,
                          "private": request.is_private, "competitions": list(request.competition_data_sources),
                          "datasets": list(request.dataset_data_sources), "text": request.text}
        raise Reached()

def status(ref):
    seen["dataset"] = ref
    raise Reached()

api.build_kaggle_client = Client
api.dataset_status = status
kernel, dataset = sys.argv[1], sys.argv[2]
try:
    api.kernels_push(kernel)
except Reached:
    pass
meta = json.load(open(kernel + "/kernel-metadata.json"))
seen["title_slug"] = slugify(meta["title"])
if dataset:
    try:
        api.dataset_create_new(dataset)
    except Reached:
        pass
    api._validate_slug_syntax(json.load(open(dataset + "/dataset-metadata.json"))["id"].split("/")[1])
print(json.dumps(seen))
"""


def kaggle_client(tmp_path: Path, kernel: Path, dataset: Path | None) -> subprocess.CompletedProcess:
    """The official client's kernels_push and dataset_create_new on the folders, stopped at
    their first request (the checks all come before it), with made-up credentials."""
    home = tmp_path / "home"
    (home / "kaggle").mkdir(parents=True, exist_ok=True)
    variables = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KAGGLE_CONFIG_DIR": str(home / "kaggle"),
                 "KAGGLE_USERNAME": OWNER, "KAGGLE_KEY": "0" * 32}
    return subprocess.run([sys.executable, "-c", CLIENT, str(kernel), str(dataset or "")], env=variables,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_kaggle_client_accepts_the_run_package(house_package, tmp_path):
    done = kaggle_client(tmp_path, house_package / "kernel", house_package / "dataset")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    kernel = seen["kernel"]   # what the client would send: internet off, the competition and the dataset attached
    assert (kernel["internet"], kernel["private"], kernel["gpu"], kernel["type"], kernel["language"]) == (
        False, True, False, "notebook", "python")
    assert kernel["competitions"] == [HOUSE_SLUG] and kernel["datasets"] == [f"{OWNER}/house-prices-compete-model"]
    assert seen["title_slug"] == kernel["slug"].split("/")[1]   # the title resolves to the id, as the client asks
    assert "from competitions.house_prices.inference import run" in json.loads(kernel["text"])["cells"][2]["source"]
    assert seen["dataset"] == f"{OWNER}/house-prices-compete-model"
    dataset = read_json(house_package / "dataset" / "dataset-metadata.json")
    assert 6 <= len(dataset["title"]) <= 50   # the client's rule, checked before the request it was stopped at


def test_the_kaggle_client_accepts_a_script_package_and_refuses_a_short_title(compete, tmp_path):
    folder = tmp_path / "script"
    folder.mkdir()
    (folder / "predict.py").write_text("print('hello')\n")
    (folder / "weights.bin").write_bytes(b"w")
    out = tmp_path / "package"
    compete.in_process("package", "kaggle:titanic", "--from", folder, "--out", out, check=True)
    done = kaggle_client(tmp_path, out / "kernel", out / "dataset")
    assert done.returncode == 0, done.stderr
    kernel = json.loads(done.stdout.strip().splitlines()[-1])["kernel"]
    assert (kernel["type"], kernel["internet"], kernel["text"]) == ("script", False, "print('hello')\n")
    # the same check fails a title the client refuses: the harness above does run its checks
    metadata = read_json(out / "kernel" / "kernel-metadata.json")
    (out / "kernel" / "kernel-metadata.json").write_text(json.dumps({**metadata, "title": "abc"}))
    refused = kaggle_client(tmp_path, out / "kernel", None)
    assert refused.returncode != 0 and "Title must be at least five characters" in refused.stderr
