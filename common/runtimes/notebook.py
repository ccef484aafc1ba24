"""A Kaggle code-competition rerun, emulated: the package's kernel (a notebook, or a
script) executed headless as Kaggle re-runs a submitted notebook on the hidden test,
its output validated, kept and scored.

What the rerun is (issue 20; the layout and environment are the profile's):
- the notebook runs as `__notebook__.ipynb` in the working directory /kaggle/working,
  executed cell by cell by a headless client and saved after every cell (Kaggle's
  executed notebooks carry papermill's metadata naming __notebook__.ipynb as input and
  output); here nbclient, inside the sandbox, under this interpreter;
- the competition's files read-only at the profile's data path and its aliases
  (/kaggle/input/competitions/SLUG and /kaggle/input/SLUG), the hidden test files shown
  over the public ones, never answers/; the package's dataset read-only at
  /kaggle/input/DATASET-SLUG as the kaggle client uploads it (without its metadata
  files); /kaggle/working and the profile's scratch folders (/kaggle/temp, /tmp) the only
  writable ones; no network; the time cap;
  the profile's environment variables (KAGGLE_IS_COMPETITION_RERUN);
- the output read from /kaggle/working, validated against the sample of the data the
  notebook was given, scored where the answers are known.

A failure is named by Kaggle's class, as its Code Competition FAQ lists them: Notebook
Timeout, Notebook Threw Exception, Notebook Exceeded Allowed Compute ("requesting more
RAM or disk than available"), Submission CSV Not Found, Submission Scoring Error. (The
FAQ says Notebook Threw Exception is reported for scripts only, a notebook that raises
then ending as Submission CSV Not Found; the exception is named here either way.)

`layout` builds what the notebook's sandbox shows and `execute` runs it, separately, so
that the kaggle_evaluation gateway can run in a second sandbox beside it: where the
competition's files hold a `kaggle_evaluation` package, the notebook serves and the
gateway (gateway.py), which alone sees the hidden test, calls it and writes the output.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import io
from common.runtimes import gateway, runner

EXECUTED = "__notebook__.ipynb"   # the name Kaggle runs (and saves) the notebook under, in the working directory
STATUS = "compete-rerun-status: "  # the launcher's last line: how the notebook ended, as JSON

# Files the kaggle client never uploads from a dataset folder (Kaggle/kaggle-api 2.2.5,
# kaggle/api/kaggle_api_extended.py, KaggleApi.upload_files: the metadata files and cover images).
DATASET_METADATA = ("dataset-metadata.json", "datapackage.json", "kernel-metadata.json", "model-metadata.json",
                    "model-instance-metadata.json",
                    *(f"dataset-cover-image{ext}" for ext in (".png", ".jpg", ".jpeg", ".webp")))

# Run inside the sandbox after runner.hide_project(), with the notebook's path and the
# kernel's boot code as arguments: execute the notebook with nbclient in a kernel of this
# interpreter, print every output to the log as it comes, save the notebook after every
# cell, and end with one status line.
LAUNCHER = r'''
import json, re, warnings
warnings.filterwarnings("ignore")   # the launcher's own deprecation notices are not the notebook's
import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

NOTEBOOK, BOOT, STATUS = sys.argv[1:4]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Kernel(AsyncKernelManager):
    @property
    def kernel_spec(self):
        return KernelSpec(argv=[sys.executable, "-I", "-c", BOOT, "-f", "{connection_file}"], display_name="Python 3",
                          language="python")


class Client(NotebookClient):
    def output(self, outs, msg, display_id, cell_index):
        content, kind = msg["content"], msg["msg_type"]
        text = ""
        if kind == "stream":
            text = content["text"]
        elif kind == "error":
            text = "\n".join(content["traceback"]) + "\n"
        elif kind in ("execute_result", "display_data"):
            text = content.get("data", {}).get("text/plain", "") + "\n"
        print(ANSI.sub("", text), end="", flush=True)
        return super().output(outs, msg, display_id, cell_index)


def save(**_):
    try:
        nbformat.write(notebook, NOTEBOOK)
    except OSError:   # the notebook emptied its working directory: the log still has every output
        pass


def finish(code, **fields):
    save()
    print("\n" + STATUS + json.dumps(fields), flush=True)
    sys.exit(code)


notebook = nbformat.read(NOTEBOOK, as_version=4)
client = Client(notebook, timeout=None, kernel_manager_class=Kernel, resources={"metadata": {"path": "."}},
                on_cell_executed=save)
try:
    client.execute()
except CellExecutionError as error:
    finish(3, state="exception", ename=error.ename, evalue=error.evalue)
except DeadKernelError as error:
    finish(4, state="dead", detail=str(error))
except Exception as error:
    finish(5, state="error", detail=f"{type(error).__name__}: {error}")
finish(0, state="ok")
'''

# The kernel's own start, after runner.hide_project(): the working directory first on the
# path, as `python -m ipykernel_launcher` (Kaggle's kernel) puts it there. ipykernel 7's
# warning that the loopback link is unencrypted says nothing about the notebook: kept out
# of its log.
KERNEL = """
import logging, os
logging.getLogger("IPKernelApp").addFilter(lambda record: "without encryption" not in record.getMessage())
sys.path.insert(0, os.getcwd())
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


