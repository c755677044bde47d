"""Sequential write and read throughput of one large file: a Meridian mount against a plain
local directory on the same disk, all in one run.

Run it as ``make bench`` or ``.venv/bin/python bench/seqio.py [--size 1GiB] [--runs 5]``.

What it does:
  * makes a scratch folder (default: a temp folder next to the repository, on its disk; never a
    tmpfs), creates a site there with a local-directory bucket (file://), runs
    ``meridian site run`` as a subprocess and waits for the mount;
  * for each run, alternating which contender goes first, measures
      - sequential write of SIZE in 1 MiB writes, timed from open() to close() returning.
        Meridian commits durably on close; the local directory is timed write + fsync + close
        so both are "durable at the site". The local directory without fsync is a second
        baseline row;
      - sequential read of the same file in 1 MiB reads, "warm" (right after writing, page
        cache as it is) and "cold" (after ``sync`` and ``echo 3 > /proc/sys/vm/drop_caches``;
        for the mount the kernel's page cache is dropped, the content is still on the site's
        local volume, so "cold" is a read from the site's disk, not from the bucket);
  * between timed steps: ``sync`` and waiting until the site's upload queue is empty
    (``meridian status --json``), so neither write-back of the previous step nor the site's
    background upload to the bucket steals the disk from the next one;
  * the first run is a discarded warm-up; medians are over the other runs;
  * prints a table and writes OUT.json and OUT.md (default bench/results/seqio.*);
  * always stops the site (SIGINT, then kill and ``fusermount3 -u -z``) and removes the scratch
    folder, on error and on Ctrl-C too.

Every 1 MiB write carries a unique 16-byte stamp (which file, which offset) at its start, so no
content is ever deduplicated (Meridian stores content by hash); the rest of each write comes
from one 64 MiB random buffer generated once.

Stdlib only, plus the meridian package (run as ``python -m meridian.cli.main``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import mmap
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MERIDIAN = [sys.executable, "-m", "meridian.cli.main"]
CHUNK = 1 << 20
BUFFER = 64 << 20
MB = 1e6  # MB/s are 10^6 bytes per second
BUSY_FOREIGN_CPU = 0.25
"""A sample during which other processes used more than this many CPUs is marked busy (*)."""
SITE = "bench"

# figure key -> (label, local contender, meridian contender)
FIGURES: list[tuple[str, str, str, str]] = [
    ("write", "write, durable (local: +fsync)", "local-fsync", "meridian"),
    ("write-nofsync", "write, local WITHOUT fsync", "local-nofsync", "meridian"),
    ("read-warm", "read, warm", "local", "meridian"),
    ("read-cold", "read, cold (drop_caches)", "local", "meridian"),
]
LEGEND = [
    "write, durable: open + 1 MiB writes + close; the local directory also fsyncs before close "
    "(Meridian commits durably on close), so both are durable at the site",
    "write, local WITHOUT fsync: the local directory's write + close alone (page cache only), "
    "against the same Meridian samples",
    "read, warm: right after writing, page cache as it is",
    "read, cold: after sync + echo 3 > /proc/sys/vm/drop_caches; for the mount the kernel's page "
    "cache is dropped but the content is still on the site's local volume (a read from the "
    "site's disk, not a fetch from the bucket)",
    f"*: other processes used more than {BUSY_FOREIGN_CPU} CPUs during that sample (a shared "
    "machine: someone's tests, say); it is kept in the median, so rerun on a quiet machine",
]


# -- small helpers --------------------------------------------------------------------------
def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)(B?)\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1GiB, 512MiB, 1048576)")
    number, unit, binary, b = match.groups()
    unit = unit.upper()
    if not unit:
        factor = 1
    else:
        power = "KMGT".index(unit) + 1
        decimal = bool(b) and not binary  # "MB" is 10^6; "MiB" and a bare "M" are 2^20
        factor = (1000 if decimal else 1024) ** power
    size = int(float(number) * factor)
    if size <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return size


def parse_size_or_zero(text: str) -> int:
    return 0 if text.strip() in ("0", "0B") else parse_size(text)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return f"{n} B"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def _mem_available() -> int:
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


# -- the site ---------------------------------------------------------------------------------
def meridian_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*MERIDIAN, *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"meridian {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Site:
    scratch: Path
    data: Path = field(init=False)
    mount: Path = field(init=False)
    bucket: Path = field(init=False)
    log_path: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        # resolved once, before mounting: later realpath() calls would stat the mount
        self.scratch = Path(os.path.realpath(self.scratch))
        self.data = self.scratch / "site"
        self.mount = self.scratch / "mnt"
        self.bucket = self.scratch / "bucket"
        self.log_path = self.scratch / "site.log"

    @property
    def config(self) -> Path:
        return self.data / "meridian.toml"

    def init(self) -> None:
        self.bucket.mkdir()
        self.mount.mkdir()
        meridian_cli("init", "--site", SITE, "--data", str(self.data),
                     "--bucket", f"file://{self.bucket}")

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as logf:
            # its own session: a Ctrl-C at the terminal reaches us, and we stop the site in order
            self.process = subprocess.Popen(
                [*MERIDIAN, "site", "run", "--config", str(self.config),
                 "--mount", str(self.mount)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        marker = self.mount / ".meridian" / "site.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"meridian site run exited {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                if json.loads(marker.read_text())["site"] == SITE:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the site did not mount within {timeout}s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"meridian site run is not running (exit {code}):\n"
                               f"{self.log_tail()}")

    def status(self) -> dict[str, Any]:
        out = subprocess.run([*MERIDIAN, "status", "--json", "--config", str(self.config)],
                             capture_output=True, text=True, timeout=60)
        try:
            status: dict[str, Any] = json.loads(out.stdout)
            return status
        except ValueError as exc:
            raise RuntimeError(f"meridian status --json exited {out.returncode}, unreadable "
                               f"output:\n{out.stdout}\n{out.stderr}") from exc

    def wait_uploads_idle(self, timeout: float = 900.0) -> float:
        """Wait until the upload queue is empty; return how long that took (s)."""
        started = time.monotonic()
        while True:
            self.check_alive()
            uploads = self.status()["uploads"]
            if uploads["queued"] == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"upload queue not idle after {timeout:.0f}s: {uploads}")
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> str:
        what = "not started"
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    code = self.process.wait(timeout=timeout)
                    what = f"stopped by SIGINT (exit {code})"
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
                    what = f"did not stop within {timeout:.0f}s of SIGINT: killed"
            else:
                what = f"had already exited ({self.process.returncode})"
            self.process = None
        if is_mounted(self.mount):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mount)], capture_output=True,
                           check=False)
            what += "; mount force-detached (fusermount3 -u -z)"
        return what

    def kill_now(self) -> None:
        """SIGKILL the site and detach its mount (from the watchdog thread)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
        subprocess.run(["fusermount3", "-u", "-z", str(self.mount)], capture_output=True,
                       check=False)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def log_problems(self) -> list[str]:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines
                if re.search(r"\b(ERROR|CRITICAL|WARNING|Traceback)\b", line)][:50]


