"""The mover's fetch half: brings content from the bucket (or a peer) onto the local volume.

``ensure_local`` brings the blocks that cover a byte range into a partial instance on the
local volume (ranged block GETs, so the first bytes of a large file arrive before the rest),
with one fetch in flight per block however many readers want it; a content of one block is
installed complete at once, with one fsync (``LocalVolume.add_fetched``). Every fetched block is
checked against its own hash (``mover.verify``) before it is written to the volume, so no read
and no peer ever gets a byte that was not checked; a block that fails comes from the next
source (the bucket, then each peer), and when every source fails the read gets EIO and the log
names the content, the block and each source. Once every block is there the instance is
verified against the content hash once more and becomes complete.

A local instance becomes evictable only when this site has seen for itself that the bucket
holds the content: every block of a fetch came from the bucket (``on_in_bucket``); otherwise
the site is told (``on_maybe_in_bucket``) and checks the bucket.

All metadata calls happen on the event loop; threads only do blocking I/O (bucket and disk).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from meridian.content import LocalVolume, hash_bytes
from meridian.errors import ContentUnavailable, NoSpace, ObjectNotFound, ObjectStoreError
from meridian.mover.slots import FetchSlots
from meridian.mover.verify import BlockHashes, Runner, block_problem, mismatch
from meridian.objects.layout import ContentBucket

log = logging.getLogger("meridian.mover.mover")  # the name operators already filter on
# (peer name, bytes) -> whether they are the block asked for (checked off the loop)
Accept = Callable[[str, bytes], Awaitable[bool]]
# (hash, start, length, accept) -> those bytes from a peer whose answer ``accept`` took, or
# None if no peer has them now
PeerFetch = Callable[[str, int, int, Accept], Awaitable[bytes | None]]
# (seconds) -> whether an upload finished meanwhile (room may have become evictable)
UploadWait = Callable[[float], Awaitable[bool]]
# how long peers asked first (content not known in the bucket yet) may take before the
# bucket is tried: a peer that is down or slow never holds a read up longer than this
PEERS_FIRST_TIMEOUT = 2.0


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a background future's failure as seen (its waiter, if any, got it already)."""
    if not future.cancelled():
        future.exception()


