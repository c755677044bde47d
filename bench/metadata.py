"""Metadata operations through a Meridian mount vs a local directory, in one run.

create, stat, list, rename and unlink of N empty files (2,000 by default, the size of
bench/ANCHORS.md), medians of several runs (the first is a discarded warm-up), contenders
alternating within each run. Results: bench/results/metadata.json and .md.

    .venv/bin/python bench/metadata.py [--files 2000] [--runs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from harness.machine import default_root, machine_info
from harness.site import Site

OPS = ("create", "stat", "list", "rename", "unlink")


def one_pass(root: Path, n: int) -> dict[str, float]:
    """Ops/s for each operation (for `list`: milliseconds for one listing)."""
    d = root / "meta-bench"
    d.mkdir()
    result: dict[str, float] = {}
    started = time.perf_counter()
    for i in range(n):
        with open(d / f"f{i}", "w"):
            pass
    result["create"] = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(n):
        os.stat(d / f"f{i}")
    result["stat"] = n / (time.perf_counter() - started)
    started = time.perf_counter()
    names = os.listdir(d)
    result["list"] = (time.perf_counter() - started) * 1000
    assert len(names) == n, f"listed {len(names)} of {n}"
    started = time.perf_counter()
    for i in range(n):
        os.rename(d / f"f{i}", d / f"g{i}")
    result["rename"] = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(n):
        os.unlink(d / f"g{i}")
    result["unlink"] = n / (time.perf_counter() - started)
    d.rmdir()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=4, help="runs; the first is a warm-up")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "metadata")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="meridian-metabench-", dir=default_root()))
    site = Site(scratch)
    samples: dict[str, dict[str, list[float]]] = {"local": {o: [] for o in OPS},
                                                  "meridian": {o: [] for o in OPS}}
    try:
        local = scratch / "local"
        local.mkdir()
        site.init()
        site.start()
        for run in range(args.runs):
            order = [("local", local), ("meridian", site.mount)]
            for name, root in order if run % 2 == 0 else reversed(order):
                result = one_pass(root, args.files)
                if run > 0:
                    for op in OPS:
                        samples[name][op].append(result[op])
                print(f"run {run}{' (warm-up)' if run == 0 else ''} {name:<9} "
                      + "  ".join(f"{op} {result[op]:,.1f}" for op in OPS), flush=True)
    finally:
        print("site", site.stop())
        shutil.rmtree(scratch, ignore_errors=True)
    rows = []
    for op in OPS:
        local_m = statistics.median(samples["local"][op])
        ours = statistics.median(samples["meridian"][op])
        ratio = local_m / ours if op == "list" else ours / local_m
        rows.append({"op": op, "unit": "ms" if op == "list" else "ops/s", "local": local_m,
                     "meridian": ours, "meridian_vs_local": ratio})
    command = f".venv/bin/python bench/metadata.py --files {args.files} --runs {args.runs}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "files": args.files, "runs": args.runs, "command": command,
              "machine": machine_info(scratch.parent), "samples": samples, "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Metadata operations: Meridian mount vs. local directory", "",
             f"{result['date']}: {args.files} empty files, median of {args.runs - 1} runs after a "
             "warm-up. `list` is milliseconds for one listing (lower is better; its ratio is "
             "local/Meridian); the others are operations per second.", "",
             "| operation | local dir | Meridian | Meridian vs local |", "| --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['op']} ({row['unit']}) | {row['local']:,.1f} | {row['meridian']:,.1f} "
                     f"| {row['meridian_vs_local']:.3f} |")
    lines += ["", f"Reproduce: `{command}`", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