def prime_memory(nbytes: int) -> float:
    """Touch ``nbytes`` of anonymous memory and free it again; return the seconds it took.

    On a VM whose balloon reports free pages to the host (as here), memory the guest has not
    touched lately costs a host page fault per page on first use: a page-cache write into
    "new" memory ran at ~0.5 GB/s, into just-freed memory at ~4.8 GB/s. Whoever runs right
    after a big free would win. Priming before every timed step gives both contenders the same
    start: freshly freed memory (the kernel reuses it before reporting it to the host).
    """
    if nbytes <= 0:
        return 0.0
    started = time.perf_counter()
    area = mmap.mmap(-1, nbytes)
    zeros = bytes(CHUNK)
    for off in range(0, nbytes - CHUNK + 1, CHUNK):
        area[off:off + CHUNK] = zeros
    area.close()
    return time.perf_counter() - started


class Watchdog:
    """Kills the site if one step takes longer than its limit: an I/O call blocked on a hung
    FUSE daemon then fails (ENOTCONN) instead of hanging the benchmark for ever."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._what = ""
        self.fired: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float, what: str) -> None:
        with self._lock:
            self._deadline = time.monotonic() + seconds
            self._what = what

    def disarm(self) -> None:
        with self._lock:
            self._deadline = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                late = self._deadline is not None and time.monotonic() > self._deadline
                what = self._what
            if late:
                self.fired = what
                log(f"WATCHDOG: {what} did not finish in time: killing the site so blocked "
                    "I/O fails instead of hanging")
                self.site.kill_now()
                with self._lock:
                    self._deadline = None


# -- the timed operations ---------------------------------------------------------------------
def write_file(path: Path, size: int, buf: bytearray, tag: int, fsync: bool) -> float:
    """Write ``size`` bytes in 1 MiB writes, each stamped (tag, offset); seconds to close()."""
    view = memoryview(buf)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        offset = 0
        while offset < size:
            n = min(CHUNK, size - offset)
            at = offset % BUFFER
            if n >= 16:
                struct.pack_into("<QQ", buf, at, tag, offset)
            chunk = view[at:at + n]
            while chunk:
                done = os.write(fd, chunk)
                if done <= 0:
                    raise OSError(f"write returned {done} at offset {offset}")
                chunk = chunk[done:]
            offset += n
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    return elapsed


def read_file(path: Path, size: int) -> float:
    """Read the whole file in 1 MiB reads; seconds from open to close; checks the byte count."""
    chunk = bytearray(CHUNK)
    view = memoryview(chunk)
    total = 0
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            total += n
    elapsed = time.perf_counter() - started
    if total != size:
        raise RuntimeError(f"read {total} bytes from {path}, expected {size}")
    return elapsed


def verify_file(path: Path, size: int, buf: bytearray, tag: int) -> None:
    """Compare the file's bytes with what ``write_file`` wrote (untimed)."""
    expect = bytearray(buf)
    got = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f:
        offset = 0
        while offset < size:
            n = min(CHUNK, size - offset)
            at = offset % BUFFER
            if n >= 16:
                struct.pack_into("<QQ", expect, at, tag, offset)
            view = memoryview(got)[:n]
            filled = 0
            while filled < n:
                r = f.readinto(view[filled:])
                if not r:
                    raise RuntimeError(f"{path}: short read at {offset + filled}")
                filled += r
            if view != memoryview(expect)[at:at + n]:
                raise RuntimeError(f"{path}: wrong bytes in [{offset}, {offset + n})")
            offset += n
        if f.read(1):
            raise RuntimeError(f"{path}: longer than {size} bytes")


