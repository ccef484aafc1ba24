"""Run a command the way a code-execution container would, without Docker.

- Paths: a private mount namespace (`unshare --mount`) whose root is a fresh tmpfs
  holding read-only bind mounts of the host's top-level folders (the system and the
  Python environment the bundle runs with; /dev, /proc, /sys and /run as they are),
  plus the profile's own, writable where the container's are: the
  unpacked bundle at the profile's root (e.g. /inference), the data read-only at its
  data path, the submission folder at its path, a private /tmp. The command is chrooted
  there, so /inference exists for it and for nothing else on the machine, and no
  environment variable is needed to find a path. As root a read-only bind mount is the
  one way to make data truly read-only (file modes do not stop root).
- Network: a network namespace with only a loopback (`unshare --net`), as
  `docker run --network none`. Processes: a PID namespace with its own /proc (the bundle
  sees and can signal only its own processes), and Docker's default capabilities, so
  root inside cannot mount, remount the data read-write or make device nodes.
- Memory: a child memory cgroup of this process's own (v2, or the v1 memory
  controller), limited like `docker run --memory` (resident memory, page cache
  reclaimable, no swap); an OOM kill is read from the cgroup's counters. Only where no
  cgroup can be made does RLIMIT_AS stand in, and the run says so (address space is a
  poor proxy: torch maps several GB it never touches).
- Time: its own session, killed (with everything left in its cgroup) at the limit.
- Resources: wall time, CPU seconds of the process tree, peak memory as the cgroup
  counts it (with page cache) and peak resident memory of the process tree (polled
  with psutil), and GPU memory from nvidia-smi where there is one.
"""
from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")

SETUP = r"""
set -e
root=$1 workdir=$2 mounts=$3 capabilities=$4
shift 4
mount -t tmpfs -o mode=755 compete-runtime "$root"
# the system: the host's own programs and libraries, read-only; merged-/usr links as they are
for name in usr bin sbin lib lib32 lib64 libx32 etc; do
  entry=/$name
  if [ -L "$entry" ]; then ln -s "$(readlink "$entry")" "$root/$name"
  elif [ -d "$entry" ]; then mkdir "$root/$name" && mount --rbind "$entry" "$root/$name" && mount -o remount,bind,ro "$root/$name"
  fi
done
mkdir "$root/dev" && mount --rbind /dev "$root/dev"
mkdir "$root/proc" && mount -t proc proc "$root/proc"
# the layout's mounts, in order: "ro|SOURCE|TARGET" or "rw|SOURCE|TARGET"
printf '%s' "$mounts" | while IFS='|' read -r mode source target; do
  [ -n "$source" ] || continue
  if [ -d "$source" ]; then mkdir -p "$root$target"
  else mkdir -p "$(dirname "$root$target")" && { [ -e "$root$target" ] || : > "$root$target"; }
  fi
  mount --rbind "$source" "$root$target"
  [ "$mode" = rw ] || mount -o remount,bind,ro "$root$target"
done
if command -v ip >/dev/null; then ip link set lo up; fi
exec chroot "$root" setpriv --bounding-set="$capabilities" --no-new-privs \
  /bin/sh -c 'cd "$1" && shift && exec "$@"' sandbox "$workdir" "$@"
"""

# Docker's default capabilities (moby, oci/caps/defaults.go) less MKNOD, which without
# Docker's device cgroup would let a bundle make a node for a host disk. Mounts
# (SYS_ADMIN) are not among them: the bundle cannot remount the data read-write.
CAPABILITIES = ("-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,"
                "+net_raw,+sys_chroot,+audit_write,+setfcap")


@dataclass(frozen=True)
class Mount:
    """A host file or folder shown at `target` inside the sandbox."""

    source: Path
    target: str                # absolute, inside the sandbox
    writable: bool = False


@dataclass
class Layout:
    """What the sandbox shows besides the system and the Python environment: `mounts`,
    applied in order (a later one may sit inside an earlier one), and the working
    directory the command starts in. Nothing else of the host is there."""

    root: Path                 # an empty host folder the sandbox's / is built on
    mounts: list[Mount]
    workdir: str
    # a network namespace to join (a path under /run/netns, network.open_link) instead of an empty one of its own
    network: Path | None = None
    hosts: dict[str, str] = field(default_factory=dict)   # name -> address, added to /etc/hosts

    def add(self, source: Path, target: str, writable: bool = False) -> None:
        self.mounts.append(Mount(Path(source), target, writable))


