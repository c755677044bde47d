"""Cache and evict jobs: `meridian cache PATH...` and `meridian evict PATH...` at a running site.

A job expands its paths (namespace paths ``./a/b``; a directory means everything under it; ``*``
``?`` ``[...]`` glob, ``*`` crossing ``/``), then works through the files: cache fetches
each content whole, several at once; evict removes local instances as rule 6 of
docs/design.md allows (never the only complete instance, never a pinned or open one) and
records why it skipped the others. Progress and the summary are read with ``JobRunner.get``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from meridian.content import LocalVolume
from meridian.errors import BadInput, MeridianError, NotFound
from meridian.meta import Inode, MetaStore
from meridian.meta import split_path
from meridian.mover import Mover

log = logging.getLogger(__name__)

_GLOB = set("*?[")


@dataclass
class Job:
    id: str
    kind: str  # "cache" | "evict"
    paths: list[str]
    total: int = 0
    done: int = 0
    bytes: int = 0
    running: bool = True
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "paths": self.paths, "total": self.total,
                "done": self.done, "bytes": self.bytes, "running": self.running,
                "failed": self.failed, "skipped": self.skipped}


def expand(meta: MetaStore, patterns: list[str]) -> list[tuple[str, Inode]]:
    """The files the patterns name, each once, in path order. Raises BadInput (a ``..``, or
    a path that names nothing)."""
    found: dict[str, Inode] = {}
    for pattern in patterns:
        rel = "/".join(split_path(pattern))  # refuses '..'
        if _GLOB & set(rel):
            tops = [i for p, i in meta.walk() if fnmatch.fnmatchcase(p.lstrip("/"), rel)]
            if not tops:
                raise BadInput(f"{pattern}: matches nothing")
        else:
            try:
                tops = [meta.resolve(rel)]
            except NotFound:
                raise BadInput(f"{pattern}: no such file or directory") from None
        for top in tops:
            for path, inode in meta.walk(top.ino):  # a file alone, or a whole directory
                if inode.is_file:
                    found.setdefault("." + path, inode)
    return sorted(found.items())


class JobRunner:
    def __init__(self, meta: MetaStore, volume: LocalVolume, mover: Mover,
                 parallel: int = 8) -> None:
        self.meta = meta
        self.volume = volume
        self.mover = mover
        self.parallel = parallel
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, kind: str, patterns: list[str]) -> Job:
        """Start a job; raises BadInput before anything is done if a path is bad."""
        if kind not in ("cache", "evict"):
            raise BadInput(f"unknown job kind {kind!r}")
        if not patterns:
            raise BadInput("no paths given")
        files = expand(self.meta, patterns)
        job = Job(f"j{next(self._ids)}", kind, patterns, total=len(files))
        self.jobs[job.id] = job
        task = asyncio.create_task(self._run(job, files), name=f"job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self, job: Job, files: list[tuple[str, Inode]]) -> None:
        slots = asyncio.Semaphore(self.parallel)

        async def one(path: str, inode: Inode) -> None:
            async with slots:
                try:
                    if job.kind == "cache":
                        await self._cache(job, path, inode)
                    else:
                        self._evict(job, path, inode)
                except MeridianError as exc:
                    job.failed.append({"path": path, "error": str(exc)})
                finally:
                    job.done += 1

        try:
            await asyncio.gather(*(one(p, i) for p, i in files))
        finally:
            job.running = False
            log.info("%s job %s: %d files, %d failed, %d skipped", job.kind, job.id, job.total,
                     len(job.failed), len(job.skipped))

    async def _cache(self, job: Job, path: str, inode: Inode) -> None:
        if inode.content is None or self.volume.has(inode.content):
            return
        await self.mover.ensure_local(inode.content, inode.size, 0, inode.size)
        job.bytes += inode.size

    def _evict(self, job: Job, path: str, inode: Inode) -> None:
        if inode.content is None or not self.volume.present_bytes(inode.content):
            return
        result = self.volume.evict(inode.content)
        if result.evicted:
            job.bytes += result.freed
        else:
            job.skipped.append({"path": path, "reason": result.reason or "refused"})