# -- the benchmark ------------------------------------------------------------------------------
@dataclass
class Samples:
    # figure -> contender -> list of (run, seconds, CPUs used by other processes meanwhile)
    data: dict[str, dict[str, list[tuple[int, float, float]]]] = field(default_factory=dict)
    last_foreign: float = 0.0

    def add(self, figure: str, contender: str, run: int, seconds: float) -> None:
        self.data.setdefault(figure, {}).setdefault(contender, []).append(
            (run, seconds, self.last_foreign))


class CpuMeter:
    """CPU time the rest of the machine used during a step: all busy time in /proc/stat less
    this process's and the site's. Another engineer's pytest shows up here; kernel threads
    (write-back, interrupts) too, a little."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.tick = os.sysconf("SC_CLK_TCK")
        self._start: tuple[float, float, float] | None = None

    def _read(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = sum(fields[:3]) + sum(fields[5:8])
        ours = 0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
                ours += int(parts[11]) + int(parts[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        return busy / self.tick, ours / self.tick, time.monotonic()

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> float:
        """Other processes' CPU use since start(), in CPUs (1.0 = one CPU busy throughout)."""
        assert self._start is not None
        busy, ours, now = self._read()
        busy0, ours0, then = self._start
        wall = max(now - then, 1e-6)
        slack = 2 / self.tick  # /proc/stat counts in ticks: forgive two of them
        return max(0.0, (busy - busy0) - (ours - ours0) - slack) / wall


