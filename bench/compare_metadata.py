"""Metadata operations side by side: local dir, Meridian, rclone mount, s3fs (one moto server).

create, stat, list (one readdir), rename and unlink of 2,000 empty files (bench/ANCHORS.md's size) in
a fresh folder at each contender's mount, with bench/metadata.py's ``one_pass``. Operations
per second (list: milliseconds for the listing). One warm-up run is discarded, then the median
of --runs; the contenders' order alternates from run to run; s3fs (~17 ms per operation, ~75 s
a pass) runs --slow-runs times without a warm-up. Between passes each contender settles (rclone's
write-back queue empty, Meridian's upload queue empty), untimed.

rclone's figures are those of its local VFS cache (it uploads 5 s after close); Meridian's of
its site (durable at the site on close); s3fs talks to the bucket on every operation.

    .venv/bin/python bench/compare_metadata.py [--files 2000] [--runs 3] [--slow-runs 2]

Results: bench/results/compare_metadata.md and .json.
"""

from __future__ import annotations

import contextlib
import sys

from harness.report import Bench, Figure, parser
from harness.rivals import Contender, bench_scratch
from harness.units import log
from metadata import one_pass

FIGURES = [Figure("create", "create", "ops/s"), Figure("stat", "stat", "ops/s"),
           Figure("list", "list the folder", "ms", higher_is_better=False),
           Figure("rename", "rename", "ops/s"), Figure("unlink", "unlink", "ops/s")]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__ or "", "metadata", runs=3, slow_runs=2)
    p.add_argument("--files", type=int, default=2000)
    args = p.parse_args(argv)
    keys = args.contenders.split(",")
    with bench_scratch("meridian-cmp-meta-") as (scratch, moto), contextlib.ExitStack() as stack:
        bench = Bench("metadata", "Metadata operations: local dir, Meridian, rclone mount, s3fs",
                      FIGURES, args, scratch, moto)
        mounted = bench.mount_all(stack, keys)

        def step(run: int, key: str, c: Contender, timed: bool) -> None:
            with bench.timed(c) as foreign:
                result = one_pass(c.near, args.files)
            c.settle()
            if timed:
                for fig in FIGURES:
                    bench.add(fig.key, key, result[fig.key], foreign[0])
            log(f"run {run}{'' if timed else ' (warm-up)'} {key:<9} "
                + "  ".join(f"{k} {v:,.1f}" for k, v in result.items())
                + f"  [others {foreign[0]:.2f} CPUs]")
        bench.run_all(mounted, step)
        bench.notes += [
            f"{args.files} empty files in a fresh folder per pass; list = one os.listdir of it.",
            "rclone: the operations are on its local VFS cache; the files reach the bucket 5 s "
            "after close (--vfs-write-back default). Meridian: committed at its site, uploaded "
            "in the background. s3fs: every operation goes to the bucket (several HTTP "
            "requests).",
            "Between passes, untimed: each contender settles (rclone's upload queue, Meridian's "
            "upload queue).",
        ]
        bench.write(f"{args.files} empty files: create, stat, list, rename, unlink; medians. "
                    "All contenders mounted at once over one moto S3 server (fresh bucket each).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
