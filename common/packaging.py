"""Code submissions: build the bundle a platform runs, and run it here the way the
platform's hidden-test runtime would before anything is uploaded (DrivenData's
`pack-submission` / `test-submission`, without Docker).

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

The local runtime (`run_bundle`, `compete runtime test`): check the zip, unpack it
refusing members that escape, check the bundle against the profile
(common/runtimes/environment.py), run main.py in the profile's layout with no network
under the time and memory limits (common/runtimes/sandbox.py), take the output from
where the profile takes it and validate it with the same validator as every other
command. The log and resources.json go to `<bundle>.runtime/` beside the bundle; the
scratch folder is removed unless `keep`.
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from common import io

MANIFEST = "bundle.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIME_LIMIT = 8 * 3600   # where a profile states none: DrivenData's usual limit
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


def build(competition, run_dir: Path, out: Path, dockerfile: bool = False, profile: str | None = None) -> list[Path]:
    """Write the bundle `out` for `profile` (default: the competition's) and, with
    `dockerfile`, a build context beside it; returns the paths written."""
    from common import runtimes

    entry = competition.bundle_entry
    if entry is None or competition.runtime_profile is None:
        raise io.InputError(f"{competition.name}: not a code competition; its submission is a file (`compete run`)")
    target = runtimes.get(profile or competition.runtime_profile)
    run_dir, out = Path(run_dir), Path(out)
    module, _, function = entry.partition(":")
    files = run_files(competition, run_dir)
    modules, external = project_modules(module)
    members: dict[str, bytes] = {}
    for name in modules:
        path = _module_file(name)
        stub = path.name == "__init__.py" and name != module
        members[path.relative_to(PROJECT_ROOT).as_posix()] = STUB_INIT.encode() if stub else path.read_bytes()
        parts = name.split(".")
        for depth in range(1, len(parts)):  # every enclosing package, as an empty __init__
            members.setdefault("/".join(parts[:depth]) + "/__init__.py", STUB_INIT.encode())
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


def build_from(folder: Path, out: Path) -> list[Path]:
    """Zip your own submission folder (main.py at its root) as DrivenData's
    `pack-submission` does: its contents at the zip's root, hidden files left out
    (the Makefile's `./*` glob), here also __pycache__; fixed member times, so the same
    folder gives the same bytes (as DrivenData's repro-zipfile)."""
    folder, out = Path(folder), Path(out)
    if not (folder / "main.py").is_file():
        raise io.InputError(f"{folder}: no main.py at its root; the runtime runs main.py from the zip's root")
    resolved_out = out.resolve()
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.resolve() != resolved_out
                   and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(folder).parts))
    with io.atomic_path(out) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
    return [out]


def run_files(competition, run_dir: Path) -> dict[str, bytes]:
    """The bytes of the competition's `bundle_files` from `run_dir`; files the run
    lacks are made by loading its model and saving it again into a scratch folder."""
    wanted = list(competition.bundle_files)
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


def export_onnx(module, example, path: Path, profile: str) -> Path:
    """Write the torch `module` (in eval mode, traced on `example`) as ONNX at the
    highest opset and IR version the profile's onnxruntime reads, batch size free."""
    import io as bytes_io

    import onnx
    import torch

    from common import runtimes
    from common.runtimes.environment import highest_onnx

    opset, ir_version = highest_onnx(runtimes.get(profile))
    buffer = bytes_io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():  # the TorchScript exporter is the one that writes opsets below 18
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, (example,), buffer, opset_version=opset, input_names=["images"],
                              output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
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


# ---------------------------------------------------------------- the local runtime

@dataclass
class RuntimeResult:
    ok: bool
    reason: str
    log: Path
    submission: Path | None
    seconds: float
    isolated: bool
    profile: str = ""
    problems: list[str] = field(default_factory=list)   # every environment-check failure, one line each
    notes: list[str] = field(default_factory=list)      # what the run did differently, in words
    resources: dict = field(default_factory=dict)
    results: Path | None = None                         # the folder with log.txt and resources.json
    workdir: Path | None = None                         # kept only with `keep`


# Run inside the sandbox: hide this project's editable install from the bundle, so a
# module missing from the zip fails here as it would on the platform.
LAUNCHER = """\
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()
sys.path[:] = [p for p in sys.path if p.rstrip("/") != {root!r}]
sys.argv = [{entry!r}]
sys.path.insert(0, "")
runpy.run_path({entry!r}, run_name="__main__")
"""

NETWORK_ERRORS = re.compile(r"Network is unreachable|Connection refused|Name or service not known|Temporary failure in name "
                            r"resolution|No address associated|getaddrinfo failed|nodename nor servname|ConnectionError|URLError")


def sandbox_available() -> tuple[bool, str]:
    """Whether the runtime's sandbox (mount and network namespaces) can be built here."""
    from common.runtimes import sandbox
    return sandbox.available()


def run_bundle(bundle: Path, data_dir: Path, out: Path | None = None, competition: str | None = None,
               profile: str | None = None, time_limit: float | None = None, memory_limit: float | None = None,
               smoke: int | None = None, keep: bool = False, skip_env_check: bool = False,
               unisolated: bool = False) -> RuntimeResult:
    """Run `bundle` on `data_dir` as the profile's hidden-test runtime would; see the
    module docstring. Unreadable input raises io.InputError; a bundle that fails is a
    result with ok=False and the reason."""
    from common.runtimes import environment

    bundle, data_dir = Path(bundle), Path(data_dir).resolve()
    check_inputs(bundle, data_dir)
    isolated, why = sandbox_available()
    if not isolated and not unisolated:
        raise io.InputError(f"cannot isolate the bundle: the sandbox cannot be built here ({why}); run as root, or pass "
                            f"--unisolated to run it WITHOUT network isolation, the runtime's paths or a read-only data mount")
    workdir = Path(tempfile.mkdtemp(prefix="compete-runtime-"))
    try:
        layout = unpack(bundle, workdir, data_dir)
        competition_ = _bundle_competition(layout.code, data_dir, competition)
        target = _profile(competition_, profile)
        results = bundle.resolve().parent / f"{bundle.stem}.runtime"
        log_path = results / "log.txt"
        try:
            results.mkdir(parents=True, exist_ok=True)
            for stale in (target.output, "resources.json", Path(target.private_log or "log.txt").name):
                (results / stale).unlink(missing_ok=True)   # nothing from an earlier run is taken for this one's
            log_path.write_text("")
        except OSError as error:
            raise io.InputError(f"{results}: cannot write the run's log there ({error.strerror}); copy the bundle "
                                f"to a folder you can write") from None
        result = RuntimeResult(False, "", log_path, None, 0.0, isolated, profile=target.name, results=results,
                               workdir=workdir if keep else None)
        if not (layout.code / target.entry).is_file():
            result.reason = f"no {target.entry} at the root of the zip (the {target.name} runtime runs {target.root}/{target.entry})"
            return result
        if skip_env_check:
            result.notes.append(f"environment check against {target.name} skipped (--skip-env-check)")
        else:
            result.problems = environment.check(layout.code, target)
            if result.problems:
                more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
                result.reason = f"the {target.name} environment check failed: {result.problems[0]}{more}"
                return result
        view = smoke_view(competition_, data_dir, smoke, workdir / "smoke") if smoke is not None else None
        if view is not None:
            layout.overlays = view.overlays
            result.notes.append(f"smoke run: the first {smoke} row(s) of {competition_.submission.sample_file} and the "
                                f"test rows of their ids ({', '.join(sorted(view.overlays))})")
        limit = time_limit or target.time_limit or DEFAULT_TIME_LIMIT
        if not time_limit and not target.time_limit:
            result.notes.append(f"time limit {limit / 3600:g} h: the {target.name} repository states none")
        outcome = _execute(layout, target, log_path, limit, memory_limit, isolated, smoke=view is not None)
        result.seconds, result.resources = outcome.wall_seconds, outcome.resources()
        io.write_text(results / "resources.json", json.dumps(result.resources, indent=1) + "\n")
        result.reason = _failure(outcome, target, layout, log_path, limit, memory_limit)
        if result.reason:
            return result
        return _collect(result, competition_, layout, target, view.directory if view else data_dir, out)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def check_inputs(bundle: Path, data_dir: Path) -> None:
    """The bundle is a readable zip whose every member passes its CRC check, and the
    data folder exists: checked before any folder is made."""
    if not bundle.is_file():
        raise io.InputError(f"{bundle}: bundle not found")
    if not data_dir.is_dir():
        raise io.InputError(f"{data_dir}: data folder not found")
    if not zipfile.is_zipfile(bundle):
        raise io.InputError(f"{bundle}: not a zip file")
    try:
        with zipfile.ZipFile(bundle) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
        raise io.InputError(f"{bundle}: cannot be read as a zip ({' '.join(str(error).split())})") from None
    if damaged is not None:
        raise io.InputError(f"{bundle}: member {damaged!r} fails its CRC check; the zip is damaged, build it again")


def unpack(bundle: Path, workdir: Path, data_dir: Path):
    """Unpack the bundle as the runtime does (into what becomes its root) and lay out
    the folders the sandbox shows."""
    from common.runtimes.sandbox import Layout

    code = workdir / "code"
    try:
        io.safe_extract(bundle, code)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise io.InputError(f"{bundle}: cannot be unpacked ({' '.join(str(error).split())})") from None
    for folder in ("root", "submission", "scratch"):
        (workdir / folder).mkdir()
    shutil.copyfile(bundle, workdir / "submission" / "submission.zip")  # where the runtime keeps it while main.py runs
    return Layout(root=workdir / "root", code=code, data=data_dir, submission=workdir / "submission",
                  scratch=workdir / "scratch", inside_root="", inside_data="", inside_submission="")


def _profile(competition, name: str | None):
    from common import runtimes

    if name:
        return runtimes.get(name)
    if competition.runtime_profile is None:
        raise io.InputError(f"{competition.name}: no runtime profile; pass --profile (see `compete runtime profiles`)")
    return runtimes.get(competition.runtime_profile)


def _execute(layout, profile, log_path: Path, time_limit: float, memory_limit: float | None, isolated: bool, smoke: bool):
    """Put the layout at the profile's paths and run main.py there, as the entrypoint does."""
    from common.runtimes import sandbox

    layout.inside_root, layout.inside_data, layout.inside_submission = profile.root, profile.data, profile.submission_dir
    for inside in (profile.data, profile.submission_dir):  # mount points inside the unpacked bundle
        relative = Path(inside).relative_to(profile.root) if Path(inside).is_relative_to(profile.root) else None
        if relative is not None:
            (layout.code / relative).mkdir(parents=True, exist_ok=True)
    lines = [f"compete runtime test: the {profile.name} runtime ({profile.source.split(':')[0]})"]
    if shutil.which("nvidia-smi") is None:
        lines.append("GPU unavailable; falling back to CPU.")
    lines.append(f"Running submission: python {profile.entry} in {profile.root}")
    with open(log_path, "a") as log_file:
        log_file.write("\n".join(lines) + "\n")
    output_log = log_path
    if profile.private_log and not smoke:  # the runtime keeps a full run's own output out of the log
        output_log = log_path.with_name(Path(profile.private_log).name)
        output_log.write_text("")
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "LANG": "C.UTF-8",
                   "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    command = [sys.executable, "-I", "-c", LAUNCHER.format(root=str(PROJECT_ROOT), entry=profile.entry)]
    outcome = sandbox.run(command, layout, output_log, environment, time_limit, memory_limit, isolated=isolated)
    if output_log != log_path:
        with open(log_path, "a") as log_file:
            log_file.write(f"(main.py's own output is in {output_log.name}, as the runtime keeps it private)\n")
    return outcome


def _failure(outcome, profile, layout, log_path: Path, time_limit: float, memory_limit: float | None) -> str:
    """Why the run failed, in one line, or "" when main.py exited 0 and left its output."""
    private = log_path.with_name(Path(profile.private_log).name) if profile.private_log else None
    log_text = log_path.read_text(errors="replace")
    if private is not None and private.is_file():
        log_text += private.read_text(errors="replace")
    last = _last_line(log_text)
    if outcome.timed_out:
        return f"time limit of {time_limit:g} s exceeded; the bundle's processes were killed"
    if outcome.memory_exceeded:
        return f"memory limit of {memory_limit:g} GB exceeded ({outcome.memory_mode}); the kernel killed the bundle"
    if outcome.returncode != 0:
        if NETWORK_ERRORS.search(log_text):
            return f"the bundle tried to reach the network, which the runtime does not have: {last}"
        if memory_limit and outcome.memory_mode.startswith("RLIMIT_AS") and (
                "MemoryError" in log_text or "Cannot allocate memory" in log_text or outcome.returncode == -9):
            return f"memory limit of {memory_limit:g} GB exceeded ({outcome.memory_mode}): {last}"
        return f"{profile.entry} exited with code {outcome.returncode}: {last}"
    if not (layout.code / profile.output).is_file():
        return (f"{profile.entry} finished but wrote no {profile.output} in its working directory {profile.root} "
                f"(the runtime takes it from there to {profile.submission_dir}/{profile.output})")
    return ""


def _collect(result: RuntimeResult, competition, layout, profile, truth_dir: Path, out: Path | None) -> RuntimeResult:
    """Copy the output where the runtime copies it, validate it, keep it."""
    from common.submission import read_submission

    copied = layout.submission / profile.output
    shutil.copyfile(layout.code / profile.output, copied)
    try:
        problems = competition.validate(read_submission(copied), truth_dir)
    except io.InputError as error:  # named where the runtime has it, not by the scratch folder
        result.reason = f"{profile.output} cannot be read: {str(error).replace(str(copied), f'{profile.submission_dir}/{profile.output}')}"
        return result
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        result.reason = f"{profile.output} is invalid: {problems[0]}{more}"
        return result
    kept = Path(out) if out is not None else result.results / profile.output
    io.write_bytes(kept, copied.read_bytes())
    result.ok, result.reason, result.submission = True, "ok", kept
    return result


@dataclass
class SmokeView:
    directory: Path                  # the cut files, at their places relative to the data folder
    overlays: dict[str, Path]        # data-relative path -> cut file shown over the original


def smoke_view(competition, data_dir: Path, rows: int, directory: Path) -> SmokeView:
    """The data as a smoke test sees it, as DrivenData's smoke tests cut it to a few
    ids (drivendataorg/snomed-ct-entity-linking-runtime, scripts/smoke_test_data.py): the
    first `rows` rows of the sample file, and of every other CSV holding test ids (one
    with at least one id of the sample) only the rows of those ids. Training files are
    left as they are."""
    import pandas as pd

    if rows < 1:
        raise io.InputError(f"--smoke {rows}: give a number of rows of at least 1")
    sample_source = io.find(data_dir, competition.submission.sample_file)
    if sample_source.member is not None:
        raise io.InputError(f"{sample_source}: a smoke run needs the data unzipped (the sample is inside a zip)")
    id_column = competition.submission.id_column
    sample = io.read_csv(sample_source.path, dtype=str, keep_default_na=False)
    io.require_columns(sample, [id_column], sample_source)
    kept = sample.head(rows)
    ids = set(kept[id_column])
    cut = {sample_source.path: kept}
    for path in sorted(data_dir.glob("*.csv")) + sorted(data_dir.glob("*/*.csv")):
        if path == sample_source.path:
            continue
        header = io.read_csv(path, nrows=0)
        if id_column not in header.columns:
            continue
        frame = io.read_csv(path, dtype=str, keep_default_na=False)
        if frame[id_column].isin(ids).any():
            cut[path] = frame[frame[id_column].isin(ids)]
    overlays = {}
    for path, frame in cut.items():
        relative = path.relative_to(data_dir).as_posix()
        overlays[relative] = io.write_csv(frame, directory / relative)
    return SmokeView(directory, overlays)


def _bundle_competition(code: Path, data_dir: Path, name: str | None):
    """The competition a bundle is for: --competition, its manifest, or the code
    competition whose sample file the data folder holds."""
    from common.competition import get, names

    if name:
        return get(name)
    manifest = code / MANIFEST
    if manifest.is_file():
        try:
            return get(json.loads(manifest.read_text())["competition"])
        except (ValueError, KeyError, TypeError):
            raise io.InputError(f"{manifest.name} in the bundle is not a compete manifest; pass --competition") from None
    for candidate in names():
        competition = get(candidate)
        if competition.runtime_profile and io.find(data_dir, competition.submission.sample_file, required=False):
            return competition
    raise io.InputError(f"no {MANIFEST} in the bundle and no code competition's sample file in {data_dir}: "
                        f"pass --competition to say which competition's format the output must have")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