def run_benchmark(args: argparse.Namespace, site: Site, local: Path, samples: Samples,
                  notes: dict[str, Any], watchdog: Watchdog) -> None:
    size, runs = args.size, args.runs
    log(f"generating a {human(BUFFER)} random buffer")
    buf = bytearray(os.urandom(BUFFER))
    cold = can_drop_caches()
    if not cold:
        log("cannot write /proc/sys/vm/drop_caches (not root?): the cold-read figure is skipped")
        notes["cold_skipped"] = "no permission to write /proc/sys/vm/drop_caches"
    paths = {"meridian": site.mount / "seqio.bin", "local": local / "seqio.bin",
             "local-nofsync": local / "seqio-nofsync.bin"}
    upload_waits: list[float] = []
    prime_seconds: list[float] = []

    def timed(what: str, fn: Any, *fn_args: Any, **fn_kwargs: Any) -> float:
        """Prime memory (untimed), then run one timed step under the watchdog."""
        site.check_alive()
        if args.prime:
            prime_seconds.append(prime_memory(args.prime))
        meter = CpuMeter([os.getpid()] + ([site.process.pid] if site.process else []))
        watchdog.arm(args.step_timeout, what)
        try:
            meter.start()
            seconds = float(fn(*fn_args, **fn_kwargs))
            samples.last_foreign = meter.stop()
            return seconds
        finally:
            watchdog.disarm()

    def settle(wait_uploads: bool = False) -> float | None:
        watchdog.arm(args.step_timeout, "sync / waiting for the upload queue")
        try:
            os.sync()
            site.check_alive()
            return site.wait_uploads_idle(timeout=args.step_timeout) if wait_uploads else None
        finally:
            watchdog.disarm()

    for run in range(runs):
        label = "warm-up" if run == 0 else f"{run}/{runs - 1}"
        flip = run % 2 == 1  # alternate who goes first
        log(f"run {run + 1}/{runs} ({label}), {'local' if flip else 'Meridian'} first")
        tag_base = (run + 1) << 8

        def say(figure: str, who: str, seconds: float) -> None:
            busy = (f"  * other processes used {samples.last_foreign:.2f} CPUs meanwhile"
                    if samples.last_foreign > BUSY_FOREIGN_CPU else "")
            log(f"  {figure:<13} {who:<14} {size / seconds / MB:9.1f} MB/s  ({seconds:.3f} s)"
                + busy)

        # writes: Meridian, local+fsync, local without fsync (reversed on odd runs)
        order = ["meridian", "local-fsync", "local-nofsync"]
        for who in (reversed(order) if flip else order):
            if who == "meridian":
                seconds = timed("write meridian", write_file, paths["meridian"], size, buf,
                                tag_base | 1, fsync=False)
                samples.add("write", "meridian", run, seconds)
                samples.add("write-nofsync", "meridian", run, seconds)
            elif who == "local-fsync":
                seconds = timed("write local", write_file, paths["local"], size, buf,
                                tag_base | 2, fsync=True)
                samples.add("write", "local-fsync", run, seconds)
            else:
                seconds = timed("write local (no fsync)", write_file, paths["local-nofsync"],
                                size, buf, tag_base | 3, fsync=False)
                samples.add("write-nofsync", "local-nofsync", run, seconds)
            say("write", who, seconds)
            if who == "local-nofsync":
                os.sync()  # untimed: its write-back must not land in the next step
                paths["local-nofsync"].unlink()
            waited = settle(wait_uploads=who == "meridian")
            if waited is not None:
                upload_waits.append(waited)
        for who in ("meridian", "local"):
            st = os.stat(paths[who])
            if st.st_size != size:
                raise RuntimeError(f"{paths[who]} is {st.st_size} bytes after writing, "
                                   f"expected {size}")

        pair = ["local", "meridian"] if flip else ["meridian", "local"]
        for who in pair:
            seconds = timed(f"warm read {who}", read_file, paths[who], size)
            samples.add("read-warm", who, run, seconds)
            say("read-warm", who, seconds)
        if cold:
            for who in pair:
                drop_caches()
                seconds = timed(f"cold read {who}", read_file, paths[who], size)
                samples.add("read-cold", who, run, seconds)
                say("read-cold", who, seconds)
        if run == 0:
            log("  verifying the Meridian file's bytes (untimed)")
            watchdog.arm(args.step_timeout, "verifying")
            verify_file(paths["meridian"], size, buf, tag_base | 1)
            watchdog.disarm()

        for who in ("meridian", "local"):
            paths[who].unlink()
        settle(wait_uploads=True)
    notes["upload_queue_idle_after_meridian_write_s"] = [round(w, 2) for w in upload_waits]
    if prime_seconds:
        notes["prime_seconds_median"] = round(statistics.median(prime_seconds), 2)


