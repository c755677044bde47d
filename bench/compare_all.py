"""All the side-by-side figures (local dir, Meridian, rclone mount, s3fs over one moto S3 server),
one script after another, within a time budget (default 30 minutes on this 2-core machine).

Each bench/compare_<name>.py runs as a subprocess with its default repetitions (chosen so that
the whole fits the budget here: see the ESTIMATES below, measured on this machine), and writes
bench/results/compare_<name>.md and .json. If the time left is less than a script's estimate,
it runs with one timed run (``--runs 1``, fewer files for visibility) and the summary says so;
a script still running when the budget is spent is interrupted (SIGINT: it unmounts and stops
everything it started) and reported as such. The summary, with every table, goes to
bench/results/compare_all.md (and .json).

    .venv/bin/python bench/compare_all.py [--budget 1800] [--contenders local,meridian,rclone,s3fs]
                                          [--only metadata,seqio,...] [--summary-only]

``--summary-only`` runs nothing and rebuilds compare_all.md from the results files present
(after re-running one script, say).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
# name, expected seconds with the defaults on this machine, arguments of a quick run
ESTIMATES: list[tuple[str, int, list[str]]] = [
    ("metadata", 240, ["--runs", "1", "--slow-runs", "1"]),
    ("smallfiles", 150, ["--runs", "1", "--slow-runs", "1"]),  # rclone twice: as it comes, tuned
    ("visibility", 140, ["--files", "50", "--slow-files", "1"]),
    ("playback", 210, ["--runs", "1", "--slow-runs", "1"]),
    ("seqio", 290, ["--runs", "1", "--slow-runs", "1"]),  # rclone twice: as it comes, tuned
]


def problems_of(doc: dict[str, Any]) -> list[str]:
    """Contenders of a results JSON that could not start or failed."""
    return [f"{k}: {v['status']}" for k, v in doc["contenders"].items() if v["status"] != "ok"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # 30 minutes: on a slow day of this VM (2026-12-07) the metadata script alone took 656 s
    # against its 240 (s3fs at half its usual speed), and with 20 minutes every script after
    # it ran in its quick form.
    parser.add_argument("--budget", type=float, default=1800, help="seconds for everything")
    parser.add_argument("--contenders", default="local,meridian,rclone,s3fs")
    parser.add_argument("--only", default=",".join(n for n, _, _ in ESTIMATES))
    parser.add_argument("--summary-only", action="store_true",
                        help="run nothing: rebuild compare_all.md from the results files there")
    args = parser.parse_args(argv)
    chosen = [e for e in ESTIMATES if e[0] in args.only.split(",")]
    started = time.monotonic()
    summary: list[dict[str, Any]] = []
    for index, (name, estimate, quick) in enumerate(chosen):
        if args.summary_only:
            path = RESULTS / f"compare_{name}.json"
            if not path.exists():
                summary.append({"script": name, "status": "no results", "seconds": 0,
                                "mode": "-", "contender_problems": []})
                continue
            doc = json.loads(path.read_text())
            summary.append({"script": name, "status": f"ok (run of {doc['date']})",
                            "mode": f"`{doc['command']}`", "seconds": round(
                                doc["seconds"] if isinstance(doc["seconds"], float) else 0),
                            "contender_problems": problems_of(doc)})
            continue
        left = args.budget - (time.monotonic() - started)
        still = sum(e for _, e, _ in chosen[index + 1:])  # what the others will need
        contenders = args.contenders
        if name == "visibility":  # no local dir there; rclone also with --dir-cache-time 1s
            contenders = ",".join(c for k in contenders.split(",") if k != "local"
                                  for c in ([k, "rclone:dir-cache-time-1s"] if k == "rclone"
                                            else [k]))
        if name in ("smallfiles", "seqio"):  # rclone also tuned for durable: --vfs-write-back 0s
            contenders = ",".join(c for k in contenders.split(",")
                                  for c in ([k, "rclone:write-back-0s"] if k == "rclone" else [k]))
        cmd = [sys.executable, str(BENCH / f"compare_{name}.py"), "--contenders", contenders]
        mode = "defaults"
        if left < 30:
            summary.append({"script": name, "status": "skipped: the budget was spent",
                            "seconds": 0, "mode": "-", "contender_problems": []})
            continue
        if left - still < estimate:
            cmd += quick
            mode = "quick (" + " ".join(quick) + "): the budget was short"
        print(f"== compare_{name}.py ({mode}); {left:.0f} s of the budget left", flush=True)
        t0 = time.monotonic()
        process = subprocess.Popen(cmd, cwd=BENCH.parent)
        try:
            code = process.wait(timeout=max(left, 30))
            status = "ok" if code == 0 else f"exited {code}"
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)  # it unmounts and stops what it started
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            status = "interrupted: over the budget"
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            process.wait()
            raise
        problems = []
        if status == "ok":  # contenders that could not start or failed, from its fresh JSON
            problems = problems_of(json.loads((RESULTS / f"compare_{name}.json").read_text()))
        summary.append({"script": name, "status": status, "mode": mode,
                        "seconds": round(time.monotonic() - t0), "contender_problems": problems})
    total = sum(r["seconds"] for r in summary) if args.summary_only else \
        time.monotonic() - started
    lines = ["# Meridian against rclone mount, s3fs and a local directory", "",
             f"All figures of bench/compare_*.py, {total:.0f} s in all"
             + (" (summary rebuilt from the results files; each script's run has its date)."
                if args.summary_only else
                f", one after another (budget {args.budget:.0f} s).")
             + " Each ran over its own moto S3 server (fresh bucket per contender); each "
             "script's file has its details and samples.", "",
             "| script | status | contenders that did not run | repetitions | seconds | results |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in summary:
        did_not_run = "; ".join(row["contender_problems"]) or "none"
        lines.append(f"| compare_{row['script']}.py | {row['status']} | {did_not_run} | "
                     f"{row['mode']} | {row['seconds']} | results/compare_{row['script']}.md |")
    for row in summary:
        md = RESULTS / f"compare_{row['script']}.md"
        if row["status"].startswith("ok") and md.exists():
            body = md.read_text().split("\n", 1)[1]
            lines += ["", f"## {md.read_text().splitlines()[0].lstrip('# ')}", body]
    command = "python bench/compare_all.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--summary-only")
    lines += ["", f"Reproduce (from the repository root): `.venv/bin/{command.strip()}`", ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare_all.md").write_text("\n".join(lines))
    (RESULTS / "compare_all.json").write_text(json.dumps(
        {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "budget": args.budget,
         "seconds": round(total), "scripts": summary}, indent=2) + "\n")
    print("\n".join(lines[:6 + len(summary)]), flush=True)
    return 0 if all(r["status"].startswith("ok") for r in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