@dataclass
class Package:
    """A Kaggle package folder as the rerun needs it (its layout: common/packaging.py)."""

    folder: Path
    kernel: Path                     # the folder holding kernel-metadata.json
    metadata: dict                   # kernel-metadata.json
    code_file: Path
    kernel_type: str                 # "notebook" | "script"
    dataset: Path | None             # the folder holding dataset-metadata.json
    dataset_slug: str | None
    output: str | None               # the output file the manifest names, if it names one


def run(package_dir: Path, competition, profile, data_dir: Path, hidden: Path | None = None, out: Path | None = None,
        time_limit: float | None = None, memory_limit: float | None = None, smoke: int | None = None,
        keep: bool = False, skip_env_check: bool = False, unisolated: bool = False) -> runner.RuntimeResult:
    if smoke is not None:
        raise io.InputError("--smoke: a Kaggle rerun has no smoke test; pass --hidden with a small test folder instead")
    package = read_package(Path(package_dir))
    isolated = runner.require_sandbox(unisolated, "notebook")
    output = package.output or profile.output
    served = gateway.serves(data_dir)   # a kaggle_evaluation competition: the notebook serves, the gateway calls
    if served:
        from common.runtimes import network
        linkable, why = network.available()
        if not isolated or not linkable:
            raise io.InputError(f"{data_dir / gateway.PACKAGE}: a kaggle_evaluation rerun runs the notebook and the gateway "
                                f"in two sandboxes joined by a private link, which cannot be built here "
                                f"({why or 'no sandbox'})")
    results = runner.results_folder(package.folder, [output, "resources.json", EXECUTED, *gateway.RESULTS])
    log_path = results / "log.txt"
    workdir = Path(tempfile.mkdtemp(prefix="compete-rerun-"))
    result = runner.RuntimeResult(False, "", log_path, None, 0.0, isolated, profile=profile.name, results=results,
                                  workdir=workdir if keep else None)
    try:
        attached, notes, refusal = sources(package, competition.slug)
        result.notes += notes
        if refusal:
            result.reason = refusal
            return result
        view = runner.data_view(profile, data_dir, None if served else hidden)   # served: the hidden test is the gateway's
        if skip_env_check:
            result.notes.append(f"environment check against {profile.name} skipped (--skip-env-check)")
        elif runner.refuse_on_problems(result, check_environment(package, profile, view), profile):
            return result
        result.notes += view.notes
        given = link_view(view, workdir / "given")   # the data as the notebook sees it: its sample is the one to fit
        limit = runner.time_limit(profile, time_limit, result.notes)
        working = workdir / "working"
        working.mkdir(exist_ok=True)
        nbformat_write(notebook_of(package), working / EXECUTED)
        if isolated:
            box = layout(package if attached else None, view, profile, competition.slug, workdir)
        else:
            from common.runtimes import sandbox
            box = sandbox.Layout(root=working, mounts=[sandbox.Mount(working, profile.root, True)], workdir=profile.root)
            result.notes.append(f"unisolated: {profile.data} and the other /kaggle paths do not exist in this run")
        with open(log_path, "a") as log_file:
            log_file.write(f"compete runtime test: the {profile.name} rerun ({profile.source.split(':')[0]})\n"
                           f"Running {package.code_file.name} as {profile.root}/{EXECUTED}\n")
        if served:
            shown = runner.data_view(profile, data_dir, hidden)
            result.notes += [f"{note}, to the gateway alone (the notebook sees the public files, as on Kaggle)"
                             for note in shown.notes]
            rerun = gateway.run(box, profile, competition.slug, shown, workdir, log_path, limit, memory_limit)
            outcome = rerun.notebook
            result.seconds = rerun.seconds
            result.resources = {**outcome.resources(), "gateway": rerun.gateway.resources()}
        else:
            outcome = execute(box, profile, log_path, limit, memory_limit, isolated)
            result.seconds, result.resources = outcome.wall_seconds, outcome.resources()
        io.write_text(results / "resources.json", json.dumps(result.resources, indent=1) + "\n")
        if (working / EXECUTED).is_file():
            io.write_bytes(results / EXECUTED, (working / EXECUTED).read_bytes())
            result.notes.append(f"executed notebook: {results / EXECUTED}")
        if served:
            if (rerun.output / gateway.RESULT).is_file():
                io.write_bytes(results / gateway.RESULT, (rerun.output / gateway.RESULT).read_bytes())
            result.notes.append(f"gateway {rerun.module}: log {rerun.log}")
            result.failure, result.reason = gateway.verdict(rerun, log_path, limit, memory_limit)
            if result.failure or result.reason:
                return result
            return gateway.collect(result, competition, rerun, link_view(shown, workdir / "gateway-given"), data_dir,
                                   hidden, out, workdir)
        result.failure, result.reason = failure(outcome, log_path, working / output, f"{profile.root}/{output}", limit,
                                                memory_limit)
        if result.failure or result.reason:
            return result
        runner.collect(result, competition, working / output, f"{profile.root}/{output}", given, out)
        if result.ok:
            result.notes += score(competition, result.submission, data_dir, hidden)
        return result
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- the package

