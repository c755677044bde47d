"""How conflicts are named: conflict copies' names and ids, the same at every site
(``docs/conflicts.md``), and what a version's author wrote (kept for its copy)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from typing import Any

from meridian.meta.clock import physical_ms
from meridian.meta.journal import (
    ContentOp,
    version_hlc,
    version_origin,
)


def _tag(ver: str) -> str:
    """``.conflict-<yyyymmdd>-<hhmmss>-<site>`` of the change ``ver`` (its second, UTC)."""
    when = _dt.datetime.fromtimestamp(physical_ms(version_hlc(ver)) / 1000, tz=_dt.timezone.utc)
    return f".conflict-{when:%Y%m%d-%H%M%S}-{version_origin(ver)}"


def conflict_name(name: str, ver: str, n: int = 1) -> str:
    """``name.conflict-<yyyymmdd>-<hhmmss>-<site>.ext`` for the change ``ver``
    (docs/design.md, rule 5; ``n`` > 1 adds ``-n`` for a collision). A leading dot does not
    start an extension."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    tag = _tag(ver) + (f"-{n}" if n > 1 else "")
    room = 255 - len(os.fsencode(tag + (f".{ext}" if ext else "")))
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return stem + tag + (f".{ext}" if ext else "")

_TAG_END = r"(?:-\d+)?(?=\.[^.]*$|$)"  # a collision number, then the extension or the end
_CONFLICT_TAG = re.compile(r"\.conflict-\d{8}-\d{6}-[a-z0-9_-]+?" + _TAG_END)

def lost_to_a_conflict(name: str, ver: str) -> bool:
    """Whether ``name`` carries the tag Meridian gives a name bound by the change ``ver``
    when it loses that name (``conflict_name``: the change's second and site, maybe ``-n``).
    A name a user gave that only looks like a conflict name does not: its tags are the
    user's, the same at every site."""
    return re.search(re.escape(_tag(ver)) + _TAG_END, name) is not None


def numbered_after(name: str, other: str) -> bool:
    """Whether ``other`` is the conflict name ``name`` with a collision number (``-n``,
    n >= 2, as ``conflict_name`` adds when ``name`` itself is taken)."""
    tags = list(_CONFLICT_TAG.finditer(name))
    if not tags:
        return False
    end = tags[-1].end()
    found = re.fullmatch(re.escape(name[:end]) + r"-([0-9]+)" + re.escape(name[end:]), other)
    return found is not None and int(found.group(1)) >= 2


def original_name(name: str) -> str:
    """``name`` without the conflict tags Meridian added to it (the name a copy is named
    after, whatever name its file has at this site by now)."""
    return _CONFLICT_TAG.sub("", name)

def copy_file_id(file_id: str, ver: str) -> str:
    """The id of the conflict copy that keeps version ``ver`` of ``file_id``: the same at every
    site, so every site makes (and later removes) the same file."""
    return f"{file_id}!{ver}"

def is_copy_id(file_id: str) -> bool:
    """Whether ``file_id`` is a conflict copy's (``copy_file_id``)."""
    return "!" in file_id


def copy_version(file_id: str) -> str:
    """The version a conflict copy keeps (``copy_file_id``); "" for any other file id."""
    return file_id.rpartition("!")[2] if is_copy_id(file_id) else ""

_AUTHORED = ("parent", "name", "mode", "mtime", "uid", "gid")

def authored(op: ContentOp) -> dict[str, Any]:
    """How a ``content`` entry's version was written: where (directory file id and name),
    with which mode, owner and modification time. Kept per file (``wrote:<file id>``) while
    the version is current: what its conflict copy gets, should it lose to a later one."""
    return {key: getattr(op, key) for key in _AUTHORED}

def authored_kept(raw: str | None) -> dict[str, Any]:
    """``authored`` as kept (stores written before it was a mapping kept a list)."""
    found = json.loads(raw) if raw else {}
    return dict(zip(_AUTHORED, found)) if isinstance(found, list) else dict(found)
