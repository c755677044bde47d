"""Where the writing site's CPU goes per small file: N files of 64 KiB written through east's
mount (``meridian up`` over moto, as in compare_smallfiles.py) until east's upload queue is
empty, with east's site process measured meanwhile.

    .venv/bin/python bench/profile_smallfiles.py [--files 500] [--kib 64] [--runs 3]
                                                 [--py-spy OUT.svg]

Prints per run: files/s to close, files/s until durable, and east's CPU seconds per file
(user + system, from /proc/PID/stat), which the load of other processes on a shared machine
barely moves, unlike wall time. ``--py-spy OUT`` records the last run with py-spy (needs
``pip install py-spy``; a flame graph SVG, or speedscope JSON for a ``.json`` OUT), sampling only
the thread that holds the GIL: where the site's Python CPU goes, not where threads wait.
``--fsyncs`` counts east's fsync and fdatasync calls per file with ``perf stat`` (the
syscall tracepoints; counted from the first write until durable, so a little idle work too).
Results are printed, not written under bench/results/ (a tool, not a table).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from harness.rivals import bench_scratch, pids_under, start
from harness.units import log


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=500)
    p.add_argument("--kib", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--py-spy", type=Path, default=None, dest="py_spy")
    p.add_argument("--fsyncs", action="store_true",
                   help="count east's fsync and fdatasync calls per file (perf stat)")
    args = p.parse_args(argv)
    n, size = args.files, args.kib << 10
    with bench_scratch("meridian-prof-small-") as (scratch, moto), contextlib.ExitStack() as st:
        c = start(st, "meridian", moto, scratch)
        if isinstance(c, str):
            raise SystemExit(c)
        east = [pid for pid in pids_under(scratch)
                if b"east/meridian.toml" in Path(f"/proc/{pid}/cmdline").read_bytes()
                and b"site\0run" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        if len(east) != 1:
            raise SystemExit(f"cannot tell east's site process: {east}")
        pid = east[0]
        per_file: list[float] = []
        for run in range(args.runs):
            folder = c.near / f"small-{run}"
            folder.mkdir()
            blob = os.urandom(n * size)
            paths = [folder / f"f{i:04d}.bin" for i in range(n)]
            os.sync()
            spy = None
            if args.py_spy and run == args.runs - 1:
                if shutil.which("py-spy") is None and not Path(".venv/bin/py-spy").exists():
                    raise SystemExit("py-spy is not installed")
                exe = shutil.which("py-spy") or ".venv/bin/py-spy"
                fmt = "speedscope" if args.py_spy.suffix == ".json" else "flamegraph"
                spy = subprocess.Popen([exe, "record", "-p", str(pid), "-o", str(args.py_spy),
                                        "-f", fmt, "-r", "200", "--nonblocking", "--gil"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            counter = None
            if args.fsyncs:
                counter = subprocess.Popen(
                    ["perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_fsync",
                     "-e", "syscalls:sys_enter_fdatasync", "-p", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(0.5)
            cpu0 = cpu_seconds(pid)
            started = time.perf_counter()
            for i, path in enumerate(paths):
                with open(path, "wb") as f:
                    f.write(blob[i * size:(i + 1) * size])
            closed = time.perf_counter() - started
            c.durable(paths)
            durable = time.perf_counter() - started
            cpu = cpu_seconds(pid) - cpu0
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
            per_file.append(cpu / n * 1e3)
            syncs = ""
            if counter is not None:
                counter.send_signal(2)
                _, err = counter.communicate(timeout=30)
                total = sum(int(line.split(",")[0]) for line in err.splitlines()
                            if "sys_enter_f" in line and line.split(",")[0].isdigit())
                syncs = f", {total / n:.2f} fsyncs/file"
            log(f"run {run}: {n / closed:,.1f} files/s to close, {n / durable:,.1f} durable, "
                f"east CPU {cpu / n * 1e3:.2f} ms/file{syncs}, load {os.getloadavg()[0]:.2f}")
            for path in paths:
                path.unlink()
            folder.rmdir()
            c.settle()
        print(f"east CPU per file, median of {len(per_file)}: {statistics.median(per_file):.2f} ms "
              f"(runs: {', '.join(f'{v:.2f}' for v in per_file)}); "
              f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
