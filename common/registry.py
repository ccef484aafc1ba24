"""The registry: the competitions' names, looked up in a table it is given.

Like pip's command table, each entry carries what listing needs (name, platform, metric,
a one-line summary, where the data can come from) beside the import path of its class,
so `compete list` and `--help` import no competition. The table is data that this
module receives: `competitions/__init__.py` builds `Registry([...])` from its entries,
and the CLI passes that on; nothing in common/ imports a competition.

A `PLATFORM:SLUG` name (kaggle:titanic, zindi:SLUG, drivendata:SLUG) is served by the
entry named GENERIC: `competition("kaggle:x", metric="auc")` returns
`Class(platform="kaggle", slug="x", metric="auc")` (metric None when `--metric` was not
given). That entry is not in `names()` (it needs a platform and a slug to be a
competition); `example_names()` adds one PLATFORM:SLUG name for it, for the contract
suite (so its `synth` must write a competition that `compete run NAME --fast` trains
with no other flag). `--metric` reaches only that constructor: a built-in competition's
metric is fixed, and `competition("house-prices", metric="auc")` is a usage error. An entry the
installed code cannot import (a missing optional dependency) is one line naming what to
install.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from common import io

PLATFORMS = ("kaggle", "zindi", "drivendata")
GENERIC = "PLATFORM:SLUG"   # the name of the entry that serves every PLATFORM:SLUG competition


@dataclass(frozen=True)
class Entry:
    """One competition as the registry lists it; tests/test_contract.py checks that each
    field agrees with the class `module` names."""

    name: str                     # the CLI name, the class's `name`
    module: str                   # "package.module:Class", imported only when the competition is used
    platform: str | None          # one of PLATFORMS; None for GENERIC (any of them)
    metric: str | None            # the class's metric name; None for GENERIC (from --metric)
    summary: str                  # one line, the class's `description`
    data_files: tuple[str, ...] = ()            # the class's `data_files`: their presence means "data is here"
    sources: tuple[str, ...] = ("download",)    # the class's `data_sources()`: fetch, synth, download


class Registry:
    """Lookup and listing over a table of entries, without importing any of them."""

    def __init__(self, entries: Iterable[Entry]):
        self.entries: dict[str, Entry] = {entry.name: entry for entry in entries}

    def names(self) -> list[str]:
        """The built-in competitions' names."""
        return sorted(name for name in self.entries if name != GENERIC)

    def serves_platform_names(self) -> bool:
        return GENERIC in self.entries

    def example_names(self) -> list[str]:
        """`names()` plus one PLATFORM:SLUG name when an entry serves those."""
        return self.names() + ([f"{PLATFORMS[0]}:example"] if self.serves_platform_names() else [])

    def entry(self, name: str) -> Entry:
        """The entry for a built-in name; an unknown one is one line with the closest names."""
        if name in self.entries and name != GENERIC:
            return self.entries[name]
        known = [*self.names(), *([GENERIC] if self.serves_platform_names() else [])]
        closest = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(closest)}? " if closest else ""
        raise io.InputError(f"unknown competition {name!r}; {hint}known: {', '.join(known)}")

    def competition(self, name: str, metric: str | None = None):
        """The competition called `name`: a built-in name, or PLATFORM:SLUG (scored by
        `metric`, a --metric name, when given)."""
        platform, colon, slug = name.partition(":")
        if colon:
            if platform not in PLATFORMS:
                raise io.InputError(f"{name!r}: unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")
            if not slug:
                raise io.InputError(f"{name!r}: no competition slug after {platform}:")
            if not self.serves_platform_names():
                raise io.InputError(f"{name!r}: no generic competition is installed for PLATFORM:SLUG names")
            return self.competition_class(GENERIC)(platform=platform, slug=slug, metric=metric)
        entry = self.entry(name)
        if metric is not None and metric != entry.metric:
            raise io.InputError(f"--metric {metric}: {name} is scored by {entry.metric} only; "
                                f"--metric is for PLATFORM:SLUG competitions")
        return self.competition_class(name)()

    def competition_class(self, name: str) -> type:
        """Import the class an entry names; a missing dependency is one line saying what to install."""
        module_name, _, class_name = self.entries[name].module.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            message = missing_dependency(error)
            if message is None:
                raise
            raise io.InputError(f"{name}: {message}") from None
        return vars(module)[class_name]

    def listing(self, data_root: Path = Path("data")) -> list[tuple[str, str, str, str]]:
        """`compete list`'s rows: name, platform, metric, and whether DATA_ROOT/NAME holds
        the data (with where it can come from)."""
        rows = []
        for name in self.names():
            entry = self.entries[name]
            local = Path(data_root) / name
            present = local.is_dir() and all(io.find(local, file, required=False) for file in entry.data_files)
            where = f"present in {local}" if present else "absent"
            rows.append((name, entry.platform, entry.metric, f"{where} ({'/'.join(entry.sources)})"))
        if self.serves_platform_names():
            rows.append((GENERIC, "|".join(PLATFORMS), "--metric", "yours (download)"))
        return rows


# Import names whose package on the registry is called otherwise.
_PACKAGE_OF = {"sklearn": "scikit-learn", "PIL": "pillow", "skimage": "scikit-image", "yaml": "pyyaml"}


def missing_dependency(error: ModuleNotFoundError) -> str | None:
    """"needs the 'x' package ..." for a third-party module that is not installed;
    None when the missing module is the project's own (a bug, not an install)."""
    top = (error.name or "").split(".")[0]
    if not top or top in ("competitions", "common", "cli"):
        return None
    package = _PACKAGE_OF.get(top, top)
    return f"needs the {package!r} package, which is not installed: `pip install {package}`"
