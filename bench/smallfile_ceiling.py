"""What caps small files made durable in the bucket on this machine, part by part.

``compare_smallfiles.py`` writes 500 × 64 KiB files through each contender until they are in
the bucket. This script measures, in the same rotating rounds, what each part of that path
sustains on its own, with nothing else running, so that the table's figure can be read against
ceilings rather than guessed at:

* **moto, one PUT per file**: 500 PUTs of 64 KiB from boto3 on 4 threads (Meridian's upload
  workers), and the CPU the moto server spends per PUT (from /proc). moto serves from one
  Python process, so one PUT per file caps *any* contender at about 1,000 ÷ (ms per PUT)
  files/s, even with a whole core for moto and nothing else on the machine.
* **the durable chain on this disk**: what a close that is durable at the site costs without
  any CPU on top: the bytes into a new file and fsync, rename into place, fsync of the folder,
  then a row committed in an SQLite WAL database (``synchronous = FULL``).
* **a pyfuse3 file system doing nothing**: ``harness/memoryfs.py`` keeps names and bytes in a
  dict; what it sustains to close is the cost of the kernel's FUSE round trips and pyfuse3's
  Python dispatch alone.
* **Meridian, one site, file:// bucket**: no peer, no S3: files/s to close and until the
  upload queue is empty, and the site's CPU ms per file.

    .venv/bin/python bench/smallfile_ceiling.py [--files 500] [--kib 64] [--runs 3]

Results: bench/results/smallfile_ceiling.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.machine import default_root, is_mounted, machine_info
from harness.rivals import MotoServer, stop_process, wait_for
from harness.site import Site
from harness.timing import cpu_seconds
from harness.units import log

MEMORYFS = Path(__file__).resolve().parent / "harness" / "memoryfs.py"
PARTS = ("moto PUT, 4 threads (PUT/s)", "moto CPU per PUT (ms)",
         "durable chain on this disk (files/s)", "pyfuse3 doing nothing, to close (files/s)",
         "Meridian one site, to close (files/s)", "Meridian one site, durable (files/s)",
         "Meridian one site, CPU per file (ms)")


def write_files(folder: Path, blobs: list[bytes]) -> float:
    """Write each blob as a file of its own (open, write, close); seconds taken."""
    started = time.perf_counter()
    for i, blob in enumerate(blobs):
        with open(folder / f"f{i:04d}.bin", "wb") as f:
            f.write(blob)
    return time.perf_counter() - started


def moto_puts(moto: MotoServer, blobs: list[bytes]) -> dict[str, float]:
    import boto3

    bucket = moto.bucket("ceiling")
    local = threading.local()

    def client() -> Any:
        if not hasattr(local, "s3"):
            local.s3 = boto3.client("s3", endpoint_url=moto.endpoint)
        return local.s3

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: client(), range(16)))  # clients made before the clock starts
        cpu0, started = cpu_seconds(moto.process.pid), time.perf_counter()
        list(pool.map(lambda i: client().put_object(Bucket=bucket, Key=f"f{i:04d}",
                                                    Body=blobs[i]), range(len(blobs))))
        took = time.perf_counter() - started
        cpu = cpu_seconds(moto.process.pid) - cpu0
    return {PARTS[0]: len(blobs) / took, PARTS[1]: cpu / len(blobs) * 1e3}


def durable_chain(scratch: Path, blobs: list[bytes]) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="chain-", dir=scratch))
    try:
        (root / "staging").mkdir()
        (root / "content").mkdir()
        db = sqlite3.connect(root / "meta.db", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("CREATE TABLE files (name TEXT PRIMARY KEY, record BLOB)")
        folder = os.open(root / "content", os.O_RDONLY | os.O_DIRECTORY)
        try:
            started = time.perf_counter()
            for i, blob in enumerate(blobs):
                staged = root / "staging" / f"s{i}"
                fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, blob)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(staged, root / "content" / f"c{i}")
                os.fsync(folder)
                db.execute("INSERT INTO files VALUES (?, ?)", (f"f{i}", b"r" * 200))
            took = time.perf_counter() - started
        finally:
            os.close(folder)
            db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {PARTS[2]: len(blobs) / took}


def memoryfs(scratch: Path, blobs: list[bytes]) -> dict[str, float]:
    mount = Path(tempfile.mkdtemp(prefix="memoryfs-", dir=scratch))
    process = subprocess.Popen([sys.executable, str(MEMORYFS), str(mount)],
                               stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: is_mounted(mount), 30, "memoryfs mount",
                 alive=lambda: process.poll() is None)
        (mount / "d").mkdir()
        return {PARTS[3]: len(blobs) / write_files(mount / "d", blobs)}
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mount)], capture_output=True, check=False)
        stop_process(process, timeout=10)
        mount.rmdir()


def one_site(site: Site, run: int, blobs: list[bytes]) -> dict[str, float]:
    assert site.process is not None
    folder = site.mount / f"small-{run}"
    folder.mkdir()
    os.sync()
    cpu0 = cpu_seconds(site.process.pid)
    started = time.perf_counter()
    closed = write_files(folder, blobs)
    site.wait_uploads_idle()
    durable = time.perf_counter() - started
    cpu = cpu_seconds(site.process.pid) - cpu0
    shutil.rmtree(folder)
    return {PARTS[4]: len(blobs) / closed, PARTS[5]: len(blobs) / durable,
            PARTS[6]: cpu / len(blobs) * 1e3}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=500)
    p.add_argument("--kib", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parent / "results" / "smallfile_ceiling")
    args = p.parse_args(argv)
    samples: dict[str, list[float]] = {part: [] for part in PARTS}
    scratch = Path(tempfile.mkdtemp(prefix="meridian-ceiling-", dir=default_root()))
    moto = None
    site = Site(scratch / "site")
    try:
        moto = MotoServer(scratch)
        site.scratch.mkdir()
        site.init()
        site.start()
        parts: list[tuple[str, Callable[[int, list[bytes]], dict[str, float]]]] = [
            ("moto", lambda run, blobs: moto_puts(moto, blobs)),
            ("chain", lambda run, blobs: durable_chain(scratch, blobs)),
            ("memoryfs", lambda run, blobs: memoryfs(scratch, blobs)),
            ("site", lambda run, blobs: one_site(site, run, blobs))]
        for run in range(args.runs + 1):  # run 0 is a warm-up, not kept
            order = parts if run % 2 == 0 else parts[::-1]
            for name, measure in order:
                blobs = [os.urandom(args.kib << 10) for _ in range(args.files)]
                got = measure(run, blobs)
                log(f"run {run}{' (warm-up)' if run == 0 else ''} {name}: " +
                    ", ".join(f"{k} {v:,.2f}" for k, v in got.items()))
                if run > 0:
                    for key, value in got.items():
                        samples[key].append(value)
    finally:
        log(f"site: {site.stop()}")
        if moto is not None:
            moto.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    write_results(args, samples)
    return 0


def write_results(args: argparse.Namespace, samples: dict[str, list[float]]) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    per_put = statistics.median(samples[PARTS[1]])
    lines = [f"# What caps {args.files} × {args.kib} KiB files made durable in the bucket", "",
             f"{now}; medians of {args.runs} runs after a warm-up (lowest–highest), the parts "
             f"in rotating order; load average {os.getloadavg()[0]:.2f} at the end.", "",
             "| part, measured alone | median (lowest–highest) |", "| --- | --- |"]
    for part in PARTS:
        values = samples[part]
        lines.append(f"| {part} | {statistics.median(values):,.2f} "
                     f"({min(values):,.2f}–{max(values):,.2f}) |")
    lines += ["", f"moto's ceiling for one PUT per file, with a whole core to itself: "
              f"1,000 ÷ {per_put:.2f} ms ≈ {1000 / per_put:,.0f} files/s.", "",
              "Reproduce: `.venv/bin/python bench/smallfile_ceiling.py "
              f"--files {args.files} --kib {args.kib} --runs {args.runs}`", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"date": now, "files": args.files, "kib": args.kib, "runs": args.runs,
         "samples": samples, "moto_put_ceiling": 1000 / per_put, "load": os.getloadavg(),
         "machine": machine_info(default_root())}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
