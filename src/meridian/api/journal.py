"""The journal as peers read it: a long poll, or a stream of batches on one request.

A peer pulls ``GET /api/v1/journal?after=N``. The answer is one *batch*, a JSON object:
``site``, ``format``, ``last_seq`` (this site's newest entry), ``through`` (the last position
read, which counts the caller's own changes left out by ``skip_origin``) and ``entries``.

With ``stream=true`` the answer is ``application/x-ndjson``: one batch per line, for up to
``wait`` seconds on the same request. The first line comes at once; then a line whenever
entries commit, and a heartbeat line (no entries, ``through`` and ``last_seq`` current) after
``STREAM_HEARTBEAT`` seconds without one, so the caller sees a dead connection and how far
behind it is. A busy link then costs one request per ``wait`` seconds, not one per batch: the
request, its routing and its credential check were most of a pull's CPU at both ends (py-spy
of west during bench/compare_visibility.py: 34% of its GIL in the HTTP client's request), and
the entries that commit while the caller was sending its next request no longer wait for it.

Either way an entry leaves this site only once it is on disk (docs/design.md, rule 2): a
batch whose last entry is past the durable position waits for the fsync, on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from meridian.meta import JOURNAL_FORMAT, JournalEntry, MetaStore

STREAM_HEARTBEAT = 5.0  # seconds a stream may stay silent before it sends an empty batch
CREDENTIAL_RECHECK = 1.0  # seconds between two looks at a streaming caller's credential


class JournalFeed:
    """Wakes long polls when the store commits journal entries (loop thread only). A poll
    that leaves out one origin's entries (``skip_origin``: the pulling peer's own, relayed
    back) is not woken by a commit made only of those: on a site applying a busy peer's
    changes, that peer's poll would otherwise wake for each of them to find nothing to send."""

    def __init__(self) -> None:
        self._events: dict[str | None, asyncio.Event] = {}  # by the origin the poll skips
        self.closed = False

    def committed(self, entries: list[JournalEntry]) -> None:
        origins = {entry.origin for entry in entries}
        for skipped in list(self._events):
            if not entries or skipped is None or origins - {skipped}:
                self._events.pop(skipped).set()

    def close(self) -> None:
        """The server is stopping: every waiting poll answers now, new ones do not wait."""
        self.closed = True
        self.committed([])

    async def wait(self, timeout: float, skip_origin: str | None = None) -> None:
        if self.closed:
            return
        event = self._events.get(skip_origin)
        if event is None:
            event = self._events[skip_origin] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass


class JournalReader:
    """Reads batches of one site's journal for its peers (loop thread only)."""

    def __init__(self, meta: MetaStore, site_name: str, feed: JournalFeed) -> None:
        self.meta = meta
        self.site_name = site_name
        self.feed = feed

    def scan(self, through: int, limit: int,
             skip_origin: str | None) -> tuple[int, list[JournalEntry], bool]:
        """Read after ``through``: the new ``through``, the entries not of ``skip_origin``, and
        whether the read stopped at ``limit`` (more are waiting)."""
        scanned = self.meta.journal(through, limit)
        if scanned:
            through = scanned[-1].seq
        return through, [e for e in scanned if e.origin != skip_origin], len(scanned) == limit

    async def batch(self, through: int, entries: list[JournalEntry]) -> dict[str, Any]:
        """One answer; waits for the fsync when an entry in it is not yet on disk."""
        if entries and entries[-1].seq > self.meta.durable_seq():
            # a peer never sees an entry a crash could take back (rule 2); the fsync on a
            # worker thread, so the loop serves the mount meanwhile
            await asyncio.to_thread(self.meta.syncer())
        return {"site": self.site_name, "format": JOURNAL_FORMAT,
                "last_seq": self.meta.last_seq(), "through": through,
                "entries": [e.to_wire() for e in entries]}

    async def poll(self, after: int, limit: int, wait: float,
                   skip_origin: str | None) -> dict[str, Any]:
        """One batch; with ``wait``, held until an entry for the caller commits or ``wait``
        seconds pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        through = after
        while True:
            through, entries, full = self.scan(through, limit, skip_origin)
            if entries or full or loop.time() >= deadline or self.feed.closed:
                return await self.batch(through, entries)
            await self.feed.wait(deadline - loop.time(), skip_origin)

    async def stream(self, after: int, limit: int, seconds: float, skip_origin: str | None,
                     release: Callable[[], object],
                     live: Callable[[], bool]) -> AsyncIterator[bytes]:
        """Batches as lines for ``seconds`` (see the module docstring); ``release`` is called
        when the stream ends, however it ends (the caller went away included). ``live`` says
        whether the caller's credential still holds: asked at most every
        ``CREDENTIAL_RECHECK`` seconds before a line, and the stream ends once it does not
        (the caller's next request gets the 401), as a revoked credential's next request
        would."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        through, sent_at, first, checked_at = after, loop.time(), True, loop.time()
        try:
            while not self.feed.closed:
                if loop.time() - checked_at >= CREDENTIAL_RECHECK:
                    if not live():
                        return
                    checked_at = loop.time()
                # entries of the caller's own alone move ``through``: told with the next line
                through, entries, full = self.scan(through, limit, skip_origin)
                now = loop.time()
                if entries or first or now - sent_at >= STREAM_HEARTBEAT or now >= deadline:
                    first, sent_at = False, now
                    yield _line(await self.batch(through, entries))
                    if now >= deadline:
                        return
                    continue  # read again before waiting: entries may have come meanwhile
                if full:
                    continue
                # nothing between this read and the wait can commit (loop thread only)
                await self.feed.wait(min(deadline, sent_at + STREAM_HEARTBEAT) - now,
                                     skip_origin)
            yield _line(await self.batch(through, []))  # stopping: where the caller stands
        finally:
            release()


def _line(batch: dict[str, Any]) -> bytes:
    return json.dumps(batch, separators=(",", ":")).encode() + b"\n"
