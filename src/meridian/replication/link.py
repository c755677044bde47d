"""One peer link: pull a peer's journal continuously and apply it here.

The link reads ``GET {peer}/journal?after=<position>&stream=true``: one request that brings a
batch of entries as soon as they commit at the peer, for ``STREAM_SECONDS``, then another
(``meridian.api.journal`` describes the answer). Each batch's entries are applied in one store
transaction together with the new position (``MetaStore.apply_entries``),
so a crash never leaves the position past an entry that was not applied, and an entry pulled
twice changes nothing the second time. Calls go through ``meridian.sitecall`` (TLS, this
site's credential for the peer). A link that fails (peer down, network cut, credential
refused) retries with exponential backoff and says so in the log once per state change, not once per
attempt. Sites never wait for each other (docs/design.md, rule 1): a dead link only delays what
this site hears from that peer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meridian.errors import InvalidJournalEntry
from meridian.meta import (JOURNAL_FORMAT, JOURNAL_STREAM_MEDIA_TYPE, JournalEntry, MetaStore,
                           check_entry, entry_from_wire)
from meridian.meta import ApplyResult
from meridian.sitecall import AsyncSiteCaller, CallRefused, SiteEndpoint
from meridian.sitecall.client import answer_error

log = logging.getLogger(__name__)

STREAM_SECONDS = 20.0  # seconds one journal stream lasts; then the link asks again
BATCH = 2000  # entries per pull
DEFAULT_MAX_CLOCK_SKEW = 60.0  # seconds a peer's clock may be ahead ([replication])
REFUSED_RETRY = 60.0  # seconds between looks at a peer whose entry was refused


Peer = SiteEndpoint  # a site this site pulls from: name, API URL, credential, CA


@dataclass
class LinkState:
    """What ``status`` shows of one link."""

    peer: str
    url: str
    connected: bool = False
    error: str = ""
    position: int = 0  # the peer's journal sequence up to which this site has taken entries
    peer_last_seq: int = 0  # the peer's newest entry, as of the last answer
    applied: int = 0  # entries applied through this link since start
    caught_up_at: float = 0.0  # when the position last reached the peer's newest entry
    paused: bool = False
    refused: bool = False  # stopped: the peer sent an entry this site will not apply

    @property
    def entries_behind(self) -> int:
        return max(0, self.peer_last_seq - self.position)

    @property
    def seconds_behind(self) -> float:
        if self.entries_behind == 0 and self.connected:
            return 0.0
        return time.time() - self.caught_up_at if self.caught_up_at else float("inf")

    def as_dict(self) -> dict[str, Any]:
        behind = self.seconds_behind
        return {"peer": self.peer, "url": self.url, "connected": self.connected,
                "error": self.error, "position": self.position,
                "peer_last_seq": self.peer_last_seq, "entries_behind": self.entries_behind,
                "seconds_behind": None if behind == float("inf") else round(behind, 3),
                "applied": self.applied, "paused": self.paused, "refused": self.refused}


class EntryRefused(Exception):
    """A peer sent an entry this site will not apply (nothing of its batch is applied)."""


def entries_of(body: dict[str, Any], peer: str, after: int, *,
               max_ahead_ms: int | None) -> list[JournalEntry]:
    """The entries of one journal answer, each checked as strictly as a local change
    (``meta.journal.check_entry``), in strictly increasing ``seq`` after ``after``. Raises
    EntryRefused naming the peer, the entry's origin, origin sequence and seq, and the field."""
    fmt = body.get("format", 1)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt > JOURNAL_FORMAT:
        raise EntryRefused(f"{peer} speaks journal format {fmt!r}; this site reads formats up "
                           f"to {JOURNAL_FORMAT}: upgrade this site")
    raw_entries = body.get("entries")
    if not isinstance(raw_entries, list):
        raise EntryRefused(f"{peer} answered without a list of entries")
    entries = []
    previous = after
    for raw in raw_entries:
        try:
            entry = entry_from_wire(raw)
            check_entry(entry, max_ahead_ms=max_ahead_ms)
            if entry.seq <= previous:
                raise InvalidJournalEntry("seq", f"{entry.seq} does not follow {previous}")
        except InvalidJournalEntry as exc:
            where = raw if isinstance(raw, dict) else {}
            raise EntryRefused(
                f"{peer} sent an invalid entry {where.get('origin', '?')!s:.64}/"
                f"{where.get('origin_seq', '?')!s:.20} (seq {where.get('seq', '?')!s:.20} in its "
                f"journal): {exc}; nothing of its batch was applied") from None
        previous = entry.seq
        entries.append(entry)
    return entries


