"""The README's benchmark table, built from the files one ``make bench`` run wrote.

Reads every ``bench/results/*.json`` (nothing is measured here), and writes
``bench/results/summary.md``: one row per figure the issues set a target for or that a user
compares contenders by, Meridian's median with the lowest and highest of its runs, the rivals'
medians from the same script's run, the target, and whether it is met. It also states the span
of dates the results files were written in, and names any file older than the rest of the run
(a script ``make bench`` no longer runs, or a run that stopped half-way), so that a table cannot
quietly mix runs.

With ``--readme README.md`` it also replaces the part of the README between
``<!-- bench-summary:start -->`` and ``<!-- bench-summary:end -->`` with the same table.

    .venv/bin/python bench/summary.py [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
START, END = "<!-- bench-summary:start -->", "<!-- bench-summary:end -->"
STALE = timedelta(hours=3)  # a file older than the newest by more than this is from another run


@dataclass
class Spread:
    """A median with the lowest and highest value it was taken from."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        finite = [v for v in values if v == v]
        return cls(statistics.median(finite), min(finite), max(finite)) if finite else None


def number(v: float) -> str:
    if v == float("inf"):
        return "> bound"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def show(s: Spread | None) -> str:
    if s is None:
        return "not run"
    if s.low == s.high:
        return number(s.median)
    return f"{number(s.median)} ({number(s.low)}–{number(s.high)})"


class Results:
    """The JSON files of bench/results/, loaded once; missing files give empty answers."""

    def __init__(self, folder: Path) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        for path in sorted(folder.glob("*.json")):
            try:
                self.docs[path.stem] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as error:
                print(f"summary: skipping {path.name}: {error}", file=sys.stderr)

    def get(self, name: str) -> dict[str, Any]:
        return self.docs.get(name, {})

    def compare(self, script: str, figure: str, contender: str) -> Spread | None:
        """One contender's samples of one figure of a compare_*.py results file."""
        samples = self.get(f"compare_{script}").get("samples", {}).get(figure, {}).get(contender)
        if not samples:
            return None
        return Spread.of([float("inf") if v == "timeout" else float(v) for v, _busy in samples])

    def dates(self) -> dict[str, datetime]:
        out = {}
        for name, doc in self.docs.items():
            stamp = doc.get("date") or doc.get("when")
            if isinstance(stamp, str):
                out[name] = datetime.fromisoformat(stamp)
        return out


@dataclass
class Row:
    figure: str
    meridian: Spread | None
    others: str
    target: str
    met: Callable[[Spread], bool | None] | None = None

    def status(self) -> str:
        if self.met is None or self.meridian is None:
            return ""
        verdict = self.met(self.meridian)
        return "" if verdict is None else ("met" if verdict else "not met")


def rival(label: str, s: Spread | None) -> str:
    return f"{label} {show(s)}" if s is not None else f"{label}: not run"


def ceiling(r: Results) -> str:
    """What caps the small-files row here, each part measured alone (smallfile_ceiling.py)."""
    samples = r.get("smallfile_ceiling").get("samples", {})

    def part(key: str) -> str:
        return show(Spread.of(samples.get(key) or []))
    per_put = Spread.of(samples.get("moto CPU per PUT (ms)") or [])
    if per_put is None:
        return ""
    return (f"; the ceilings here, each alone: moto {number(1000 / per_put.median)} PUT/s with a "
            f"core to itself ({show(per_put)} ms of CPU a PUT), so as many "
            "files/s for any contender that PUTs each file; a pyfuse3 file system doing nothing "
            f"{part('pyfuse3 doing nothing, to close (files/s)')}; the durable close's fsyncs "
            f"{part('durable chain on this disk (files/s)')}; Meridian with no peer and a "
            f"file:// bucket {part('Meridian one site, durable (files/s)')}")


