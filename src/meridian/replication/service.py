"""The replication service of one site: a link per configured peer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from meridian.errors import MeridianError
from meridian.meta import MetaStore
from meridian.meta import ApplyResult
from meridian.replication.link import DEFAULT_MAX_CLOCK_SKEW, Peer, PeerLink
from meridian.sitecall import AsyncSiteCaller

log = logging.getLogger(__name__)


class Replication:
    """Starts and stops the links; fans applied batches out to listeners (the mount's cache
    invalidation, the content prefetcher). Runs on the site's event loop."""

    def __init__(self, meta: MetaStore, peers: tuple[Peer, ...], *,
                 max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW) -> None:
        self.meta = meta
        self.peers = peers
        self.max_clock_skew = max_clock_skew
        self._listeners: list[Callable[[ApplyResult], None]] = []
        self._client: AsyncSiteCaller | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.links: dict[str, PeerLink] = {}

    def add_listener(self, listener: Callable[[ApplyResult], None]) -> None:
        """Call ``listener`` with every applied batch (after its commit)."""
        self._listeners.append(listener)

    def announce(self, result: ApplyResult) -> None:
        """Tell the listeners of changes made here outside the mount (a restore through the
        API), as for an applied batch: the mount drops those names from the kernel's cache."""
        self._applied(result)

    def _applied(self, result: ApplyResult) -> None:
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:  # a listener's bug must not stop replication
                log.exception("replication listener failed")

    def start(self) -> None:
        if self._tasks or not self.peers:
            return
        self._client = AsyncSiteCaller(max_connections=4 * len(self.peers))
        departed = self.meta.departed()
        for peer in self.peers:
            if peer.name in departed:
                log.info("replication: %s left the namespace; not pulling from it (remove its "
                         "[[peers]] entry from the config)", peer.name)
                continue
            link = PeerLink(self.meta, peer, self._client, self._applied,
                            max_clock_skew=self.max_clock_skew)
            self.links[peer.name] = link
            self._tasks.append(asyncio.create_task(link.run(), name=f"link-{peer.name}"))
        log.info("replication: pulling from %s", ", ".join(p.name for p in self.peers))

    async def retire(self, name: str) -> None:
        """``name`` leaves the namespace: stop pulling from it, now and after restarts."""
        link = self.links.pop(name, None)
        self.meta.mark_departed(name)
        for task in list(self._tasks):
            if task.get_name() == f"link-{name}":
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                self._tasks.remove(task)
        log.info("replication: %s left the namespace%s", name,
                 f" at entry {link.state.position}" if link else "")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def status(self) -> list[dict[str, object]]:
        return [link.state.as_dict() for link in self.links.values()]

    async def fetch_range(self, hash: str, start: int, length: int,
                          prefer: str | None = None,
                          accept: Callable[[str, bytes], Awaitable[bool]] | None = None,
                          ) -> bytes | None:
        """Bytes [start, start+length) of content ``hash`` from a peer that holds them (the
        site named ``prefer`` first: the content's origin), or None if none does now. Used
        for content whose upload to the bucket has not finished (docs/design.md, data flow
        step 6), and for a block the bucket served wrong. ``accept(peer, bytes)`` checks an
        answer; one it refuses is dropped and the next peer asked."""
        if self._client is None:
            return None
        order = sorted(self.peers, key=lambda p: p.name != prefer)
        for peer in order:
            try:
                response = await self._client.request(
                    peer, "GET", f"/content/{hash}",
                    headers={"Range": f"bytes={start}-{start + length - 1}"}, timeout=60.0)
            except MeridianError as exc:
                log.debug("content %s from %s: %s", hash[:12], peer.name, exc)
                continue
            if response.status_code not in (200, 206):
                continue
            if accept is None:
                if len(response.content) == length:
                    return response.content
            elif await accept(peer.name, response.content):
                return response.content
        return None

    async def fetch_block_hashes(self, hash: str, size: int,
                                 prefer: str | None = None) -> list[str] | None:
        """The hash of each block of content ``hash`` (``size`` bytes) from the first peer
        that can vouch for them (``GET content/{hash}/blocks``; ``prefer`` first), or None.
        The caller checks the list's shape; each block is then checked against it."""
        if self._client is None:
            return None
        for peer in sorted(self.peers, key=lambda p: p.name != prefer):
            try:
                response = await self._client.request(peer, "GET", f"/content/{hash}/blocks",
                                                      timeout=60.0)
            except MeridianError as exc:
                log.debug("block hashes of %s from %s: %s", hash[:12], peer.name, exc)
                continue
            if response.status_code != 200:
                continue
            try:
                doc = response.json()
            except ValueError:
                continue
            if not isinstance(doc, dict) or doc.get("size") != size:
                continue
            hashes = doc.get("block_hashes")
            if isinstance(hashes, list) and all(isinstance(h, str) for h in hashes):
                return hashes
        return None
