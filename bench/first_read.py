"""What bounds the first read of a file right after writing it through the mount.

One site (``meridian site run``, file:// bucket), one file of SIZE written in 1 MiB writes and
closed, then read whole three times in a row without dropping caches: the first read, the
second, the third. The same with ``[site] writeback_cache = true``, and in a local directory.
A first read as fast as the second means the written pages stayed in the kernel's page cache;
a first read at FUSE speed means the kernel dropped them before it.

    .venv/bin/python bench/first_read.py [--size 512MiB] [--runs 3]

Prints a table (MB/s, medians of --runs, lowest–highest in brackets) and writes
bench/results/first_read.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import tomli_w

from harness.machine import default_root, machine_info
from harness.site import Site
from harness.timing import read_file, write_file
from harness.units import BUFFER, MB, human, log, parse_size

READS = ("first read", "second read", "third read")


def one_round(folder: Path, size: int, buf: bytearray, tag: int) -> list[float]:
    """Write, then read three times: MB/s of each read."""
    path = folder / f"first-read-{tag}.bin"
    write_file(path, size, buf, tag, fsync=False)
    rates = [size / read_file(path, size) / MB for _ in READS]
    path.unlink()
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=parse_size("512MiB"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parent / "results" / "first_read")
    args = p.parse_args(argv)
    buf = bytearray(os.urandom(BUFFER))
    results: dict[str, list[list[float]]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="meridian-first-read-", dir=default_root()))
    try:
        local = scratch / "local"
        local.mkdir()
        for mode in ("write-through (default)", "writeback_cache = true"):
            site = Site(scratch / mode.split()[0])
            site.scratch.mkdir()
            site.init()
            if mode.startswith("writeback"):
                doc = tomllib.loads(site.config.read_text())
                doc.setdefault("site", {})["writeback_cache"] = True
                site.config.write_text(tomli_w.dumps(doc))
            site.start()
            try:
                for run in range(args.runs):
                    results.setdefault(f"Meridian, {mode}", []).append(
                        one_round(site.mount, args.size, buf, run))
                    results.setdefault("local directory", []).append(
                        one_round(local, args.size, buf, 100 + run))
                    log(f"{mode} run {run}: " + " ".join(
                        f"{v:,.0f}" for v in results[f"Meridian, {mode}"][-1]) + " MB/s")
            finally:
                log(f"site: {site.stop()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"
    lines = [f"# First read after a write: {human(args.size)}", "",
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}; written in 1 MiB "
             "writes and closed, then read whole three times without dropping caches; MB/s, "
             f"median of {args.runs} (lowest–highest); load average "
             f"{os.getloadavg()[0]:.2f} at the end.", "",
             "| where | " + " | ".join(READS) + " |", "| --- |" + " --- |" * len(READS)]
    for who, runs in results.items():
        lines.append(f"| {who} | " + " | ".join(cell([r[i] for r in runs])
                                                 for i in range(len(READS))) + " |")
    lines += ["", "Reproduce: `.venv/bin/python bench/first_read.py "
              f"--size {args.size} --runs {args.runs}`", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
         "size": args.size, "runs": args.runs, "MB_s": results,
         "load": os.getloadavg(), "machine": machine_info(scratch.parent)}, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