def summarize(samples: Samples, size: int) -> list[dict[str, Any]]:
    rows = []
    for key, label, local_name, meridian_name in FIGURES:
        if key not in samples.data:
            continue
        row: dict[str, Any] = {"figure": key, "label": label,
                               "local_contender": local_name, "meridian_contender": meridian_name}
        for side, who in (("local", local_name), ("meridian", meridian_name)):
            values = samples.data[key].get(who, [])
            all_mbs = [{"run": r, "seconds": round(s, 4), "MB_s": round(size / s / MB, 1),
                        "warmup": r == 0, "other_processes_cpus": round(f, 2),
                        "busy": f > BUSY_FOREIGN_CPU} for r, s, f in values]
            kept = [v["MB_s"] for v in all_mbs if not v["warmup"]]
            row[side] = {"samples": all_mbs,
                         "median_MB_s": round(statistics.median(kept), 1) if kept else None}
        lm, mm = row["local"]["median_MB_s"], row["meridian"]["median_MB_s"]
        row["ratio_meridian_over_local"] = round(mm / lm, 3) if lm and mm else None
        rows.append(row)
    return rows


def table_lines(rows: list[dict[str, Any]], markdown: bool) -> list[str]:
    header = ["figure", "local MB/s (median)", "Meridian MB/s (median)", "Meridian/local",
              "local runs (warm-up first, in brackets)", "Meridian runs (warm-up first)"]

    def runs(side: dict[str, Any]) -> str:
        parts = [(f"[{v['MB_s']:.0f}]" if v["warmup"] else f"{v['MB_s']:.0f}")
                 + ("*" if v.get("busy") else "") for v in side["samples"]]
        return " ".join(parts)

    body = []
    for row in rows:
        ratio = row["ratio_meridian_over_local"]
        body.append([row["label"], f"{row['local']['median_MB_s']:.0f}",
                     f"{row['meridian']['median_MB_s']:.0f}",
                     f"{ratio:.2f}" if ratio is not None else "-",
                     runs(row["local"]), runs(row["meridian"])])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return lines
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in body]
    return out


def reproduce_command(argv: list[str]) -> str:
    exe = Path(sys.executable)
    try:
        exe_s = str(exe.absolute().relative_to(REPO))
    except ValueError:
        exe_s = str(exe)
    script = Path(__file__).resolve()
    try:
        script_s = str(script.relative_to(REPO))
    except ValueError:
        script_s = str(script)
    env = [f"PYTHONPATH={os.environ['PYTHONPATH']}"] if os.environ.get("PYTHONPATH") else []
    return shlex.join([*env, exe_s, script_s, *argv]) + f"   # in {REPO}"


