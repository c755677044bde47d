"""Where a local volume keeps its files, and how it finds them again after a restart.

Layout under the volume's root::

    staging/<random>            files being written through the mount (never acknowledged)
    content/<h[0:2]>/<h>        complete instances, read-only to the owner (mode 0o400)
    partial/<h>.data            a partial instance's bytes (sparse file of the full size)
    partial/<h>.ranges          {"size": N, "ranges": [[a, b], ...]}: which bytes are present

A ``.ranges`` file only ever names bytes already fsync'd in its ``.data`` file, and is
replaced atomically, so after any crash it is an honest (possibly older) account. Every folder
is 0700 and every file 0600 or 0400: no other local user reads a volume.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from meridian.content.durable import (
    CONTENT_FILE_MODE,
    PRIVATE_DIR_MODE,
    fsync_dir,
    is_temp_name,
    make_dir_durably,
    unlink_if_present,
)
from meridian.content.hashing import HASH_HEX_LENGTH, check_hash
from meridian.content.ranges import RangeSet
from meridian.errors import BadPath

DATA_SUFFIX = ".data"
RANGES_SUFFIX = ".ranges"
SHARDS = tuple(f"{n:02x}" for n in range(256))  # content/<first two hex digits of the hash>/


@dataclass(frozen=True)
class VolumeLayout:
    """The paths of one volume. Pure: no I/O except :meth:`create_dirs` and
    :meth:`ready_content_path`."""

    root: Path
    # content/<h[:2]> folders known to exist durably in this run (nothing removes one)
    _ready_shards: set[str] = field(default_factory=set, compare=False, repr=False)

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    @property
    def content_dir(self) -> Path:
        return self.root / "content"

    @property
    def partial_dir(self) -> Path:
        return self.root / "partial"

    def content_path(self, content_hash: str) -> Path:
        return self.content_dir / content_hash[:2] / content_hash

    def ready_content_path(self, content_hash: str) -> Path:
        """:meth:`content_path`, its shard folder made durably if it is missing: the one
        check of every install into ``content/`` (a commit, an adopted or fetched content, a
        finished partial instance). :meth:`create_dirs` makes all 256 at open, so each is
        looked at once per run, not on every install. Safe from several threads."""
        dest = self.content_path(content_hash)
        if dest.parent.name not in self._ready_shards:
            make_dir_durably(dest.parent)
            self._ready_shards.add(dest.parent.name)
        return dest

    def partial_data_path(self, content_hash: str) -> Path:
        return self.partial_dir / (content_hash + DATA_SUFFIX)

    def partial_ranges_path(self, content_hash: str) -> Path:
        return self.partial_dir / (content_hash + RANGES_SUFFIX)

    def new_staging_path(self) -> Path:
        return self.staging_dir / secrets.token_hex(16)

    def create_dirs(self) -> None:
        """Create the root and its three folders durably, private to the owner (a folder
        that is open to others is closed), and the 256 shard folders of ``content/`` (made
        here once, so that the first content of a shard, committed or fetched, does not pay
        an fsync of ``content/`` for its folder). Idempotent."""
        self.root.mkdir(PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        created = False
        for folder in (self.root, self.staging_dir, self.content_dir, self.partial_dir):
            if not folder.is_dir():
                folder.mkdir(PRIVATE_DIR_MODE)
                created = True
            elif folder.stat().st_mode & 0o077:
                folder.chmod(PRIVATE_DIR_MODE)
        if created:
            fsync_dir(self.root)
        shards = False
        for shard in SHARDS:
            folder = self.content_dir / shard
            if not folder.is_dir():
                folder.mkdir(PRIVATE_DIR_MODE)
                shards = True
        if shards:
            fsync_dir(self.content_dir)


def encode_partial_record(size: int, ranges: RangeSet) -> bytes:
    """The bytes of a ``.ranges`` file."""
    return json.dumps({"size": size, "ranges": ranges.to_json()}, separators=(",", ":")).encode()


def decode_partial_record(data: bytes) -> tuple[int, RangeSet]:
    """Parse a ``.ranges`` file into (size, ranges). Raises ValueError if it is malformed or
    names bytes beyond the size."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    size = record.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"bad size {size!r}")
    ranges = RangeSet.from_json(record.get("ranges"))
    if any(end > size for _, end in ranges):
        raise ValueError("ranges reach past the size")
    return size, ranges


