"""Cross-site visibility: from `close` at east to the name (then the bytes) at west.

Two sites from `meridian up` on this machine, once with the local-directory bucket and once
with moto's S3 server over HTTP; and for each, the sites talking TLS (the default) and plain
HTTP on loopback (`up --plain-http`), in the same run, to show what TLS costs. For each of N files (100 by default): write 64 KiB at east and
close, then poll west (a stat every millisecond) until the name is visible and then until the
bytes read back identical. Reports p50/p99/max of both delays, and the load average before and
after (the machine may be shared). Targets on loopback: name p99 < 10 ms, bytes p99 < 25 ms.

    .venv/bin/python bench/visibility.py [--files 100] [--buckets file,s3] [--transports tls,plain]

Results: bench/results/visibility.json and .md.
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
from typing import Any

from harness.machine import default_root, machine_info
from harness.site import Up
from harness.timing import percentile



def measure(root: Path, files: int, size: int) -> dict[str, list[float]]:
    east, west = root / "east" / "mnt" / "vis", root / "west" / "mnt" / "vis"
    east.mkdir()
    deadline = time.monotonic() + 30
    while not west.is_dir():  # the directory itself first
        if time.monotonic() > deadline:
            raise RuntimeError("west never saw the directory")
        time.sleep(0.01)
    names, bytes_ = [], []
    for i in range(files):
        data = os.urandom(size)
        with open(east / f"f{i:04d}.bin", "wb") as handle:
            handle.write(data)
        closed = time.perf_counter()
        target = west / f"f{i:04d}.bin"
        while True:
            try:
                os.stat(target)
                break
            except FileNotFoundError:
                if time.perf_counter() - closed > 30:
                    raise RuntimeError(f"{target} not visible after 30 s") from None
                time.sleep(0.001)
        seen = time.perf_counter()
        while True:
            try:
                if target.read_bytes() == data:
                    break
            except OSError:
                pass
            if time.perf_counter() - closed > 30:
                raise RuntimeError(f"{target} bytes not readable after 30 s")
            time.sleep(0.001)
        readable = time.perf_counter()
        names.append(seen - closed)
        bytes_.append(readable - closed)
    return {"name": names, "bytes": bytes_}


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(values) * 1000, "p99_ms": percentile(values, 99) * 1000,
            "max_ms": max(values) * 1000}


def fmt_load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--buckets", default="file,s3")
    parser.add_argument("--transports", default="tls,plain",
                        help="between the sites: tls (the default of up), plain (--plain-http)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "visibility")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="meridian-visbench-", dir=default_root()))
    rows: list[dict[str, Any]] = []
    samples: dict[str, dict[str, list[float]]] = {}
    moto = None
    try:
        for kind in args.buckets.split(","):
            for transport in args.transports.split(","):
                root = scratch / f"{kind}-{transport}"
                extra: list[str] = ["--plain-http"] if transport == "plain" else []
                if kind == "s3":
                    from harness.rivals import MotoServer
                    if moto is None:
                        moto = MotoServer(scratch)  # its own process, as in compare_*.py
                    extra += ["--bucket", f"s3://{moto.bucket(f'visibility-{transport}')}",
                              "--endpoint-url", moto.endpoint]
                up = Up(root, *extra)
                try:
                    result = measure(root, args.files, args.size)
                finally:
                    up.stop()
                samples[f"{kind}-{transport}"] = result
                row = {"bucket": kind, "transport": transport, "name": summary(result["name"]),
                       "bytes": summary(result["bytes"])}
                rows.append(row)
                print(f"{kind} {transport}: name p50 {row['name']['p50_ms']:.1f} ms p99 "
                      f"{row['name']['p99_ms']:.1f} ms; bytes p50 {row['bytes']['p50_ms']:.1f} "
                      f"ms p99 {row['bytes']['p99_ms']:.1f} ms", flush=True)
    finally:
        if moto is not None:
            moto.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    command = (f".venv/bin/python bench/visibility.py --files {args.files} --size {args.size} "
               f"--buckets {args.buckets} --transports {args.transports}")
    load = {"before": list(load_before), "after": list(os.getloadavg())}
    result_doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "command": command, "files": args.files, "size": args.size, "load": load,
                  "machine": machine_info(scratch.parent), "rows": rows, "samples": samples}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result_doc, indent=2) + "\n")
    lines = ["# Cross-site visibility (two sites from `meridian up` on one machine)", "",
             f"{result_doc['date']}: {args.files} files of {args.size // 1024} KiB written and "
             "closed at east; time until west sees the name (stat succeeds) and until west reads "
             "identical bytes. Targets on loopback: name p99 < 10 ms, bytes p99 < 25 ms. "
             f"Load average (1, 5, 15 min) before {fmt_load(load['before'])}, after "
             f"{fmt_load(load['after'])} ({os.cpu_count()} CPUs).", "",
             "| bucket | between sites | name p50 | name p99 | name max | bytes p50 | bytes p99 "
             "| bytes max |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        n, b = row["name"], row["bytes"]
        lines.append(f"| {row['bucket']} | {row['transport']} | {n['p50_ms']:.1f} ms | {n['p99_ms']:.1f} ms | "
                     f"{n['max_ms']:.1f} ms | {b['p50_ms']:.1f} ms | {b['p99_ms']:.1f} ms | "
                     f"{b['max_ms']:.1f} ms |")
    lines += ["", f"Reproduce: `{command}`", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
