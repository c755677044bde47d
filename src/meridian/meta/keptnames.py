"""Names a file keeps while it is away, and removals left undone: the bookkeeping behind the
hard-link rules of ``docs/conflicts.md``. Part of ``replica.Applier`` (between ``Placing``
and ``ContentRules``); runs inside the caller's transaction.

- **kept names** (``links:``): the names of a deleted file, or ones a link gave it while it
  was not here, with what identifies each (``_binding_key``), to give back should a write
  undo the delete (``_relink``);
- **removals left undone** (``undone:``): of unlinks of one name each, the latest is undone
  when it would leave the file nameless here, and done once the file has another name
  (``_redo_undone``); a later unlink of an already removed name swaps with it
  (``_unlink_again``);
- **removed names** (``unlinked:``, ``NamespaceCore._unlinked_names``) move with later renames
  of them (``_move_unlinked``), so an undone removal gives the name back where it is now;
- **renames of files not made here yet** (``renamed:``): a conflict copy made later, or
  brought back by a write, follows the latest (``_follow_rename``).
"""

from __future__ import annotations

import json

from meridian.meta.conflicts import copy_version, is_copy_id, lost_to_a_conflict, original_name
from meridian.meta.entries import JournalEntry
from meridian.meta.interface import Inode
from meridian.meta.journal import RenameOp, UnlinkOp
from meridian.meta.placing import Placing


