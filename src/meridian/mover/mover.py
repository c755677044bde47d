"""The mover: copies content between the site's local volume and the bucket.

Uploads: the queue lives in the metadata store (``set_content`` queues an upload in the same
transaction that records the content), so it survives a restart and a crash can never lose
one. Worker tasks take due uploads, highest priority first, send the content as fixed-size
blocks (in parallel, from worker threads), write the manifest last, then mark the content
complete in the bucket. A failed attempt is retried with exponential backoff (``retry_base``
doubling up to ``retry_max``), logged, and never blocks local writes.

Fetches: ``ensure_local`` brings the blocks that cover a byte range into a partial instance on
the local volume (ranged block GETs, so the first bytes of a large file arrive before the
rest), with one fetch in flight per block however many readers want it. Every fetched block
is checked against its own hash (``mover.verify``) before it is written to the volume, so no
read and no peer ever gets a byte that was not checked; a block that fails comes from the next
source (the bucket, then each peer), and when every source fails the read gets EIO and the log
names the content, the block and each source. Once every block is there the instance is
verified against the content hash once more and becomes complete.

A local instance becomes evictable only when this site has seen for itself that the bucket
holds the content: its own upload finished (``on_in_bucket``), or every block of a fetch came
from the bucket; otherwise the site is told (``on_maybe_in_bucket``) and checks the bucket.

All metadata calls happen on the event loop; threads only do blocking I/O (bucket and disk).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from meridian.content import LocalVolume, hash_bytes
from meridian.errors import (
    ContentError,
    ContentUnavailable,
    MeridianError,
    NoSpace,
    ObjectNotFound,
    ObjectStoreError,
)
from meridian.meta import MetaStore, PendingUpload
from meridian.mover.slots import FetchSlots
from meridian.mover.verify import BlockHashes, PeerHashes, block_problem, mismatch
from meridian.objects.layout import ContentBucket
from meridian.testpoints import reached_async

log = logging.getLogger(__name__)
_T = TypeVar("_T")
# (peer name, bytes) -> whether they are the block asked for (checked off the loop)
Accept = Callable[[str, bytes], Awaitable[bool]]
# (hash, start, length, accept) -> those bytes from a peer whose answer ``accept`` took, or
# None if no peer has them now
PeerFetch = Callable[[str, int, int, Accept], Awaitable[bytes | None]]


@dataclass(frozen=True)
class MoverStats:
    uploads_done: int
    uploads_failed: int
    bytes_uploaded: int
    fetches_done: int
    bytes_fetched: int
    uploads_in_flight: int
    queued: int


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a background future's failure as seen (its waiter, if any, got it already)."""
    if not future.cancelled():
        future.exception()


