"""Code submissions: build what a platform runs (DrivenData's `pack-submission`; a
Kaggle kernel and dataset). Running them as the platform would is the runtime test's
job (common/runtimes/runner.py).

`package` picks the builder by the profile's kind: a DrivenData profile ("bundle") gets
a zip (`build`, `build_from`); a Kaggle profile ("notebook") gets a package folder
(`build_kaggle`, `build_kaggle_from`), the layout the rerun (runtimes/notebook.py) and
`compete submit` (platforms/kaggle_code.py) read, the kaggle client pushing and creating
its two folders as they are:

    DIR/compete-package.json   competition, platform, profile, slug, kernel, dataset,
                               kernel_id, dataset_id, code_file, output, and run_dir
                               (the run it came from, for submit --wait)
    DIR/kernel/                kernel-metadata.json (id OWNER/SLUG, title, code_file,
                               language, kernel_type, is_private, enable_gpu,
                               enable_internet false, competition_sources [SLUG],
                               dataset_sources [OWNER/DATASET]) and the notebook or script
    DIR/dataset/               dataset-metadata.json (title, id, licenses), the run's model
                               files and the vendored inference code

OWNER is the Kaggle user the credentials name, or the placeholder `OWNER` that
`compete submit` fills in with the signed-in user. In the rerun the dataset shows at
/kaggle/input/DATASET/, the competition's files at /kaggle/input/competitions/SLUG/ and
/kaggle/input/SLUG/, and /kaggle/working is the working directory.

A competition that takes code declares its runtime profile (`runtime_profile`, a name
of common/runtimes) and two attributes:
    bundle_entry = "package.module:function"   called as function(bundle_dir, data_dir, out_csv)
    bundle_files = ("model.onnx", ...)         files of the run directory to ship
A run directory lacking some of `bundle_files` (trained before they existed) gets them
by loading and saving the model again through the protocol, into a scratch folder.

The bundle (`build`) is a zip with `main.py` at its root, the run files, `bundle.json`
(what it is) and the project modules the entry needs, found by following its imports.
Package `__init__.py` files are shipped empty (a competition's __init__ pulls in the
registry and training code), so an entry must import from modules, not packages.
main.py is written for the profile, as DrivenData's benchmarks are: it reads the data
where the runtime mounts it (e.g. /inference/data) and writes the output beside itself,
where the runtime takes it from; it is plain Python 3.6.
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from common import io
from common.runtimes.runner import MANIFEST, PACKAGE_MANIFEST

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: same run, same bundle bytes

MAIN = '''"""Inference entry point of a {competition} code submission (built by `compete package`
for the {profile} runtime).

The runtime unzips the submission into {root}, runs this file from there, mounts the
test data read-only at {data} and takes {output} from beside this file.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from {module} import {function}{alias}  # noqa: E402

DATA = Path("{data}")
OUTPUT = HERE / "{output}"

if __name__ == "__main__":
    run(HERE, DATA, OUTPUT)
    print("wrote {{}}".format(OUTPUT))