@dataclass
class Outcome:
    returncode: int | None
    timed_out: bool
    memory_exceeded: bool
    memory_mode: str           # how the memory limit was enforced, in words
    wall_seconds: float
    cpu_seconds: float
    peak_memory_bytes: int | None      # as the cgroup counts it (page cache included)
    peak_rss_bytes: int                # resident memory of the process tree, polled
    gpu_memory_bytes: int | None       # None: no GPU here
    stopped: bool = False              # ended by the caller's `stop`, not by itself nor the time limit

    def resources(self) -> dict:
        megabytes = lambda value: None if value is None else round(value / 2 ** 20, 1)  # noqa: E731
        return {"wall_seconds": round(self.wall_seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
                "peak_memory_mb": megabytes(self.peak_memory_bytes), "peak_rss_mb": megabytes(self.peak_rss_bytes),
                "gpu_memory_mb": megabytes(self.gpu_memory_bytes), "memory_limit": self.memory_mode}


def available() -> tuple[bool, str]:
    """Whether the sandbox can be built here: unshare and chroot, and the right to use them."""
    for tool in ("unshare", "chroot", "mount", "setpriv"):
        if shutil.which(tool) is None:
            return False, f"the {tool} command is not installed"
    try:
        probe = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c",
                                "mount -t tmpfs probe /mnt"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    if probe.returncode:
        lines = probe.stderr.strip().splitlines()
        return False, lines[-1] if lines else f"exit {probe.returncode}"
    return True, ""


class MemoryCgroup:
    """A child memory cgroup of this process's own, removed on close."""

    def __init__(self, path: Path, version: int):
        self.path, self.version = path, version

    @classmethod
    def create(cls, limit_bytes: int | None) -> tuple["MemoryCgroup | None", str]:
        """The cgroup, or None and why none could be made."""
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError as error:
            return None, f"cannot read /proc/self/cgroup ({error})"
        own = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
        unified = CGROUP_ROOT / "cgroup.controllers"
        if "memory" in own and (CGROUP_ROOT / "memory").is_dir():
            parent, version = CGROUP_ROOT / "memory" / own["memory"].lstrip("/"), 1
        elif "" in own and unified.is_file() and "memory" in unified.read_text(errors="replace").split():
            parent, version = CGROUP_ROOT / own[""].lstrip("/"), 2
        else:
            return None, "no memory cgroup controller is mounted"
        path = parent / f"compete-runtime-{os.getpid()}-{time.monotonic_ns()}"
        try:
            path.mkdir()
        except OSError as error:
            return None, f"cannot create a cgroup under {parent} ({error.strerror})"
        group = cls(path, version)
        try:
            if limit_bytes:
                if version == 1:
                    (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
                    if (path / "memory.memsw.limit_in_bytes").exists():
                        (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
                else:
                    (path / "memory.max").write_text(str(limit_bytes))
                    if (path / "memory.swap.max").exists():
                        (path / "memory.swap.max").write_text("0")
        except OSError as error:
            group.close()
            return None, f"cannot set a limit in {path} ({error.strerror})"
        return group, ""

    def join(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def peak(self) -> int | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def oom_killed(self) -> bool:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            fields = dict(line.split() for line in (self.path / name).read_text().splitlines() if line.strip())
        except (OSError, ValueError):
            return False
        return int(fields.get("oom_kill", 0)) > 0

    def kill_all(self) -> None:
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def close(self) -> None:
        self.kill_all()
        for _ in range(40):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


class Poller(threading.Thread):
    """Peak resident memory of a process tree, and GPU memory where nvidia-smi exists."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_rss, self.peak_gpu = pid, interval, 0, None
        self.stopped = threading.Event()
        self.gpu = shutil.which("nvidia-smi")

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        ticks = 0
        while not self.stopped.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for process in tree:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_rss = max(self.peak_rss, total)
            if self.gpu and ticks % 10 == 0:
                self._gpu({process.pid for process in tree})
            ticks += 1
            self.stopped.wait(self.interval)

    def _gpu(self, pids: set[int]) -> None:
        try:
            listing = subprocess.run([self.gpu, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return
        used = sum(int(memory) for pid, memory in (line.split(",") for line in listing.splitlines() if "," in line)
                   if int(pid) in pids) * 2 ** 20
        self.peak_gpu = max(self.peak_gpu or 0, used)


def run(command: list[str], layout: Layout, log_path: Path, environment: dict, time_limit: float,
        memory_limit_gb: float | None, isolated: bool = True, stop: threading.Event | None = None) -> Outcome:
    """Run `command` inside the sandbox described by `layout` (or, not `isolated`, as a
    plain child in `layout.code`), under the limits; its output goes to `log_path`.
    Setting `stop` kills the run as the time limit would, and it ends `stopped`."""
    limit_bytes = int(memory_limit_gb * 1024 ** 3) if memory_limit_gb else None
    group, why = MemoryCgroup.create(limit_bytes)
    if group is not None:
        memory_mode = (f"memory cgroup v{group.version}, {memory_limit_gb:g} GB" if limit_bytes
                       else f"none (measured in a memory cgroup v{group.version})")
    else:
        memory_mode = f"RLIMIT_AS {memory_limit_gb:g} GB (address space; {why})" if limit_bytes else f"none ({why})"
    scratch = None
    if isolated:
        # the environment last, so that a private /tmp cannot hide an interpreter living under the host's /tmp
        mounts = list(layout.mounts) + [Mount(Path(path), path) for path in python_environment()]
        if layout.hosts:   # the host's /etc/hosts stays as it is: the sandbox's own is mounted over it
            scratch = Path(tempfile.mkdtemp(prefix="compete-hosts-"))
            (scratch / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n"
                                           + "".join(f"{address}\t{name}\n" for name, address in layout.hosts.items()))
            mounts.append(Mount(scratch / "hosts", "/etc/hosts"))
        lines = "".join(f"{'rw' if mount.writable else 'ro'}|{mount.source}|{mount.target}\n" for mount in mounts)
        joined = ["nsenter", f"--net={layout.network}"] if layout.network else []
        command = [*joined, "unshare", *([] if layout.network else ["--net"]), "--mount", "--pid", "--fork", "--kill-child",
                   "--propagation", "private",
                   "sh", "-c", SETUP, "sandbox", str(layout.root), layout.workdir, lines, CAPABILITIES, *command]
        cwd = layout.root
    else:
        writable = [mount for mount in layout.mounts if mount.writable and mount.target == layout.workdir]
        cwd = writable[0].source if writable else layout.root

    def prepare():
        os.setsid()
        if group is not None:
            group.join(os.getpid())
        elif limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=log_file,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=prepare)
            poller = Poller(process.pid)
            poller.start()
            returncode, timed_out, stopped = _wait(process, group, time_limit, stop)
            poller.stopped.set()
            poller.join()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        memory_exceeded = bool(limit_bytes) and (group.oom_killed() if group is not None else False)
        peak = group.peak() if group is not None else None
        return Outcome(returncode, timed_out, memory_exceeded, memory_mode, wall,
                       (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                       peak, poller.peak_rss, poller.peak_gpu, stopped)
    finally:
        if group is not None:
            group.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@functools.cache
def python_environment() -> list[str]:
    """The folders the runtime's interpreter (this one, started isolated with -I) reads:
    its prefix, its standard library and every site folder on its path, .pth additions
    included. They are shown read-only at their own paths, wherever they live (a
    checkout and its .venv under /tmp included); the rest of the host is not shown."""
    probe = subprocess.run([sys.executable, "-I", "-c", "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix, *sys.path]))"],
                           capture_output=True, text=True, check=True)
    candidates = {os.path.realpath(path) for path in json.loads(probe.stdout) if path and os.path.isdir(path)}
    candidates |= {os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(sys.executable)}
    system = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/etc/")
    project = str(Path(__file__).resolve().parents[2])   # an editable install's path entry: never shown
    kept = sorted(path for path in candidates if not path.startswith(system) and path not in ("/", project))
    return [path for path in kept if not any(path.startswith(other + "/") for other in kept if other != path)]


def _wait(process: subprocess.Popen, group: MemoryCgroup | None, time_limit: float,
          stop: threading.Event | None) -> tuple[int | None, bool, bool]:
    """(exit code, timed out, stopped): the run's end, killed at the time limit or once `stop` is set."""
    deadline = time.perf_counter() + time_limit
    while True:
        left = deadline - time.perf_counter()
        try:
            return process.wait(timeout=max(0.0, left if stop is None else min(left, 0.1))), False, False
        except subprocess.TimeoutExpired:
            stopped = stop is not None and stop.is_set()
            if stopped or time.perf_counter() >= deadline:
                _kill(process, group)
                return process.returncode, not stopped, stopped


def _kill(process: subprocess.Popen, group: MemoryCgroup | None) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if group is not None:
        group.kill_all()
    process.wait()