class PeerLink:
    """Pulls one peer. ``on_applied`` is called (on the loop) after each applied batch."""

    def __init__(self, meta: MetaStore, peer: Peer, client: AsyncSiteCaller,
                 on_applied: Callable[[ApplyResult], None], *, retry_max: float = 10.0,
                 max_clock_skew: float | None = DEFAULT_MAX_CLOCK_SKEW,
                 refused_retry: float = REFUSED_RETRY) -> None:
        self.meta = meta
        self.max_ahead_ms = None if max_clock_skew is None else int(max_clock_skew * 1000)
        self.refused_retry = refused_retry
        self.peer = peer
        self.client = client
        self.on_applied = on_applied
        self.retry_max = retry_max
        self.state = LinkState(peer.name, peer.url, position=meta.peer_position(peer.name))
        self._resume = asyncio.Event()
        self._resume.set()
        self._ever_connected = False
        self._failures = 0  # failed pulls in a row

    def pause(self) -> None:
        """Stop pulling: a batch that comes after this is not applied (tests cut links
        with it)."""
        self.state.paused = True
        self._resume.clear()

    def resume(self) -> None:
        self.state.paused = False
        self._resume.set()

    async def run(self) -> None:
        """Pull until cancelled."""
        while True:
            await self._resume.wait()
            try:
                gap = await self.follow()
            except asyncio.CancelledError:
                raise
            except EntryRefused as exc:  # stopped: the same batch would be refused again
                self._refused(str(exc))
                await asyncio.sleep(self.refused_retry)
                continue
            except Exception as exc:  # any failure of one pull: retry, never die
                self._failures += 1
                self._failed(exc)
                delay = min(self.retry_max, 0.25 * 2 ** min(self._failures, 8))
                if not self._ever_connected:  # a peer starting up: look again soon
                    delay = min(delay, 1.0)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                continue
            if gap:  # entries of a third site we lack: they come through another link
                await asyncio.sleep(0.5)

    async def follow(self) -> bool:
        """Read the peer's journal as a stream of batches (``stream=true``: one request for up
        to ``STREAM_SECONDS``, a batch as soon as entries commit there) and apply each as it
        comes; True if a batch stopped at a gap. A peer that does not stream answers one
        batch, applied the same way. Once the link is paused, the next batch is not applied.
        Raises on any network or protocol failure (what was applied before it stays)."""
        position = self.meta.peer_position(self.peer.name)
        params = {"after": position, "limit": BATCH, "wait": STREAM_SECONDS,
                  "skip_origin": self.meta.site_name, "stream": "true"}
        async with self.client.stream(self.peer, "GET", "/journal", params=params,
                                      timeout=STREAM_SECONDS + 15.0) as response:
            error = answer_error(self.peer, response)
            if isinstance(error, CallRefused) and error.status == 401:
                raise CallRefused(f"{self.peer.name} refused this site's credential for it "
                                  f"(`meridian peer add {self.peer.name}` exchanges them)", 401)
            if error is not None:
                raise error
            if not response.headers.get("content-type", "").startswith(JOURNAL_STREAM_MEDIA_TYPE):
                await response.aread()  # one batch, read whole (a peer that does not stream)
                return self._take(response.json(), position)
            async for line in response.aiter_lines():
                if self.state.paused:
                    return False
                if line.strip():
                    if self._take(json.loads(line), position):
                        return True
                    position = self.state.position
        return False

    def _take(self, body: Any, position: int) -> bool:
        """Check and apply one batch read after ``position``; True if it stopped at a gap.
        Raises EntryRefused when the batch is not one (nothing of it applied)."""
        if not isinstance(body, dict):
            raise EntryRefused(f"{self.peer.name} answered a journal pull with "
                               f"{type(body).__name__}, not an object")
        entries = entries_of(body, self.peer.name, position, max_ahead_ms=self.max_ahead_ms)
        last_seq, through = body.get("last_seq"), body.get("through", entries[-1].seq if entries
                                                           else position)
        if not isinstance(last_seq, int) or not isinstance(through, int) or (
                entries and through < entries[-1].seq):
            raise EntryRefused(f"{self.peer.name} answered a journal pull with last_seq "
                               f"{last_seq!r:.20} and through {through!r:.20}")
        self.state.peer_last_seq = last_seq
        if entries or through > position:
            result = self.meta.apply_entries(self.peer.name, entries, through=through)
            self.state.applied += result.applied
            if result.applied or result.names or result.inodes:
                self.on_applied(result)
        else:
            result = ApplyResult()
        self.state.position = self.meta.peer_position(self.peer.name)
        if self.state.position >= self.state.peer_last_seq:
            self.state.caught_up_at = time.time()
        self._answered()
        return result.gap

    def _answered(self) -> None:
        """A batch came and was taken: the link is up."""
        if not self.state.connected or self.state.error:
            log.info("link to %s (%s): connected, at %d of %d", self.peer.name,
                     self.peer.url, self.state.position, self.state.peer_last_seq)
        self._failures = 0
        self._ever_connected = True
        self.state.connected, self.state.error, self.state.refused = True, "", False

    def _refused(self, message: str) -> None:
        """The peer sent what this site will not apply: the link stops (it looks again every
        ``refused_retry`` seconds, in case the peer was mended) and says so once."""
        if self.state.error != message:
            log.error("link to %s (%s) stopped: %s", self.peer.name, self.peer.url, message)
        self.state.connected, self.state.refused, self.state.error = False, True, message

    def _failed(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.state.connected or self.state.error != message:
            log.warning("link to %s (%s) failed: %s; retrying", self.peer.name, self.peer.url,
                        message)
        self.state.connected = False
        self.state.error = message
