"""Many small files side by side: local dir, Meridian, rclone mount, s3fs (one moto server).

Per run and contender (order alternating from run to run): 500 files of 64 KiB (bench/ANCHORS.md's
size) written into a fresh folder at the contender's mount, each open/write/close, then:
  * written, to close: files per second until the last close() returned;
  * written, until durable in the bucket: the same sample timed on until every file is in the
    bucket (Meridian: east's upload queue empty; rclone: every object in the bucket, polled with
    boto3 every 0.2 s, its 5 s write-back included; s3fs: uploaded on close; local: fsync of
    every file and the folder), so that each contender is compared like with like;
  * read back, cold: after ``sync`` + ``drop_caches``, every file opened, read whole, closed, in
    order, checking the bytes. Meridian and rclone read their local disk caches, s3fs the bucket.
Every file's content is fresh random bytes (nothing dedups). First run a discarded warm-up;
s3fs runs --slow-runs times without one.

    .venv/bin/python bench/compare_smallfiles.py [--files 500] [--kib 64] [--runs 3]

Results: bench/results/compare_smallfiles.md and .json.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from harness.report import Bench, Figure, parser
from harness.machine import drop_caches
from harness.rivals import Contender, bench_scratch
from harness.units import log

OPTIONS = {"rclone:write-back-0s": {"near_args": ["--vfs-write-back", "0s"]}}
"""rclone tuned for this row: it uploads as soon as a file is closed instead of 5 s later."""
FIGURES = [Figure("write", "written, to close", "files/s"),
           Figure("write-durable", "written, until durable in the bucket (local: + fsync)",
                  "files/s"),
           Figure("read-cold", "read back, cold (drop_caches)", "files/s")]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__ or "", "smallfiles", runs=3, slow_runs=2)
    p.add_argument("--files", type=int, default=500)
    p.add_argument("--kib", type=int, default=64)
    p.set_defaults(contenders="local,meridian,rclone,rclone:write-back-0s,s3fs")
    args = p.parse_args(argv)
    n, size = args.files, args.kib << 10
    with bench_scratch("meridian-cmp-small-") as (scratch, moto), contextlib.ExitStack() as stack:
        bench = Bench("smallfiles", f"{n} files of {args.kib} KiB: local dir, Meridian, rclone "
                      "mount, s3fs", FIGURES, args, scratch, moto)
        mounted = bench.mount_all(stack, args.contenders.split(","), OPTIONS)

        def step(run: int, key: str, c: Contender, timed: bool) -> None:
            folder = c.near / f"small-{run}"
            folder.mkdir()
            blob = os.urandom(n * size)  # untimed; fresh bytes every run
            paths = [folder / f"f{i:04d}.bin" for i in range(n)]
            os.sync()
            with bench.timed(c) as foreign:
                started = time.perf_counter()
                for i, path in enumerate(paths):
                    with open(path, "wb") as f:
                        f.write(blob[i * size:(i + 1) * size])
                closed = time.perf_counter() - started
                c.durable(paths)
                durable = time.perf_counter() - started
            results = {"write": n / closed, "write-durable": n / durable}
            drop_caches()
            with bench.timed(c) as foreign_read:
                started = time.perf_counter()
                for i, path in enumerate(paths):
                    with open(path, "rb") as f:
                        if f.read() != blob[i * size:(i + 1) * size]:
                            raise RuntimeError(f"{path}: wrong bytes read back")
                results["read-cold"] = n / (time.perf_counter() - started)
            if timed:
                for fig, value in results.items():
                    bench.add(fig, key, value, (foreign_read if fig == "read-cold" else foreign)[0])
            for path in paths:
                path.unlink()
            folder.rmdir()
            c.settle()
            log(f"run {run}{'' if timed else ' (warm-up)'} {key:<9} "
                + "  ".join(f"{k} {v:,.1f}" for k, v in results.items()) + " files/s")
        bench.run_all(mounted, step)
        bench.notes += [
            f"{n} files of {args.kib} KiB, one open/write/close each, in a fresh folder per run. "
            "'to close' and 'until durable' are the same sample timed at two points.",
            "Durable: Meridian = east's upload queue empty (it is durable at its site on close, "
            "docs/design.md, rule 2); rclone = every object in the bucket (it uploads 5 s after "
            "close by default; rclone:write-back-0s is tuned to upload at once); s3fs = "
            "uploaded during close; local = fsync of every file and the folder after the last "
            "close.",
            "Read back: Meridian and rclone from their local disk caches (page cache dropped), "
            "s3fs from the bucket (no data cache by default).",
        ]
        bench.write(f"{n} files of {args.kib} KiB written, then read back, at each contender's "
                    "mount; medians. All contenders mounted at once over one moto S3 server.",
                    bases=("local", "rclone", "rclone:write-back-0s", "s3fs"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
