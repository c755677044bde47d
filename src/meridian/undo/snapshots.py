"""Snapshots: the whole namespace at one moment, as a manifest in the bucket (no content copied).

A manifest lists every entry of the tree (Meridian's own ``/.meridian`` left out) as one JSON
array per line, ``[path, mode, uid, gid, size, mtime_ns, hash, target]``, after a header line
``{"format": 1, "name": ..., "site": ..., "entries": N}``; the whole is zlib-compressed and stored
under ``snapshots/<hash>`` where ``<hash>`` is the BLAKE3 of the stored bytes, so any site that
reads it checks it. A ``snapshot`` journal entry carries that hash: every site lists the
snapshot, reads the manifest from the bucket on first use, and holds the contents it names.

**At one moment**: the site that makes a snapshot reads its whole tree inside one transaction
of its store, so the manifest is the tree as that site had it at one instant: each file either
before or after any write (content is set whole, by hash), never half. Changes another site
made that had not reached this one yet are not in it (they are "after" the snapshot).
"""

from __future__ import annotations

import json
import stat
import zlib
from dataclasses import dataclass
from typing import Any

from meridian.content.hashing import hash_bytes
from meridian.errors import ContentError
from meridian.meta import MetaStore, SnapshotRecord, TrashRecord
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


def encode(meta: MetaStore, name: str) -> tuple[bytes, int, int]:
    """The manifest of ``meta``'s tree now (one transaction): bytes, entries, total size."""
    lines: list[bytes] = []
    total = 0
    with undo_store(meta).batch():
        for path, inode in meta.walk():
            if path == "/" or path == "/.meridian" or path.startswith("/.meridian/"):
                continue
            target = inode.target if stat.S_ISLNK(inode.mode) else None
            lines.append(json.dumps([path, inode.mode, inode.uid, inode.gid, inode.size,
                                     inode.mtime_ns, inode.content, target],
                                    separators=(",", ":")).encode())
            total += inode.size if inode.is_file else 0
    header = json.dumps({"format": MANIFEST_FORMAT, "name": name, "site": meta.site_name,
                         "entries": len(lines)}).encode()
    data = zlib.compress(b"\n".join([header, *lines]), 1)
    return data, len(lines), total


def create(meta: MetaStore, objects: ObjectStore, name: str) -> tuple[SnapshotRecord, Manifest]:
    """Make snapshot ``name``: manifest to the bucket, then the journal entry (every site
    learns of it). Raises AlreadyExists (the name is taken), BadPath (not a valid name)."""
    from meridian.meta import check_name
    from meridian.errors import AlreadyExists
    check_name(name)
    store = undo_store(meta)
    if any(s.name == name for s in store.snapshots()):
        raise AlreadyExists(f"a snapshot named {name!r} exists: delete it first or choose "
                            f"another name")
    data, count, total = encode(meta, name)
    digest = hash_bytes(data)
    objects.put(PREFIX + digest, data)
    manifest = decode(data, digest)
    record = store.snapshot_add(name, digest, count, total, manifest.hashes())
    return record, manifest


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
