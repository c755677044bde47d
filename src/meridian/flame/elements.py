"""Small pieces of Open Clip documents: version names, dates, uids, paths, and the element
lookups :mod:`meridian.flame.clipfile` is built from. Pure functions, no I/O."""

from __future__ import annotations

import datetime as _dt
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from meridian.errors import BadInput
from meridian.flame.frames import FramePattern, has_frame_range, has_printf_token

_VERSION_NAME = re.compile(r"v(\d+)")
DATE_FORMAT = "%Y/%m/%d %H:%M:%S"


def next_version_name(names: Iterable[str]) -> str:
    """The next free ``vNNN`` after the highest ``v<digits>`` in ``names`` (``v001`` when there
    is none); at least three digits, more if the highest has more."""
    numbered = [(int(m.group(1)), len(m.group(1)))
                for m in (_VERSION_NAME.fullmatch(n) for n in names) if m]
    if not numbered:
        return "v001"
    top, width = max(numbered)
    return f"v{top + 1:0{max(width, 3)}d}"


def utc_now() -> str:
    """Now, as Meridian writes ``<creationDate>``: UTC, ``YYYY/MM/DD HH:MM:SS``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime(DATE_FORMAT)


def new_uid() -> str:
    """A feed uid: an upper-case GUID, as Flame writes them (unique within a clip)."""
    return str(uuid.uuid4()).upper()


def new_path_text(pattern: str) -> tuple[str, str]:
    """``(encoding, text)`` of the ``<path>`` for a new version: ``"pattern"`` for a bracket
    range (kept as given, padding and all), ``"file"`` for a single file (a still or a movie).
    Raises :class:`BadInput` for an empty path, a bad range, or a printf/``{frame}`` path (new
    versions are written in the bracket form)."""
    text = pattern.strip()
    if not text:
        raise BadInput("empty frame pattern")
    if has_frame_range(text):
        FramePattern.parse(text)
        return "pattern", text
    if has_printf_token(text) or "{frame}" in text:
        raise BadInput(f"{text!r}: write new versions in the bracket form, "
                       "e.g. /p/sh010_v001.[1001-1098].exr")
    return "file", text


def tag_name(element: ET.Element) -> str:
    """An element's name without its namespace; ``"comment"`` for comments and PIs."""
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else "comment"


def kept_attributes(element: ET.Element | None, keys: tuple[str, ...],
                    default: dict[str, str]) -> dict[str, str]:
    """The ``keys`` attributes ``element`` has (to shape a new element like an old one), or
    ``default`` when there is no old element."""
    if element is None:
        return dict(default)
    return {k: element.attrib[k] for k in keys if k in element.attrib}


def first_path(feed: ET.Element) -> tuple[ET.Element | None, ET.Element | None]:
    """The first ``<span>`` of ``feed`` with a path, and that ``<path>`` (stereo: the first
    of ``<paths>``)."""
    for span in feed.iterfind("spans/span"):
        path = span.find("path")
        if path is None:
            path = span.find("paths/path")
        if path is not None and (path.text or "").strip():
            return span, path
    return None, None


def int_child(holders: Iterable[ET.Element | None], tag: str) -> int | None:
    """The integer in the first ``<tag>`` child of ``holders`` (its text, or its ``nbTicks``)."""
    for holder in holders:
        child = holder.find(tag) if holder is not None else None
        if child is not None:
            text = (child.text or "").strip() or (child.findtext("nbTicks") or "").strip()
            if text.isdigit():
                return int(text)
    return None
