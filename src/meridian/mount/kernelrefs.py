"""What the kernel holds of the mount: references to inodes, names, page-cache contents.

The kernel keeps a reference count per inode (one per lookup reply, given back by
``forget``); an inode that has no name left is dropped from the store only once no
reference and no open handle holds it. The page-cache record lets an open keep the kernel's
cached pages when the content has not changed since they were read, and ``invalidate``
makes the kernel drop what it cached of names and inodes a peer's change touched.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable

import pyfuse3

from meridian.errors import MeridianError
from meridian.meta import ROOT_INO, ApplyResult, MetaStore

log = logging.getLogger(__name__)

FORGET_BATCH, FORGET_DELAY = 256, 0.1  # nameless inodes are dropped in batches
UNKNOWN = object()  # the page cache may hold anything: do not keep it
WRITTEN = object()  # the page cache holds bytes written since the last commit


def _invalidate_inodes(inodes: list[int]) -> None:
    for ino in inodes:
        try:
            pyfuse3.invalidate_inode(ino, attr_only=False)
        except OSError as exc:  # the kernel forgot it meanwhile: nothing to drop
            if exc.errno != errno.ENOENT:
                log.debug("invalidate inode %d: %s", ino, exc)


class KernelRefs:
    """The kernel's references (lookup counts), the names it knows files by, what its page
    cache holds, and the batch of nameless inodes waiting to be dropped from the store.

    ``is_open(ino)`` says whether a handle holds ``ino``: such an inode is never dropped."""

    def __init__(self, meta: MetaStore, is_open: Callable[[int], bool]) -> None:
        self.meta = meta
        self._is_open = is_open
        self.lookups: dict[int, int] = defaultdict(int)
        # What the kernel's page cache holds for each inode: a content hash (None = empty), or
        # WRITTEN while writes through the kernel are being staged.
        self.page_cache: dict[int, str | None | object] = {}
        self.names: dict[int, tuple[int, str]] = {}  # a name the kernel knows each file by
        self._unused: set[int] = set()  # nameless, unreferenced inodes to forget soon
        self._forget_timer: asyncio.TimerHandle | None = None

    def took(self, ino: int) -> None:
        """A reply gave the kernel one more reference to ``ino``."""
        self.lookups[ino] += 1

    def took_each(self, inos: Iterable[int]) -> None:
        """One more reference to each of ``inos`` (a directory listing's reply)."""
        lookups = self.lookups
        for ino in inos:
            lookups[ino] += 1

    def knows(self, ino: int) -> bool:
        return ino == ROOT_INO or ino in self.lookups

    def forget(self, ino: int, count: int) -> bool:
        """The kernel gave back ``count`` references; True when it holds none any more (what
        was kept about the inode is then dropped)."""
        left = self.lookups.get(ino, 0) - count
        if left > 0:
            self.lookups[ino] = left
            return False
        self.lookups.pop(ino, None)
        self.page_cache.pop(ino, None)
        self.names.pop(ino, None)
        return True

    def invalidate(self, result: ApplyResult) -> None:
        """Entries from peers were applied: make the kernel forget what it cached of the
        touched names and inodes, so the next ``ls``/``stat``/``open`` asks us
        (docs/design.md, data flow step 4).

        Called on the loop, outside any request handler. Entry invalidations are queued
        (``invalidate_entry_async``); inode invalidations may block on the kernel's page
        cache (and would on dirty pages under writeback caching), so they run in a worker
        thread."""
        touched: set[int] = set()
        for parent, name in result.names:
            touched.add(parent)
            if self.knows(parent):
                pyfuse3.invalidate_entry_async(parent, os.fsencode(name), ignore_enoent=True)
        for ino in result.inodes:
            self.page_cache.pop(ino, None)  # never keep pages of replaced content
        touched |= result.inodes
        known = [ino for ino in touched if self.knows(ino)]
        if known:
            asyncio.get_running_loop().run_in_executor(None, _invalidate_inodes, known)

    # -- nameless inodes --------------------------------------------------------------------
    def in_use(self, ino: int) -> bool:
        """Open here, or still referenced by the kernel."""
        return self._is_open(ino) or bool(self.lookups.get(ino))

    def drop_if_unused(self, ino: int) -> None:
        """Forget an inode with no name, no handle and no kernel reference left: soon, in a
        batch (one commit for many unlinks rather than a second commit per unlink). Safe to
        lose on a crash: nameless inodes are dropped when the store opens."""
        if self.in_use(ino):
            return
        self._unused.add(ino)
        if len(self._unused) >= FORGET_BATCH:
            self._forget_unused()
        elif self._forget_timer is None:
            self._forget_timer = asyncio.get_running_loop().call_later(FORGET_DELAY,
                                                                       self._forget_unused)

    def _forget_unused(self) -> None:
        if self._forget_timer is not None:
            self._forget_timer.cancel()
            self._forget_timer = None
        # checked again: a file may have been opened (by inode) or looked up since
        unused = [ino for ino in self._unused if not self.in_use(ino)]
        self._unused.clear()
        try:
            self.meta.forget_all(unused)  # each still nameless, or left alone
        except MeridianError as exc:  # pragma: no cover - logged, never fatal
            log.warning("forget %d inodes: %s", len(unused), exc)
