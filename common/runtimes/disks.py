"""The disk a sandboxed run may fill: each writable folder's writes go to an overlay
upper layer on a sparse ext4 image on a loop device (real disk, as on the platform; "No
space left on device" at the bound), or a tmpfs of that size where no loop device or
mkfs.ext4 is at hand; after the run the upper layer is applied to the host folder."""
from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

MB = 2 ** 20


@functools.cache
def tool(name: str) -> str | None:
    """A system tool by absolute path: the caller's PATH may lack the sbin folders."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"]))


@functools.cache
def disk_backing() -> tuple[str | None, str]:
    """How a writable folder is bounded here: "ext4" (a sparse image on a loop device),
    "tmpfs" (in memory), or None (not bounded); and, when not "ext4", why. Probed once
    per process by building what a run builds, on a few MB."""
    unshare, mkfs = tool("unshare"), tool("mkfs.ext4")
    steps = {"ext4": "mount -o loop,noinit_itable,nosuid,nodev image disk",
             "tmpfs": "mount -t tmpfs -o size=8m,nosuid,nodev tmpfs disk"}
    why = []
    for kind, mount in steps.items():
        if kind == "ext4" and mkfs is None:
            why.append("mkfs.ext4 is not installed")
            continue
        with tempfile.TemporaryDirectory(prefix="compete-disk-probe-") as folder:
            try:
                if kind == "ext4":
                    with open(Path(folder) / "image", "wb") as image:
                        image.truncate(16 * MB)
                    subprocess.run([mkfs, *MKFS_OPTIONS, "image"], cwd=folder, check=True, capture_output=True, timeout=30)
                script = (f"set -e; mkdir disk lower merged; {mount}; mkdir disk/upper disk/work; mount -t overlay -o "
                          f"lowerdir=lower,upperdir=disk/upper,workdir=disk/work,redirect_dir=off,metacopy=off overlay merged; "
                          f"echo x > merged/probe")
                subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", script], cwd=folder, check=True,
                               capture_output=True, text=True, timeout=30)
                return kind, "; ".join(why)
            except (OSError, subprocess.SubprocessError) as error:
                detail = getattr(error, "stderr", None) or str(error)
                detail = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
                lines = detail.strip().splitlines()
                why.append(f"{kind}: {lines[-1] if lines else 'failed'}")
    return None, "; ".join(why)


# no journal (a scratch filesystem, thrown away), no blocks reserved for root, and
# inode tables left for the kernel (the image is sparse: they are zeros already)
MKFS_OPTIONS = ("-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,lazy_journal_init=1")


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    """`count` sparse ext4 images of `size` bytes, made side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    images = [folder / f"disk{index + 1}.img" for index in range(count)]
    for image in images:
        with open(image, "wb") as handle:
            handle.truncate(size)
    makers = [subprocess.Popen([tool("mkfs.ext4"), *MKFS_OPTIONS, str(image)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE) for image in images]
    for maker, image in zip(makers, images):
        _, error = maker.communicate(timeout=120)
        if maker.returncode:
            raise OSError(f"mkfs.ext4 {image}: {error.decode(errors='replace').strip()}")
    return images


def copy_back(upper: Path, host: Path) -> list[str]:
    """Apply an overlay's upper layer (what the command wrote) to the host folder it was
    shown over: new and changed files and folders copied (holes kept: a sparse file
    takes on the host only the blocks it took in the bound), deleted ones (whiteouts)
    removed, a folder replaced whole (opaque) emptied first. Links on the host side are
    never followed; set-id bits are dropped; a link is copied only when it is relative
    and stays inside the folder (the host would resolve any other against its own
    files); devices, FIFOs and sockets are not copied. Returns what was left out.
    Hand-written: no library applies overlayfs whiteouts."""
    left_out: list[str] = []
    finished: list[tuple[Path, os.stat_result]] = []   # folders whose times are set once their content is in
    pending = [(upper, host)]
    while pending:
        folder, into = pending.pop()
        for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
            source, target = Path(entry.path), into / entry.name
            info = entry.stat(follow_symlinks=False)
            inside = target.relative_to(host).as_posix()
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:   # a whiteout: deleted inside
                _remove(target)
            elif stat.S_ISDIR(info.st_mode):
                present = _lstat(target)
                if present is not None and (not stat.S_ISDIR(present.st_mode) or _opaque(source)):
                    _remove(target)
                    present = None
                if present is None:
                    target.mkdir()
                os.chmod(target, info.st_mode & 0o1777)
                pending.append((source, target))
                finished.append((target, info))
            elif stat.S_ISLNK(info.st_mode):
                pointed = os.readlink(source)
                resolved = os.path.normpath(os.path.join(os.path.dirname(inside), pointed))
                _remove(target)
                if os.path.isabs(pointed) or resolved == ".." or resolved.startswith("../"):
                    left_out.append(f"{inside} (a link to {pointed})")
                else:
                    os.symlink(pointed, target)
            elif stat.S_ISREG(info.st_mode):
                _remove(target)
                _copy_sparse(source, target)
                os.chmod(target, info.st_mode & 0o777)
                os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
            else:
                left_out.append(f"{inside} (not a file, folder or link)")
    for target, info in reversed(finished):
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    return left_out


def _copy_sparse(source: Path, target: Path) -> None:
    """Copy the data of `source` into a new `target`, holes left as holes."""
    with open(source, "rb") as reader, open(target, "xb") as writer:
        size, offset = os.fstat(reader.fileno()).st_size, 0
        while offset < size:
            try:
                start = os.lseek(reader.fileno(), offset, os.SEEK_DATA)
            except OSError:   # ENXIO: nothing but a hole up to the end
                break
            end = os.lseek(reader.fileno(), start, os.SEEK_HOLE)
            reader.seek(start)
            writer.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = reader.read(min(remaining, 4 * MB))
                if not chunk:
                    break
                writer.write(chunk)
                remaining -= len(chunk)
            offset = end
        writer.truncate(size)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove(path: Path) -> None:
    info = _lstat(path)
    if info is None:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def _opaque(folder: Path) -> bool:
    try:
        return os.getxattr(folder, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False
