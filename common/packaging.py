"""Code submissions: build the bundle a platform runs, and run it here the way the
hidden-test runtime would before anything is uploaded (DrivenData's
`pack-submission` / `test-submission`, without Docker).

A competition that takes code sets two attributes:
    bundle_entry = "package.module:function"   called as function(bundle_dir, data_dir, out_csv)
    bundle_files = ("model.pt", ...)           files of the run directory to ship

The bundle (`build`) is a zip with `main.py` at its root, the run files, `bundle.json`
(what it is) and the project modules the entry needs, found by following its imports.
Why vendor the modules rather than write one self-contained main.py: the bundle then
runs the very code `compete predict` runs, so a local score and the runtime's agree.
Package `__init__.py` files are shipped empty (a competition's __init__ pulls in the
registry and training code), so an entry must import from modules, not packages.

Paths follow DrivenData's runtime: data read-only at /code_execution/data, the output
at /code_execution/submission/submission.csv; COMPETE_DATA_DIR and
COMPETE_SUBMISSION_DIR override them (the local runtime uses that).

The local runtime (`run_bundle`): unzip into a fresh folder refusing members that
escape it, bind-mount the data read-only and run `python main.py` inside `unshare
--net --mount` (a network namespace with only a loopback, as `docker run --network
none`), in its own process group killed at the time limit, under RLIMIT_AS, with the
log kept; then validate submission.csv with the same validator as every other
command. As root a bind mount is the one way to make data truly read-only (file
modes do not stop root); without unshare the run refuses to start unless asked to
run unisolated, and says so.
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common import io

DATA_ENV, SUBMISSION_ENV = "COMPETE_DATA_DIR", "COMPETE_SUBMISSION_DIR"
DATA_DEFAULT, SUBMISSION_DEFAULT = "/code_execution/data", "/code_execution/submission"
MANIFEST = "bundle.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIME_LIMIT = 8 * 3600   # DrivenData's limit for this kind of competition
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: same run, same bundle bytes

MAIN = '''"""Inference entry point of a {competition} code submission (built by `compete package`).

Reads the data folder ({data_env}, default {data_default}) and writes
submission.csv into the submission folder ({submission_env}, default {submission_default}).
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from {module} import {function} as run  # noqa: E402

if __name__ == "__main__":
    data = Path(os.environ.get("{data_env}", "{data_default}"))
    out = Path(os.environ.get("{submission_env}", "{submission_default}")) / "submission.csv"
    run(HERE, data, out)
    print(f"wrote {{out}}")
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


def build(competition, run_dir: Path, out: Path, dockerfile: bool = False) -> list[Path]:
    """Write the bundle `out` (and, with `dockerfile`, a build context beside it);
    returns the paths written."""
    entry = getattr(competition, "bundle_entry", None)
    if entry is None:
        raise io.InputError(f"{competition.name}: not a code competition; its submission is a file (`compete run`)")
    run_dir, out = Path(run_dir), Path(out)
    module, _, function = entry.partition(":")
    files = {}
    for name in getattr(competition, "bundle_files", ()):
        path = run_dir / name
        if not path.is_file():
            raise io.InputError(f"{path}: not found; train first with `compete fit {competition.name} --data DIR --run-dir {run_dir}`")
        files[name] = path.read_bytes()
    modules, external = project_modules(module)
    members: dict[str, bytes] = {}
    for name in modules:
        path = _module_file(name)
        stub = path.name == "__init__.py" and name != module
        members[path.relative_to(PROJECT_ROOT).as_posix()] = STUB_INIT.encode() if stub else path.read_bytes()
        parts = name.split(".")
        for depth in range(1, len(parts)):  # every enclosing package, as an empty __init__
            members.setdefault("/".join(parts[:depth]) + "/__init__.py", STUB_INIT.encode())
    members["main.py"] = MAIN.format(competition=competition.name, module=module, function=function,
                                     data_env=DATA_ENV, data_default=DATA_DEFAULT,
                                     submission_env=SUBMISSION_ENV, submission_default=SUBMISSION_DEFAULT).encode()
    members.update(files)
    requirements = _requirements(external)
    members[MANIFEST] = (json.dumps({"competition": competition.name, "platform": competition.platform,
                                     "entry": entry, "modules": modules, "files": sorted(files),
                                     "requirements": requirements}, indent=1) + "\n").encode()
    with io.atomic_path(out) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(members):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, members[name])
    written = [out]
    if dockerfile:
        written += write_runtime(out.with_name(out.stem + "_runtime"), requirements)
    return written


