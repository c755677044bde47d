"""The machine a figure is taken on, scratch space on a real disk, and the page cache."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent


def mount_of(path: Path) -> dict[str, str]:
    """The /proc/mounts entry holding ``path`` (longest mount point that is a prefix)."""
    target = os.path.realpath(path)
    best: dict[str, str] = {"device": "?", "mountpoint": "/", "fstype": "?"}
    best_len = -1
    with open("/proc/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            if len(parts) < 3:
                continue
            point = parts[1].replace("\\040", " ")
            if (target == point or target.startswith(point.rstrip("/") + "/")) \
                    and len(point) > best_len:
                best = {"device": parts[0], "mountpoint": point, "fstype": parts[2]}
                best_len = len(point)
    return best


def disk_info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = dict(mount_of(path))
    vfs = os.statvfs(path)
    info["size"] = vfs.f_blocks * vfs.f_frsize
    info["available"] = vfs.f_bavail * vfs.f_frsize
    try:  # `stat -f` names the file system type as the kernel's magic number sees it
        info["stat_f_type"] = subprocess.run(["stat", "-f", "-c", "%T", str(path)],
                                             capture_output=True, text=True,
                                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    dev = Path(info["device"]).name
    rotational = Path(f"/sys/class/block/{dev}/queue/rotational")
    if rotational.exists():
        info["rotational"] = rotational.read_text().strip() == "1"
    model = Path(f"/sys/class/block/{dev}/device/model")
    if model.exists():
        info["model"] = model.read_text().strip()
    return info


def machine_info(root: Path) -> dict[str, Any]:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = line.split(":", 1)[1].strip()
    except OSError:
        pass
    info: dict[str, Any] = {
        "nproc": os.cpu_count(), "MemTotal": mem, "kernel": platform.release(),
        "os": _os_name(), "python": platform.python_version(), "disk_of_root": disk_info(root),
    }
    try:
        import meridian
        info["meridian_version"] = getattr(meridian, "__version__", "?")
        info["meridian_package"] = str(Path(meridian.__file__).parent)
    except ImportError:
        info["meridian_version"] = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
        info["git"] = commit + (" (src/ modified)" if dirty else "")
        if dirty:
            diff = subprocess.run(["git", "-C", str(REPO), "diff", "HEAD", "--", "src"],
                                  capture_output=True, check=True).stdout
            info["git_src_diff_sha1"] = hashlib.sha1(diff).hexdigest()
    except (OSError, subprocess.CalledProcessError):
        pass
    package = info.get("meridian_package")
    if package and "git" in info and not Path(package).is_relative_to(REPO / "src"):
        info["git"] += f" (of {REPO}; NOT the package used, see meridian_package)"
        info.pop("git_src_diff_sha1", None)
    info["free_page_reporting"] = _balloon_reports_free_pages()
    try:
        info["fuse"] = subprocess.run(["fusermount3", "-V"], capture_output=True, text=True,
                                      check=False).stdout.strip()
    except OSError:
        pass
    return info


def _balloon_reports_free_pages() -> bool | None:
    """Whether a virtio balloon hands freed guest memory back to the host (feature bit 5,
    VIRTIO_BALLOON_F_REPORTING): first touches of memory are then slow (host page faults)."""
    found = None
    for features in Path("/sys/bus/virtio/drivers/virtio_balloon").glob("*/features"):
        bits = features.read_text().strip()
        found = len(bits) > 5 and bits[5] == "1"
    return found


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def is_mounted(path: Path) -> bool:
    """``path`` must be resolved already: realpath() would stat a possibly hung mount."""
    target = str(path)
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts if len(line.split()) > 1)


def mount_read_ahead_kb(mount: Path) -> int | None:
    """The kernel's read-ahead for a FUSE mount (its bdi, found in /proc/self/mountinfo)."""
    target = str(mount)
    try:
        with open("/proc/self/mountinfo") as info:
            device = next(line.split()[2] for line in info if line.split()[4] == target)
        return int(Path(f"/sys/class/bdi/{device}/read_ahead_kb").read_text())
    except (OSError, StopIteration, ValueError):
        return None


def can_drop_caches() -> bool:
    return os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def default_root() -> Path:
    """The repository's parent folder (its disk), unless that is a tmpfs."""
    for candidate in (REPO.parent, REPO, Path(tempfile.gettempdir())):
        fstype = mount_of(candidate)["fstype"]
        if os.access(candidate, os.W_OK) and fstype not in ("tmpfs", "ramfs"):
            return candidate
    raise SystemExit("no writable scratch location on a real disk: give --root DIR")


