"""Pre-positioning under an Objective: a `.clip` rewritten at west, complete on east's volume.

Two sites from `meridian up`; the deployment guide's rule is added at east:

    IF FNMATCH("./hs-mount/project/*/flame/*.clip",PATH)
    THEN {SLO('place-on-local-volumes')}

Then N times (100 by default): west rewrites a small Open Clip (4 KiB, new bytes each time) and
closes it; the clock runs until east's local volume holds that content complete (its file in
east's content store), without anyone at east reading it. Reports p50/p99/max. Target: p99 < 1 s.

    .venv/bin/python bench/prepositioning.py [--rewrites 100]

Results: bench/results/prepositioning.json and .md.
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
from datetime import datetime, timezone
from pathlib import Path

import blake3

from harness.machine import default_root, machine_info
from harness.site import MERIDIAN, Up
from harness.timing import percentile

RULE = """IF FNMATCH("./hs-mount/project/*/flame/*.clip",PATH)
THEN {SLO('place-on-local-volumes')}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rewrites", type=int, default=100)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "prepositioning")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="meridian-prepos-", dir=default_root()))
    root = scratch / "studio"
    delays: list[float] = []
    up = Up(root)
    try:
        subprocess.run([*MERIDIAN, "objective", "add", "--config",
                        str(root / "east" / "meridian.toml"), RULE], check=True,
                       capture_output=True, timeout=60)
        flame = root / "west" / "mnt" / "hs-mount" / "project" / "sh010" / "flame"
        flame.mkdir(parents=True)
        store = root / "east" / "volumes" / "local" / "content"
        for i in range(args.rewrites):
            data = f"<clip version='v{i:03d}'/>".encode() + os.urandom(args.size)
            digest = blake3.blake3(data).hexdigest()
            with open(flame / "sh010.clip", "wb") as handle:
                handle.write(data)
            closed = time.perf_counter()
            target = store / digest[:2] / digest
            while not target.exists():
                if time.perf_counter() - closed > 30:
                    raise RuntimeError(f"rewrite {i} not on east's volume after 30 s")
                time.sleep(0.001)
            delays.append(time.perf_counter() - closed)
    finally:
        up.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    row = {"p50_ms": statistics.median(delays) * 1000, "p99_ms": percentile(delays, 99) * 1000,
           "max_ms": max(delays) * 1000}
    command = f".venv/bin/python bench/prepositioning.py --rewrites {args.rewrites} --size {args.size}"
    doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
           "rewrites": args.rewrites, "machine": machine_info(scratch.parent), "row": row,
           "samples_s": delays}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["# Pre-positioning under the deployment guide's rule", "",
             f"{doc['date']}: two sites from `meridian up` (local-directory bucket); the rule at "
             f"east; west rewrites `hs-mount/project/sh010/flame/sh010.clip` ({args.size} B) "
             f"{args.rewrites} times; time from close at west until east's local volume holds "
             "the new content complete. Target: p99 < 1 s.", "",
             "| p50 | p99 | max |", "| --- | --- | --- |",
             f"| {row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms | {row['max_ms']:.1f} ms |", "",
             f"Reproduce: `{command}`", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