class Mover:
    """Not thread-safe: create and call it on the site's event loop."""

    def __init__(self, meta: MetaStore, volume: LocalVolume, bucket: ContentBucket, *,
                 upload_workers: int = 4, fetch_workers: int = 8, read_timeout: float = 60.0,
                 retry_base: float = 0.5, retry_max: float = 60.0, readahead_blocks: int = 4,
                 space_wait: float = 30.0,
                 on_in_bucket: Callable[[str], None] | None = None,
                 from_peers: PeerFetch | None = None,
                 hashes_from_peers: PeerHashes | None = None,
                 on_maybe_in_bucket: Callable[[str], None] | None = None,
                 may_upload: Callable[[str], bool] | None = None,
                 upload_held_until: Callable[[str], float | None] | None = None) -> None:
        self.meta = meta
        self.volume = volume
        self.bucket = bucket
        self.upload_workers = upload_workers
        self.read_timeout = read_timeout
        self.readahead_blocks = readahead_blocks
        self.space_wait = space_wait
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._on_in_bucket = on_in_bucket  # told of content this site saw complete in the bucket
        # told of a fetched content whose blocks did not all come from the bucket (to check it)
        self._on_maybe_in_bucket = on_maybe_in_bucket
        # bytes of content not in the bucket yet, from the site that wrote it (or None)
        self.from_peers = from_peers
        # asked before each upload: content an objective confines to this site stays here
        self.may_upload = may_upload
        # asked before each upload: until when a peer's garbage collection holds it back
        self.upload_held_until = upload_held_until
        self._pool = ThreadPoolExecutor(max_workers=upload_workers * 2 + fetch_workers,
                                        thread_name_prefix="mover")
        self._fetch_slots = FetchSlots(fetch_workers)  # a reader's blocks before read-ahead
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._finishing: set[str] = set()
        self._marks: list[tuple[str, asyncio.Future[None]]] = []  # uploaded, to record
        self._marking: asyncio.Task[None] | None = None
        self._block_fetches: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._from_bucket: dict[str, set[int]] = {}  # blocks of a fetch that came from the bucket
        # learning block hashes (manifests, hashing a local copy for a peer) has threads of
        # its own: it never queues behind block transfers, nor they behind it
        self._aside = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mover-hashes")
        self.block_hashes = BlockHashes(bucket, volume, self._run_aside,
                                        read_timeout=read_timeout, from_peers=hashes_from_peers)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.uploads_done = self.uploads_failed = self.bytes_uploaded = 0
        self.fetches_done = self.bytes_fetched = self.peer_fetches = self.rejected_blocks = 0

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the upload workers (idempotent)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._upload_worker(i), name=f"upload-{i}")
                           for i in range(self.upload_workers)]
            self._tasks.append(asyncio.create_task(self._report(), name="mover-report"))

    async def _report(self, every: float = 30.0) -> None:
        """Log a line of transfer activity every ``every`` seconds while there is any."""
        last = self.stats()
        while not self._stopping:
            await asyncio.sleep(every)
            now = self.stats()
            if now == last:
                continue
            log.info("mover: uploaded %d (%.1f MB), fetched %d blocks (%.1f MB), %d failed "
                     "attempts in the last %.0fs; %d queued",
                     now.uploads_done - last.uploads_done,
                     (now.bytes_uploaded - last.bytes_uploaded) / 1e6,
                     now.fetches_done - last.fetches_done,
                     (now.bytes_fetched - last.bytes_fetched) / 1e6,
                     now.uploads_failed - last.uploads_failed, every, now.queued)
            last = now

    def uploading(self, hash: str) -> bool:
        """Whether an upload of ``hash`` has started and not finished (loop thread)."""
        return hash in self._in_flight

    def wake(self) -> None:
        """New uploads were queued: let idle workers look now rather than at their next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the workers; an upload cut short is simply tried again at the next start."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._aside.shutdown(wait=True, cancel_futures=True)

    def stats(self) -> MoverStats:
        return MoverStats(self.uploads_done, self.uploads_failed, self.bytes_uploaded,
                          self.fetches_done, self.bytes_fetched, len(self._in_flight),
                          self.meta.upload_count())

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run blocking I/O on the mover's thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _run_aside(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run blocking work for block hashes on their own threads."""
        return await asyncio.get_running_loop().run_in_executor(self._aside, fn, *args)

    # -- uploads ----------------------------------------------------------------------------
    def _next_upload(self) -> PendingUpload | None:
        for upload in self.meta.pending_uploads(limit=self.upload_workers * 4, now=time.time()):
            if upload.hash not in self._in_flight:
                return upload
        return None

    async def _upload_worker(self, number: int) -> None:
        while not self._stopping:
            upload = self._next_upload()
            if upload is None:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                continue
            self._in_flight.add(upload.hash)
            try:
                await self._upload(upload)
            finally:
                self._in_flight.discard(upload.hash)

    async def _upload(self, upload: PendingUpload) -> None:
        started = time.monotonic()
        if self.may_upload is not None and not self.may_upload(upload.hash):
            self.meta.upload_failed(upload.hash, time.time() + 3600,
                                    "held: an objective confines this content to this site")
            return
        held = self.upload_held_until(upload.hash) if self.upload_held_until else None
        if held is not None:  # a collector is deleting the old copy: upload after it
            self.meta.upload_failed(upload.hash, held + 0.1,
                                    "held: garbage collection is deleting an earlier copy "
                                    "from the bucket; uploading again after that")
            return
        try:
            if not self.volume.has(upload.hash):
                raise ContentError(f"content {upload.hash[:12]} is queued for upload "
                                   "but has no complete local instance")
            blocks = self.bucket.block_count(upload.size)
            path = self.volume.path_of(upload.hash)
            hashes = await asyncio.gather(*(self._run(self._put_block, upload.hash, path, i)
                                            for i in range(blocks)))
            if blocks == 1 and hashes[0] != upload.hash:  # the manifest would refuse it too
                raise ContentError(f"local instance of {upload.hash[:12]} hashes to "
                                   f"{hashes[0][:12]}: corrupt on this site's disk")
            await self._run(self.bucket.finish, upload.hash, upload.size, hashes)
            await reached_async("mover.uploaded")  # in the bucket; not recorded so yet
            self.block_hashes.remember(upload.hash, hashes)
        except (MeridianError, OSError) as exc:
            self.uploads_failed += 1
            delay = min(self.retry_max, self.retry_base * 2 ** upload.attempts)
            delay *= 1 + random.random() * 0.1
            self.meta.upload_failed(upload.hash, time.time() + delay, str(exc))
            log.warning("upload of %s failed (attempt %d), retrying in %.1fs: %s",
                        upload.hash[:12], upload.attempts + 1, delay, exc)
            return
        await self._mark_in_bucket(upload.hash)
        if upload.attempts:
            log.info("upload of %s succeeded after %d failed attempts", upload.hash[:12],
                     upload.attempts)
        self.uploads_done += 1
        self.bytes_uploaded += upload.size
        log.debug("uploaded %s (%d bytes, %d blocks) in %.2fs", upload.hash[:12], upload.size,
                 self.bucket.block_count(upload.size), time.monotonic() - started)
        if self._on_in_bucket is not None:
            self._on_in_bucket(upload.hash)

    async def _mark_in_bucket(self, hash: str) -> None:
        """Record ``hash`` as in the bucket; returns once that is durable. Uploads finishing
        at the same moment share one durable commit (one fsync instead of one each). The
        upload stays in flight until then, so no worker takes it up again."""
        done = asyncio.get_running_loop().create_future()
        self._marks.append((hash, done))
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._mark_batches(), name="mark-in-bucket")
        await done

    async def _mark_batches(self) -> None:
        await asyncio.sleep(0)  # uploads completing in this same turn of the loop join in
        while self._marks:
            batch, self._marks = self._marks, []
            try:  # the fsync on a thread of its own: the event loop serves the mount meanwhile
                self.meta.mark_all_in_bucket([hash for hash, _ in batch], durable=False)
                await self._run_aside(self.meta.syncer())
            except Exception as exc:  # each waiting upload sees the failure
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _put_block(self, hash: str, path: os.PathLike[str] | str, index: int) -> str:
        """Upload one block; return its hash (for the manifest)."""
        size = self.bucket.block_size
        with open(path, "rb") as f:
            f.seek(index * size)
            data = f.read(size)
        self.bucket.put_block(hash, index, data)
        return hash_bytes(data)

    async def wait_for_upload(self, timeout: float) -> bool:
        """Wait until one more upload completes (True), or until ``timeout`` passes or no
        upload is queued any more (False). A write that found the volume full of content not
        yet in the bucket waits here: once uploaded, that content can be evicted."""
        deadline = time.monotonic() + timeout
        done = self.uploads_done
        while self.uploads_done == done:
            if time.monotonic() > deadline or not (self.meta.upload_count() or self._in_flight):
                return False
            self.wake()
            await asyncio.sleep(0.02)
        return True

    async def drain(self, timeout: float = 60.0) -> bool:
        """Wait until the upload queue is empty (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self.meta.upload_count() or self._in_flight:
            if time.monotonic() > deadline:
                return False
            self.wake()
            await asyncio.sleep(0.05)
        return True

    # -- fetches ----------------------------------------------------------------------------
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

    async def _write_waiting_for_space(self, hash: str, start: int, data: bytes) -> None:
        """Store fetched bytes; when the volume is full of content still on its way to the
        bucket, wait (up to ``space_wait``) for uploads to make some of it evictable."""
        deadline = time.monotonic() + self.space_wait
        while True:
            try:
                await self._run(self.volume.write_partial, hash, start, data)
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
        first). A source whose bytes fail the check is logged (content, block, source) and
        the next one asked; when no source has the block (the upload at the writing site is
        not done), all are asked again until ``read_timeout``. When sources served the block
        but none correctly, one more round is tried (a fault on the wire does not repeat),
        then ContentUnavailable: the reader gets EIO, never wrong bytes."""
        deadline = time.monotonic() + self.read_timeout
        attempt = rounds_with_bad = 0
        where = f"content {hash[:12]} block {index}"
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
                want = expected

                async def accept(peer: str, offered: bytes) -> bool:
                    trouble = await self._run(block_problem, offered, length, want)
                    if trouble is not None:
                        self._rejected(hash, index, f"peer {peer}", trouble)
                        bad.append(f"peer {peer}")
                    return trouble is None

                offered = await self.from_peers(hash, start, length, accept)
                if offered is not None:
                    self.peer_fetches += 1
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
        self.volume.begin_partial(hash, size)
        await self._write_waiting_for_space(hash, start, data)
        if from_bucket:
            seen = self._from_bucket.setdefault(hash, set())
            if not seen and self._on_maybe_in_bucket is not None and size > block:
                self._on_maybe_in_bucket(hash)  # its partial instance may go once checked
            seen.add(index)
        self.fetches_done += 1
        self.bytes_fetched += length
        if hash not in self._finishing and not self.volume.missing(hash, 0, size):
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
