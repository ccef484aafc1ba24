"""Hidden-test runtime profiles: what a platform's code-execution container really is.

Each profile is one small module of data in this folder, read from the platform's own
runtime repository and citing the paths it was read from: where the zip is unpacked
and the working directory, where the data is mounted read-only, where `main.py` must
write its output and where the runtime copies it, where the log goes, the time limit,
GPU-or-CPU, the Python version and the packages the environment holds (dependencies
included), and which of the competition's files the container holds (never the
answers, never anything of the user's machine).

The runtime test (`common/runtimes/runner.py`) runs a code submission the way a profile
says: a DrivenData bundle (`bundle.py`) or a Kaggle notebook rerun (`notebook.py`), in
the sandbox (`sandbox.py`), after checking it against the profile (`environment.py`).

The table below is the registry: a name -> "module:attribute" table, so listing the
profiles imports only these data modules.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from common import io

PROFILES = {
    "hakuna-madata": "common.runtimes.hakuna_madata:PROFILE",
    "kaggle-notebook": "common.runtimes.kaggle_notebook:PROFILE",
    "kaggle-notebook-gpu": "common.runtimes.kaggle_notebook:GPU_PROFILE",
    "snomed-ct": "common.runtimes.snomed_ct:PROFILE",
}


@dataclass(frozen=True)
class Profile:
    """One hidden-test runtime, as its repository's entrypoint, mounts and environment
    files define it. Paths are absolute inside the runtime's container."""

    name: str
    description: str
    source: str                    # repository and paths the profile was read from
    root: str                      # the working directory (a bundle is unpacked here); writable
    data: str                      # the competition's files, mounted read-only ({slug}: the competition's)
    output: str                    # what the code writes, relative to the working directory
    python: str                    # the environment's Python version
    packages: dict[str, str | None] = field(default_factory=dict)  # distribution -> version (None: not pinned)
    time_limit: float | None = None  # seconds; None where the repository does not state one
    gpu: str = "GPU when nvidia-smi exists, else CPU"
    platform: str = "drivendata"
    kind: str = "bundle"           # "bundle": a zip with main.py; "notebook": a Kaggle kernel folder
    # Which of the competition's files the container holds, relative to its data folder:
    # glob patterns, and CSVs whose column lists further files (test images). `answers/`
    # is never held, whatever the patterns say.
    holds: tuple[str, ...] = ("**",)
    holds_listed: dict[str, str] = field(default_factory=dict)
    data_aliases: tuple[str, ...] = ()   # other paths the same files are mounted at
    datasets: str | None = None    # where attached datasets are mounted ({dataset}: its slug)
    writable: tuple[str, ...] = ("/tmp",)  # besides `root`
    environment: dict[str, str] = field(default_factory=dict)  # variables the runtime sets
    # DrivenData bundles: the submission folder (the zip sits there as submission.zip and
    # the output is copied there), the log, the entry point and the private log of full runs
    submission_dir: str | None = None
    log: str | None = None
    entry: str = "main.py"
    private_log: str | None = None   # full (non-smoke) runs print here instead of `log`

    @property
    def python_version(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    def version_of(self, distribution: str) -> tuple[bool, str | None]:
        """(present, version) of a distribution in the environment, names compared as pip does."""
        wanted = normalize(distribution)
        for name, version in self.packages.items():
            if normalize(name) == wanted:
                return True, version
        return False, None


def normalize(name: str) -> str:
    """PEP 503 normalisation: `Scikit_Learn` and `scikit-learn` are one distribution."""
    return "-".join(name.lower().replace("_", "-").replace(".", "-").split("-"))


def names() -> list[str]:
    return sorted(PROFILES)


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise io.InputError(f"unknown runtime profile {name!r}; known: {', '.join(names())}")
    module, _, attribute = PROFILES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
