"""Garbage collection of the bucket: content no file at any site refers to any more.

A content goes in three steps, each a round apart (every ``interval`` seconds):

1. **noticed**: no inode of this site refers to it; the time is written down.
2. **retired**, once ``grace`` seconds have passed and every peer answers that none of its
   inodes refers to it: a ``retire`` entry is journaled, so every site stops counting it as in
   the bucket (a later write of the same bytes anywhere uploads them again).
3. **deleted** from the bucket, once every peer holds the retire entry and still has no
   reference, and nobody has uploaded it again meanwhile.

A peer that does not answer (down, cut off, lagging behind a partition) stops the collection of
everything for that round: content is never deleted while a site that may need it cannot say
so. Sites that left the namespace are not asked. Every site runs its own collector; two sites
retiring or deleting the same content is harmless (both steps are idempotent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from meridian.errors import MeridianError
from meridian.meta import MetaStore
from meridian.objects.layout import ContentBucket
from meridian.replication.link import Peer
from meridian.sitecall import AsyncSiteCaller

log = logging.getLogger(__name__)


class Collector:
    """Runs on the site's loop; bucket deletes run in a worker thread."""

    def __init__(self, meta: MetaStore, bucket: ContentBucket, peers: tuple[Peer, ...], *,
                 grace: float, interval: float,
                 on_retired: Callable[[str], None] | None = None,
                 on_deleted: Callable[[str], None] | None = None) -> None:
        self.meta = meta
        self.bucket = bucket
        self.peers = peers
        self.grace = grace
        self.interval = interval
        self.on_retired = on_retired
        self.on_deleted = on_deleted  # e.g. drop the local instance too
        self.deleted = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="gc")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.collect_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("garbage collection round failed; trying again next round")

    # -- one round --------------------------------------------------------------------------
    async def collect_once(self, now: float | None = None) -> dict[str, int]:
        """One round; returns how many contents were noticed, retired and deleted."""
        now = time.time() if now is None else now
        counts = {"noticed": 0, "retired": 0, "deleted": 0}
        state = self._load()
        unreferenced = {r.hash: r for r in self.meta.unreferenced_contents(limit=10_000)}
        for hash in list(state):
            if hash not in unreferenced:  # referenced again (or gone): forget about it
                del state[hash]
        for hash in unreferenced:
            if hash not in state:
                state[hash] = {"since": now}
                counts["noticed"] += 1
        due = [h for h, s in state.items() if "retired" not in s and now - s["since"] >= self.grace]
        retired = [h for h, s in state.items() if "retired" in s]
        if due or retired:
            answers = await self._ask_peers(due + retired)
            if answers is not None:
                used = set().union(*(set(a["referenced"]) for a in answers)) if answers else set()
                for hash in due:
                    if hash not in used:
                        state[hash]["retired"] = self.meta.retire_content(hash)
                        counts["retired"] += 1
                        if self.on_retired is not None:
                            self.on_retired(hash)
                mine = self.meta.site_name
                for hash in retired:
                    seq = int(state[hash]["retired"])
                    pulled = all(int(a["positions"].get(mine, 0)) >= seq for a in answers)
                    record = self.meta.content(hash)
                    again = record is not None and record.in_bucket  # uploaded again meanwhile
                    if again:
                        del state[hash]
                    elif pulled and hash not in used:
                        await asyncio.to_thread(self.bucket.delete_content, hash)
                        self.meta.forget_content(hash)
                        if self.on_deleted is not None:
                            self.on_deleted(hash)
                        del state[hash]
                        counts["deleted"] += 1
                        self.deleted += 1
        self._save(state)
        if counts["retired"] or counts["deleted"]:
            log.info("garbage collection: %d retired, %d deleted from the bucket (%d waiting)",
                     counts["retired"], counts["deleted"], len(state))
        return counts

    async def _ask_peers(self, hashes: list[str]) -> list[dict[str, Any]] | None:
        """Every peer's answer, or None if one of them cannot answer (nothing goes then)."""
        departed = self.meta.departed()
        answers = []
        client = AsyncSiteCaller()
        try:
            for peer in self.peers:
                if peer.name in departed:
                    continue
                try:
                    answers.append(await client.call(peer, "POST", "/references",
                                                     body={"hashes": hashes}, timeout=30.0))
                except (MeridianError, ValueError) as exc:
                    log.info("garbage collection waits: %s cannot answer (%s)", peer.name, exc)
                    return None
        finally:
            await client.aclose()
        return answers

    def _load(self) -> dict[str, dict[str, Any]]:
        raw = self.meta.get_setting("gc")
        return dict(json.loads(raw)) if raw else {}

    def _save(self, state: dict[str, dict[str, Any]]) -> None:
        self.meta.put_setting("gc", json.dumps(state))