class KeptNames(Placing):
    """The bookkeeping of names kept, removed and left undone (see the module docstring)."""

    def _relink(self, inode: Inode) -> None:
        """Give a file that comes back, or is first made here, the names kept for it: those
        it had here, or got elsewhere while it was gone or not here (``_keep_link``)."""
        links = self._kept_links(inode.file_id)
        if links:
            self.s._del_kv(f"links:{inode.file_id}")
            for link in links:
                self._link(self.s._inode(inode.ino), link[0], link[1], link[2],
                           link[3] if len(link) > 3 else None)

    def _delete_file(self, inode: Inode, last: tuple[int, str] | None,
                     keep: tuple[int, str] | None = None) -> None:
        """Remove every name of ``inode`` (a delete): ``last`` (the name the delete named;
        the last of its names if it has no longer that one) goes last, so its tombstone says
        where the file was; the others are kept (``_keep_link``) with what identifies each,
        to come back should a write undo the delete. Every name goes before any is refilled
        (a name of this file may be the loser waiting for another); ``keep`` is not
        refilled: the caller binds it again at once."""
        gone = self.s._names_of(inode.ino)
        if last not in gone:
            last = gone[-1] if gone else None
        for other in gone:
            if other != last:
                self._keep_link(inode.file_id, [
                    self.s._inode(other[0]).file_id, original_name(other[1]),
                    self.s._bound_version(other[0], other[1], inode),
                    self.s._binding_key(other[0], other[1], inode)])
        if last is not None:
            gone.remove(last)
            gone.append(last)
        for name in gone:
            self._drop(name, self.s._inode(inode.ino), refill=False)
        for name in gone:
            if name != keep:
                self.s._freed(*name)

    def _redo_undone(self, inode: Inode) -> None:
        """Unlinks left undone here because they would have removed the file's last name
        (``_unlink``) are done once the file has another name (a link that came later here
        came first elsewhere, where they were done): the same names in any order. Two
        undone unlinks of one name (two sites removed it) are done together, as the later
        of them: that is the removal the name's later fate is weighed against
        (``_leave_undone`` keeps only the later; lists kept before it did may hold both)."""
        key = f"undone:{inode.file_id}"
        undone = json.loads(self.s._get_kv(key) or "[]")
        if not undone:
            return
        self.s._del_kv(key)
        for removal in sorted(undone, key=lambda item: item[2]):
            if removal not in undone:
                continue  # done with a later unlink of the same name
            inode = self.s._inode(inode.ino)
            if inode.nlink <= 1:
                self.s._put_kv(key, json.dumps(undone))
                return
            latest = max((item for item in undone if item[3] == removal[3]),
                         key=lambda item: item[2])
            undone = [item for item in undone if item[3] != removal[3]]
            where = self._where(inode, latest[0], latest[1], latest[3], removing=True)
            if where is None:
                continue
            self.s._record_unlinked(inode.file_id, [
                self.s._inode(where[0]).file_id, where[1], latest[2], latest[3],
                self.s._bound_version(where[0], where[1], inode)])
            self._drop(where, inode)

    def _undone(self, file_id: str) -> list[list[str]]:
        """The unlinks left undone here for ``file_id`` (``_leave_undone``)."""
        return list(json.loads(self.s._get_kv(f"undone:{file_id}") or "[]"))

    def _drop_undone(self, file_id: str, removal: list[str]) -> None:
        left = [r for r in self._undone(file_id) if r != removal]
        if left:
            self.s._put_kv(f"undone:{file_id}", json.dumps(left))
        else:
            self.s._del_kv(f"undone:{file_id}")

    def _leave_undone(self, file_id: str, removal: list[str]) -> None:
        """Keep ``removal``, an unlink left undone here, on record; of two undone unlinks of
        one name (two sites removed it), only the later: it is the one the name's fate is
        weighed against (redone, swapped, or counted when a write brings the file back)."""
        undone = self._undone(file_id)
        if any(r[3] == removal[3] and r[2] >= removal[2] for r in undone):
            return
        undone = [r for r in undone if r[3] != removal[3]] + [removal]
        self.s._put_kv(f"undone:{file_id}", json.dumps(undone))

    @staticmethod
    def _restored_name(file_id: str, name: str, name_ver: str) -> str:
        """The name a removed name ``name`` of ``file_id``, bound by the change
        ``name_ver``, comes back as: without the tag a conflict added to it at some site, when
        it lost that name there (other sites hold it as it was meant), except a conflict
        copy's own name (bound by the copy's own version), which no site ever gave it plain.
        A name the user gave that only looks like a conflict name comes back as it is."""
        if is_copy_id(file_id) and name_ver == copy_version(file_id):
            return name
        return original_name(name) if lost_to_a_conflict(name, name_ver) else name

    def _keep_link(self, file_id: str, link: list[str]) -> None:
        """A name of the deleted file ``file_id`` that comes back should a write bring the
        file back: [directory file id, name, version of the change that bound it there,
        what identifies the name (``_binding_key``; absent: the version itself)]."""
        self._put_kept_links(file_id, self._kept_links(file_id) + [link])

    def _kept_links(self, file_id: str) -> list[list[str]]:
        return list(json.loads(self.s._get_kv(f"links:{file_id}") or "[]"))

    def _put_kept_links(self, file_id: str, links: list[list[str]]) -> None:
        self.s._put_kv(f"links:{file_id}", json.dumps(links))

    @staticmethod
    def _kept_key(link: list[str]) -> str:
        """What identifies a kept name (``_keep_link``)."""
        return link[3] if len(link) > 3 else link[2]

    def _record_rename(self, file_id: str, parent_fid: str, name: str, ver: str) -> None:
        """A rename (version ``ver``) of the file ``file_id``, not made here yet: the later
        of such renames moves it once it is (``_follow_rename``)."""
        found = self.s._get_kv(f"renamed:{file_id}")
        if found is None or ver > json.loads(found)[2]:
            self.s._put_kv(f"renamed:{file_id}", json.dumps([parent_fid, name, ver]))

    def _follow_rename(self, inode: Inode) -> None:
        """Move ``inode``, just made here, as a rename that came before it did
        (``_record_rename``), if that rename is later than the change that named it."""
        found = self.s._get_kv(f"renamed:{inode.file_id}")
        if found is None:
            return
        self.s._del_kv(f"renamed:{inode.file_id}")
        parent_fid, new_name, ver = json.loads(found)
        first = [where for where in self.s._names_of(inode.ino)
                 if self.s._binding_key(where[0], where[1], inode) == ""]
        if not first or ver < inode.name_version:
            return  # (renames of a name a link made are kept with the link: _keep_link)
        if ver == inode.name_version:
            # made here as that rename placed it elsewhere: under its conflict name, the
            # name being taken there; it waits for the name, as it does there
            directory = self._live(parent_fid)
            where = first[0]
            if (directory is not None and where[0] == directory.ino and where[1] != new_name
                    and original_name(where[1]) == new_name):
                if self.s._get_entry(directory.ino, new_name) is None:
                    self._move(inode, where, directory, new_name, ver)
                else:
                    self.s._want(directory.ino, new_name, inode, where[1])
            return
        directory, name, lost = self._place(parent_fid, new_name, inode.file_id)
        wanted = name
        if not lost:
            name = self._claim(directory, name, ver)
        if (directory.ino, name) == first[0]:
            return
        self._move(self.s._inode(inode.ino), first[0], directory, name, ver)
        if name != wanted:
            self.s._want(directory.ino, wanted, self.s._inode(inode.ino), name)

    def _unlink_again(self, e: JournalEntry, op: UnlinkOp, inode: Inode) -> None:
        """An unlink of one name of ``inode`` that was removed here already (by another
        site's unlink). It counts as that name's latest removal; if the file is left with
        one name only because the removal of that one was undone here (``_unlink``), and
        that removal is earlier than this one, the two swap: the file keeps the name the
        latest unlink removed, whatever order they came in."""
        removed = [r for r in self.s._unlinked_names(inode.file_id) if r[3] == op.bound]
        if not removed:
            return
        place = removed[-1]
        latest = [place[0], place[1], e.version, str(op.bound),
                  place[4] if len(place) > 4 else ""]
        self.s._record_unlinked(inode.file_id, latest)
        names = self.s._names_of(inode.ino)
        undone = [r for r in self._undone(inode.file_id) if len(names) == 1
                  and r[3] == self.s._binding_key(names[0][0], names[0][1], inode)]
        if not undone or max(r[2] for r in undone) >= e.version:
            return
        kept = max(undone, key=lambda r: r[2])
        self.s._forget_unlinked(inode.file_id, latest)
        self._drop_undone(inode.file_id, kept)
        self._leave_undone(inode.file_id, latest)
        restored = latest[4] or latest[3] or latest[2]
        self._link(inode, latest[0], self._restored_name(inode.file_id, latest[1], restored),
                   restored, latest[3])
        inode = self.s._inode(inode.ino)
        where = self._where(inode, kept[0], kept[1], kept[3], removing=True)
        if where is None:
            return
        self.s._record_unlinked(inode.file_id, [
            self.s._inode(where[0]).file_id, where[1], kept[2], kept[3],
            self.s._bound_version(where[0], where[1], inode)])
        self._drop(where, inode)

    def _move_unlinked(self, file_id: str, op: RenameOp, ver: str) -> None:
        """Move the record of a name of ``file_id`` removed here (``_unlinked_names``) as
        the rename ``op`` (version ``ver``) moved that name, if it is later than what bound
        it there."""
        if op.bound is None:
            return
        for removal in self.s._unlinked_names(file_id):
            if (removal[3] == op.bound and len(removal) > 4 and ver > removal[4]):
                self.s._forget_unlinked(file_id, removal)
                self.s._record_unlinked(file_id, [op.new_parent, op.new_name, removal[2],
                                                  removal[3], ver])
