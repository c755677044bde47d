"""The namespace bookkeeping shared by local changes and replicated ones.

``NamespaceCore`` holds what both ``EngineStore`` (a site's own changes, ``base.py``) and the
``Applier`` (other sites' changes, ``replica.py``) need: finding inodes, appending to the
journal, moving and dropping names, and the records that make concurrent changes resolve alike
everywhere (names waiting to be refilled, tombstones, link bindings, times and xattr versions).
Everything here runs inside the caller's transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace as _replace

from meridian.errors import (
    InvalidOperation,
    NotADirectory,
    NotFound,
    StoreError,
)
from meridian.meta.clock import HybridClock, physical_ms
from meridian.meta.conflicts import numbered_after, original_name
from meridian.meta.entries import JournalEntry
from meridian.meta.hooks import EngineHooks
from meridian.meta.interface import (
    RESERVED_FILE_IDS,
    ROOT_INO,
    Inode,
)
from meridian.meta.journal import (
    CreateOp,
    LinkOp,
    Op,
    RenameOp,
    RmdirOp,
    UnlinkOp,
    version,
)


class NamespaceCore(EngineHooks):
    """Namespace bookkeeping over engine hooks (no transaction of its own)."""

    site_name: str
    site_id: str
    _clock: HybridClock
    _uncommitted: list[JournalEntry]
    _listeners: list[Callable[[list[JournalEntry]], None]]

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
        self._note_undo(entry)
        self._uncommitted.append(entry)

    def _note_undo(self, entry: JournalEntry) -> None:
        """Keep the undo records ``entry`` makes (trash, versions, snapshots: ``undo.py``)."""

    def _bump_applied(self, origin: str) -> int:
        """The next sequence number of ``origin``, recorded as applied."""
        value = int(self._get_kv(f"applied:{origin}") or "0") + 1
        self._put_kv(f"applied:{origin}", str(value))
        return value

    def applied_seq(self, origin: str) -> int:
        """How many of ``origin``'s changes this site holds (its own: how many it made)."""
        return int(self._get_kv(f"applied:{origin}") or "0")

    def last_seq(self) -> int:
        return int(self._get_kv("last_seq") or "0")

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
        record = self._unbind_link(parent.ino, name, inode)
        left = _replace(inode, nlink=inode.nlink - 1, ctime_ns=time.time_ns())
        self._put_inode(left)
        if left.nlink == 0:  # where it was: a write from another site may bring it back there
            # the name's own version: a link's name brought back is judged as it was
            self._put_tombstone(inode.file_id, parent.file_id, name, inode.content_version,
                                record[0] if record is not None else inode.name_version,
                                record[1] if record is not None else "")
        if refill:
            self._freed(parent.ino, name)
        return left

    def _link_record(self, parent: int, name: str, inode: Inode) -> tuple[str, str] | None:
        """What ``_bind_link`` recorded of ``name`` in ``parent`` for ``inode``: (version of
        the change that bound it there, version of the link that made the name)."""
        if inode.is_dir:
            return None
        found = self._get_kv(f"link:{self._inode(parent).file_id}/{name}")
        if not found:
            return None
        file_id, ver, *made = json.loads(found)
        return (str(ver), str(made[0] if made else ver)) if file_id == inode.file_id else None

    def _bound_version(self, parent: int, name: str, inode: Inode) -> str:
        """The version of the change that bound ``name`` in ``parent`` to ``inode``: for a
        name a hard link made, that link or the rename that moved it there since
        (``_bind_link``); else the inode's ``name_version`` (its first name's)."""
        record = self._link_record(parent, name, inode)
        return record[0] if record is not None else inode.name_version

    def _binding_key(self, parent: int, name: str, inode: Inode) -> str:
        """What identifies that name of ``inode`` at every site: for a name a hard link made,
        the link's version, whatever renames moved it since; else "" (the file's first name,
        which no link made: renames move it, they do not change which name it is)."""
        record = self._link_record(parent, name, inode)
        return record[1] if record is not None else ""

    def _own_name(self, inode: Inode) -> tuple[int, str] | None:
        """(parent, name) of ``inode``'s own name, the one no hard link made
        (``_binding_key`` ""), or None if it has no longer that name."""
        return next(((parent, name) for parent, name in self._names_of(inode.ino)
                     if not self._binding_key(parent, name, inode)), None)

    def _bind_link(self, parent: int, name: str, inode: Inode, ver: str,
                   made: str | None = None) -> None:
        """Record that the change ``ver`` bound ``name`` in ``parent`` to ``inode``, a name
        the link ``made`` (default: ``ver`` itself) gave it: a conflict over that name is
        decided by that change, not by the file's first name."""
        self._put_kv(f"link:{self._inode(parent).file_id}/{name}",
                     json.dumps([inode.file_id, ver, made or ver]))

    def _unbind_link(self, parent: int, name: str, inode: Inode) -> tuple[str, str] | None:
        """Forget what ``_bind_link`` recorded of ``name`` in ``parent``; returns it if it
        was a link of ``inode``."""
        record = self._link_record(parent, name, inode)
        key = f"link:{self._inode(parent).file_id}/{name}"
        if self._get_kv(key) is not None:
            self._del_kv(key)
        return record

    def _unlinked_names(self, file_id: str) -> list[list[str]]:
        """The names of ``file_id`` removed one at a time while it kept others: [directory
        file id, name, version of the unlink, what identifies the name (``_binding_key``),
        version of the change that bound it (absent in stores before it was kept)]."""
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
        # which of the file's names lost (``_binding_key``): a hard-linked file may have
        # another name there that only looks like a conflict name of this one
        which = (self._binding_key(directory, placed_as, inode)
                 if self._get_entry(directory, placed_as) == inode.ino else None)
        wanting.append([inode.file_id, placed_as, which])
        self._put_kv(key, json.dumps(wanting))

    def _freed(self, directory: int, name: str, *, unless_before: str | None = None) -> bool:
        """``name`` in ``directory`` was freed: the latest loser still waiting for it (still
        under the name it was given) takes it back. ``unless_before``: only if that loser's
        change is later than this version (a change about to bind the free name competes
        with the losers waiting for it). Returns whether a loser took the name."""
        return (self._serve_waiting(directory, name, unless_before)
                or self._serve_numbered(directory, name, unless_before))

    def _serve_waiting(self, directory: int, name: str, unless_before: str | None) -> bool:
        key = f"want:{self._inode(directory).file_id}/{name}"
        found = self._get_kv(key)
        if found is None:
            return False
        waiting = []
        for file_id, placed_as, *which in json.loads(found):
            ino = self._find_file_id(file_id)
            if ino is None:
                continue
            inode = self._inode(ino)
            lost = which[0] if which else None  # records made before ``which``: any name
            if self._get_entry(directory, placed_as) != ino:
                # moved on to another conflict name of this name (a later change took the
                # one it was given): it still waits; moved anywhere else, it stopped waiting.
                # Only that same name of the file counts.
                placed_as = next((n for parent, n in self._names_of(ino) if parent == directory
                                  and n != name and original_name(n) == name
                                  and (lost is None
                                       or self._binding_key(directory, n, inode) == lost)), "")
            if placed_as:
                waiting.append((inode, placed_as, lost))
        if not waiting:
            self._del_kv(key)
            return False
        chosen = self._latest_loser(directory, [(i, p) for i, p, _ in waiting], unless_before)
        if chosen is None:
            return False
        best, placed_as = chosen
        # (another name of the same hard-linked file may wait too: only this one is served)
        rest = [[i.file_id, p, w] for i, p, w in waiting if (i.ino, p) != (best.ino, placed_as)]
        if rest:
            self._put_kv(key, json.dumps(rest))
        else:
            self._del_kv(key)
        self._move(best, directory, placed_as, directory, name, best.name_version)
        return True

    def _serve_numbered(self, directory: int, name: str, unless_before: str | None) -> bool:
        """A freed conflict name (``x.conflict-T-site``) goes to the latest loser waiting for
        ``x`` that was placed under it with a collision number (``-2``...) because something
        else held it then (a file an undelete made under that name, say): as where that
        holder was gone before the loser came, the loser takes the unnumbered name."""
        base = original_name(name)
        if base == name:
            return False
        found = self._get_kv(f"want:{self._inode(directory).file_id}/{base}")
        if found is None:
            return False
        numbered = []
        for file_id, placed_as, *_ in json.loads(found):
            ino = self._find_file_id(file_id)
            if (ino is not None and self._get_entry(directory, placed_as) == ino
                    and numbered_after(name, placed_as)):
                numbered.append((self._inode(ino), placed_as))
        chosen = self._latest_loser(directory, numbered, unless_before)
        if chosen is None:
            return False
        best, placed_as = chosen
        self._move(best, directory, placed_as, directory, name, best.name_version)
        return True

    def _latest_loser(self, directory: int, losers: list[tuple[Inode, str]],
                      unless_before: str | None) -> tuple[Inode, str] | None:
        """Of ``losers`` (each an inode and the name it sits under in ``directory``), the one
        whose name binding is latest; None if there is none, or if it is earlier than
        ``unless_before`` (see ``_freed``)."""
        if not losers:
            return None
        best, placed_as = max(
            losers, key=lambda item: self._bound_version(directory, item[1], item[0]))
        if (unless_before is not None
                and self._bound_version(directory, placed_as, best) < unless_before):
            return None
        return best, placed_as

    def _put_tombstone(self, file_id: str, parent_fid: str, name: str, content_version: str,
                       name_version: str, key: str = "") -> None:
        """Remember where ``file_id`` had its last name here, and which name it was
        (``key``: its ``_binding_key``, "" for the file's first name)."""
        self._put_kv(f"tomb:{file_id}",
                     json.dumps([parent_fid, name, content_version, name_version, key]))

    def _tombstone_record(self, file_id: str) -> list[object] | None:
        """The tombstone of ``file_id`` as stored: [directory file id, name, content version,
        name version, binding key (absent in stores from before names were told apart)]."""
        found = self._get_kv(f"tomb:{file_id}")
        return list(json.loads(found)) if found else None

    def _tombstone_key(self, file_id: str) -> str:
        """Which name of ``file_id`` its tombstone keeps (``_binding_key``; "" for the
        first name, or a tombstone of a store before names were told apart)."""
        record = self._tombstone_record(file_id) or []
        return str(record[4]) if len(record) > 4 else ""

    def _tombstone(self, file_id: str) -> tuple[str, str, str, str] | None:
        """Where the file ``file_id`` last had a name at this site, if it was deleted here:
        (directory file id, name, content version, name version)."""
        record = self._tombstone_record(file_id)
        if record is None:
            return None
        parent, name, content_version, name_version = record[:4]
        return str(parent), str(name), str(content_version), str(name_version)

    def by_file_id(self, file_id: str) -> Inode | None:
        ino = self._find_file_id(file_id)
        return self._get_inode(ino) if ino is not None else None

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

    def _move(self, inode: Inode, parent: int, name: str, new_parent: int, new_name: str,
              ver: str, *, refill: bool = True) -> None:
        """Move one name of ``inode`` to a free place (the caller has checked everything).
        ``refill``: the old name is free now (a conflict loser waiting for it takes it);
        False when the caller binds it again at once."""
        linked = None if inode.is_dir else self._unbind_link(parent, name, inode)
        self._del_entry(parent, name)
        self._put_free_entry(new_parent, new_name, inode)
        moved_dir = 1 if inode.is_dir else 0
        if inode.is_dir and new_parent != parent:
            self._put_kv(f"placed:{inode.file_id}", ver)
        self._touch_dir(self._inode(parent), -moved_dir)
        self._touch_dir(self._inode(new_parent), moved_dir)
        current = self._inode(inode.ino)
        if linked is not None:
            # A name a link made keeps its own version: the link's if a conflict moved it
            # (the move keeps the version), the rename's if renamed; the file's first name
            # and its version stay as they are.
            self._bind_link(new_parent, new_name, current,
                            linked[0] if ver == current.name_version else ver, linked[1])
            self._put_inode(_replace(current, ctime_ns=time.time_ns()))
        else:
            self._put_inode(_replace(current, ctime_ns=time.time_ns(), name_version=ver))
        if refill:
            self._freed(parent, name)

    def _put_free_entry(self, parent: int, name: str, inode: Inode) -> None:
        """Bind ``name`` in ``parent`` to ``inode``; the name must be free. The rules that
        place replicated changes free or claim a name first: a name still taken here is a
        bug in them, and overwriting it would leave the other file (or another name of the
        same one) counted but unreachable, so the change is refused, its transaction rolled
        back, and the link reports it instead (nothing is lost)."""
        held = self._get_entry(parent, name)
        if held is not None:
            raise StoreError(
                f"internal: {name!r} in directory {self._inode(parent).file_id!r} is taken "
                f"(inode {held}) where {inode.file_id!r} was to go; the change was not applied "
                f"(please report)")
        self._put_entry(parent, name, inode.ino)

    def _placed_version(self, inode: Inode) -> str:
        """The version of the change that put the directory ``inode`` in its directory (a
        rename within one directory does not count): what decides which of two renames that
        make a cycle is undone."""
        return self._get_kv(f"placed:{inode.file_id}") or inode.name_version

    def _check_removable(self, inode: Inode) -> None:
        """The site's own directories (``/.meridian``, its ``lost+found``) stay where they are."""
        if inode.file_id in RESERVED_FILE_IDS:
            raise InvalidOperation(f"{inode.file_id!r} is Meridian's own directory")

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
