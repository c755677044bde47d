"""``meridian.meta`` — the namespace store (see ``interface.py`` for the contracts).

Engines are chosen by URL: ``sqlite:///path/meta.db`` (the embedded default) or ``memory://``.
"""

from __future__ import annotations

from pathlib import Path

from meridian.errors import ConfigError
from meridian.meta.entries import check_entry, entry_from_wire
from meridian.meta.interface import (
    LOST_FOUND_FILE_ID,
    MAX_NAME,
    META_DIR_FILE_ID,
    RESERVED_FILE_IDS,
    ROOT_FILE_ID,
    ROOT_INO,
    ApplyResult,
    AttrChanges,
    ContentRecord,
    Inode,
    JournalEntry,
    MetaStore,
    PendingUpload,
    StoredObjective,
    check_name,
    split_path,
)
from meridian.meta.journal import (
    JOURNAL_FORMAT,
    JOURNAL_STREAM_MEDIA_TYPE,
    ContentOp,
    CreateOp,
    InstanceOp,
    LinkOp,
    Op,
    RemovexattrOp,
    RenameOp,
    RetireOp,
    RmdirOp,
    SetattrOp,
    SetxattrOp,
    UnlinkOp,
)
from meridian.meta.undo import (
    TRASH_SETTING,
    SnapshotRecord,
    TrashRecord,
    UndoStore,
    VersionRecord,
)


def open_meta_store(url: str, site_name: str, *, read_only: bool = False) -> MetaStore:
    """Open (creating if needed) the store at ``url`` for ``site_name``.

    Raises ConfigError for an unknown scheme, StoreError for a store that cannot be used.
    """
    if url.startswith("sqlite://"):
        from meridian.meta.sqlite import SqliteMetaStore

        return SqliteMetaStore(Path(url.removeprefix("sqlite://")), site_name, read_only=read_only)
    if url == "memory://":
        from meridian.meta.memory import MemoryMetaStore

        return MemoryMetaStore(site_name)
    raise ConfigError("meta.url", f"unknown store {url!r}: use sqlite:///path or memory://")


__all__ = [
    "JOURNAL_FORMAT", "JOURNAL_STREAM_MEDIA_TYPE", "LOST_FOUND_FILE_ID", "MAX_NAME", "META_DIR_FILE_ID",
    "RESERVED_FILE_IDS", "ROOT_FILE_ID", "ROOT_INO", "ApplyResult", "AttrChanges", "ContentOp",
    "ContentRecord", "CreateOp", "Inode", "InstanceOp", "JournalEntry", "LinkOp", "MetaStore",
    "Op", "PendingUpload", "RemovexattrOp", "RenameOp", "RetireOp", "RmdirOp", "SetattrOp",
    "SetxattrOp", "StoredObjective", "UnlinkOp", "check_entry", "check_name",
    "TRASH_SETTING", "SnapshotRecord", "TrashRecord", "UndoStore", "VersionRecord",
    "entry_from_wire", "open_meta_store", "split_path",
]
