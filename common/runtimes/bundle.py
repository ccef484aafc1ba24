"""A DrivenData code submission run as its runtime runs it: the zip unpacked into the
profile's root (refusing members that escape), checked against the profile
(environment.py), main.py run there in the sandbox with the competition's test files
read-only at the profile's data path, no network, under the time and memory limits; the
output taken from where the runtime takes it and validated (runner.collect).

The entrypoint followed is the profile's (e.g. drivendataorg/ai4earth-serengeti-runtime,
runtime/entrypoint.sh): `cd` to the root, unzip ./submission/submission.zip there, run
`python main.py`, copy submission.csv to ./submission/, tee the output to the log.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from common import io
from common.runtimes import runner

# Run inside the sandbox after runner.hide_project(): main.py as `python main.py` runs it.
LAUNCHER = """\
import runpy
sys.argv = [{entry!r}]
sys.path.insert(0, "")
runpy.run_path({entry!r}, run_name="__main__")
"""


def run(bundle: Path, competition, profile, data_dir: Path, hidden: Path | None = None, out: Path | None = None,
        time_limit: float | None = None, memory_limit: float | None = None, smoke: int | None = None,
        keep: bool = False, skip_env_check: bool = False, unisolated: bool = False) -> runner.RuntimeResult:
    from common.runtimes import environment

    check_inputs(bundle)
    isolated = runner.require_sandbox(unisolated, "bundle")
    workdir = Path(tempfile.mkdtemp(prefix="compete-runtime-"))
    try:
        code = unpack(bundle, workdir)
        results = runner.results_folder(bundle, [profile.output, "resources.json", Path(profile.private_log or "log.txt").name])
        log_path = results / "log.txt"
        result = runner.RuntimeResult(False, "", log_path, None, 0.0, isolated, profile=profile.name, results=results,
                                      workdir=workdir if keep else None)
        if not (code / profile.entry).is_file():
            result.reason = f"no {profile.entry} at the root of the zip (the {profile.name} runtime runs {profile.root}/{profile.entry})"
            return result
        if skip_env_check:
            result.notes.append(f"environment check against {profile.name} skipped (--skip-env-check)")
        elif runner.refuse_on_problems(result, environment.check(code, profile), profile):
            return result
        view = runner.data_view(profile, data_dir, hidden)
        result.notes += view.notes
        if smoke is not None:
            cut = runner.smoke_view(competition, data_dir, smoke, workdir / "smoke")
            view.files.update({name: path for name, path in cut.overlays.items() if name in view.files})
            view.truth = cut.directory
            result.notes.append(f"smoke run: the first {smoke} row(s) of {cut.sample} and the "
                                f"test rows of their ids ({', '.join(sorted(cut.overlays))})")
        limit = runner.time_limit(profile, time_limit, result.notes)
        outcome = execute(bundle, code, workdir, view, profile, log_path, limit, memory_limit, isolated, smoke=smoke is not None)
        result.seconds, result.resources = outcome.wall_seconds, outcome.resources()
        io.write_text(results / "resources.json", json.dumps(result.resources, indent=1) + "\n")
        result.reason = failure(outcome, profile, code, log_path, limit, memory_limit)
        if result.reason:
            return result
        copied = workdir / "submission" / profile.output   # where the entrypoint copies it
        shutil.copyfile(code / profile.output, copied)
        return runner.collect(result, competition, copied, f"{profile.submission_dir}/{profile.output}", view.truth, out)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def check_inputs(bundle: Path) -> None:
    """The bundle is a readable zip whose every member passes its CRC check: checked
    before any folder is made."""
    if not bundle.is_file():
        raise io.InputError(f"{bundle}: bundle not found")
    if not zipfile.is_zipfile(bundle):
        raise io.InputError(f"{bundle}: not a zip file")
    # declared sizes first: checking the CRCs of a zip bomb would inflate it
    io.check_archive(bundle, io.unpack_limit(io.BUNDLE_UNPACK_LIMIT_GB), ratio=io.BUNDLE_RATIO)
    try:
        with zipfile.ZipFile(bundle) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
        raise io.InputError(f"{bundle}: cannot be read as a zip ({' '.join(str(error).split())})") from None
    if damaged is not None:
        raise io.InputError(f"{bundle}: member {damaged!r} fails its CRC check; the zip is damaged, build it again")


def unpack(bundle: Path, workdir: Path) -> Path:
    """Unpack the bundle as the runtime does, into what becomes its root; lay out the
    submission folder (the zip stays there while main.py runs) and the private /tmp."""
    code = workdir / "code"
    try:
        io.safe_extract(bundle, code, limit=io.unpack_limit(io.BUNDLE_UNPACK_LIMIT_GB))
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise io.InputError(f"{bundle}: cannot be unpacked ({' '.join(str(error).split())})") from None
    for folder in ("root", "submission", "scratch"):
        (workdir / folder).mkdir()
    shutil.copyfile(bundle, workdir / "submission" / "submission.zip")
    return code


def execute(bundle: Path, code: Path, workdir: Path, view, profile, log_path: Path, time_limit: float,
            memory_limit: float | None, isolated: bool, smoke: bool):
    """main.py at the profile's paths, as the entrypoint runs it: the unpacked bundle as
    the writable root, the held data read-only inside it, the submission folder."""
    from common.runtimes import sandbox

    layout = sandbox.Layout(root=workdir / "root", mounts=[], workdir=profile.root)
    layout.add(code, profile.root, writable=True)
    for inside in (profile.data, profile.submission_dir):  # mount points inside the unpacked bundle
        if Path(inside).is_relative_to(profile.root):
            (code / Path(inside).relative_to(profile.root)).mkdir(parents=True, exist_ok=True)
    layout.mounts += runner.view_mounts(view, profile.data, workdir / "data")
    layout.add(workdir / "submission", profile.submission_dir, writable=True)
    layout.add(workdir / "scratch", "/tmp", writable=True)
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
    environment = runner.sandbox_environment(profile)
    command = [sys.executable, "-I", "-c", runner.hide_project() + LAUNCHER.format(entry=profile.entry)]
    if not isolated:   # --unisolated: no runtime paths; the bundle runs where it was unpacked
        layout = sandbox.Layout(root=code, mounts=[sandbox.Mount(code, profile.root, True)], workdir=profile.root)
    outcome = sandbox.run(command, layout, output_log, environment, time_limit, memory_limit, isolated=isolated)
    if output_log != log_path:
        with open(log_path, "a") as log_file:
            log_file.write(f"({profile.entry}'s own output is in {output_log.name}, as the runtime keeps it private)\n")
    return outcome


def failure(outcome, profile, code: Path, log_path: Path, time_limit: float, memory_limit: float | None) -> str:
    """Why the run failed, in one line, or "" when main.py exited 0 and left its output."""
    private = log_path.with_name(Path(profile.private_log).name) if profile.private_log else None
    log_text = log_path.read_text(errors="replace")
    if private is not None and private.is_file():
        log_text += private.read_text(errors="replace")
    last = runner.last_line(log_text)
    if outcome.timed_out:
        return f"time limit of {time_limit:g} s exceeded; the bundle's processes were killed"
    if outcome.memory_exceeded:
        return (f"memory limit of {memory_limit:g} GB exceeded ({outcome.memory_mode}{outcome.memory_detail()}); "
                f"the kernel killed the bundle")
    if outcome.returncode != 0 and outcome.limit_reached():
        return f"{outcome.limit_reached()}: {last}"
    if outcome.returncode != 0:
        if runner.NETWORK_ERRORS.search(log_text):
            return f"the bundle tried to reach the network, which the runtime does not have: {last}"
        if memory_limit and outcome.memory_mode.startswith("RLIMIT_AS") and (
                "MemoryError" in log_text or "Cannot allocate memory" in log_text or outcome.returncode == -9):
            return f"memory limit of {memory_limit:g} GB exceeded ({outcome.memory_mode}): {last}"
        return f"{profile.entry} exited with code {outcome.returncode}: {last}"
    if not (code / profile.output).is_file():
        return (f"{profile.entry} finished but wrote no {profile.output} in its working directory {profile.root} "
                f"(the runtime takes it from there to {profile.submission_dir}/{profile.output})")
    return ""
