"""Garbage collection of the bucket: content no file at any site refers to any more.

A content goes in three steps, each a round apart (every ``interval`` seconds):

1. **noticed**: no inode of this site refers to it; the time is written down.
2. **retired**, once ``grace`` seconds have passed and every peer answers that none of its
   inodes refers to it: a ``retire`` entry is journaled, so every site stops counting it as in
   the bucket (a later write of the same bytes anywhere uploads them again).
3. **deleted** from the bucket, once every peer holds the retire entry and *acknowledges* the
   retirement: none of its files refers to it, no upload of it is under way there, and it
   starts none for ``hold`` seconds (``holds.py``). This site makes the same promise to itself
   and looks at its own references once more; then the delete, which must start within half
   of the shortest hold granted. A reference made after a peer's acknowledgement is kept: if
   it reaches this site before the delete, the content is *revived* (not deleted; the writer
   uploads it again); if not, the writer's upload waits for its hold to end and puts the bytes
   back after the delete.

Collection needs every site to be a peer of every other (full mesh): a round does nothing
while a site whose changes this site or a peer holds (an origin in the journal) is not one of
this site's configured peers, or a peer does not answer, unless that site left the namespace
(a completed ``site leave``, known here or at a peer). The log says which site holds it back,
and so does ``GET /api/v1/replication`` (``gc``). Every site runs its own collector; two sites
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
from meridian.testpoints import reached_async
from meridian.meta import MetaStore
from meridian.objects.layout import ContentBucket
from meridian.replication.link import Peer
from meridian.sitecall import AsyncSiteCaller

# The collector's own side of an acknowledgement: hold this site's uploads of the hashes for
# the seconds given and return those it acknowledges (see ``holds.py``); and end the holds.
Acknowledge = Callable[[list[str], float], set[str]]
Release = Callable[[list[str]], None]

log = logging.getLogger(__name__)


class Collector:
    """Runs on the site's loop; bucket deletes run in a worker thread."""

    def __init__(self, meta: MetaStore, bucket: ContentBucket, peers: tuple[Peer, ...], *,
                 grace: float, interval: float, hold: float = 600.0,
                 acknowledge: Acknowledge | None = None, release: Release | None = None,
                 on_retired: Callable[[str], None] | None = None,
                 on_deleted: Callable[[str], None] | None = None) -> None:
        self.meta = meta
        self.bucket = bucket
        self.peers = peers
        self.grace = grace
        self.interval = interval
        self.hold = hold
        self.acknowledge = acknowledge  # None: nothing uploads here (tests of the store alone)
        self.release = release
        self.held_back: str | None = None  # why the last round could not ask or delete
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
            try:
                await self._retire_and_delete(state, due, retired, counts)
            finally:
                self._save(state)  # what was deleted is never deleted twice from this state
        else:
            self._save(state)
        if counts["retired"] or counts["deleted"]:
            log.info("garbage collection: %d retired, %d deleted from the bucket (%d waiting)",
                     counts["retired"], counts["deleted"], len(state))
        return counts

    async def _retire_and_delete(self, state: dict[str, dict[str, Any]], due: list[str],
                                 retired: list[str], counts: dict[str, int]) -> None:
        asked = time.monotonic()
        answers = await self._ask_peers(due + retired, retired, self.hold)
        if answers is None:
            return  # _ask_peers said which peer
        # a site that left is known to the sites it was a peer of, maybe not here
        departed = self.meta.departed() | {str(d) for a in answers for d in a.get("departed", ())}
        missing = self._not_peers(self.meta.positions(), departed)
        if missing:
            self._hold_back(f"site {missing[0]} made changes this site holds, but is not one "
                            "of its peers (collection needs every site as a peer)")
            return
        for answer in answers:
            missing = self._not_peers(answer.get("positions", {}), departed)
            if missing:
                self._hold_back(f"site {missing[0]} made changes that {answer.get('site')} "
                                "holds, but is not one of this site's peers (collection "
                                "needs every site as a peer)")
                return
        self._hold_back(None)
        used = set().union(*(set(a["referenced"]) for a in answers)) if answers else set()
        for hash in due:
            if hash not in used:
                state[hash]["retired"] = self.meta.retire_content(hash)
                counts["retired"] += 1
                if self.on_retired is not None:
                    self.on_retired(hash)
        granted = min([self.hold, *(float(a.get("hold", 0.0)) for a in answers)])
        for hash in retired:
            if hash in used:
                continue  # a peer refers to it again: it uploads it, and the round after drops it
            record = self.meta.content(hash)
            if record is not None and record.in_bucket:  # uploaded again meanwhile
                del state[hash]
                continue
            if not self._acknowledged_by_all(hash, int(state[hash]["retired"]), answers):
                continue
            if time.monotonic() - asked >= granted / 2:
                log.info("garbage collection: the peers' holds are half over; the remaining "
                         "deletes wait for the next round")
                break
            if await self._delete(hash):
                del state[hash]
                counts["deleted"] += 1
                self.deleted += 1
            else:
                del state[hash]  # revived here: noticed afresh once unreferenced again

    def _acknowledged_by_all(self, hash: str, seq: int, answers: list[dict[str, Any]]) -> bool:
        """Every peer holds this site's retire entry (its origin sequence ``seq``) and
        acknowledged the retirement (holding its uploads)."""
        mine = self.meta.site_name
        return all(int(a["positions"].get(mine, 0)) >= seq and hash in a.get("acknowledged", ())
                   for a in answers)

    async def _delete(self, hash: str) -> bool:
        """Delete one acknowledged content from the bucket, unless this site revives it: its
        own uploads of it are held first, then its references looked at once more (a peer's
        new file that has arrived here counts). True if deleted."""
        await reached_async("gc.acknowledged")  # every peer acknowledged; nothing held here yet
        try:
            if self.acknowledge is not None and hash not in self.acknowledge([hash], self.hold):
                return False  # an upload of it is under way here, or it is in use again
            record = self.meta.content(hash)
            if self.meta.referenced([hash]) or (record is not None and record.in_bucket):
                log.info("garbage collection: %s is referenced again; revived, not deleted",
                         hash[:12])
                return False
            await reached_async("gc.delete")
            await asyncio.to_thread(self.bucket.delete_content, hash)
            self.meta.forget_content(hash)
        finally:
            if self.release is not None:
                self.release([hash])
        # a peer's file that arrived during the delete: the local copy is what it reads
        if self.on_deleted is not None and not self.meta.referenced([hash]):
            self.on_deleted(hash)
        return True

    def _not_peers(self, origins: dict[str, Any], departed: set[str]) -> list[str]:
        """The origin sites among ``origins`` that are neither this site, nor one of its
        configured peers, nor departed."""
        known = {p.name for p in self.peers} | departed | {self.meta.site_name}
        return sorted(set(origins) - known)

    def _hold_back(self, reason: str | None) -> None:
        if reason is not None and reason != self.held_back:
            log.warning("garbage collection waits: %s", reason)
        self.held_back = reason

    async def _ask_peers(self, hashes: list[str], retiring: list[str],
                         hold: float) -> list[dict[str, Any]] | None:
        """Every peer's answer, or None if one of them cannot answer (nothing goes then): the
        hashes of ``hashes`` it refers to, which of ``retiring`` it acknowledges (holding its
        uploads of them for ``hold`` seconds), how long it holds, its positions per origin
        and the sites it knows have left."""
        departed = self.meta.departed()
        answers = []
        client = AsyncSiteCaller()
        try:
            for peer in self.peers:
                if peer.name in departed:
                    continue
                try:
                    answers.append(await client.call(
                        peer, "POST", "/references",
                        body={"hashes": hashes, "retiring": retiring, "hold": hold},
                        timeout=30.0))
                except (MeridianError, ValueError) as exc:
                    self._hold_back(f"{peer.name} cannot answer ({exc})")
                    return None
        finally:
            await client.aclose()
        return answers

    def _load(self) -> dict[str, dict[str, Any]]:
        raw = self.meta.get_setting("gc")
        return dict(json.loads(raw)) if raw else {}

    def _save(self, state: dict[str, dict[str, Any]]) -> None:
        self.meta.put_setting("gc", json.dumps(state))
