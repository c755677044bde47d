"""The mover: copies content between the site's local volume and the bucket.

Uploads: the queue lives in the metadata store (``set_content`` queues an upload in the same
transaction that records the content), so it survives a restart and a crash can never lose
one. Worker tasks take due uploads, highest priority first, send the content as fixed-size
blocks (in parallel, from worker threads), write the manifest last, then mark the content
complete in the bucket. A failed attempt is retried with exponential backoff (``retry_base``
doubling up to ``retry_max``), logged, and never blocks local writes.

Fetches (``ensure_local``, ``prefetch``) are the fetch half's (``mover.fetch``), which shares
the mover's transfer threads and block hash lists. A local instance becomes evictable only
when this site has seen for itself that the bucket holds the content: its own upload finished
(``on_in_bucket``), or every block of a fetch came from the bucket.

All metadata calls happen on the event loop; threads only do blocking I/O (bucket and disk).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from meridian.content import LocalVolume, hash_bytes
from meridian.errors import ContentError, MeridianError
from meridian.meta import MetaStore, PendingUpload
from meridian.mover.fetch import Fetcher, PeerFetch
from meridian.mover.verify import BlockHashes, PeerHashes
from meridian.objects.layout import ContentBucket
from meridian.testpoints import reached_async

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class MoverStats:
    uploads_done: int
    uploads_failed: int
    bytes_uploaded: int
    fetches_done: int
    bytes_fetched: int
    uploads_in_flight: int
    queued: int


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
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._on_in_bucket = on_in_bucket  # told of content this site saw complete in the bucket
        # asked before each upload: content an objective confines to this site stays here
        self.may_upload = may_upload
        # asked before each upload: until when a peer's garbage collection holds it back
        self.upload_held_until = upload_held_until
        self._pool = ThreadPoolExecutor(max_workers=upload_workers * 2 + fetch_workers,
                                        thread_name_prefix="mover")
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._marks: list[tuple[str, asyncio.Future[None]]] = []  # uploaded, to record
        self._marking: asyncio.Task[None] | None = None
        # learning block hashes (manifests, hashing a local copy for a peer) has threads of
        # its own: it never queues behind block transfers, nor they behind it
        self._aside = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mover-hashes")
        self.block_hashes = BlockHashes(bucket, volume, self._run_aside,
                                        read_timeout=read_timeout, from_peers=hashes_from_peers)
        # bytes of content not in the bucket yet come from the site that wrote it (from_peers);
        # a fetched content whose blocks did not all come from the bucket is reported to
        # on_maybe_in_bucket, so the site checks the bucket before its copy may go
        self.fetcher = Fetcher(volume, bucket, self.block_hashes, self._run,
                               fetch_workers=fetch_workers, read_timeout=read_timeout,
                               retry_base=retry_base, retry_max=retry_max,
                               readahead_blocks=readahead_blocks, space_wait=space_wait,
                               wait_for_upload=self.wait_for_upload, on_in_bucket=on_in_bucket,
                               from_peers=from_peers, on_maybe_in_bucket=on_maybe_in_bucket,
                               known_in_bucket=meta.in_bucket)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.uploads_done = self.uploads_failed = self.bytes_uploaded = 0

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
                          self.fetcher.fetches_done, self.fetcher.bytes_fetched,
                          len(self._in_flight), self.meta.upload_count())

    # -- fetches (the fetch half's) ---------------------------------------------------------
    async def ensure_local(self, hash: str, size: int, start: int, end: int,
                           timeout: float | None = None) -> None:
        """See :meth:`Fetcher.ensure_local`."""
        await self.fetcher.ensure_local(hash, size, start, end, timeout)

    async def read_checked(self, hash: str, size: int, start: int, end: int) -> bytes | None:
        """See :meth:`Fetcher.read_checked`."""
        return await self.fetcher.read_checked(hash, size, start, end)

    async def prefetch(self, hash: str, size: int) -> None:
        """See :meth:`Fetcher.prefetch`."""
        await self.fetcher.prefetch(hash, size)

    @property
    def rejected_blocks(self) -> int:
        """Fetched blocks that failed verification (from any source)."""
        return self.fetcher.rejected_blocks

    @property
    def peer_fetches(self) -> int:
        """Blocks that came from a peer rather than the bucket."""
        return self.fetcher.peer_fetches

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
