"""Image-sequence playback at a far site, side by side: local dir, Meridian, rclone mount, s3fs,
beside the S3 server's own GET rate, all on one moto S3 server (fresh bucket each).

Per run and contender (order alternating from run to run): a fresh 40-frame sequence of 12 MiB
frames (bench/ANCHORS.md's sizes) is written at the near site and waited for until durable in the
bucket (untimed); once the far site lists every frame with its size, the far site reads the
frames in order, each opened, read in 1 MiB reads, closed (frames per second):
  * cold: the first read at the far site (after ``sync`` + ``drop_caches``);
  * warm: the same frames read again right after.
The far sites: Meridian = west of ``meridian up --sites east,west``; rclone and s3fs = a second
mount of the same bucket (rclone's far mount with ``--dir-cache-time 1s``, or it would not see a
new sequence for 5 minutes); local = the same directory. Meridian runs twice side by side:
with ``mover.sequence_readahead = 0`` at west (the "no read-ahead" row) and with its default
(8 frames fetched ahead when a frame is opened: the "with sequence read-ahead" row; its warm
row is from this instance). rclone and s3fs have no cross-file read-ahead: that row is blank.
The S3 GET rate: boto3, one get_object per frame in order, of 40 frames of the same size in their
own bucket, measured once per run after ``drop_caches``. First run a discarded warm-up; s3fs
runs --slow-runs times.

    .venv/bin/python bench/compare_playback.py [--frames 40] [--frame-mib 12] [--runs 3]

Results: bench/results/compare_playback.md and .json.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import zlib
from typing import Any

from harness.report import Bench, Figure, parser
from harness.machine import drop_caches
from harness.rivals import Contender, bench_scratch, wait_for
from harness.timing import prime_memory, read_file, write_file
from harness.units import BUFFER, human, log, parse_size_or_zero

FIGURES = [Figure("cold", "far site, cold, no sequence read-ahead", "frames/s"),
           Figure("cold-ra", "far site, cold, with sequence read-ahead", "frames/s"),
           Figure("warm", "far site, warm (read again)", "frames/s")]
OPTIONS: dict[str, dict[str, Any]] = {
    "meridian:readahead-off": {"west": {"mover": {"sequence_readahead": 0}}},
    "rclone": {"far_args": ["--dir-cache-time", "1s"]}}


def frame_names(frames: int) -> list[str]:
    return [f"plate.{1001 + i:04d}.exr" for i in range(frames)]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__ or "", "playback", runs=3, slow_runs=2)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--frame-mib", type=int, default=12)
    p.add_argument("--prime", type=parse_size_or_zero, default=None,
                   help="memory touched and freed before each timed step (default 2 x sequence)")
    args = p.parse_args(argv)
    frames, size = args.frames, args.frame_mib << 20
    prime = 2 * frames * size if args.prime is None else args.prime
    keys = []
    for key in args.contenders.split(","):
        keys += ["meridian:readahead-off", "meridian"] if key == "meridian" else [key]
    buf = bytearray(os.urandom(BUFFER))
    with bench_scratch("meridian-cmp-play-") as (scratch, moto), contextlib.ExitStack() as stack:
        bench = Bench("playback", f"Far-site playback of {frames} frames of {args.frame_mib} MiB: "
                      "local dir, Meridian, rclone mount, s3fs, S3 GET", FIGURES, args, scratch,
                      moto)
        mounted = bench.mount_all(stack, keys, OPTIONS)
        waits: dict[str, list[float]] = {}

        # the S3 server's own GET rate, of frames of the same size in their own bucket
        s3 = moto.bucket("s3get")
        for i in range(frames):
            moto.client.put_object(Bucket=s3, Key=f"f{i}", Body=os.urandom(size))
        bench.status["s3-get"] = {"status": "ok", "runs": args.runs, "warmup": True, "config":
                                  "boto3 get_object per frame, in order, from the same server"}

        def s3_get(run: int) -> None:
            drop_caches()  # moto keeps objects over 5 MiB in files: cold, like the far reads
            prime_memory(prime)
            with bench.timed() as foreign:
                started = time.perf_counter()
                for i in range(frames):
                    body = moto.client.get_object(Bucket=s3, Key=f"f{i}")["Body"].read()
                    assert len(body) == size
                rate = frames / (time.perf_counter() - started)
            log(f"run {run} S3 GET: {rate:.1f} frames/s")
            if run > 0:
                for fig in ("cold", "cold-ra"):
                    bench.add(fig, "s3-get", rate, foreign[0])

        def play(folder: os.PathLike[str], c: Contender) -> tuple[float, float]:
            os.sync()
            prime_memory(prime)
            with bench.timed(c) as foreign:
                started = time.perf_counter()
                for name in frame_names(frames):
                    read_file(folder / name, size)  # type: ignore[operator]
                rate = frames / (time.perf_counter() - started)
            return rate, foreign[0]

        def step(run: int, key: str, c: Contender, timed: bool) -> None:
            name = f"seq-{run}"
            near, far = c.near / name, c.far / name
            near.mkdir()
            paths = [near / n for n in frame_names(frames)]
            for i, path in enumerate(paths):  # every frame stamped: nothing dedups
                write_file(path, size, buf, zlib.crc32(key.encode()) << 24 | run << 12 | i,
                           fsync=False)
            started = time.monotonic()
            c.durable(paths)
            durable = time.monotonic() - started

            def seen() -> bool:
                try:
                    return all(os.stat(far / n).st_size == size for n in frame_names(frames))
                except OSError:
                    return False
            visible = wait_for(seen, 120, f"{key}: the sequence at the far site", every=0.05)
            waits.setdefault(key, []).append(round(durable, 2))
            drop_caches()
            cold, f_cold = play(far, c)
            warm, f_warm = play(far, c)
            if timed:
                column = "meridian" if key.startswith("meridian") else key
                bench.add("cold-ra" if key == "meridian" else "cold", column, cold, f_cold)
                bench.add("warm", key if key == "meridian:readahead-off" else column, warm,
                          f_warm)
            for path in paths:
                path.unlink()
            near.rmdir()
            c.settle()
            log(f"run {run}{'' if timed else ' (warm-up)'} {key:<22} cold {cold:6.1f}  warm "
                f"{warm:6.1f} frames/s  (durable after {durable:.1f} s, at the far site "
                f"{visible:.1f} s later)")
        bench.run_all(mounted, step, each_run=s3_get)
        bench.extra["seconds_written_to_durable"] = waits
        bench.extra["warm_meridian_readahead_off"] = bench.samples.get("warm", {}).get(
            "meridian:readahead-off")
        bench.notes += [
            f"{frames} frames of {args.frame_mib} MiB ({human(frames * size)}) per sequence, "
            "a fresh sequence per run and contender; frames/s = frames / seconds from the first "
            "open to the last close at the far site.",
            "Meridian's cold rows come from two instances run side by side: west with "
            "`mover.sequence_readahead = 0` (no read-ahead) and with the default (8). Its warm "
            "row is the default instance's; the read-ahead-off instance's warm samples are in "
            "the JSON (warm_meridian_readahead_off).",
            "rclone and s3fs have no read-ahead across files: their 'with sequence read-ahead' "
            "cells are blank. rclone's far mount: --dir-cache-time 1s (with the default 5 m, a "
            "new sequence stays invisible at the far mount). local: the far site is the same "
            "directory, so cold = after drop_caches.",
            "Seconds from the last frame's close to durable in the bucket, per run (warm-up "
            "first): " + "; ".join(f"{k}: {v}" for k, v in waits.items()) + ".",
            f"Before every timed step: sync and {human(prime)} of memory touched and freed "
            "(untimed).",
            "moto keeps objects over 5 MiB in temporary files on the same disk: after "
            "drop_caches it reads them from disk. The S3 GET rate is measured after drop_caches "
            "too, like the far sites' cold reads.",
        ]
        bench.write(f"{frames} frames of {args.frame_mib} MiB written at one site, read in order "
                    "at another; medians. All contenders mounted at once over one moto S3 "
                    "server.", columns=["local", "meridian", "rclone", "s3fs", "s3-get"],
                    bases=("local", "rclone", "s3-get"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