def read_package(folder: Path) -> Package:
    """The kernel and dataset of a package folder (compete-package.json names them), or
    of a bare kernel folder; InputError when they cannot be read, following the kaggle
    client's own checks before a push (KaggleApi.kernels_push)."""
    if not folder.is_dir():
        raise io.InputError(f"{folder}: not a Kaggle package folder (kernel/kernel-metadata.json, as `compete package` "
                            f"writes it)")
    manifest = runner.read_manifest(folder) or {}
    if manifest:
        kernel = folder / manifest.get("kernel", "kernel")
        dataset = folder / manifest["dataset"] if manifest.get("dataset") else None
    elif (folder / "kernel-metadata.json").is_file():
        kernel, dataset = folder, None
    else:
        kernel = folder / "kernel"
        dataset = folder / "dataset" if (folder / "dataset" / "dataset-metadata.json").is_file() else None
    metadata = read_json(kernel / "kernel-metadata.json")
    code = metadata.get("code_file")
    if not code or not (kernel / code).is_file():
        raise io.InputError(f"{kernel / 'kernel-metadata.json'}: code_file {code!r} is not a file of {kernel}")
    if metadata.get("language") != "python":
        raise io.InputError(f"{kernel / 'kernel-metadata.json'}: language {metadata.get('language')!r}; the rerun "
                            f"emulation runs Python kernels only")
    kernel_type = metadata.get("kernel_type")
    if kernel_type not in ("notebook", "script"):
        raise io.InputError(f"{kernel / 'kernel-metadata.json'}: kernel_type {kernel_type!r}; Kaggle takes notebook or script")
    slug = None
    if dataset is not None:
        dataset_id = read_json(dataset / "dataset-metadata.json").get("id", "")
        owner, _, slug = str(dataset_id).partition("/")
        if not owner or not slug:
            raise io.InputError(f"{dataset / 'dataset-metadata.json'}: id {dataset_id!r} is not OWNER/DATASET-SLUG")
    return Package(folder, kernel, metadata, kernel / code, kernel_type, dataset, slug, manifest.get("output"))


