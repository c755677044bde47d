"""The orchestrator: makes this site's objectives true, through the mover and the volume.

It re-evaluates a file when it is created, written or renamed at any site (every committed
journal entry, local or replicated, reaches it through the store's commit listener), every
file when a rule is added or removed (a sweep, with progress), and periodically when a rule
depends on time. What each SLO does here:

| SLO | action at this site |
| --- | --- |
| place-on-local-volumes | pin the content (never evicted) and fetch it now, whole |
| keep-online, do-not-move | pin what is here (never evicted); fetch nothing |
| confine-to-local-volumes | pin; content written here is not uploaded (peers read it from here) |
| exclude-from-local-volumes | evict the local instance once nobody has it open |
| confine-to-shared-object-volumes | evict the local instance once it is in the bucket |
| exclude-from-shared-object-volumes | like confine-to-local-volumes: never uploaded |
| prefetch-sequence | the first read of a frame fetches the whole sequence (the mount asks) |
| place-on-shared-object-volumes | nothing: every content is uploaded by default |

Each file's alignment (aligned, partial, unaligned with the reason) is kept for ``explain``,
``ls --placement``, ``status`` and the metrics. Pins never push a volume past its capacity:
a fetch that finds the volume full of pinned content waits as "waiting for space" and is
tried again on the next round.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from meridian.content import LocalVolume
from meridian.errors import MeridianError, NoSpace
from meridian.meta import ContentOp, CreateOp, Inode, JournalEntry, LinkOp, MetaStore, RenameOp, SetattrOp
from meridian.meta.interface import ROOT_INO
from meridian.mover import Mover
from meridian.objectives.language import DEFAULT_GROUPS, FileFacts, Objective, Placement, parse, resolve

log = logging.getLogger(__name__)
WAITING_FOR_SPACE = "waiting for space"  # the reason a placement fetch gives on a full volume

PINNING = {"place-on-local-volumes", "keep-online", "do-not-move", "confine-to-local-volumes"}
_FILE_OPS = (CreateOp, ContentOp, RenameOp, LinkOp, SetattrOp)


@dataclass
class Alignment:
    """How one file stands against this site's objectives."""

    state: str  # "aligned" | "partial" | "unaligned"
    slos: tuple[str, ...] = ()
    rules: dict[str, str] = field(default_factory=dict)  # SLO name -> id of the rule that set it
    reason: str = ""


@dataclass
class Sweep:
    total: int = 0
    done: int = 0
    running: bool = False
    started: float = 0.0


