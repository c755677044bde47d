"""Read-only views of undo in the mount: ``/.snapshot/NAME/...`` (every snapshot, from its
manifest) and ``/.meridian/trash/...`` (the latest removal of every removed path).

Both are rows of the mount's internal table (``internal.py``): directories whose entries come
from providers, and files whose bytes are the content their record names. A file's content is
fetched (from the bucket or a peer, like any file) when it is opened, then read whole.
``.snapshot`` is not listed in the root (as on a filer) but found by name.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meridian.errors import MeridianError
from meridian.mount.internal import InternalNodes, VirtualDir, VirtualFile, VirtualNode

if TYPE_CHECKING:
    from meridian.site import Site

log = logging.getLogger(__name__)
SNAPSHOT_DIR = ".snapshot"
TRASH_DIR = "trash"

Entries = dict[str, list[Any]]  # path -> [mode, uid, gid, size, mtime_ns, hash, target]


@dataclass(frozen=True)
class ContentFile(VirtualFile):
    """A read-only file whose bytes are the content ``hash`` (fetched when opened)."""

    hash: str | None = None


def _index(entries: Entries) -> dict[str, list[tuple[str, list[Any]]]]:
    """Directory path -> its entries (name, attributes); folders an entry needs but the
    entries do not list (a file removed from a folder that still exists) are made up."""
    children: dict[str, dict[str, list[Any]]] = {"/": {}}
    for path in sorted(entries, key=lambda p: (p.count("/"), p)):
        parent, _, name = path.rpartition("/")
        parent = parent or "/"
        cursor = "/"
        for part in [p for p in parent.split("/") if p]:  # made-up folders on the way
            child = f"{cursor.rstrip('/')}/{part}"
            children.setdefault(cursor, {}).setdefault(
                part, [stat.S_IFDIR | 0o755, 0, 0, 0, 0, None, None])
            cursor = child
        children.setdefault(parent, {})[name] = entries[path]
    return {d: sorted(named.items()) for d, named in children.items()}


def _nodes(index: dict[str, list[tuple[str, list[Any]]]], directory: str,
           read: Callable[[str | None, int], bytes]) -> list[VirtualNode]:
    nodes: list[VirtualNode] = []
    for name, (mode, _uid, _gid, size, mtime, hash, _target) in index.get(directory, []):
        path = f"{directory.rstrip('/')}/{name}"
        if stat.S_ISDIR(mode):
            nodes.append(VirtualDir(name, _lister(index, path, read)))
        elif stat.S_ISREG(mode):
            nodes.append(ContentFile(name, _reader(read, hash, size), stat.S_IMODE(mode) & 0o444,
                                     size=size, mtime_ns=mtime, hash=hash))
    return nodes


def _lister(index: dict[str, list[tuple[str, list[Any]]]], path: str,
            read: Callable[[str | None, int], bytes]) -> Callable[[], list[VirtualNode]]:
    return lambda: _nodes(index, path, read)


def _reader(read: Callable[[str | None, int], bytes], hash: str | None,
            size: int) -> Callable[[], bytes]:
    return lambda: read(hash, size)


class UndoViews:
    """The providers of ``/.snapshot`` and ``/.meridian/trash`` for one site."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._indexes: dict[str, dict[str, list[tuple[str, list[Any]]]]] = {}

    def attach(self, internal: InternalNodes, root: int, meta_dir: int) -> None:
        internal.attach(root, VirtualDir(SNAPSHOT_DIR, self._snapshots), listed=False)
        internal.attach(meta_dir, VirtualDir(TRASH_DIR, self._trash))

    def _read(self, hash: str | None, size: int) -> bytes:
        """Bytes of a content that :meth:`fetch` made local (empty if it is not)."""
        if hash is None or not self.site.volume.has(hash):
            return b""
        return self.site.volume.read(hash, 0, size)

    async def fetch(self, node: VirtualNode) -> None:
        """Before a view's file is opened: its content local, like any file's."""
        if isinstance(node, ContentFile) and node.hash is not None and node.size:
            await self.site.mover.ensure_local(node.hash, node.size, 0, node.size)

    def _snapshots(self) -> list[VirtualNode]:
        nodes: list[VirtualNode] = []
        for record in self.site.undo.store.snapshots():
            index = self._indexes.get(record.manifest)
            if index is None:
                try:
                    manifest = self.site.undo.manifest(record)
                except (MeridianError, OSError) as exc:
                    log.warning("snapshot %s cannot be shown yet: %s", record.name, exc)
                    continue
                index = self._indexes[record.manifest] = _index(manifest.entries)
            nodes.append(VirtualDir(record.name, _lister(index, "/", self._read)))
        return nodes

    def _trash(self) -> list[VirtualNode]:
        latest: Entries = {}
        for r in self.site.undo.store.trash_list():  # oldest first: the latest removal stays
            latest[r.path] = [r.mode, r.uid, r.gid, r.size, r.mtime, r.hash, r.target]
        return _nodes(_index(latest), "/", self._read)
