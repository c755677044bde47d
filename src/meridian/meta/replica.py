"""Applying other sites' journal entries: the rules that make every site converge.

Every site applies the same set of entries, each origin's in its order and each causally
after what its origin had seen (a site's journal lists what it applied before what it did next,
and streams are read in order), so the rules below only have to give the same result for
concurrent changes whatever order they arrive in. They are DESIGN.md rule 5, plus our own rules
for the cases it leaves open (``docs/conflicts.md`` states them for users):

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
  ``/.meridian/lost+found/``.
- **directory delete vs. create inside**: the directory goes; what was created in it
  concurrently is kept in ``/.meridian/lost+found/``.
- **attributes**: the later change of mode and owner wins whole (the origin sends all three);
  the modification time is the one of the later of the writes and time changes; of two changes
  of one extended attribute, the later wins.
- **conflict copies** carry the mode, owner and modification time their version was written
  with, so every site makes the same copy whatever the file's attributes are by then.

Everything here runs inside the caller's transaction and touches the store only through the
engine hooks, so an entry and the position that counts it commit together.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from typing import TYPE_CHECKING, Any

from meridian.meta.clock import physical_ms
from meridian.meta.interface import ROOT_INO, ContentRecord, Inode
from meridian.meta.journal import (
    ContentOp,
    CreateOp,
    InstanceOp,
    JournalEntry,
    LinkOp,
    RemovexattrOp,
    RenameOp,
    RetireOp,
    RmdirOp,
    SetattrOp,
    SetxattrOp,
    UnlinkOp,
    version_hlc,
    version_origin,
)

if TYPE_CHECKING:
    from meridian.meta.base import EngineStore

log = logging.getLogger(__name__)


@dataclass
class ApplyResult:
    """What one ``apply_entries`` call did.

    ``names`` are the (directory inode, name) pairs whose binding changed and ``inodes`` the
    inodes whose attributes or content changed: what the mount must drop from the kernel's
    cache. ``gap`` is True when the batch stopped at an entry whose predecessors from the same
    origin have not arrived yet (they will, through another peer; the position stays before
    it)."""

    applied: int = 0
    skipped: int = 0
    gap: bool = False
    names: list[tuple[int, str]] = field(default_factory=list)
    inodes: set[int] = field(default_factory=set)
    contents: dict[str, str] = field(default_factory=dict)  # content hash -> site that wrote it
    in_bucket: list[str] = field(default_factory=list)  # contents now known complete in the bucket
    retired: list[str] = field(default_factory=list)  # contents about to leave the bucket


def conflict_name(name: str, ver: str, n: int = 1) -> str:
    """``name.conflict-<yyyymmdd>-<hhmmss>-<site>.ext`` for the change ``ver`` (DESIGN.md rule 5;
    ``n`` > 1 adds ``-n`` for a collision). A leading dot does not start an extension."""
    when = _dt.datetime.fromtimestamp(physical_ms(version_hlc(ver)) / 1000, tz=_dt.timezone.utc)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    tag = f".conflict-{when:%Y%m%d-%H%M%S}-{version_origin(ver)}" + (f"-{n}" if n > 1 else "")
    room = 255 - len(os.fsencode(tag + (f".{ext}" if ext else "")))
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return stem + tag + (f".{ext}" if ext else "")


_CONFLICT_TAG = re.compile(r"\.conflict-\d{8}-\d{6}-[a-z0-9_-]+?(?:-\d+)?(?=\.[^.]*$|$)")


def original_name(name: str) -> str:
    """``name`` without the conflict tags Meridian added to it (the name a copy is named
    after, whatever name its file has at this site by now)."""
    return _CONFLICT_TAG.sub("", name)


def copy_file_id(file_id: str, ver: str) -> str:
    """The id of the conflict copy that keeps version ``ver`` of ``file_id``: the same at every
    site, so every site makes (and later removes) the same file."""
    return f"{file_id}!{ver}"


def is_copy_id(file_id: str) -> bool:
    """Whether ``file_id`` is a conflict copy's (``copy_file_id``)."""
    return "!" in file_id


_AUTHORED = ("parent", "name", "mode", "mtime", "uid", "gid")


