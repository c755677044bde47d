"""The timed file operations, memory priming, the CPU meter that marks samples taken while
other processes were busy, and the statistics every table quotes: median, spread, percentile."""

from __future__ import annotations

import mmap
import os
import statistics
import struct
import time
from pathlib import Path

from harness.units import BUFFER, CHUNK

BUSY_FOREIGN_CPU = 0.25
"""A sample during which other processes used more than this many CPUs is marked busy (*)."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]



def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and the spread (max - min) / median of ``values`` (not empty)."""
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return {"median": med, "min": lo, "max": hi,
            "spread": (hi - lo) / med if med else 0.0}


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


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