@dataclass(frozen=True)
class FoundInstance:
    """An instance found on disk at start-up. ``ranges`` is None for a complete instance."""

    hash: str
    size: int
    ranges: RangeSet | None
    last_used: float


def _last_used(stat: os.stat_result) -> float:
    return max(stat.st_atime, stat.st_mtime)


def _is_hash(name: str) -> bool:
    if len(name) != HASH_HEX_LENGTH:
        return False
    try:
        check_hash(name)
    except BadPath:
        return False
    return True


def recover(layout: VolumeLayout) -> list[FoundInstance]:
    """Tidy up what a crash may have left and list the instances on disk.

    Removes every staging file (none was acknowledged), every temp file, partial instances
    whose ``.ranges`` is missing or corrupt or whose ``.data`` has the wrong size, orphan
    ``.ranges`` files, and partial instances of content that is also complete; closes content
    files and folders that other users could read (older versions made them 0444). Files with
    names it does not recognise are left alone and not counted. Idempotent; not thread-safe
    (runs before the volume is shared). Raises OSError from the file system.
    """
    for entry in os.scandir(layout.staging_dir):
        if entry.is_file(follow_symlinks=False):
            unlink_if_present(Path(entry.path))
    fsync_dir(layout.staging_dir)

    found: list[FoundInstance] = []
    complete: set[str] = set()
    for shard in os.scandir(layout.content_dir):
        if not shard.is_dir(follow_symlinks=False):
            continue
        if shard.stat(follow_symlinks=False).st_mode & 0o077:
            os.chmod(shard.path, PRIVATE_DIR_MODE)
        for entry in os.scandir(shard.path):
            if is_temp_name(entry.name):
                unlink_if_present(Path(entry.path))
            elif _is_hash(entry.name) and entry.name[:2] == shard.name:
                stat = entry.stat(follow_symlinks=False)
                if stat.st_mode & 0o077:
                    os.chmod(entry.path, CONTENT_FILE_MODE)
                found.append(FoundInstance(entry.name, stat.st_size, None, _last_used(stat)))
                complete.add(entry.name)

    for entry in os.scandir(layout.partial_dir):
        name = entry.name
        if is_temp_name(name):
            unlink_if_present(Path(entry.path))
        elif name.endswith(RANGES_SUFFIX) and _is_hash(name[: -len(RANGES_SUFFIX)]):
            if not layout.partial_data_path(name[: -len(RANGES_SUFFIX)]).exists():
                unlink_if_present(Path(entry.path))  # orphan: its data was finished or discarded
        elif name.endswith(DATA_SUFFIX) and _is_hash(name[: -len(DATA_SUFFIX)]):
            content_hash = name[: -len(DATA_SUFFIX)]
            partial = _load_partial(layout, content_hash, entry)
            if partial is None or content_hash in complete:
                unlink_if_present(layout.partial_ranges_path(content_hash))
                unlink_if_present(Path(entry.path))
            else:
                found.append(partial)
    return found


def _load_partial(
    layout: VolumeLayout, content_hash: str, data_entry: os.DirEntry[str]
) -> FoundInstance | None:
    try:
        size, ranges = decode_partial_record(layout.partial_ranges_path(content_hash).read_bytes())
    except (OSError, ValueError):
        return None
    stat = data_entry.stat(follow_symlinks=False)
    if stat.st_size != size:
        return None
    return FoundInstance(content_hash, size, ranges, _last_used(stat))
