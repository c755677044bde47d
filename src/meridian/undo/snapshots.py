"""Snapshots: the whole namespace at one moment, as a manifest in the bucket (no content copied).

A manifest lists every entry of the tree (Meridian's own ``/.meridian`` left out) as one JSON
array per line, ``[path, mode, uid, gid, size, mtime_ns, hash, target]``, after a header line
``{"format": 1, "name": ..., "site": ..., "entries": N}``; the whole is zlib-compressed and stored
under ``snapshots/<hash>`` where ``<hash>`` is the BLAKE3 of the stored bytes, so any site that
reads it checks it. A ``snapshot`` journal entry carries that hash: every site lists the
snapshot, reads the manifest from the bucket on first use, and holds the contents it names.

**At one moment**: the site that makes a snapshot reads its whole tree from one read snapshot
of its store (SQLite: a read transaction on a connection of its own, so the site's writes go on
meanwhile), so the manifest is the tree as that site had it at one instant: each file either
before or after any write (content is set whole, by hash), never half. Changes another site
made that had not reached this one yet are not in it (they are "after" the snapshot).
"""

from __future__ import annotations

import json
import stat
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from meridian.content.hashing import hash_bytes
from meridian.errors import ContentError
from meridian.meta import MetaStore, SnapshotRecord, TrashRecord
from meridian.meta.undo import TreeRow
from meridian.objects.interface import ObjectStore
from meridian.undo.restore import undo_store

MANIFEST_FORMAT = 1
PREFIX = "snapshots/"


@dataclass(frozen=True)
class Manifest:
    """A snapshot's tree: path -> [mode, uid, gid, size, mtime_ns, hash, target]."""

    name: str
    site: str
    entries: dict[str, list[Any]]

    def hashes(self) -> set[str]:
        return {e[5] for e in self.entries.values() if e[5] is not None}

    def records(self, path: str) -> list[TrashRecord]:
        """The entries at and under ``path`` as records a restore brings back (parents first)."""
        from meridian.meta.undo import under
        chosen = [p for p in self.entries if under(p, path)]
        chosen.sort(key=lambda p: (p.count("/"), p))
        records = []
        for p in chosen:
            mode, uid, gid, size, mtime, hash, target = self.entries[p]
            records.append(TrashRecord("", p, "", mode, uid, gid, size, mtime, hash, target,
                                       "snapshot", self.site, 0))
        return records


def encode(rows: Iterable[TreeRow], name: str, site: str) -> tuple[bytes, int, int, set[str]]:
    """The manifest of a tree (``UndoStore.tree_reader``'s rows): bytes, entries, total size
    of files, distinct content hashes. Pure: runs on any thread."""
    lines: list[bytes] = []
    total = 0
    hashes: set[str] = set()
    for row in sorted(rows):
        lines.append(json.dumps(row, separators=(",", ":")).encode())
        if stat.S_ISREG(row[1]):
            total += row[4]
        if row[6] is not None:
            hashes.add(row[6])
    header = json.dumps({"format": MANIFEST_FORMAT, "name": name, "site": site,
                         "entries": len(lines)}).encode()
    return zlib.compress(b"\n".join([header, *lines]), 1), len(lines), total, hashes


def create(meta: MetaStore, objects: ObjectStore, name: str) -> SnapshotRecord:
    """Make snapshot ``name`` (all on this thread): manifest to the bucket, then the journal
    entry (every site learns of it). Raises AlreadyExists, BadPath (not a valid name)."""
    prepare(meta, name)
    data, count, total, hashes = encode(undo_store(meta).tree_reader()(), name, meta.site_name)
    digest = store_manifest(objects, data)
    return undo_store(meta).snapshot_add(name, digest, count, total, hashes)


def prepare(meta: MetaStore, name: str) -> None:
    """Check a new snapshot's name. Raises BadPath, AlreadyExists."""
    from meridian.errors import AlreadyExists
    from meridian.meta import check_name
    check_name(name)
    if any(s.name == name for s in undo_store(meta).snapshots()):
        raise AlreadyExists(f"a snapshot named {name!r} exists: delete it first or choose "
                            f"another name")


def store_manifest(objects: ObjectStore, data: bytes) -> str:
    """Put a manifest in the bucket; returns its hash (its key's last part)."""
    digest = hash_bytes(data)
    objects.put(PREFIX + digest, data)
    return digest


def decode(data: bytes, digest: str) -> Manifest:
    """A manifest from its stored bytes, checked against ``digest``. Raises ContentError."""
    if hash_bytes(data) != digest:
        raise ContentError(f"snapshot manifest {digest[:12]} failed verification")
    lines = zlib.decompress(data).split(b"\n")
    header = json.loads(lines[0])
    if header.get("format") != MANIFEST_FORMAT:
        raise ContentError(f"snapshot manifest {digest[:12]}: format {header.get('format')} "
                           f"is not known here (this Meridian reads {MANIFEST_FORMAT})")
    entries = {}
    for line in lines[1:]:
        row = json.loads(line)
        entries[row[0]] = row[1:]
    return Manifest(str(header["name"]), str(header["site"]), entries)


def load(objects: ObjectStore, digest: str) -> Manifest:
    """Read and check a manifest from the bucket."""
    return decode(objects.get(PREFIX + digest), digest)