'''

STUB_INIT = '"""Vendored by `compete package`: only the modules the entry point imports are here."""\n'


# ---------------------------------------------------------------- building

# The profile a platform's competitions build for when they name none of their own:
# a Kaggle competition's notebook runs on Kaggle's image.
DEFAULT_PROFILES = {"kaggle": "kaggle-notebook"}


@dataclass
class Built:
    written: list[Path]                              # what the command prints, one path a line
    notes: list[str] = field(default_factory=list)   # what the user should know, in words


class Refused(io.CheckFailed):
    """A package that would fail on its runtime: nothing is written. `problems` are the
    environment check's lines (common/runtimes/environment.py)."""

    def __init__(self, out: Path, profile: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{out}: not written: {len(problems)} problem(s) on the {profile} runtime, listed above")


def default_profile(competition) -> str | None:
    """The runtime a competition's code is built for when --profile names none."""
    return competition.runtime_profile or DEFAULT_PROFILES.get(competition.platform)


def package(competition, out: Path, run_dir: Path | None = None, source: Path | None = None, profile: str | None = None,
            dockerfile: bool = False) -> Built:
    """`compete package`: from a run (`run_dir`) or your own folder (`source`), for
    `profile` (default: `default_profile`). A DrivenData profile's package is a zip, a
    Kaggle profile's a folder."""
    from common import runtimes

    name = profile or default_profile(competition)
    target = runtimes.profile(name) if name else None
    if target is not None and target.kind == "notebook":
        if dockerfile:
            raise io.InputError(f"--dockerfile: for DrivenData profiles; the {target.name} runtime is Kaggle's own image")
        if source is not None:
            return build_kaggle_from(competition, source, out, target)
        return build_kaggle(competition, run_dir, out, target)
    if Path(out).is_dir():
        raise io.InputError(f"{out}: is a folder; {'a ' + name if name else 'this'} bundle is a zip file (e.g. submission.zip)")
    if source is not None:
        return Built(build_bundle_from(source, out))
    return Built(build_bundle(competition, run_dir, out, dockerfile=dockerfile, profile=name))


def project_modules(module: str) -> tuple[list[str], set[str]]:
    """The project modules `module` imports, transitively (itself included), and the
    top-level names of everything else it imports. Hand-written over the AST because
    modulefinder would also walk every module of torch and pandas."""
    found, external, pending = [], set(), [module]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = _module_file(name)
        if path is None:
            raise io.InputError(f"{name}: not a module of this project ({PROJECT_ROOT})")
        found.append(name)
        if path.name == "__init__.py" and name != module:
            continue  # shipped empty (see the module docstring): its imports are not needed
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if _module_file(target) is not None:
                    pending.append(target)
                elif target and _module_file(target.split(".")[0]) is None and target.split(".")[0] != "__future__":
                    external.add(target.split(".")[0])
    return sorted(found), external


def _module_file(name: str) -> Path | None:
    if not name:
        return None
    base = PROJECT_ROOT.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def build_bundle(competition, run_dir: Path, out: Path, dockerfile: bool = False, profile: str | None = None) -> list[Path]:
    """Write the bundle `out` for `profile` (default: the competition's) and, with
    `dockerfile`, a build context beside it; returns the paths written."""
    from common import runtimes

    name = profile or default_profile(competition)
    target = runtimes.profile(name) if name else None
    entry = competition.bundle(Path(run_dir), target)[0]
    if entry is None or name is None:
        raise io.InputError(f"{competition.name}: not a code competition; its submission is a file (`compete run`)")
    if target.kind != "bundle":
        raise io.InputError(f"profile {target.name}: not a DrivenData runtime; its package is a folder (`compete package "
                            f"{competition.name} --run-dir RUN --profile {target.name} --out DIR`)")
    run_dir, out = Path(run_dir), Path(out)
    module, _, function = entry.partition(":")
    files = run_files(competition, run_dir, target)
    members, modules, external = vendored(module)
    members["main.py"] = MAIN.format(competition=competition.name, profile=target.name, module=module, function=function,
                                     alias="" if function == "run" else " as run",
                                     root=target.root, data=target.data, output=target.output).encode()
    members.update(files)
    built_with = _built_with(external)
    members[MANIFEST] = (json.dumps({"competition": competition.name, "platform": competition.platform,
                                     "profile": target.name, "entry": entry, "modules": modules, "files": sorted(files),
                                     "requirements": sorted({pin.split("==")[0] for pin in built_with}, key=str.lower),
                                     "built_with": built_with}, indent=1) + "\n").encode()
    with io.atomic_path(out) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(members):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, members[name])
    written = [out]
    if dockerfile:
        written += write_runtime(out.with_name(out.stem + "_runtime"), built_with, target)
    return written


def vendored(module: str) -> tuple[dict[str, bytes], list[str], set[str]]:
    """The files of the project modules `module` needs (path in the project -> bytes;
    package __init__ files other than `module`'s shipped empty, see the module
    docstring), those modules' names, and the third-party modules they import."""
    modules, external = project_modules(module)
    members: dict[str, bytes] = {}
    for name in modules:
        path = _module_file(name)
        stub = path.name == "__init__.py" and name != module
        members[path.relative_to(PROJECT_ROOT).as_posix()] = STUB_INIT.encode() if stub else path.read_bytes()
        parts = name.split(".")
        for depth in range(1, len(parts)):  # every enclosing package, as an empty __init__
            members.setdefault("/".join(parts[:depth]) + "/__init__.py", STUB_INIT.encode())
    return members, modules, external


def folder_files(folder: Path, out: Path | None = None) -> list[Path]:
    """The files of your own submission folder, as DrivenData's `pack-submission` takes
    them: hidden files left out (the Makefile's `./*` glob), here also __pycache__ and
    whatever lies under `out` (the package being written there)."""
    folder = Path(folder)
    resolved_out = Path(out).resolve() if out is not None else None
    return sorted(path for path in folder.rglob("*") if path.is_file()
                  and (resolved_out is None or not path.resolve().is_relative_to(resolved_out))
                  and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(folder).parts))


def build_bundle_from(folder: Path, out: Path) -> list[Path]:
    """Zip your own submission folder (main.py at its root) as DrivenData's
    `pack-submission` does: its contents at the zip's root, hidden files left out
    (the Makefile's `./*` glob), here also __pycache__; fixed member times, so the same
    folder gives the same bytes (as DrivenData's repro-zipfile)."""
    folder, out = Path(folder), Path(out)
    if not (folder / "main.py").is_file():
        raise io.InputError(f"{folder}: no main.py at its root; the runtime runs main.py from the zip's root")
    files = folder_files(folder, out)
    with io.atomic_path(out) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
    return [out]


def run_files(competition, run_dir: Path, profile=None) -> dict[str, bytes]:
    """The bytes of the competition's `bundle_files` from `run_dir` (for `profile`); files
    the run lacks are made by loading its model and saving it again into a scratch folder."""
    wanted = list(competition.bundle(Path(run_dir), profile)[1])
    missing = [name for name in wanted if not (run_dir / name).is_file()]
    with tempfile.TemporaryDirectory(prefix="compete-package-") as scratch:
        sources = {name: run_dir / name for name in wanted}
        if missing:
            try:
                model = competition.load_model(run_dir)
            except io.InputError as error:
                raise io.InputError(f"{run_dir / missing[0]}: not found, and no model to make it from ({error}); train first "
                                    f"with `compete fit {competition.name} --data DIR --run-dir {run_dir}`") from None
            competition.save_model(model, Path(scratch))
            for name in missing:
                sources[name] = Path(scratch) / name
                if not sources[name].is_file():
                    raise io.InputError(f"{run_dir / name}: not found; train first with `compete fit {competition.name} "
                                        f"--data DIR --run-dir {run_dir}`")
        return {name: path.read_bytes() for name, path in sources.items()}


def export_onnx(module, example, path: Path, profile: str | None, input_names=("images",)) -> Path:
    """Write the torch `module` (in eval mode, traced on `example`: a tensor, or a tuple
    of them for a module of several inputs, named by `input_names`) as ONNX at the
    highest opset and IR version the profile's onnxruntime reads (no profile: the
    installed onnxruntime's), batch size free."""
    import io as bytes_io

    import onnx
    import torch

    from common import runtimes
    from common.runtimes.environment import highest_onnx

    if profile is not None:
        opset, ir_version = highest_onnx(runtimes.profile(profile))
    else:  # no runtime named (or it reads the network another way): what the installed onnxruntime reads
        import onnxruntime

        from common.runtimes.environment import ONNXRUNTIME_SUPPORT, Version
        release = Version(onnxruntime.__version__).release[:2]
        opset, ir_version = ONNXRUNTIME_SUPPORT.get(release, max(ONNXRUNTIME_SUPPORT.values()))
    buffer = bytes_io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():  # the TorchScript exporter is the one that writes opsets below 18
            warnings.simplefilter("ignore", DeprecationWarning)
            examples = example if isinstance(example, tuple) else (example,)
            names = list(input_names)
            if len(names) != len(examples):
                raise ValueError(f"export_onnx: {len(examples)} example input(s), {len(names)} name(s)")
            torch.onnx.export(module, examples, buffer, opset_version=opset, input_names=names,
                              output_names=["logits"], dynamic_axes={**{name: {0: "batch"} for name in names}, "logits": {0: "batch"}},
                              dynamo=False)
    finally:
        module.train(was_training)
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = min(model.ir_version, ir_version)
    return io.write_bytes(path, model.SerializeToString())


def _built_with(external: set[str]) -> list[str]:
    """Pinned distributions (as installed here) of the third-party modules the bundle imports."""
    distributions = importlib.metadata.packages_distributions()
    pins = set()
    for name in external:
        for distribution in distributions.get(name, []):
            pins.add(f"{distribution}=={importlib.metadata.version(distribution)}")
    return sorted(pins, key=str.lower)


DOCKERFILE = """\
# An approximation of the {profile} runtime ({source}) for a local Docker run: the
# profile's Python and paths, the packages the bundle imports at the profile's versions
# where it pins them. The image is the environment; the submission zip and the data are
# mounted when it runs, with no network.
#
#   docker build -t compete-runtime {context}
#   mkdir -p submission && cp {bundle} submission/submission.zip
#   docker run --rm --network none \\
#       --mount type=bind,source="$(pwd)/DATA",target={data},readonly \\
#       --mount type=bind,source="$(pwd)/submission",target={submission_dir} \\
#       compete-runtime
#
# The container unzips submission/submission.zip into {root}, runs `python main.py`
# there, and copies the {output} it writes to submission/, with submission/log.txt.
FROM python:{python}-slim

ENV PYTHONUNBUFFERED=1

COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

RUN apt-get update && apt-get install -y --no-install-recommends unzip && rm -rf /var/lib/apt/lists/* \\
    && useradd --create-home --uid 1000 appuser && mkdir -p {root} && chown appuser {root}
COPY entrypoint.sh /entrypoint.sh
USER appuser
WORKDIR {root}
CMD ["bash", "/entrypoint.sh"]
"""

ENTRYPOINT = """\
#!/bin/bash
# After the {profile} runtime's entrypoint: unzip, run main.py, copy its output.
set -uo pipefail
cd {root}
unzip -q -o ./submission/submission.zip -d ./
python main.py 2>&1 | tee ./submission/log.txt
test -f {output} || {{ echo "ERROR: main.py did not produce {output} in {root}" >&2; exit 1; }}
cp {output} ./submission/{output}
"""


def write_runtime(directory: Path, built_with: list[str], profile) -> list[Path]:
    directory = Path(directory)
    requirements = []
    for pin in built_with:
        name = pin.split("==")[0]
        present, version = profile.version_of(name)
        requirements.append(f"{name}=={version}" if present and version else name)
    fields = dict(profile=profile.name, source=profile.source.split(":")[0], context=directory.name,
                  bundle=directory.name.removesuffix("_runtime") + ".zip", data=profile.data, root=profile.root,
                  submission_dir=profile.submission_dir, output=profile.output,
                  python=".".join(profile.python.split(".")[:2]))
    return [
        io.write_text(directory / "Dockerfile", DOCKERFILE.format(**fields)),
        io.write_text(directory / "requirements.txt", "".join(f"{line}\n" for line in requirements)),
        io.write_text(directory / "entrypoint.sh", ENTRYPOINT.format(**fields)),
    ]


# ---------------------------------------------------------------- Kaggle: a kernel and a dataset

KERNEL, DATASET = "kernel", "dataset"
NOTEBOOK = "notebook.ipynb"
KERNEL_METADATA, DATASET_METADATA = "kernel-metadata.json", "dataset-metadata.json"   # the client's file names
OWNER = "OWNER"          # where no credentials name the Kaggle user; `compete submit` fills it in
LICENSE = "CC0-1.0"
SLUG_LENGTH = 32         # of the competition's part, so that every slug and title stays within 50 characters
# Modules a Kaggle notebook imports from the competition's data folder, not from the
# image: the kaggle_evaluation gateway's client ships there (issue 20).
COMPETITION_MODULES = {"kaggle_evaluation"}


@dataclass(frozen=True)
class KaggleNames:
    """The kernel's and the dataset's ids and titles. The client checks (Kaggle/kaggle-cli,
    kaggle/api/kaggle_api_extended.py, kernels_push and dataset_create_new; kaggle 2.2.5):
    a kernel title of 5+ characters whose slug is the id's, a dataset slug and title of
    6 to 50 characters, exactly one license."""

    owner: str
    dataset_slug: str
    dataset_title: str
    kernel_slug: str
    kernel_title: str

    @property
    def dataset_id(self) -> str:
        return f"{self.owner}/{self.dataset_slug}"

    @property
    def kernel_id(self) -> str:
        return f"{self.owner}/{self.kernel_slug}"


def slug_of(text: str) -> str:
    """Kaggle's URL slug of a title: lower case, every run of other characters one hyphen
    (what python-slugify, the client's, makes of ASCII)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def kaggle_names(competition) -> KaggleNames:
    """One kernel and one dataset per competition, versioned by each push."""
    base = slug_of(competition.name.rpartition(":")[2])[:SLUG_LENGTH].strip("-") or "competition"
    kernel_title = f"{base} compete inference"
    return KaggleNames(owner=kaggle_owner(), dataset_slug=f"{base}-compete-model", dataset_title=f"{base} compete model",
                       kernel_slug=slug_of(kernel_title), kernel_title=kernel_title)


def kaggle_owner() -> str:
    """The Kaggle user the credentials name (KAGGLE_USERNAME, or kaggle.json's username;
    read here, no network), else the OWNER placeholder."""
    from common.platforms.credentials import read_json
    from common.platforms.errors import CredentialsError
    from common.platforms.kaggle import config_dir

    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    legacy = config_dir() / "kaggle.json"
    if legacy.is_file():
        try:
            return read_json(legacy, "username")["username"]
        except CredentialsError:
            pass  # `compete submit` says what is wrong with it; a package needs no credentials
    return OWNER


def build_kaggle(competition, run_dir: Path, out: Path, profile) -> Built:
    """The package of a run: the dataset holds the run's model files and the project
    modules the competition's inference entry imports; the kernel a notebook that calls
    the entry on the competition's files and writes the profile's output."""
    entry = competition.bundle(Path(run_dir), profile)[0]
    if entry is None:
        raise io.InputError(f"{competition.name}: no inference entry to package a run with; package your own notebook "
                            f"with `compete package {competition.name} --from FOLDER --out DIR`")
    from common.runs import check_run

    run_dir = check_run(competition, Path(run_dir))   # another competition's run would predict nonsense there
    module, _, function = entry.partition(":")
    members, modules, external = vendored(module)
    files = run_files(competition, run_dir, profile)
    names = kaggle_names(competition)
    notebook = run_notebook(competition, profile, names, module, function, run_dir.name)
    # run_dir: where `compete submit --wait` records the score; run: its name, as first written
    extra = {"run_dir": str(run_dir.resolve()), "run": run_dir.name, "entry": entry, "modules": modules,
             "files": sorted(files)}
    built = write_package(competition, profile, out, names, NOTEBOOK, notebook, {**members, **files}, extra)
    return Built(built.written, built.notes + version_notes(external, profile))


def build_kaggle_from(competition, folder: Path, out: Path, profile) -> Built:
    """The package of your own folder: its notebook (or, with no notebook, its script) at
    the root is the kernel's code; every other file goes into the dataset (hidden files
    and __pycache__ left out, as `build_from` does)."""
    folder = Path(folder)
    files = folder_files(folder, out)
    code = entry_file(folder, files)
    if code.suffix == ".ipynb":
        _read_notebook(code)
    names = kaggle_names(competition)
    dataset, notes = {}, []
    for path in files:
        relative = path.relative_to(folder).as_posix()
        if path == code:
            continue
        if relative in (KERNEL_METADATA, DATASET_METADATA):
            notes.append(f"{path}: left out; compete writes the package's own {relative}")
            continue
        dataset[relative] = path.read_bytes()
    if dataset:
        notes.append(f"in the rerun your other files are at {dataset_path(profile, names)}/")
    built = write_package(competition, profile, out, names, code.name, code.read_bytes(), dataset,
                          {"source": folder.resolve().name})
    return Built(built.written, notes + built.notes)


def entry_file(folder: Path, files: list[Path]) -> Path:
    """The kernel's code file: the one notebook at the folder's root, or, with none there,
    the one script (other .py files beside a notebook are the modules it imports)."""
    root = [path for path in files if path.parent == folder]
    notebooks = [path for path in root if path.suffix == ".ipynb"]
    scripts = [path for path in root if path.suffix == ".py"]
    found = notebooks or scripts
    if len(found) == 1:
        return found[0]
    if not found:
        raise io.InputError(f"{folder}: no notebook (.ipynb) or script (.py) at its root; a Kaggle kernel runs one")
    kind = "notebooks" if notebooks else "scripts (and no notebook)"
    raise io.InputError(f"{folder}: {len(found)} {kind} at its root ({', '.join(path.name for path in found)}); a Kaggle "
                        f"kernel runs one: keep that one at the root and move the others into a subfolder")


def _read_notebook(path: Path):
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except (OSError, ValueError) as error:  # not JSON (nbformat's NotJSONError is a ValueError), not UTF-8, unreadable
        raise io.InputError(f"{path}: not a readable notebook ({' '.join(str(error).split())[:200]})") from None


def competition_paths(profile, competition) -> list[str]:
    """Where the profile's runtime shows the competition's files, newest layout first."""
    return [path.replace("{slug}", competition.slug) for path in (profile.data, *profile.data_aliases)]


def dataset_path(profile, names: KaggleNames) -> str:
    return profile.datasets.replace("{dataset}", names.dataset_slug)


MARKDOWN = """# {competition}: inference for Kaggle's rerun

Built by `compete package` from the run `{run}` for the `{profile}` runtime. It installs nothing and needs no internet:

- the competition's files: `{data}/`{aliases};
- the model and the inference code (`{module}`, vendored from compete): the dataset `{dataset_id}`, at `{dataset}/`;
- the submission: `{output}`.

In the rerun the hidden test files are where the public ones were, so the same code predicts them."""

SETUP = """import sys
from pathlib import Path

COMPETITION_FILES = [
{data}
]
DATASET = Path({dataset!r})
SUBMISSION = Path({output!r})

data_dir = next((path for path in COMPETITION_FILES if path.is_dir()), None)
if data_dir is None:
    raise FileNotFoundError("the competition's files are at none of " + ", ".join(map(str, COMPETITION_FILES))
                            + ": add the competition to the notebook's inputs")
if not DATASET.is_dir():
    raise FileNotFoundError(str(DATASET) + ": the dataset {dataset_id} is not attached: add it to the notebook's inputs")
sys.path.insert(0, str(DATASET))
print("competition files:", data_dir)"""

PREDICT = """from {module} import {function}

{function}(DATASET, data_dir, SUBMISSION)
print("wrote", SUBMISSION)"""


def run_notebook(competition, profile, names: KaggleNames, module: str, function: str, run: str) -> bytes:
    """The kernel's notebook (nbformat 4, fixed cell ids: the same run gives the same bytes)."""
    import nbformat

    data = competition_paths(profile, competition)
    output = str(PurePosixPath(profile.root) / profile.output)
    aliases = "".join(f", or `{path}/` where an older layout puts them" for path in data[1:])
    notebook = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "version": profile.python}})
    notebook.cells = [
        nbformat.v4.new_markdown_cell(MARKDOWN.format(competition=competition.name, run=run, profile=profile.name,
                                                      data=data[0], aliases=aliases, module=module,
                                                      dataset_id=names.dataset_id, dataset=dataset_path(profile, names),
                                                      output=output)),
        nbformat.v4.new_code_cell(SETUP.format(data="\n".join(f"    Path({path!r})," for path in data),
                                               dataset=dataset_path(profile, names), output=output,
                                               dataset_id=names.dataset_id)),
        nbformat.v4.new_code_cell(PREDICT.format(module=module, function=function)),
    ]
    for number, cell in enumerate(notebook.cells, 1):
        cell.id = f"compete-{number}"
    nbformat.validate(notebook)
    return (nbformat.writes(notebook) + "\n").encode()


def write_package(competition, profile, out: Path, names: KaggleNames, code_file: str, code: bytes,
                  dataset: dict[str, bytes], extra: dict) -> Built:
    """Write the package folder `out` whole or not at all: built beside it, checked
    against the profile (a problem refuses it, nothing written), then put in place of
    `out` (which may be an earlier package, or an empty folder)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise io.InputError(f"{out}: is a file; a Kaggle package is a folder (kernel/, dataset/): pass a new or empty --out")
    if out.is_dir() and any(out.iterdir()) and not (out / PACKAGE_MANIFEST).is_file():
        raise io.InputError(f"{out}: exists and is not a package of `compete package` (no {PACKAGE_MANIFEST}); "
                            f"pass a new or empty --out")
    kernel = {
        "id": names.kernel_id, "title": names.kernel_title, "code_file": code_file, "language": "python",
        "kernel_type": "notebook" if code_file.endswith(".ipynb") else "script", "is_private": True,
        "enable_gpu": wants_gpu(profile), "enable_tpu": False,
        "enable_internet": False,   # the client's default is true, and a notebook with internet cannot be submitted
        "competition_sources": [competition.slug], "dataset_sources": [names.dataset_id] if dataset else [],
        "kernel_sources": [], "model_sources": []}
    manifest = {"competition": competition.name, "platform": competition.platform, "profile": profile.name,
                "slug": competition.slug, "kernel": KERNEL, "dataset": DATASET if dataset else None,
                "output": profile.output, "kernel_id": names.kernel_id, "dataset_id": names.dataset_id if dataset else None,
                "code_file": code_file, **extra}
    files = {f"{KERNEL}/{code_file}": code, f"{KERNEL}/{KERNEL_METADATA}": _json(kernel), PACKAGE_MANIFEST: _json(manifest)}
    if dataset:
        files.update({f"{DATASET}/{name}": content for name, content in dataset.items()})
        files[f"{DATASET}/{DATASET_METADATA}"] = _json({"title": names.dataset_title, "id": names.dataset_id,
                                                        "licenses": [{"name": LICENSE}]})
    with io.atomic_folder(out) as building:
        for name in sorted(files):
            (building / name).parent.mkdir(parents=True, exist_ok=True)
            (building / name).write_bytes(files[name])
        problems = check_package(building, profile)
        if problems:
            raise Refused(out, profile.name, problems)
    notes = [] if names.owner != OWNER else [
        (f"the ids name the placeholder owner {OWNER} (no KAGGLE_USERNAME, no kaggle.json username); `compete submit` "
         f"fills in the signed-in user")]
    return Built([out / KERNEL, *([out / DATASET] if dataset else []), out / PACKAGE_MANIFEST], notes)


def wants_gpu(profile) -> bool:
    """Whether the kernel asks for an accelerator: the profile's `gpu` names one unless it
    says "none" (kaggle-notebook: "none: CPU only"; kaggle-notebook-gpu: "an NVIDIA GPU ...")."""
    return not profile.gpu.lower().startswith("none")


def version_notes(external: set[str], profile) -> list[str]:
    """Where the image pins another release of a package the run's code imports than the
    one it was made with here: a pickled model is not promised to load across releases."""
    from packaging.version import InvalidVersion, Version

    notes = []
    for pin in _built_with(external):
        name, _, version = pin.partition("==")
        present, pinned = profile.version_of(name)
        try:
            differs = present and pinned is not None and Version(pinned).release[:2] != Version(version).release[:2]
        except InvalidVersion:
            differs = False
        if differs:
            notes.append(f"the run was made with {name} {version} here; the {profile.name} image has {name} {pinned}: "
                         f"its pickled model may not load there (train with {name} {pinned} to be sure)")
    return notes


def check_package(folder: Path, profile) -> list[str]:
    """The environment check of a package folder: the dataset's code as a bundle's, the
    kernel's notebook or script importing only the profile's packages, the dataset's
    modules and the competition's (kaggle_evaluation)."""
    from common.runtimes import environment

    dataset = folder / DATASET
    problems = [f"{DATASET}/{problem}" for problem in environment.check(dataset, profile)] if dataset.is_dir() else []
    local = {path.relative_to(dataset).parts[0].removesuffix(".py") for path in dataset.rglob("*.py")} \
        if dataset.is_dir() else set()
    local |= COMPETITION_MODULES
    code_file = json.loads((folder / KERNEL / KERNEL_METADATA).read_text())["code_file"]
    code = folder / KERNEL / code_file
    if code.suffix == ".ipynb":
        problems += environment.check_notebook(code, f"{KERNEL}/{code_file}", profile, local)
    else:
        problems += environment.check_source(code, f"{KERNEL}/{code_file}", profile, local)
    return problems


def _json(payload: dict) -> bytes:
    return (json.dumps(payload, indent=2) + "\n").encode()