def _requirements(external: set[str]) -> list[str]:
    """Pinned distributions of the third-party modules the bundle imports."""
    distributions = importlib.metadata.packages_distributions()
    pins = set()
    for name in external:
        for distribution in distributions.get(name, []):
            pins.add(f"{distribution}=={importlib.metadata.version(distribution)}")
    return sorted(pins, key=str.lower)


DOCKERFILE = """\
# The runtime a DrivenData code submission runs in, after the convention of
# DrivenData's competition runtime repositories: the image is the environment; the
# submission zip and the data are mounted when it runs, with no network.
#
#   docker build -t compete-runtime {context}
#   mkdir -p submission && cp {bundle} submission/submission.zip
#   docker run --rm --network none \\
#       --mount type=bind,source="$(pwd)/DATA",target=/code_execution/data,readonly \\
#       --mount type=bind,source="$(pwd)/submission",target=/code_execution/submission \\
#       compete-runtime
#
# The container unzips submission/submission.zip into /code_execution, runs
# `python main.py`, and leaves submission/submission.csv and submission/log.txt.
FROM python:{python}-slim

ENV PYTHONUNBUFFERED=1 \\
    {data_env}=/code_execution/data \\
    {submission_env}=/code_execution/submission

COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

RUN useradd --create-home --uid 1000 appuser && mkdir -p /code_execution && chown appuser /code_execution
COPY entrypoint.sh /entrypoint.sh
USER appuser
WORKDIR /code_execution
CMD ["bash", "/entrypoint.sh"]
"""

ENTRYPOINT = """\
#!/bin/bash
# Unzip the submission and run it, keeping the log beside the output.
set -euo pipefail
cd /code_execution
unzip -q -o ./submission/submission.zip -d ./
python main.py 2>&1 | tee ./submission/log.txt
test -f ./submission/submission.csv || { echo "no submission.csv written" >&2; exit 1; }
"""


def write_runtime(directory: Path, requirements: list[str]) -> list[Path]:
    directory = Path(directory)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    paths = [
        io.write_text(directory / "Dockerfile", DOCKERFILE.format(context=directory.name, bundle=directory.name.removesuffix("_runtime") + ".zip",
                                                                  python=python, data_env=DATA_ENV, submission_env=SUBMISSION_ENV)),
        io.write_text(directory / "requirements.txt", "".join(f"{line}\n" for line in requirements)),
        io.write_text(directory / "entrypoint.sh", ENTRYPOINT),
    ]
    return paths


# ---------------------------------------------------------------- the local runtime

@dataclass
class RuntimeResult:
    ok: bool
    reason: str
    log: Path
    submission: Path | None
    seconds: float
    isolated: bool


# Run inside the sandbox: hide this project's editable install from the bundle, so a
# module missing from the zip fails here as it would on the platform.
LAUNCHER = """\
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()
sys.path[:] = [p for p in sys.path if p.rstrip("/") != {root!r}]
sys.argv = ["main.py"]
runpy.run_path("main.py", run_name="__main__")
"""

NETWORK_ERRORS = re.compile(r"Network is unreachable|Connection refused|Name or service not known|Temporary failure in name "
                            r"resolution|No address associated|getaddrinfo failed|nodename nor servname|ConnectionError|URLError")


def sandbox_available() -> tuple[bool, str]:
    """Whether `unshare --net --mount` works here (root, or user namespaces)."""
    if shutil.which("unshare") is None:
        return False, "the unshare command is not installed (util-linux)"
    try:
        probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    if probe.returncode:
        return False, probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
    return True, ""


