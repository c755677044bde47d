"""The site API's round trip on loopback: a kept-alive call, a long poll's and a stream's wake-up.

A site runs as users run it (``meridian site run``, mounted, its API on 127.0.0.1:any port).
Then, from this process:

  * round trip: ``GET /api/v1/site`` on one kept-alive connection, RUNS runs of REQUESTS calls
    each (after 10 unmeasured ones); per run the median; reported: the median of the run
    medians, their min-max, and the p99 of all calls;
  * long-poll wake-up: a client waits on ``GET /api/v1/journal?after=N&wait=5`` (N: the site's
    last journal position); once the poll is held, a file is created through the mount; timed
    from the create call to the poll's answer (it includes the create itself, whose duration
    is reported beside it). WAKEUPS samples per run;
  * stream wake-up: what a peer's link does since 2026-12-07: one
    ``GET /api/v1/journal?after=N&wait=W&stream=true`` held open, then WAKEUPS files created
    through the mount one after another; each timed from its create call to the stream's line
    that brings it.

Results: bench/results/api_roundtrip.json and .md.

    .venv/bin/python bench/api_roundtrip.py [--runs 5] [--requests 200] [--wakeups 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from harness.machine import default_root, machine_info
from harness.site import Site

WARMUP = 10
POLL_WAIT_S = 5
STREAM_WAIT_S = 20


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def round_trips(client: httpx.Client, requests: int) -> list[float]:
    """Milliseconds of each of ``requests`` kept-alive ``GET /site`` calls."""
    for _ in range(WARMUP):
        client.get("/site").raise_for_status()
    took = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get("/site")
        took.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return took


def one_wakeup(client: httpx.Client, mount: Path, name: str) -> tuple[float, float]:
    """(ms from the create call to the long poll's answer, ms the create call took)."""
    after = client.get("/site").json()["journal_last_seq"]
    answered: list[float] = []
    failure: list[BaseException] = []

    def poll() -> None:
        try:
            answer = client.get("/journal", params={"after": after, "wait": POLL_WAIT_S})
            answered.append(time.perf_counter())
            entries = answer.json()["entries"]
            if not entries or entries[0]["op"].get("name") != name:
                raise RuntimeError(f"the poll answered without {name}: {entries}")
        except BaseException as exc:  # reported by the caller
            failure.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.2)  # the poll is held by the site by now
    started = time.perf_counter()
    with open(mount / name, "w"):
        created = time.perf_counter()
    poller.join(POLL_WAIT_S + 5)
    if failure:
        raise failure[0]
    if not answered:
        raise RuntimeError("the long poll did not answer")
    return (answered[0] - started) * 1000, (created - started) * 1000


def stream_wakeups(client: httpx.Client, mount: Path, prefix: str, count: int) -> list[float]:
    """Ms from each of ``count`` create calls to the journal stream's line that brings it."""
    after = client.get("/site").json()["journal_last_seq"]
    arrived: dict[str, float] = {}
    failure: list[BaseException] = []
    news = threading.Condition()

    def read() -> None:
        params = {"after": after, "wait": STREAM_WAIT_S, "stream": "true"}
        try:
            with client.stream("GET", "/journal", params=params) as answer:
                answer.raise_for_status()
                for line in answer.iter_lines():
                    now = time.perf_counter()
                    names = [e["op"].get("name") for e in json.loads(line)["entries"]] if line else []
                    with news:
                        for name in names:
                            arrived.setdefault(name, now)
                        news.notify_all()
                    if len(arrived) >= count:
                        return
        except BaseException as exc:  # reported by the caller
            with news:
                failure.append(exc)
                news.notify_all()

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)  # the stream is open by now
    took = []
    for n in range(count):
        name = f"{prefix}-{n}"
        started = time.perf_counter()
        with open(mount / name, "w"):
            pass
        with news:
            news.wait_for(lambda: name in arrived or bool(failure), timeout=POLL_WAIT_S)
        if failure:
            raise failure[0]
        if name not in arrived:
            raise RuntimeError(f"the journal stream brought no line with {name}")
        took.append((arrived[name] - started) * 1000)
        time.sleep(0.02)  # the next create after the site has settled, as in the long poll's
    reader.join(STREAM_WAIT_S + 5)
    return took


