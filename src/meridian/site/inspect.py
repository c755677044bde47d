"""Read-only views of a site for ``status``, ``ls --placement`` and ``fsck``.

These work on the stores directly (the SQLite store opened read-only beside a running site,
the volume's files inspected without touching them), so they answer whether or not the site
is running, and never change anything: fsck reports, it never silently repairs.
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from meridian.errors import MeridianError
from meridian.meta import Inode, MetaStore
from meridian.objects.layout import ContentBucket


class VolumeView(Protocol):
    """What inspection needs to know of a local volume."""

    def has(self, hash: str) -> bool: ...

    def present_bytes(self, hash: str) -> int: ...


@dataclass(frozen=True)
class Placement:
    path: str
    size: int
    content: str | None
    state: str  # empty | local | both | bucket | in flight | partial | missing
    local_bytes: int
    in_bucket: bool
    queued: bool


def placement_of(path: str, inode: Inode, meta: MetaStore, volume: VolumeView,
                 queued: set[str]) -> Placement:
    """Where one file's content is: on the local volume, in the bucket, both, or in flight."""
    h = inode.content
    if h is None:
        return Placement(path, inode.size, None, "empty", 0, False, False)
    record = meta.content(h)
    in_bucket = record is not None and record.in_bucket
    local = volume.has(h)
    local_bytes = inode.size if local else volume.present_bytes(h)
    is_queued = h in queued
    if local and in_bucket:
        state = "both"
    elif local:
        state = "in flight" if is_queued else "local"
    elif in_bucket:
        state = "partial" if local_bytes else "bucket"
    else:
        state = "missing"
    return Placement(path, inode.size, h, state, local_bytes, in_bucket, is_queued)


def placements(meta: MetaStore, volume: VolumeView, top: Inode) -> Iterator[Placement]:
    """Placement of every regular file under ``top`` (or of ``top`` itself), in path order."""
    queued = {u.hash for u in meta.pending_uploads(limit=1 << 30)}
    for path, inode in meta.walk(top.ino):
        if inode.is_file:
            yield placement_of(path, inode, meta, volume, queued)


@dataclass
class FsckReport:
    files: int = 0
    contents: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def fsck(meta: MetaStore, volume: VolumeView, bucket: ContentBucket | None,
         progress: Callable[[int], None] | None = None) -> FsckReport:
    """Check that every file's content is reachable (docs/design.md, rule 6).

    A content is reachable if a complete local instance exists, or the bucket holds its
    manifest. Content the store believes is in the bucket is checked there (one HEAD per
    distinct content) when ``bucket`` is given. Reports; never repairs.
    """
    report = FsckReport()
    checked: dict[str, str | None] = {}
    for path, inode in meta.walk():
        if progress is not None:
            progress(1)
        if not inode.is_file:
            continue
        report.files += 1
        h = inode.content
        if h is None:
            if inode.size:
                report.problems.append(f"{path}: size {inode.size} but no content")
            continue
        if h not in checked:
            checked[h] = _check_content(h, inode.size, meta, volume, bucket)
        if checked[h] is not None:
            report.problems.append(f"{path}: {checked[h]}")
    report.contents = len(checked)
    return report


def _check_content(h: str, size: int, meta: MetaStore, volume: VolumeView,
                   bucket: ContentBucket | None) -> str | None:
    record = meta.content(h)
    if record is None:
        return f"content {h[:12]} is not recorded in the store"
    if record.size != size:
        return f"content {h[:12]} is {record.size} bytes, the file says {size}"
    local = volume.has(h)
    if record.in_bucket and bucket is not None:
        try:
            manifest = bucket.manifest(h)
        except MeridianError as exc:
            return f"content {h[:12]}: bucket could not be checked: {exc}"
        if manifest is None:
            return (f"content {h[:12]} is recorded in the bucket but its manifest is missing"
                    + ("" if local else " and there is no local instance: unreachable"))
        if manifest.size != size:
            return f"content {h[:12]}: bucket manifest says {manifest.size} bytes, expected {size}"
        return None
    if not local and not record.in_bucket:
        return f"content {h[:12]} is neither on the local volume nor in the bucket: unreachable"
    return None