class Orchestrator:
    """One per site, on the site's loop. ``start`` loads the rules and sweeps once."""

    def __init__(self, meta: MetaStore, volume: LocalVolume, mover: Mover, *,
                 groups: tuple[str, ...] = DEFAULT_GROUPS, sweep_interval: float = 60.0,
                 retry_interval: float = 5.0) -> None:
        self.meta = meta
        self.volume = volume
        self.mover = mover
        self.groups = groups
        self.sweep_interval = sweep_interval
        self.retry_interval = retry_interval
        self.rules: list[tuple[str, Objective]] = []
        self.alignment: dict[str, Alignment] = {}  # file id -> how it stands
        self.confined: set[str] = set()  # contents not to upload
        self.sequences: set[str] = set()  # file ids under prefetch-sequence
        self._pins: dict[str, str] = {}  # file id -> content hash pinned for it
        self._pinned_by: dict[str, set[str]] = defaultdict(set)  # hash -> file ids
        self._fetches: dict[str, asyncio.Task[None]] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.sweep = Sweep()
        self._sweep_task: asyncio.Task[None] | None = None
        self.on_aligned: Callable[[str, Alignment], None] | None = None
        meta.add_listener(self._committed)

    # -- life cycle -------------------------------------------------------------------------
    def load_rules(self) -> None:
        """(Re)read the site's rules from the store. A stored rule that no longer parses (a
        volume group removed from the config) is skipped and logged, never fatal."""
        rules = []
        for stored in self.meta.objectives():
            try:
                rules.append((stored.id, parse(stored.text, self.groups)))
            except MeridianError as exc:
                log.error("objective %s is skipped: %s", stored.id, exc)
        self.rules = rules

    def start(self) -> None:
        self.load_rules()
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name="objectives"),
                           asyncio.create_task(self._rounds(), name="objectives-rounds")]
            if self.rules:
                self.start_sweep()

    async def stop(self) -> None:
        if self._sweep_task is not None:
            self._tasks.append(self._sweep_task)
        for task in [*self._tasks, *self._fetches.values()]:
            task.cancel()
        for task in [*self._tasks, *self._fetches.values()]:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        self._fetches.clear()

    # -- triggers ---------------------------------------------------------------------------
    def _committed(self, entries: list[JournalEntry]) -> None:
        """Store commit listener (local and replicated changes): queue the touched files."""
        if not self.rules:
            return
        for entry in entries:
            op = entry.op
            if isinstance(op, _FILE_OPS) and op.file_id:
                self.enqueue(op.file_id)
                if isinstance(op, RenameOp):
                    self._enqueue_subtree(op.file_id)

    def enqueue(self, file_id: str) -> None:
        if file_id not in self._queued:
            self._queued.add(file_id)
            self._queue.put_nowait(file_id)

    def _enqueue_subtree(self, file_id: str) -> None:
        inode = self.meta.by_file_id(file_id)
        if inode is not None and inode.is_dir and inode.nlink > 0:
            for _, child in self.meta.walk(inode.ino):
                if child.is_file:
                    self.enqueue(child.file_id)

    def file_committed(self, inode: Inode) -> None:
        """New content written through this site's mount: decided at once, before the mover
        can pick up its upload (``confine-to-local-volumes`` must hold from the first byte)."""
        if self.rules:
            self.evaluate(inode.file_id)

    def start_sweep(self) -> None:
        """Re-evaluate every file (a rule was added or removed, or time passed), in the
        background: a sweep already running starts over. ``sweep`` shows the progress."""
        if self._sweep_task is not None and not self._sweep_task.done():
            self._sweep_task.cancel()
        self.sweep = Sweep(total=self.meta.count_inodes(), running=True, started=time.time())
        self._sweep_task = asyncio.create_task(self._sweep(self.sweep), name="objectives-sweep")

    async def _sweep(self, sweep: Sweep) -> None:
        """Walk the tree, evaluating each file, and let the loop breathe every few hundred
        entries (the mount shares the loop: a million files must not freeze it)."""
        try:
            for _, inode in self.meta.walk(ROOT_INO):
                sweep.done += 1
                if inode.is_file:
                    try:
                        self.evaluate(inode.file_id)
                    except Exception:
                        log.exception("objectives: evaluating %s failed", inode.file_id)
                if sweep.done % 200 == 0:
                    await asyncio.sleep(0)
            sweep.total = sweep.done
            log.info("objectives: sweep of %d entries done in %.1fs", sweep.done,
                     time.time() - sweep.started)
        finally:
            sweep.running = False

    async def _work(self) -> None:
        while True:
            file_id = await self._queue.get()
            self._queued.discard(file_id)
            try:
                self.evaluate(file_id)
            except Exception:
                log.exception("objectives: evaluating %s failed", file_id)
            if self._queue.qsize() % 500 == 0:
                await asyncio.sleep(0)

    async def _rounds(self) -> None:
        """Retry what waits (space, unreachable content), and re-sweep for time-based rules."""
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_interval)
            for file_id, alignment in list(self.alignment.items()):
                if alignment.state != "aligned" and file_id not in self._fetches:
                    self.enqueue(file_id)
            if (any(rule.uses_time() for _, rule in self.rules)
                    and time.monotonic() - last_sweep >= self.sweep_interval):
                last_sweep = time.monotonic()
                self.start_sweep()

    # -- evaluation -------------------------------------------------------------------------
    def facts(self, inode: Inode, path: str) -> FileFacts:
        kind = ("directory" if inode.is_dir else "symlink" if inode.is_symlink else "file")
        return FileFacts(
            path="./" + path.lstrip("/"), size=inode.size, kind=kind,
            mtime=inode.mtime_ns / 1e9, atime=inode.atime_ns / 1e9, ctime=inode.ctime_ns / 1e9,
            uid=inode.uid, gid=inode.gid, is_open=self.volume_open(inode),
            origin_site=inode.origin_site, this_site=self.meta.site_name, now=time.time())

    def volume_open(self, inode: Inode) -> bool:
        return bool(inode.content) and self.volume.is_open(inode.content or "")

    def placement_of(self, inode: Inode) -> Placement:
        return resolve(self.rules, self.facts(inode, self.meta.path_of(inode.ino)))

    def keep_days(self, file_id: str) -> float:
        """How long the undo SLOs of this site's rules keep earlier contents of the file
        (0: no such SLO applies, or the file has no name here)."""
        from meridian.objectives.slos import RETENTION_SLOS
        inode = self.meta.by_file_id(file_id)
        if inode is None or inode.nlink == 0:
            return 0.0
        return max((RETENTION_SLOS.get(slo.name, 0.0)
                    for slo in self.placement_of(inode).slos), default=0.0)

    def evaluate(self, file_id: str) -> Alignment | None:
        """Decide and act for one file. Idempotent: evaluating again changes nothing more."""
        inode = self.meta.by_file_id(file_id)
        if inode is None or inode.nlink == 0 or not stat.S_ISREG(inode.mode):
            self._forget(file_id)
            return None
        placement = self.placement_of(inode)
        wanted = {slo.name for slo in placement.slos}
        rules: dict[str, str] = {}
        for result in placement.results:
            for slo in result.evaluation.slos:
                rules.setdefault(slo.name, result.rule_id)
        if not wanted:
            self._forget(file_id)
            return None
        hash = inode.content
        self._pin(file_id, hash if wanted & PINNING else None)
        if hash and wanted & {"confine-to-local-volumes", "exclude-from-shared-object-volumes"}:
            self.confined.add(hash)
        if "prefetch-sequence" in wanted:
            self.sequences.add(file_id)
        else:
            self.sequences.discard(file_id)
        alignment = Alignment("aligned", tuple(sorted(wanted)), rules)
        if hash:
            local = self.volume.has(hash)
            if "place-on-local-volumes" in wanted and not local:
                alignment = Alignment("unaligned", alignment.slos, rules,
                                      self._fetch_reason(file_id))
                self._fetch(file_id, hash, inode.size)
            elif (("exclude-from-local-volumes" in wanted
                   or ("confine-to-shared-object-volumes" in wanted and self.meta.in_bucket(hash)))
                  and (local or self.volume.present_bytes(hash))):
                evicted = self.volume.evict(hash)
                if not evicted.evicted:
                    alignment = Alignment("partial", alignment.slos, rules,
                                          f"local instance kept: {evicted.reason}")
        self.alignment[file_id] = alignment
        if self.on_aligned is not None:
            self.on_aligned(file_id, alignment)
        return alignment

    def _pin(self, file_id: str, hash: str | None) -> None:
        previous = self._pins.get(file_id)
        if previous == hash:
            return
        if previous is not None:
            holders = self._pinned_by[previous]
            holders.discard(file_id)
            if not holders:
                del self._pinned_by[previous]
                self.volume.unpin(previous)
            del self._pins[file_id]
        if hash is not None:
            self._pins[file_id] = hash
            self._pinned_by[hash].add(file_id)
            self.volume.pin(hash)

    def _forget(self, file_id: str) -> None:
        self._pin(file_id, None)
        self.alignment.pop(file_id, None)
        self.sequences.discard(file_id)

    def _fetch(self, file_id: str, hash: str, size: int) -> None:
        if file_id in self._fetches:
            return

        async def fetch() -> None:
            try:
                await self.mover.ensure_local(hash, size, 0, size)
            except NoSpace as exc:
                self._unaligned(file_id, f"{WAITING_FOR_SPACE}: {exc}")
                log.warning("objectives: %s waits for space on volume %s", hash[:12],
                            self.volume.name)
            except MeridianError as exc:
                self._unaligned(file_id, f"source unreachable: {exc}")
            else:
                current = self.alignment.get(file_id)
                if current is not None and (current.reason == "fetching"
                                            or current.reason.startswith(WAITING_FOR_SPACE)):
                    current.state, current.reason = "aligned", ""
                    if self.on_aligned is not None:
                        self.on_aligned(file_id, current)
            finally:
                self._fetches.pop(file_id, None)

        self._fetches[file_id] = asyncio.create_task(fetch(), name=f"place-{hash[:12]}")

    def _fetch_reason(self, file_id: str) -> str:
        """The reason shown while a placement fetch runs: "fetching", except that a file
        already waiting for space keeps saying so while its fetch is tried again, so status
        does not flicker between the two on every retry."""
        previous = self.alignment.get(file_id)
        if previous is not None and previous.reason.startswith(WAITING_FOR_SPACE):
            return previous.reason
        return "fetching"

    def _unaligned(self, file_id: str, reason: str) -> None:
        current = self.alignment.get(file_id)
        if current is not None:
            current.state, current.reason = "unaligned", reason

    # -- what others ask --------------------------------------------------------------------
    def may_upload(self, hash: str) -> bool:
        """The mover asks before an upload: content confined to this site stays here."""
        return hash not in self.confined

    def prefetch_sequence(self, file_id: str) -> bool:
        """The mount asks on a first read: fetch the whole sequence of this frame?"""
        return file_id in self.sequences

    def counts(self) -> dict[str, int]:
        totals = {"aligned": 0, "partial": 0, "unaligned": 0}
        for alignment in self.alignment.values():
            totals[alignment.state] += 1
        totals["waiting_for_space"] = sum(1 for a in self.alignment.values()
                                          if a.reason.startswith(WAITING_FOR_SPACE))
        return totals
