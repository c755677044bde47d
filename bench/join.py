"""Joining a namespace: `meridian init --join` against a site holding N files (1,000,000).

The namespace is synthetic, built directly in the source site's store (1,000 directories of
1,000 files, each with a content record), then the source runs as users run it
(`meridian site run`, mounted, its API on 127.0.0.1). Each run joins a new site to it and
measures: the `init --join` command end to end (snapshot made, transferred, adopted), and the
time until the new site is mounted and shows the last file. Median of several runs. Target:
1 million files joined in under 60 s.

    .venv/bin/python bench/join.py [--files 1000000] [--runs 3]

Results: bench/results/join.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

from harness.machine import default_root, machine_info

MERIDIAN = [sys.executable, "-m", "meridian.cli.main"]
PER_DIR = 1000


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*MERIDIAN, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"meridian {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_namespace(db_path: Path, files: int) -> None:
    """N files in N/1000 directories, written straight into the store's tables (one
    transaction), with the same columns the store's own operations fill in."""
    db = sqlite3.connect(db_path, isolation_level=None)
    kv = dict(db.execute("SELECT key, value FROM kv"))
    site_id, origin = kv["site_id"], kv["site_name"]
    next_ino, counter = int(kv["next_ino"]), int(kv["next_counter"])
    now = time.time_ns()
    version = f"{(now // 1_000_000) << 16:016x}.{origin}"
    db.execute("BEGIN")
    dirs = (files + PER_DIR - 1) // PER_DIR
    inode_rows, entry_rows, content_rows = [], [], []
    for d in range(dirs):
        dir_ino = next_ino
        next_ino += 1
        inode_rows.append((dir_ino, f"{site_id}.{counter}", 0o040755, 0, 0, 0, 2, now, now, now,
                           None, None, origin, 0, version, version, version))
        counter += 1
        entry_rows.append((1, f"d{d:04d}".encode(), dir_ino))
        for f in range(min(PER_DIR, files - d * PER_DIR)):
            digest = f"{d:08x}{f:08x}".ljust(64, "0")
            inode_rows.append((next_ino, f"{site_id}.{counter}", 0o100644, 0, 0, 4096, 1, now, now,
                               now, digest, None, origin, 0, version, version, version))
            entry_rows.append((dir_ino, f"f{f:04d}.exr".encode(), next_ino))
            content_rows.append((digest, 4096, 1))
            next_ino += 1
            counter += 1
        if len(inode_rows) > 100_000:
            _flush(db, inode_rows, entry_rows, content_rows)
    _flush(db, inode_rows, entry_rows, content_rows)
    db.execute("UPDATE inodes SET nlink = nlink + ? WHERE ino = 1", (dirs,))
    db.execute("INSERT OR REPLACE INTO kv VALUES ('next_ino', ?)", (str(next_ino),))
    db.execute("INSERT OR REPLACE INTO kv VALUES ('next_counter', ?)", (str(counter),))
    db.execute("COMMIT")
    db.close()


def _flush(db: sqlite3.Connection, inodes: list[tuple[object, ...]],
           entries: list[tuple[object, ...]], contents: list[tuple[object, ...]]) -> None:
    db.executemany("INSERT INTO inodes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", inodes)
    db.executemany("INSERT INTO entries VALUES (?,?,?)", entries)
    db.executemany("INSERT OR IGNORE INTO contents VALUES (?,?,?)", contents)
    inodes.clear()
    entries.clear()
    contents.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "join")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="meridian-joinbench-", dir=default_root()))
    source = None
    joins: list[float] = []
    mounted: list[float] = []
    try:
        bucket = f"file://{scratch / 'bucket'}"
        cli("init", "--site", "east", "--data", str(scratch / "east"), "--bucket", bucket,
            "--api-listen", f"127.0.0.1:{free_port()}")
        started = time.monotonic()
        build_namespace(scratch / "east" / "meta.db", args.files)
        print(f"built {args.files:,} files in {time.monotonic() - started:.1f} s", flush=True)
        config = tomllib.loads((scratch / "east" / "meridian.toml").read_text())
        url = f"https://{config['api']['listen']}/api/v1"
        source = subprocess.Popen([*MERIDIAN, "site", "run", "--config",
                                   str(scratch / "east" / "meridian.toml"), "--mount",
                                   str(scratch / "east-mnt")],
                                  stdout=subprocess.DEVNULL, stderr=open(scratch / "east.log", "w"))
        _wait_mounted(scratch / "east-mnt", "east", source)
        last_dir = f"d{(args.files - 1) // PER_DIR:04d}"
        last_file = f"f{(args.files - 1) % PER_DIR:04d}.exr"
        for run in range(args.runs):
            name = f"west{run}"
            data, mount = scratch / name, scratch / f"{name}-mnt"
            started = time.monotonic()
            invitation = scratch / f"{name}.join"
            cli("peer", "invite", name, "--url", url, "--out", str(invitation), "--config",
                str(scratch / "east" / "meridian.toml"))
            started = time.monotonic()
            cli("init", "--site", name, "--data", str(data), "--join-file", str(invitation))
            joined = time.monotonic() - started
            site = subprocess.Popen([*MERIDIAN, "site", "run", "--config",
                                     str(data / "meridian.toml"), "--mount", str(mount)],
                                    stdout=subprocess.DEVNULL,
                                    stderr=open(scratch / f"{name}.log", "w"))
            try:
                _wait_mounted(mount, name, site)
                assert (mount / last_dir / last_file).exists(), "the last file is missing"
                ready = time.monotonic() - started
            finally:
                site.send_signal(signal.SIGINT)
                site.wait(timeout=60)
            joins.append(joined)
            mounted.append(ready)
            print(f"run {run}: init --join {joined:.1f} s, mounted and showing the last file "
                  f"{ready:.1f} s", flush=True)
            shutil.rmtree(data, ignore_errors=True)
    finally:
        if source is not None and source.poll() is None:
            source.send_signal(signal.SIGINT)
            source.wait(timeout=120)
        shutil.rmtree(scratch, ignore_errors=True)
    command = f".venv/bin/python bench/join.py --files {args.files} --runs {args.runs}"
    doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
           "files": args.files, "runs": args.runs, "machine": machine_info(scratch.parent),
           "join_s": joins, "mounted_s": mounted,
           "median_join_s": statistics.median(joins), "median_mounted_s": statistics.median(mounted)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["# Joining a namespace", "",
             f"{doc['date']}: a new site joins a running site holding {args.files:,} files "
             f"({args.files // PER_DIR:,} directories); median of {args.runs} runs. Target: "
             "1 million files in under 60 s.", "",
             "| step | median | runs |", "| --- | --- | --- |",
             f"| `meridian init --join` (snapshot, transfer, adopt) | {doc['median_join_s']:.1f} s "
             f"| {', '.join(f'{x:.1f}' for x in joins)} |",
             f"| ... until mounted and showing the last file | {doc['median_mounted_s']:.1f} s | "
             f"{', '.join(f'{x:.1f}' for x in mounted)} |", "", f"Reproduce: `{command}`", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


def _wait_mounted(mount: Path, name: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"site {name} exited {process.returncode}")
        try:
            if json.loads((mount / ".meridian" / "site.json").read_text())["site"] == name:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"site {name} did not mount")


if __name__ == "__main__":
    sys.exit(main())
