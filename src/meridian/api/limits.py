"""Limits on what one caller can make a site hold: open streams, and snapshot copies.

- ``StreamCaps``: long polls (``journal?wait=``) and event streams open at once, per
  credential; one more is answered 429 (a peer runs one long poll per link, so the default
  of 16 leaves room for restarts and a slow close).
- ``SnapshotCopies``: a snapshot is a full copy of the store on disk. One is made at a time;
  callers that ask while it is being made or sent (and within ``REUSE`` seconds of its
  making) share that same consistent copy (the journal position in its header is right for
  all of them); a copy is removed as soon as its last reader is done.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException

from meridian.meta import MetaStore
from meridian.trust.credentials import Caller

REUSE = 60.0  # seconds a snapshot copy still being sent is served to new callers


class StreamCaps:
    """Counts the streams each credential holds open (loop thread only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    @contextmanager
    def hold(self, caller: Caller, counted: bool = True) -> Iterator[None]:
        """Hold one stream for ``caller`` while inside; HTTPException 429 over the limit."""
        if not counted:
            yield
            return
        key = caller.credential_id or caller.label
        if self._open.get(key, 0) >= self.limit:
            raise HTTPException(429, f"{caller.label} holds {self.limit} long polls or event "
                                     "streams open already ([api] max_streams)")
        self._open[key] = self._open.get(key, 0) + 1
        try:
            yield
        finally:
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]

    def count(self, caller: Caller) -> int:
        return self._open.get(caller.credential_id or caller.label, 0)


@dataclass(eq=False)
class SnapshotCopy:
    path: Path
    seq: int
    made: float
    readers: int = 0


class SnapshotCopies:
    """The snapshot copies of one site's store (loop thread only; copies are made in a
    worker thread)."""

    def __init__(self, meta: MetaStore, folder: Path) -> None:
        self.meta = meta
        self.folder = folder
        self._lock = asyncio.Lock()
        self._current: SnapshotCopy | None = None
        self.made = 0  # how many copies were made (tests read it)

    async def acquire(self) -> SnapshotCopy:
        """The newest copy, made now unless one is younger than ``REUSE``; release it with
        ``release`` once it is sent."""
        async with self._lock:
            current = self._current
            if current is None or time.monotonic() - current.made > REUSE:
                self.folder.mkdir(0o700, exist_ok=True)
                path = self.folder / f"snapshot-{secrets.token_hex(8)}.db"
                seq = await asyncio.to_thread(self.meta.snapshot_to, path)
                self.meta.sync()  # what the copy holds is durable before anyone sees it
                self.made += 1
                if current is not None and current.readers == 0:
                    current.path.unlink(missing_ok=True)
                current = self._current = SnapshotCopy(path, seq, time.monotonic())
            current.readers += 1
            return current

    def release(self, copy: SnapshotCopy) -> None:
        copy.readers -= 1
        if copy.readers == 0:
            copy.path.unlink(missing_ok=True)
            if copy is self._current:
                self._current = None

    def close(self) -> None:
        if self._current is not None and self._current.readers == 0:
            self._current.path.unlink(missing_ok=True)
            self._current = None
