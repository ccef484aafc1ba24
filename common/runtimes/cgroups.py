"""The cgroups a sandboxed run is measured and limited in: a child cgroup of this
process's own for each controller the sandbox uses (memory, pids, CPU accounting), on
cgroup v2 or v1 (`docker run --memory` and `--pids-limit` do the same with the runtime's
own cgroups). Its counters are the run's figures: CPU of every process, peak memory
with page cache, anonymous memory, processes at once, forks refused, OOM kills."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Cgroup:
    """A child cgroup of this process's own for each controller the sandbox uses (memory,
    pids, CPU accounting): one folder on cgroup v2, one per hierarchy on v1. Made with
    the limits, joined by the command before it starts, emptied and removed on close."""

    def __init__(self, name: str):
        self.name = name
        self.folders: dict[str, Path] = {}   # "memory" | "pids" | "cpu" -> its folder
        self.versions: dict[str, int] = {}
        self.why: dict[str, str] = {}        # controller -> why there is none

    @classmethod
    def create(cls, memory_limit: int | None, process_limit: int | None) -> Cgroup:
        group = cls(f"compete-runtime-{os.getpid()}-{time.monotonic_ns()}")
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError as error:
            group.why = dict.fromkeys(("memory", "pids", "cpu"), f"cannot read /proc/self/cgroup ({error})")
            return group
        own = {}                              # controller -> (hierarchy's folder name, own path)
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = (controllers, path)
        unified = CGROUP_ROOT / "cgroup.controllers"
        v2 = "" in own and unified.is_file()
        v2_controllers = unified.read_text(errors="replace").split() if v2 else []
        for key, controller in (("memory", "memory"), ("pids", "pids"), ("cpu", "cpuacct")):
            mounted = own.get(controller)
            folders = [CGROUP_ROOT / name for name in ((controller, mounted[0]) if mounted else ())]
            parent = next((folder / mounted[1].lstrip("/") for folder in folders if folder.is_dir()), None)
            if parent is not None:
                version = 1
            elif v2 and (key == "cpu" or key in v2_controllers):   # cpu.stat's usage is in every v2 cgroup
                parent, version = CGROUP_ROOT / own[""][1].lstrip("/"), 2
            else:
                group.why[key] = f"no {key} cgroup controller is mounted"
                continue
            folder = parent / group.name
            try:
                folder.mkdir(exist_ok=version == 2)
            except OSError as error:
                group.why[key] = f"cannot create a cgroup under {parent} ({error.strerror})"
                continue
            group.folders[key], group.versions[key] = folder, version
        try:
            group._limit(memory_limit, process_limit)
        except OSError as error:
            group.close()
            group = cls(group.name)
            group.why = dict.fromkeys(("memory", "pids", "cpu"), f"cannot set a limit ({error.strerror})")
        return group

    def _limit(self, memory_limit: int | None, process_limit: int | None) -> None:
        memory = self.folders.get("memory")
        if memory is not None and self.versions["memory"] == 2 and not (memory / "memory.max").exists():
            del self.folders["memory"]
            self.why["memory"] = "the memory controller is not enabled for this cgroup"
        elif memory is not None and memory_limit:
            if self.versions["memory"] == 1:
                (memory / "memory.limit_in_bytes").write_text(str(memory_limit))
                if (memory / "memory.memsw.limit_in_bytes").exists():
                    (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_limit))
            else:
                (memory / "memory.max").write_text(str(memory_limit))
                if (memory / "memory.swap.max").exists():
                    (memory / "memory.swap.max").write_text("0")
        pids = self.folders.get("pids")
        if pids is not None and not (pids / "pids.max").exists():
            del self.folders["pids"]
            self.why["pids"] = "the pids controller is not enabled for this cgroup"
        elif pids is not None and process_limit:
            (pids / "pids.max").write_text(str(process_limit))

    def join(self) -> None:
        """Move the calling process into every folder (run in the child before exec)."""
        for folder in dict.fromkeys(self.folders.values()):
            (folder / "cgroup.procs").write_text("0")

    def _read(self, key: str, name: str) -> str | None:
        folder = self.folders.get(key)
        try:
            return (folder / name).read_text() if folder is not None else None
        except OSError:
            return None

    def _fields(self, key: str, name: str) -> dict[str, int]:
        text = self._read(key, name) or ""
        fields = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                fields[parts[0]] = int(parts[1])
        return fields

    def pids(self) -> list[int]:
        found = set()
        for folder in self.folders.values():
            try:
                found.update(int(line) for line in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def peak_memory(self) -> int | None:
        text = self._read("memory", "memory.max_usage_in_bytes" if self.versions.get("memory") == 1 else "memory.peak")
        return int(text.split()[0]) if text and text.split() and text.split()[0].isdigit() else None

    def memory_now(self) -> tuple[int, int] | None:
        """(anonymous, tmpfs and shared) bytes the cgroup holds now."""
        fields = self._fields("memory", "memory.stat")
        if not fields:
            return None
        if self.versions.get("memory") == 1:
            return fields.get("total_rss", fields.get("rss", 0)), fields.get("total_shmem", fields.get("shmem", 0))
        return fields.get("anon", 0), fields.get("shmem", 0)

    def oom_killed(self) -> bool:
        fields = self._fields("memory", "memory.oom_control" if self.versions.get("memory") == 1 else "memory.events")
        return fields.get("oom_kill", 0) > 0

    def cpu_seconds(self) -> float | None:
        if self.versions.get("cpu") == 1:
            text = self._read("cpu", "cpuacct.usage")
            return int(text) / 1e9 if text and text.strip().isdigit() else None
        fields = self._fields("cpu", "cpu.stat")
        return fields["usage_usec"] / 1e6 if "usage_usec" in fields else None

    def processes_now(self) -> int | None:
        text = self._read("pids", "pids.current")
        return int(text) if text and text.strip().isdigit() else None

    def peak_processes(self) -> int | None:
        text = self._read("pids", "pids.peak")
        return int(text) if text and text.strip().isdigit() else None

    def forks_refused(self) -> int:
        return self._fields("pids", "pids.events").get("max", 0)

    def kill_all(self) -> None:
        """SIGKILL every process left, until none is (a fork bomb included: the pids limit
        stops it from refilling faster than it is emptied)."""
        for key, folder in self.folders.items():
            if self.versions[key] == 2 and (folder / "cgroup.kill").exists():   # v2 kills them all at once
                try:
                    (folder / "cgroup.kill").write_text("1")
                except OSError:
                    pass
        for _ in range(200):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def close(self) -> None:
        self.kill_all()
        for folder in dict.fromkeys(self.folders.values()):
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
