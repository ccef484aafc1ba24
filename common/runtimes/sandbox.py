"""Run a command the way a code-execution container would, without Docker.

The root is built as container runtimes build it (runc, libcontainer/rootfs_linux.go,
commit 007bdcaadac6fa3bce4cc300e260646926536fee: prepareRootfs, pivotRoot,
setReadonly), in two mount namespaces:

- The builder (`unshare --mount`, then BUILD: a few lines of this interpreter calling
  mount(2) through ctypes) makes a fresh tmpfs, the future /, and mounts into it,
  read-only: the system (/usr, /bin, /sbin, /lib*), an /etc of its own (the few host
  files the Python environment reads, and passwd, group, hosts, resolv.conf written for
  it: none of the host's secrets), a /dev of its own (null, zero, full, random, urandom,
  tty, a private /dev/pts and /dev/shm; the GPU's nodes where there is one), the
  layout's mounts and the Python environment's folders. Each writable folder of the
  layout is an overlay whose upper layer lives on a filesystem of its own, bounded in
  size (see Disk). The builder then waits: what the command wrote is reachable only
  through its namespace, for copying it back out.
- The command's namespaces (`nsenter` into the builder's mounts, then `unshare` of
  mount, PID, network, UTS, IPC and cgroup namespaces; the ENTER script) get a /proc
  of their own with Docker's masked and read-only paths, `pivot_root` into the new
  root, the old root unmounted (`umount -l`) and removed, and the new root remounted
  read-only: a chroot escape (chroot into a subfolder, keeping a descriptor on the old
  root, chdir("..") up, chroot(".")) climbs to this root, and there is no host above it.
  pivot_root is util-linux's, as unshare, nsenter and mount are: no syscall number to
  keep per architecture, and no interpreter starts in the command's namespaces before
  the command's own.

- Capabilities: Docker's defaults (moby/moby, oci/defaults.go, commit
  0a8650917ad0a9002ccb8e0a4724fe0dd7cdb8fc) less MKNOD, as a bounding set with
  no_new_privs; see CAPABILITIES for why each is kept.
- Network: an empty network namespace (`docker run --network none`), or the one named
  by `network` (a private link between two sandboxes, runtimes/network.py).
- Processes: a pids cgroup (`docker run --pids-limit`); the command's PID namespace
  dies with its first process, and whatever is left in the cgroup is killed at the end.
- Memory: a memory cgroup limited like `docker run --memory` (resident memory, page
  cache reclaimable, no swap); an OOM kill is read from the cgroup's counters. Only
  where no cgroup can be made does RLIMIT_AS stand in, and the run says so.
- Disk: each writable folder's writes go to an overlay upper layer on a sparse ext4
  image of `disk_limit_gb` on a loop device (disk, as on the platform; "No space left
  on device" at the bound); where no loop device or mkfs.ext4 is at hand, on a tmpfs of
  that size, which holds the files in memory: they then count against the memory limit
  as well (tmpfs pages are charged to the cgroup of the process writing them). After
  the run the upper layer is applied to the host folder (new and changed files copied,
  deleted ones removed).
- Time: killed, with everything in its cgroup, at the limit.
- Resources, each figure saying what it counts (Outcome.explained): wall time, CPU of
  every process of the run (the cgroup's), peak memory with page cache and tmpfs (the
  cgroup's), peak anonymous memory (polled), peak tmpfs and shared memory, peak
  process count, peak bytes written per writable folder, GPU memory from nvidia-smi.

The cgroups are `cgroups.py`'s, the bounded writable folders `disks.py`'s; this module
builds the root and runs the command.
"""
from __future__ import annotations

import functools
import glob
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.runtimes.cgroups import Cgroup
from common.runtimes.disks import MB, copy_back, disk_backing, make_images, tool

DEFAULT_PROCESS_LIMIT = 4096
# Kaggle's /kaggle/working holds 20 GB (issue 20); DrivenData states no limit we know of.
DEFAULT_DISK_LIMIT_GB = 20.0
HOSTNAME = "sandbox"
POLL_SECONDS = 0.1
GB = 1024 ** 3

