"""The journal operations of undo (format 2): what a site removed, purges and snapshots.

They replicate like every other operation, so every site ends with the same trash and the same
snapshots (``meta/undorecords.py`` keeps them; ``docs/replication.md`` documents the fields):

- ``trash``: written by the site that removed a file or directory, in the same transaction
  as the removal: everything needed to bring it back (path, type and mode, owner, size,
  modification time, content hash or symlink target). The origin writes it because only the
  origin knows the path and content exactly as they were when it removed them; every site then
  keeps the same record, under the entry's ``origin`` and ``origin_seq``.
- ``purge``: trash records under ``path`` removed before ``before`` are forgotten; it covers
  only records whose clock is earlier than the purge's own, so it gives the same result
  whatever order a site receives a purge and a concurrent removal in.
- ``snapshot`` / ``unsnapshot``: a snapshot named ``name`` whose manifest (path -> attributes
  and content hash, in the bucket under ``snapshots/``) has hash ``manifest``, made or deleted.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from meridian.errors import InvalidJournalEntry
from meridian.meta.journal import Op, _wire
from meridian.meta.wirevalues import MAX_ID, MAX_SIZE, FieldChecker, WireFields

MAX_PATH = 4096
TRASH_CAUSES = ("unlink", "rmdir", "rename")


def check_path(c: FieldChecker, key: str, path: str) -> None:
    """A namespace path: ``/`` and valid names, at most MAX_PATH bytes."""
    if not path.startswith("/") or len(path.encode(errors="replace")) > MAX_PATH:
        raise InvalidJournalEntry(f"op.{key}", f"{path[:80]!r} is not a namespace path")
    for part in path.split("/")[1:]:
        c.name(key, part)


@_wire("trash")
@dataclass(frozen=True, slots=True)
class TrashOp(Op):
    """A file or directory removed at the origin, as it was (``hash`` None: empty or not a
    regular file; ``target``: a symlink's)."""

    path: str
    fid: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    hash: str | None = None
    target: str | None = None
    cause: str = "unlink"

    @classmethod
    def decode(cls, f: WireFields) -> TrashOp:
        return cls(f.text("path"), f.text("fid"), f.number("mode"), f.number("uid"),
                   f.number("gid"), f.number("size"), f.number("mtime"), f.maybe_text("hash"),
                   f.maybe_text("target", required=False), f.text("cause"))

    def check(self, c: FieldChecker) -> None:
        check_path(c, "path", self.path)
        c.file_id("fid", self.fid)
        c.mode("mode", self.mode, full=True)
        c.owner("uid", self.uid)
        c.owner("gid", self.gid)
        c.bounded("size", self.size, MAX_SIZE)
        c.time("mtime", self.mtime)
        if self.hash is not None:
            c.hash("hash", self.hash)
            if not stat.S_ISREG(self.mode):
                raise InvalidJournalEntry("op.hash", "only regular files have content")
        if stat.S_ISLNK(self.mode) != (self.target is not None):
            raise InvalidJournalEntry("op.target", "a symlink needs a target and nothing else has one")
        if self.target is not None:
            c.target("target", self.target)
        if self.cause not in TRASH_CAUSES:
            raise InvalidJournalEntry("op.cause", f"{self.cause!r}: one of {', '.join(TRASH_CAUSES)}")


@_wire("purge")
@dataclass(frozen=True, slots=True)
class PurgeOp(Op):
    """Trash records under ``path`` (None: all) removed before ``before`` (ns; None: any time)
    and earlier than this entry's clock are forgotten everywhere."""

    path: str | None = None
    before: int | None = None

    @classmethod
    def decode(cls, f: WireFields) -> PurgeOp:
        return cls(f.maybe_text("path"), f.maybe_number("before"))

    def check(self, c: FieldChecker) -> None:
        if self.path is not None:
            check_path(c, "path", self.path)
        if self.before is not None:
            c.time("before", self.before)


@_wire("snapshot")
@dataclass(frozen=True, slots=True)
class SnapshotOp(Op):
    """A snapshot made at the origin at the entry's clock time."""

    name: str
    manifest: str
    files: int
    size: int

    @classmethod
    def decode(cls, f: WireFields) -> SnapshotOp:
        return cls(f.text("name"), f.text("manifest"), f.number("files"), f.number("size"))

    def check(self, c: FieldChecker) -> None:
        c.name("name", self.name)
        c.hash("manifest", self.manifest)
        c.bounded("files", self.files, MAX_ID * 1024)
        c.bounded("size", self.size, MAX_SIZE)


@_wire("unsnapshot")
@dataclass(frozen=True, slots=True)
class UnsnapshotOp(Op):
    """The snapshot ``name`` with manifest ``manifest`` deleted (a snapshot made again under
    the same name concurrently has another manifest and stays)."""

    name: str
    manifest: str

    @classmethod
    def decode(cls, f: WireFields) -> UnsnapshotOp:
        return cls(f.text("name"), f.text("manifest"))

    def check(self, c: FieldChecker) -> None:
        c.name("name", self.name)
        c.hash("manifest", self.manifest)


UNDO_OPS = (TrashOp, PurgeOp, SnapshotOp, UnsnapshotOp)
