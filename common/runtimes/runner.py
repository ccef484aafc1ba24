"""The runtime test: run a code submission here the way the platform's hidden-test runtime
would, before anything is uploaded (DrivenData's `test-submission`, Kaggle's rerun).

`compete runtime test` resolves the competition once (`resolve`) and calls `run_test`,
which picks the profile and hands the submission to the module for its kind: a
DrivenData bundle (`bundle.py`) or a Kaggle notebook (`notebook.py`). What both share is
here:

- the view of the data (`data_view`): the competition's files the profile says the
  container holds, never `answers/`, with a smoke run's cut files or `--hidden`'s test
  files shown over the public ones; `view_mounts` turns it into as few read-only mounts
  as the folder's layout allows;
- the result (`RuntimeResult`), written beside the submission as `<name>.runtime/`
  (log.txt, resources.json);
- validating the output against the sample of the data the code was given, and keeping it;
- what a run inside the sandbox is started with: the isolation required, the time limit,
  the environment variables, the preamble hiding this project's own code from it.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from common import io

MANIFEST = "bundle.json"        # what a bundle built by `compete package` is (common/packaging.py)
PACKAGE_MANIFEST = "compete-package.json"   # the same, for a Kaggle package folder
DEFAULT_TIME_LIMIT = 8 * 3600   # where a profile states none: DrivenData's usual limit
NEVER_HELD = "answers"          # a data folder's answer key: held by no runtime
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# First lines of whatever Python runs inside the sandbox: hide this project's editable
# install, so a module the submission lacks fails there as it would on the platform.
HIDE_PROJECT = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()
sys.path[:] = [p for p in sys.path if p.rstrip("/") != {root!r}]
"""

NETWORK_ERRORS = re.compile(r"Network is unreachable|Connection refused|Name or service not known|Temporary failure in name "
                            r"resolution|No address associated|getaddrinfo failed|nodename nor servname|ConnectionError|URLError")


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
    failure: str = ""                                   # the platform's name for the failure, where it has one


def sandbox_available() -> tuple[bool, str]:
    """Whether the runtime's sandbox (mount, network and PID namespaces) can be built here."""
    from common.runtimes import sandbox
    return sandbox.available()


# ---------------------------------------------------------------- what is run, and where

def require_sandbox(unisolated: bool, what: str) -> bool:
    """Whether the run is isolated; without a sandbox, an InputError unless the user
    asked for an unisolated run."""
    isolated, why = sandbox_available()
    if not isolated and not unisolated:
        raise io.InputError(f"cannot isolate the {what}: the sandbox cannot be built here ({why}); run as root, or pass "
                            f"--unisolated to run it WITHOUT network isolation, the runtime's paths or a read-only data mount")
    return isolated


def hide_project() -> str:
    return HIDE_PROJECT.format(root=str(PROJECT_ROOT))


def sandbox_environment(profile) -> dict[str, str]:
    """The variables a run starts with: a minimal set, then the profile's own."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), **profile.environment}


def time_limit(profile, given: float | None, notes: list[str]) -> float:
    """--time-limit, else the profile's, else DrivenData's usual limit (said in `notes`)."""
    limit = given or profile.time_limit or DEFAULT_TIME_LIMIT
    if not given and not profile.time_limit:
        notes.append(f"time limit {limit / 3600:g} h: the {profile.name} repository states none")
    return limit


def refuse_on_problems(result: RuntimeResult, problems: list[str], profile) -> bool:
    """Record the environment check's problems on `result`; True when there are any."""
    result.problems = problems
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        result.reason = f"the {profile.name} environment check failed: {problems[0]}{more}"
    return bool(problems)


def resolve(registry, submission: Path, data_dir: Path, name: str | None = None):
    """The competition of `registry` (common.registry.Registry) a submission is for:
    `name` (--competition), the manifest `compete package` wrote into it, or the code
    competition whose sample file the data folder holds."""
    if name:
        return registry.competition(name)
    manifest = read_manifest(Path(submission))
    if manifest is not None:
        try:   # a PLATFORM:SLUG package names the metric its run was fitted for
            return registry.competition(manifest["competition"], manifest.get("metric"))
        except (KeyError, TypeError, AttributeError):
            raise io.InputError(f"{submission}: its manifest names no competition; pass --competition") from None
    for candidate in registry.names():
        competition = registry.competition(candidate)
        if competition.runtime_profile and io.find(Path(data_dir), competition.submission.sample_file, required=False):
            return competition
    raise io.InputError(f"{submission}: no manifest of `compete package` in it and no code competition's sample file in "
                        f"{data_dir}: pass --competition to say which competition's format the output must have")


