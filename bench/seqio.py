"""Sequential write and read throughput of one large file: a Meridian mount against a plain
local directory on the same disk, all in one run.

Run it as ``make bench`` or ``.venv/bin/python bench/seqio.py [--size 1GiB] [--runs 5]``.

What it does:
  * makes a scratch folder (default: a temp folder next to the repository, on its disk; never a
    tmpfs), creates a site there with a local-directory bucket (file://), runs
    ``meridian site run`` as a subprocess and waits for the mount;
  * for each run, alternating which contender goes first, measures
      - sequential write of SIZE in 1 MiB writes, timed from open() to close() returning.
        Meridian commits durably on close; the local directory is timed write + fsync + close
        so both are "durable at the site". The local directory without fsync is a second
        baseline row;
      - sequential read of the same file in 1 MiB reads, "warm" (right after writing, page
        cache as it is) and "cold" (after ``sync`` and ``echo 3 > /proc/sys/vm/drop_caches``;
        for the mount the kernel's page cache is dropped, the content is still on the site's
        local volume, so "cold" is a read from the site's disk, not from the bucket);
  * between timed steps: ``sync`` and waiting until the site's upload queue is empty
    (``meridian status --json``), so neither write-back of the previous step nor the site's
    background upload to the bucket steals the disk from the next one;
  * the first run is a discarded warm-up; medians are over the other runs;
  * prints a table and writes OUT.json and OUT.md (default bench/results/seqio.*);
  * always stops the site (SIGINT, then kill and ``fusermount3 -u -z``) and removes the scratch
    folder, on error and on Ctrl-C too.

Every 1 MiB write carries a unique 16-byte stamp (which file, which offset) at its start, so no
content is ever deduplicated (Meridian stores content by hash); the rest of each write comes
from one 64 MiB random buffer generated once.

Stdlib only, plus the meridian package (run as ``python -m meridian.cli.main``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.machine import (REPO, can_drop_caches, default_root, drop_caches, is_mounted,
                             machine_info, mem_available, mount_of, mount_read_ahead_kb)
from harness.site import Site, Watchdog
from harness.timing import (BUSY_FOREIGN_CPU, CpuMeter, prime_memory, read_file, verify_file,
                            write_file)
from harness.units import BUFFER, CHUNK, MB, human, log, parse_size, parse_size_or_zero


# figure key -> (label, local contender, meridian contender)
FIGURES: list[tuple[str, str, str, str]] = [
    ("write", "write, durable (local: +fsync)", "local-fsync", "meridian"),
    ("write-nofsync", "write, local WITHOUT fsync", "local-nofsync", "meridian"),
    ("read-warm", "read, warm", "local", "meridian"),
    ("read-cold", "read, cold (drop_caches)", "local", "meridian"),
]
LEGEND = [
    "write, durable: open + 1 MiB writes + close; the local directory also fsyncs before close "
    "(Meridian commits durably on close), so both are durable at the site",
    "write, local WITHOUT fsync: the local directory's write + close alone (page cache only), "
    "against the same Meridian samples",
    "read, warm: right after writing, page cache as it is",
    "read, cold: after sync + echo 3 > /proc/sys/vm/drop_caches; for the mount the kernel's page "
    "cache is dropped but the content is still on the site's local volume (a read from the "
    "site's disk, not a fetch from the bucket)",
    f"*: other processes used more than {BUSY_FOREIGN_CPU} CPUs during that sample (a shared "
    "machine: someone's tests, say); it is kept in the median, so rerun on a quiet machine",
]


# -- the benchmark ------------------------------------------------------------------------------
@dataclass
class Samples:
    # figure -> contender -> list of (run, seconds, CPUs used by other processes meanwhile)
    data: dict[str, dict[str, list[tuple[int, float, float]]]] = field(default_factory=dict)
    last_foreign: float = 0.0

    def add(self, figure: str, contender: str, run: int, seconds: float) -> None:
        self.data.setdefault(figure, {}).setdefault(contender, []).append(
            (run, seconds, self.last_foreign))


def run_benchmark(args: argparse.Namespace, site: Site, local: Path, samples: Samples,
                  notes: dict[str, Any], watchdog: Watchdog) -> None:
    size, runs = args.size, args.runs
    log(f"generating a {human(BUFFER)} random buffer")
    buf = bytearray(os.urandom(BUFFER))
    cold = can_drop_caches()
    if not cold:
        log("cannot write /proc/sys/vm/drop_caches (not root?): the cold-read figure is skipped")
        notes["cold_skipped"] = "no permission to write /proc/sys/vm/drop_caches"
    paths = {"meridian": site.mount / "seqio.bin", "local": local / "seqio.bin",
             "local-nofsync": local / "seqio-nofsync.bin"}
    upload_waits: list[float] = []
    prime_seconds: list[float] = []

    def timed(what: str, fn: Any, *fn_args: Any, **fn_kwargs: Any) -> float:
        """Prime memory (untimed), then run one timed step under the watchdog."""
        site.check_alive()
        if args.prime:
            prime_seconds.append(prime_memory(args.prime))
        meter = CpuMeter([os.getpid()] + ([site.process.pid] if site.process else []))
        watchdog.arm(args.step_timeout, what)
        try:
            meter.start()
            seconds = float(fn(*fn_args, **fn_kwargs))
            samples.last_foreign = meter.stop()
            return seconds
        finally:
            watchdog.disarm()

    def settle(wait_uploads: bool = False) -> float | None:
        watchdog.arm(args.step_timeout, "sync / waiting for the upload queue")
        try:
            os.sync()
            site.check_alive()
            return site.wait_uploads_idle(timeout=args.step_timeout) if wait_uploads else None
        finally:
            watchdog.disarm()

    for run in range(runs):
        label = "warm-up" if run == 0 else f"{run}/{runs - 1}"
        flip = run % 2 == 1  # alternate who goes first
        log(f"run {run + 1}/{runs} ({label}), {'local' if flip else 'Meridian'} first")
        tag_base = (run + 1) << 8

        def say(figure: str, who: str, seconds: float) -> None:
            busy = (f"  * other processes used {samples.last_foreign:.2f} CPUs meanwhile"
                    if samples.last_foreign > BUSY_FOREIGN_CPU else "")
            log(f"  {figure:<13} {who:<14} {size / seconds / MB:9.1f} MB/s  ({seconds:.3f} s)"
                + busy)

        # writes: Meridian, local+fsync, local without fsync (reversed on odd runs)
        order = ["meridian", "local-fsync", "local-nofsync"]
        for who in (reversed(order) if flip else order):
            if who == "meridian":
                seconds = timed("write meridian", write_file, paths["meridian"], size, buf,
                                tag_base | 1, fsync=False)
                samples.add("write", "meridian", run, seconds)
                samples.add("write-nofsync", "meridian", run, seconds)
            elif who == "local-fsync":
                seconds = timed("write local", write_file, paths["local"], size, buf,
                                tag_base | 2, fsync=True)
                samples.add("write", "local-fsync", run, seconds)
            else:
                seconds = timed("write local (no fsync)", write_file, paths["local-nofsync"],
                                size, buf, tag_base | 3, fsync=False)
                samples.add("write-nofsync", "local-nofsync", run, seconds)
            say("write", who, seconds)
            if who == "local-nofsync":
                os.sync()  # untimed: its write-back must not land in the next step
                paths["local-nofsync"].unlink()
            waited = settle(wait_uploads=who == "meridian")
            if waited is not None:
                upload_waits.append(waited)
        for who in ("meridian", "local"):
            st = os.stat(paths[who])
            if st.st_size != size:
                raise RuntimeError(f"{paths[who]} is {st.st_size} bytes after writing, "
                                   f"expected {size}")

        pair = ["local", "meridian"] if flip else ["meridian", "local"]
        for who in pair:
            seconds = timed(f"warm read {who}", read_file, paths[who], size)
            samples.add("read-warm", who, run, seconds)
            say("read-warm", who, seconds)
        if cold:
            for who in pair:
                drop_caches()
                seconds = timed(f"cold read {who}", read_file, paths[who], size)
                samples.add("read-cold", who, run, seconds)
                say("read-cold", who, seconds)
        if run == 0:
            log("  verifying the Meridian file's bytes (untimed)")
            watchdog.arm(args.step_timeout, "verifying")
            verify_file(paths["meridian"], size, buf, tag_base | 1)
            watchdog.disarm()

        for who in ("meridian", "local"):
            paths[who].unlink()
        settle(wait_uploads=True)
    notes["upload_queue_idle_after_meridian_write_s"] = [round(w, 2) for w in upload_waits]
    if prime_seconds:
        notes["prime_seconds_median"] = round(statistics.median(prime_seconds), 2)


def summarize(samples: Samples, size: int) -> list[dict[str, Any]]:
    rows = []
    for key, label, local_name, meridian_name in FIGURES:
        if key not in samples.data:
            continue
        row: dict[str, Any] = {"figure": key, "label": label,
                               "local_contender": local_name, "meridian_contender": meridian_name}
        for side, who in (("local", local_name), ("meridian", meridian_name)):
            values = samples.data[key].get(who, [])
            all_mbs = [{"run": r, "seconds": round(s, 4), "MB_s": round(size / s / MB, 1),
                        "warmup": r == 0, "other_processes_cpus": round(f, 2),
                        "busy": f > BUSY_FOREIGN_CPU} for r, s, f in values]
            kept = [v["MB_s"] for v in all_mbs if not v["warmup"]]
            row[side] = {"samples": all_mbs,
                         "median_MB_s": round(statistics.median(kept), 1) if kept else None}
        lm, mm = row["local"]["median_MB_s"], row["meridian"]["median_MB_s"]
        row["ratio_meridian_over_local"] = round(mm / lm, 3) if lm and mm else None
        rows.append(row)
    return rows


def table_lines(rows: list[dict[str, Any]], markdown: bool) -> list[str]:
    header = ["figure", "local MB/s (median)", "Meridian MB/s (median)", "Meridian/local",
              "local runs (warm-up first, in brackets)", "Meridian runs (warm-up first)"]

    def runs(side: dict[str, Any]) -> str:
        parts = [(f"[{v['MB_s']:.0f}]" if v["warmup"] else f"{v['MB_s']:.0f}")
                 + ("*" if v.get("busy") else "") for v in side["samples"]]
        return " ".join(parts)

    body = []
    for row in rows:
        ratio = row["ratio_meridian_over_local"]
        body.append([row["label"], f"{row['local']['median_MB_s']:.0f}",
                     f"{row['meridian']['median_MB_s']:.0f}",
                     f"{ratio:.2f}" if ratio is not None else "-",
                     runs(row["local"]), runs(row["meridian"])])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return lines
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in body]
    return out


def reproduce_command(argv: list[str]) -> str:
    exe = Path(sys.executable)
    try:
        exe_s = str(exe.absolute().relative_to(REPO))
    except ValueError:
        exe_s = str(exe)
    script = Path(__file__).resolve()
    try:
        script_s = str(script.relative_to(REPO))
    except ValueError:
        script_s = str(script)
    env = [f"PYTHONPATH={os.environ['PYTHONPATH']}"] if os.environ.get("PYTHONPATH") else []
    return shlex.join([*env, exe_s, script_s, *argv]) + f"   # in {REPO}"


def write_results(out: Path, result: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_name(out.name + ".json")
    md_path = out.with_name(out.name + ".md")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    disk = m["disk_of_root"]
    notes = result["notes"]
    lines = [
        "# Sequential I/O: Meridian mount vs. local directory",
        "",
        f"{result['date']} — size {human(result['size'])} in 1 MiB writes/reads, "
        f"{result['runs']} runs (first discarded as warm-up, median of {result['runs'] - 1}); "
        "MB = 10^6 bytes.",
        "",
        *table_lines(rows, markdown=True),
        "",
        "Reproduce (from the repository root):",
        "",
        "```",
        result["command"].split("   # in ")[0],
        "```",
        "",
        f"Machine: {m['nproc']} CPUs, MemTotal {m['MemTotal']}, kernel {m['kernel']}, "
        f"{m.get('os', '')}, Python {m['python']}, meridian {m.get('meridian_version')} "
        f"(git {m.get('git', '?')}; package {m.get('meridian_package')}), {m.get('fuse', '')}.",
        f"Scratch disk: {disk['device']} ({disk['fstype']}, mounted at {disk['mountpoint']}, "
        f"{human(disk['size'])}); the site's volume, its file:// bucket and the local directory "
        "are all on it.",
        "",
        "Notes:",
        "",
        "- Write is timed from open() to close() returning. Meridian commits the file durably "
        "on close (hash, fsync, rename into its volume); the local directory is timed "
        "write + fsync + close so both are durable at the site. The 'WITHOUT fsync' row is the "
        "local directory's write + close alone (page cache only), against the same Meridian "
        "samples.",
        "- Warm read: right after writing, page cache as it is. Cold read: after `sync` and "
        "`echo 3 > /proc/sys/vm/drop_caches`; for the mount that drops the kernel's page cache, "
        "but the content is still on the site's local volume: it is a read from the site's "
        "disk, not a fetch from the bucket. The disk may itself be cached by the host.",
        "- Between timed steps: `sync`, and after a Meridian write, waiting until "
        "`meridian status --json` shows uploads.queued == 0, so neither write-back nor the "
        "background upload to the bucket overlaps the next measurement. The order of the "
        "contenders alternates from run to run.",
        (f"- Before every timed step, {human(result['prime_bytes_before_each_step'])} of memory "
         "is touched and freed (untimed)." if result['prime_bytes_before_each_step'] else
         "- NO memory priming (`--prime 0`): expect the order effect described here.") +
        " This VM's balloon hands free memory back to the host "
        f"(free page reporting: {m.get('free_page_reporting')}), so the first touch of memory "
        "not used lately costs a host page fault per page: a plain page-cache write ran at "
        "~0.5 GB/s into such memory and ~4.8 GB/s into just-freed memory. Without priming, "
        "whichever contender ran right after the previous files were deleted won by up to 10x "
        "(`--prime 0` shows it).",
        f"- Seconds from a Meridian write's close until the upload queue was empty (file:// "
        f"bucket on the same disk; polled with `meridian status`, ~0.3 s resolution): "
        f"{notes.get('upload_queue_idle_after_meridian_write_s')}",
        f"- The mount's kernel read-ahead during the run: {notes.get('mount_read_ahead_kb')} KiB.",
    ]
    busy = sum(1 for r in rows for side in ("local", "meridian")
               for v in r[side]["samples"] if v["busy"])
    lines.append(f"- `*` after a value: other processes used more than {BUSY_FOREIGN_CPU} CPUs "
                 f"during that sample (shared machine); {busy} such sample(s) here, kept in the "
                 "medians. Per-sample figures are in seqio.json (other_processes_cpus).")
    if notes.get("cold_skipped"):
        lines.append(f"- Cold read skipped: {notes['cold_skipped']}")
    if notes.get("site_log_problems"):
        lines.append(f"- The site logged {len(notes['site_log_problems'])} warning/error "
                     "line(s); see seqio.json.")
    md_path.write_text("\n".join(lines) + "\n")
    log(f"wrote {json_path} and {md_path}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=1 << 30,
                        help="file size, e.g. 1GiB (default), 512MiB")
    parser.add_argument("--runs", type=int, default=5,
                        help="runs per figure, the first a discarded warm-up (default 5)")
    parser.add_argument("--root", type=Path, default=None,
                        help="where to make the scratch folder (default: the repository's "
                             "parent folder, on its disk; a tmpfs is refused)")
    parser.add_argument("--prime", type=parse_size_or_zero, default=None,
                        help="memory touched and freed (untimed) before every timed step, "
                             "e.g. 3GiB; 0 disables (default: 3 x SIZE, at most half of "
                             "MemAvailable). See prime_memory()")
    parser.add_argument("--step-timeout", type=float, default=600.0,
                        help="seconds one step may take before the site is killed (default 600)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "seqio",
                        help="output path prefix: writes OUT.json and OUT.md "
                             "(default bench/results/seqio)")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2 (the first run is a discarded warm-up)")

    if args.prime is None:
        args.prime = min(3 * args.size, mem_available() // 2)
    args.prime -= args.prime % CHUNK
    root = (args.root or default_root()).absolute()
    created_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    fstype = mount_of(root)["fstype"]
    if fstype in ("tmpfs", "ramfs"):
        parser.error(f"{root} is on {fstype}: give --root on a real disk")
    need = args.size * 4 + (256 << 20)  # local file, nofsync file, volume copy, bucket copy
    avail = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    if avail < need:
        parser.error(f"{root} has {human(avail)} free, needs about {human(need)}")

    # SIGTERM behaves like Ctrl-C: clean up and leave
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    machine = machine_info(root)
    disk = machine["disk_of_root"]
    scratch = Path(tempfile.mkdtemp(prefix="meridian-seqio-", dir=root))
    log(f"scratch folder {scratch} on {disk['device']} ({disk['fstype']}, mounted at "
        f"{disk['mountpoint']}); size {human(args.size)}, {args.runs} runs")
    site = Site(scratch)
    local = scratch / "local"
    samples = Samples()
    notes: dict[str, Any] = {}
    started = time.monotonic()
    code = 0
    watchdog = Watchdog(site)
    try:
        local.mkdir()
        site.init()
        watchdog.arm(120, "starting the site")  # reading site.json blocks if the mount hangs
        site.start()
        watchdog.disarm()
        notes["mount_read_ahead_kb"] = mount_read_ahead_kb(site.mount)
        log(f"site mounted at {site.mount} (pid {site.process.pid if site.process else '?'}; "
            f"log {site.log_path}); priming {human(args.prime)} before each timed step")
        run_benchmark(args, site, local, samples, notes, watchdog)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        code = 130
    except Exception as exc:  # report, clean up, exit non-zero
        log(f"FAILED: {exc}")
        tail = site.log_tail()
        if tail.strip():
            log("---- site log (tail) ----\n" + tail + "\n-------------------------")
        code = 1
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish cleaning up
        watchdog.close()
        if watchdog.fired:
            log(f"the watchdog killed the site during: {watchdog.fired}")
        try:
            notes["site_log_problems"] = site.log_problems()
            stopped = site.stop()
            log(f"site {stopped}")
            notes["site_stop"] = stopped
            if is_mounted(site.mount):
                log(f"WARNING: {site.mount} is still mounted; not removing {scratch}")
                code = code or 1
            else:
                shutil.rmtree(scratch, ignore_errors=True)
                if created_root:
                    shutil.rmtree(root, ignore_errors=True)
                log(f"removed {scratch}")
        finally:
            signal.signal(signal.SIGINT, previous)
    if code:
        return code

    rows = summarize(samples, args.size)
    result = {
        "benchmark": "seqio",
        "date": dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "command": reproduce_command(argv),
        "machine": machine,
        "size": args.size,
        "chunk": CHUNK,
        "runs": args.runs,
        "warmup_runs": 1,
        "prime_bytes_before_each_step": args.prime,
        "MB": "10^6 bytes",
        "seconds_total": round(time.monotonic() - started, 1),
        "figures": rows,
        "medians_MB_s": {r["figure"]: {"local": r["local"]["median_MB_s"],
                                       "meridian": r["meridian"]["median_MB_s"]} for r in rows},
        "ratios_meridian_over_local": {r["figure"]: r["ratio_meridian_over_local"]
                                       for r in rows},
        "notes": notes,
    }
    print()
    print(f"Sequential I/O, {human(args.size)}, median of {args.runs - 1} runs after a warm-up "
          f"(MB = 10^6 bytes); scratch on {disk['device']} ({disk['fstype']})")
    for line in table_lines(rows, markdown=False):
        print(line)
    for line in LEGEND:
        print("  - " + line)
    busy = sum(1 for r in rows for side in ("local", "meridian")
               for v in r[side]["samples"] if v["busy"])
    if busy:
        print(f"WARNING: {busy} sample(s) ran while other processes were busy (marked *): "
              "rerun on a quiet machine for clean figures")
    if notes.get("site_log_problems"):
        print(f"the site logged {len(notes['site_log_problems'])} warning/error line(s); "
              "see the JSON's notes")
    write_results(args.out.absolute(), result, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
