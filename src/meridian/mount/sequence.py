"""Numbered image sequences (``plate.0100.exr``): which frames follow a frame.

Pure functions; the mount uses them for sequence read-ahead (docs/design.md, data flow step 7):
reading a frame whose content is not local starts fetching the next few frames in parallel,
so playback at a far site runs at disk speed rather than at round-trip speed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_FRAME = re.compile(r"^(?P<head>.*?)(?P<number>\d+)(?P<tail>\.[A-Za-z0-9]+)$")


def following_frames(name: str) -> Iterator[str]:
    """The names of the frames after ``name``, one by one, without end ("" never)."""
    match = _FRAME.match(name)
    if match is None:
        return
    digits = match.group("number")
    number = int(digits)
    while True:
        number += 1
        yield f"{match.group('head')}{number:0{len(digits)}d}{match.group('tail')}"


def next_frames(name: str, count: int) -> list[str]:
    """The names of the ``count`` frames after ``name``, keeping its zero padding.

    ``next_frames("plate.0099.exr", 2) == ["plate.0100.exr", "plate.0101.exr"]``; a name
    without a frame number before its extension gives ``[]``.
    """
    match = _FRAME.match(name)
    if match is None or count <= 0:
        return []
    digits = match.group("number")
    first = int(digits)
    return [f"{match.group('head')}{first + i:0{len(digits)}d}{match.group('tail')}"
            for i in range(1, count + 1)]
