"""Hidden-test runtime profiles: what a platform's code-execution container really is.

Each profile is one small module of data in this folder, read from the platform's own
runtime repository and citing the paths it was read from: where the zip is unpacked
and the working directory, where the data is mounted read-only, where `main.py` must
write its output and where the runtime copies it, where the log goes, the time limit,
GPU-or-CPU, the Python version and the packages the environment holds (dependencies
included). `common/packaging.py` runs a bundle the way a profile says
(`common/runtimes/sandbox.py`) after checking it against the profile
(`common/runtimes/environment.py`).

The table below is the registry: a name -> module table, so listing the profiles
imports only these data modules.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from common import io

PROFILES = {
    "hakuna-madata": "common.runtimes.hakuna_madata",
    "snomed-ct": "common.runtimes.snomed_ct",
}


@dataclass(frozen=True)
class Profile:
    """One hidden-test runtime, as its repository's entrypoint, mounts and environment
    files define it. Paths are absolute inside the runtime's container."""

    name: str
    description: str
    source: str                    # repository and paths the profile was read from
    root: str                      # the zip is unpacked here; main.py runs with this as working directory
    data: str                      # the test data, mounted read-only
    submission_dir: str            # the zip sits here as submission.zip; the output is copied here
    output: str                    # what main.py writes, relative to the working directory
    log: str                       # everything printed goes here
    python: str                    # the environment's Python version
    packages: dict[str, str | None] = field(default_factory=dict)  # distribution -> version (None: not pinned)
    time_limit: float | None = None  # seconds; None where the repository does not state one
    gpu: str = "GPU when nvidia-smi exists, else CPU"
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


def get(name: str) -> Profile:
    if name not in PROFILES:
        raise io.InputError(f"unknown runtime profile {name!r}; known: {', '.join(names())}")
    return importlib.import_module(PROFILES[name]).PROFILE