def namespace_digest(meta: MetaStore) -> str:
    """A digest of everything a site shows of its tree, equal at every site once all changes
    are delivered (docs/design.md, rule 4).

    For every entry, in path order: path, type, permission bits, owner (uid and gid), size,
    content hash (files) or target (symlinks), extended attributes (names and values),
    modification time (a directory's is the clock time of the latest change that named it, the
    same at every site), and for a file with several names, the first of its paths (which
    names are links of one file). Left out: inode and file ids, which differ between sites by
    design; ctime and atime, which record when a site applied a change (ctime moves on every
    change a site makes or applies, so clients that watch it notice one); and where content
    is stored."""
    entries = sorted(meta.walk(), key=lambda item: item[0].encode("utf-8", "surrogateescape"))
    first_path: dict[int, str] = {}
    for path, inode in entries:
        if not inode.is_dir:
            first_path.setdefault(inode.ino, path)
    digest = hashlib.sha256()
    for path, inode in entries:
        kind = stat.S_IFMT(inode.mode)
        what = inode.content or "" if inode.is_file else inode.target or ""
        size = inode.size if not inode.is_dir else 0
        linked = first_path[inode.ino] if not inode.is_dir and inode.nlink > 1 else ""
        xattrs = ",".join(f"{name}={meta.getxattr(inode.ino, name).hex()}"
                          for name in meta.listxattr(inode.ino))
        line = (f"{path}\0{kind:o}\0{stat.S_IMODE(inode.mode):o}\0{inode.uid}:{inode.gid}\0"
                f"{size}\0{what}\0{xattrs}\0{inode.mtime_ns}\0{linked}\n")
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


DIGEST_EVERY = 5.0  # seconds between two computations of a running site's digest, at least


def digest_of_store(path: Path, site_name: str) -> tuple[str, int]:
    """The digest of the SQLite store at ``path`` and the journal position it holds, read
    through a read-only connection of its own (safe beside the running site, in any thread)."""
    from meridian.meta.sqlite import SqliteMetaStore

    store = SqliteMetaStore(path, site_name, read_only=True)
    try:
        return namespace_digest(store), store.last_seq()
    finally:
        store.close()


class DigestCache:
    """A running site's namespace digest, kept by a worker thread (it walks the whole
    namespace: a million files take seconds, which the site's loop must not wait for).

    ``current()`` answers at once with the last digest computed and the journal position it
    holds ("" before the first), and starts a new computation when the journal moved, at most
    once every ``DIGEST_EVERY`` seconds; ``fresh()`` waits for one if none was made yet.
    A store that is not SQLite is digested on the loop (tests' memory stores)."""

    def __init__(self, meta: MetaStore, path: Path | None, site_name: str) -> None:
        self.meta = meta
        self.path = path
        self.site_name = site_name
        self.value, self.seq, self.at = "", -1, -DIGEST_EVERY
        self._task: asyncio.Task[None] | None = None

    def current(self) -> tuple[str, int]:
        seq = self.meta.last_seq()
        now = time.monotonic()
        if seq != self.seq and now - self.at >= DIGEST_EVERY and self._task is None:
            self.at = now
            if self.path is None:
                self.value, self.seq = namespace_digest(self.meta), seq
            else:
                self._task = asyncio.get_running_loop().create_task(self._compute())
        return self.value, self.seq

    async def fresh(self) -> tuple[str, int]:
        self.current()
        if self.seq < 0 and self._task is not None:
            await asyncio.shield(self._task)
        return self.value, self.seq

    async def _compute(self) -> None:
        assert self.path is not None
        try:
            self.value, self.seq = await asyncio.to_thread(digest_of_store, self.path,
                                                           self.site_name)
        finally:
            self._task = None
