"""Applying other sites' journal entries: the rules that make every site converge.

Every site applies the same set of entries, each origin's in its order and each causally
after what its origin had seen (a site's journal lists what it applied before what it did next,
and streams are read in order), so the rules below only have to give the same result for
concurrent changes whatever order they arrive in. They are rule 5 of ``docs/design.md``, plus
our own rules for the cases it leaves open (``docs/conflicts.md`` states them for users):

- **names**: a name bound concurrently at two sites (two creates, two renames onto it) goes to
  the later change (HLC, then site name); the other entry becomes a conflict copy
  ``name.conflict-<yyyymmdd>-<hhmmss>-<site>.ext`` in the same directory.
- **content**: a write that did not see the current content is concurrent with it: the later
  keeps the name, the other version becomes a conflict copy (a new file whose id is derived from
  the losing version, so every site makes the same one). A later write of the losing site
  supersedes its own conflict copy, which goes away if nobody touched it.
- **modify vs. delete**: a delete (or a replacing rename) that did not see the current content
  is not applied; a write that finds its file deleted brings it back (under a conflict name if
  its name was taken meanwhile).
- **rename vs. rename** of one file: the later rename wins. **rename vs. delete**: the delete
  wins (the file had no new content).
- **directory cycles**: of two renames that would make a cycle, the later is undone into
  ``/.meridian/lost+found/``, and redone once a later rename (here or anywhere) breaks the
  cycle, as at a site that saw that rename first.
- **directory delete vs. create inside**: the directory goes; what was created in it
  concurrently is kept in ``/.meridian/lost+found/``.
- **attributes**: the later change of mode and owner wins whole (the origin sends all three);
  the modification time is the one of the later of the writes and time changes; of two changes
  of one extended attribute, the later wins.
- **conflict copies** carry the mode, owner and modification time their version was written
  with, so every site makes the same copy whatever the file's attributes are by then.
- **hard links**: a name a link made is judged by that link's change (``link:`` records); an
  unlink or rename finds the name its origin meant by the change that bound it; unlinks of one
  name never delete a file (of concurrent ones, the latest is undone); a delete wins over links
  its origin had not seen, unless a write brings the file back with them.
- **directory times**: a directory's mtime is the clock time of the latest change that named
  it (``NamespaceCore._entries_changed``), or a later explicit time.

Everything here runs inside the caller's transaction and touches the store only through the
engine hooks, so an entry and the position that counts it commit together.

Split in layers: ``placing.Placing`` (where things go) → ``keptnames.KeptNames`` (names kept,
removed and left undone) → ``versions.ContentRules`` (writes and conflict copies) →
``Applier`` (every operation; this module).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import replace as _replace

from meridian.meta.clock import physical_ms
from meridian.meta.entries import JournalEntry
from meridian.meta.interface import (
    ContentRecord,
    Inode,
)
from meridian.meta.journal import (
    ContentOp,
    CreateOp,
    InstanceOp,
    LinkOp,
    RemovexattrOp,
    RenameOp,
    RetireOp,
    RmdirOp,
    SetattrOp,
    SetxattrOp,
    UnlinkOp,
)
from meridian.meta.undoops import PurgeOp, SnapshotOp, TrashOp, UnsnapshotOp
from meridian.meta.versions import ContentRules

log = logging.getLogger(__name__)


class Applier(ContentRules):
    """Applies entries to ``store`` inside its open transaction."""

    def apply(self, entry: JournalEntry) -> None:
        op = entry.op
        match op:
            case CreateOp():
                self._op_create(entry, op)
            case LinkOp():
                self._op_link(entry, op)
            case UnlinkOp():
                self._op_unlink(entry, op)
            case RmdirOp():
                self._op_rmdir(entry, op)
                self._redo_cycle_renames()  # what it held went to lost+found: a cycle may go
            case RenameOp():
                self._op_rename(entry, op)
                self._redo_cycle_renames()
            case ContentOp():
                self._op_content(entry, op)
            case SetattrOp():
                self._op_setattr(entry, op)
            case SetxattrOp():
                self._op_setxattr(entry, op)
            case RemovexattrOp():
                self._op_removexattr(entry, op)
            case InstanceOp():
                self._op_instance(entry, op)
            case RetireOp():
                self._op_retire(entry, op)
            case TrashOp() | PurgeOp() | SnapshotOp() | UnsnapshotOp():
                pass  # records only, kept as the entry is appended (undo.py)
            case _:
                raise TypeError(f"no rule applies {type(op).__name__}")

    def _op_create(self, e: JournalEntry, op: CreateOp) -> None:
        if self.s.by_file_id(op.fid) is not None:
            return
        directory, name, lost = self._place(op.parent, op.name, op.fid)
        wanted = name
        if not lost:
            name = self._claim(directory, name, e.version)
        mode = op.mode
        target = op.target
        t = physical_ms(e.hlc) * 1_000_000
        inode = Inode(
            ino=self.s._bump("next_ino"), file_id=op.fid, mode=mode, uid=op.uid,
            gid=op.gid, size=len(os.fsencode(target)) if target is not None else 0,
            nlink=2 if stat.S_ISDIR(mode) else 1, atime_ns=t, mtime_ns=t, ctime_ns=t,
            target=target, origin_site=e.origin, rdev=op.rdev,
            content_version=e.version, name_version=e.version, attr_version=e.version)
        self.s._put_inode(inode)
        if stat.S_ISDIR(mode):
            self.s._new_directory(inode.ino)
        self._bind(directory, name, inode)
        if name != wanted:
            self.s._want(directory.ino, wanted, inode, name)

    def _op_link(self, e: JournalEntry, op: LinkOp) -> None:
        inode = self._live(op.fid)
        if inode is None:
            # deleted here: a delete wins over a link, unless a write brings the file back
            # (``_resurrect``): then with this name too, as where the link came first. Or
            # not here yet (a conflict copy made here later): it gets the name then.
            self._keep_link(op.fid, [op.parent, op.name, e.version])
            return
        if not inode.is_dir:
            self._link(inode, op.parent, op.name, e.version)
            self._redo_undone(self.s._inode(inode.ino))

    def _op_unlink(self, e: JournalEntry, op: UnlinkOp) -> None:
        self._unlink(e, op)

    def _unlink(self, e: JournalEntry, op: UnlinkOp, keep: tuple[int, str] | None = None) -> None:
        """Remove the name ``op`` removed at its origin (an unlink, or the name a rename
        replaced). ``keep``: a name the caller binds again at once (not refilled)."""
        deleted = not op.left  # the origin removed the file's last name
        inode = self._live(op.fid)
        if inode is None:  # deleted here too; what the deleting site saw may be a copy here
            if deleted:
                self._drop_superseded_copy(op.fid, op.seen)
            elif op.bound == "":
                # its first name went at the origin, which kept others: should a write bring
                # the file back, it comes back with those only (``_resurrect``)
                self.s._put_kv(f"firstgone:{op.fid}", "1")
            # a name kept for the file should it come back (_keep_link) goes as it went
            links = self._kept_links(op.fid)
            tomb = self.s._tombstone(op.fid)
            if not deleted and op.bound is not None and tomb is not None:
                # an unlink of one name of a file deleted here: it counts should a write
                # bring the file back (``_resurrect``), with that name where it is here
                removed = [[r[0], r[1], r[4] if len(r) > 4 else ""]
                           for r in self.s._unlinked_names(op.fid) if r[3] == op.bound]
                place = ([tomb[0], tomb[1], tomb[3]] if self.s._tombstone_key(op.fid) == op.bound
                         else next(([link[0], link[1], link[2]] for link in links
                                    if self._kept_key(link) == op.bound),
                                   removed[-1] if removed else [op.parent, op.name, ""]))
                self.s._record_unlinked(op.fid, [place[0], place[1], e.version, op.bound,
                                                 place[2]])
            # (the names a delete removed come back should a write undo it)
            left = [link for link in links if deleted or not (
                self._kept_key(link) == op.bound
                or op.bound is None and link[:2] == [op.parent, op.name])]
            if left != links:
                self._put_kept_links(op.fid, left)
            return
        if inode.is_dir:
            return
        if deleted and op.seen is not None and inode.content_version != op.seen:
            # written here meanwhile: the modified file survives; what the deleting site saw
            # may live on here as a conflict copy, which goes as it went there
            self._drop_superseded_copy(inode.file_id, op.seen)
            return
        where = self._where(inode, op.parent, op.name, op.bound, removing=True)
        if deleted:
            # names given to it here concurrently (links the origin had not seen) go too: a
            # delete wins over a link; should a write bring the file back, they come back
            # (every name goes before any is refilled: a name of this file may be the
            # loser waiting for another)
            self._delete_file(inode, where, keep)
            return
        if where is None:
            if op.bound is not None:
                self._unlink_again(e, op, inode)
            return
        if inode.nlink <= 1:
            # The origin kept other names, removed here by other sites' unlinks it had not
            # seen: the file is not deleted by unlinks of one name each. It keeps the name
            # the latest of them removed (that one is undone), whatever order they came in.
            removed = self.s._unlinked_names(inode.file_id)
            latest = max(removed, key=lambda item: item[2], default=None)
            key = self.s._binding_key(where[0], where[1], inode)
            if (latest is None or e.version > latest[2]
                    or any(r[3] == key for r in self._undone(inode.file_id))):
                # (a name kept because a later unlink of it was undone stays too)
                self._leave_undone(inode.file_id, [
                    self.s._inode(where[0]).file_id, where[1], e.version, op.bound or "",
                    self.s._bound_version(where[0], where[1], inode)])
                return
            self.s._forget_unlinked(inode.file_id, latest)
            self._leave_undone(inode.file_id, latest)
            # the name comes back as it was: bound by the same change, the same name
            # (stores before this kept no binding version: the name's identity stands in)
            restored = latest[4] if len(latest) > 4 else latest[3] or latest[2]
            self._link(inode, latest[0],
                       self._restored_name(inode.file_id, latest[1], restored),
                       restored, latest[3])
            # the name it takes back may be the one this unlink removes, which then moved
            # to its conflict name: find it again
            inode = self.s._inode(inode.ino)
            found = self._where(inode, op.parent, op.name, op.bound, removing=True)
            if found is None:
                return
            where = found
        self.s._record_unlinked(inode.file_id, [
            self.s._inode(where[0]).file_id, where[1], e.version, op.bound or "",
            self.s._bound_version(where[0], where[1], inode)])
        self._drop(where, self.s._inode(inode.ino), refill=where != keep)

    def _op_rmdir(self, e: JournalEntry, op: RmdirOp) -> None:
        inode = self._live(op.fid)
        if inode is None or not inode.is_dir or self._reserved(inode):
            return
        self._evacuate(inode)
        where = self._where(inode, op.parent, op.name)
        if where is not None:
            self._drop(where, self.s._inode(inode.ino))

    def _op_rename(self, e: JournalEntry, op: RenameOp) -> None:
        self._rename(e, op)
        # The name the rename replaced was kept for the renamed file, which may have lost to
        # a later rename meanwhile: then a loser waiting for that name takes it, as it would
        # have had the rename never come.
        destination = self._live(op.new_parent)
        if (destination is not None and destination.is_dir
                and self.s._get_entry(destination.ino, op.new_name) is None):
            self.s._freed(destination.ino, op.new_name)

    def _rename(self, e: JournalEntry, op: RenameOp) -> None:
        inode = self._live(op.fid)
        moving = inode is not None and not self._reserved(inode)
        self._remove_replaced(e, op, inode if moving else None)
        if inode is None or not moving:
            # deleted meanwhile: a delete wins over a rename; but should a write bring the
            # file back, it comes back where the later rename put it
            # (a name a link made, kept to come back with it, moves the same way)
            self._move_unlinked(op.fid, op, e.version)  # a name removed before the delete
            links = self._kept_links(op.fid)
            if op.bound and any(self._kept_key(link) == op.bound for link in links):
                self._put_kept_links(op.fid, [
                    [op.new_parent, op.new_name, e.version, op.bound]
                    if self._kept_key(link) == op.bound and e.version > link[2] else link
                    for link in links])
                return
            tomb = self.s._tombstone(op.fid)
            if tomb is None and not op.bound and self.s.by_file_id(op.fid) is None:
                # not made here yet (a conflict copy is made by each site as it sees the
                # conflict): it moves once it is (``_follow_rename``)
                self._record_rename(op.fid, op.new_parent, op.new_name, e.version)
                return
            key = self.s._tombstone_key(op.fid)
            if (tomb is not None and e.version > tomb[3]
                    and (op.bound is None or op.bound == key)):  # that name, not another
                self.s._put_tombstone(op.fid, op.new_parent, op.new_name, tomb[2],
                                      e.version, key)
            return
        inode = self.s._inode(inode.ino)
        where = self._where(inode, op.parent, op.name, op.bound, removing=True)
        if where is None:
            # that name was removed here: should its removal be undone (``_unlink``), it
            # comes back where the later rename put it, as where the rename came first
            self._move_unlinked(inode.file_id, op, e.version)
            return
        current = self.s._bound_version(where[0], where[1], inode)  # that name's version here
        concurrent = (current != op.name_seen if op.name_seen is not None
                      else where != self._where_given(op))
        if concurrent and e.version < current:
            return  # renamed here by a later change the origin had not seen: that one wins
        directory, name, lost = self._place(
            op.new_parent, op.new_name,
            self._lost_tag(op.fid, self.s._binding_key(where[0], where[1], inode)))
        if inode.is_dir and self.s._is_ancestor(inode.ino, directory.ino):
            directory, name = self._break_cycle(inode, directory, name, e.version)
        holder_ino = self._refilled(directory, name, e.version)
        if holder_ino == inode.ino and where == (directory.ino, name):
            # renamed to the same name here: the later change names it
            record = self.s._link_record(where[0], where[1], inode)
            if record is not None and e.version > record[0]:
                self.s._bind_link(where[0], where[1], inode, e.version, record[1])
            elif record is None and e.version > inode.name_version:
                self.s._put_inode(_replace(inode, name_version=e.version))
            return
        if holder_ino is not None:
            holder = self.s._inode(holder_ino)
            held = self.s._bound_version(directory.ino, name, holder)
            if (holder.file_id == op.replaced and not self._reserved(holder)
                    and held < e.version
                    and (op.replaced_bound is None or op.replaced_bound
                         == self.s._binding_key(directory.ino, name, holder))):
                # replaced at the origin, written here meanwhile: it survives as a conflict
                # copy (renamed here by a later change, it keeps the name: see _claim). Another
                # name of the file there (a hard link) is a plain conflict over the name.
                placed_as = self._conflict_place(directory, name, held)
                self._move(holder, (directory.ino, name), directory, placed_as,
                           held, refill=False)
                self.s._want(directory.ino, name, holder, placed_as)
            else:
                wanted = name
                name = self._claim(directory, name, e.version)
                if name != wanted:
                    self._move(inode, where, directory, name, e.version)
                    self.s._want(directory.ino, wanted, self.s._inode(inode.ino), name)
                    return
        self._move(self.s._inode(inode.ino), where, directory, name, e.version)

    def _remove_replaced(self, e: JournalEntry, op: RenameOp, moving: Inode | None) -> None:
        """The file a rename replaced at its origin goes here too, wherever it is by now (a
        delete wins over a rename), unless it was written here meanwhile and has no other
        name (a hard link's other names keep the new version)."""
        if op.replaced and not op.replaced_left:  # the origin deleted that version
            self._drop_superseded_copy(op.replaced, op.replaced_seen)
        replaced = self._live(op.replaced)
        if replaced is None or self._reserved(replaced):
            if op.replaced is not None and op.replaced_left is not None and replaced is None:
                self._unlink(e, self._replaced_unlink(op))  # kept links go as they went
            return
        if moving is not None and replaced.ino == moving.ino:
            return
        if op.replaced_left is not None and not replaced.is_dir:
            # the name it replaced goes as an unlink of that name would go
            destination = self._live(op.new_parent)
            keep = ((destination.ino, op.new_name) if destination is not None and moving
                    else None)
            self._unlink(e, self._replaced_unlink(op), keep)
            return
        names = self.s._names_of(replaced.ino)
        if not names or (replaced.content_version != op.replaced_seen and len(names) == 1):
            return  # written here meanwhile: it survives (as a conflict copy, see _rename)
        if replaced.is_dir:
            self._evacuate(replaced)
        destination = self._live(op.new_parent)
        at_destination = (destination is not None and
                          self.s._get_entry(destination.ino, op.new_name) == replaced.ino)
        where = (destination.ino, op.new_name) if destination is not None and at_destination else names[0]
        self._drop(where, self.s._inode(replaced.ino), refill=not (at_destination and moving))

    @staticmethod
    def _replaced_unlink(op: RenameOp) -> UnlinkOp:
        assert op.replaced is not None
        return UnlinkOp(op.new_parent, op.new_name, op.replaced, op.replaced_seen,
                        op.replaced_left, op.replaced_bound)

    def _where_given(self, op: RenameOp) -> tuple[int, str] | None:
        parent = self._live(op.parent)
        return (parent.ino, op.name) if parent is not None else None

    def _break_cycle(self, moving: Inode, directory: Inode, name: str,
                     ver: str) -> tuple[Inode, str]:
        """``moving`` would go under itself: of the renames that made the cycle, the later is
        undone into lost+found (and recorded, to be redone once the cycle is gone). Returns
        where ``moving`` goes now."""
        chain: list[tuple[Inode, tuple[int, str]]] = []
        current = directory
        while current.ino != moving.ino:
            names = self.s._names_of(current.ino)
            chain.append((current, names[0]))
            current = self.s._inode(names[0][0])
        latest, latest_where = max(chain, key=lambda item: self.s._placed_version(item[0]))
        if ver > self.s._placed_version(latest):
            lost = self._lost_found()
            self._record_cycle(moving, directory, name, ver)
            return lost, self._free_name(lost, name, moving.file_id)
        self._undo_for_cycle(latest, latest_where, self.s._inode(latest_where[0]),
                             latest_where[1], latest.name_version)
        return directory, name

    def _op_setattr(self, e: JournalEntry, op: SetattrOp) -> None:
        inode = self.s.by_file_id(op.fid)
        if inode is None:
            # not here (yet): a conflict copy made here later, or a file a write brings
            # back, gets it then (``_with_recorded``), as it would had it been here
            if op.changes_owner and e.version > self._recorded_owner(op.fid)[0]:
                self.s._put_kv(f"owner:{op.fid}", json.dumps([e.version, op.mode, op.uid, op.gid]))
            if op.mtime_ns is not None and e.version > self.s._touched(op.fid)[0]:
                self.s._put_touched(op.fid, e.version, op.mtime_ns)
            return
        changed = inode
        if op.changes_owner and e.version > inode.attr_version:
            changed = _replace(
                changed, attr_version=e.version,
                mode=(stat.S_IFMT(inode.mode) | (op.mode & 0o7777) if op.mode is not None
                      else inode.mode),
                uid=op.uid if op.uid is not None else inode.uid,
                gid=op.gid if op.gid is not None else inode.gid)
        if op.atime_ns is not None or op.mtime_ns is not None:
            # the later of the changes that set the time wins: this one, a write, a touch
            latest = max(self.s._touched(inode.file_id)[0],
                         inode.content_version if inode.is_file else "")
            if e.version > latest:
                if op.atime_ns is not None:
                    changed = _replace(changed, atime_ns=op.atime_ns)
                if op.mtime_ns is not None:
                    changed = _replace(changed, mtime_ns=op.mtime_ns)
                self.s._put_touched(inode.file_id, e.version, changed.mtime_ns)
        if changed is not inode:
            self.s._put_inode(_replace(changed, ctime_ns=physical_ms(e.hlc) * 1_000_000))
            self.result.inodes.add(inode.ino)

    def _op_setxattr(self, e: JournalEntry, op: SetxattrOp) -> None:
        inode = self.s.by_file_id(op.fid)
        if self.s._xattr_newer(op.fid, op.name, e.version, op.value) and inode is not None:
            self.s._put_xattr(inode.ino, op.name, op.value)
            self.result.inodes.add(inode.ino)

    def _op_removexattr(self, e: JournalEntry, op: RemovexattrOp) -> None:
        inode = self.s.by_file_id(op.fid)
        if self.s._xattr_newer(op.fid, op.name, e.version, None) and inode is not None:
            self.s._del_xattr(inode.ino, op.name)
            self.result.inodes.add(inode.ino)

    def _op_retire(self, e: JournalEntry, op: RetireOp) -> None:
        """The content is about to be deleted from the bucket: not "in the bucket" any more
        here, so a write of the same bytes here uploads them again."""
        record = self.s._get_content(op.hash)
        if record is not None and record.in_bucket:
            self.s._put_content(ContentRecord(record.hash, record.size, in_bucket=False))
        self.result.retired.append(op.hash)

    def _op_instance(self, e: JournalEntry, op: InstanceOp) -> None:
        record = self.s._get_content(op.hash)
        size = record.size if record is not None else op.size
        self.s._put_content(ContentRecord(op.hash, size, in_bucket=True))
        self.result.in_bucket.append(op.hash)