def run_bundle(bundle: Path, data_dir: Path, out: Path | None = None, time_limit: float = DEFAULT_TIME_LIMIT,
               memory_limit: float | None = None, unisolated: bool = False, workdir: Path | None = None) -> RuntimeResult:
    """Run `bundle` on `data_dir` as the hidden-test runtime would; see the module docstring."""
    from common.competition import get, names
    from common.submission import read_submission

    bundle, data_dir = Path(bundle), Path(data_dir).resolve()
    if not bundle.is_file():
        raise io.InputError(f"{bundle}: bundle not found")
    if not data_dir.is_dir():
        raise io.InputError(f"{data_dir}: data folder not found")
    if not zipfile.is_zipfile(bundle):
        raise io.InputError(f"{bundle}: not a zip file")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="compete-runtime-")).resolve()
    code, data_mount, submission_dir = workdir / "code", workdir / "data", workdir / "submission"
    for folder in (data_mount, submission_dir):
        folder.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "log.txt"
    io.safe_extract(bundle, code)
    started = time.perf_counter()

    def fail(reason: str) -> RuntimeResult:
        return RuntimeResult(False, reason, log_path, None, time.perf_counter() - started, isolated)

    isolated, why = sandbox_available()
    if not isolated and not unisolated:
        raise io.InputError(f"cannot isolate the bundle: unshare --net --mount failed ({why}); run as root or with user "
                            f"namespaces, or pass --unisolated to run it WITHOUT network isolation or a read-only data mount")
    if not (code / "main.py").is_file():
        log_path.write_text("")
        return fail("no main.py at the root of the zip")
    competition = _bundle_competition(code, data_dir, get, names)

    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
                   "PYTHONUNBUFFERED": "1", DATA_ENV: str(data_mount if isolated else data_dir),
                   SUBMISSION_ENV: str(submission_dir), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    launcher = [sys.executable, "-I", "-c", LAUNCHER.format(root=str(PROJECT_ROOT))]
    if isolated:
        script = ('mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && '
                  '(command -v ip >/dev/null && ip link set lo up || true) && cd "$3" && shift 3 && exec "$@"')
        command = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script, "sandbox",
                   str(data_dir), str(data_mount), str(code), *launcher]
    else:
        command = launcher
    limit_bytes = int(memory_limit * 1024 ** 3) if memory_limit else None

    def limits():
        os.setsid()
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, cwd=code, env=environment, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, preexec_fn=limits)
        try:
            returncode = process.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return fail(f"time limit of {time_limit:g} s exceeded; the bundle's processes were killed")
    log_text = log_path.read_text(errors="replace")
    if returncode != 0:
        last = _last_line(log_text)
        if NETWORK_ERRORS.search(log_text):
            return fail(f"the bundle tried to reach the network, which the runtime does not have: {last}")
        if limit_bytes and ("MemoryError" in log_text or "Cannot allocate memory" in log_text or returncode == -signal.SIGKILL):
            return fail(f"memory limit of {memory_limit:g} GB exceeded: {last}")
        return fail(f"main.py exited with code {returncode}: {last}")
    written = submission_dir / "submission.csv"
    if not written.is_file():
        return fail("main.py finished but wrote no submission.csv into the submission folder")
    try:
        problems = competition.validate(read_submission(written), data_dir)
    except io.InputError as error:
        return fail(f"submission.csv cannot be read: {error}")
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        return fail(f"submission.csv is invalid: {problems[0]}{more}")
    kept = written
    if out is not None:
        kept = Path(out)
        io.write_bytes(kept, written.read_bytes())
    return RuntimeResult(True, "ok", log_path, kept, time.perf_counter() - started, isolated)


def _bundle_competition(code: Path, data_dir: Path, get, names):
    """The competition a bundle is for: its manifest, or the one whose sample file the
    data folder holds."""
    manifest = code / MANIFEST
    if manifest.is_file():
        return get(json.loads(manifest.read_text())["competition"])
    for name in names():
        competition = get(name)
        if getattr(competition, "bundle_entry", None) and io.find(data_dir, competition.submission.sample_file, required=False):
            return competition
    raise io.InputError(f"{code}: no {MANIFEST} and no code competition's sample file in {data_dir}: cannot validate the output")


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
