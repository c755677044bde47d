"""The namespace logic, written once over a small set of engine hooks.

``EngineStore`` implements every ``MetaStore`` operation in terms of row-level hooks
(``_get_inode``, ``_put_entry``, ...) that each engine provides inside a transaction
(``_transaction``). The checks (does it exist, is it a directory, would the rename make a
cycle) are made before the first write, so an operation that raises changes nothing; the
engine's transaction is the second line of defence.
"""

from __future__ import annotations

import json
import os
import stat
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace as _replace

from meridian.errors import (
    AlreadyExists,
    BadPath,
    DirectoryNotEmpty,
    InvalidOperation,
    IsADirectory,
    NameTooLong,
    NoAttribute,
    NotADirectory,
    NotFound,
)
from meridian.meta.clock import HybridClock, physical_ms
from meridian.meta.replica import Applier, ApplyResult, original_name
from meridian.meta.interface import (
    ROOT_FILE_ID,
    ROOT_INO,
    AttrChanges,
    ContentRecord,
    Inode,
    MetaStore,
    PendingUpload,
    StoredObjective,
)
from meridian.meta.journal import (
    ContentOp,
    CreateOp,
    InstanceOp,
    JournalEntry,
    LinkOp,
    Op,
    RemovexattrOp,
    RenameOp,
    RetireOp,
    RmdirOp,
    SetattrOp,
    SetxattrOp,
    UnlinkOp,
    version,
)

MAX_NAME = 255
META_DIR_FILE_ID = "meridian"  # /.meridian, the same directory at every site
LOST_FOUND_FILE_ID = "lost+found"  # /.meridian/lost+found
RESERVED_FILE_IDS = (ROOT_FILE_ID, META_DIR_FILE_ID, LOST_FOUND_FILE_ID)
_FILE_TYPES = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO, stat.S_IFSOCK,
               stat.S_IFCHR, stat.S_IFBLK)


def check_name(name: str) -> str:
    """Return ``name`` if it is one valid path component, else raise BadPath."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise BadPath(f"invalid name {name!r}: a name is one path component")
    if len(os.fsencode(name)) > MAX_NAME:
        raise NameTooLong(f"name too long ({len(os.fsencode(name))} bytes, at most {MAX_NAME})")
    return name


def split_path(path: str) -> list[str]:
    """Components of a namespace path (``./a/b``, ``/a/b``, ``a/b``); ``..`` is refused."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise BadPath(f"path {path!r} contains '..': paths are confined to the namespace")
        check_name(part)
    return parts


