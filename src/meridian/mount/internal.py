"""The mount's internal nodes: virtual, read-only files and directories in one table.

Internal nodes are what the mount answers itself rather than the namespace store:
``/.meridian/site.json`` (which site this mount is), and read-only trees whose entries come
from a provider (a trash, snapshots). They live in a reserved inode range (``INTERNAL_BASE``
and up, far above any store's numbers), so one test, ``InternalNodes.owns(ino)``, tells a
handler whether an inode is the table's; handlers do not grow a case per virtual file.

Contracts:

- A node is *attached* under a real directory by name (``attach``): lookup of that name in
  that directory finds it, and listings of the directory show it unless ``listed=False``
  (a name reached only by those who know it, like ``.snapshot`` on a filer).
- A ``VirtualDir``'s children are asked of its provider on every lookup and listing: a
  provider returns the entries as they are now. A child keeps its inode number while the
  mount runs (numbered by (directory, name) on first sight); a name its provider no longer
  returns is not found.
- A ``VirtualFile``'s bytes are made by its ``content`` callable on every open and stat;
  reads go past the page cache (direct I/O), so a changing answer is never read torn.
- Everything here is read-only: changes are refused with EROFS (``refuse_change``). An
  inode of the range the table does not know (one from before a restart) is ESTALE.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyfuse3

from meridian.errors import NotADirectory, NotFound
from meridian.meta import Inode

INTERNAL_BASE = 1 << 62  # inode numbers from here on are the table's
INTERNAL_FILE_ID = "virtual"  # the file_id of every internal node (never journaled)


@dataclass(frozen=True)
class VirtualFile:
    """A read-only file whose bytes ``content()`` makes when it is opened or stat'ed."""

    name: str
    content: Callable[[], bytes]
    mode: int = 0o444
    size: int | None = None  # given: stat answers it without making the bytes
    mtime_ns: int | None = None


@dataclass(frozen=True)
class VirtualDir:
    """A read-only directory whose entries ``children()`` gives, as they are now."""

    name: str
    children: Callable[[], Iterable[VirtualFile | VirtualDir]]
    mode: int = 0o555


VirtualNode = VirtualFile | VirtualDir


@dataclass
class _Placed:
    parent: int  # a real directory's inode, or another internal node's
    node: VirtualNode


class InternalNodes:
    """The table: inode numbers of the reserved range, each with its node and parent."""

    def __init__(self) -> None:
        self._placed: dict[int, _Placed] = {}
        self._numbers: dict[tuple[int, str], int] = {}  # (parent, name) -> inode number
        self._attached: dict[int, list[tuple[int, bool]]] = {}  # real dir -> [(ino, listed)]
        self._next = INTERNAL_BASE + 1

    @staticmethod
    def owns(ino: int) -> bool:
        """Whether ``ino`` is in the table's range (a handler answers it from here)."""
        return ino >= INTERNAL_BASE

    def attach(self, parent: int, node: VirtualNode, *, listed: bool = True) -> int:
        """Put ``node`` under the real directory ``parent``; returns its inode number (the
        first node attached gets ``INTERNAL_BASE + 1``, the next + 2, ... so that numbers are
        the same at every start of the mount)."""
        ino = self._number(parent, node)
        self._attached.setdefault(parent, []).append((ino, listed))
        return ino

    def _number(self, parent: int, node: VirtualNode) -> int:
        key = (parent, node.name)
        ino = self._numbers.get(key)
        if ino is None:
            ino = self._numbers[key] = self._next
            self._next += 1
            self._placed[ino] = _Placed(parent, node)
        else:
            self._placed[ino].node = node  # the provider's latest word on it
        return ino

    def _get(self, ino: int) -> _Placed:
        placed = self._placed.get(ino)
        if placed is None:
            raise pyfuse3.FUSEError(errno.ESTALE)  # numbered by a mount that has ended
        return placed

    def lookup(self, parent: int, name: str) -> Inode | None:
        """The node called ``name`` in ``parent``: attached there, or a child of an internal
        directory. None when ``parent`` is a real directory with no such node attached (the
        store answers); NotFound when ``parent`` is internal and has no such child."""
        if not self.owns(parent):
            for ino, _ in self._attached.get(parent, ()):
                if self._placed[ino].node.name == name:
                    return self.getattr(ino)
            return None
        for child_ino, child in self._children(parent):
            if child.name == name:
                return self._inode(child_ino, child)
        raise NotFound(f"no {name!r} in this virtual directory")

    def getattr(self, ino: int) -> Inode:
        """The inode ``ino`` of the table (ESTALE if it is not one of today's)."""
        return self._inode(ino, self._get(ino).node)

    def parent_of(self, ino: int) -> int:
        return self._get(ino).parent

    def node(self, ino: int) -> VirtualNode:
        """The node ``ino`` (ESTALE if it is not one of today's)."""
        return self._get(ino).node

    def is_dir(self, ino: int) -> bool:
        return isinstance(self._get(ino).node, VirtualDir)

    def read(self, ino: int) -> bytes:
        """A file's bytes as they are now (EISDIR for a directory)."""
        node = self._get(ino).node
        if isinstance(node, VirtualDir):
            raise pyfuse3.FUSEError(errno.EISDIR)
        return node.content()

    def listing(self, ino: int) -> list[tuple[str, Inode]]:
        """The entries of the internal directory ``ino`` (without ``.`` and ``..``)."""
        return [(child.name, self._inode(child_ino, child))
                for child_ino, child in self._children(ino)]

    def listed_in(self, parent: int) -> list[tuple[str, Inode]]:
        """The listed nodes attached to the real directory ``parent``."""
        return [(self._placed[ino].node.name, self.getattr(ino))
                for ino, listed in self._attached.get(parent, ()) if listed]

    def attached_names(self, parent: int) -> set[str]:
        """Every name attached to ``parent``, listed or not (the store's own entries of
        these names are hidden behind them)."""
        return {self._placed[ino].node.name for ino, _ in self._attached.get(parent, ())}

    @staticmethod
    def refuse_change(ino: int) -> None:
        """EROFS for a change to an internal node; nothing for any other inode."""
        if InternalNodes.owns(ino):
            raise pyfuse3.FUSEError(errno.EROFS)

    def refuse_name_change(self, parent: int, name: bytes) -> None:
        """EROFS for a change of the entry ``name`` in ``parent`` when either is the table's
        (creating, removing or renaming a virtual entry); nothing otherwise."""
        self.refuse_change(parent)
        attached = self._attached.get(parent)
        if attached and os.fsdecode(name) in {self._placed[ino].node.name for ino, _ in attached}:
            raise pyfuse3.FUSEError(errno.EROFS)

    def _children(self, ino: int) -> list[tuple[int, VirtualNode]]:
        node = self._get(ino).node
        if not isinstance(node, VirtualDir):
            raise NotADirectory("not a directory")
        return [(self._number(ino, child), child) for child in node.children()]

    @staticmethod
    def _inode(ino: int, node: VirtualNode) -> Inode:
        now = time.time_ns()
        if isinstance(node, VirtualDir):
            return Inode(ino, INTERNAL_FILE_ID, stat.S_IFDIR | node.mode, 0, 0, 0, 2,
                         now, now, now)
        size = node.size if node.size is not None else len(node.content())
        mtime = node.mtime_ns if node.mtime_ns is not None else now
        return Inode(ino, INTERNAL_FILE_ID, stat.S_IFREG | node.mode, 0, 0, size, 1, now,
                     mtime, now)
