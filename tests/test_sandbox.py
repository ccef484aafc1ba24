"""common.runtimes.sandbox, driven directly with small Python commands: the root holds
(pivot_root: the chroot escape finds no host), /etc, /dev and /proc are the sandbox's
own, a fork bomb and a disk filler are contained and reported, the figures count what
they say, and paths with spaces or '|' work."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import psutil
import pytest

from common.runtimes import cgroups, sandbox

needs_sandbox = pytest.mark.skipif(not sandbox.available()[0], reason="no mount/network namespaces here")
pytestmark = needs_sandbox

ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}


def box(base: Path, **hosts) -> sandbox.Layout:
    """A working folder and a /tmp, writable, as a runtime's layout has them."""
    for name in ("root", "work", "tmp"):
        (base / name).mkdir(parents=True, exist_ok=True)
    return sandbox.Layout(base / "root", [sandbox.Mount(base / "work", "/work", True), sandbox.Mount(base / "tmp", "/tmp", True)],
                          "/work", hosts=hosts)


def run(code: str, layout: sandbox.Layout, time_limit: float = 60, memory_limit_gb: float | None = None, **options):
    log = Path(layout.root).parent / "log.txt"
    outcome = sandbox.run([sys.executable, "-I", "-c", textwrap.dedent(code)], layout, log, ENVIRONMENT, time_limit,
                          memory_limit_gb, **options)
    return outcome, log.read_text()


def report(log: str) -> dict:
    return json.loads([line for line in log.splitlines() if line.startswith("{")][-1])


