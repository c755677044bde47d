"""Where the writing site's CPU goes per small file: N files of 64 KiB written through east's
mount (``meridian up`` over moto, as in compare_smallfiles.py) until east's upload queue is
empty, with east's site process measured meanwhile.

    .venv/bin/python bench/profile_smallfiles.py [--files 500] [--kib 64] [--runs 3]
                                                 [--py-spy OUT.svg]

Prints per run: files/s to close, files/s until durable, and east's CPU seconds per file
(user + system, from /proc/PID/stat), which the load of other processes on a shared machine
barely moves, unlike wall time. ``--py-spy OUT`` records the last run with py-spy (needs
``pip install py-spy``; a flame graph SVG, speedscope JSON for a ``.json`` OUT, collapsed stacks
for a ``.txt`` OUT, which ``--top`` sums per function), sampling only
the thread that holds the GIL: where the site's Python CPU goes, not where threads wait.
``--fsyncs`` counts east's fsync and fdatasync calls per file with ``perf stat`` (the
syscall tracepoints; counted from the first write until durable, so a little idle work too).
``--against SRC`` alternates runs of this checkout with runs of another copy of the package
(e.g. ``git archive HEAD~3 src | tar -x -C /tmp/base``, then ``--against /tmp/base/src``),
each on fresh sites, so a change is measured before/after in the same minutes. Each run also
gives the client's median time per step (open = LOOKUP + CREATE, write, close = FLUSH).
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

from harness.rivals import Contender, bench_scratch, pids_under, start
from harness.timing import cpu_seconds
from harness.units import log


def east_pid(scratch: Path, root: Path) -> int:
    """The site process of east under ``root`` (one contender's folder)."""
    east = []
    for pid in pids_under(scratch):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if f"{root}/east/meridian.toml".encode() in cmdline and b"site\0run" in cmdline:
            east.append(pid)
    if len(east) != 1:
        raise SystemExit(f"cannot tell east's site process: {east}")
    return east[0]


def one_run(c: Contender, pid: int, folder: Path, n: int, size: int,
            py_spy: Path | None, fsyncs: bool) -> dict[str, float]:
    """Write ``n`` files into ``folder`` at east's mount, each timed per step; wait until
    durable. Returns files/s, CPU ms per file and the client's median µs per step."""
    folder.mkdir()
    blob = os.urandom(n * size)
    paths = [folder / f"f{i:04d}.bin" for i in range(n)]
    os.sync()
    spy = None
    if py_spy is not None:
        if shutil.which("py-spy") is None and not Path(".venv/bin/py-spy").exists():
            raise SystemExit("py-spy is not installed")
        exe = shutil.which("py-spy") or ".venv/bin/py-spy"
        fmt = {".json": "speedscope", ".txt": "raw"}.get(py_spy.suffix, "flamegraph")
        spy = subprocess.Popen([exe, "record", "-p", str(pid), "-o", str(py_spy),
                                "-f", fmt, "-r", "200", "--nonblocking", "--gil"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    counter = None
    if fsyncs:
        counter = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_fsync",
             "-e", "syscalls:sys_enter_fdatasync", "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
    steps: dict[str, list[float]] = {"open": [], "write": [], "close": []}
    clock = time.perf_counter
    cpu0 = cpu_seconds(pid)
    started = clock()
    for i, path in enumerate(paths):
        t0 = clock()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        t1 = clock()
        os.write(fd, blob[i * size:(i + 1) * size])
        t2 = clock()
        os.close(fd)
        t3 = clock()
        steps["open"].append(t1 - t0)
        steps["write"].append(t2 - t1)
        steps["close"].append(t3 - t2)
    closed = clock() - started
    c.durable(paths)
    durable = clock() - started
    cpu = cpu_seconds(pid) - cpu0
    if spy is not None:
        spy.send_signal(2)
        spy.wait(timeout=60)
    result = {"to_close": n / closed, "durable": n / durable, "cpu_ms": cpu / n * 1e3,
              "load": os.getloadavg()[0]}
    for step, times in steps.items():
        result[f"{step}_us"] = statistics.median(times) * 1e6
    if counter is not None:
        counter.send_signal(2)
        _, err = counter.communicate(timeout=30)
        total = sum(int(line.split(",")[0]) for line in err.splitlines()
                    if "sys_enter_f" in line and line.split(",")[0].isdigit())
        result["fsyncs"] = total / n
    for path in paths:
        path.unlink()
    folder.rmdir()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=500)
    p.add_argument("--kib", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--py-spy", type=Path, default=None, dest="py_spy")
    p.add_argument("--fsyncs", action="store_true",
                   help="count east's fsync and fdatasync calls per file (perf stat)")
    p.add_argument("--against", type=Path, default=None, metavar="SRC",
                   help="A/B: alternate runs of this checkout with runs of the package under "
                        "SRC (a folder holding meridian/, put first on PYTHONPATH), each run "
                        "with freshly started sites")
    args = p.parse_args(argv)
    if args.against is not None and not (args.against / "meridian" / "__init__.py").exists():
        raise SystemExit(f"--against {args.against}: no meridian/__init__.py there")
    n, size = args.files, args.kib << 10
    variants: list[tuple[str, Path | None]] = [("this checkout", None)]
    if args.against is not None:
        variants.append((f"against {args.against}", args.against))
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in variants}
    with bench_scratch("meridian-prof-small-") as (scratch, moto):
        shared = None
        if len(variants) == 1:  # one site pair for every run, as before
            shared = contextlib.ExitStack()
            c0 = start(shared, "meridian", moto, scratch)
            if isinstance(c0, str):
                raise SystemExit(c0)
        try:
            for run in range(args.runs):
                order = variants if run % 2 == 0 else variants[::-1]
                for label, src in order:
                    with contextlib.ExitStack() as st:
                        if shared is None:
                            before = os.environ.get("PYTHONPATH")
                            if src is not None:
                                os.environ["PYTHONPATH"] = str(src.resolve())
                            try:
                                c = start(st, "meridian", moto, scratch, name=f"m{run}{label[0]}")
                            finally:
                                os.environ.pop("PYTHONPATH", None)
                                if before is not None:
                                    os.environ["PYTHONPATH"] = before
                        else:
                            c = c0
                        if isinstance(c, str):
                            raise SystemExit(c)
                        assert c.root is not None
                        pid = east_pid(scratch, c.root)
                        spy = args.py_spy if run == args.runs - 1 else None
                        if spy is not None and src is not None:
                            spy = spy.with_name(f"{spy.stem}-against{spy.suffix}")
                        r = one_run(c, pid, c.near / f"small-{run}", n, size, spy, args.fsyncs)
                        results[label].append(r)
                        syncs = f", {r['fsyncs']:.2f} fsyncs/file" if "fsyncs" in r else ""
                        log(f"run {run} {label}: {r['to_close']:,.1f} files/s to close, "
                            f"{r['durable']:,.1f} durable, east CPU {r['cpu_ms']:.2f} ms/file, "
                            f"client open/write/close {r['open_us']:.0f}/{r['write_us']:.0f}/"
                            f"{r['close_us']:.0f} µs{syncs}, load {r['load']:.2f}")
                        c.settle()
        finally:
            if shared is not None:
                shared.close()
    for label, rows in results.items():
        def spread(key: str, fmt: str) -> str:
            values = sorted(r[key] for r in rows)
            return (f"{statistics.median(values):{fmt}} ({values[0]:{fmt}}–{values[-1]:{fmt}})")
        print(f"{label}, medians of {len(rows)} (lowest–highest): durable "
              f"{spread('durable', ',.1f')} files/s, to close {spread('to_close', ',.1f')}, "
              f"east CPU {spread('cpu_ms', '.2f')} ms/file, client µs open "
              f"{spread('open_us', '.0f')} write {spread('write_us', '.0f')} close "
              f"{spread('close_us', '.0f')}; load {spread('load', '.2f')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