def rows(r: Results) -> list[Row]:
    out: list[Row] = []
    api = r.get("api_roundtrip").get("round_trip")
    if api:
        s = Spread(api["median_of_run_medians_ms"], api["min_run_median_ms"],
                   api["max_run_median_ms"])
        out.append(Row("site API round trip on loopback, p50 of a run (ms)", s, "",
                       "< 2 ms", lambda m: m.median < 2))
    wake = r.get("api_roundtrip").get("wakeup")
    if wake:
        out.append(Row("a create → the peer's journal long poll answers, p50 (ms)",
                       Spread(wake["median_of_run_medians_ms"], wake["min_run_median_ms"],
                              wake["max_run_median_ms"]), "", ""))
    streamed = r.get("api_roundtrip").get("stream_wakeup")
    if streamed:
        out.append(Row("a create → its line in the peer's journal stream (what links read), "
                       "p50 (ms)", Spread(streamed["median_of_run_medians_ms"],
                                          streamed["min_run_median_ms"],
                                          streamed["max_run_median_ms"]), "", ""))
    name99 = r.compare("visibility", "name-p99", "meridian")
    s3fs_name = r.compare("visibility", "name-p99", "s3fs")
    out.append(Row("close at east → name visible at west, p99 (ms)", name99,
                   "; ".join([rival("s3fs", s3fs_name),
                              rival("rclone", r.compare("visibility", "name-p99", "rclone")),
                              rival("rclone `--dir-cache-time 1s`", r.compare(
                                  "visibility", "name-p99", "rclone:dir-cache-time-1s"))]),
                   "< 10 ms and ≤ s3fs",
                   lambda m: m.median < 10 and (s3fs_name is None or m.median <= s3fs_name.median)))
    out.append(Row("close at east → 64 KiB readable at west, p99 (ms)",
                   r.compare("visibility", "bytes-p99", "meridian"),
                   rival("s3fs", r.compare("visibility", "bytes-p99", "s3fs")), "< 25 ms",
                   lambda m: m.median < 25))
    tuned = r.compare("smallfiles", "write-durable", "rclone:write-back-0s")
    out.append(Row("500 × 64 KiB written, durable in the bucket (files/s)",
                   r.compare("smallfiles", "write-durable", "meridian"),
                   "; ".join([rival("rclone", r.compare("smallfiles", "write-durable", "rclone")),
                              rival("rclone `--vfs-write-back 0s`", tuned),
                              rival("s3fs", r.compare("smallfiles", "write-durable", "s3fs")),
                              rival("local + fsync", r.compare("smallfiles", "write-durable",
                                                              "local"))]) + ceiling(r),
                   "≥ 3× tuned rclone",
                   lambda m: None if tuned is None else m.median >= 3 * tuned.median))
    for op, unit in (("create", "ops/s"), ("stat", "ops/s"), ("rename", "ops/s"),
                     ("unlink", "ops/s"), ("list", "ms")):
        base = r.compare("metadata", op, "rclone")
        better = unit != "ms"
        out.append(Row(f"{op} {'the folder of ' if op == 'list' else ''}2,000 files ({unit})",
                       r.compare("metadata", op, "meridian"),
                       "; ".join([rival("rclone", base),
                                  rival("s3fs", r.compare("metadata", op, "s3fs")),
                                  rival("local", r.compare("metadata", op, "local"))]),
                       "≤ rclone" if op == "list" else "≥ 1× rclone",
                       lambda m, base=base, better=better: None if base is None else (
                           m.median >= base.median if better else m.median <= base.median)))
    first = r.get("first_read").get("MB_s", {})
    local_reads = first.get("local directory")
    meridian_reads = first.get("Meridian, write-through (default)")
    if meridian_reads and local_reads:
        local_first = Spread.of([run[0] for run in local_reads])
        out.append(Row("512 MiB read right after writing it (MB/s)",
                       Spread.of([run[0] for run in meridian_reads]),
                       "; ".join([rival("local", local_first), rival(
                           "Meridian `writeback_cache = true`",
                           Spread.of([run[0] for run in first.get(
                               "Meridian, writeback_cache = true", [])]))]),
                       "≥ 0.7× local",
                       lambda m: None if local_first is None else
                       m.median >= 0.7 * local_first.median))
    local_sync = r.compare("seqio", "write-site", "local")
    out.append(Row("512 MiB written, durable on the site's disk (MB/s)",
                   r.compare("seqio", "write-site", "meridian"), rival("local + fsync", local_sync),
                   "≥ 0.5× local + fsync",
                   lambda m: None if local_sync is None else m.median >= 0.5 * local_sync.median))
    out.append(Row("512 MiB written, durable in the bucket (MB/s)",
                   r.compare("seqio", "write-durable", "meridian"),
                   "; ".join([rival("rclone", r.compare("seqio", "write-durable", "rclone")),
                              rival("rclone `--vfs-write-back 0s`", r.compare(
                                  "seqio", "write-durable", "rclone:write-back-0s")),
                              rival("s3fs", r.compare("seqio", "write-durable", "s3fs"))]), ""))
    local_warm = r.compare("seqio", "read-warm", "local")
    out.append(Row("512 MiB read, warm (MB/s)", r.compare("seqio", "read-warm", "meridian"),
                   "; ".join([rival("local", local_warm),
                              rival("rclone", r.compare("seqio", "read-warm", "rclone"))]),
                   "≥ 0.7× local",
                   lambda m: None if local_warm is None else m.median >= 0.7 * local_warm.median))
    get = r.compare("playback", "cold", "s3-get")
    out.append(Row("far-site playback, 40 × 12 MiB, cold with read-ahead (frames/s)",
                   r.compare("playback", "cold-ra", "meridian"),
                   "; ".join([rival("S3 GET", get),
                              rival("rclone", r.compare("playback", "cold", "rclone")),
                              rival("s3fs", r.compare("playback", "cold", "s3fs"))]),
                   "≥ 0.8× S3 GET", lambda m: None if get is None else m.median >= 0.8 * get.median))
    out.append(Row("far-site playback, warm (frames/s)", r.compare("playback", "warm", "meridian"),
                   "; ".join([rival("rclone", r.compare("playback", "warm", "rclone")),
                              rival("s3fs", r.compare("playback", "warm", "s3fs"))]),
                   "≥ 24", lambda m: m.median >= 24))
    join = r.get("join")
    if join.get("join_s"):
        out.append(Row(f"a new site joins a namespace of {join.get('files', 0):,} files (s)",
                       Spread.of(join["join_s"]), "", "< 60 s", lambda m: m.median < 60))
    pre = r.get("prepositioning")
    if pre.get("samples_s"):
        ms = [v * 1000 for v in pre["samples_s"]]
        p99 = sorted(ms)[max(0, round(0.99 * len(ms)) - 1)]
        out.append(Row(f"a `.clip` rewritten at west, on east's volume by its Objective, p50 "
                       f"(ms; p99 {number(p99)})", Spread.of(ms), "", "p99 < 1 s",
                       lambda m: p99 < 1000))
    paint = r.get("console_paint").get("first_contentful_paint_ms")
    big = r.get("console_paint_1000000").get("first_contentful_paint_ms")
    for files, doc in (("10,000", paint), ("1,000,000", big)):
        if doc:
            out.append(Row(f"console Files view of {files} files, first paint (ms)",
                           Spread(doc["median"], doc["min"], doc["max"]), "", ""))
    undo = r.get("undo").get("row")
    if undo:
        out.append(Row(f"`rm -rf` of {r.get('undo').get('files', 0):,} files at east, then "
                       "`meridian undelete` at west: every name back at east (s, one run)",
                       Spread.of([undo["names_back_at_east_s"]]),
                       f"the `rm -rf` took {number(undo['rm_rf_s'])} s", ""))
    snap = r.get("snapshot_overhead")
    if snap.get("journal_and_holds_s") is not None:
        out.append(Row(f"a snapshot of {snap.get('files', 0):,} files: writes wait (s, one run)",
                       Spread.of([snap["journal_and_holds_s"]]),
                       f"manifest read off the write path {number(snap['manifest_s'])} s", ""))
    rounds = r.get("gateways").get("seq_read", {}).get("MBps", {})
    mount = rounds.get("mount")
    ram = rounds.get("ram_nfs")
    ram_mount = list(zip(ram or [], mount or []))
    for kind, label in (("nfs", "NFS (4 READs in flight)"), ("smb", "SMB")):
        got = rounds.get(kind)
        if mount and got:
            out.append(Row(f"{label} gateway: 512 MiB sequential read ÷ the mount's, per round",
                           Spread.of([g / m for g, m in zip(got, mount)]),
                           f"mount {show(Spread.of(mount))} MB/s, {kind.upper()} "
                           f"{show(Spread.of(got))} MB/s" + (
                               "; the ceiling here, ganesha serving a folder in memory ÷ the "
                               f"mount's read: {show(Spread.of([a / m for a, m in ram_mount]))}"
                               if kind == "nfs" and ram else ""),
                           "≥ 0.7×", lambda m: m.median >= 0.7))
    return out


