"""Replicated content: a write applied, kept as a conflict copy, or bringing a deleted file
back (``docs/conflicts.md``: two writes, write against delete). Part of ``replica.Applier``."""

from __future__ import annotations

import json
import stat
from dataclasses import replace as _replace
from typing import Any

from meridian.meta.clock import physical_ms
from meridian.meta.conflicts import (
    authored,
    authored_kept,
    copy_file_id,
    copy_version,
)
from meridian.meta.entries import JournalEntry
from meridian.meta.interface import (
    ROOT_INO,
    Inode,
)
from meridian.meta.journal import (
    ContentOp,
    version_origin,
)
from meridian.meta.keptnames import KeptNames


class ContentRules(KeptNames):
    """How a replicated ``content`` entry is applied."""

    def _op_content(self, e: JournalEntry, op: ContentOp) -> None:
        self._record_content(op.hash, op.size)
        if op.hash:
            self.result.contents[op.hash] = e.origin
        inode = self.s.by_file_id(op.fid)
        if inode is None or (inode.nlink == 0 and inode.ino != ROOT_INO):
            self._drop_superseded_copy(op.fid, op.base)
            self._write_to_deleted(e, op, inode)
            return
        if not inode.is_file:
            return
        if inode.content_version == op.base:
            self._set_content(inode, e, op)
            return
        self._drop_superseded_copy(inode.file_id, op.base)
        if e.version > inode.content_version:
            self.keep_current_as_copy(inode)
            self._set_content(self.s._inode(inode.ino), e, op)
        else:
            directory, name = self._copy_place(inode, op.parent, op.name)
            self._make_copy(directory, name, inode, op.hash, op.size, e.version, authored(op))

    def keep_current_as_copy(self, inode: Inode) -> None:
        """The file's current version lost to a later one: keep it as a conflict copy, where
        and with the mode, owner and time its author wrote it."""
        written = authored_kept(self.s._get_kv(f"wrote:{inode.file_id}"))
        directory, name = self._copy_place(inode, written.get("parent"), written.get("name"))
        self._make_copy(directory, name, inode, inode.content, inode.size,
                        inode.content_version, written)

    def _set_content(self, inode: Inode, e: JournalEntry, op: ContentOp) -> None:
        # the time comes with the content, unless a later change set the time itself
        self.s._put_inode(_replace(
            inode, content=op.hash, size=op.size, mtime_ns=self._written_mtime(e, op),
            ctime_ns=physical_ms(e.hlc) * 1_000_000,
            origin_site=e.origin, content_version=e.version))
        self.result.inodes.add(inode.ino)
        # The names are dropped too, so the kernel lets go of the inode and asks again
        # (needed whenever the kernel keeps its own idea of a cached file's size).
        self.result.names += self.s._names_of(inode.ino)
        self.s._put_kv(f"wrote:{inode.file_id}", json.dumps(authored(op)))

    def _written_mtime(self, e: JournalEntry, op: ContentOp) -> int:
        """A write's modification time, unless a later change set the file's time itself."""
        touched, mtime_ns = self.s._touched(op.fid)
        return mtime_ns if touched > e.version and mtime_ns is not None else op.mtime

    def _copy_place(self, inode: Inode | None, parent_fid: str | None,
                    name: str | None) -> tuple[Inode, str]:
        """Where a conflict copy of a version written as ``name`` in ``parent_fid`` goes:
        there (the name its author used); in lost+found if that directory is gone (where it
        would be had the copy been made before the directory went); beside the file if the
        entry does not say where it was written."""
        directory = self._live(parent_fid)
        if directory is not None and directory.is_dir and name:
            return directory, name
        names = self.s._names_of(inode.ino) if inode is not None else []
        if name or not names:
            return self._lost_found(), name or (inode.file_id if inode is not None else "copy")
        return self.s._inode(names[0][0]), names[0][1]

    def _make_copy(self, directory: Inode, name: str, inode: Inode, content: str | None,
                   size: int, ver: str, written: dict[str, Any]) -> None:
        """Keep version ``ver`` of ``inode`` as a conflict copy beside ``name``, with the mode,
        owner and modification time the file had when that version was written (``written``,
        see ``authored``; the file's own where unknown): every site makes the same copy,
        whatever the file's attributes are by the time the conflict is seen there."""
        copy_id = copy_file_id(inode.file_id, ver)
        if self.s.by_file_id(copy_id) is not None:
            return
        if directory.file_id == self._lost_found().file_id:  # named as _evacuate names
            name = self._free_name(directory, name, copy_id)
        else:
            name = self._conflict_place(directory, name, ver)
        def kept(key: str, own: int) -> int:
            return int(written[key]) if written.get(key) is not None else own

        copy = self._with_recorded(_replace(
            inode, ino=self.s._bump("next_ino"), file_id=copy_id, nlink=1, attr_version=ver,
            content=content, size=size, origin_site=version_origin(ver), content_version=ver,
            name_version=ver, mode=kept("mode", inode.mode), uid=kept("uid", inode.uid),
            gid=kept("gid", inode.gid), mtime_ns=kept("mtime", inode.mtime_ns)))
        self._bind(directory, name, copy)
        self._relink(copy)
        self._follow_rename(self.s._inode(copy.ino))

    def _recorded_owner(self, file_id: str) -> tuple[str, int | None, int | None, int | None]:
        found = self.s._get_kv(f"owner:{file_id}")
        if not found:
            return "", None, None, None
        ver, mode, uid, gid = json.loads(found)
        return str(ver), mode, uid, gid

    def _with_recorded(self, inode: Inode) -> Inode:
        """Store ``inode`` (a file made here or brought back) with what later changes to it
        did while it was not here: mode and owner, time (``_op_setattr``) and extended
        attributes (``NamespaceCore._xattr_newer``); returns it as stored."""
        ver, mode, uid, gid = self._recorded_owner(inode.file_id)
        if ver > inode.attr_version:
            inode = _replace(inode, attr_version=ver,
                             mode=stat.S_IFMT(inode.mode) | (mode & 0o7777) if mode is not None
                             else inode.mode,
                             uid=uid if uid is not None else inode.uid,
                             gid=gid if gid is not None else inode.gid)
        touched, mtime_ns = self.s._touched(inode.file_id)
        if touched > inode.content_version and mtime_ns is not None:
            inode = _replace(inode, mtime_ns=mtime_ns)
        self.s._put_inode(inode)
        for key, value in self.s._recorded_xattrs(inode.file_id).items():
            self.s._put_xattr(inode.ino, key, value)
        return inode

    def _drop_superseded_copy(self, file_id: str, base: str | None) -> None:
        """A write based on a version that lost a conflict here supersedes its conflict copy:
        the copy goes if nobody changed it (so every site ends with the same copies). It goes
        as a delete does, its own name last: a write of it from a site that had not seen the
        supersession brings it back with every name, as at a site that never made it."""
        if not base:
            return
        copy = self._live(copy_file_id(file_id, base))
        if copy is None or copy.content_version != base:
            return
        self._delete_file(copy, self.s._own_name(copy))

    def _write_to_deleted(self, e: JournalEntry, op: ContentOp, inode: Inode | None) -> None:
        """A write to a file deleted here. Concurrent with a later version that was then
        deleted, it loses to that version: it stays as that version's conflict copy would
        have. Otherwise the modified file survives the delete: it comes back where it was
        (under its conflict name if the name was taken meanwhile, in lost+found if its
        directory went)."""
        tomb = self.s._tombstone(op.fid)
        parent_fid, name = (tomb[0], tomb[1]) if tomb else (op.parent, op.name or op.fid)
        deleted_version = tomb[2] if tomb else (inode.content_version if inode else "")
        if deleted_version and e.version < deleted_version:
            directory, name = self._copy_place(inode, op.parent, op.name or name)
            template = inode or Inode(0, op.fid, op.mode or stat.S_IFREG | 0o644,
                                      op.uid or 0, op.gid or 0, 0, 0,
                                      0, 0, 0)
            self._make_copy(directory, name, template, op.hash, op.size, e.version, authored(op))
            return
        self._resurrect(e, op, inode, parent_fid, name)

    def _nameless_file(self, e: JournalEntry, op: ContentOp) -> Inode:
        """A new, nameless inode for a file a write brings back to a site that never held it,
        made as its author described it."""
        t = physical_ms(e.hlc) * 1_000_000
        return Inode(ino=self.s._bump("next_ino"), file_id=op.fid,
                     mode=op.mode or stat.S_IFREG | 0o644, uid=op.uid or 0, gid=op.gid or 0,
                     size=0, nlink=0, atime_ns=t, mtime_ns=t, ctime_ns=t,
                     # a conflict copy's attributes are its version's, as where it was made
                     # when the conflict was seen: later changes of them count
                     attr_version=copy_version(op.fid) or e.version)

    def _revive_links(self, e: JournalEntry, op: ContentOp, inode: Inode | None) -> None:
        """Bring back a file whose first name was unlinked at a site that kept its other
        names: with the names links gave it only (``_relink``)."""
        if inode is None:
            inode = self._nameless_file(e, op)
        revived = self._with_recorded(_replace(
            inode, nlink=0, content=op.hash, size=op.size,
            mtime_ns=self._written_mtime(e, op), origin_site=e.origin,
            content_version=e.version))
        self._relink(revived)
        self.result.inodes.add(revived.ino)
        self.s._put_kv(f"wrote:{revived.file_id}", json.dumps(authored(op)))

    def _resurrect(self, e: JournalEntry, op: ContentOp, inode: Inode | None,
                   parent_fid: str | None, name: str) -> None:
        tomb = self.s._tombstone(op.fid)
        name_ver = (tomb[3] if tomb else inode.name_version if inode is not None
                    else op.name_version or e.version)
        key = self.s._tombstone_key(op.fid)
        first_gone = self.s._get_kv(f"firstgone:{op.fid}") is not None
        if first_gone:
            self.s._del_kv(f"firstgone:{op.fid}")
            # (a tombstone that keeps a link's name: that name comes back, below)
            if not key and self.s._get_kv(f"links:{op.fid}") not in (None, "[]"):
                self._revive_links(e, op, inode)
                return
        undone = self._undone(op.fid)  # removals undone here
        removed = [removal for removal in self.s._unlinked_names(op.fid)
                   if removal[3] not in {r[3] for r in undone}]
        latest_removed = max((removal[2] for removal in removed), default="")
        for removal in undone:
            if tomb is not None and removal[3] == key and removal[2] < latest_removed:
                # the name it last had here was left because its removal was undone (its
                # last name then), and an unlink of another name came later: as where that
                # unlink came first, this removal is done and the latest undone instead
                # (``_unlink_again``), below
                self._drop_undone(op.fid, removal)
                self.s._record_unlinked(op.fid, removal)
                removed.append(removal)
        if tomb is not None and any(removal[3] == key for removal in removed):
            # the name it last had here was unlinked elsewhere (an unlink of one name, which
            # came after the delete here): it does not come back, nor do other names so
            # removed; with no other name kept for it, the file keeps the name the latest
            # of those unlinks removed, as where they came before the delete
            gone = {removal[3] for removal in removed}
            links = [link for link in self._kept_links(op.fid)
                     if self._kept_key(link) not in gone]
            self._put_kept_links(op.fid, links)
            if links:
                self._revive_links(e, op, inode)
                return
            latest = max(removed, key=lambda removal: removal[2])
            self.s._forget_unlinked(op.fid, latest)
            self._leave_undone(op.fid, latest)  # done should the file get a name more
            parent_fid, name, key = latest[0], latest[1], latest[3]
            name_ver = latest[4] if len(latest) > 4 and latest[4] else key or latest[2]
        # a conflict copy comes back under its own name, unless a rename named it since
        # (which here may have lost its name to a later change)
        plain = self._restored_name(op.fid, name, name_ver)
        directory, name, lost = self._place(parent_fid, plain, self._lost_tag(op.fid, key))
        wanted = name
        if not lost:
            name = self._claim(directory, name, name_ver)
        if inode is None:
            inode = self._nameless_file(e, op)
        revived = _replace(inode, nlink=1, content=op.hash, size=op.size,
                           mtime_ns=self._written_mtime(e, op), origin_site=e.origin,
                           content_version=e.version, name_version=name_ver)
        revived = self._with_recorded(revived)
        self._bind(directory, name, revived)
        if key:  # its last name here was one a link made: it comes back as that name
            self.s._bind_link(directory.ino, name, revived, name_ver, key)
        links = self._kept_links(op.fid)  # that name comes back once
        if any(self._kept_key(link) == key for link in links):
            self._put_kept_links(op.fid, [link for link in links
                                          if self._kept_key(link) != key])
        self._relink(revived)
        self._redo_undone(self.s._inode(revived.ino))
        self._follow_rename(self.s._inode(revived.ino))
        self.result.inodes.add(revived.ino)
        self.s._put_kv(f"wrote:{revived.file_id}", json.dumps(authored(op)))
        if name != wanted:
            self.s._want(directory.ino, wanted, revived, name)