# The builder, run by this interpreter (-I -S) in its own mount namespace: mount(2)
# through ctypes, since a `mount` process per mount (five dozen of them) took 0.5 s.
# Arguments: SCRATCH and the operations as JSON, four strings each (KIND, SOURCE,
# TARGET inside the new root, OPTION), so that no path is ever split or parsed: a
# space, '|', ',' or ':' in a path is only ever part of one string. Overlay options
# name relative paths under the builder's own staging folder, never a caller's path.
BUILD = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC = 1, 2, 4, 8, 32, 4096, 16384

def mount(source, target, kind, flags, data=None):
    if libc.mount(source.encode(), target.encode(), kind.encode() if kind else None, flags,
                  data.encode() if data else None):
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")

def bind(source, target, writable):
    mount(source, target, None, BIND | REC)
    if not writable:   # keeping the source's nosuid, nodev, noexec, as runc's remount does
        kept = os.statvfs(target).f_flag & (NOSUID | NODEV | NOEXEC)
        mount("none", target, None, REMOUNT | BIND | RDONLY | kept)

def point(path, folder):
    if folder:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            open(path, "x").close()

scratch, operations = sys.argv[1], json.loads(sys.argv[2])
try:
    mount("compete-sandbox", scratch, "tmpfs", 0, "mode=700")
    new, stage = scratch + "/root", scratch + "/stage"
    os.mkdir(new)
    os.mkdir(stage)
    mount("compete-root", new, "tmpfs", 0, "mode=755")
    os.chdir(stage)
    count = 0
    for kind, source, target, option in operations:
        at = new + target
        if kind == "dir":
            os.makedirs(at, exist_ok=True)
        elif kind == "link":
            os.makedirs(os.path.dirname(at), exist_ok=True)
            os.symlink(source, at)
        elif kind == "file":
            os.makedirs(os.path.dirname(at), exist_ok=True)
            with open(at, "w") as handle:
                handle.write(source)
        elif kind == "bind":
            point(at, os.path.isdir(source))
            bind(source, at, option == "rw")
        elif kind == "tmpfs":
            point(at, True)
            mount("tmpfs", at, "tmpfs", NOSUID | NODEV | NOEXEC, option)
        elif kind == "devpts":
            point(at, True)
            try:
                mount("devpts", at, "devpts", NOSUID | NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
            except OSError:
                pass
        elif kind == "bounded":
            count += 1
            lower, disk = f"lower{count}", f"disk{count}"
            os.mkdir(lower)
            os.mkdir(disk)
            mount(source, lower, None, BIND)
            backing, _, value = option.partition(":")
            if backing == "ext4":   # util-linux finds a free loop device and sets it to detach with the mount
                status = os.spawnv(os.P_WAIT, MOUNT, [MOUNT, "-o", "loop,noinit_itable,nosuid,nodev", value, disk])
                if status:
                    raise OSError(f"mount -o loop {value}: exit {status}")
            else:
                mount("tmpfs", disk, "tmpfs", NOSUID | NODEV, f"size={value}")
            os.mkdir(disk + "/upper")
            os.mkdir(disk + "/work")
            shown = os.stat(lower)
            os.chmod(disk + "/upper", shown.st_mode & 0o7777)
            os.chown(disk + "/upper", shown.st_uid, shown.st_gid)
            point(at, True)
            mount("overlay", at, "overlay", 0, f"lowerdir={lower},upperdir={disk}/upper,workdir={disk}/work,"
                                              f"redirect_dir=off,metacopy=off")
        else:
            raise OSError(f"unknown operation {kind}")
except OSError as error:
    print(f"sandbox: {error}", file=sys.stderr)
    sys.exit(1)
print("ready", flush=True)
sys.stdin.read()
"""

# The command's side, in its own namespaces: /proc, Docker's masked and read-only
# paths in it (moby/moby oci/defaults.go: MaskedPaths, ReadonlyPaths; without them root
# could write /proc/sys/kernel/core_pattern or /proc/sysrq-trigger, which are the
# host's), pivot_root, the old root detached and removed, / read-only, the bounding set.
ENTER = r"""
set -e
new=$1 name=$2 capabilities=$3 workdir=$4
shift 4
path_given=$PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc -o nosuid,nodev,noexec proc "$new/proc"
printf '%s' "$name" > "$new/proc/sys/kernel/hostname"
if command -v ip >/dev/null; then ip link set lo up; fi
for entry in asound acpi kcore keys latency_stats timer_list timer_stats sched_debug scsi; do
  if [ -d "$new/proc/$entry" ]; then mount -t tmpfs -o ro,nosuid,nodev,noexec,mode=555 masked "$new/proc/$entry"
  elif [ -e "$new/proc/$entry" ]; then mount --bind "$new/dev/null" "$new/proc/$entry"
  fi
done
for entry in bus fs irq sys sysrq-trigger; do
  if [ -e "$new/proc/$entry" ]; then mount -o bind,ro "$new/proc/$entry" "$new/proc/$entry"; fi
done
setpriv=$(command -v setpriv)
mkdir "$new/.old-root"
cd "$new"
pivot_root . .old-root
umount -l /.old-root
rmdir /.old-root
mount -o remount,bind,ro /
cd /
PATH=$path_given exec "$setpriv" --bounding-set="$capabilities" --no-new-privs \
  /bin/sh -c 'cd "$1" && shift && exec "$@"' sandbox "$workdir" "$@"
"""

# Docker's default capabilities (moby/moby oci/defaults.go, commit 0a86509), and which
# stay safe here without Docker's seccomp profile, AppArmor and device cgroup:
#   chown, dac_override, fowner, fsetid: act on files the sandbox shows; the host's are
#     read-only mounts (root cannot write through MS_RDONLY) and /etc holds no secret.
#   kill: signals reach only the command's own PID namespace.
#   setuid, setgid, setpcap: change the command's own ids, or drop capabilities.
#   setfcap: file capabilities grant nothing past the bounding set and no_new_privs.
#   net_raw, net_bind_service: the network namespace has a loopback (or a private link).
#   audit_write: the kernel refuses audit messages from outside the first PID namespace.
#   sys_chroot: kept, as Docker keeps it: after pivot_root, with the old root detached,
#     the chroot escape climbs only to this root (tests/test_sandbox.py proves it).
# Dropped: mknod, which without a device cgroup would let root make a node for a host
# disk. Never given: sys_admin (mount, remount the data read-write), sys_ptrace,
# dac_read_search (open_by_handle_at: the "shocker" escape), sys_module, sys_rawio.
CAPABILITIES = ("-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,"
                "+net_raw,+sys_chroot,+audit_write,+setfcap")

SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What of the host's /etc the Python environment reads (the loader's cache, certificates
# and OpenSSL's configuration, time zone, MIME types, services, a system Python's own
# configuration) and nothing else: no shadow, no ssh keys, no pip.conf or npmrc tokens.
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl/certs", "ssl/openssl.cnf", "ca-certificates",
       "ca-certificates.conf", "pki/tls/certs", "pki/ca-trust/extracted", "crypto-policies", "localtime", "timezone",
       "mime.types", "os-release", "protocols", "services", "gai.conf", "host.conf", "fonts", "python3*")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


@dataclass(frozen=True)
class Mount:
    """A host file or folder shown at `target` inside the sandbox."""

    source: Path
    target: str                # absolute, inside the sandbox
    writable: bool = False


@dataclass
class Layout:
    """What the sandbox shows besides the system and the Python environment: `mounts`,
    applied in order (a later one may sit inside an earlier one), the working
    directory the command starts in, and extra /etc/hosts entries (name -> address).
    Nothing else of the host is there."""

    root: Path                 # an empty host folder the sandbox's / is built on
    mounts: list[Mount]
    workdir: str
    hosts: dict[str, str] = field(default_factory=dict)
    # a network namespace to join (a path under /run/netns, network.open_link) instead of an empty one of its own
    network: Path | None = None

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
    peak_memory_bytes: int | None      # as the cgroup counts it (page cache and tmpfs included)
    peak_rss_bytes: int                # anonymous memory of the cgroup (or PSS of the processes), polled
    gpu_memory_bytes: int | None       # None: no GPU here
    peak_shared_bytes: int | None = None       # tmpfs and shared memory of the cgroup, polled
    process_limit: int | None = None
    process_mode: str = ""                     # how the process limit was enforced, in words
    peak_processes: int | None = None
    forks_refused: int = 0                     # forks the pids cgroup refused
    disk_limit_bytes: int | None = None        # per writable folder
    disk_mode: str = ""                        # how the writable folders were bounded, in words
    disk_written: dict[str, int] = field(default_factory=dict)   # writable folder -> peak bytes written
    disk_full: list[str] = field(default_factory=list)           # writable folders that reached the limit
    explained: dict[str, str] = field(default_factory=dict)      # figure -> what it counts
    stopped: bool = False                      # ended by the caller's `stop`, not by itself nor the time limit

    @property
    def disk_exceeded(self) -> bool:
        return bool(self.disk_full)

    @property
    def processes_exceeded(self) -> bool:
        return self.forks_refused > 0

    def limit_reached(self) -> str:
        """The disk or process limit the command ran into, in one phrase ("" for neither):
        the reason of a failed run when neither time nor memory explains it."""
        if self.disk_full:
            written = ", ".join(f"{self.disk_written.get(target, 0) / MB:.0f} MB in {target}" for target in self.disk_full)
            return (f"disk limit of {self.disk_limit_bytes / GB:g} GB reached in {', '.join(self.disk_full)} "
                    f"({written}; {self.disk_mode})")
        if self.forks_refused:
            return (f"process limit of {self.process_limit} reached ({self.forks_refused} fork(s) refused; "
                    f"{self.process_mode})")
        return ""

    def memory_detail(self) -> str:
        """What of the memory were files, where writable folders live in memory (tmpfs)."""
        if self.disk_mode.startswith("tmpfs") and self.peak_shared_bytes:
            return (f"; {self.peak_shared_bytes / MB:.0f} MB of it were files in tmpfs (writable folders and /dev/shm "
                    f"live in memory here: --memory-limit counts them)")
        return ""

    def resources(self) -> dict:
        def megabytes(value):
            return None if value is None else round(value / MB, 1)

        return {"wall_seconds": round(self.wall_seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
                "peak_memory_mb": megabytes(self.peak_memory_bytes), "peak_rss_mb": megabytes(self.peak_rss_bytes),
                "peak_shared_mb": megabytes(self.peak_shared_bytes), "gpu_memory_mb": megabytes(self.gpu_memory_bytes),
                "memory_limit": self.memory_mode,
                "peak_processes": self.peak_processes, "forks_refused": self.forks_refused,
                "process_limit": self.process_mode,
                "disk_written_mb": {target: megabytes(size) for target, size in self.disk_written.items()},
                "disk_full": list(self.disk_full), "disk_limit": self.disk_mode,
                "explained": dict(self.explained)}


def available() -> tuple[bool, str]:
    """Whether the sandbox can be built here: util-linux's namespace tools, and the right to use them."""
    for name in ("unshare", "nsenter", "mount", "umount", "pivot_root", "setpriv"):
        if tool(name) is None:
            return False, f"the {name} command is not installed"
    try:
        probe = subprocess.run([tool("unshare"), "--net", "--mount", "--pid", "--fork", "--propagation", "private", "sh",
                                "-c", "mount -t tmpfs probe /mnt"], check=False, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    if probe.returncode:
        lines = probe.stderr.strip().splitlines()
        return False, lines[-1] if lines else f"exit {probe.returncode}"
    return True, ""


# ---------------------------------------------------------------- the root

def _operations(layout: Layout, bounded: dict[int, str], shm_size: str) -> list[list[str]]:
    """The builder's operations (kind, source, target, option): the system, /etc, /dev, /proc's mount
    point, the layout's mounts (writable folders in `bounded`, index -> backing, as
    overlays), the hosts file, the Python environment last (so that a private /tmp
    cannot hide an interpreter living under the host's /tmp)."""
    operations: list[list[str]] = []

    def add(kind: str, source: str, target: str, option: str = "-") -> None:
        operations.append([kind, source, target, option])

    for name in SYSTEM:
        entry = Path("/") / name
        if entry.is_symlink():
            add("link", os.readlink(entry), f"/{name}")
        elif entry.is_dir():
            add("bind", str(entry), f"/{name}", "ro")
    for pattern in ETC:
        for found in sorted(glob.glob(f"/etc/{pattern}")):
            entry = Path(found)
            if entry.is_symlink():
                add("link", os.readlink(entry), found)
            elif entry.exists():
                add("bind", found, found, "ro")
    names = {HOSTNAME: "127.0.1.1", **layout.hosts}
    for name, address in names.items():
        if not name or not address or any(character.isspace() for character in name + address):
            raise ValueError(f"a hosts entry needs a name and an address without spaces: {name!r} -> {address!r}")
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + "".join(
        f"{address}\t{name}\n" for name, address in names.items())
    for name, content in (("passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
                          ("group", "root:x:0:\nnogroup:x:65534:\n"), ("hosts", hosts), ("hostname", f"{HOSTNAME}\n"),
                          ("resolv.conf", ""), ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n")):
        add("file", content, f"/etc/{name}")
    for name in DEVICES:
        add("bind", f"/dev/{name}", f"/dev/{name}", "rw")
    for found in sorted(glob.glob("/dev/nvidia*")):   # the GPU's nodes, where there is one
        add("bind", found, found, "rw")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
        add("link", target, f"/dev/{name}")
    add("devpts", "-", "/dev/pts")
    add("tmpfs", "-", "/dev/shm", f"size={shm_size},mode=1777")
    add("dir", "-", "/proc")
    for index, mount in enumerate(layout.mounts):
        source = os.path.abspath(mount.source)
        if index in bounded:
            add("bounded", source, mount.target, bounded[index])
        else:
            add("bind", source, mount.target, "rw" if mount.writable else "ro")
    for path in python_environment():
        add("bind", path, path, "ro")
    return operations


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


# ---------------------------------------------------------------- measuring

class Poller(threading.Thread):
    """Polls what no counter keeps a peak of: the cgroup's anonymous and tmpfs memory (or
    the PSS of the process tree where there is no memory cgroup), its process count
    (where the kernel has no pids.peak), the bytes in use on each writable folder's own
    filesystem, and GPU memory where nvidia-smi exists."""

    def __init__(self, pid: int, group: Cgroup, disks: dict[str, Path] | None = None, interval: float = POLL_SECONDS):
        super().__init__(daemon=True)
        self.pid, self.group, self.interval = pid, group, interval
        self.disks = disks or {}
        self.peak_rss, self.peak_shared, self.peak_processes, self.peak_gpu = 0, None, 0, None
        self.baseline = {target: self._used(path) for target, path in self.disks.items()}
        self.peak_used = dict.fromkeys(self.disks, 0)
        self.least_free = {target: None for target in self.disks}
        self.stopped = threading.Event()
        self.gpu = shutil.which("nvidia-smi")

    @staticmethod
    def _used(path: Path) -> tuple[int, int] | None:
        """(bytes in use, bytes free) on the filesystem at `path`."""
        try:
            info = os.statvfs(path)
        except OSError:
            return None
        return (info.f_blocks - info.f_bfree) * info.f_frsize, info.f_bavail * info.f_frsize

    def sample_disks(self) -> None:
        for target, path in self.disks.items():
            now, base = self._used(path), self.baseline.get(target)
            if now is None or base is None:
                continue
            self.peak_used[target] = max(self.peak_used[target], now[0] - base[0])
            least = self.least_free[target]
            self.least_free[target] = now[1] if least is None else min(least, now[1])

    def run(self) -> None:
        import psutil

        ticks, gpu_due = 0, 0.0
        while not self.stopped.is_set():
            gpu = self.gpu is not None and time.monotonic() >= gpu_due   # nvidia-smi once a second at most
            memory = self.group.memory_now()
            if memory is not None:
                self.peak_rss = max(self.peak_rss, memory[0])
                self.peak_shared = max(self.peak_shared or 0, memory[1])
            tree = self._tree(psutil) if memory is None or gpu else None
            if memory is None and tree:
                total = 0
                for process in tree[:256]:
                    try:
                        total += process.memory_full_info().pss
                    except (psutil.Error, AttributeError):
                        pass
                self.peak_rss = max(self.peak_rss, total)
            count = self.group.processes_now()
            if count is not None:
                self.peak_processes = max(self.peak_processes, count)
            self.sample_disks()
            if gpu:
                self._gpu(set(self.group.pids()) or {process.pid for process in tree or []})
                gpu_due = time.monotonic() + 1.0
            ticks += 1
            self.stopped.wait(self.interval if ticks > 50 else self.interval / 5)   # short runs: faster at first

    def _tree(self, psutil) -> list:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _gpu(self, pids: set[int]) -> None:
        try:
            listing = subprocess.run([self.gpu, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                     check=False, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return
        used = sum(int(memory) for pid, memory in (line.split(",") for line in listing.splitlines() if "," in line)
                   if int(pid) in pids) * MB
        self.peak_gpu = max(self.peak_gpu or 0, used)


# ---------------------------------------------------------------- running

def run(command: list[str], layout: Layout, log_path: Path, environment: dict, time_limit: float,
        memory_limit_gb: float | None, isolated: bool = True, *, process_limit: int | None = DEFAULT_PROCESS_LIMIT,
        disk_limit_gb: float | None = DEFAULT_DISK_LIMIT_GB, network: Path | None = None,
        stop: threading.Event | None = None) -> Outcome:
    """Run `command` inside the sandbox described by `layout` (or, not `isolated`, as a
    plain child in the writable working folder), under the limits; its output goes to
    `log_path`. `process_limit`: processes and threads at once (pids cgroup);
    `disk_limit_gb`: what each writable folder may hold (None: unbounded, written to the
    host folder directly); `network` (or `layout.network`): a network namespace to join
    (a path under /run/netns) instead of an empty one of its own; setting `stop` kills
    the run as the time limit would, and it ends `stopped`."""
    network = network or layout.network
    limit_bytes = int(memory_limit_gb * GB) if memory_limit_gb else None
    group = Cgroup.create(limit_bytes, process_limit)
    if "memory" in group.folders:
        version = group.versions["memory"]
        memory_mode = (f"memory cgroup v{version}, {memory_limit_gb:g} GB" if limit_bytes
                       else f"none (measured in a memory cgroup v{version})")
    else:
        why = group.why["memory"]
        memory_mode = f"RLIMIT_AS {memory_limit_gb:g} GB (address space; {why})" if limit_bytes else f"none ({why})"
    if "pids" in group.folders:
        process_mode = (f"pids cgroup v{group.versions['pids']}, {process_limit}" if process_limit
                        else f"none (counted in a pids cgroup v{group.versions['pids']})")
    else:
        process_mode = f"none ({group.why['pids']})"
    explained = _explained(group)
    try:
        if isolated:
            return _run_isolated(command, layout, log_path, environment, time_limit, limit_bytes, group, memory_mode,
                                 process_limit, process_mode, disk_limit_gb, network, explained, stop)
        writable = [mount for mount in layout.mounts if mount.writable and mount.target == layout.workdir]
        cwd = writable[0].source if writable else layout.root
        outcome = _execute(command, cwd, log_path, environment, time_limit, limit_bytes, group, {}, stop)
        outcome.disk_mode = "none (not isolated: the host's folders are written directly)"
        return _finish(outcome, group, memory_mode, process_limit, process_mode, explained)
    finally:
        group.close()


def _explained(group: Cgroup) -> dict[str, str]:
    """What each figure of the report counts: a short phrase, then the counter it is read from."""
    memory, cpu, pids = group.versions.get("memory"), group.versions.get("cpu"), group.versions.get("pids")
    every = f"every {POLL_SECONDS:g} s"
    return {
        "wall_seconds": "from entering the command's namespaces to its end (building the root before is not counted)",
        "cpu_seconds": ("cgroup: every process of the run, user + system (cpuacct.usage)" if cpu == 1 else
                        "cgroup: every process of the run, user + system (cpu.stat usage_usec)" if cpu == 2 else
                        "reaped child processes only (RUSAGE_CHILDREN, no cgroup here: processes reaped inside the "
                        "sandbox are missed)"),
        "peak_memory_mb": ("cgroup: resident + page cache + tmpfs (memory.max_usage_in_bytes)" if memory == 1 else
                           "cgroup: resident + page cache + tmpfs (memory.peak)" if memory == 2 else
                           "not measured (no memory cgroup)"),
        "peak_rss_mb": (f"anonymous memory, polled (the cgroup's memory.stat {'rss' if memory == 1 else 'anon'}, {every})"
                        if memory else f"PSS of the processes, polled (shared pages split between them, {every})"),
        "peak_shared_mb": (f"tmpfs and shared memory, polled (the cgroup's memory.stat shmem, {every})" if memory else
                           "not measured (no memory cgroup)"),
        "peak_processes": ("processes and threads at once (pids cgroup: pids.peak, or pids.current polled)" if pids else
                           "not measured (no pids cgroup)"),
        "disk_written_mb": (f"peak bytes written per writable folder (in use on the folder's own filesystem beyond what "
                            f"it started with, polled {every})"),
    }


def _run_isolated(command, layout: Layout, log_path: Path, environment: dict, time_limit: float, limit_bytes, group: Cgroup,
                  memory_mode: str, process_limit, process_mode: str, disk_limit_gb, network, explained,
                  stop: threading.Event | None = None) -> Outcome:
    root = Path(os.path.abspath(layout.root))   # the builder starts in /
    scratch, images_folder = root / "sandbox", root / "disks"
    scratch.mkdir(exist_ok=True)
    writable = {index: mount for index, mount in enumerate(layout.mounts) if mount.writable and Path(mount.source).is_dir()}
    disk_bytes = int(disk_limit_gb * GB) if disk_limit_gb else None
    backing, why = disk_backing() if disk_bytes and writable else (None, "")
    bounded: dict[int, str] = {}
    if backing == "ext4":
        try:
            images = make_images(images_folder, len(writable), disk_bytes)
        except (OSError, subprocess.SubprocessError) as error:   # e.g. the host's disk is full: memory instead
            backing, why = "tmpfs", str(error)
        else:
            bounded = {index: f"ext4:{image}" for index, image in zip(writable, images)}
            disk_mode = f"{disk_limit_gb:g} GB per writable folder (a sparse ext4 image on a loop device: disk)"
    if backing == "tmpfs":
        bounded = {index: f"tmpfs:{disk_bytes}" for index in writable}
        disk_mode = (f"tmpfs {disk_limit_gb:g} GB per writable folder (in memory, counted against the memory limit too; "
                     f"no ext4 image: {why})")
    elif backing is None and disk_bytes and writable:
        disk_mode = f"none (the writable folders cannot be bounded here: {why})"
    elif backing is None:
        disk_mode = "none (no disk limit asked)" if writable else "none (no writable folder)"
    shm_size = str(limit_bytes) if limit_bytes else "50%"
    builder = None
    try:
        operations = _operations(layout, bounded, shm_size)
        with open(log_path, "ab") as log_file:
            builder = subprocess.Popen([tool("unshare"), "--mount", "--propagation", "private", sys.executable, "-I", "-S",
                                        "-c", f"MOUNT = {tool('mount')!r}\n" + BUILD, str(scratch), json.dumps(operations)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=log_file, cwd="/", start_new_session=True)
        if not _ready(builder, 120):
            builder.wait()
            outcome = Outcome(builder.returncode or 1, False, False, memory_mode, 0.0, 0.0, None, 0, None)
            outcome.disk_limit_bytes, outcome.disk_mode = disk_bytes, disk_mode
            return _finish(outcome, group, memory_mode, process_limit, process_mode, explained)
        inside = Path(f"/proc/{builder.pid}/root") / str(scratch).lstrip("/")
        order = sorted(bounded)
        disks = {layout.mounts[index].target: inside / "stage" / f"disk{number}" for number, index in enumerate(order, 1)}
        enter = [tool("nsenter"), f"--mount=/proc/{builder.pid}/ns/mnt"]
        if network is not None:
            enter.append(f"--net={network}")
        enter += [tool("unshare"), "--mount", "--pid", "--uts", "--ipc", "--cgroup", "--fork", "--kill-child",
                  "--propagation", "private", *([] if network is not None else ["--net"]),
                  tool("sh"), "-c", ENTER, "enter", str(scratch / "root"), HOSTNAME, CAPABILITIES, layout.workdir, *command]
        outcome = _execute(enter, "/", log_path, environment, time_limit, limit_bytes, group, disks, stop)
        outcome.disk_limit_bytes, outcome.disk_mode = disk_bytes, disk_mode
        group.kill_all()   # nothing of the command may still write while its folders are copied back
        for number, index in enumerate(order, 1):
            target = layout.mounts[index].target
            try:
                left_out = copy_back(inside / "stage" / f"disk{number}" / "upper", Path(layout.mounts[index].source))
            except OSError as error:   # said in the log: the caller then misses what was not copied
                left_out = [f"the rest ({error})"]
            if left_out:
                with open(log_path, "a") as log_file:
                    log_file.write(f"sandbox: not copied back out of {target}: {'; '.join(left_out[:20])}"
                                   f"{f' and {len(left_out) - 20} more' if len(left_out) > 20 else ''}\n")
        if outcome.disk_written and not outcome.disk_full and outcome.returncode and "No space left on device" in _tail(log_path):
            outcome.disk_full = [max(outcome.disk_written, key=outcome.disk_written.get)]   # the poll missed the moment
        return _finish(outcome, group, memory_mode, process_limit, process_mode, explained)
    finally:
        if builder is not None:
            for stream in (builder.stdin, builder.stdout):   # closing stdin lets the builder, and its mounts, go
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                builder.wait(timeout=60)
            except subprocess.TimeoutExpired:
                builder.kill()
                builder.wait()
        shutil.rmtree(images_folder, ignore_errors=True)
        try:
            scratch.rmdir()
        except OSError:
            pass


def _ready(builder: subprocess.Popen, timeout: float) -> bool:
    """Whether the builder says "ready" (its errors go to the log)."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([builder.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(builder.stdout.fileno(), 64)
        if not chunk:
            return False
        buffer += chunk
        if b"ready\n" in buffer:
            return True
    builder.kill()
    return False


def _tail(path: Path, size: int = 65536) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _execute(command: list[str], cwd, log_path: Path, environment: dict, time_limit: float, limit_bytes, group: Cgroup,
             disks: dict[str, Path], stop: threading.Event | None = None) -> Outcome:
    """Start `command` in the cgroup (in a session of its own), poll it, stop it at the time
    limit or once `stop` is set."""
    def prepare():   # before exec, so that every process of the command is in the cgroup from its start
        group.join()
        if "memory" not in group.folders and limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    timed_out = stopped = False
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=prepare)  # noqa: PLW1509
        poller = Poller(process.pid, group, disks)
        poller.start()
        try:
            returncode = _wait(process, time_limit, stop)
        except subprocess.TimeoutExpired:
            stopped = stop is not None and stop.is_set()
            timed_out = not stopped
            _kill(process, group)
            returncode = process.returncode
        except BaseException:
            _kill(process, group)
            raise
        finally:
            poller.stopped.set()
            poller.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    poller.sample_disks()   # what the command left behind
    cpu = group.cpu_seconds()
    if cpu is None:
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    outcome = Outcome(returncode, timed_out, False, "", wall, cpu, None, poller.peak_rss, poller.peak_gpu,
                      peak_shared_bytes=poller.peak_shared, peak_processes=poller.peak_processes or None)
    outcome.disk_written, outcome.stopped = dict(poller.peak_used), stopped
    for target, least in poller.least_free.items():
        if least is not None and least <= max(2 * MB, poller.peak_used[target] // 200):
            outcome.disk_full.append(target)
    return outcome


def _wait(process: subprocess.Popen, timeout: float, stop: threading.Event | None = None) -> int:
    """Popen.wait, without its sleep-and-poll (up to 50 ms late): a pidfd wakes at the exit.
    Raises TimeoutExpired at the timeout, or as soon as `stop` is set (looked at every 0.1 s)."""
    deadline = time.perf_counter() + timeout
    try:
        descriptor = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        descriptor = None
    try:
        while True:
            left = max(0.0, deadline - time.perf_counter())
            step = left if stop is None else min(left, 0.1)
            if descriptor is None:
                try:
                    return process.wait(timeout=step)
                except subprocess.TimeoutExpired:
                    pass
            elif select.select([descriptor], [], [], step)[0]:
                return process.wait()
            if (stop is not None and stop.is_set()) or time.perf_counter() >= deadline:
                raise subprocess.TimeoutExpired(process.args, timeout)
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _finish(outcome: Outcome, group: Cgroup, memory_mode: str, process_limit, process_mode: str,
            explained: dict[str, str]) -> Outcome:
    outcome.memory_mode, outcome.process_mode, outcome.explained = memory_mode, process_mode, explained
    outcome.memory_exceeded = "memory" in group.folders and memory_mode.startswith("memory cgroup") and group.oom_killed()
    outcome.peak_memory_bytes = group.peak_memory()
    peak = group.peak_processes()
    if peak is not None:
        outcome.peak_processes = peak
    outcome.process_limit = process_limit if "pids" in group.folders else None
    outcome.forks_refused = group.forks_refused()
    return outcome


def _kill(process: subprocess.Popen, group: Cgroup) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    group.kill_all()
    process.wait()