class EngineStore(MetaStore):
    """Namespace logic over engine hooks. Engines call ``_bootstrap`` once they are open."""

    _clock: HybridClock
    _uncommitted: list[JournalEntry]
    _listeners: list[Callable[[list[JournalEntry]], None]]

    # -- engine hooks -----------------------------------------------------------------------
    @abstractmethod
    def _transaction(self, durable: bool = False) -> AbstractContextManager[None]:
        """All hook writes inside are committed together or rolled back on an exception.

        ``durable``: the commit is on disk when it returns (and so is every commit before
        it); otherwise it is atomic and ordered, and on disk at the next durable commit or
        ``sync`` (group commit, as ext4 treats namespace operations)."""

    @abstractmethod
    def _get_inode(self, ino: int) -> Inode | None: ...

    @abstractmethod
    def _find_file_id(self, file_id: str) -> int | None: ...

    @abstractmethod
    def _put_inode(self, inode: Inode) -> None: ...

    @abstractmethod
    def _del_inode(self, ino: int) -> None: ...

    @abstractmethod
    def _get_entry(self, parent: int, name: str) -> int | None: ...

    @abstractmethod
    def _put_entry(self, parent: int, name: str, ino: int) -> None: ...

    @abstractmethod
    def _del_entry(self, parent: int, name: str) -> None: ...

    @abstractmethod
    def _list_entries(self, parent: int) -> list[tuple[str, int]]:
        """Sorted by name."""

    @abstractmethod
    def _has_entries(self, parent: int) -> bool: ...

    @abstractmethod
    def _names_of(self, ino: int) -> list[tuple[int, str]]:
        """Every (parent, name) that points at ``ino``."""

    @abstractmethod
    def _get_xattr(self, ino: int, name: str) -> bytes | None: ...

    @abstractmethod
    def _put_xattr(self, ino: int, name: str, value: bytes) -> None: ...

    @abstractmethod
    def _del_xattr(self, ino: int, name: str) -> None: ...

    @abstractmethod
    def _list_xattrs(self, ino: int) -> list[str]: ...

    @abstractmethod
    def _get_kv(self, key: str) -> str | None: ...

    @abstractmethod
    def _put_kv(self, key: str, value: str) -> None: ...

    @abstractmethod
    def _del_kv(self, key: str) -> None: ...

    @abstractmethod
    def _append_journal(self, entry: JournalEntry) -> None: ...

    @abstractmethod
    def _read_journal(self, after: int, limit: int) -> list[JournalEntry]: ...

    @abstractmethod
    def _get_content(self, hash: str) -> ContentRecord | None: ...

    @abstractmethod
    def _put_content(self, record: ContentRecord) -> None: ...

    @abstractmethod
    def _get_upload(self, hash: str) -> PendingUpload | None: ...

    @abstractmethod
    def _put_upload(self, upload: PendingUpload) -> None: ...

    @abstractmethod
    def _del_upload(self, hash: str) -> None: ...

    @abstractmethod
    def _due_uploads(self, limit: int, now: float | None) -> list[PendingUpload]: ...

    @abstractmethod
    def _count(self, table: str) -> int:
        """Rows of ``inodes`` or ``uploads``."""

    @abstractmethod
    def _orphans(self) -> list[int]:
        """Inodes with nlink 0."""

    # -- set-up -----------------------------------------------------------------------------
    def _bootstrap(self, site_name: str, site_id: str | None) -> None:
        """Create the root and the site identity on first open; load them after.

        On every open, inodes left nameless by a crash (nothing can have them open any more)
        are dropped.
        """
        self._uncommitted = []
        self._listeners = []
        with self._transaction(durable=True):
            stored_name = self._get_kv("site_name")
            if stored_name is None:
                self._put_kv("site_name", site_name)
                self._put_kv("site_id", site_id or os.urandom(16).hex())
                self._put_kv("next_counter", "1")
                self._put_kv("last_seq", "0")
                now = time.time_ns()
                # modification time 0 until a change names them: the same at every site
                self._put_inode(Inode(ROOT_INO, ROOT_FILE_ID, stat.S_IFDIR | 0o755, 0, 0, 0, 3,
                                      now, 0, now, origin_site=site_name))
                # Meridian's own directories: the same file ids at every site, never journaled
                # (every site makes them itself), never removed or renamed.
                self._put_inode(Inode(ROOT_INO + 1, META_DIR_FILE_ID, stat.S_IFDIR | 0o755, 0, 0,
                                      0, 3, now, 0, now, origin_site=site_name))
                self._put_entry(ROOT_INO, ".meridian", ROOT_INO + 1)
                self._put_inode(Inode(ROOT_INO + 2, LOST_FOUND_FILE_ID, stat.S_IFDIR | 0o700, 0,
                                      0, 0, 2, now, 0, now, origin_site=site_name))
                self._put_entry(ROOT_INO + 1, "lost+found", ROOT_INO + 2)
                self._put_kv("next_ino", str(ROOT_INO + 3))
            elif stored_name != site_name:
                from meridian.errors import StoreError
                raise StoreError(f"this store belongs to site {stored_name!r}, not {site_name!r}")
            for ino in self._orphans():
                self._del_inode(ino)
        self.site_name = site_name
        self.site_id = self._get_kv("site_id") or ""
        last = self._read_journal(self.last_seq() - 1, 1) if self.last_seq() else []
        self._clock = HybridClock(last[-1].hlc if last else 0)

    # -- helpers ----------------------------------------------------------------------------
    def _inode(self, ino: int) -> Inode:
        inode = self._get_inode(ino)
        if inode is None:
            raise NotFound(f"no inode {ino}")
        return inode

    def _dir(self, ino: int) -> Inode:
        inode = self._inode(ino)
        if not inode.is_dir:
            raise NotADirectory(f"inode {ino} is not a directory")
        return inode

    def _child(self, parent: int, name: str) -> Inode:
        self._dir(parent)
        ino = self._get_entry(parent, name)
        if ino is None:
            raise NotFound(f"no entry {name!r} in directory {parent}")
        return self._inode(ino)

    def _bump(self, key: str) -> int:
        value = int(self._get_kv(key) or "1")
        self._put_kv(key, str(value + 1))
        return value

    def _stamp(self) -> tuple[int, str]:
        """A clock value for a local change, and its version string."""
        hlc = self._clock.now()
        return hlc, version(hlc, self.site_name)

    def _journal(self, hlc: int, op: Op) -> None:
        """Append a local change to the journal (in the caller's transaction)."""
        origin_seq = self._bump_applied(self.site_name)
        self._entries_changed(op, hlc, version(hlc, self.site_name))
        self._append(JournalEntry(0, self.site_name, hlc, op, origin_seq))

    def _append(self, entry: JournalEntry) -> None:
        """Append ``entry`` (local, or relayed from another origin) at the next position."""
        seq = int(self._get_kv("last_seq") or "0") + 1
        self._put_kv("last_seq", str(seq))
        entry = _replace(entry, seq=seq)
        self._append_journal(entry)
        self._uncommitted.append(entry)

    def _bump_applied(self, origin: str) -> int:
        """The next sequence number of ``origin``, recorded as applied."""
        value = int(self._get_kv(f"applied:{origin}") or "0") + 1
        self._put_kv(f"applied:{origin}", str(value))
        return value

    def applied_seq(self, origin: str) -> int:
        """How many of ``origin``'s changes this site holds (its own: how many it made)."""
        return int(self._get_kv(f"applied:{origin}") or "0")

    # -- commit listeners -------------------------------------------------------------------
    def add_listener(self, listener: Callable[[list[JournalEntry]], None]) -> None:
        """Call ``listener`` with the entries of every transaction, once it has committed
        (never for one that rolled back), on the thread that committed it."""
        self._listeners.append(listener)

    def _committed(self) -> None:
        """Engines call this after their outermost transaction commits."""
        entries, self._uncommitted = self._uncommitted, []
        if entries:
            for listener in self._listeners:
                listener(entries)

    def _rolled_back(self) -> None:
        """Engines call this after their outermost transaction rolls back."""
        self._uncommitted = []

    def _touch_dir(self, inode: Inode, nlink_delta: int = 0) -> None:
        """An entry of ``inode`` changed here: its ctime is now. (Its mtime is the clock
        time of the latest change that named it: ``_entries_changed``.)"""
        self._put_inode(_replace(inode, ctime_ns=time.time_ns(), nlink=inode.nlink + nlink_delta))

    def _entries_changed(self, op: Op, hlc: int, ver: str) -> None:
        """A change ``op`` (made here or applied) named the directories it changes: each gets
        its clock time as modification time, unless a later change set that already. The
        same at every site whatever the order, since every site applies the same changes
        (what a conflict moves as a consequence does not count: it differs between sites)."""
        if isinstance(op, RenameOp):
            directories = [op.parent, op.new_parent]
        elif isinstance(op, (CreateOp, LinkOp, UnlinkOp, RmdirOp)):
            directories = [op.parent]
        else:
            return
        for file_id in dict.fromkeys(directories):
            directory = self.by_file_id(file_id)
            if (directory is None or not directory.is_dir
                    or (directory.nlink == 0 and directory.ino != ROOT_INO)):
                continue
            if ver > self._touched(file_id)[0]:
                changed = physical_ms(hlc) * 1_000_000
                self._put_touched(file_id, ver, changed)
                self._put_inode(_replace(directory, mtime_ns=changed))

    def _drop_name(self, parent: Inode, name: str, inode: Inode, *, refill: bool = True) -> Inode:
        """Remove one name of ``inode``; returns the inode as it is afterwards."""
        self._del_entry(parent.ino, name)
        if inode.is_dir:
            self._touch_dir(self._inode(parent.ino), -1)
            self._del_inode(inode.ino)
            if refill:
                self._freed(parent.ino, name)
            return _replace(inode, nlink=0)
        self._touch_dir(self._inode(parent.ino))
        self._unbind_link(parent.ino, name, inode)
        left = _replace(inode, nlink=inode.nlink - 1, ctime_ns=time.time_ns())
        self._put_inode(left)
        if left.nlink == 0:  # where it was: a write from another site may bring it back there
            self._put_tombstone(inode.file_id, parent.file_id, name, inode.content_version,
                                inode.name_version)
        if refill:
            self._freed(parent.ino, name)
        return left

    def _bound_version(self, parent: int, name: str, inode: Inode) -> str:
        """The version of the change that bound ``name`` in ``parent`` to ``inode``: the link
        that made it, for a name a hard link made (``_bind_link``); else the inode's
        ``name_version`` (the change that gave it its first name)."""
        if not inode.is_dir:
            found = self._get_kv(f"link:{self._inode(parent).file_id}/{name}")
            if found:
                file_id, ver = json.loads(found)
                if file_id == inode.file_id:
                    return str(ver)
        return inode.name_version

    def _bind_link(self, parent: int, name: str, inode: Inode, ver: str) -> None:
        """Record that the change ``ver`` (a link) bound ``name`` in ``parent`` to ``inode``:
        a conflict over that name is decided by that change, not by the file's first name."""
        self._put_kv(f"link:{self._inode(parent).file_id}/{name}",
                     json.dumps([inode.file_id, ver]))

    def _unbind_link(self, parent: int, name: str, inode: Inode) -> str | None:
        """Forget what ``_bind_link`` recorded of ``name`` in ``parent``; returns its version
        if it was a link of ``inode``."""
        key = f"link:{self._inode(parent).file_id}/{name}"
        found = self._get_kv(key)
        if not found:
            return None
        self._del_kv(key)
        file_id, ver = json.loads(found)
        return str(ver) if file_id == inode.file_id else None

    def _unlinked_names(self, file_id: str) -> list[list[str]]:
        """The names of ``file_id`` removed one at a time while it kept others: [directory
        file id, name, version of the unlink, version that bound the name]."""
        return list(json.loads(self._get_kv(f"unlinked:{file_id}") or "[]"))

    def _record_unlinked(self, file_id: str, removal: list[str]) -> None:
        self._put_kv(f"unlinked:{file_id}", json.dumps(self._unlinked_names(file_id) + [removal]))

    def _forget_unlinked(self, file_id: str, removal: list[str]) -> None:
        self._put_kv(f"unlinked:{file_id}", json.dumps(
            [r for r in self._unlinked_names(file_id) if r != removal]))

    def _want(self, directory: int, name: str, inode: Inode, placed_as: str) -> None:
        """``inode`` lost ``name`` in ``directory`` to a concurrent change and was placed as
        ``placed_as``; it gets ``name`` back if the name is freed (so the outcome does not
        depend on whether the winner had left before or after the loser arrived)."""
        key = f"want:{self._inode(directory).file_id}/{name}"
        wanting = json.loads(self._get_kv(key) or "[]")
        wanting.append([inode.file_id, placed_as])
        self._put_kv(key, json.dumps(wanting))

    def _freed(self, directory: int, name: str, *, unless_before: str | None = None) -> bool:
        """``name`` in ``directory`` was freed: the latest loser still waiting for it (still
        under the name it was given) takes it back. ``unless_before``: only if that loser's
        change is later than this version (a change about to bind the free name competes
        with the losers waiting for it). Returns whether a loser took the name."""
        key = f"want:{self._inode(directory).file_id}/{name}"
        found = self._get_kv(key)
        if found is None:
            return False
        waiting = []
        for file_id, placed_as in json.loads(found):
            ino = self._find_file_id(file_id)
            if ino is None:
                continue
            if self._get_entry(directory, placed_as) != ino:
                # moved on to another conflict name of this name (a later change took the
                # one it was given): it still waits; moved anywhere else, it stopped waiting
                placed_as = next((n for parent, n in self._names_of(ino) if parent == directory
                                  and n != name and original_name(n) == name), "")
            if placed_as:
                waiting.append((self._inode(ino), placed_as))
        if not waiting:
            self._del_kv(key)
            return False
        best, placed_as = max(waiting,
                              key=lambda item: self._bound_version(directory, item[1], item[0]))
        if (unless_before is not None
                and self._bound_version(directory, placed_as, best) < unless_before):
            return False
        rest = [[i.file_id, p] for i, p in waiting if i.ino != best.ino]
        if rest:
            self._put_kv(key, json.dumps(rest))
        else:
            self._del_kv(key)
        self._move(best, directory, placed_as, directory, name, best.name_version)
        return True

    def _put_tombstone(self, file_id: str, parent_fid: str, name: str, content_version: str,
                       name_version: str) -> None:
        self._put_kv(f"tomb:{file_id}",
                     json.dumps([parent_fid, name, content_version, name_version]))

    def _tombstone(self, file_id: str) -> tuple[str, str, str, str] | None:
        """Where the file ``file_id`` last had a name at this site, if it was deleted here:
        (directory file id, name, content version, name version)."""
        found = self._get_kv(f"tomb:{file_id}")
        if not found:
            return None
        parent, name, content_version, name_version = json.loads(found)
        return str(parent), str(name), str(content_version), str(name_version)

    # -- reading ----------------------------------------------------------------------------
    def getattr(self, ino: int) -> Inode:
        return self._inode(ino)

    def lookup(self, parent: int, name: str) -> Inode:
        return self._child(parent, name)

    def list_dir(self, parent: int) -> list[tuple[str, Inode]]:
        self._dir(parent)
        return [(name, self._inode(ino)) for name, ino in self._list_entries(parent)]

    def resolve(self, path: str) -> Inode:
        inode = self._inode(ROOT_INO)
        for part in split_path(path):
            inode = self._child(inode.ino, part)
        return inode

    def path_of(self, ino: int) -> str:
        parts: list[str] = []
        current = self._inode(ino).ino
        while current != ROOT_INO:
            names = self._names_of(current)
            if not names:
                raise NotFound(f"inode {ino} has no name")
            parent, name = names[0]
            parts.append(name)
            current = parent
        return "/" + "/".join(reversed(parts))

    def by_file_id(self, file_id: str) -> Inode | None:
        ino = self._find_file_id(file_id)
        return self._get_inode(ino) if ino is not None else None

    def parent_of(self, ino: int) -> int:
        self._inode(ino)
        if ino == ROOT_INO:
            return ROOT_INO
        names = self._names_of(ino)
        if not names:
            raise NotFound(f"inode {ino} has no name")
        return names[0][0]

    def walk(self, top: int = ROOT_INO) -> Iterator[tuple[str, Inode]]:
        stack = [(self.path_of(top), self._inode(top))]
        while stack:
            path, inode = stack.pop()
            yield path, inode
            if inode.is_dir:
                base = path.rstrip("/")
                for name, ino in reversed(self._list_entries(inode.ino)):
                    child = self._get_inode(ino)
                    if child is not None:
                        stack.append((f"{base}/{name}", child))

    def count_inodes(self) -> int:
        return self._count("inodes")

    # -- namespace changes ------------------------------------------------------------------
    def create(
        self, parent: int, name: str, mode: int, uid: int, gid: int, target: str | None = None,
        rdev: int = 0,
    ) -> Inode:
        check_name(name)
        if stat.S_IFMT(mode) not in _FILE_TYPES:
            raise InvalidOperation(f"unsupported file type {stat.S_IFMT(mode):o}")
        with self._transaction():
            parent_inode = self._dir(parent)
            if self._get_entry(parent, name) is not None:
                raise AlreadyExists(f"{name!r} exists in directory {parent}")
            now = time.time_ns()
            hlc, ver = self._stamp()
            born = physical_ms(hlc) * 1_000_000  # the time every site gives it (replica.py)
            is_dir = stat.S_ISDIR(mode)
            inode = Inode(
                ino=self._bump("next_ino"),
                file_id=f"{self.site_id}.{self._bump('next_counter')}",
                mode=mode, uid=uid, gid=gid,
                size=len(os.fsencode(target)) if target is not None else 0,
                nlink=2 if is_dir else 1, atime_ns=born, mtime_ns=born, ctime_ns=now,
                target=target, origin_site=self.site_name,
                rdev=rdev if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else 0,
                content_version=ver, name_version=ver, attr_version=ver,
            )
            self._put_inode(inode)
            self._put_entry(parent, name, inode.ino)
            self._touch_dir(parent_inode, 1 if is_dir else 0)
            self._journal(hlc, CreateOp(parent_inode.file_id, name, inode.file_id, mode, uid, gid,
                                        target, inode.rdev))
        return inode

    def link(self, ino: int, new_parent: int, new_name: str) -> Inode:
        check_name(new_name)
        with self._transaction():
            inode = self._inode(ino)
            if inode.is_dir:
                raise IsADirectory("hard links to directories are not allowed")
            parent_inode = self._dir(new_parent)
            if self._get_entry(new_parent, new_name) is not None:
                raise AlreadyExists(f"{new_name!r} exists in directory {new_parent}")
            hlc, ver = self._stamp()
            linked = _replace(inode, nlink=inode.nlink + 1, ctime_ns=time.time_ns())
            self._put_inode(linked)
            self._put_entry(new_parent, new_name, ino)
            self._bind_link(new_parent, new_name, linked, ver)
            self._touch_dir(parent_inode)
            self._journal(hlc, LinkOp(inode.file_id, parent_inode.file_id, new_name))
        return linked

    def unlink(self, parent: int, name: str) -> Inode:
        with self._transaction():
            inode = self._child(parent, name)
            if inode.is_dir:
                raise IsADirectory(f"{name!r} is a directory")
            parent_inode = self._inode(parent)
            self._check_removable(inode)
            bound = self._bound_version(parent, name, inode)
            left = self._drop_name(parent_inode, name, inode)
            hlc, ver = self._stamp()
            if left.nlink:
                self._record_unlinked(inode.file_id, [parent_inode.file_id, name, ver, bound])
            self._journal(hlc, UnlinkOp(parent_inode.file_id, name, inode.file_id,
                                        seen=inode.content_version, left=left.nlink,
                                        bound=bound))
        return left

    def rmdir(self, parent: int, name: str) -> None:
        with self._transaction():
            inode = self._child(parent, name)
            if not inode.is_dir:
                raise NotADirectory(f"{name!r} is not a directory")
            if self._has_entries(inode.ino):
                raise DirectoryNotEmpty(f"directory {name!r} is not empty")
            self._check_removable(inode)
            parent_inode = self._inode(parent)
            self._drop_name(parent_inode, name, inode)
            hlc, _ = self._stamp()
            self._journal(hlc, RmdirOp(parent_inode.file_id, name, inode.file_id))

    def _is_ancestor(self, ancestor: int, ino: int) -> bool:
        current = ino
        while current != ROOT_INO:
            if current == ancestor:
                return True
            names = self._names_of(current)
            if not names:
                return False
            current = names[0][0]
        return ancestor == ROOT_INO

    def rename(
        self, parent: int, name: str, new_parent: int, new_name: str, *, replace: bool = True
    ) -> Inode | None:
        check_name(new_name)
        with self._transaction():
            inode = self._child(parent, name)
            old_dir = self._inode(parent)
            new_dir = self._dir(new_parent)
            target_ino = self._get_entry(new_parent, new_name)
            target = self._inode(target_ino) if target_ino is not None else None
            if target is not None and target.ino == inode.ino:
                return None  # same inode (hard links, or a name onto itself): rename(2) does nothing
            if target is not None and not replace:
                raise AlreadyExists(f"{new_name!r} exists in directory {new_parent}")
            if inode.is_dir and self._is_ancestor(inode.ino, new_parent):
                raise InvalidOperation(f"cannot move directory {name!r} into itself")
            self._check_removable(inode)
            if target is not None:
                if inode.is_dir and not target.is_dir:
                    raise NotADirectory(f"cannot replace non-directory {new_name!r} with a directory")
                if not inode.is_dir and target.is_dir:
                    raise IsADirectory(f"cannot replace directory {new_name!r} with a non-directory")
                if target.is_dir and self._has_entries(target.ino):
                    raise DirectoryNotEmpty(f"directory {new_name!r} is not empty")
            if target is not None:
                self._check_removable(target)
            hlc, ver = self._stamp()
            bound = self._bound_version(parent, name, inode)
            replaced = (self._drop_name(new_dir, new_name, target, refill=False)
                        if target is not None else None)
            self._move(inode, parent, name, new_parent, new_name, ver)
            self._journal(hlc, RenameOp(
                old_dir.file_id, name, new_dir.file_id, new_name, inode.file_id,
                name_seen=inode.name_version,
                replaced=target.file_id if target is not None else None,
                replaced_seen=target.content_version if target is not None else None,
                bound=bound))
        return replaced

    def _move(self, inode: Inode, parent: int, name: str, new_parent: int, new_name: str,
              ver: str, *, refill: bool = True) -> None:
        """Move one name of ``inode`` to a free place (the caller has checked everything).
        ``refill``: the old name is free now (a conflict loser waiting for it takes it);
        False when the caller binds it again at once."""
        linked = None if inode.is_dir else self._unbind_link(parent, name, inode)
        self._del_entry(parent, name)
        self._put_entry(new_parent, new_name, inode.ino)
        moved_dir = 1 if inode.is_dir else 0
        self._touch_dir(self._inode(parent), -moved_dir)
        self._touch_dir(self._inode(new_parent), moved_dir)
        current = self._inode(inode.ino)
        if linked is not None:
            # A name a link made keeps its own version: the link's if a conflict moved it
            # (the move keeps the version), the rename's if renamed; the file's first name
            # and its version stay as they are.
            self._bind_link(new_parent, new_name, current,
                            linked if ver == current.name_version else ver)
            self._put_inode(_replace(current, ctime_ns=time.time_ns()))
        else:
            self._put_inode(_replace(current, ctime_ns=time.time_ns(), name_version=ver))
        if refill:
            self._freed(parent, name)

    def _check_removable(self, inode: Inode) -> None:
        """The site's own directories (``/.meridian``, its ``lost+found``) stay where they are."""
        if inode.file_id in RESERVED_FILE_IDS:
            raise InvalidOperation(f"{inode.file_id!r} is Meridian's own directory")

    def setattr(self, ino: int, changes: AttrChanges) -> Inode:
        with self._transaction():
            inode = self._inode(ino)
            hlc, ver = self._stamp()
            owner_change = changes.mode is not None or changes.uid is not None or changes.gid is not None
            updated = _replace(
                inode,
                mode=(stat.S_IFMT(inode.mode) | (changes.mode & 0o7777))
                if changes.mode is not None else inode.mode,
                uid=changes.uid if changes.uid is not None else inode.uid,
                gid=changes.gid if changes.gid is not None else inode.gid,
                atime_ns=changes.atime_ns if changes.atime_ns is not None else inode.atime_ns,
                mtime_ns=changes.mtime_ns if changes.mtime_ns is not None else inode.mtime_ns,
                ctime_ns=time.time_ns(),
                attr_version=ver if owner_change else inode.attr_version,
            )
            self._put_inode(updated)
            if changes.atime_ns is not None or changes.mtime_ns is not None:
                self._put_touched(inode.file_id, ver, updated.mtime_ns)  # the later wins
            # A change of mode or owner carries all three: the later wins whole, whatever
            # order two concurrent ones arrive in (never merged field by field).
            self._journal(hlc, SetattrOp(
                inode.file_id, stat.S_IMODE(updated.mode) if owner_change else None,
                updated.uid if owner_change else None, updated.gid if owner_change else None,
                changes.atime_ns, changes.mtime_ns))
        return updated

    def set_content(
        self, ino: int, content: str | None, size: int, *, upload_priority: int = 0,
        mtime_ns: int | None = None, base: str | None = None,
    ) -> Inode:
        with self._transaction(durable=True):
            inode = self._inode(ino)
            if inode.is_dir:
                raise IsADirectory(f"inode {ino} is a directory")
            if not inode.is_file:
                raise InvalidOperation(f"inode {ino} is not a regular file")
            if base is not None and base != inode.content_version and inode.nlink > 0:
                # another site's version arrived while this one was being written: keep it
                Applier(self, ApplyResult()).keep_current_as_copy(inode)
                inode = self._inode(ino)
            else:
                base = inode.content_version
            if content is not None and self._get_content(content) is None:
                self._put_content(ContentRecord(content, size, in_bucket=False))
            record = self._get_content(content) if content is not None else None
            if record is not None and not record.in_bucket and self._get_upload(content or "") is None:
                self._put_upload(PendingUpload(record.hash, size, upload_priority, 0, 0.0))
            now = time.time_ns()
            hlc, ver = self._stamp()
            mtime = mtime_ns if mtime_ns is not None else now
            updated = _replace(inode, content=content, size=size, mtime_ns=mtime, ctime_ns=now,
                               origin_site=self.site_name, content_version=ver)
            self._put_inode(updated)
            where = self._names_of(ino)
            parent_fid, name = (self._inode(where[0][0]).file_id, where[0][1]) if where else (None, None)
            self._put_kv(f"wrote:{inode.file_id}", json.dumps(
                {"parent": parent_fid, "name": name, "mode": inode.mode, "mtime": mtime,
                 "uid": inode.uid, "gid": inode.gid}))  # as replica.authored
            # Enough to bring the file back where it was at a site that deleted it meanwhile
            # (modify beats delete), and the version it replaced (to tell a conflict).
            self._journal(hlc, ContentOp(inode.file_id, content, size, mtime, base, parent_fid,
                                         name, inode.name_version, inode.mode, inode.uid,
                                         inode.gid))
        return updated

    def forget_all(self, inos: Iterable[int]) -> int:
        dropped = 0
        with self._transaction():
            for ino in inos:
                inode = self._get_inode(ino)
                if inode is None or inode.nlink > 0 or ino == ROOT_INO:
                    continue
                for name in self._list_xattrs(ino):
                    self._del_xattr(ino, name)
                self._del_inode(ino)
                dropped += 1
        return dropped

    # -- extended attributes ----------------------------------------------------------------
    def getxattr(self, ino: int, name: str) -> bytes:
        self._inode(ino)
        value = self._get_xattr(ino, name)
        if value is None:
            raise NoAttribute(f"no attribute {name!r}")
        return value

    def listxattr(self, ino: int) -> list[str]:
        self._inode(ino)
        return self._list_xattrs(ino)

    def setxattr(self, ino: int, name: str, value: bytes, *, create: bool = False,
                 replace: bool = False) -> None:
        with self._transaction():
            inode = self._inode(ino)
            present = self._get_xattr(ino, name) is not None
            if create and present:
                raise AlreadyExists(f"attribute {name!r} exists")
            if replace and not present:
                raise NoAttribute(f"no attribute {name!r}")
            hlc, ver = self._stamp()
            self._put_xattr(ino, name, value)
            self._xattr_newer(inode.file_id, name, ver, bytes(value))
            self._put_inode(_replace(inode, ctime_ns=time.time_ns()))
            self._journal(hlc, SetxattrOp(inode.file_id, name, bytes(value)))

    def removexattr(self, ino: int, name: str) -> None:
        with self._transaction():
            inode = self._inode(ino)
            if self._get_xattr(ino, name) is None:
                raise NoAttribute(f"no attribute {name!r}")
            hlc, ver = self._stamp()
            self._del_xattr(ino, name)
            self._xattr_newer(inode.file_id, name, ver, None)
            self._put_inode(_replace(inode, ctime_ns=time.time_ns()))
            self._journal(hlc, RemovexattrOp(inode.file_id, name))

    def _put_touched(self, file_id: str, ver: str, mtime_ns: int) -> None:
        """Record the last change that set ``file_id``'s times itself (``setattr``), and the
        modification time it set: a write earlier than it does not change the time."""
        self._put_kv(f"times:{file_id}", json.dumps([ver, mtime_ns]))

    def _touched(self, file_id: str) -> tuple[str, int | None]:
        """(version, modification time) of the last change that set ``file_id``'s times
        itself ("" if none)."""
        found = self._get_kv(f"times:{file_id}")
        if not found:
            return "", None
        ver, mtime_ns = json.loads(found)
        return str(ver), mtime_ns

    def _xattr_newer(self, file_id: str, name: str, ver: str, value: bytes | None) -> bool:
        """Whether a change of version ``ver`` to the attribute ``name`` of ``file_id`` (to
        ``value``; None: removed) is later than the last one made or applied here; if so it
        is recorded as the last. Of two concurrent changes of one attribute the later wins,
        in whatever order they come; the record outlives the file here, so a file that comes
        back (or is first made here later, a conflict copy) gets its attributes
        (``_recorded_xattrs``)."""
        key = f"xattr:{file_id}/{name}"
        found = self._get_kv(key)
        if found is not None and ver <= json.loads(found)[0]:
            return False
        self._put_kv(key, json.dumps([ver, value.hex() if value is not None else None]))
        return True

    def _recorded_xattrs(self, file_id: str) -> dict[str, bytes]:
        """The attributes ``_xattr_newer`` recorded for ``file_id`` as set (not removed)."""
        prefix = f"xattr:{file_id}/"
        return {key[len(prefix):]: bytes.fromhex(value)
                for key, (_, value) in ((k, json.loads(v)) for k, v in self._kv_prefixed(prefix))
                if value is not None}

    # -- content and uploads ----------------------------------------------------------------
    def content(self, hash: str) -> ContentRecord | None:
        return self._get_content(hash)

    def pending_uploads(self, limit: int = 100, *, now: float | None = None) -> list[PendingUpload]:
        return self._due_uploads(limit, now)

    def upload_count(self) -> int:
        return self._count("uploads")

    def upload_failed(self, hash: str, next_try: float, error: str) -> None:
        with self._transaction(durable=False):
            upload = self._get_upload(hash)
            if upload is not None:
                self._put_upload(_replace(upload, attempts=upload.attempts + 1, next_try=next_try,
                                          last_error=error[:500]))

    def mark_all_in_bucket(self, hashes: Iterable[str]) -> None:
        with self._transaction(durable=True):
            for hash in hashes:
                record = self._get_content(hash)
                self._del_upload(hash)
                if record is None or record.in_bucket:
                    continue
                self._put_content(_replace(record, in_bucket=True))
                self._journal(self._clock.now(), InstanceOp(hash, record.size))

    # -- replication ------------------------------------------------------------------------
    def apply_entries(self, peer: str, entries: list[JournalEntry], *,
                      through: int | None = None) -> ApplyResult:
        result = ApplyResult()
        with self._transaction():
            applier = Applier(self, result)
            position = self.peer_position(peer)
            for entry in entries:
                done = self.applied_seq(entry.origin)
                if entry.origin == self.site_name or entry.origin_seq <= done:
                    result.skipped += 1
                elif entry.origin_seq > done + 1:
                    result.gap = True
                    break
                else:
                    self._clock.observe(entry.hlc)
                    applier.apply(entry)
                    self._entries_changed(entry.op, entry.hlc, entry.version)
                    self._bump_applied(entry.origin)
                    self._append(_replace(entry, seq=0))
                    result.applied += 1
                position = entry.seq
            if through is not None and not result.gap:
                position = max(position, through)
            self._put_kv(f"peer:{peer}", str(position))
        return result

    def objectives(self) -> list[StoredObjective]:
        raw = self._get_kv("objectives")
        return [StoredObjective(**row) for row in json.loads(raw)] if raw else []

    def _put_objectives(self, rules: list[StoredObjective]) -> None:
        self._put_kv("objectives", json.dumps([vars(r) for r in rules]))

    def add_objectives(self, texts: list[str]) -> list[str]:
        with self._transaction(durable=True):
            rules = self.objectives()
            ids = [f"o{self._bump('next_objective')}" for _ in texts]
            now = time.time()
            rules += [StoredObjective(i, t, now) for i, t in zip(ids, texts)]
            self._put_objectives(rules)
        return ids

    def remove_objective(self, objective_id: str) -> StoredObjective:
        with self._transaction(durable=True):
            rules = self.objectives()
            found = next((r for r in rules if r.id == objective_id), None)
            if found is None:
                raise NotFound(f"no objective {objective_id!r} at site {self.site_name}")
            self._put_objectives([r for r in rules if r.id != objective_id])
        return found

    def move_objective(self, objective_id: str, before: str | None) -> None:
        with self._transaction(durable=True):
            rules = self.objectives()
            ids = [r.id for r in rules]
            for wanted in (objective_id, before):
                if wanted is not None and wanted not in ids:
                    raise NotFound(f"no objective {wanted!r} at site {self.site_name}")
            moving = rules[ids.index(objective_id)]
            rest = [r for r in rules if r.id != objective_id]
            at = len(rest) if before is None else [r.id for r in rest].index(before)
            rest.insert(at, moving)
            self._put_objectives(rest)

    def get_setting(self, key: str) -> str | None:
        return self._get_kv(f"setting:{key}")

    def put_setting(self, key: str, value: str) -> None:
        with self._transaction():
            self._put_kv(f"setting:{key}", value)

    def referenced(self, hashes: list[str]) -> set[str]:
        return {h for h in hashes if self._content_in_use(h)}

    def unreferenced_contents(self, limit: int = 1000) -> list[ContentRecord]:
        return self._unreferenced(limit)

    def retire_content(self, hash: str) -> int:
        with self._transaction(durable=True):
            record = self._get_content(hash)
            if record is not None:
                self._put_content(_replace(record, in_bucket=False))
            self._journal(self._clock.now(), RetireOp(hash))
        return self.applied_seq(self.site_name)

    def forget_content(self, hash: str) -> None:
        with self._transaction():
            if not self._content_in_use(hash):
                self._del_content(hash)
                self._del_upload(hash)

    @abstractmethod
    def _content_in_use(self, hash: str) -> bool:
        """Whether an inode refers to ``hash``."""

    @abstractmethod
    def _unreferenced(self, limit: int) -> list[ContentRecord]: ...

    @abstractmethod
    def _del_content(self, hash: str) -> None: ...

    def mark_departed(self, site: str) -> None:
        with self._transaction(durable=True):
            self._put_kv(f"departed:{site}", "1")

    def departed(self) -> set[str]:
        return {key.split(":", 1)[1] for key, _ in self._kv_prefixed("departed:")}

    def peer_position(self, peer: str) -> int:
        return int(self._get_kv(f"peer:{peer}") or "0")

    def positions(self) -> dict[str, int]:
        return {key.split(":", 1)[1]: int(value) for key, value in self._kv_prefixed("applied:")}

    @abstractmethod
    def _kv_prefixed(self, prefix: str) -> list[tuple[str, str]]:
        """Every (key, value) whose key starts with ``prefix``."""

    # -- journal ----------------------------------------------------------------------------
    def journal(self, after: int = 0, limit: int = 1000) -> list[JournalEntry]:
        return self._read_journal(after, limit)

    def last_seq(self) -> int:
        return int(self._get_kv("last_seq") or "0")