def read_manifest(submission: Path) -> dict | None:
    """bundle.json inside a zip, or compete-package.json at a package folder's root; None
    when there is none."""
    try:
        if submission.is_dir():
            path = submission / PACKAGE_MANIFEST
            return json.loads(path.read_text()) if path.is_file() else None
        if submission.is_file() and zipfile.is_zipfile(submission):
            with zipfile.ZipFile(submission) as archive:
                if MANIFEST not in archive.namelist():
                    return None
                return json.loads(archive.read(MANIFEST))
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise io.InputError(f"{submission}: its manifest cannot be read ({' '.join(str(error).split())}); pass "
                            f"--competition") from None
    return None


def profile_for(competition, name: str | None = None):
    from common import runtimes

    if name:
        return runtimes.profile(name)
    if competition.runtime_profile is None:
        raise io.InputError(f"{competition.name}: no runtime profile; pass --profile (see `compete runtime profiles`)")
    return runtimes.profile(competition.runtime_profile)


def run_test(submission: Path, competition, data_dir: Path, hidden: Path | None = None, profile: str | None = None,
             out: Path | None = None, time_limit: float | None = None, memory_limit: float | None = None,
             smoke: int | None = None, keep: bool = False, skip_env_check: bool = False,
             unisolated: bool = False) -> RuntimeResult:
    """Run `submission` for `competition` on `data_dir` (the test files replaced by
    `hidden`'s, when given) as the profile's runtime would. Unreadable input raises
    io.InputError; a submission that fails is a result with ok=False and the reason.
    The profile: `profile`, else the one `compete package` wrote into the submission's
    manifest, else the competition's."""
    submission = Path(submission).resolve()   # mounted by absolute path, wherever the command runs from
    manifest = read_manifest(submission) or {}
    target = profile_for(competition, profile or manifest.get("profile"))
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise io.InputError(f"{data_dir}: data folder not found")
    if hidden is not None and not Path(hidden).is_dir():
        raise io.InputError(f"{hidden}: hidden test folder not found")
    if target.kind == "bundle":
        from common.runtimes import bundle
        run = bundle.run
    elif target.kind == "notebook":
        from common.runtimes import notebook
        run = notebook.run
    else:
        raise io.InputError(f"profile {target.name}: unknown kind {target.kind!r}")
    return run(submission, competition, target, data_dir, hidden=Path(hidden).resolve() if hidden else None,
               out=out, time_limit=time_limit, memory_limit=memory_limit, smoke=smoke, keep=keep,
               skip_env_check=skip_env_check, unisolated=unisolated)


def results_folder(submission: Path, stale: list[str]) -> Path:
    """`<submission>.runtime/` beside the submission, emptied of an earlier run's files."""
    submission = Path(submission)
    name = submission.name if submission.is_dir() else submission.stem
    results = submission.resolve().parent / f"{name}.runtime"
    try:
        results.mkdir(parents=True, exist_ok=True)
        for name in stale:
            (results / name).unlink(missing_ok=True)   # nothing from an earlier run is taken for this one's
        (results / "log.txt").write_text("")
    except OSError as error:
        raise io.InputError(f"{results}: cannot write the run's log there ({error.strerror}); copy the submission "
                            f"to a folder you can write") from None
    return results


# ---------------------------------------------------------------- the data the container holds

@dataclass
class DataView:
    """The competition's files as the runtime's container holds them: relative path ->
    the host file shown there. `truth` is the folder whose sample file the output is
    validated against (the hidden one, or a smoke run's cut)."""

    files: dict[str, Path]
    source: Path                    # the data folder the files come from, where not replaced
    truth: Path
    notes: list[str] = field(default_factory=list)


def data_view(profile, data_dir: Path, hidden: Path | None = None) -> DataView:
    """What of `data_dir` the profile's container holds (its `holds` patterns and the
    files listed in its `holds_listed` CSVs; never answers/). With `hidden`, the rerun's
    swap: each top-level file or folder of `hidden` replaces the public one of that name
    whole (a hidden Test/ folder shows instead of the public Test/, not beside it)."""
    import pandas as pd

    data_dir = Path(data_dir)

    def listing(folder: Path) -> list[str]:
        return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                      if path.is_file() and path.relative_to(folder).parts[0] != NEVER_HELD)

    held = [name for name in listing(data_dir) if any(fnmatch.fnmatch(name, pattern) for pattern in profile.holds)]
    files = {name: data_dir / name for name in held}
    notes = []
    if hidden is not None:
        replaced = listing(Path(hidden))
        swapped = {Path(name).parts[0] for name in replaced}
        files = {name: path for name, path in files.items() if Path(name).parts[0] not in swapped}
        files.update({name: Path(hidden) / name for name in replaced})
        notes.append(f"hidden test: {', '.join(sorted(swapped))} of {hidden} shown instead of the public one(s)")
    for catalogue, column in profile.holds_listed.items():   # e.g. test_metadata.csv's file_name: the test images
        if catalogue not in files:
            continue
        names = io.read_csv(files[catalogue], usecols=[column], dtype=str, keep_default_na=False)[column]
        root = files[catalogue].parent if hidden is not None and files[catalogue].is_relative_to(hidden) else data_dir
        for name in pd.unique(names):
            if name and (root / name).is_file():
                files[name] = root / name
    truth = hidden if hidden is not None else data_dir
    return DataView(files, data_dir, truth, notes)