class Fetcher:
    """Not thread-safe: create and call it on the site's event loop. ``run`` runs blocking
    I/O on the mover's transfer threads."""

    def __init__(self, volume: LocalVolume, bucket: ContentBucket, block_hashes: BlockHashes,
                 run: Runner, *, fetch_workers: int, read_timeout: float, retry_base: float,
                 retry_max: float, readahead_blocks: int, space_wait: float,
                 wait_for_upload: UploadWait,
                 on_in_bucket: Callable[[str], None] | None = None,
                 from_peers: PeerFetch | None = None,
                 on_maybe_in_bucket: Callable[[str], None] | None = None,
                 known_in_bucket: Callable[[str], bool] | None = None) -> None:
        self.volume = volume
        self.bucket = bucket
        self.block_hashes = block_hashes
        self._run = run
        self.read_timeout = read_timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.readahead_blocks = readahead_blocks
        self.space_wait = space_wait
        self.wait_for_upload = wait_for_upload
        self._on_in_bucket = on_in_bucket
        self._on_maybe_in_bucket = on_maybe_in_bucket
        self.from_peers = from_peers
        # whether this site has learnt that the bucket holds a content (its own upload, or a
        # peer's instance entry); one it has not is asked of peers first
        self._known_in_bucket = known_in_bucket
        self._fetch_slots = FetchSlots(fetch_workers)  # a reader's blocks before read-ahead
        self._finishing: set[str] = set()
        self._block_fetches: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._from_bucket: dict[str, set[int]] = {}  # blocks of a fetch that came from the bucket
        # one-block contents readers wait for in read_checked: their checked bytes, once here
        self._checked: dict[str, asyncio.Future[bytes]] = {}
        self.fetches_done = self.bytes_fetched = self.peer_fetches = self.rejected_blocks = 0

    async def ensure_local(self, hash: str, size: int, start: int, end: int,
                           timeout: float | None = None) -> None:
        """Return once bytes [start, end) of content ``hash`` are on the local volume.

        Fetches the blocks that cover the range (in parallel, each once however many readers
        wait for it). Raises ContentUnavailable after ``timeout`` (default: the mover's
        ``read_timeout``) or when the bucket does not have the content.
        """
        if self.volume.has(hash):
            return
        end = min(end, size)
        if start >= end:
            return
        block = self.bucket.block_size
        wanted = range(start // block, (end - 1) // block + 1)
        self._read_ahead(hash, size, wanted.stop, self.readahead_blocks)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self._demanded(hash, size, i) for i in wanted)),
                timeout if timeout is not None else self.read_timeout)
        except TimeoutError:
            log.error("read of %s [%d, %d) timed out after %.0fs waiting for the bucket",
                      hash[:12], start, end, timeout or self.read_timeout)
            raise ContentUnavailable(f"content {hash[:12]} not fetched in time") from None

    async def read_checked(self, hash: str, size: int, start: int, end: int) -> bytes | None:
        """For a reader of a content of one block that is not local: bytes [start, end) as
        soon as the fetched block is checked against the content's hash, without waiting for
        the volume's fsync of it (which goes on; a disk busy with others' writes can stall
        it for a quarter of a second). None for other content, or when the content turned
        out to be local meanwhile: read it from the volume. Raises as ``ensure_local``."""
        if size > self.bucket.block_size or self.volume.has(hash):
            return None
        end = min(end, size)
        if start >= end:
            return b""
        checked = self._checked.get(hash)
        if checked is None:
            checked = self._checked[hash] = asyncio.get_running_loop().create_future()
        fetch = asyncio.ensure_future(self.ensure_local(hash, size, 0, size))

        def forget(_: object) -> None:  # the fetch is over: nobody will set it any more
            if self._checked.get(hash) is checked:
                del self._checked[hash]

        fetch.add_done_callback(forget)
        waiting: set[asyncio.Future[Any]] = {checked, fetch}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if checked.done() and not checked.cancelled():
            fetch.add_done_callback(_retrieve)  # installing it goes on; failures are logged
            return checked.result()[start:end]
        await fetch  # raises what the fetch raised; else the content is on the volume
        return None

    async def _demanded(self, hash: str, size: int, index: int) -> None:
        """A block a reader waits for: urgent, so it is fetched before read-ahead."""
        async with self._fetch_slots.urgent((hash, index)):
            await self._block(hash, size, index)

    def _read_ahead(self, hash: str, size: int, first: int, count: int) -> None:
        """Start fetching blocks ``first .. first+count-1`` without waiting for them, so a
        reader going forward finds them local (or in flight) when it gets there."""
        last = min(first + count, self.bucket.block_count(size))
        for index in range(first, last):
            if (hash, index) not in self._block_fetches:
                self._block(hash, size, index).add_done_callback(self._log_background_failure)

    async def prefetch(self, hash: str, size: int) -> None:
        """Fetch a whole content in the background (sequence read-ahead); errors are logged."""
        if self.volume.has(hash):
            return
        self._read_ahead(hash, size, 0, self.bucket.block_count(size))

    @staticmethod
    def _log_background_failure(future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.warning("read-ahead fetch failed: %s", future.exception())

    def _block(self, hash: str, size: int, index: int) -> asyncio.Future[None]:
        key = (hash, index)
        future = self._block_fetches.get(key)
        if future is None:
            future = asyncio.ensure_future(self._fetch_block(hash, size, index))
            self._block_fetches[key] = future
            future.add_done_callback(lambda f: self._block_done(key, f))
        return asyncio.shield(future)

    async def _store_waiting_for_space(self, store: Callable[..., object],
                                       *args: object) -> None:
        """Store fetched bytes with ``store(*args)`` on a transfer thread; when the volume is
        full of content still on its way to the bucket, wait (up to ``space_wait``) for
        uploads to make some of it evictable."""
        deadline = time.monotonic() + self.space_wait
        while True:
            try:
                await self._run(store, *args)
                return
            except NoSpace:
                left = deadline - time.monotonic()
                if left <= 0 or not await self.wait_for_upload(left):
                    raise

    def _block_done(self, key: tuple[str, int], future: asyncio.Future[None]) -> None:
        self._block_fetches.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved here; readers get it through their shield

    async def _get_block(self, hash: str, index: int, start: int, length: int,
                         expected: str | asyncio.Future[tuple[str, ...]]) -> tuple[bytes, bool]:
        """One block's bytes, checked against its hash ``expected`` (or the content's block
        hashes, still being learnt: the first GET goes out meanwhile), and whether they came
        from the bucket. Sources in turn: the bucket, then each peer (the content's origin
        first); but while this site has not learnt that the bucket holds the content (its
        upload at the writing site is under way: the usual case for a file just written
        elsewhere), peers are asked first, for up to ``PEERS_FIRST_TIMEOUT`` seconds, which
        saves a GET the bucket would answer "not found". A source whose bytes fail the check
        is logged (content, block, source) and the next one asked; when no source has the
        block (the upload at the writing site is not done), all are asked again until
        ``read_timeout``. When sources served the block but none correctly, one more round is
        tried (a fault on the wire does not repeat), then ContentUnavailable: the reader gets
        EIO, never wrong bytes."""
        deadline = time.monotonic() + self.read_timeout
        attempt = rounds_with_bad = 0
        where = f"content {hash[:12]} block {index}"
        if (self.from_peers is not None and self._known_in_bucket is not None
                and not self._known_in_bucket(hash)):
            if not isinstance(expected, str):
                expected = (await expected)[index]
            try:
                early = await asyncio.wait_for(
                    self._ask_peers(hash, index, start, length, expected, []),
                    PEERS_FIRST_TIMEOUT)
            except TimeoutError:
                early = None
            if early is not None:
                return early, False
        while True:
            bad: list[str] = []
            missing: Exception | None = None
            try:
                data, actual = await self._run(self._hashed_bucket_block, hash, index)
                if not isinstance(expected, str):  # the GET overlapped learning the hashes
                    expected = (await expected)[index]
                problem = mismatch(len(data), actual, length, expected)
            except ObjectNotFound as exc:
                missing = exc
            except ObjectStoreError as exc:
                attempt += 1
                if attempt >= 5:
                    raise ContentUnavailable(f"{where}: {exc}") from exc
                delay = min(self.retry_max, self.retry_base * 2 ** attempt)
                log.warning("fetch of %s block %d failed, retrying in %.1fs: %s",
                            hash[:12], index, delay, exc)
                await asyncio.sleep(delay)
                continue
            else:
                if problem is None:
                    return data, True
                self._rejected(hash, index, "the bucket", problem)
                bad.append("the bucket")
            if self.from_peers is not None:
                if not isinstance(expected, str):
                    expected = (await expected)[index]
                offered = await self._ask_peers(hash, index, start, length, expected, bad)
                if offered is not None:
                    return offered, False
            if bad:
                rounds_with_bad += 1
                if rounds_with_bad >= 2 or time.monotonic() > deadline:
                    log.error("%s: no source served it correctly (%s): the read fails",
                              where, ", ".join(bad))
                    raise ContentUnavailable(f"{where}: no source served it correctly "
                                             f"({', '.join(bad)})")
            elif self.from_peers is None:  # nobody else could have it: missing is missing
                raise ContentUnavailable(f"{where} is not in the bucket: {missing}")
            elif time.monotonic() > deadline:
                raise ContentUnavailable(f"{where} is neither in the bucket nor at a reachable "
                                         f"peer: {missing}")
            await asyncio.sleep(0.25)

    async def _ask_peers(self, hash: str, index: int, start: int, length: int, want: str,
                         bad: list[str]) -> bytes | None:
        """A block from the first peer whose bytes match ``want`` (the origin first), or None;
        each peer whose bytes do not is logged and added to ``bad``."""
        assert self.from_peers is not None

        async def accept(peer: str, offered: bytes) -> bool:
            trouble = await self._run(block_problem, offered, length, want)
            if trouble is not None:
                self._rejected(hash, index, f"peer {peer}", trouble)
                bad.append(f"peer {peer}")
            return trouble is None

        offered = await self.from_peers(hash, start, length, accept)
        if offered is not None:
            self.peer_fetches += 1
        return offered

    def _hashed_bucket_block(self, hash: str, index: int) -> tuple[bytes, str]:
        """A block from the bucket and its hash, in one go on a transfer thread."""
        data = self.bucket.get_block(hash, index)
        return data, hash_bytes(data)

    def _rejected(self, hash: str, index: int, source: str, problem: str) -> None:
        self.rejected_blocks += 1
        log.error("content %s block %d from %s failed verification (%s): not used, trying "
                  "another source", hash, index, source, problem)

    async def _fetch_block(self, hash: str, size: int, index: int) -> None:
        block = self.bucket.block_size
        start = index * block
        length = min(block, size - start)
        if self.volume.has(hash) or not self.volume.missing(hash, start, start + length):
            return
        known = self.block_hashes.known(hash, size)
        expected: str | asyncio.Future[tuple[str, ...]]
        if known is not None:
            expected = known[index]
        else:
            expected = asyncio.ensure_future(self.block_hashes.of(hash, size))
            expected.add_done_callback(_retrieve)
        try:
            async with self._fetch_slots.slot((hash, index)):
                data, from_bucket = await self._get_block(hash, index, start, length, expected)
        finally:
            if not isinstance(expected, str):
                expected.cancel()  # no-op once done; the shared resolution is shielded
        whole = length == size
        if whole:  # the content in one piece: complete at once, one fsync (add_fetched)
            checked = self._checked.pop(hash, None)
            if checked is not None and not checked.done():
                checked.set_result(data)  # readers waiting in read_checked have it now
            await self._store_waiting_for_space(self.volume.add_fetched, hash, data)
        else:  # its fsyncs on a transfer thread: the loop serves the mount meanwhile
            await self._run(self.volume.begin_partial, hash, size)
            await self._store_waiting_for_space(self.volume.write_partial, hash, start, data)
        if from_bucket:
            seen = self._from_bucket.setdefault(hash, set())
            if not seen and self._on_maybe_in_bucket is not None and size > block:
                self._on_maybe_in_bucket(hash)  # its partial instance may go once checked
            seen.add(index)
        self.fetches_done += 1
        self.bytes_fetched += length
        if whole:
            self._fetched(hash, size)
        elif hash not in self._finishing and not self.volume.missing(hash, 0, size):
            self._finishing.add(hash)
            try:
                await self._run(self.volume.finish_partial, hash)
            finally:
                self._finishing.discard(hash)
            self._fetched(hash, size)

    def _fetched(self, hash: str, size: int) -> None:
        """A fetch completed: evictable at once if every block came from the bucket (this
        site saw the bucket hold each one); otherwise the site checks the bucket."""
        from_bucket = self._from_bucket.pop(hash, set())
        if len(from_bucket) == self.bucket.block_count(size):
            if self._on_in_bucket is not None:
                self._on_in_bucket(hash)
        elif self._on_maybe_in_bucket is not None:
            self._on_maybe_in_bucket(hash)
