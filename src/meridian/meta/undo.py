"""Undo records: the trash, earlier versions of files, and snapshots, the same at every site.

Every record is derived from a journal entry every site applies, so no record is invented
locally and every site ends with the same set:

- **trash** (``trash:<hlc>.<origin>.<origin_seq>``): one per ``trash`` entry, which the site
  that removed a file or directory writes in the same transaction as the removal
  (:meth:`undorecords.UndoRecords._trash_removed`; ``[namespace] trash_days`` 0 turns that
  off).
- **versions** (``version:<file id>:<content version>``): one per ``content`` entry, local or
  applied while the trash is on: every content a file had, with the site and clock time that wrote it. The version
  a write replaced is the one before it.
- **snapshots** (``snapshot:<name>``): one per ``snapshot`` entry; of two made under one name
  concurrently the later (clock, then site) is kept, at every site.
- **purges** (``purge:<key>``, and ``purged:<file id>`` for the files they took, whose
  earlier versions go too) are kept so a removal or write that arrives after a purge it is
  older than is dropped too (same result in any order); ``purgedtrash:<trash key>`` keeps a
  removal a purge took, for a later purge that covers it too, as long as the trash would
  have kept it.

Whatever a record refers to is **held**: ``hold:<hash>:<holder>`` rows (and, for snapshots,
one counted row per distinct content in the engine's compact ``snapshot_holds`` table, shared
by every snapshot that names it) keep the content out of garbage collection (``referenced``, ``unreferenced_contents`` and ``forget_content`` count
them), at this site and in every peer's answer to the collector.

Retention is this site's: :meth:`undorecords.UndoRecords.expire_undo` drops records older
than the retention it is given (the site calls it each collection round); a site that was
down expires them when it runs again. All records live in the engine's key-value table
(``undorecords``), so both engines hold them with the same code.
"""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from meridian.meta.interface import ROOT_INO

TRASH_SETTING = "trash_enabled"  # site setting: "1" (the site sets it while trash_days > 0)
# turns on trash records of local removals; off by default, so a bare store journals as before


@dataclass(frozen=True)
class TrashRecord:
    """A removed file or directory as it was (``time_ns``: the removal's clock time)."""

    key: str
    path: str
    fid: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    hash: str | None
    target: str | None
    cause: str
    site: str
    time_ns: int

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


@dataclass(frozen=True)
class VersionRecord:
    """One content a file had: written at ``site`` at ``time_ns`` (its clock time)."""

    fid: str
    version: str
    hash: str | None
    size: int
    mtime: int
    site: str
    time_ns: int


@dataclass(frozen=True)
class SnapshotRecord:
    """A snapshot: its manifest's hash in the bucket, how many entries and bytes it lists."""

    name: str
    manifest: str
    files: int
    size: int
    site: str
    time_ns: int
    hlc: int


# (path, mode, uid, gid, size, mtime_ns, content hash, symlink target): one entry of a tree
TreeRow = tuple[str, int, int, int, int, int, str | None, str | None]


def tree_rows(rows: Iterable[tuple[Any, ...]]) -> Iterator[TreeRow]:
    """Paths for (parent ino, name, ino, mode, uid, gid, size, mtime, content, target) rows
    of every entry, ``/.meridian`` left out; parents before children is not promised."""
    listed = list(rows)
    dirs = {row[2]: (row[0], row[1]) for row in listed if stat.S_ISDIR(row[3])}
    paths: dict[int, str | None] = {ROOT_INO: ""}

    def path_of(ino: int) -> str | None:
        if ino in paths:
            return paths[ino]
        chain = []
        current = ino
        while current not in paths:
            if current not in dirs:
                paths[current] = None  # not reachable from the root
                break
            chain.append(current)
            current = dirs[current][0]
        base = paths[current]
        for step in reversed(chain):
            parent_name = dirs[step][1]
            base = None if base is None else f"{base}/{parent_name}"
            paths[step] = base
        return paths[ino]

    for parent, name, _ino, mode, uid, gid, size, mtime, content, target in listed:
        base = path_of(parent)
        if base is None or (parent == ROOT_INO and name == ".meridian"):
            continue
        if base == "/.meridian" or base.startswith("/.meridian/"):
            continue
        target_text = os.fsdecode(target) if isinstance(target, bytes) else target
        yield (f"{base}/{name}", mode, uid, gid, size, mtime, content, target_text)


def under(path: str, prefix: str | None) -> bool:
    """Whether ``path`` is ``prefix`` or below it (``None`` or ``/``: everything)."""
    if prefix is None or prefix.rstrip("/") == "":
        return True
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


class UndoStore(ABC):
    """What a store offers for undo (both engines: ``undorecords.UndoRecords``)."""

    @abstractmethod
    def trash_list(self, path: str | None = None, *, since_ns: int | None = None,
                   site: str | None = None) -> list[TrashRecord]:
        """Trash records under ``path``, removed at or after ``since_ns``, at ``site``;
        oldest first."""

    @abstractmethod
    def trash_purge(self, path: str | None = None, before_ns: int | None = None) -> int:
        """Journal a purge (every site forgets those records); returns how many went here."""

    @abstractmethod
    def versions(self, fid: str) -> list[VersionRecord]:
        """Every content of file ``fid`` still kept, oldest first."""

    @abstractmethod
    def snapshots(self) -> list[SnapshotRecord]:
        """Every snapshot, oldest first."""

    @abstractmethod
    def snapshot_add(self, name: str, manifest: str, files: int, size: int,
                     hashes: set[str]) -> SnapshotRecord:
        """Journal a snapshot whose manifest (in the bucket) lists ``hashes``; they are held
        here. Raises AlreadyExists if the name is taken."""

    @abstractmethod
    def snapshot_delete(self, name: str) -> SnapshotRecord:
        """Journal the deletion of snapshot ``name``. Raises NotFound."""

    @abstractmethod
    def hold_snapshot(self, name: str, manifest: str, hashes: set[str]) -> bool:
        """Hold the contents of a snapshot this site learnt of from a peer (once its manifest
        is read); False if the snapshot is not (or no longer) that one."""

    @abstractmethod
    def snapshot_held(self, name: str, manifest: str) -> bool:
        """Whether :meth:`hold_snapshot` (or ``snapshot_add``) was done here for it."""

    @abstractmethod
    def pending_releases(self) -> list[str]:
        """Manifests of deleted snapshots whose contents this site still holds."""

    @abstractmethod
    def release_snapshot(self, manifest: str, hashes: set[str]) -> None:
        """Let go of the contents (``hashes``, read from the manifest) of a deleted snapshot."""

    @abstractmethod
    def expire_undo(self, now_ns: int, keep_ns: int,
                    keep_version_ns: Callable[[str], int] | None = None) -> int:
        """Drop trash records removed more than ``keep_ns`` ago and versions replaced more than
        ``keep_version_ns(fid)`` (default ``keep_ns``) ago; returns how many went."""

    @abstractmethod
    def held(self, hash: str) -> bool:
        """Whether a trash record, version or snapshot holds ``hash``."""

    @abstractmethod
    def tree_reader(self) -> Callable[[], Iterator[TreeRow]]:
        """A callable giving every entry of the tree as it is now (one consistent view); the
        SQLite engine's reads its own snapshot and may run on another thread."""

    @abstractmethod
    def batch(self) -> AbstractContextManager[None]:
        """One durable transaction around several changes (a restore is all or nothing)."""
