"""Bringing things back: removed files and trees (undelete) and earlier contents of a file
(restore a version), at any site.

A restore is made of ordinary changes (create, content, time): they replicate like any other,
with the content hash the trash or version record holds, so every site shows the same bytes
(fetched from the bucket on first access, like any file). A restore is one transaction: all of
it or nothing. It never replaces an existing file.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from meridian.errors import AlreadyExists, BadInput, NotFound, StoreError
from meridian.meta import (
    AttrChanges,
    Inode,
    MetaStore,
    TrashRecord,
    UndoStore,
    VersionRecord,
    split_path,
)
from meridian.meta.undo import under


@dataclass
class Restored:
    """What a restore made: where, how many files and directories, how many bytes; the
    (directory inode, name) pairs it bound (for the mount's cache) and what it skipped."""

    path: str
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    names: list[tuple[int, str]] = field(default_factory=list)
    inodes: list[Inode] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def undo_store(meta: MetaStore) -> UndoStore:
    """``meta`` as an undo store (every engine is one). Raises StoreError otherwise."""
    if not isinstance(meta, UndoStore):
        raise StoreError(f"the {type(meta).__name__} store keeps no trash")
    return meta


def clean_path(path: str) -> str:
    """``./a/b``, ``/a/b`` or ``a/b`` as ``/a/b``. Raises BadPath for ``..`` or bad names."""
    return "/" + "/".join(split_path(path))


def choose_removal(records: list[TrashRecord], path: str,
                   at_ns: int | None = None) -> list[TrashRecord]:
    """The records an undelete of ``path`` brings back: its most recent removal at or before
    ``at_ns`` and, for a directory, the latest removal of every path below it made after the
    removal of ``path`` before that one (what ``rm -rf`` took with it). Records are oldest
    first; the answer is parents before children. Raises NotFound."""
    own = [r for r in records if r.path == path and (at_ns is None or r.time_ns <= at_ns)]
    if not own:
        when = " before that time" if at_ns is not None else ""
        raise NotFound(f"{path}: nothing removed there is in the trash{when}")
    top = own[-1]
    if not top.is_dir:
        return [top]
    since = own[-2].time_ns if len(own) > 1 else None
    latest: dict[str, TrashRecord] = {}
    for record in records:
        if (record.path != path and under(record.path, path) and record.time_ns <= top.time_ns
                and (since is None or record.time_ns > since)):
            latest[record.path] = record
    below = sorted(latest.values(), key=lambda r: (r.path.count("/"), r.path))
    return [top, *below]


def _parent_and_name(meta: MetaStore, path: str) -> tuple[Inode, str]:
    parent_path, _, name = path.rpartition("/")
    try:
        parent = meta.resolve(parent_path or "/")
    except NotFound:
        raise NotFound(f"{parent_path or '/'} does not exist: bring it back first, or give "
                       f"--as a path in an existing folder") from None
    if not parent.is_dir:
        raise BadInput(f"{parent_path} is not a folder")
    return parent, name


def undelete(meta: MetaStore, path: str, *, at_ns: int | None = None,
             as_path: str | None = None) -> Restored:
    """Bring back what was removed at ``path`` (see :func:`choose_removal`), at ``as_path``
    (default: where it was). Raises NotFound (nothing in the trash, or no parent folder),
    AlreadyExists (something is there: nothing is restored)."""
    store = undo_store(meta)
    path = clean_path(path)
    target = clean_path(as_path) if as_path is not None else path
    chosen = choose_removal(store.trash_list(path), path, at_ns)
    try:
        meta.resolve(target)
    except NotFound:
        pass
    else:
        raise AlreadyExists(f"{target} exists: nothing was restored (undelete never replaces a "
                            f"file); give --as NEW to bring it back beside it")
    _parent_and_name(meta, target)
    return bring_back(meta, chosen, path, target)


def bring_back(meta: MetaStore, chosen: list[TrashRecord], path: str, target: str) -> Restored:
    """Make ``chosen`` (parents first; paths under ``path``) again under ``target``, in one
    transaction; an entry whose folder is missing or whose name is taken is skipped."""
    store = undo_store(meta)
    done = Restored(target)
    made: dict[str, Inode] = {}
    with store.batch():
        for record in chosen:
            dest = target + record.path[len(path):]
            parent_path, _, name = dest.rpartition("/")
            parent = made.get(parent_path) or _existing_dir(meta, parent_path)
            if parent is None or meta_has(meta, parent, name):
                done.skipped.append(record.path)
                continue
            inode = meta.create(parent.ino, name, record.mode, record.uid, record.gid,
                                target=record.target)
            done.names.append((parent.ino, name))
            if record.is_dir:
                made[dest] = inode
                done.dirs += 1
                continue
            if stat.S_ISREG(record.mode):
                if record.hash is not None and meta.content(record.hash) is None:
                    done.skipped.append(record.path)  # its content is unknown here
                else:
                    inode = meta.set_content(inode.ino, record.hash, record.size,
                                             mtime_ns=record.mtime)
                    done.bytes += record.size
                done.inodes.append(inode)
            done.files += 1
        for record in chosen:  # a folder's time last: making its entries changed it
            dest = target + record.path[len(path):]
            if record.is_dir and dest in made:
                meta.setattr(made[dest].ino, AttrChanges(mtime_ns=record.mtime))
    return done


def _existing_dir(meta: MetaStore, path: str) -> Inode | None:
    try:
        inode = meta.resolve(path or "/")
    except NotFound:
        return None
    return inode if inode.is_dir else None


def meta_has(meta: MetaStore, parent: Inode, name: str) -> bool:
    try:
        meta.lookup(parent.ino, name)
    except NotFound:
        return False
    return True


def versions_of(meta: MetaStore, path: str) -> tuple[Inode, list[VersionRecord]]:
    """The file at ``path`` and its kept contents, oldest first (number N is index N-1)."""
    inode = meta.resolve(clean_path(path))
    if not inode.is_file:
        raise BadInput(f"{path} is not a regular file: only files have versions")
    return inode, undo_store(meta).versions(inode.file_id)


def restore_version(meta: MetaStore, path: str, number: int) -> tuple[Inode, VersionRecord]:
    """Make version ``number`` (1 = oldest kept) the current content of ``path``: a new
    version, so the content it replaces stays a version too. Raises NotFound, BadInput."""
    inode, kept = versions_of(meta, path)
    if not 1 <= number <= len(kept):
        raise BadInput(f"{path} has {len(kept)} versions kept: give --version 1 to {len(kept)}")
    chosen = kept[number - 1]
    if chosen.hash is not None and meta.content(chosen.hash) is None:
        raise NotFound(f"the content of version {number} is not known at this site any more")
    updated = meta.set_content(inode.ino, chosen.hash, chosen.size, mtime_ns=chosen.mtime,
                               base=inode.content_version)
    return updated, chosen
