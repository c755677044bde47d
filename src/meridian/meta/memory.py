"""The in-memory engine: dictionaries with an undo log, for unit tests of other layers.

Same contracts as every engine (the conformance suite runs against it), nothing durable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from meridian.meta.base import EngineStore
from meridian.meta.interface import ContentRecord, Inode, JournalEntry, PendingUpload

_MISSING = object()


class MemoryMetaStore(EngineStore):
    def __init__(self, site_name: str = "memory", *, site_id: str | None = None) -> None:
        self._tables: dict[str, dict[Any, Any]] = {
            name: {} for name in ("kv", "inodes", "entries", "xattrs", "contents", "uploads",
                                  "snapshot_holds")}
        self._journal_rows: list[JournalEntry] = []
        self._undo: list[Callable[[], None]] | None = None
        self._queued = 0
        self._bootstrap(site_name, site_id)

    @contextmanager
    def _transaction(self, durable: bool = False) -> Iterator[None]:
        if self._undo is not None:
            yield
            return
        self._undo = []
        try:
            yield
        except BaseException:
            for undo in reversed(self._undo):
                undo()
            self._undo = None
            self._rolled_back()
            raise
        self._undo = None
        self._committed()

    def close(self) -> None:
        pass

    def sync(self) -> None:
        pass

    def durable_seq(self) -> int:
        return self.last_seq()  # nothing is on disk; everything is as durable as it gets

    # -- table primitives with undo ---------------------------------------------------------
    def _set(self, table: str, key: Any, value: Any) -> None:
        rows = self._tables[table]
        old = rows.get(key, _MISSING)
        if self._undo is not None:
            self._undo.append(lambda: self._restore(table, key, old))
        if value is _MISSING:
            rows.pop(key, None)
        else:
            rows[key] = value

    def _restore(self, table: str, key: Any, old: Any) -> None:
        if old is _MISSING:
            self._tables[table].pop(key, None)
        else:
            self._tables[table][key] = old

    # -- hooks ------------------------------------------------------------------------------
    def _get_inode(self, ino: int) -> Inode | None:
        return self._tables["inodes"].get(ino)

    def _find_file_id(self, file_id: str) -> int | None:
        return next((ino for ino, inode in self._tables["inodes"].items()
                     if inode.file_id == file_id), None)

    def _put_inode(self, inode: Inode) -> None:
        self._set("inodes", inode.ino, inode)

    def _del_inode(self, ino: int) -> None:
        for name in self._list_xattrs(ino):
            self._del_xattr(ino, name)
        self._set("inodes", ino, _MISSING)

    def _get_entry(self, parent: int, name: str) -> int | None:
        return self._tables["entries"].get((parent, name))

    def _put_entry(self, parent: int, name: str, ino: int) -> None:
        self._set("entries", (parent, name), ino)

    def _del_entry(self, parent: int, name: str) -> None:
        self._set("entries", (parent, name), _MISSING)

    def _list_entries(self, parent: int) -> list[tuple[str, int]]:
        found = [(name, ino) for (p, name), ino in self._tables["entries"].items() if p == parent]
        return sorted(found, key=lambda item: item[0].encode("utf-8", "surrogateescape"))

    def _has_entries(self, parent: int) -> bool:
        return any(p == parent for p, _ in self._tables["entries"])

    def _names_of(self, ino: int) -> list[tuple[int, str]]:
        return sorted(key for key, value in self._tables["entries"].items() if value == ino)

    def _get_xattr(self, ino: int, name: str) -> bytes | None:
        return self._tables["xattrs"].get((ino, name))

    def _put_xattr(self, ino: int, name: str, value: bytes) -> None:
        self._set("xattrs", (ino, name), value)

    def _del_xattr(self, ino: int, name: str) -> None:
        self._set("xattrs", (ino, name), _MISSING)

    def _list_xattrs(self, ino: int) -> list[str]:
        return [name for i, name in self._tables["xattrs"] if i == ino]

    def _get_kv(self, key: str) -> str | None:
        return self._tables["kv"].get(key)

    def _put_kv(self, key: str, value: str) -> None:
        self._set("kv", key, value)

    def _content_in_use(self, hash: str) -> bool:
        return any(inode.content == hash and inode.nlink > 0
                   for inode in self._tables["inodes"].values())

    def _unreferenced(self, limit: int) -> list[ContentRecord]:
        used = {inode.content for inode in self._tables["inodes"].values() if inode.nlink > 0}
        return [r for h, r in self._tables["contents"].items() if h not in used][:limit]

    def _del_content(self, hash: str) -> None:
        self._set("contents", hash, _MISSING)

    def _del_kv(self, key: str) -> None:
        self._set("kv", key, _MISSING)

    def _kv_prefixed(self, prefix: str) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in self._tables["kv"].items() if k.startswith(prefix))

    def _append_journal(self, entry: JournalEntry) -> None:
        self._journal_rows.append(entry)
        if self._undo is not None:
            self._undo.append(self._drop_last_journal_entry)

    def _drop_last_journal_entry(self) -> None:
        self._journal_rows.pop()

    def _read_journal(self, after: int, limit: int) -> list[JournalEntry]:
        return [e for e in self._journal_rows if e.seq > after][:limit]

    def _get_content(self, hash: str) -> ContentRecord | None:
        return self._tables["contents"].get(hash)

    def _put_content(self, record: ContentRecord) -> None:
        self._set("contents", record.hash, record)

    def _get_upload(self, hash: str) -> PendingUpload | None:
        found = self._tables["uploads"].get(hash)
        return found[1] if found else None

    def _put_upload(self, upload: PendingUpload) -> None:
        existing = self._tables["uploads"].get(upload.hash)
        if existing is None:
            self._queued += 1
        self._set("uploads", upload.hash, (existing[0] if existing else self._queued, upload))

    def _del_upload(self, hash: str) -> None:
        self._set("uploads", hash, _MISSING)

    def _due_uploads(self, limit: int, now: float | None) -> list[PendingUpload]:
        rows = sorted(self._tables["uploads"].values(), key=lambda r: (-r[1].priority, r[0]))
        return [u for _, u in rows if now is None or u.next_try <= now][:limit]

    def _snapshot_holds(self, hash: str) -> int:
        return int(self._tables["snapshot_holds"].get(hash, 0))

    def _add_snapshot_holds(self, hashes: Iterable[str], delta: int) -> None:
        for hash in hashes:
            refs = self._snapshot_holds(hash) + delta
            self._set("snapshot_holds", hash, refs if refs > 0 else _MISSING)

    def _count(self, table: str) -> int:
        return len(self._tables[table])

    def _orphans(self) -> list[int]:
        return [ino for ino, inode in self._tables["inodes"].items() if inode.nlink == 0]
