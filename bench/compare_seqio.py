"""Sequential write and read of one large file (512 MiB) side by side: local dir, Meridian,
rclone mount, s3fs, all over one moto S3 server (fresh bucket each).

Per run and contender (the order alternates from run to run), with bench/seqio.py's
``write_file``/``read_file`` (1 MiB writes and reads; each write stamped so nothing dedups):
  * write, to close: open, SIZE in 1 MiB writes, close returning (local: no fsync);
  * write, until durable: the same write, timed on until the bytes are in the bucket
    (Meridian: east's upload queue empty; rclone: the object in the bucket, polled with boto3,
    which includes its 5 s write-back delay; s3fs: uploads on close; local: + fsync);
  * read, warm: right after (page cache and the contender's own cache as they are);
  * read, cold: after ``sync`` + ``drop_caches``. Meridian and rclone still hold the bytes in
    their local disk caches (a read from disk, not from the bucket); s3fs keeps no data cache by
    default and reads from the bucket.
Before every timed step, untimed: ``sync`` and --prime bytes of memory touched and freed
(bench/seqio.py explains why: this VM's balloon makes first-touch memory slow). The first run is
a discarded warm-up; s3fs runs --slow-runs times without one. MB = 10^6 bytes.

    .venv/bin/python bench/compare_seqio.py [--size 512MiB] [--runs 3] [--slow-runs 2]

Results: bench/results/compare_seqio.md and .json.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import zlib

from harness.report import Bench, Figure, parser
from harness.machine import drop_caches
from harness.rivals import Contender, bench_scratch
from harness.timing import prime_memory, read_file, write_file
from harness.units import BUFFER, human, log, parse_size, parse_size_or_zero

OPTIONS = {"rclone:write-back-0s": {"near_args": ["--vfs-write-back", "0s"]}}
"""rclone tuned for the durable row: it uploads as soon as the file is closed, not 5 s later."""
FIGURES = [Figure("write", "write, to close", "MB/s"),
           Figure("write-durable", "write, until durable in the bucket (local: + fsync)", "MB/s"),
           Figure("write-site", "write, durable on the site's disk (local: + fsync; Meridian: "
                  "to close)", "MB/s"),
           Figure("read-warm", "read, warm", "MB/s"),
           Figure("read-cold", "read, cold (drop_caches)", "MB/s")]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__ or "", "seqio", runs=3, slow_runs=2)
    p.add_argument("--size", type=parse_size, default=parse_size("512MiB"))
    p.add_argument("--prime", type=parse_size_or_zero, default=None,
                   help="memory touched and freed before each timed step (default 2 x SIZE)")
    p.set_defaults(contenders="local,meridian,rclone,rclone:write-back-0s,s3fs")
    args = p.parse_args(argv)
    size = args.size
    prime = 2 * size if args.prime is None else args.prime
    buf = bytearray(os.urandom(BUFFER))
    with bench_scratch("meridian-cmp-seqio-") as (scratch, moto), contextlib.ExitStack() as stack:
        bench = Bench("seqio", f"Sequential I/O of one {human(size)} file: local dir, Meridian, "
                      "rclone mount, s3fs", FIGURES, args, scratch, moto)
        mounted = bench.mount_all(stack, args.contenders.split(","), OPTIONS)
        waits: dict[str, list[float]] = {}

        def step(run: int, key: str, c: Contender, timed: bool) -> None:
            path = c.near / f"seqio-{run}.bin"
            results = {}

            def measure(fig: str, fn, *fn_args, **kw) -> float:  # type: ignore[no-untyped-def]
                os.sync()
                prime_memory(prime)
                with bench.timed(c) as foreign:
                    seconds = float(fn(*fn_args, **kw))
                results[fig] = size / seconds / 1e6
                if timed:
                    bench.add(fig, key, results[fig], foreign[0])
                return seconds

            def write_durable() -> float:
                started = time.perf_counter()
                tag = zlib.crc32(key.encode()) << 16 | run  # unique: nothing dedups
                closed = write_file(path, size, buf, tag, fsync=False)
                c.durable([path])
                done = time.perf_counter() - started
                waits.setdefault(key, []).append(round(done - closed, 3))
                results["write"] = size / closed / 1e6
                return done

            measure("write-durable", write_durable)
            if timed:
                other_cpus = bench.samples["write-durable"][key][-1][1]  # the same sample
                bench.add("write", key, results["write"], other_cpus)
                # like with like (bench/ANCHORS.md): Meridian's close fsyncs (docs/design.md, rule 2), so it
                # is the local directory's write + fsync that it compares with
                if key == "local":
                    bench.add("write-site", key, results["write-durable"], other_cpus)
                elif key == "meridian":
                    bench.add("write-site", key, results["write"], other_cpus)
            measure("read-warm", read_file, path, size)
            drop_caches()
            measure("read-cold", read_file, path, size)
            os.unlink(path)
            c.settle()
            log(f"run {run}{'' if timed else ' (warm-up)'} {key:<9} "
                + "  ".join(f"{k} {v:,.1f}" for k, v in results.items()) + " MB/s")
        bench.run_all(mounted, step)
        bench.extra["seconds_from_close_to_durable"] = waits
        bench.notes += [
            f"{human(size)} in 1 MiB writes/reads; MB/s are 10^6 bytes per second. The write is "
            "timed once: to close() returning, and on until durable (same sample).",
            "Seconds from close to durable, per run (warm-up first): "
            + "; ".join(f"{k}: {v}" for k, v in waits.items()) + ".",
            "rclone: durable = its write-back (5 s after close, the default; "
            "rclone:write-back-0s is tuned to upload at once) and the upload; "
            "Meridian: east's upload queue empty; s3fs: uploaded during close; local: fsync.",
            "Durable on the site's disk: Meridian's close() returns once the content is fsync'd "
            "at its site (docs/design.md, rule 2), so its 'to close' sample stands against the local "
            "directory's write + fsync; rclone's close is not durable anywhere and s3fs's is "
            "in the bucket: blank.",
            "Cold read: Meridian and rclone read from their local disk caches (the file was "
            "written there), s3fs from the bucket (no data cache by default); the far-site read "
            "from the bucket is compare_playback.py's figure.",
            f"Before every timed step: sync and {human(prime)} of memory touched and freed "
            "(untimed).",
        ]
        bench.write(f"One {human(size)} file written and read back at each contender's mount; "
                    "medians. All contenders mounted at once over one moto S3 server.",
                    bases=("local", "rclone", "rclone:write-back-0s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
