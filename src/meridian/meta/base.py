"""The namespace logic, written once over a small set of engine hooks.

``EngineStore`` implements every ``MetaStore`` operation in terms of row-level hooks
(``_get_inode``, ``_put_entry``, ...) that each engine provides inside a transaction
(``_transaction``). The checks (does it exist, is it a directory, would the rename make a
cycle) are made before the first write, so an operation that raises changes nothing; the
engine's transaction is the second line of defence.

The layers: ``hooks.EngineHooks`` (what an engine provides) → ``core.NamespaceCore``
(bookkeeping shared with replication) → ``records.SiteRecords`` → ``EngineStore``.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace as _replace

from meridian.errors import (
    AlreadyExists,
    DirectoryNotEmpty,
    InvalidOperation,
    IsADirectory,
    NoAttribute,
    NotADirectory,
    NotFound,
)
from meridian.meta.clock import HybridClock, physical_ms
from meridian.meta.entries import JournalEntry
from meridian.meta.interface import (
    LOST_FOUND_FILE_ID,
    META_DIR_FILE_ID,
    ROOT_FILE_ID,
    ROOT_INO,
    ApplyResult,
    AttrChanges,
    ContentRecord,
    Inode,
    MetaStore,
    PendingUpload,
    check_name,
    split_path,
)
from meridian.meta.journal import (
    ContentOp,
    CreateOp,
    LinkOp,
    RemovexattrOp,
    RenameOp,
    RmdirOp,
    SetattrOp,
    SetxattrOp,
    UnlinkOp,
)
from meridian.meta.replica import Applier
from meridian.meta.undorecords import UndoRecords

_FILE_TYPES = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO, stat.S_IFSOCK,
               stat.S_IFCHR, stat.S_IFBLK)


class EngineStore(UndoRecords, MetaStore):
    """Namespace logic over engine hooks. Engines call ``_bootstrap`` once they are open."""

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

    def _path_in(self, parent: int, name: str) -> str:
        return f"{self.path_of(parent).rstrip('/')}/{name}"

    def count_inodes(self) -> int:
        return self._count("inodes")

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
            if is_dir:
                self._new_directory(inode.ino)
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
            # another site's unlink left undone here (it would have removed the last name)
            # is done now that the file has another name, as everywhere else
            Applier(self, ApplyResult())._redo_undone(self._inode(ino))
            linked = self._inode(ino)
        return linked

    def unlink(self, parent: int, name: str) -> Inode:
        with self._transaction():
            inode = self._child(parent, name)
            if inode.is_dir:
                raise IsADirectory(f"{name!r} is a directory")
            parent_inode = self._inode(parent)
            self._check_removable(inode)
            bound = self._binding_key(parent, name, inode)
            bound_by = self._bound_version(parent, name, inode)
            left = self._drop_name(parent_inode, name, inode)
            hlc, ver = self._stamp()
            if left.nlink:
                self._record_unlinked(inode.file_id, [parent_inode.file_id, name, ver, bound,
                                                      bound_by])
            self._journal(hlc, UnlinkOp(parent_inode.file_id, name, inode.file_id,
                                        seen=inode.content_version, left=left.nlink,
                                        bound=bound))
            if not left.nlink:
                self._trash_removed(self._path_in(parent, name), inode, "unlink")
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
            path = self._path_in(parent, name)
            self._drop_name(parent_inode, name, inode)
            hlc, _ = self._stamp()
            self._journal(hlc, RmdirOp(parent_inode.file_id, name, inode.file_id))
            self._trash_removed(path, inode, "rmdir")

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
            bound = self._binding_key(parent, name, inode)
            seen = self._bound_version(parent, name, inode)
            replaced_bound = (self._binding_key(new_parent, new_name, target)
                              if target is not None else None)
            replaced_by = (self._bound_version(new_parent, new_name, target)
                           if target is not None else "")
            replaced = (self._drop_name(new_dir, new_name, target, refill=False)
                        if target is not None else None)
            if replaced is not None and replaced.nlink and not replaced.is_dir:
                self._record_unlinked(replaced.file_id, [new_dir.file_id, new_name, ver,
                                                         replaced_bound or "", replaced_by])
            self._move(inode, parent, name, new_parent, new_name, ver)
            self._journal(hlc, RenameOp(
                old_dir.file_id, name, new_dir.file_id, new_name, inode.file_id,
                name_seen=seen,
                replaced=target.file_id if target is not None else None,
                replaced_seen=target.content_version if target is not None else None,
                bound=bound,
                replaced_left=(replaced.nlink if replaced is not None and not replaced.is_dir
                               else None),
                replaced_bound=replaced_bound if target is not None and not target.is_dir
                else None))
            if replaced is not None and not replaced.nlink and target is not None:
                self._trash_removed(self._path_in(new_parent, new_name), target, "rename")
            if inode.is_dir:  # it may break a cycle that undid a peer's rename here
                Applier(self, ApplyResult())._redo_cycle_renames()
        return replaced

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
        mtime_ns: int | None = None, base: str | None = None, durable: bool = True,
    ) -> Inode:
        with self._transaction(durable=durable):
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
            parent_fid, name = self._written_as(inode)
            self._put_kv(f"wrote:{inode.file_id}", json.dumps(
                {"parent": parent_fid, "name": name, "mode": inode.mode, "mtime": mtime,
                 "uid": inode.uid, "gid": inode.gid}))  # as replica.authored
            # Enough to bring the file back where it was at a site that deleted it meanwhile
            # (modify beats delete), and the version it replaced (to tell a conflict).
            self._journal(hlc, ContentOp(inode.file_id, content, size, mtime, base, parent_fid,
                                         name, inode.name_version, inode.mode, inode.uid,
                                         inode.gid))
        return updated

    def _written_as(self, inode: Inode) -> tuple[str | None, str | None]:
        """Where a write of ``inode`` says it was written (directory file id, name): its own
        name, the one no hard link made, while it has it (the name ``name_version`` is of,
        and the one a conflict copy is known by everywhere: a site that never made the copy
        brings it back under it); else the first of its other names; (None, None) if it has
        none."""
        where = self._own_name(inode) or next(iter(self._names_of(inode.ino)), None)
        if where is None:
            return None, None
        return self._inode(where[0]).file_id, where[1]

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

    def getxattr(self, ino: int, name: str) -> bytes:
        self._inode(ino)
        value = self._get_xattr(ino, name)
        if value is None:
            raise NoAttribute(f"no attribute {name!r}")
        return value

    def listxattr(self, ino: int) -> list[str]:
        self._inode(ino)
        return sorted(self._list_xattrs(ino), key=os.fsencode)  # every engine: the bytes' order

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
