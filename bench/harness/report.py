"""Shared parts of the bench/compare_*.py scripts: arguments, the run loop's bookkeeping
(samples, busy-machine marks) and the results table (OUT.md) with its JSON twin (OUT.json)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from harness.machine import machine_info
from harness.rivals import ALL, Contender, MotoServer, pids_under, start, versions
from harness.timing import CpuMeter
from harness.units import log

RESULTS = Path(__file__).resolve().parent.parent / "results"
BUSY = 0.25  # a sample during which other processes used more CPUs than this is marked *
NAMES = {"local": "local dir", "meridian": "Meridian", "rclone": "rclone mount", "s3fs": "s3fs",
         "s3-get": "S3 GET (boto3)", "meridian:readahead-off": "Meridian (read-ahead off)"}


def parser(doc: str, name: str, runs: int | None, slow_runs: int | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contenders", default=",".join(ALL),
                   help="comma-separated, of " + ",".join(ALL))
    if runs is not None:
        p.add_argument("--runs", type=int, default=runs, help="timed runs per contender, "
                       f"after one discarded warm-up (default {runs})")
        p.add_argument("--slow-runs", type=int, default=slow_runs, help="timed runs for s3fs, "
                       f"which is slow; no warm-up (default {slow_runs})")
    p.add_argument("--step-timeout", type=float, default=600,
                   help="a timed step longer than this kills the contender (its I/O then fails)")
    p.add_argument("--out", type=Path, default=RESULTS / f"compare_{name}",
                   help="OUT.md and OUT.json are written")
    return p


def command_line() -> str:
    return ".venv/bin/python " + " ".join(shlex.quote(a) for a in
                                          [os.path.relpath(sys.argv[0])] + sys.argv[1:])


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    fmt: Callable[[float], str] | None = None  # how a median is written (default: fmt())


@dataclass
class Bench:
    """Samples of one figure script: samples[figure][contender] = [[value, other CPUs], ...]."""
    name: str
    title: str
    figures: list[Figure]
    args: argparse.Namespace
    scratch: Path
    moto: MotoServer
    samples: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _meter: CpuMeter | None = None

    def contender(self, key: str, got: Contender | str, runs: int, warmup: bool) -> None:
        if isinstance(got, str):
            self.status[key] = {"status": got, "runs": 0, "warmup": False, "config": ""}
        else:
            self.status[key] = {"status": "ok", "runs": runs, "warmup": warmup,
                                "config": got.config}

    def runs_of(self, key: str) -> tuple[int, bool]:
        """(timed runs, whether a warm-up run comes first) for a contender."""
        if key.startswith("s3fs"):
            return getattr(self.args, "slow_runs", 0), False
        return getattr(self.args, "runs", 0), True

    def mount_all(self, stack: contextlib.ExitStack, keys: Sequence[str],
                  options: dict[str, dict[str, Any]] | None = None) -> dict[str, Contender]:
        """Start every contender (``key`` or ``kind:variant``); failures go to the table."""
        mounted = {}
        for key in keys:
            kind = key.split(":")[0]
            opts = dict((options or {}).get(key, {}))
            if ":" in key:
                opts.setdefault("name", key.replace(":", "-"))
            got = start(stack, kind, self.moto, self.scratch, **opts)
            self.contender(key, got, *self.runs_of(key))
            if not isinstance(got, str):
                mounted[key] = got
        return mounted

    def run_all(self, mounted: dict[str, Contender],
                step: Callable[[int, str, Contender, bool], None],
                each_run: Callable[[int], None] | None = None) -> None:
        """Calls ``step(run, key, contender, timed)`` on the schedule (and ``each_run(run)``
        before a run's first step); a contender whose step raises is reported as failed and
        left out from then on."""
        last = -1
        for run, key, timed in self.schedule(list(mounted)):
            if key not in mounted:
                continue
            if run != last and each_run is not None:
                each_run(run)
            last = run
            before = {fig: {k: len(v) for k, v in per.items()} for fig, per in self.samples.items()}
            try:
                step(run, key, mounted[key], timed)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                for fig, per in self.samples.items():  # a failed step's samples are dropped
                    for k, values in per.items():
                        del values[before.get(fig, {}).get(k, 0):]
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                self.status[key]["status"] = f"failed in run {run}: {reason}"
                log(f"{key}: {self.status[key]['status']}\n{traceback.format_exc()}")
                del mounted[key]

    def schedule(self, keys: Sequence[str]) -> Iterator[tuple[int, str, bool]]:
        """(run, contender, timed?) in order: run 0 is the warm-up, the order of the contenders
        alternates from run to run; slow contenders (s3fs) run only in runs 1..slow_runs."""
        for run in range(self.args.runs + 1):
            for key in keys if run % 2 == 0 else list(reversed(keys)):
                runs, warmup = self.runs_of(key)
                if warmup or 1 <= run <= runs:
                    yield run, key, run > 0

    @contextlib.contextmanager
    def timed(self, contender: Contender | None = None) -> Iterator[list[float]]:
        """A timed step: yields a list that gets the CPUs used meanwhile by processes other than
        the bench, moto and the mounts; a step longer than --step-timeout kills the contender."""
        if self._meter is None:
            self._meter = CpuMeter([os.getpid(), self.moto.process.pid])
        self._meter.pids = [os.getpid(), self.moto.process.pid, *pids_under(self.scratch)]
        box: list[float] = []
        done = threading.Event()

        def watchdog() -> None:
            if not done.wait(self.args.step_timeout) and contender is not None:
                log(f"WATCHDOG: {contender.name} took over {self.args.step_timeout:.0f} s: "
                    "killing it so that blocked I/O fails")
                contender.kill()
        thread = threading.Thread(target=watchdog, daemon=True)
        thread.start()
        self._meter.start()
        try:
            yield box
        finally:
            box.append(self._meter.stop())
            done.set()

    def add(self, figure: str, contender: str, value: float, foreign: float = 0.0) -> None:
        self.samples.setdefault(figure, {}).setdefault(contender, []).append([value, foreign])

    def median(self, figure: str, contender: str) -> float | None:
        got = self.samples.get(figure, {}).get(contender)
        return statistics.median(v for v, _ in got) if got else None

    # -- the report ---------------------------------------------------------------------------
    def write(self, intro: str, columns: Sequence[str] | None = None,
              bases: Sequence[str] = ("local", "rclone")) -> str:
        """The contenders' table, then one row per figure: a column per contender (default:
        all), and Meridian's ratio to each of ``bases`` present."""
        columns = list(columns or self.status)
        lines = [f"# {self.title}", "", intro, "", "| contender | how it ran | timed runs |",
                 "| --- | --- | --- |"]
        for key in self.status:
            st = self.status[key]
            if st["status"] != "ok":
                lines.append(f"| {label(key)} | **{st['status']}** | 0 |")
            else:
                runs = st.get("runs_text") or f"{st['runs']}" + (
                    " after a warm-up" if st["warmup"] else
                    " (no warm-up: slow contender, fewer runs)")
                lines.append(f"| {label(key)} | `{st['config']}` | {runs} |")
        head = ["figure", *(label(k) for k in columns)]
        ratio_cols = [(m, b) for m in columns if m.startswith("meridian")
                            for b in bases if b in columns]
        head += [f"{label(m)} ÷ {label(b)}" for m, b in ratio_cols]
        lines += ["", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        rows = []
        for fig in self.figures:
            cells = [f"{fig.label} ({fig.unit})"]
            for key in columns:
                cells.append(self.cell(fig, key))
            for m, b in ratio_cols:
                cells.append(self.ratio(fig, m, b))
            lines.append("| " + " | ".join(cells) + " |")
            rows.append({"figure": fig.key, "label": fig.label, "unit": fig.unit,
                         "higher_is_better": fig.higher_is_better,
                         "medians": {k: self.median(fig.key, k) for k in columns},
                         "ratios": {f"{m}/{b}": self.ratio_value(fig, m, b)
                                    for m, b in ratio_cols}})
        lines += ["", "Ratios: Meridian's median against the baseline's, so that > 1 means "
                  "Meridian is better (for lower-is-better figures, baseline ÷ Meridian). "
                  "In brackets after a median: the lowest and highest of its samples. "
                  f"`*`: other processes used more than {BUSY} CPUs during one of the samples "
                  "(a shared machine); kept in the median. A blank cell: the figure does not "
                  "apply to that contender; a blank ratio: a median is missing or ran out of "
                  "time (> bound).", ""]
        lines += [f"- {n}" for n in self.notes]
        info = machine_info(self.scratch.parent)
        vers = versions()
        lines += ["", f"Machine: {info['nproc']} CPUs, {info['MemTotal']}, kernel "
                  f"{info['kernel']}, {info['os']}, Python {info['python']}; meridian "
                  f"{info.get('meridian_version')} (git {info.get('git', '?')}); moto "
                  f"{vers['moto']} (its HTTP server on 127.0.0.1, a subprocess); "
                  f"{vers['rclone']}; {vers['s3fs']}; {vers['fuse']}. Scratch disk: "
                  f"{info['disk_of_root']['device']} ({info['disk_of_root']['fstype']}, "
                  f"mounted at {info['disk_of_root']['mountpoint']}).",
                  f"Took {time.monotonic() - self.started:.0f} s.", "",
                  f"Reproduce (from the repository root): `{command_line()}`", ""]
        text = "\n".join(lines)
        doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": command_line(), "machine": info, "versions": vers,
               "contenders": self.status, "rows": no_inf(rows), "samples": no_inf(self.samples),
               "notes": self.notes, "seconds": time.monotonic() - self.started, **self.extra}
        self.args.out.parent.mkdir(parents=True, exist_ok=True)
        self.args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
        self.args.out.with_suffix(".md").write_text(f"{text}\n_{doc['date']}_\n")
        print(text, flush=True)
        return text

    def cell(self, fig: Figure, key: str) -> str:
        got = self.samples.get(fig.key, {}).get(key)
        status = self.status.get(key, {}).get("status", "ok")
        if not got:
            return "" if status == "ok" else ("did not start" if status.startswith("could not")
                                              else "failed")
        values = [v for v, _ in got]
        show = fig.fmt or fmt

        def one(v: float) -> str:
            return f"> {self.args.bound:g} s" if v == math.inf else show(v)
        text = one(statistics.median(values)) + ("*" if any(f > BUSY for _, f in got) else "")
        if len(values) > 1:  # the spread across runs: lowest–highest sample
            text += f" ({one(min(values))}–{one(max(values))})"
        return text

    def ratio_value(self, fig: Figure, m: str, b: str) -> float | None:
        mine, base = self.median(fig.key, m), self.median(fig.key, b)
        if mine is None or base is None or mine <= 0 or base <= 0 or math.inf in (mine, base):
            return None
        return mine / base if fig.higher_is_better else base / mine

    def ratio(self, fig: Figure, m: str, b: str) -> str:
        r = self.ratio_value(fig, m, b)
        return "" if r is None else f"{r:.2f}"


def no_inf(value: Any) -> Any:
    """JSON has no infinity: a wait that ran out (inf) is written as the string "timeout"."""
    if isinstance(value, float) and math.isinf(value):
        return "timeout"
    if isinstance(value, dict):
        return {k: no_inf(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_inf(v) for v in value]
    return value


def label(key: str) -> str:
    if key in NAMES:
        return NAMES[key]
    base, _, variant = key.partition(":")
    return NAMES.get(base, base) + (f" ({variant})" if variant else "")


def fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"
