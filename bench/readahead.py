"""Sequence read-ahead: playing a 40-frame sequence of 12 MiB frames at the far site.

Two sites from `meridian up` over moto's S3 server (HTTP on 127.0.0.1). East writes a fresh
sequence for each mode and waits until it is in the bucket; west then reads the frames in order,
cold (never read at west before; after ``sync`` and ``drop_caches``), and the rate is frames
per second. moto runs in its own process (``harness.rivals.MotoServer``). Modes:

- `off`: `mover.sequence_readahead = 0` at west (each frame fetched when it is opened);
- `default`: the default read-ahead (the next 8 frames when a frame is opened);
- `prefetch-sequence`: an Objective at west, `IF FNMATCH("./seq-*/*", PATH) THEN
  {SLO('prefetch-sequence')}`: the first frame's open fetches the whole rest.

Beside them, the S3 server's own GET rate for the same frames (boto3, one GET per frame, in
order, in the same run) is the baseline. Median of several runs per mode.

    .venv/bin/python bench/readahead.py [--frames 40] [--frame-mib 12] [--runs 3]

Results: bench/results/readahead.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import tomli_w

from harness.machine import default_root, drop_caches, machine_info
from harness.rivals import MotoServer
from harness.site import MERIDIAN, Up

RULE = "IF FNMATCH(\"./seq-*/*\", PATH) THEN {SLO('prefetch-sequence')}"


def set_readahead(root: Path, frames: int) -> None:
    path = root / "west" / "meridian.toml"
    doc = tomllib.loads(path.read_text())
    doc.setdefault("mover", {})["sequence_readahead"] = frames
    path.write_text(tomli_w.dumps(doc))


def write_sequence(root: Path, name: str, frames: int, size: int) -> None:
    folder = root / "east" / "mnt" / name
    folder.mkdir()
    for n in range(frames):
        (folder / f"plate.{1001 + n:04d}.exr").write_bytes(os.urandom(size))
    deadline = time.monotonic() + 300
    while True:  # in the bucket before west reads: a far site reads from the bucket
        out = subprocess.run([*MERIDIAN, "status", "--json", "--config",
                              str(root / "east" / "meridian.toml")],
                             capture_output=True, text=True, timeout=60).stdout
        if json.loads(out)["uploads"]["queued"] == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("uploads did not finish")
        time.sleep(0.2)


def settle() -> None:
    """Before a cold read: the writes just made flushed to disk (the kernel's write-back of
    ~1 GiB ran during the reads and cut them to a third) and the page cache dropped, so the
    far site and the S3 server (moto keeps large objects in files) both read cold, as in
    compare_playback.py."""
    os.sync()
    drop_caches()


def play(root: Path, name: str, frames: int, size: int) -> float:
    folder = root / "west" / "mnt" / name
    deadline = time.monotonic() + 60
    while len(list(folder.glob("*.exr"))) < frames if folder.exists() else True:
        if time.monotonic() > deadline:
            raise RuntimeError("west never saw the sequence")
        time.sleep(0.05)
    settle()
    started = time.perf_counter()
    for n in range(frames):
        with open(folder / f"plate.{1001 + n:04d}.exr", "rb") as handle:
            got = 0
            while chunk := handle.read(1 << 20):
                got += len(chunk)
        assert got == size
    return frames / (time.perf_counter() - started)


def s3_rate(endpoint: str, bucket: str, frames: int, size: int) -> float:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    for n in range(frames):
        client.put_object(Bucket=bucket, Key=f"baseline/{n}", Body=os.urandom(size))
    settle()
    started = time.perf_counter()
    for n in range(frames):
        body = client.get_object(Bucket=bucket, Key=f"baseline/{n}")["Body"].read()
        assert len(body) == size
    return frames / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--frame-mib", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "readahead")
    args = parser.parse_args(argv)
    size = args.frame_mib << 20
    scratch = Path(tempfile.mkdtemp(prefix="meridian-readahead-", dir=default_root()))
    samples: dict[str, list[float]] = {"s3-get": [], "off": [], "default": [],
                                       "prefetch-sequence": []}
    # moto in its own process, as in compare_*.py: in this process it shared our interpreter
    # lock with the player and halved every figure
    moto = MotoServer(scratch)
    endpoint, bucket = moto.endpoint, moto.bucket("readahead")
    root = scratch / "studio"
    extra = ["--bucket", f"s3://{bucket}", "--endpoint-url", endpoint]
    try:
        Up(root, *extra).stop()  # create the sites once
        for run in range(args.runs):
            samples["s3-get"].append(s3_rate(endpoint, bucket, args.frames, size))
            for mode in ("off", "default", "prefetch-sequence"):
                set_readahead(root, 0 if mode == "off" else 8)
                up = Up(root, *extra)
                try:
                    if mode == "prefetch-sequence" and run == 0:
                        subprocess.run([*MERIDIAN, "objective", "add", "--config",
                                        str(root / "west" / "meridian.toml"), RULE],
                                       check=True, capture_output=True, timeout=60)
                    name = f"seq-{mode}-{run}" if mode == "prefetch-sequence" else f"plain-{mode}-{run}"
                    write_sequence(root, name, args.frames, size)
                    rate = play(root, name, args.frames, size)
                finally:
                    up.stop()
                samples[mode].append(rate)
                print(f"run {run} {mode}: {rate:.1f} frames/s", flush=True)
            print(f"run {run} s3-get: {samples['s3-get'][-1]:.1f} frames/s", flush=True)
    finally:
        moto.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    medians = {mode: statistics.median(values) for mode, values in samples.items()}
    command = (f".venv/bin/python bench/readahead.py --frames {args.frames} "
               f"--frame-mib {args.frame_mib} --runs {args.runs}")
    doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
           "machine": machine_info(scratch.parent), "samples": samples, "medians": medians}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    base = medians["s3-get"]
    lines = ["# Sequence read-ahead at the far site", "",
             f"{doc['date']}: {args.frames} frames of {args.frame_mib} MiB written at east, in "
             "the bucket (moto S3 over HTTP), read in order at west, cold. Median of "
             f"{args.runs} runs; ratio to the S3 server's own GET rate in the same run.", "",
             "| mode | frames/s | vs S3 GET |", "| --- | --- | --- |"]
    for mode in ("s3-get", "off", "default", "prefetch-sequence"):
        lines.append(f"| {mode} | {medians[mode]:.1f} | {medians[mode] / base:.2f} |")
    lines += ["", f"Reproduce: `{command}`", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