def view_mounts(view: DataView, target: str, skeleton: Path) -> list:
    """Read-only mounts that show exactly `view.files` at `target`: first `skeleton`, a
    host folder made here holding only the mount points (so nothing can be written
    beside the files), then as few mounts as the layout allows: a folder whose every
    file is shown, from one place, is one mount; other files are mounted alone."""
    from common.runtimes.sandbox import Mount

    def whole(folder: Path) -> Path | None:
        """The host folder that `folder` shows whole (every file of it, from one place), or None."""
        names = [name for name in view.files if Path(name).is_relative_to(folder)]
        first = Path(names[0]).relative_to(folder)
        base = view.files[names[0]].parents[len(first.parts) - 1]
        if any(view.files[name] != base / Path(name).relative_to(folder) for name in names):
            return None
        return base if sum(1 for path in base.rglob("*") if path.is_file()) == len(names) else None

    mounts, covered = [], set()
    for name in sorted(view.files):
        if name in covered:
            continue
        parts = Path(name).parts
        mounted = False
        for depth in range(1, len(parts)):   # the shallowest folder shown whole
            folder = Path(*parts[:depth])
            base = whole(folder)
            if base is not None:
                mounts.append(Mount(base, f"{target}/{folder.as_posix()}"))
                covered |= {other for other in view.files if Path(other).is_relative_to(folder)}
                mounted = True
                break
        if not mounted:
            mounts.append(Mount(view.files[name], f"{target}/{name}"))
            covered.add(name)
    skeleton.mkdir(parents=True, exist_ok=True)
    for mount in mounts:
        point = skeleton / Path(mount.target).relative_to(target)
        if mount.source.is_dir():
            point.mkdir(parents=True, exist_ok=True)
        else:
            point.parent.mkdir(parents=True, exist_ok=True)
            point.touch()
    return [Mount(skeleton, target), *mounts]


# ---------------------------------------------------------------- the output

def collect(result: RuntimeResult, competition, written: Path, shown_as: str, truth_dir: Path,
            out: Path | None) -> RuntimeResult:
    """Validate the output the code wrote against the sample of the data it was given
    (`truth_dir`), and keep it at `out` (default: the results folder)."""
    from common.submission import read_submission

    try:
        problems = competition.validate(read_submission(written), truth_dir)
    except io.InputError as error:  # named where the runtime has it, not by the scratch folder
        result.reason = f"{Path(shown_as).name} cannot be read: {str(error).replace(str(written), shown_as)}"
        result.failure = result.failure or "Submission Scoring Error"
        return result
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        result.reason = f"{Path(shown_as).name} is invalid: {problems[0]}{more}"
        result.failure = result.failure or "Submission Scoring Error"
        return result
    kept = Path(out) if out is not None else result.results / Path(shown_as).name
    io.write_bytes(kept, written.read_bytes())
    result.ok, result.reason, result.submission = True, "ok", kept
    return result


@dataclass
class SmokeView:
    directory: Path                  # the cut files, at their places relative to the data folder
    overlays: dict[str, Path]        # data-relative path -> cut file shown over the original
    sample: str = ""                 # the sample file's name, whose first rows were kept


def smoke_view(competition, data_dir: Path, rows: int, directory: Path) -> SmokeView:
    """The data as a smoke test sees it, as DrivenData's smoke tests cut it to a few
    ids (drivendataorg/snomed-ct-entity-linking-runtime, scripts/smoke_test_data.py): the
    first `rows` rows of the sample file, and of every other CSV holding test ids (one
    with at least one id of the sample) only the rows of those ids. Training files are
    left as they are."""
    if rows < 1:
        raise io.InputError(f"--smoke {rows}: give a number of rows of at least 1")
    format = competition.submission_for(competition.data_for_format(data_dir))
    sample_source = io.find(data_dir, format.sample_file)
    if sample_source.member is not None:
        raise io.InputError(f"{sample_source}: a smoke run needs the data unzipped (the sample is inside a zip)")
    id_column = format.id_column
    sample = io.read_csv(sample_source.path, dtype=str, keep_default_na=False)
    io.require_columns(sample, [id_column], sample_source)
    kept = sample.head(rows)
    ids = set(kept[id_column])
    cut = {sample_source.path: kept}
    for path in sorted(data_dir.glob("*.csv")) + sorted(data_dir.glob("*/*.csv")):
        if path == sample_source.path or path.relative_to(data_dir).parts[0] == NEVER_HELD:
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
    return SmokeView(directory, overlays, format.sample_file)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
