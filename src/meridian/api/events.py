"""The site's event stream: every change the site applies, with the paths it touched.

Events come from the journal (one per entry), so a subscriber can resume from a sequence
number: ``/api/v1/events?after=N`` first replays the entries after N, then follows live.
Paths are resolved when the event is published (for a replay: as the namespace is now; a file
deleted since has only the path its entry names). Filtering is by glob on the namespace path
(``fnmatchcase``; ``*`` also crosses ``/``, as in Objectives; a leading ``./`` is accepted).
"""

from __future__ import annotations

import asyncio
import json
import logging
from fnmatch import fnmatchcase
from typing import Any

from meridian.errors import MeridianError
from meridian.meta import ContentOp, InstanceOp, JournalEntry, MetaStore, RenameOp

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000


def normalise_glob(pattern: str) -> str:
    """``./a/*`` and ``a/*`` → ``/a/*`` (namespace paths start at ``/``)."""
    pattern = pattern.strip()
    if pattern.startswith("./"):
        pattern = pattern[1:]
    return pattern if pattern.startswith(("/", "*")) else "/" + pattern


class EventHub:
    """Turns committed journal entries into events and fans them out to subscribers.

    Publishing happens on the loop thread (the store's commit listener); a subscriber that
    falls more than ``QUEUE_LIMIT`` events behind is dropped with an ``overflow`` event rather
    than slowing the site.
    """

    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        meta.add_listener(self.publish)

    def _path(self, fid: str | None, parent: str | None = None, name: str | None = None) -> str | None:
        try:
            if parent is not None and name is not None:
                directory = self.meta.by_file_id(parent)
                if directory is not None:
                    base = self.meta.path_of(directory.ino).rstrip("/")
                    return f"{base}/{name}"
            inode = self.meta.by_file_id(fid) if fid else None
            return self.meta.path_of(inode.ino) if inode is not None else None
        except MeridianError:
            return None

    def event_of(self, entry: JournalEntry) -> dict[str, Any]:
        op = entry.op
        event: dict[str, Any] = {"seq": entry.seq, "origin": entry.origin, "hlc": entry.hlc,
                                 "op": op.KIND, "fid": op.file_id}
        event["path"] = self._path(op.file_id, *op.place)
        if isinstance(op, RenameOp):
            event["old_path"] = self._path(None, op.parent, op.name)
        if isinstance(op, (ContentOp, InstanceOp)):
            event["hash"], event["size"] = op.hash, op.size
        return event

    def publish(self, entries: list[JournalEntry]) -> None:
        if not self._subscribers:
            return
        for entry in entries:
            event = self.event_of(entry)
            for queue in list(self._subscribers):
                if queue.qsize() >= QUEUE_LIMIT:
                    self._subscribers.discard(queue)
                    queue.put_nowait(None)  # overflow: the subscriber must resume with after=
                    log.warning("event subscriber dropped: more than %d events behind", QUEUE_LIMIT)
                else:
                    queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        """The server stops: every stream ends (as after an overflow, a client resumes with
        ``after=`` the last id it saw)."""
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()


def matches(event: dict[str, Any], pattern: str | None) -> bool:
    if pattern is None:
        return True
    return any(p is not None and fnmatchcase(p, pattern)
               for p in (event.get("path"), event.get("old_path")))


def sse(event: dict[str, Any] | None, kind: str = "change") -> bytes:
    """One server-sent event (``id`` = journal sequence, so clients can resume)."""
    if event is None:
        return b"event: overflow\ndata: {}\n\n"
    return f"id: {event['seq']}\nevent: {kind}\ndata: {json.dumps(event)}\n\n".encode()