def survivors(marker: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in " ".join(process.info["cmdline"] or []):
            found.append(process.pid)
    return found


def own_cgroups() -> list[Path]:
    """The child cgroups the sandbox made for this test process, left in any hierarchy."""
    left = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        hierarchies = [cgroups.CGROUP_ROOT / name for name in controllers.split(",")] if controllers else [cgroups.CGROUP_ROOT]
        for parent in (hierarchy / path.lstrip("/") for hierarchy in hierarchies):
            if parent.is_dir():
                left += [child for child in parent.iterdir() if child.name.startswith(f"compete-runtime-{os.getpid()}-")]
    return left


# ---------------------------------------------------------------- the root

ESCAPE = """
    import os
    before = sorted(os.listdir("/"))
    os.makedirs("/tmp/jail", exist_ok=True)
    outside = os.open("/", os.O_RDONLY)      # a descriptor on the root it is about to leave
    os.chroot("/tmp/jail")                   # CAP_SYS_CHROOT, which Docker keeps
    os.fchdir(outside)
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    after = sorted(os.listdir("/"))
    print("climbed to", after, "same root" if after == before else "ANOTHER ROOT", flush=True)
    print("host marker seen" if os.path.exists({marker!r}) else "host marker absent", flush=True)
    try:
        os.makedirs(os.path.dirname({target!r}), exist_ok=True)
        open({target!r}, "w").write("escaped")
        print("wrote", {target!r})
    except OSError as error:
        print("could not write:", error)
"""


def test_the_chroot_escape_climbs_to_the_sandboxs_own_root_and_writes_nothing_on_the_host(tmp_path):
    marker, target = tmp_path / "host-marker", tmp_path / "outside" / "escaped.txt"
    marker.write_text("the host")
    outcome, log = run(ESCAPE.format(marker=str(marker), target=str(target)), box(tmp_path / "box"))
    assert outcome.returncode == 0, log
    assert "same root" in log and "host marker absent" in log   # the escape ran, and climbed no higher than the sandbox's /
    assert not target.exists() and not (tmp_path / "outside").exists()


def test_the_root_is_read_only_and_etc_dev_proc_are_the_sandboxs_own(tmp_path):
    host_name = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").is_file() else os.uname().nodename
    code = """
        import json, os, pwd, socket
        def writable(path):
            try:
                open(path, "a").close()
                return True
            except OSError:
                return False
        try:
            pattern = open("/proc/sys/kernel/core_pattern").read()
            open("/proc/sys/kernel/core_pattern", "w").write(pattern)   # the same value: harmless if it went through
            core_pattern = "written"
        except OSError as error:
            core_pattern = error.strerror
        print(json.dumps({
            "etc": sorted(os.listdir("/etc")), "dev": sorted(os.listdir("/dev")),
            "shadow": os.path.exists("/etc/shadow"), "hostname": open("/etc/hostname").read().strip(),
            "gethostname": socket.gethostname(), "localhost": socket.gethostbyname("localhost"),
            "server": socket.gethostbyname("inference_server"), "root_user": pwd.getpwuid(0).pw_name,
            "new_file_at_root": writable("/planted"), "new_file_in_etc": writable("/etc/planted"),
            "work": writable("/work/kept"), "tmp": writable("/tmp/kept"),
            "core_pattern": core_pattern, "sysrq": os.access("/proc/sysrq-trigger", os.W_OK),
            "processes": sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit())}))
    """
    outcome, log = run(code, box(tmp_path / "box", inference_server="10.213.7.1"))
    assert outcome.returncode == 0, log
    seen = report(log)
    assert not seen["shadow"] and not {"shadow", "gshadow", "ssh", "pip.conf", "machine-id", "hostname-"} & set(seen["etc"])
    assert set(seen["etc"]) <= {entry.split("/")[0] for entry in sandbox.ETC if "*" not in entry} | {
        "passwd", "group", "hosts", "hostname", "resolv.conf", "nsswitch.conf"} | {path.name for path in Path("/etc").glob("python3*")}
    assert seen["hostname"] == seen["gethostname"] == sandbox.HOSTNAME != host_name
    assert seen["localhost"] == "127.0.0.1" and seen["server"] == "10.213.7.1" and seen["root_user"] == "root"
    assert set(seen["dev"]) <= {"null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout", "stderr",
                                "ptmx", "pts", "shm"} | {Path(path).name for path in Path("/dev").glob("nvidia*")}
    assert not seen["new_file_at_root"] and not seen["new_file_in_etc"] and seen["work"] and seen["tmp"]
    assert seen["core_pattern"] == "Read-only file system" and not seen["sysrq"]
    assert seen["processes"] == [1]


def test_a_sandbox_joins_the_network_namespace_it_is_given_and_names_the_server(tmp_path):
    """A rerun's notebook side joins one end of the private link (runtimes/network.py)
    and reaches the other end by the host name the layout gives it."""
    from common.runtimes import network

    link = network.open_link()
    try:
        listen = ("import socket\nserver = socket.socket()\nserver.bind(('0.0.0.0', 50051))\nserver.listen(1)\n"
                  "print('listening', flush=True)\nconnection, _ = server.accept()\nconnection.sendall(b'answer')\n")
        server = subprocess.Popen(["nsenter", f"--net={link.server_namespace}", sys.executable, "-c", listen],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"
        code = "import socket\nprint(socket.create_connection(('inference_server', 50051), timeout=10).recv(6).decode())\n"
        outcome, log = run(code, box(tmp_path / "box", inference_server=link.server_address), network=link.client_namespace)
        server.wait(timeout=30)
    finally:
        network.close_link(link)
    assert outcome.returncode == 0 and log.strip().endswith("answer"), log


# ---------------------------------------------------------------- processes

def test_a_fork_bomb_is_held_at_the_process_limit_and_nothing_of_it_survives(tmp_path):
    marker = f"bomb-{uuid.uuid4().hex}"
    code = f"""
        import os, time
        # {marker}
        forked = 0
        while True:
            try:
                pid = os.fork()
            except OSError:                    # the pids cgroup refuses
                break
            if pid == 0:
                os.setsid()                    # trying to get away from the session
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.05)
            forked += 1
        print("forked", forked, flush=True)
        time.sleep(600)
    """
    outcome, log = run(code, box(tmp_path / "box"), time_limit=4, process_limit=48)
    assert outcome.timed_out and "forked" in log
    assert outcome.peak_processes == 48 and outcome.forks_refused > 0 and outcome.process_limit == 48
    assert survivors(marker) == [] and own_cgroups() == []
    assert outcome.peak_rss_bytes < 1024 * sandbox.MB     # shared pages are not counted once per process
    assert outcome.cpu_seconds > 0.5                     # the forks' CPU, counted by the cgroup
    assert outcome.resources()["peak_processes"] == 48 and "pids cgroup" in outcome.resources()["process_limit"]


def test_what_the_first_process_leaves_behind_dies_with_it(tmp_path):
    marker = f"orphan-{uuid.uuid4().hex}"
    code = f"""
        import os, signal, time
        # {marker}
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                time.sleep(600)
            os._exit(0)
        time.sleep(0.5)
        print("leaving", flush=True)
    """
    outcome, log = run(code, box(tmp_path / "box"), time_limit=60)
    assert outcome.returncode == 0 and "leaving" in log and outcome.wall_seconds < 30
    assert survivors(marker) == []


# ---------------------------------------------------------------- disk

FILL = """
    with open("/tmp/big", "wb") as handle:
        for _ in range(100):
            handle.write(b"x" * 2 ** 20)
    print("wrote 100 MB")
"""


def test_a_bundle_filling_tmp_stops_at_the_disk_limit_and_says_where(tmp_path):
    unbounded, log = run(FILL, box(tmp_path / "free"), disk_limit_gb=None)
    assert unbounded.returncode == 0 and "wrote 100 MB" in log    # what a run without the bound lets through
    outcome, log = run(FILL, box(tmp_path / "box"), disk_limit_gb=0.05)
    assert outcome.returncode == 1 and "No space left on device" in log
    assert outcome.disk_full == ["/tmp"] and outcome.disk_exceeded and not outcome.memory_exceeded
    assert 30 * sandbox.MB < outcome.disk_written["/tmp"] <= 0.05 * sandbox.GB and outcome.disk_written["/work"] < sandbox.MB
    assert outcome.limit_reached().startswith("disk limit of 0.05 GB reached in /tmp (")
    assert "ext4 image" in outcome.disk_mode or "tmpfs" in outcome.disk_mode
    assert outcome.resources()["disk_written_mb"]["/tmp"] > 30


def test_on_tmpfs_the_disk_and_memory_limits_give_distinct_reasons(tmp_path, monkeypatch):
    """Where the writable folders are tmpfs, their files are memory too: filling the
    folder's bound is a disk failure, filling the memory limit first a memory failure
    that says how much of it were files."""
    monkeypatch.setattr(sandbox, "disk_backing", lambda: ("tmpfs", "no loop device (the test)"))
    disk, _ = run(FILL, box(tmp_path / "disk"), memory_limit_gb=1, disk_limit_gb=0.05)
    assert disk.disk_full == ["/tmp"] and not disk.memory_exceeded and "tmpfs" in disk.disk_mode
    assert disk.limit_reached().startswith("disk limit of 0.05 GB reached in /tmp")
    fill = FILL.replace("range(100)", "range(400)")
    memory, _ = run(fill, box(tmp_path / "memory"), memory_limit_gb=0.25, disk_limit_gb=1)
    assert memory.memory_exceeded and not memory.disk_full
    assert memory.peak_shared_bytes > 100 * sandbox.MB and "MB of it were files in tmpfs" in memory.memory_detail()


def test_where_no_bound_can_be_built_the_run_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "disk_backing", lambda: (None, "no overlay here (the test)"))
    outcome, log = run(FILL, box(tmp_path / "box"), disk_limit_gb=0.05)
    assert outcome.returncode == 0 and "wrote 100 MB" in log
    assert (tmp_path / "box" / "tmp" / "big").stat().st_size == 100 * sandbox.MB
    assert outcome.disk_mode == "none (the writable folders cannot be bounded here: no overlay here (the test))"
    assert outcome.resources()["disk_limit"].startswith("none (")


def test_writes_come_back_to_the_host_folder_as_the_command_left_them(tmp_path):
    layout = box(tmp_path / "box")
    work = tmp_path / "box" / "work"
    (work / "kept.txt").write_text("old")
    (work / "folder").mkdir()
    (work / "folder" / "gone.txt").write_text("delete me")
    (work / "replaced").mkdir()
    (work / "replaced" / "inner.txt").write_text("was a folder")
    code = """
        import os, shutil
        open("kept.txt", "w").write("new")
        os.remove("folder/gone.txt")
        os.makedirs("made/deep")
        open("made/deep/file.txt", "w").write("made")
        shutil.rmtree("replaced")
        open("replaced", "w").write("now a file")
        open("setuid", "w").write("#!/bin/sh")
        os.chmod("setuid", 0o4755)
        os.symlink("/etc/passwd", "link")                       # the host would read its own /etc/passwd
        os.symlink("made/deep/file.txt", "inner_link")
        with open("sparse", "wb") as handle:                  # 64 GB apparent, a few bytes of data
            handle.truncate(64 * 2 ** 30)
            handle.write(b"start")
    """
    outcome, log = run(code, layout)
    log = (tmp_path / "box" / "log.txt").read_text()          # with what the sandbox added after the run
    assert outcome.returncode == 0, log
    assert (work / "kept.txt").read_text() == "new" and not (work / "folder" / "gone.txt").exists()
    assert (work / "folder").is_dir() and (work / "made" / "deep" / "file.txt").read_text() == "made"
    assert (work / "replaced").read_text() == "now a file"
    assert (work / "setuid").stat().st_mode & 0o7777 == 0o755       # no set-id bit lands on the host
    assert not (work / "link").exists() and not (work / "link").is_symlink()
    assert "not copied back out of /work: link (a link to /etc/passwd)" in log
    assert (work / "inner_link").is_symlink() and (work / "inner_link").read_text() == "made"
    assert (work / "sparse").stat().st_size == 64 * sandbox.GB and (work / "sparse").stat().st_blocks * 512 < sandbox.MB
    assert outcome.disk_written["/work"] > 0


# ---------------------------------------------------------------- figures

def test_cpu_of_processes_reaped_inside_and_memory_shared_between_processes_are_counted_right(tmp_path):
    code = """
        import os, time
        child = os.fork()
        if child == 0:
            if os.fork() == 0:                 # an orphan: reaped inside the sandbox, never by the caller
                end = time.process_time() + 1.0
                while time.process_time() < end:
                    pass
                os._exit(0)
            os._exit(0)
        os.waitpid(child, 0)
        block = bytearray(200 * 2 ** 20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        for _ in range(8):                     # eight more processes sharing those pages
            if os.fork() == 0:
                time.sleep(2)
                os._exit(0)
        time.sleep(2.5)
    """
    outcome, log = run(code, box(tmp_path / "box"))
    assert outcome.returncode == 0, log
    assert outcome.cpu_seconds >= 0.9                            # the orphan's second
    assert 180 * sandbox.MB < outcome.peak_rss_bytes < 500 * sandbox.MB   # once, not nine times
    assert outcome.peak_memory_bytes >= outcome.peak_rss_bytes
    assert outcome.peak_processes >= 10
    explained = outcome.resources()["explained"]
    assert explained["cpu_seconds"].startswith("cgroup: every process of the run")
    assert explained["peak_memory_mb"].startswith("cgroup: resident + page cache + tmpfs")
    assert explained["peak_rss_mb"].startswith("anonymous memory, polled")


# ---------------------------------------------------------------- paths

def test_mounts_and_the_root_under_a_path_with_spaces_bars_commas_and_colons(tmp_path):
    base = tmp_path / "a b|c,d:e"
    layout = box(base)
    data = base / "data folder|x"
    data.mkdir()
    (data / "input.txt").write_text("given")
    layout.add(data, "/data")
    outcome, log = run("open('/work/out.txt', 'w').write(open('/data/input.txt').read() + ' back')\n", layout)
    assert outcome.returncode == 0, log
    assert (base / "work" / "out.txt").read_text() == "given back"
    assert not list((base / "root").iterdir())              # the sandbox leaves its root folder empty


def test_a_python_environment_under_a_path_with_spaces_runs_in_the_sandbox(tmp_path):
    """A checkout's venv under a path with a space and a '|' (as a CI clone may be):
    its folders are mounted at their own paths and the interpreter starts inside."""
    import site
    venv = tmp_path / "my clone|x" / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = next((venv / "lib").glob("python3*/site-packages"))
    (packages / "host.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from common.runtimes import sandbox
        base = Path({str(tmp_path / 'box')!r})
        for name in ("root", "work"):
            (base / name).mkdir(parents=True)
        layout = sandbox.Layout(base / "root", [sandbox.Mount(base / "work", "/work", True)], "/work")
        code = "import sys, psutil; open('/work/prefix.txt', 'w').write(sys.prefix)"
        outcome = sandbox.run([sys.executable, "-I", "-c", code], layout, base / "log.txt", {ENVIRONMENT!r}, 60, None)
        print(outcome.returncode, (base / "log.txt").read_text())
    """)
    done = subprocess.run([str(venv / "bin" / "python"), "-c", script], check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(sandbox.__file__).resolve().parents[2])})
    assert done.returncode == 0 and done.stdout.startswith("0 "), done.stdout + done.stderr
    assert (tmp_path / "box" / "work" / "prefix.txt").read_text() == str(venv)
