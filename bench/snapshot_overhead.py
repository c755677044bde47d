"""What a snapshot of a large namespace costs: seconds and bytes, at the site that makes it and
at a site that learns of it.

The namespace is synthetic (``join.build_namespace``: N files in N/1000 folders, each with its
own content, hashes made as random as real ones), in a real SQLite store on disk; the bucket is a local directory. Measured, once:

- **manifest**: reading the whole tree from one read snapshot of the store (its own
  connection: the site's writes go on) and encoding and compressing it, on a worker thread
  (seconds), and the manifest's size in the bucket;
- **upload**: writing it to the bucket;
- **journal + holds here**: the ``snapshot`` entry and one hold per distinct content, in one
  durable transaction (seconds), and how much the store grew (bytes, after a checkpoint);
- **another site**: reading the manifest back from the bucket and checking it, then its holds.

    .venv/bin/python bench/snapshot_overhead.py [--files 1000000]

Results: bench/results/snapshot_overhead.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from join import build_namespace
from seqio import default_root, machine_info

from meridian.content.hashing import hash_bytes
from meridian.meta import TRASH_SETTING
from meridian.meta.sqlite import SqliteMetaStore
from meridian.objects.local import LocalObjectStore
from meridian.undo import snapshots


def store_bytes(store: SqliteMetaStore, path: Path) -> int:
    store.sync()
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def realistic_hashes(db_path: Path) -> None:
    """The synthetic hashes are mostly zeros (they would compress to nothing): make each a
    BLAKE3 of itself, as random as real content hashes."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.create_function("rehash", 1, lambda h: hash_bytes(h.encode()), deterministic=True)
    db.execute("BEGIN")
    db.execute("UPDATE inodes SET content = rehash(content) WHERE content IS NOT NULL")
    db.execute("UPDATE contents SET hash = rehash(hash)")
    db.execute("COMMIT")
    db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="snapbench-", dir=args.root or default_root()))
    try:
        db_path = scratch / "east.db"
        SqliteMetaStore(db_path, "east").close()
        started = time.perf_counter()
        build_namespace(db_path, args.files)
        realistic_hashes(db_path)
        print(f"namespace of {args.files:,} files built in {time.perf_counter() - started:.1f} s")
        east = SqliteMetaStore(db_path, "east")
        east.put_setting(TRASH_SETTING, "1")
        objects = LocalObjectStore(scratch / "bucket")
        before = store_bytes(east, db_path)

        t0 = time.perf_counter()
        data, entries, total, hashes = snapshots.encode(east.tree_reader()(), "bench", "east")
        t_manifest = time.perf_counter() - t0
        t0 = time.perf_counter()
        digest = snapshots.store_manifest(objects, data)
        t_upload = time.perf_counter() - t0
        t0 = time.perf_counter()
        snapshots.decode(data, digest)
        t_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        east.snapshot_add("bench", digest, entries, total, hashes)
        t_holds = time.perf_counter() - t0
        grown = store_bytes(east, db_path) - before

        west = SqliteMetaStore(scratch / "west.db", "west")
        west.apply_entries("east", east.journal(east.last_seq() - 1, 10))
        t0 = time.perf_counter()
        learnt = snapshots.load(objects, digest)
        west.hold_snapshot("bench", digest, learnt.hashes())
        t_west = time.perf_counter() - t0
        east.close()
        west.close()
        result = {
            "files": args.files, "entries": entries, "manifest_bytes": len(data),
            "manifest_bytes_per_entry": round(len(data) / entries, 2),
            "manifest_s": round(t_manifest, 2), "upload_s": round(t_upload, 3),
            "decode_s": round(t_decode, 2), "journal_and_holds_s": round(t_holds, 2),
            "store_growth_bytes": grown, "store_growth_per_content": round(grown / len(hashes), 1),
            "other_site_read_and_hold_s": round(t_west, 2),
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(scratch),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "snapshot_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("entries listed", f"{result['entries']:,}"),
        ("manifest in the bucket", f"{result['manifest_bytes']:,} bytes "
                                   f"({result['manifest_bytes_per_entry']} per entry)"),
        ("tree read (own read snapshot: writes go on) + encoded + compressed",
         f"{result['manifest_s']} s"),
        ("manifest read back and checked (another site, worker thread)",
         f"{result['decode_s']} s"),
        ("manifest written to the bucket (file://)", f"{result['upload_s']} s"),
        ("journal entry + holds at the making site", f"{result['journal_and_holds_s']} s"),
        ("store growth at each site (holds)", f"{result['store_growth_bytes']:,} bytes "
                                              f"({result['store_growth_per_content']} per content)"),
        ("another site: manifest read, checked, held (all)",
         f"{result['other_site_read_and_hold_s']} s"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    (args.out / "snapshot_overhead.md").write_text(
        f"# Snapshot overhead, {args.files:,} files\n\n`{' '.join(['bench/snapshot_overhead.py', *(argv or sys.argv[1:])])}`"
        f" — {result['when']}\n\n| figure | result |\n| --- | --- |\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
