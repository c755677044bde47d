"""The composition root: builds one site (stores and services) from its configuration.

Adapters (the mount, the CLI, later the HTTP API) get a ``Site`` and use its parts; nothing
below this module knows about configuration files.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any

from meridian.content import LocalVolume
from meridian.errors import BucketUnreachable, MeridianError
from meridian.meta import Inode, MetaStore
from meridian.meta.sqlite import SqliteMetaStore
from meridian.mover import Mover
from meridian.objects import ObjectStore, open_object_store
from meridian.objects.layout import ContentBucket
from meridian.meta import ApplyResult
from meridian.replication import Replication
from meridian.replication.gc import Collector
from meridian.replication.holds import UploadHolds
from meridian.site.config import SiteConfig
from meridian.site.confirmed import ConfirmedLog
from meridian.site.privacy import close_to_others

log = logging.getLogger(__name__)


def open_bucket(config: SiteConfig) -> tuple[ObjectStore, ContentBucket]:
    """The site's object store and its content layout (no request is made yet)."""
    store = open_object_store(
        config.bucket.url, endpoint_url=config.bucket.endpoint_url, region=config.bucket.region,
        access_key=config.bucket.access_key_id, secret_key=config.bucket.secret_access_key)
    return store, ContentBucket(store)


class Site:
    """One site's stores and services. Create with ``Site.open``; use on one event loop."""

    def __init__(self, config: SiteConfig, meta: MetaStore, volume: LocalVolume,
                 objects: ObjectStore, bucket: ContentBucket) -> None:
        self.config = config
        self.meta = meta
        self.volume = volume
        self.objects = objects
        self.bucket = bucket
        self._in_bucket_lock = threading.Lock()
        # content this site saw complete in the bucket itself (its own upload, a fetch whose
        # every block came from there, or a check of every block): only these are evictable
        self._in_bucket: set[str] = set()
        self._confirming: set[str] = set()
        self._confirm_tasks: set[asyncio.Task[None]] = set()
        self._confirm_slots: asyncio.Semaphore | None = None
        self._to_confirm: list[str] = []  # found at start with a peer's word only
        self._confirmed_log = ConfirmedLog(config.data / "confirmed-in-bucket")
        self._origins: dict[str, str] = {}  # content hash -> the site that wrote it
        from meridian.site.trust import peer_endpoint
        peers = tuple(peer_endpoint(config, p) for p in config.peers)
        self.replication = Replication(meta, peers,
                                       max_clock_skew=config.replication.max_clock_skew)
        self.replication.add_listener(self._applied)
        self.upload_holds = UploadHolds(meta)
        self.collector = Collector(meta, bucket, peers, grace=config.mover.gc_grace,
                                   interval=config.mover.gc_interval, hold=config.mover.gc_hold,
                                   acknowledge=lambda h, s: self.acknowledge_retirement(h, s)[0],
                                   release=self.upload_holds.release, on_retired=self._retired,
                                   on_deleted=self._content_deleted)
        self.mover = Mover(meta, volume, bucket, upload_workers=config.mover.upload_workers,
                           fetch_workers=config.mover.fetch_workers,
                           read_timeout=config.mover.read_timeout,
                           retry_base=config.mover.retry_base, retry_max=config.mover.retry_max,
                           space_wait=config.mover.space_wait,
                           on_in_bucket=self._known_in_bucket,
                           from_peers=self._from_peers if config.peers else None,
                           hashes_from_peers=self._hashes_from_peers if config.peers else None,
                           on_maybe_in_bucket=self._fetched_maybe_in_bucket,
                           may_upload=self._may_upload,
                           upload_held_until=self.upload_holds.held_until)
        from meridian.objectives.orchestrator import Orchestrator
        self.orchestrator = Orchestrator(meta, volume, self.mover,
                                         sweep_interval=config.mover.objectives_sweep)
        from meridian.objectives.jobs import JobRunner
        self.jobs = JobRunner(meta, volume, self.mover)
        from meridian.undo.service import UndoService
        self.undo = UndoService(meta, objects, trash_days=config.namespace.trash_days,
                                schedules=config.namespace.snapshots, site_name=config.name,
                                interval=min(60.0, config.mover.gc_interval or 60.0),
                                keep_for=self.orchestrator.keep_days,
                                announce=self.replication.announce)
        instances = volume.instances()
        local = {info.hash for info in instances}

        def still_in_bucket(hash: str) -> bool:
            record = meta.content(hash)
            return hash in local and record is not None and record.in_bucket

        confirmed = self._confirmed_log.load(still_in_bucket)
        for info in instances:
            record = meta.content(info.hash)
            if record is None:  # installed, then a crash before its commit: nothing uses it
                log.info("content %s on the volume is known to no file: removed", info.hash[:12])
                volume.remove(info.hash)
            elif info.hash in confirmed:  # seen in the bucket
                with self._in_bucket_lock:
                    self._in_bucket.add(info.hash)
            elif record.in_bucket:  # only a peer's word, or a line lost: check
                self._to_confirm.append(info.hash)

    @classmethod
    def open(cls, config: SiteConfig, *, check_bucket: bool = True) -> Site:
        """Open the site's stores. With ``check_bucket``, the bucket is asked for its format
        marker first: BucketAccessDenied / BucketFormatError if it cannot be used (an error at
        start, not a hang). An unreachable bucket is BucketUnreachable too, unless this site
        has used it before: then the site starts without it (docs/design.md, rule 1: a site works
        while cut off), logs so, and its uploads wait for the bucket to answer."""
        close_to_others(config)
        objects, bucket = open_bucket(config)
        meta = SqliteMetaStore(config.meta_path, config.name) if check_bucket else None
        if check_bucket:
            assert meta is not None
            try:
                fmt = bucket.check_format()
                meta.put_setting("bucket_format", str(fmt.version))
            except BucketUnreachable as exc:
                if meta.get_setting("bucket_format") is None:  # never seen it work: refuse
                    meta.close()
                    raise
                log.warning("bucket %s is unreachable at start (%s): running without it; "
                            "uploads wait for it, and content that is not on this site's "
                            "volume cannot be read until it answers", config.bucket.url, exc)
            except MeridianError:
                meta.close()
                raise
        if meta is None:
            meta = SqliteMetaStore(config.meta_path, config.name)
        volume_config = config.volumes[0]
        site: Site | None = None

        def evictable(hash: str) -> bool:
            return site is not None and site.in_bucket(hash)

        volume = LocalVolume(volume_config.path, volume_config.capacity, name=volume_config.name,
                             is_evictable=evictable)
        site = cls(config, meta, volume, objects, bucket)
        return site

    @staticmethod
    def initialize(config: SiteConfig) -> None:
        """Prepare a new site's folders and store, and the bucket's format marker. Idempotent."""
        objects, bucket = open_bucket(config)
        try:
            fmt = bucket.initialize()  # first: a bucket we cannot use leaves nothing behind
        finally:
            objects.close()
        config.data.mkdir(0o700, parents=True, exist_ok=True)
        for volume in config.volumes:
            volume.path.mkdir(0o700, parents=True, exist_ok=True)
        close_to_others(config)
        meta = SqliteMetaStore(config.meta_path, config.name)
        try:
            meta.put_setting("bucket_format", str(fmt.version))
        finally:
            meta.close()

    # -- what adapters call -----------------------------------------------------------------
    def in_bucket(self, hash: str) -> bool:
        """Whether this site saw for itself that ``hash`` is complete in the bucket, so its
        local instance may be evicted (thread-safe; the volume asks). A peer's ``instance``
        entry alone never makes it so: the site checks the bucket first."""
        with self._in_bucket_lock:
            return hash in self._in_bucket

    def _known_in_bucket(self, hash: str) -> None:
        """This site saw ``hash`` complete in the bucket: evictable, now and after restarts."""
        with self._in_bucket_lock:
            if hash in self._in_bucket:
                return
            self._in_bucket.add(hash)
        self._confirmed_log.add([hash])

    def _applied(self, result: ApplyResult) -> None:
        """Entries from peers were applied: remember who wrote which content (to fetch it from
        there until it is in the bucket) and what is in the bucket now."""
        self._origins.update(result.contents)
        for hash in result.in_bucket:
            self.confirm_later(hash)  # a peer's word: this site checks before relying on it
            self._origins.pop(hash, None)
        for hash in result.retired:
            self._retired(hash)

    def _fetched_maybe_in_bucket(self, hash: str) -> None:
        """A fetch took blocks from the bucket, or finished with blocks from peers. A reader
        going through the file usually finishes first, and a fetch whose every block came from
        the bucket needs no check: so the check waits a little (fewer requests to the bucket
        while it serves the reader)."""
        self.confirm_later(hash, after=10.0)

    def confirm_later(self, hash: str, after: float = 0.0) -> None:
        """Check in the background that every block of ``hash`` is in the bucket; if so (and
        no retire came meanwhile), its local instance becomes evictable. For content a peer
        says is in the bucket, and fetched content whose blocks did not all come from there.
        Nothing to do without a local instance, or once confirmed. Loop thread only."""
        if self.in_bucket(hash) or hash in self._confirming or self.volume.size_of(hash) is None:
            return
        self._confirming.add(hash)
        task = asyncio.get_running_loop().create_task(self._confirm(hash, after),
                                                      name=f"confirm-{hash[:12]}")
        self._confirm_tasks.add(task)
        task.add_done_callback(self._confirm_tasks.discard)

    async def _confirm(self, hash: str, after: float) -> None:
        """One check (four at a time) ``after`` seconds from now, asked again with a growing
        pause (up to 5 min) while the bucket does not answer, as long as the store says the
        content is there, a local instance is here and it is not confirmed meanwhile."""
        if self._confirm_slots is None:
            self._confirm_slots = asyncio.Semaphore(4)
        pause = 1.0
        try:
            await asyncio.sleep(after)
            while not self.in_bucket(hash):
                record = self.meta.content(hash)
                if record is None or not record.in_bucket or self.volume.size_of(hash) is None:
                    return  # nobody claims it is there (or it is being retired), or it left
                try:
                    async with self._confirm_slots:
                        whole = await asyncio.to_thread(self.bucket.confirm_complete, hash,
                                                        record.size)
                    break
                except MeridianError as exc:
                    log.info("checking that %s is in the bucket: %s (again in %.0fs)",
                             hash[:12], exc, pause)
                    await asyncio.sleep(pause)
                    pause = min(300.0, pause * 2)
            else:
                return
            record = self.meta.content(hash)
            if whole and record is not None and record.in_bucket:
                self._known_in_bucket(hash)
            elif not whole:
                log.warning("content %s is said to be in the bucket, but this site does not "
                            "find all its blocks there: its local copy is kept", hash[:12])
        finally:
            self._confirming.discard(hash)

    def _content_deleted(self, hash: str) -> None:
        """Garbage collection deleted the content from the bucket; nothing here uses it."""
        try:
            self.volume.remove(hash)
        except MeridianError as exc:  # open right now: it goes at the next round of eviction
            log.info("content %s stays on the volume for now: %s", hash[:12], exc)

    def _retired(self, hash: str) -> None:
        """The content is about to leave the bucket: its local instance is not evictable."""
        with self._in_bucket_lock:
            was_confirmed = hash in self._in_bucket
            self._in_bucket.discard(hash)
        if was_confirmed:
            self._confirmed_log.strike(hash)

    async def _from_peers(self, hash: str, start: int, length: int,
                          accept: Callable[[str, bytes], Awaitable[bool]]) -> bytes | None:
        return await self.replication.fetch_range(hash, start, length, self._origins.get(hash),
                                                  accept)

    async def _hashes_from_peers(self, hash: str, size: int) -> list[str] | None:
        return await self.replication.fetch_block_hashes(hash, size, self._origins.get(hash))

    def acknowledge_retirement(self, hashes: list[str],
                               seconds: float) -> tuple[set[str], float]:
        """A collector (a peer's, or this site's own) is about to delete ``hashes`` from the
        bucket: hold this site's uploads of them for ``seconds`` (durably, first), then
        acknowledge those this site counts as not in the bucket, has no upload of under way
        and no file refers to. Returns them and the seconds granted. Loop thread only."""
        granted = self.upload_holds.hold(hashes, seconds)
        acknowledged = set()
        for hash in hashes:
            record = self.meta.content(hash)
            if record is not None and record.in_bucket:
                continue  # this site has not applied the retirement, or it was uploaded again
            if self.mover.uploading(hash) or self.meta.referenced([hash]):
                continue
            acknowledged.add(hash)
        return acknowledged, granted

    def _may_upload(self, hash: str) -> bool:
        return self.orchestrator.may_upload(hash)

    def content_committed(self, inode: Inode) -> None:
        """The mount committed new content: objectives decide on it at once (before any
        upload can start), then the uploaders wake. Content a peer already put in the bucket
        is not uploaded again: the site checks the bucket before its copy may go."""
        self.orchestrator.file_committed(inode)
        self.mover.wake()
        if inode.content is not None:
            record = self.meta.content(inode.content)
            if record is not None and record.in_bucket:
                self.confirm_later(inode.content)

    def describe(self) -> dict[str, Any]:
        info = self.config.describe()
        info["site_id"] = self.meta.site_id
        return info

    async def start(self) -> None:
        usage = self.volume.usage()
        capacity = f"{usage.capacity / 2**30:.1f} GiB" if usage.capacity else "no limit"
        log.info("site %s: %d inodes, journal at %d; volume %s: %.1f GiB used of %s in %d "
                 "instances; %d uploads queued", self.config.name, self.meta.count_inodes(),
                 self.meta.last_seq(), self.volume.name, usage.used / 2**30, capacity,
                 usage.count, self.meta.upload_count())
        self.mover.start()
        for hash in self._to_confirm:
            self.confirm_later(hash)
        self._to_confirm = []
        self.orchestrator.start()
        self.replication.start()
        self.collector.start()
        self.undo.start()

    async def stop(self) -> None:
        await self.undo.stop()
        await self.jobs.stop()
        await self.collector.stop()
        await self.orchestrator.stop()
        await self.replication.stop()
        for task in list(self._confirm_tasks):
            task.cancel()
        await asyncio.gather(*self._confirm_tasks, return_exceptions=True)
        await self.mover.stop()

    def close(self) -> None:
        self.meta.close()
        self.objects.close()
