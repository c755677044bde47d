"""The versions of a scan-pattern clip, found the way Flame finds them: on the file system.

A ScanPattern is a path with a ``{version}`` token (it may appear several times, in folder and
file names, always with the same value) and, for an image sequence, a frame part: a bracket
range ``[1001-1098]`` (padding as written, numbers in the range), a printf token ``%04d`` or an
unbounded ``{frame}`` (any digits). Any other ``{token}`` matches any run of characters inside
one path component; everything else is literal. A ``{version}`` value is any non-empty run of
characters inside one path component (``v{version}`` with ``v001`` gives ``001``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_TOKEN = re.compile(r"\{version\}|\{frame\}|\[(\d+)-(\d+)\]|%(\d*)d|\{[A-Za-z_][\w#]*\}")


@dataclass(frozen=True)
class _Frame:
    """A frame group's constraint: a range and padding, or None for any number."""

    first: int | None
    last: int | None
    padding: int

    def accepts(self, digits: str) -> bool:
        number = int(digits)
        if self.first is not None and self.last is not None:
            if not self.first <= number <= self.last:
                return False
        return f"{number:0{self.padding}d}" == digits


@dataclass(frozen=True)
class _Component:
    """One path component of the pattern: literal text, or a regex with version/frame groups."""

    literal: str | None
    regex: re.Pattern[str] | None = None
    versions: int = 0
    frames: tuple[_Frame, ...] = ()

    def match(self, name: str, bound: str | None) -> tuple[bool, str | None]:
        """Whether ``name`` fits (with ``bound`` the version already fixed by a folder), and
        the version value it gives."""
        assert self.regex is not None
        found = self.regex.fullmatch(name)
        if found is None:
            return False, bound
        values = {found.group(f"v{i}") for i in range(self.versions)}
        if bound is not None:
            values.add(bound)
        if len(values) > 1:
            return False, bound
        if not all(f.accepts(found.group(f"f{i}")) for i, f in enumerate(self.frames)):
            return False, bound
        return True, (values.pop() if values else bound)


def _compile(component: str) -> _Component:
    if _TOKEN.search(component) is None:
        return _Component(component)
    parts: list[str] = []
    versions, at = 0, 0
    frames: list[_Frame] = []
    for token in _TOKEN.finditer(component):
        parts.append(re.escape(component[at:token.start()]))
        text = token.group(0)
        if text == "{version}":
            parts.append(f"(?P<v{versions}>.+?)")
            versions += 1
        elif text == "{frame}" or token.group(3) is not None or token.group(1) is not None:
            parts.append(fr"(?P<f{len(frames)}>\d+)")
            if token.group(1) is not None:
                frames.append(_Frame(int(token.group(1)), int(token.group(2)),
                                     len(token.group(1))))
            elif token.group(3) is not None:
                frames.append(_Frame(None, None, int(token.group(3) or "1") or 1))
            else:
                frames.append(_Frame(None, None, 1))
        else:
            parts.append(".*?")
        at = token.end()
    parts.append(re.escape(component[at:]))
    return _Component(None, re.compile("".join(parts)), versions, tuple(frames))


def _walk(folder: Path, components: list[_Component], bound: str | None,
          found: set[str]) -> None:
    head, rest = components[0], components[1:]
    if head.literal is not None:
        path = folder / head.literal
        if rest:
            if path.is_dir():
                _walk(path, rest, bound, found)
        elif bound is not None and path.exists() and not path.is_dir():
            found.add(bound)
        return
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        ok, version = head.match(entry.name, bound)
        if not ok or version is None:
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if rest and is_dir:
            _walk(Path(entry.path), rest, version, found)
        elif not rest and not is_dir:
            found.add(version)


def _version_key(value: str) -> tuple[int, int, str]:
    return (0, int(value), value) if value.isdigit() else (1, 0, value)


def scan_versions(pattern: str, root: Path) -> list[str]:
    """The ``{version}`` values for which at least one file fitting ``pattern`` (frame numbers
    within its range) exists, sorted (numbers by value, then other values by text). An
    absolute ``pattern`` is taken as it is; a relative one is under ``root``. A pattern
    without ``{version}`` has no versions to list: ``[]``. Folders that cannot be read are
    skipped. Only reads the file system."""
    if "{version}" not in pattern:
        return []
    start = Path("/") if os.path.isabs(pattern) else Path(root)
    components = [_compile(c) for c in pattern.split("/") if c not in ("", ".")]
    if not components:
        return []
    found: set[str] = set()
    _walk(start, components, None, found)
    return sorted(found, key=_version_key)
