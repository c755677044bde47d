"""Remove and restore a tree: `rm -rf` at east, `meridian undelete` at west.

Two sites from `meridian up` (local-directory bucket). A tree of N files (10,000 by default,
4 KiB each, in folders of 100) is written at east and waited for at west. Then, once:

- **remove**: `rm -rf` of the tree in east's mount (seconds), and until west no longer shows it;
- **undelete**: `meridian undelete ./tree` at west (the command, seconds), until every name is
  back at east, and until every file at east and at west reads the original bytes (content
  that is not local is fetched on first read, as for any file).

    .venv/bin/python bench/undo.py [--files 10000]

Results: bench/results/undo.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from seqio import default_root, machine_info
from harness.site import MERIDIAN, Up

PER_DIR = 100


def count_files(top: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(top)) if top.is_dir() else 0


def wait(check: object, what: str, timeout: float = 600) -> float:
    """Seconds until ``check()`` is true."""
    started = time.perf_counter()
    while not check():  # type: ignore[operator]
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{what}: not after {timeout} s")
        time.sleep(0.02)
    return time.perf_counter() - started


def same_bytes(top: Path, expected: dict[str, bytes]) -> bool:
    try:
        return all((top / rel).read_bytes() == data for rel, data in expected.items())
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "undo")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="meridian-undo-", dir=default_root()))
    root = scratch / "studio"
    up = Up(root)
    row: dict[str, float] = {}
    try:
        east, west = root / "east" / "mnt" / "tree", root / "west" / "mnt" / "tree"
        expected: dict[str, bytes] = {}
        started = time.perf_counter()
        for i in range(args.files):
            rel = f"d{i // PER_DIR:03d}/f{i % PER_DIR:03d}.exr"
            (east / rel).parent.mkdir(parents=True, exist_ok=True)
            data = os.urandom(args.size)
            (east / rel).write_bytes(data)
            expected[rel] = data
        row["write_s"] = time.perf_counter() - started
        wait(lambda: count_files(west) == args.files, "west sees the tree")

        started = time.perf_counter()
        shutil.rmtree(east)
        row["rm_rf_s"] = time.perf_counter() - started
        row["removal_at_west_s"] = row["rm_rf_s"] + wait(lambda: not west.exists(),
                                                         "west sees the removal")
        started = time.perf_counter()
        done = subprocess.run([*MERIDIAN, "undelete", "./tree", "--config",
                               str(root / "west" / "meridian.toml")], capture_output=True,
                              text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"undelete failed: {done.stdout}{done.stderr}")
        row["undelete_command_s"] = time.perf_counter() - started
        row["names_back_at_east_s"] = row["undelete_command_s"] + wait(
            lambda: count_files(east) == args.files, "every name back at east")
        row["bytes_at_east_s"] = time.perf_counter() - started + wait(
            lambda: same_bytes(east, expected), "every byte at east")
        row["bytes_at_west_s"] = time.perf_counter() - started + wait(
            lambda: same_bytes(west, expected), "every byte at west")
        print(done.stdout.strip())
    finally:
        up.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    row = {k: round(v, 2) for k, v in row.items()}
    command = f".venv/bin/python bench/undo.py --files {args.files} --size {args.size}"
    doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
           "files": args.files, "size": args.size, "machine": machine_info(scratch.parent),
           "row": row}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"# Remove and restore a tree of {args.files:,} files", "",
             f"{doc['date']}: two sites from `meridian up` (local-directory bucket), files of "
             f"{args.size} B in folders of {PER_DIR}; one run.", "",
             "| step | seconds |", "| --- | --- |",
             f"| `rm -rf` in east's mount | {row['rm_rf_s']} |",
             f"| ... until west shows it gone | {row['removal_at_west_s']} |",
             f"| `meridian undelete ./tree` at west (the command) | {row['undelete_command_s']} |",
             f"| ... until every name is back at east | {row['names_back_at_east_s']} |",
             f"| ... until every file reads its bytes at east | {row['bytes_at_east_s']} |",
             f"| ... and at west (the bytes from the bucket) | {row['bytes_at_west_s']} |",
             "", f"(Writing the tree at east took {row['write_s']} s.) Reproduce: `{command}`",
             ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
