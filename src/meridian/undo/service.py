"""The undo service of one site: retention, snapshot holds and schedules, and the operations the
API offers (trash list, undelete, purge, versions, restore, snapshots).

Every ``interval`` seconds it drops trash records and versions older than the retention
(``[namespace] trash_days``, or longer for files an ``undelete-*``/``versioning-*`` SLO keeps),
holds the contents of snapshots learnt from peers (once their manifest is read from the
bucket), and makes the scheduled snapshots (``[[namespace.snapshots]]``), deleting the oldest
beyond ``keep``.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from collections.abc import Callable
from typing import Any

from meridian.errors import BadInput, MeridianError, NotFound
from meridian.meta import TRASH_SETTING, ApplyResult, MetaStore, SnapshotRecord
from meridian.objects.interface import ObjectStore
from meridian.undo import restore, snapshots
from meridian.undo.restore import Restored, undo_store

log = logging.getLogger(__name__)
DAY_NS = 86_400 * 1_000_000_000


def _stamped(record: SnapshotRecord, prefix: str) -> float:
    """When a scheduled snapshot was due: the UTC time its name carries (else its clock)."""
    try:
        return float(calendar.timegm(time.strptime(record.name[len(prefix) + 1:],
                                                   "%Y%m%d-%H%M%S")))
    except ValueError:
        return record.time_ns / 1e9


class UndoService:
    """Undo at one site (see the module docstring)."""

    def __init__(self, meta: MetaStore, objects: ObjectStore, *, trash_days: float,
                 schedules: tuple[Any, ...] = (), site_name: str = "",
                 interval: float = 60.0,
                 keep_for: Callable[[str], float] | None = None,
                 announce: Callable[[ApplyResult], None] | None = None) -> None:
        self.meta = meta
        self.store = undo_store(meta)
        self.objects = objects
        self.trash_days = trash_days
        self.schedules = tuple(s for s in schedules if s.at in (None, site_name))
        self.interval = interval
        self.keep_for = keep_for  # file id -> days its versions are kept (objectives)
        self.announce = announce
        self._manifests: dict[str, snapshots.Manifest] = {}
        self._task: asyncio.Task[None] | None = None
        meta.put_setting(TRASH_SETTING, "1" if trash_days > 0 else "0")

    # -- background ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._preload()
                self.round(make=False)  # on the loop: the site's one thread of the store
                for name in self.due(time.time()):
                    await self.snapshot_create_async(name)  # the tree read off the loop
                self.trim()
            except MeridianError as exc:
                log.warning("undo round: %s", exc)
            await asyncio.sleep(self.interval)

    async def _preload(self) -> None:
        """Read and check on a worker thread the manifests the round needs (large ones take
        seconds to parse), so the round itself only touches the store."""
        wanted = [r.manifest for r in self.store.snapshots()
                  if not self.store.snapshot_held(r.name, r.manifest)]
        for digest in [*wanted, *self.store.pending_releases()]:
            if digest not in self._manifests:
                try:
                    self._manifests[digest] = await asyncio.to_thread(
                        snapshots.load, self.objects, digest)
                except (MeridianError, OSError) as exc:
                    log.info("snapshot manifest %s not readable yet (%s)", digest[:12], exc)

    def round(self, now: float | None = None, *, make: bool = True) -> dict[str, int]:
        """One round: expire, hold peers' snapshots, release deleted ones' contents, and
        (``make``) the scheduled snapshots, all on this thread."""
        now = time.time() if now is None else now
        now_ns = int(now * 1e9)
        keep_ns = int(self.trash_days * DAY_NS)

        def keep_version(fid: str) -> int:
            days = self.keep_for(fid) if self.keep_for is not None else 0.0
            return max(keep_ns, int(days * DAY_NS))

        expired = self.store.expire_undo(now_ns, keep_ns, keep_version)
        held = 0
        for record in self.store.snapshots():
            if not self.store.snapshot_held(record.name, record.manifest):
                try:
                    manifest = self.manifest(record)
                except (MeridianError, OSError) as exc:
                    log.info("snapshot %s: manifest not readable yet (%s)", record.name, exc)
                    continue
                held += self.store.hold_snapshot(record.name, record.manifest, manifest.hashes())
        for digest in self.store.pending_releases():
            try:
                hashes = self._manifest_by_hash(digest).hashes()
            except (MeridianError, OSError) as exc:
                log.info("deleted snapshot %s: manifest not readable (%s); its contents stay "
                         "held", digest[:12], exc)
                continue
            self.store.release_snapshot(digest, hashes)
            self._manifests.pop(digest, None)
        made = self._scheduled(now) if make else 0
        return {"expired": expired, "held": held, "made": made}

    def due(self, now: float) -> list[str]:
        """Names of the scheduled snapshots to make now."""
        names = []
        for schedule in self.schedules:
            ours = [s for s in self.store.snapshots() if s.name.startswith(schedule.name + "-")]
            last = max((_stamped(s, schedule.name) for s in ours), default=0.0)
            if now - last >= schedule.every:
                names.append(f"{schedule.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}")
        return names

    def trim(self) -> None:
        """Delete the oldest scheduled snapshots beyond each schedule's ``keep``."""
        for schedule in self.schedules:
            ours = [s for s in self.store.snapshots() if s.name.startswith(schedule.name + "-")]
            for old in ours[:max(0, len(ours) - schedule.keep)]:
                self.store.snapshot_delete(old.name)

    def _scheduled(self, now: float) -> int:
        names = self.due(now)
        for name in names:
            self.snapshot_create(name)
        self.trim()
        return len(names)

    # -- operations ---------------------------------------------------------------------
    def _announce(self, done: Restored) -> None:
        if self.announce is not None:
            result = ApplyResult(names=list(done.names), inodes={i.ino for i in done.inodes})
            self.announce(result)

    def undelete(self, path: str, at_ns: int | None, as_path: str | None) -> Restored:
        done = restore.undelete(self.meta, path, at_ns=at_ns, as_path=as_path)
        self._announce(done)
        return done

    def purge(self, path: str | None, before_ns: int | None) -> int:
        return self.store.trash_purge(restore.clean_path(path) if path else None, before_ns)

    def manifest(self, record: SnapshotRecord) -> snapshots.Manifest:
        return self._manifest_by_hash(record.manifest)

    def _manifest_by_hash(self, digest: str) -> snapshots.Manifest:
        found = self._manifests.get(digest)
        if found is None:
            found = snapshots.load(self.objects, digest)
            self._manifests[digest] = found
        return found

    def snapshot(self, name: str) -> SnapshotRecord:
        for record in self.store.snapshots():
            if record.name == name:
                return record
        raise NotFound(f"no snapshot named {name!r}")

    def snapshot_create(self, name: str) -> SnapshotRecord:
        """Make a snapshot, all on this thread (the schedule; tests)."""
        record = snapshots.create(self.meta, self.objects, name)
        log.info("snapshot %s: %d entries, %d bytes listed", name, record.files, record.size)
        return record

    async def snapshot_create_async(self, name: str) -> SnapshotRecord:
        """Make a snapshot: the tree read, encoded and uploaded on a worker thread (the
        SQLite engine reads its own snapshot of the store, so the site's writes go on), the
        journal entry and holds on the loop."""
        snapshots.prepare(self.meta, name)
        reader = self.store.tree_reader()
        data, count, total, hashes = await asyncio.to_thread(
            lambda: snapshots.encode(reader(), name, self.meta.site_name))
        digest = await asyncio.to_thread(snapshots.store_manifest, self.objects, data)
        snapshots.prepare(self.meta, name)  # still free after the wait
        record = self.store.snapshot_add(name, digest, count, total, hashes)
        log.info("snapshot %s: %d entries, %d bytes listed", name, record.files, record.size)
        return record

    def snapshot_delete(self, name: str) -> SnapshotRecord:
        return self.store.snapshot_delete(name)

    def snapshot_restore(self, name: str, path: str, as_path: str | None) -> Restored:
        manifest = self.manifest(self.snapshot(name))
        path = restore.clean_path(path)
        target = restore.clean_path(as_path) if as_path else path
        chosen = manifest.records(path)
        if not chosen:
            raise NotFound(f"{path} is not in snapshot {name}")
        try:
            self.meta.resolve(target)
        except NotFound:
            pass
        else:
            from meridian.errors import AlreadyExists
            raise AlreadyExists(f"{target} exists: nothing was restored (a restore never "
                                f"replaces a file); give --as NEW to bring it back beside it")
        if target == "/":
            raise BadInput("restore a file or folder, not the whole namespace")
        done = restore.bring_back(self.meta, chosen, path, target)
        self._announce(done)
        return done
