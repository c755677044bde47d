"""Cross-site visibility side by side: Meridian, rclone mount, s3fs (one moto S3 server).

For each of N files: 64 KiB written at the near site and closed, then the far site is polled
(a stat every 1 ms, the same for everyone) until the name is visible, then until the bytes
read back identical; each wait is bounded (--bound, 30 s), and a file not seen in time counts
as "> bound" (its percentiles too). Far sites: Meridian = west of ``meridian up --sites
east,west``; rclone and s3fs = a second mount of the same bucket. rclone runs twice: with its
defaults (``--dir-cache-time 5m``: the far mount's listing of a folder it has read is not
refreshed for 5 minutes) and with ``--dir-cache-time 1s`` at the far mount; both upload 5 s
after close (``--vfs-write-back`` default). The local directory is not a contender here: its
"far site" is the same directory.

    .venv/bin/python bench/compare_visibility.py [--files 200] [--slow-files 3] [--bound 30]

200 files, so that the p99 is a p99: of 50 (the count before 2026-12-07) it was the slowest
file, and one pause of a process on the machine decided it. The slowest file of each kind is
its own row (``max``).

``--contenders`` takes meridian, rclone, rclone:dir-cache-time-1s, s3fs (all by default).

Results: bench/results/compare_visibility.md and .json.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

from harness.report import Bench, Figure, parser
from harness.rivals import Contender, bench_scratch
from harness.units import log
from harness.timing import percentile

POLL = 0.001
"""Seconds between two looks at the far site. At 5 ms (before 2026-12-06) a contender that missed
the first look was charged up to 5 ms it did not take, while one whose look itself is a slow
request (s3fs: a HEAD to the bucket) never was."""
FIGURES = [Figure("name-p50", "name visible, p50", "ms", False),
           Figure("name-p99", "name visible, p99", "ms", False),
           Figure("name-max", "name visible, max", "ms", False),
           Figure("bytes-p50", "bytes readable, p50", "ms", False),
           Figure("bytes-p99", "bytes readable, p99", "ms", False),
           Figure("bytes-max", "bytes readable, max", "ms", False),
           Figure("seen", "files readable within the bound", "%", fmt=lambda v: f"{v:.0f} %")]
OPTIONS = {"rclone:dir-cache-time-1s": {"far_args": ["--dir-cache-time", "1s"]}}
SLOW = ("rclone",)  # files each: --slow-files (5 s of write-back, and more, a file)


def until(check, started: float, bound: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds from ``started`` until ``check()`` is true, or inf after ``bound`` seconds."""
    while True:
        try:
            if check():
                return time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() - started > bound:
            return float("inf")
        time.sleep(POLL)


def measure(c: Contender, files: int, size: int, bound: float) -> dict[str, list[float]]:
    names, bytes_ = [], []
    for i in range(files):
        data = os.urandom(size)
        name = f"vis-{os.getpid()}-{i:04d}.bin"
        with open(c.near / name, "wb") as f:
            f.write(data)
        closed = time.perf_counter()
        target: Path = c.far / name
        names.append(until(lambda: os.stat(target) is not None, closed, bound))
        bytes_.append(until(lambda: target.read_bytes() == data, closed, bound))
        log(f"{c.name}: file {i}: name {names[-1] * 1000:.1f} ms, bytes {bytes_[-1] * 1000:.1f} ms")
    return {"name": names, "bytes": bytes_}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__ or "", "visibility", runs=None, slow_runs=None)
    p.set_defaults(contenders="meridian,rclone,rclone:dir-cache-time-1s,s3fs")
    p.add_argument("--files", type=int, default=200, help="files per contender (default 200)")
    p.add_argument("--slow-files", type=int, default=3,
                   help="files for rclone (each takes 5 s to 30 s; default 3)")
    p.add_argument("--size", type=int, default=64 * 1024)
    p.add_argument("--bound", type=float, default=30.0, help="seconds a far site may take")
    args = p.parse_args(argv)
    with bench_scratch("meridian-cmp-vis-") as (scratch, moto), contextlib.ExitStack() as stack:
        bench = Bench("visibility", "Cross-site visibility: Meridian, rclone mount, s3fs",
                      FIGURES, args, scratch, moto)
        mounted = bench.mount_all(stack, args.contenders.split(","), OPTIONS)
        raw = {}
        for key, c in mounted.items():
            files = args.slow_files if key.startswith(SLOW) else args.files
            bench.status[key]["runs_text"] = f"{files} files" + (
                " (slow contender: fewer)" if key.startswith(SLOW) else "")
            try:
                with bench.timed(c) as foreign:
                    got = measure(c, files, args.size, args.bound)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                bench.status[key]["status"] = f"failed: {type(exc).__name__}: {exc}"[:300]
                continue
            raw[key] = got
            for kind in ("name", "bytes"):
                ms = [v * 1000 for v in got[kind]]
                bench.add(f"{kind}-p50", key, statistics.median(ms), foreign[0])
                bench.add(f"{kind}-p99", key, percentile(ms, 99), foreign[0])
            for kind in ("name", "bytes"):
                bench.add(f"{kind}-max", key, max(v * 1000 for v in got[kind]), foreign[0])
            seen = sum(v != float("inf") for v in got["bytes"])
            bench.add("seen", key, 100 * seen / files, foreign[0])
        bench.extra["per_file_seconds"] = raw
        bench.notes += [
            f"{args.size // 1024} KiB per file, written and closed at the near site; the far "
            f"site polled every {POLL * 1000:.0f} ms (stat, then a whole read compared with "
            f"the bytes written); each wait bounded at {args.bound:g} s.",
            "p99 of a few files (rclone's) is their maximum. Meridian: name and bytes arrive by "
            "replication between the sites; rclone: in the bucket 5 s after close "
            "(--vfs-write-back), then seen when the far mount re-lists the folder "
            "(--dir-cache-time); s3fs: in the bucket at close, and its far mount asks the "
            "bucket on every lookup.",
            "Per-file seconds are in the JSON (per_file_seconds; inf = not within the bound, "
            "written \"timeout\").",
        ]
        bench.write("Time from close() at one site until another site sees the name and reads "
                    "the bytes (ms; lower is better).",
                    columns=list(bench.status),
                    bases=("rclone", "rclone:dir-cache-time-1s", "s3fs"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