def summary(run_medians: list[float], samples: list[float]) -> dict[str, float]:
    return {"median_of_run_medians_ms": statistics.median(run_medians),
            "min_run_median_ms": min(run_medians), "max_run_median_ms": max(run_medians),
            "p99_ms": percentile(samples, 0.99)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="round trips per run")
    parser.add_argument("--wakeups", type=int, default=20, help="long-poll wake-ups per run")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "api_roundtrip")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="meridian-apibench-", dir=default_root()))
    site = Site(scratch)
    trips: list[list[float]] = []
    wakeups: list[list[float]] = []
    streamed: list[list[float]] = []
    creates: list[float] = []
    try:
        site.init()
        site.start()
        url = json.loads((site.data / "run.json").read_text())["api"]
        token = (site.data / "secrets" / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        tls = ssl.create_default_context(cafile=str(site.data / "tls" / "ca.crt"))
        with httpx.Client(base_url=url, headers=headers, timeout=POLL_WAIT_S + 10,
                          verify=tls) as client:
            for run in range(args.runs):
                trips.append(round_trips(client, args.requests))
                woken = []
                for n in range(args.wakeups):
                    took, create = one_wakeup(client, site.mount, f"r{run}-{n}")
                    woken.append(took)
                    creates.append(create)
                wakeups.append(woken)
                streamed.append(stream_wakeups(client, site.mount, f"s{run}", args.wakeups))
                print(f"run {run}: round trip median {statistics.median(trips[-1]):.2f} ms, "
                      f"long-poll wake-up median {statistics.median(woken):.2f} ms, "
                      f"stream {statistics.median(streamed[-1]):.2f} ms", flush=True)
    finally:
        print("site", site.stop())
        shutil.rmtree(scratch, ignore_errors=True)
    command = (f".venv/bin/python bench/api_roundtrip.py --runs {args.runs} "
               f"--requests {args.requests} --wakeups {args.wakeups}")
    trip = summary([statistics.median(r) for r in trips], [x for r in trips for x in r])
    wake = summary([statistics.median(r) for r in wakeups], [x for r in wakeups for x in r])
    stream = summary([statistics.median(r) for r in streamed], [x for r in streamed for x in r])
    doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
           "runs": args.runs, "requests": args.requests, "wakeups": args.wakeups,
           "machine": machine_info(scratch.parent), "round_trip": trip, "wakeup": wake,
           "stream_wakeup": stream,
           "create_median_ms": statistics.median(creates),
           "round_trip_ms": trips, "wakeup_ms": wakeups, "stream_wakeup_ms": streamed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")

    def row(label: str, figures: dict[str, float]) -> str:
        return (f"| {label} | {figures['median_of_run_medians_ms']:.2f} ms | "
                f"{figures['min_run_median_ms']:.2f}-{figures['max_run_median_ms']:.2f} ms | "
                f"{figures['p99_ms']:.2f} ms |")

    lines = ["# The site API's round trip on loopback", "",
             f"{doc['date']}: one site (`meridian site run`, mounted), its API on 127.0.0.1, "
             f"one kept-alive connection; {args.runs} runs.", "",
             "| call | median of run medians | run medians min-max | p99 |",
             "| --- | --- | --- | --- |",
             row(f"`GET /api/v1/site` ({args.requests} per run)", trip),
             row(f"long poll `GET /api/v1/journal?wait={POLL_WAIT_S}`, from a create through "
                 f"the mount to the answer ({args.wakeups} per run)", wake),
             row(f"journal stream `GET /api/v1/journal?stream=true` (what links read), from a "
                 f"create through the mount to its line ({args.wakeups} per run)", stream), "",
             f"The create call itself took {doc['create_median_ms']:.2f} ms (median).", "",
             f"Reproduce: `{command}`", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