def table(r: Results) -> str:
    lines = ["| figure | Meridian: median (lowest–highest run) | the others, same run | target "
             "| |", "| --- | --- | --- | --- | --- |"]
    for row in rows(r):
        lines.append(f"| {row.figure} | {show(row.meridian)} | {row.others} | {row.target} | "
                     f"{row.status()} |")
    dates = r.dates()
    if dates:
        newest = max(dates.values())
        stale = sorted(name for name, when in dates.items() if newest - when > STALE)
        lines += ["", f"Results written {min(dates.values()):%Y-%m-%d %H:%M} – "
                  f"{newest:%Y-%m-%d %H:%M} UTC ({len(dates)} files"
                  + (f"; older than the rest of the run: {', '.join(stale)}" if stale else "")
                  + ")."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, help="also replace the README's table")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    text = table(Results(args.results))
    (args.results / "summary.md").write_text("# make bench, in one table\n\n" + text)
    print(text)
    if args.readme:
        readme = args.readme.read_text()
        if START not in readme or END not in readme:
            print(f"summary: {args.readme} has no {START} … {END} markers", file=sys.stderr)
            return 1
        head, rest = readme.split(START, 1)
        _, tail = rest.split(END, 1)
        args.readme.write_text(f"{head}{START}\n{text}{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
