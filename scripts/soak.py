"""Soak the replication rules: many randomized three-site runs, spread over every operation
mix and both store engines (memory and SQLite), each checked for divergence and loss.

    python scripts/soak.py --runs 2000        (make soak SEEDS=2000)

Mixes with purges and undeletes run with the trash on, and check that every site also ends
with the same undo records (trash, versions, purges and what they hold).

Every failing run prints its seed, mix and engine (``tests/meta/randomized.py`` replays it:
``run(seed, mix, engine)``); the last line is always

    soak: <runs> runs, <d> diverged, <l> lost

and the exit status is 0 only if both are 0. A run that raises counts as diverged.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.meta.randomized import MIXES, plan, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="how many runs (default 2000)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first run")
    parser.add_argument("--steps", type=int, default=60, help="changes per run (default 60)")
    parser.add_argument("--mix", action="append", choices=sorted(MIXES),
                        help="only these mixes (default: every one)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.steps < 1:
        parser.error("--runs and --steps must be at least 1")
    diverged = lost = done = 0
    started = time.monotonic()
    for seed, mix, engine in plan(args.runs, args.first_seed, args.mix):
        try:
            outcome, why = run(seed, mix, engine, args.steps)
        except Exception:  # a crash is a failure too; the run's seed says how to repeat it
            print(f"FAILED seed {seed} mix {mix} engine {engine}: raised\n"
                  f"{traceback.format_exc()}", flush=True)
            diverged += 1
        else:
            if not outcome.ok:
                found = [f"diverged at {','.join(outcome.diverged)}" if outcome.diverged else "",
                         f"undo records differ at {','.join(outcome.records)}"
                         if outcome.records else "",
                         f"lost {len(outcome.lost)} writes" if outcome.lost else ""]
                print(f"FAILED seed {seed} mix {mix} engine {engine}: "
                      f"{' '.join(f for f in found if f)}", flush=True)
            diverged += bool(outcome.diverged or outcome.records)
            lost += bool(outcome.lost)
        done += 1
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    print(f"soak: {done} runs, {diverged} diverged, {lost} lost")
    return 0 if diverged == 0 and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
