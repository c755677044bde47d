"""``UndoRecords``: the undo records of ``meridian.meta.undo`` (trash, versions, purges,
snapshots and what they hold) kept in the engine's key-value table, so both engines hold
them with the same code. Every record is made from a journal entry every site applies
(``_note_undo``); see ``meridian.meta.undo`` for what each record is and means."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any

from meridian.errors import NotFound
from meridian.meta.clock import physical_ms
from meridian.meta.entries import JournalEntry
from meridian.meta.interface import ROOT_INO, ContentRecord, Inode
from meridian.meta.journal import ContentOp, version, version_hlc
from meridian.meta.records import SiteRecords
from meridian.meta.undo import (
    TRASH_SETTING,
    SnapshotRecord,
    TrashRecord,
    TreeRow,
    UndoStore,
    VersionRecord,
    tree_rows,
    under,
)
from meridian.meta.undoops import PurgeOp, SnapshotOp, TrashOp, UnsnapshotOp

_NS_PER_MS = 1_000_000


def _time_of(hlc: int) -> int:
    return physical_ms(hlc) * _NS_PER_MS


def _hlc_of(trash_key: str) -> int:
    """The clock of the removal a ``trash:<hlc>.<origin>.<seq>`` key names."""
    return int(trash_key.split(":", 1)[1].split(".", 1)[0], 16)


def _purges(purge_hlc: int, path: str | None, before: int | None, removal_hlc: int,
            record: TrashRecord) -> bool:
    """Whether a purge (its clock, path and ``before``) takes the removal ``record``: older
    than the purge, under its path, and removed before ``before`` when it gives one."""
    return (removal_hlc < purge_hlc and under(record.path, path)
            and (before is None or record.time_ns < before))


class UndoRecords(SiteRecords, UndoStore):
    """Undo records over the engine's key-value table (see the module docstring)."""

    # -- records made from journal entries (core._append calls this for every entry) ---------
    def _note_undo(self, entry: JournalEntry) -> None:
        op = entry.op
        if isinstance(op, ContentOp):
            if self._trash_enabled():
                self._note_version(entry, op)
        elif isinstance(op, TrashOp):
            self._note_trash(entry, op)
        elif isinstance(op, PurgeOp):
            self._note_purge(entry, op)
        elif isinstance(op, SnapshotOp):
            self._note_snapshot(entry, op)
        elif isinstance(op, UnsnapshotOp):
            current = self._snapshot(op.name)
            if current is not None and current.manifest == op.manifest:
                self._drop_snapshot(current)

    def _trash_enabled(self) -> bool:
        return self._get_kv(f"setting:{TRASH_SETTING}") == "1"

    def _hold(self, hash: str | None, holder: str) -> None:
        if hash is not None:
            self._put_kv(f"hold:{hash}:{holder}", "1")

    def _unhold(self, hash: str | None, holder: str) -> None:
        if hash is not None:
            self._del_kv(f"hold:{hash}:{holder}")

    def held(self, hash: str) -> bool:
        return bool(self._kv_prefixed(f"hold:{hash}:")) or self._snapshot_holds(hash) > 0

    def _note_version(self, entry: JournalEntry, op: ContentOp) -> None:
        purged = self._get_kv(f"purged:{op.fid}")
        if purged is not None and entry.hlc < int(purged):
            return  # the file's removal was purged after this write
        ver = version(entry.hlc, entry.origin)
        key = f"version:{op.fid}:{ver}"
        self._put_kv(key, json.dumps([op.hash, op.size, op.mtime, entry.origin,
                                      _time_of(entry.hlc)]))
        self._hold(op.hash, key)

    def _note_trash(self, entry: JournalEntry, op: TrashOp) -> None:
        key = f"trash:{entry.hlc:016x}.{entry.origin}.{entry.origin_seq}"
        record = TrashRecord(key, op.path, op.fid, op.mode, op.uid, op.gid, op.size, op.mtime,
                             op.hash, op.target, op.cause, entry.origin, _time_of(entry.hlc))
        latest = max((hlc for _, raw in self._kv_prefixed("purge:")
                      for hlc, path, before in [json.loads(raw)]
                      if _purges(hlc, path, before, entry.hlc, record)), default=None)
        if latest is not None:  # a purge this removal is older than was applied already
            self._purge_file(key, record, latest)
            return
        self._put_kv(key, json.dumps(asdict(record)))
        self._hold(op.hash, key)

    def _note_purge(self, entry: JournalEntry, op: PurgeOp) -> None:
        self._put_kv(f"purge:{entry.hlc:016x}.{entry.origin}.{entry.origin_seq}",
                     json.dumps([entry.hlc, op.path, op.before]))
        for record in self.trash_list(op.path):
            if _purges(entry.hlc, op.path, op.before, _hlc_of(record.key), record):
                self._drop_trash(record)
                self._purge_file(record.key, record, entry.hlc)
        # removals an earlier purge took: a later purge that covers them takes more versions
        for key, raw in self._kv_prefixed("purgedtrash:"):
            gone = TrashRecord(**json.loads(raw))
            if _purges(entry.hlc, op.path, op.before, _hlc_of(gone.key), gone):
                self._purge_file(gone.key, gone, entry.hlc)

    def _purge_file(self, key: str, record: TrashRecord, purge_hlc: int) -> None:
        """A purge (clock ``purge_hlc``) took the removal ``record``: the removed file's
        contents older than the purge go with it, and one that arrives later is dropped on
        arrival (``_note_version``). The removal is remembered (``purgedtrash:``), so that a
        later purge covering it too takes what it adds, whatever order the three arrive in."""
        self._put_kv(f"purgedtrash:{key}", json.dumps(asdict(record)))
        known = self._get_kv(f"purged:{record.fid}")
        self._put_kv(f"purged:{record.fid}", str(max(purge_hlc, int(known or 0))))
        for version_record in self.versions(record.fid):
            if version_hlc(version_record.version) < purge_hlc:
                version_key = f"version:{record.fid}:{version_record.version}"
                self._del_kv(version_key)
                self._unhold(version_record.hash, version_key)

    def _note_snapshot(self, entry: JournalEntry, op: SnapshotOp) -> None:
        current = self._snapshot(op.name)
        if current is not None:
            if (current.hlc, current.site) > (entry.hlc, entry.origin):
                return  # the later of two made under one name concurrently stays
            self._drop_snapshot(current)
        record = SnapshotRecord(op.name, op.manifest, op.files, op.size, entry.origin,
                                _time_of(entry.hlc), entry.hlc)
        self._put_kv(f"snapshot:{op.name}", json.dumps(asdict(record)))
        self._hold(op.manifest, f"snapshot:{op.name}")

    def _drop_trash(self, record: TrashRecord) -> None:
        self._del_kv(record.key)
        self._unhold(record.hash, record.key)

    def _snapshot(self, name: str) -> SnapshotRecord | None:
        raw = self._get_kv(f"snapshot:{name}")
        return SnapshotRecord(**json.loads(raw)) if raw is not None else None

    def _drop_snapshot(self, record: SnapshotRecord) -> None:
        holder = f"snapshot:{record.name}"
        self._del_kv(holder)
        self._unhold(record.manifest, holder)
        tag = f"snapheld:{record.name}:{record.manifest}"
        if self._get_kv(tag) is not None:
            self._del_kv(tag)
            # its contents stay held until the site, reading the manifest again, releases
            # them (release_snapshot): this store cannot read the bucket
            self._put_kv(f"snapunhold:{record.manifest}", record.name)

    # -- removals made here ---------------------------------------------------------------
    def _trash_removed(self, path: str, inode: Inode, cause: str) -> None:
        """Journal a ``trash`` entry for ``inode``, removed here from ``path`` (in the
        removal's transaction, after its entry)."""
        if not self._trash_enabled() or path.startswith("/.meridian/"):
            return
        hlc, _ = self._stamp()
        self._journal(hlc, TrashOp(
            path, inode.file_id, inode.mode, inode.uid, inode.gid,
            inode.size if inode.is_file or stat.S_ISLNK(inode.mode) else 0, inode.mtime_ns,
            inode.content if inode.is_file else None,
            inode.target if stat.S_ISLNK(inode.mode) else None, cause))

    # -- reading and changing -------------------------------------------------------------
    def trash_list(self, path: str | None = None, *, since_ns: int | None = None,
                   site: str | None = None) -> list[TrashRecord]:
        found = []
        for _, raw in self._kv_prefixed("trash:"):
            record = TrashRecord(**json.loads(raw))
            if (under(record.path, path) and (since_ns is None or record.time_ns >= since_ns)
                    and (site is None or record.site == site)):
                found.append(record)
        return found

    def trash_purge(self, path: str | None = None, before_ns: int | None = None) -> int:
        with self._transaction(durable=True):
            count = len(self.trash_list(path))
            hlc, _ = self._stamp()
            self._journal(hlc, PurgeOp(path, before_ns))
            return count - len(self.trash_list(path))

    def versions(self, fid: str) -> list[VersionRecord]:
        found = []
        for key, raw in self._kv_prefixed(f"version:{fid}:"):
            hash, size, mtime, site, time_ns = json.loads(raw)
            found.append(VersionRecord(fid, key.rsplit(":", 1)[1], hash, size, mtime, site,
                                       time_ns))
        found.sort(key=lambda v: (v.time_ns, v.version))
        return found

    def snapshots(self) -> list[SnapshotRecord]:
        found = [SnapshotRecord(**json.loads(raw)) for _, raw in self._kv_prefixed("snapshot:")]
        return sorted(found, key=lambda s: (s.hlc, s.site))

    def snapshot_add(self, name: str, manifest: str, files: int, size: int,
                     hashes: set[str]) -> SnapshotRecord:
        from meridian.errors import AlreadyExists
        with self._transaction(durable=True):
            if self._snapshot(name) is not None:
                raise AlreadyExists(f"a snapshot named {name!r} exists")
            hlc, _ = self._stamp()
            self._journal(hlc, SnapshotOp(name, manifest, files, size))
            self._hold_all(name, manifest, hashes)
            record = self._snapshot(name)
        assert record is not None
        return record

    def _hold_all(self, name: str, manifest: str, hashes: set[str]) -> None:
        self._add_snapshot_holds(hashes, 1)
        self._put_kv(f"snapheld:{name}:{manifest}", "1")

    def snapshot_delete(self, name: str) -> SnapshotRecord:
        with self._transaction(durable=True):
            record = self._snapshot(name)
            if record is None:
                raise NotFound(f"no snapshot named {name!r}")
            hlc, _ = self._stamp()
            self._journal(hlc, UnsnapshotOp(name, record.manifest))
        return record

    def hold_snapshot(self, name: str, manifest: str, hashes: set[str]) -> bool:
        with self._transaction(durable=True):
            record = self._snapshot(name)
            if record is None or record.manifest != manifest:
                return False
            if self._get_kv(f"snapheld:{name}:{manifest}") is None:
                self._hold_all(name, manifest, hashes)
        return True

    def snapshot_held(self, name: str, manifest: str) -> bool:
        return self._get_kv(f"snapheld:{name}:{manifest}") is not None

    def pending_releases(self) -> list[str]:
        return [key.split(":", 1)[1] for key, _ in self._kv_prefixed("snapunhold:")]

    def release_snapshot(self, manifest: str, hashes: set[str]) -> None:
        with self._transaction(durable=True):
            if self._get_kv(f"snapunhold:{manifest}") is not None:
                self._add_snapshot_holds(hashes, -1)
                self._del_kv(f"snapunhold:{manifest}")

    def expire_undo(self, now_ns: int, keep_ns: int,
                    keep_version_ns: Callable[[str], int] | None = None) -> int:
        dropped = 0
        with self._transaction():
            for record in self.trash_list():
                if record.time_ns < now_ns - keep_ns:
                    self._drop_trash(record)
                    dropped += 1
            for key, raw in self._kv_prefixed("purgedtrash:"):  # (kept for later purges only)
                if TrashRecord(**json.loads(raw)).time_ns < now_ns - keep_ns:
                    self._del_kv(key)
            by_file: dict[str, list[str]] = {}
            for key, _ in self._kv_prefixed("version:"):
                by_file.setdefault(key.split(":")[1], []).append(key)
            for fid in by_file:
                keep = keep_version_ns(fid) if keep_version_ns is not None else keep_ns
                kept = self.versions(fid)
                inode = self.by_file_id(fid)
                alive = inode is not None and inode.nlink > 0
                for earlier, later in zip(kept, kept[1:] + [None]):
                    # a version is replaced when the next one is written; the last one is
                    # current while the file lives (its own content holds it then)
                    replaced = later.time_ns if later is not None else (
                        None if alive else earlier.time_ns)
                    if replaced is not None and replaced < now_ns - keep:
                        key = f"version:{fid}:{earlier.version}"
                        self._del_kv(key)
                        self._unhold(earlier.hash, key)
                        dropped += 1
        return dropped

    def batch(self) -> AbstractContextManager[None]:
        return self._transaction(durable=True)

    def tree_reader(self) -> Callable[[], Iterator[TreeRow]]:
        rows: list[tuple[Any, ...]] = []
        with self._transaction():
            stack = [ROOT_INO]
            while stack:
                parent = stack.pop()
                for name, ino in self._list_entries(parent):
                    inode = self._get_inode(ino)
                    if inode is None:
                        continue
                    rows.append((parent, name, ino, inode.mode, inode.uid, inode.gid,
                                 inode.size, inode.mtime_ns, inode.content, inode.target))
                    if inode.is_dir:
                        stack.append(ino)
        found = list(tree_rows(rows))
        return lambda: iter(found)

    # -- garbage collection counts what is held -------------------------------------------
    def _snapshot_unread(self) -> bool:
        """A snapshot whose contents this site has not held yet (its manifest not read): it
        may name any content, so until then everything counts as held."""
        return any(self._get_kv(f"snapheld:{r.name}:{r.manifest}") is None
                   for r in self.snapshots())

    def referenced(self, hashes: list[str]) -> set[str]:
        if self._snapshot_unread():
            return set(hashes)
        return {h for h in hashes if self._content_in_use(h) or self.held(h)}

    def unreferenced_contents(self, limit: int = 1000) -> list[ContentRecord]:
        if self._snapshot_unread():
            return []
        want = limit
        while True:
            batch = self._unreferenced(want)
            found = [r for r in batch if not self.held(r.hash)]
            if len(found) >= limit or len(batch) < want:
                return found[:limit]
            want *= 4

    def forget_content(self, hash: str) -> None:
        if not self.held(hash):
            super().forget_content(hash)