def read_json(path: Path) -> dict:
    """A package's JSON file as a dict; one line naming it when it is missing or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise io.InputError(f"{path}: not found; a Kaggle package folder has kernel/kernel-metadata.json") from None
    except (OSError, ValueError) as error:
        raise io.InputError(f"{path}: cannot be read as JSON ({' '.join(str(error).split())})") from None
    if not isinstance(value, dict):
        raise io.InputError(f"{path}: not a JSON object")
    return value


def sources(package: Package, slug: str) -> tuple[bool, list[str], str]:
    """(whether the package's dataset is attached, notes, why Kaggle would refuse the
    submission or ""), from kernel-metadata.json as Kaggle reads it."""
    metadata, name = package.metadata, package.kernel / "kernel-metadata.json"
    notes = []
    internet = metadata.get("enable_internet", True)   # the client's default (KaggleApi.kernels_push: get_bool)
    if internet is True or str(internet).lower() == "true":
        return False, notes, (f"{name}: enable_internet is {'absent' if 'enable_internet' not in metadata else 'true'}: "
                              f"the kaggle client then pushes the notebook with internet on, and Kaggle accepts no code "
                              f"submission from a notebook with internet on; write \"enable_internet\": false")
    listed = [str(source) for source in metadata.get("dataset_sources") or []]
    attached = package.dataset_slug is not None and any(source.partition("/")[2] == package.dataset_slug for source in listed)
    if package.dataset_slug is not None and not attached:
        notes.append(f"the package's dataset {package.dataset_slug} is not in {name}'s dataset_sources: Kaggle would not "
                     f"attach it, and it is not mounted here")
    absent = [source for source in listed if source.partition("/")[2] != package.dataset_slug]
    if absent:
        notes.append(f"dataset_sources not in the package, absent here: {', '.join(absent)}")
    if slug not in [str(source) for source in metadata.get("competition_sources") or []]:
        notes.append(f"{name}: competition_sources does not name {slug}; the competition's files are mounted as a "
                     f"submission to it attaches them")
    return attached, notes, ""


def notebook_of(package: Package):
    """The notebook Kaggle runs: the kernel's notebook with its outputs cleared (as the
    client pushes it), or a script as one code cell."""
    import nbformat

    if package.kernel_type == "script" or package.code_file.suffix == ".py":
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell(package.code_file.read_text(errors="replace"))]
    else:
        try:
            notebook = nbformat.read(package.code_file, as_version=4)
        except (OSError, ValueError, nbformat.reader.NotJSONError) as error:
            raise io.InputError(f"{package.code_file}: not a readable notebook ({' '.join(str(error).split())[:200]})") from None
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def nbformat_write(notebook, path: Path) -> None:
    import nbformat
    nbformat.write(notebook, str(path))


def check_environment(package: Package, profile, view: runner.DataView) -> list[str]:
    """The environment check on the dataset's code and on the kernel's code (a notebook's
    cells as IPython runs them, a `!pip install` among the problems: the rerun has no
    internet), the modules of the dataset and of the competition's files
    (kaggle_evaluation ships there) counting as the notebook's own."""
    from common.runtimes import environment

    problems = []
    local = {Path(name).parts[0].removesuffix(".py") for name in view.files if name.endswith(".py")}
    if package.dataset is not None:
        problems += environment.check(package.dataset, profile)
        local |= {path.relative_to(package.dataset).parts[0].removesuffix(".py") for path in package.dataset.rglob("*.py")}
    if package.kernel_type == "script" or package.code_file.suffix == ".py":
        return problems + environment.check_source(package.code_file, package.code_file.name, profile, local)
    return problems + environment.check_notebook(package.code_file, package.code_file.name, profile, local)


# ---------------------------------------------------------------- the sandbox

