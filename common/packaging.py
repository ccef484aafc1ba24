"""Code submissions: build what a platform runs (DrivenData's `pack-submission`; a
Kaggle kernel and dataset). Running them as the platform would is the runtime test's
job (common/runtimes/runner.py).

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
import tempfile
import warnings
import zipfile
from pathlib import Path

from common import io
from common.runtimes.runner import MANIFEST

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
