"""Where replicated changes put things: live inodes, lost+found, names claimed by the later
change, conflict places, renames undone for a cycle and redone once it is gone. The base of
``replica.Applier``; runs inside the caller's transaction."""

from __future__ import annotations

import json
import os
from dataclasses import replace as _replace

from meridian.meta.conflicts import conflict_name, original_name
from meridian.meta.core import NamespaceCore
from meridian.meta.interface import (
    LOST_FOUND_FILE_ID,
    RESERVED_FILE_IDS,
    ROOT_INO,
    ApplyResult,
    ContentRecord,
    Inode,
)


class Placing:
    """Finding and changing names for an ``Applier`` (``store``: the store in its transaction)."""

    def __init__(self, store: NamespaceCore, result: ApplyResult) -> None:
        self.s = store
        self.result = result

    def _live(self, file_id: str | None) -> Inode | None:
        """The inode ``file_id`` if it still has a name here."""
        inode = self.s.by_file_id(file_id) if file_id else None
        if inode is None or (inode.nlink == 0 and inode.ino != ROOT_INO):
            return None
        return inode

    def _lost_found(self) -> Inode:
        inode = self.s.by_file_id(LOST_FOUND_FILE_ID)
        assert inode is not None, "every store has /.meridian/lost+found"
        return inode

    def _place(self, parent_fid: str | None, name: str, tag: str) -> tuple[Inode, str, bool]:
        """Where something named ``name`` in ``parent_fid`` goes: there, or into lost+found
        (a free name there) when the directory is gone. Returns (dir, name, lost)."""
        parent = self._live(parent_fid)
        if parent is not None and parent.is_dir:
            return parent, name, False
        lost = self._lost_found()
        return lost, self._free_name(lost, name, tag), True

    def _free_name(self, directory: Inode, name: str, tag: str) -> str:
        """The name of something put into lost+found: its own name without Meridian's
        conflict tags, and its file id, so two sites that put the same things there in
        another order, or from names that differ by a tag, name them alike (a name the user
        gave that looks like a conflict name is taken as one: the id keeps it apart)."""
        name = original_name(name)
        suffix = f"~{tag}"
        while len(os.fsencode(name + suffix)) > 255:
            name = name[:-1]
        return name + suffix

    @staticmethod
    def _lost_tag(file_id: str, key: str | None) -> str:
        """The tag ``_free_name`` gives a name of ``file_id`` put into lost+found: the file's
        id, and for a name a hard link made (``key``, its ``_binding_key``) the link's
        version too, so that two names of one file never meet there, whatever order they
        come in."""
        return f"{file_id}+{key}" if key else file_id

    def _conflict_place(self, directory: Inode, name: str, ver: str) -> str:
        """The first free conflict name in ``directory`` for ``name`` and the change ``ver``,
        made from the name without Meridian's tags (whichever way the conflict was seen)."""
        n = 1
        while True:
            candidate = conflict_name(original_name(name), ver, n)
            if self.s._get_entry(directory.ino, candidate) is None:
                return candidate
            n += 1

    def _reserved(self, inode: Inode) -> bool:
        return inode.file_id in RESERVED_FILE_IDS

    def _bind(self, directory: Inode, name: str, inode: Inode) -> None:
        """Give ``inode`` (already stored) one more name."""
        self.s._put_free_entry(directory.ino, name, inode)
        self.s._touch_dir(self.s._inode(directory.ino), 1 if inode.is_dir else 0)
        self.result.names.append((directory.ino, name))

    def _move(self, inode: Inode, where: tuple[int, str], directory: Inode, name: str,
              ver: str, *, refill: bool = True) -> None:
        self.s._move(inode, where[0], where[1], directory.ino, name, ver, refill=refill)
        self.result.names += [where, (directory.ino, name)]

    def _drop(self, where: tuple[int, str], inode: Inode, *, refill: bool = True) -> None:
        """Remove one name (a directory must be empty: see ``_evacuate``)."""
        self.s._drop_name(self.s._inode(where[0]), where[1], inode, refill=refill)
        self.result.names.append(where)
        self.result.inodes.add(inode.ino)

    def _evacuate(self, directory: Inode) -> None:
        """Move everything in ``directory`` to lost+found (it is about to go)."""
        lost = self._lost_found()
        for name, ino in self.s._list_entries(directory.ino):
            child = self.s._inode(ino)
            tag = self._lost_tag(child.file_id,
                                 self.s._binding_key(directory.ino, name, child))
            self._move(child, (directory.ino, name), lost,
                       self._free_name(lost, name, tag),
                       child.name_version, refill=False)  # nothing may move in: it goes

    def _claim(self, directory: Inode, name: str, ver: str) -> str:
        """The name a change of version ``ver`` binds in ``directory``: ``name`` if it is free
        or the change is later than the binding there (which then moves to its conflict
        name), else the change's own conflict name."""
        ino = self._refilled(directory, name, ver)
        if ino is None:
            return name
        holder = self.s._inode(ino)
        bound = self.s._bound_version(directory.ino, name, holder)
        if ver > bound and not self._reserved(holder):
            placed_as = self._conflict_place(directory, name, bound)
            self._move(holder, (directory.ino, name), directory, placed_as, holder.name_version,
                       refill=False)
            self.s._want(directory.ino, name, holder, placed_as)
            return name
        return self._conflict_place(directory, name, ver)

    def _refilled(self, directory: Inode, name: str, ver: str) -> int | None:
        """What holds ``name`` in ``directory`` for a change of version ``ver`` about to bind
        it. A free name may still be wanted by a loser of an earlier conflict (the change
        that freed it kept it for a rename that then lost, say): if that loser is later than
        ``ver`` it takes the name first, as it would have had the change come before."""
        ino = self.s._get_entry(directory.ino, name)
        if ino is None and self.s._freed(directory.ino, name, unless_before=ver):
            ino = self.s._get_entry(directory.ino, name)
        return ino

    def _where(self, inode: Inode, parent_fid: str | None, name: str | None,
               bound: str | None = None, *, removing: bool = False) -> tuple[int, str] | None:
        """The name of ``inode`` an entry means: (parent, name) if it still binds the inode
        and was bound by the change ``bound``, else the name that change bound wherever a
        conflict or a rename moved it (hard links), else (``removing``) None if that name was
        removed here already, else (parent, name) if it binds the inode, else the file's first
        name (a rename moved the name meanwhile)."""
        parent = self._live(parent_fid)
        names = self.s._names_of(inode.ino)
        named = (parent.ino, name) if parent is not None and name is not None else None
        if named in names and (bound is None
                               or self.s._binding_key(named[0], named[1], inode) == bound):
            return named
        if bound is not None:
            for where in names:
                if self.s._binding_key(where[0], where[1], inode) == bound:
                    return where
            if removing and any(removed[3] == bound
                                for removed in self.s._unlinked_names(inode.file_id)):
                return None  # that name was removed here already
        if named in names:
            return named
        return names[0] if names else None

    def _record_content(self, hash: str | None, size: int) -> None:
        if hash is not None and self.s._get_content(hash) is None:
            self.s._put_content(ContentRecord(hash, size, in_bucket=False))

    def _link(self, inode: Inode, parent_fid: str, wanted_name: str, ver: str,
              made: str | None = None) -> None:
        """Give ``inode`` the name a link change ``ver`` gave it (or its conflict name).
        ``made``: the name is one it had, bound by ``ver`` and identified by ``made`` (its
        ``_binding_key``; "" for the file's first name), given back as it was."""
        first = made == ""
        directory, name, lost = self._place(
            parent_fid, wanted_name, self._lost_tag(inode.file_id, None if first else made or ver))
        wanted = name
        if not lost:
            name = self._claim(directory, name, ver)
        self.s._put_inode(_replace(inode, nlink=inode.nlink + 1,
                                   name_version=ver if first else inode.name_version))
        linked = self.s._inode(inode.ino)
        self._bind(directory, name, linked)
        if not first:
            self.s._bind_link(directory.ino, name, linked, ver, made)
        if name != wanted:
            self.s._want(directory.ino, wanted, linked, name)

    def _undo_for_cycle(self, inode: Inode, where: tuple[int, str], directory: Inode,
                        name: str, ver: str) -> None:
        """Move the directory ``inode`` (at ``where``) into lost+found: the rename of version
        ``ver`` that put it as ``name`` in ``directory`` makes a cycle here. The rename is
        recorded, to be redone once it no longer makes one (``_redo_cycle_renames``)."""
        lost = self._lost_found()
        self._move(inode, where, lost, self._free_name(lost, name, inode.file_id), ver)
        self._record_cycle(inode, directory, name, ver)

    def _record_cycle(self, inode: Inode, directory: Inode, name: str, ver: str) -> None:
        """Record that the rename ``ver`` of ``inode`` to ``name`` in ``directory`` was
        undone into lost+found, for ``_redo_cycle_renames``. The records are few (one per
        directory undone and not moved since) and kept in one ``cycles`` value, so that a
        rename finds them with one lookup."""
        records = json.loads(self.s._get_kv("cycles") or "{}")
        records[inode.file_id] = [directory.file_id, name, ver]
        self._put_cycles(records)

    def _redo_cycle_renames(self) -> None:
        """Redo each rename undone into lost+found to break a cycle (``_undo_for_cycle``)
        that no longer makes one, oldest first, as a site that saw the rename that broke the
        cycle before it did. A record goes once its directory moved on (a later rename) or
        is gone; it stays while the rename would still make a cycle or its destination is
        gone (the directory stays in lost+found)."""
        found = self.s._get_kv("cycles")
        if not found:
            return
        records = json.loads(found)
        kept = len(records)
        for file_id, (parent_fid, name, ver) in sorted(records.items(), key=lambda r: r[1][2]):
            inode = self._live(file_id)
            names = self.s._names_of(inode.ino) if inode is not None else []
            if (inode is None or inode.name_version != ver or len(names) != 1
                    or names[0][0] != self._lost_found().ino):
                del records[file_id]  # moved on since, or gone
                continue
            directory = self._live(parent_fid)
            if (directory is None or not directory.is_dir
                    or self.s._is_ancestor(inode.ino, directory.ino)):
                continue
            del records[file_id]
            placed_as = self._claim(directory, name, ver)
            self._move(inode, names[0], directory, placed_as, ver)
            if placed_as != name:  # it takes the name once it is free, as the rename would
                self.s._want(directory.ino, name, self.s._inode(inode.ino), placed_as)
            self._put_cycles(records)
            return self._redo_cycle_renames()  # a redo may free another: from the oldest again
        if len(records) != kept:
            self._put_cycles(records)

    def _put_cycles(self, records: dict[str, list[str]]) -> None:
        if records:
            self.s._put_kv("cycles", json.dumps(records, sort_keys=True))
        else:
            self.s._del_kv("cycles")