def authored(op: ContentOp) -> dict[str, Any]:
    """How a ``content`` entry's version was written: where (directory file id and name),
    with which mode, owner and modification time. Kept per file (``wrote:<file id>``) while
    the version is current: what its conflict copy gets, should it lose to a later one."""
    return {key: getattr(op, key) for key in _AUTHORED}


def authored_kept(raw: str | None) -> dict[str, Any]:
    """``authored`` as kept (stores written before it was a mapping kept a list)."""
    found = json.loads(raw) if raw else {}
    return dict(zip(_AUTHORED, found)) if isinstance(found, list) else dict(found)


class Applier:
    """Applies entries to ``store`` inside its open transaction."""

    def __init__(self, store: EngineStore, result: ApplyResult) -> None:
        self.s = store
        self.result = result

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
            case RenameOp():
                self._op_rename(entry, op)
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
            case _:
                raise TypeError(f"no rule applies {type(op).__name__}")

    # -- finding things ---------------------------------------------------------------------
    def _live(self, file_id: str | None) -> Inode | None:
        """The inode ``file_id`` if it still has a name here."""
        inode = self.s.by_file_id(file_id) if file_id else None
        if inode is None or (inode.nlink == 0 and inode.ino != ROOT_INO):
            return None
        return inode

    def _lost_found(self) -> Inode:
        from meridian.meta.base import LOST_FOUND_FILE_ID
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
        """The name of something put into lost+found: its own name and its file id, so two
        sites that put the same things there in another order name them alike."""
        suffix = f"~{tag}"
        while len(os.fsencode(name + suffix)) > 255:
            name = name[:-1]
        return name + suffix

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
        from meridian.meta.base import RESERVED_FILE_IDS
        return inode.file_id in RESERVED_FILE_IDS

    # -- changing things --------------------------------------------------------------------
    def _bind(self, directory: Inode, name: str, inode: Inode) -> None:
        """Give ``inode`` (already stored) one more name."""
        self.s._put_entry(directory.ino, name, inode.ino)
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
            self._move(child, (directory.ino, name), lost,
                       self._free_name(lost, original_name(name), child.file_id),
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
        conflict moved it (hard links), else (``removing``: for an unlink) None if that name
        was removed here already, else (parent, name) if it binds the inode, else the file's
        first name (a rename moved the name meanwhile)."""
        parent = self._live(parent_fid)
        names = self.s._names_of(inode.ino)
        named = (parent.ino, name) if parent is not None and name is not None else None
        if named in names and (bound is None
                               or self.s._bound_version(named[0], named[1], inode) == bound):
            return named
        if bound is not None:
            for where in names:
                if self.s._bound_version(where[0], where[1], inode) == bound:
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

    # -- operations -------------------------------------------------------------------------
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

    def _link(self, inode: Inode, parent_fid: str, wanted_name: str, ver: str) -> None:
        """Give ``inode`` the name a link change ``ver`` gave it (or its conflict name)."""
        directory, name, lost = self._place(parent_fid, wanted_name, inode.file_id)
        wanted = name
        if not lost:
            name = self._claim(directory, name, ver)
        self.s._put_inode(_replace(inode, nlink=inode.nlink + 1))
        linked = self.s._inode(inode.ino)
        self._bind(directory, name, linked)
        self.s._bind_link(directory.ino, name, linked, ver)
        if name != wanted:
            self.s._want(directory.ino, wanted, linked, name)

    def _relink(self, inode: Inode) -> None:
        """Give a file that comes back, or is first made here, the names kept for it: those
        it had here, or got elsewhere while it was gone or not here (``_keep_link``)."""
        links = self.s._get_kv(f"links:{inode.file_id}")
        if links:
            self.s._del_kv(f"links:{inode.file_id}")
            for parent_fid, link_name, ver in json.loads(links):
                self._link(self.s._inode(inode.ino), parent_fid, link_name, ver)

    def _keep_link(self, file_id: str, link: list[str]) -> None:
        """A name of the deleted file ``file_id`` (directory file id, name, version of the
        change that gave it) that comes back should a write bring the file back."""
        links = json.loads(self.s._get_kv(f"links:{file_id}") or "[]")
        self.s._put_kv(f"links:{file_id}", json.dumps(links + [link]))

    def _op_unlink(self, e: JournalEntry, op: UnlinkOp) -> None:
        deleted = not op.left  # the origin removed the file's last name
        inode = self._live(op.fid)
        if inode is None:  # deleted here too; what the deleting site saw may be a copy here
            if deleted:
                self._drop_superseded_copy(op.fid, op.seen)
            # a name kept for the file should it come back (_keep_link) goes as it went
            links = json.loads(self.s._get_kv(f"links:{op.fid}") or "[]")
            left = [link for link in links if not (link[2] == op.bound or op.bound is None
                                                   and link[:2] == [op.parent, op.name])]
            if left != links:
                self.s._put_kv(f"links:{op.fid}", json.dumps(left))
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
            for other in self.s._names_of(inode.ino):
                if other != where:
                    self._keep_link(inode.file_id, [
                        self.s._inode(other[0]).file_id, original_name(other[1]),
                        self.s._bound_version(other[0], other[1], inode)])
                    self._drop(other, self.s._inode(inode.ino))
            if where is not None:
                self._drop(where, self.s._inode(inode.ino))
            return
        if where is None:
            return
        if inode.nlink <= 1:
            # The origin kept other names, removed here by other sites' unlinks it had not
            # seen: the file is not deleted by unlinks of one name each. It keeps the name
            # the latest of them removed (that one is undone), whatever order they came in.
            removed = self.s._unlinked_names(inode.file_id)
            latest = max(removed, key=lambda item: item[2], default=None)
            if latest is None or e.version > latest[2]:
                return
            self.s._forget_unlinked(inode.file_id, latest)
            self._link(inode, latest[0], original_name(latest[1]), latest[3])
        self.s._record_unlinked(inode.file_id, [self.s._inode(where[0]).file_id, where[1],
                                               e.version, op.bound or ""])
        self._drop(where, self.s._inode(inode.ino))

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
        self._remove_replaced(op, inode if moving else None)
        if inode is None or not moving:
            # deleted meanwhile: a delete wins over a rename; but should a write bring the
            # file back, it comes back where the later rename put it
            tomb = self.s._tombstone(op.fid)
            if tomb is not None and e.version > tomb[3]:
                self.s._put_tombstone(op.fid, op.new_parent, op.new_name, tomb[2],
                                      e.version)
            return
        inode = self.s._inode(inode.ino)
        where = self._where(inode, op.parent, op.name, op.bound)
        if where is None:
            return
        concurrent = (inode.name_version != op.name_seen if op.name_seen is not None
                      else where != self._where_given(op))
        if concurrent and e.version < inode.name_version:
            return  # renamed here by a later change the origin had not seen: that one wins
        directory, name, lost = self._place(op.new_parent, op.new_name, op.fid)
        if inode.is_dir and self.s._is_ancestor(inode.ino, directory.ino):
            directory, name = self._break_cycle(inode, directory, name, e.version)
        holder_ino = self._refilled(directory, name, e.version)
        if holder_ino == inode.ino and where == (directory.ino, name):
            # renamed to the same name here: the later change names it
            if e.version > inode.name_version:
                self.s._put_inode(_replace(inode, name_version=e.version))
            return
        if holder_ino is not None:
            holder = self.s._inode(holder_ino)
            if (holder.file_id == op.replaced and not self._reserved(holder)
                    and holder.name_version < e.version):
                # replaced at the origin, written here meanwhile: it survives as a conflict
                # copy (renamed here by a later change, it keeps the name: see _claim)
                placed_as = self._conflict_place(directory, name, holder.name_version)
                self._move(holder, (directory.ino, name), directory, placed_as,
                           holder.name_version, refill=False)
                self.s._want(directory.ino, name, holder, placed_as)
            else:
                wanted = name
                name = self._claim(directory, name, e.version)
                if name != wanted:
                    self._move(inode, where, directory, name, e.version)
                    self.s._want(directory.ino, wanted, self.s._inode(inode.ino), name)
                    return
        self._move(self.s._inode(inode.ino), where, directory, name, e.version)

    def _remove_replaced(self, op: RenameOp, moving: Inode | None) -> None:
        """The file a rename replaced at its origin goes here too, wherever it is by now (a
        delete wins over a rename), unless it was written here meanwhile and has no other
        name (a hard link's other names keep the new version)."""
        if op.replaced:
            self._drop_superseded_copy(op.replaced, op.replaced_seen)
        replaced = self._live(op.replaced)
        if replaced is None or self._reserved(replaced):
            return
        if moving is not None and replaced.ino == moving.ino:
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

    def _where_given(self, op: RenameOp) -> tuple[int, str] | None:
        parent = self._live(op.parent)
        return (parent.ino, op.name) if parent is not None else None

    def _break_cycle(self, moving: Inode, directory: Inode, name: str,
                     ver: str) -> tuple[Inode, str]:
        """``moving`` would go under itself: of the renames that made the cycle, the later is
        undone into lost+found. Returns where ``moving`` goes now."""
        chain: list[tuple[Inode, tuple[int, str]]] = []
        current = directory
        while current.ino != moving.ino:
            names = self.s._names_of(current.ino)
            chain.append((current, names[0]))
            current = self.s._inode(names[0][0])
        latest, latest_where = max(chain, key=lambda item: item[0].name_version)
        lost = self._lost_found()
        if ver > latest.name_version:
            return lost, self._free_name(lost, name, moving.file_id)
        self._move(latest, latest_where, lost,
                   self._free_name(lost, latest_where[1], latest.file_id), latest.name_version)
        return directory, name

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
            name = self._free_name(directory, original_name(name), copy_id)
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

    def _recorded_owner(self, file_id: str) -> tuple[str, int | None, int | None, int | None]:
        found = self.s._get_kv(f"owner:{file_id}")
        if not found:
            return "", None, None, None
        ver, mode, uid, gid = json.loads(found)
        return str(ver), mode, uid, gid

    def _with_recorded(self, inode: Inode) -> Inode:
        """Store ``inode`` (a file made here or brought back) with what later changes to it
        did while it was not here: mode and owner, time (``_op_setattr``) and extended
        attributes (``EngineStore._xattr_newer``); returns it as stored."""
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
        the copy goes if nobody changed it (so every site ends with the same copies)."""
        if not base:
            return
        copy = self._live(copy_file_id(file_id, base))
        if copy is None or copy.content_version != base:
            return
        for where in self.s._names_of(copy.ino):
            self._drop(where, self.s._inode(copy.ino))

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

    def _resurrect(self, e: JournalEntry, op: ContentOp, inode: Inode | None,
                   parent_fid: str | None, name: str) -> None:
        tomb = self.s._tombstone(op.fid)
        name_ver = (tomb[3] if tomb else inode.name_version if inode is not None
                    else op.name_version or e.version)
        # a conflict copy comes back under its own name: no site ever gave it the plain one
        plain = name if is_copy_id(op.fid) else original_name(name)
        directory, name, lost = self._place(parent_fid, plain, op.fid)
        wanted = name
        if not lost:
            name = self._claim(directory, name, name_ver)
        t = physical_ms(e.hlc) * 1_000_000
        if inode is None:
            inode = Inode(ino=self.s._bump("next_ino"), file_id=op.fid,
                          mode=op.mode or stat.S_IFREG | 0o644,
                          uid=op.uid or 0, gid=op.gid or 0, size=0,
                          nlink=0, atime_ns=t, mtime_ns=t, ctime_ns=t,
                          attr_version=e.version)
        revived = _replace(inode, nlink=1, content=op.hash, size=op.size,
                           mtime_ns=self._written_mtime(e, op), origin_site=e.origin,
                           content_version=e.version, name_version=name_ver)
        revived = self._with_recorded(revived)
        self._bind(directory, name, revived)
        self._relink(revived)
        self.result.inodes.add(revived.ino)
        self.s._put_kv(f"wrote:{revived.file_id}", json.dumps(authored(op)))
        if name != wanted:
            self.s._want(directory.ino, wanted, revived, name)

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