def layout(package: Package | None, view: runner.DataView, profile, slug: str, workdir: Path):
    """What the notebook's sandbox shows: the profile's folders on a read-only skeleton
    (nothing can be written beside them), the competition's files at the data path and
    each alias, the package's dataset at its own (None: not attached), the working
    directory and the profile's other writable folders. Built in `workdir`, whose
    `working` folder is the working directory."""
    from common.runtimes import sandbox

    data_targets = [path.format(slug=slug) for path in (profile.data, *profile.data_aliases)]
    dataset_target = profile.datasets.format(dataset=package.dataset_slug) if package is not None else None
    writable = [path for path in profile.writable if path != profile.root]
    inside = [*data_targets, *([dataset_target] if dataset_target else []), profile.root]
    top = os.path.commonpath(inside)
    box = sandbox.Layout(root=workdir / "root", mounts=[], workdir=profile.root)
    for folder in ("root", "working"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    if top != "/":
        skeleton = workdir / "skeleton"
        for path in [*inside, *writable]:
            if Path(path).is_relative_to(top):   # the mount points under it (e.g. /kaggle/temp) are made here
                (skeleton / Path(path).relative_to(top)).mkdir(parents=True, exist_ok=True)
        box.add(skeleton, top)
    for target in data_targets:
        box.mounts += runner.view_mounts(view, target, workdir / "data")
    if dataset_target:
        files = {path.relative_to(package.dataset).as_posix(): path for path in sorted(package.dataset.rglob("*"))
                 if path.is_file() and path.relative_to(package.dataset).as_posix() not in DATASET_METADATA}
        shown = runner.DataView(files, package.dataset, package.dataset)
        box.mounts += runner.view_mounts(shown, dataset_target, workdir / "dataset")
    box.add(workdir / "working", profile.root, writable=True)
    for number, path in enumerate(writable):
        scratch = workdir / f"writable{number}"
        scratch.mkdir(exist_ok=True)
        box.add(scratch, path, writable=True)
    return box


def link_view(view: runner.DataView, folder: Path) -> Path:
    """A folder of links showing `view.files` at their paths: the data the notebook was
    given, whose sample (the hidden one where --hidden has one) the output must fit."""
    for name, path in view.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def execute(box, profile, log_path: Path, time_limit: float, memory_limit: float | None, isolated: bool, stop=None):
    """The notebook in `box`'s working directory (EXECUTED) run by the launcher, under
    the limits (and until `stop` is set); the outputs go to `log_path` as they come."""
    from common.runtimes import sandbox

    command = [sys.executable, "-I", "-c", runner.hide_project() + LAUNCHER, EXECUTED, runner.hide_project() + KERNEL,
               STATUS]
    return sandbox.run(command, box, log_path, runner.sandbox_environment(profile), time_limit, memory_limit,
                       isolated=isolated, stop=stop)


# ---------------------------------------------------------------- the outcome

def status(log_path: Path) -> dict:
    """The launcher's last status line, or {} when it wrote none (it was killed)."""
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.startswith(STATUS)]
    try:
        return json.loads(lines[-1][len(STATUS):]) if lines else {}
    except ValueError:
        return {}


def failure(outcome, log_path: Path, written: Path, shown_as: str, time_limit: float,
            memory_limit: float | None) -> tuple[str, str]:
    """(Kaggle's failure class, why in one line), ("", "") when the notebook ran through
    and left its output; a class "" with a reason is the emulation's own failure."""
    ended = status(log_path)
    state = ended.get("state")
    if outcome.timed_out:
        return "Notebook Timeout", f"the rerun passed the time cap of {time_limit:g} s; the notebook was stopped"
    if outcome.memory_exceeded:
        return "Notebook Exceeded Allowed Compute", (f"memory limit of {memory_limit:g} GB exceeded "
                                                     f"({outcome.memory_mode}); the kernel was killed")
    if state != "ok" and outcome.limit_reached():   # "more RAM or disk than available", processes alike
        return "Notebook Exceeded Allowed Compute", outcome.limit_reached()
    if state == "exception":
        line = f"{ended.get('ename', '')}: {ended.get('evalue', '')}".strip(": ")
        if memory_limit and outcome.memory_mode.startswith("RLIMIT_AS") and ended.get("ename") == "MemoryError":
            return "Notebook Exceeded Allowed Compute", f"memory limit of {memory_limit:g} GB exceeded ({outcome.memory_mode}): {line}"
        if runner.NETWORK_ERRORS.search(line):
            line += " (the rerun has no internet)"
        return "Notebook Threw Exception", line
    if state == "dead":
        return "Notebook Threw Exception", f"kernel died ({ended.get('detail') or 'no reply'})"
    if state == "error":
        return "", f"the notebook's kernel could not be run: {ended.get('detail')}"
    if state != "ok":
        return "", f"the rerun stopped with exit code {outcome.returncode}: {runner.last_line(log_path.read_text(errors='replace'))}"
    if not written.is_file():
        return "Submission CSV Not Found", f"the notebook ran through but wrote no {shown_as}"
    return "", ""


def score(competition, submission: Path, data_dir: Path, hidden: Path | None) -> list[str]:
    """The score of the kept output, as `compete score` computes it, when the answers to
    the test it was made on are known (answers/ beside the hidden test, or the data's)."""
    from common.submission import InvalidSubmission

    answers = Path(hidden or data_dir) / runner.NEVER_HELD
    if not answers.is_dir():
        return [f"not scored: no {answers}"] if hidden is not None else []
    try:
        scores = competition.score_file(submission, answers)
    except (io.InputError, InvalidSubmission) as error:
        return [f"not scored: {error}"]
    return [f"score against {answers}: " + ", ".join(f"{name} {value:.6f}" for name, value in scores.items())]