def write_results(out: Path, result: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_name(out.name + ".json")
    md_path = out.with_name(out.name + ".md")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    disk = m["disk_of_root"]
    notes = result["notes"]
    lines = [
        "# Sequential I/O: Meridian mount vs. local directory",
        "",
        f"{result['date']} — size {human(result['size'])} in 1 MiB writes/reads, "
        f"{result['runs']} runs (first discarded as warm-up, median of {result['runs'] - 1}); "
        "MB = 10^6 bytes.",
        "",
        *table_lines(rows, markdown=True),
        "",
        "Reproduce (from the repository root):",
        "",
        "```",
        result["command"].split("   # in ")[0],
        "```",
        "",
        f"Machine: {m['nproc']} CPUs, MemTotal {m['MemTotal']}, kernel {m['kernel']}, "
        f"{m.get('os', '')}, Python {m['python']}, meridian {m.get('meridian_version')} "
        f"(git {m.get('git', '?')}; package {m.get('meridian_package')}), {m.get('fuse', '')}.",
        f"Scratch disk: {disk['device']} ({disk['fstype']}, mounted at {disk['mountpoint']}, "
        f"{human(disk['size'])}); the site's volume, its file:// bucket and the local directory "
        "are all on it.",
        "",
        "Notes:",
        "",
        "- Write is timed from open() to close() returning. Meridian commits the file durably "
        "on close (hash, fsync, rename into its volume); the local directory is timed "
        "write + fsync + close so both are durable at the site. The 'WITHOUT fsync' row is the "
        "local directory's write + close alone (page cache only), against the same Meridian "
        "samples.",
        "- Warm read: right after writing, page cache as it is. Cold read: after `sync` and "
        "`echo 3 > /proc/sys/vm/drop_caches`; for the mount that drops the kernel's page cache, "
        "but the content is still on the site's local volume: it is a read from the site's "
        "disk, not a fetch from the bucket. The disk may itself be cached by the host.",
        "- Between timed steps: `sync`, and after a Meridian write, waiting until "
        "`meridian status --json` shows uploads.queued == 0, so neither write-back nor the "
        "background upload to the bucket overlaps the next measurement. The order of the "
        "contenders alternates from run to run.",
        (f"- Before every timed step, {human(result['prime_bytes_before_each_step'])} of memory "
         "is touched and freed (untimed)." if result['prime_bytes_before_each_step'] else
         "- NO memory priming (`--prime 0`): expect the order effect described here.") +
        " This VM's balloon hands free memory back to the host "
        f"(free page reporting: {m.get('free_page_reporting')}), so the first touch of memory "
        "not used lately costs a host page fault per page: a plain page-cache write ran at "
        "~0.5 GB/s into such memory and ~4.8 GB/s into just-freed memory. Without priming, "
        "whichever contender ran right after the previous files were deleted won by up to 10x "
        "(`--prime 0` shows it).",
        f"- Seconds from a Meridian write's close until the upload queue was empty (file:// "
        f"bucket on the same disk; polled with `meridian status`, ~0.3 s resolution): "
        f"{notes.get('upload_queue_idle_after_meridian_write_s')}",
        f"- The mount's kernel read-ahead during the run: {notes.get('mount_read_ahead_kb')} KiB.",
    ]
    busy = sum(1 for r in rows for side in ("local", "meridian")
               for v in r[side]["samples"] if v["busy"])
    lines.append(f"- `*` after a value: other processes used more than {BUSY_FOREIGN_CPU} CPUs "
                 f"during that sample (shared machine); {busy} such sample(s) here, kept in the "
                 "medians. Per-sample figures are in seqio.json (other_processes_cpus).")
    if notes.get("cold_skipped"):
        lines.append(f"- Cold read skipped: {notes['cold_skipped']}")
    if notes.get("site_log_problems"):
        lines.append(f"- The site logged {len(notes['site_log_problems'])} warning/error "
                     "line(s); see seqio.json.")
    md_path.write_text("\n".join(lines) + "\n")
    log(f"wrote {json_path} and {md_path}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=1 << 30,
                        help="file size, e.g. 1GiB (default), 512MiB")
    parser.add_argument("--runs", type=int, default=5,
                        help="runs per figure, the first a discarded warm-up (default 5)")
    parser.add_argument("--root", type=Path, default=None,
                        help="where to make the scratch folder (default: the repository's "
                             "parent folder, on its disk; a tmpfs is refused)")
    parser.add_argument("--prime", type=parse_size_or_zero, default=None,
                        help="memory touched and freed (untimed) before every timed step, "
                             "e.g. 3GiB; 0 disables (default: 3 x SIZE, at most half of "
                             "MemAvailable). See prime_memory()")
    parser.add_argument("--step-timeout", type=float, default=600.0,
                        help="seconds one step may take before the site is killed (default 600)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "seqio",
                        help="output path prefix: writes OUT.json and OUT.md "
                             "(default bench/results/seqio)")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2 (the first run is a discarded warm-up)")

    if args.prime is None:
        args.prime = min(3 * args.size, _mem_available() // 2)
    args.prime -= args.prime % CHUNK
    root = (args.root or default_root()).absolute()
    created_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    fstype = mount_of(root)["fstype"]
    if fstype in ("tmpfs", "ramfs"):
        parser.error(f"{root} is on {fstype}: give --root on a real disk")
    need = args.size * 4 + (256 << 20)  # local file, nofsync file, volume copy, bucket copy
    avail = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    if avail < need:
        parser.error(f"{root} has {human(avail)} free, needs about {human(need)}")

    # SIGTERM behaves like Ctrl-C: clean up and leave
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    machine = machine_info(root)
    disk = machine["disk_of_root"]
    scratch = Path(tempfile.mkdtemp(prefix="meridian-seqio-", dir=root))
    log(f"scratch folder {scratch} on {disk['device']} ({disk['fstype']}, mounted at "
        f"{disk['mountpoint']}); size {human(args.size)}, {args.runs} runs")
    site = Site(scratch)
    local = scratch / "local"
    samples = Samples()
    notes: dict[str, Any] = {}
    started = time.monotonic()
    code = 0
    watchdog = Watchdog(site)
    try:
        local.mkdir()
        site.init()
        watchdog.arm(120, "starting the site")  # reading site.json blocks if the mount hangs
        site.start()
        watchdog.disarm()
        notes["mount_read_ahead_kb"] = mount_read_ahead_kb(site.mount)
        log(f"site mounted at {site.mount} (pid {site.process.pid if site.process else '?'}; "
            f"log {site.log_path}); priming {human(args.prime)} before each timed step")
        run_benchmark(args, site, local, samples, notes, watchdog)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        code = 130
    except Exception as exc:  # report, clean up, exit non-zero
        log(f"FAILED: {exc}")
        tail = site.log_tail()
        if tail.strip():
            log("---- site log (tail) ----\n" + tail + "\n-------------------------")
        code = 1
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish cleaning up
        watchdog.close()
        if watchdog.fired:
            log(f"the watchdog killed the site during: {watchdog.fired}")
        try:
            notes["site_log_problems"] = site.log_problems()
            stopped = site.stop()
            log(f"site {stopped}")
            notes["site_stop"] = stopped
            if is_mounted(site.mount):
                log(f"WARNING: {site.mount} is still mounted; not removing {scratch}")
                code = code or 1
            else:
                shutil.rmtree(scratch, ignore_errors=True)
                if created_root:
                    shutil.rmtree(root, ignore_errors=True)
                log(f"removed {scratch}")
        finally:
            signal.signal(signal.SIGINT, previous)
    if code:
        return code

    rows = summarize(samples, args.size)
    result = {
        "benchmark": "seqio",
        "date": dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "command": reproduce_command(argv),
        "machine": machine,
        "size": args.size,
        "chunk": CHUNK,
        "runs": args.runs,
        "warmup_runs": 1,
        "prime_bytes_before_each_step": args.prime,
        "MB": "10^6 bytes",
        "seconds_total": round(time.monotonic() - started, 1),
        "figures": rows,
        "medians_MB_s": {r["figure"]: {"local": r["local"]["median_MB_s"],
                                       "meridian": r["meridian"]["median_MB_s"]} for r in rows},
        "ratios_meridian_over_local": {r["figure"]: r["ratio_meridian_over_local"]
                                       for r in rows},
        "notes": notes,
    }
    print()
    print(f"Sequential I/O, {human(args.size)}, median of {args.runs - 1} runs after a warm-up "
          f"(MB = 10^6 bytes); scratch on {disk['device']} ({disk['fstype']})")
    for line in table_lines(rows, markdown=False):
        print(line)
    for line in LEGEND:
        print("  - " + line)
    busy = sum(1 for r in rows for side in ("local", "meridian")
               for v in r[side]["samples"] if v["busy"])
    if busy:
        print(f"WARNING: {busy} sample(s) ran while other processes were busy (marked *): "
              "rerun on a quiet machine for clean figures")
    if notes.get("site_log_problems"):
        print(f"the site logged {len(notes['site_log_problems'])} warning/error line(s); "
              "see the JSON's notes")
    write_results(args.out.absolute(), result, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
