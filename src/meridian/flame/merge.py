"""Merging the conflict copies two sites leave when both add a version to one clip at once.

Meridian keeps both writes (``docs/conflicts.md``): the later keeps ``X.clip``, the other
becomes ``X.conflict-<yyyymmdd>-<hhmmss>-<site>.clip`` beside it. :func:`merge` unites their
versions; :func:`merge_conflicts` does it for a folder tree and removes the merged copies.

The merge is deterministic (the same two files give the same bytes at every site), so two
sites merging the same copy at once write the same clip and converge.
"""

from __future__ import annotations

import copy as _copy
import datetime as _dt
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from meridian.flame.clipfile import ClipVersion, OpenClip
from meridian.flame.elements import DATE_FORMAT, new_uid, next_version_name
from meridian.flame.xmlio import ClipError

# X.conflict-<yyyymmdd>-<hhmmss>-<site>[-n].clip, tags possibly repeated (a copy of a copy).
_CONFLICT_COPY = re.compile(
    r"(?P<stem>.+?)(?:\.conflict-\d{8}-\d{6}-[A-Za-z0-9_-]+?(?:-\d+)?)+\.clip")
_DATE_FORMATS = (DATE_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M")


def parse_date(text: str | None) -> _dt.datetime | None:
    """A ``<creationDate>`` as a naive datetime (Flame's ``YYYY/MM/DD HH:MM:SS``, the same with
    dashes, or ISO 8601; an ISO time with an offset is turned into UTC); None if unreadable."""
    if not text:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return _dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            pass
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return when


def newest(versions: list[ClipVersion]) -> str | None:
    """The version with the latest creation date (a tie: the later in file order); without
    any readable date, the last version; None without versions."""
    dated = [(when, i, v.name) for i, v in enumerate(versions)
             if (when := parse_date(v.creation_date)) is not None]
    if dated:
        return max(dated)[2]
    return versions[-1].name if versions else None


def merge(clip: OpenClip, copy: OpenClip) -> tuple[OpenClip, list[str]]:
    """Unite the versions of ``clip`` and its conflict copy ``copy``.

    Returns a new clip based on ``clip`` (its path, and every element it has, kept; ``clip``
    and ``copy`` are not changed) and human-readable notes. Each version of ``copy`` that
    ``clip`` lacks is appended with its feeds and ``<version>`` element as they are. A name in
    both with the same paths is one version (kept as ``clip`` has it); with different paths
    the copy's is appended under the next free ``vNNN`` (a note says so), unless ``clip``
    already has a version with those paths (merged before), so merging twice adds nothing.
    Dates do not make versions differ. If anything was
    appended, current becomes the newest version (latest creation date, else the last added).
    Tracks of ``copy`` that ``clip`` lacks are left out (noted). Two scan-pattern clips merge
    to ``clip``; a scan clip and a feeds clip raise :class:`ClipError`."""
    merged = clip.copy()
    notes: list[str] = []
    label = copy.path.name if copy.path is not None else "the conflict copy"
    if clip.kind == "scan" or copy.kind == "scan":
        if clip.kind != copy.kind:
            raise ClipError(copy.path, None, "clip", f"cannot merge a {copy.kind} clip into "
                            f"a {clip.kind} clip ({clip.name})")
        if clip.scan_pattern != copy.scan_pattern:
            notes.append(f"{clip.name}: {label} has another ScanPattern "
                         f"({copy.scan_pattern}); kept {clip.scan_pattern}")
        return merged, notes
    ours = {v.name: v for v in merged.versions()}
    theirs = copy.versions()
    taken = set(ours) | {v.name for v in theirs}
    added = False
    for version in theirs:
        if version.name not in ours:
            name = version.name
            notes.append(f"{clip.name}: {name} added from {label}")
        elif any(v.paths == version.paths for v in ours.values()):
            continue  # the same version, or one merged before under a new name
        else:
            name = next_version_name(taken)
            taken.add(name)
            notes.append(f"{clip.name}: both sites made {version.name}; "
                         f"the one from {label} is now {name}")
        _graft(merged, copy, version.name, name, notes, label)
        added = True
    if added:
        current = newest(merged.versions())
        if current is not None:
            merged._set_current(current)
            notes.append(f"{clip.name}: current version {current}")
    return merged, notes


def _graft(into: OpenClip, source: OpenClip, old: str, new: str, notes: list[str],
           label: str) -> None:
    """Append version ``old`` of ``source`` to ``into`` as ``new`` (deep copies)."""
    track_uids = set(into.track_uids())
    feed_uids = {f.get("uid") for f in into._doc.root.iter("feed")}
    feeds: dict[str, ET.Element] = {}
    for track in source._tracks():
        feed = source._feed(track, old)
        if feed is None:
            continue
        uid = track.attrib["uid"]
        if uid not in track_uids:
            notes.append(f"{into.name}: track {uid} of {old} in {label} is not in the clip: "
                         "left out")
            continue
        element = _copy.deepcopy(feed)
        element.set("vuid", new)
        if element.get("uid") in feed_uids:
            element.set("uid", new_uid())
        feeds[uid] = element
    original = source._version_element(old)
    if original is None:
        version = into._new_version(new, None)
    else:
        version = _copy.deepcopy(original)
        version.set("uid", new)
        name = version.find("name")
        if name is not None and (name.text or "").strip() == old:
            name.text = new
    into._append_version(new, feeds, version)


def merge_conflicts(folder: Path) -> list[str]:
    """Merge every ``X.conflict-<yyyymmdd>-<hhmmss>-<site>.clip`` under ``folder`` (recursively)
    into the ``X.clip`` beside it: the merged clip replaces ``X.clip`` atomically (only if it
    changed), then the merged copies are deleted. Returns notes (paths relative to
    ``folder``). A copy or an ``X.clip`` that does not read is reported and left as it is; a
    copy without an ``X.clip`` is reported and left. Idempotent."""
    folder = Path(folder)
    groups: dict[Path, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for filename in sorted(filenames):
            match = _CONFLICT_COPY.fullmatch(filename)
            if match:
                groups.setdefault(Path(dirpath) / f"{match['stem']}.clip", []).append(
                    Path(dirpath) / filename)
    notes: list[str] = []
    for target, copies in sorted(groups.items()):
        notes += _merge_into(target, copies, folder)
    return notes


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def _merge_into(target: Path, copies: list[Path], folder: Path) -> list[str]:
    if not target.exists():
        return [f"{_relative(c, folder)}: no {target.name} beside it; left as it is"
                for c in copies]
    for _attempt in range(3):
        notes: list[str] = []
        try:
            before = target.read_bytes()
            clip = OpenClip.parse(before, target)
        except (ClipError, OSError) as exc:
            return [f"{exc}; its conflict copies are left as they are"]
        merged, done = clip, []
        for path in copies:
            try:
                merged, more = merge(merged, OpenClip.read(path))
            except ClipError as exc:
                notes.append(f"{exc}; left in place")
                continue
            notes += more
            done.append(path)
        if not done:
            return notes
        try:
            if merged.to_bytes() != clip.to_bytes():
                if target.read_bytes() != before:
                    continue  # changed while we merged: merge again with what is there now
                merged.write(target)
        except (ClipError, OSError) as exc:
            return notes + [f"{_relative(target, folder)}: not written ({exc}); "
                            "conflict copies kept"]
        for path in done:
            path.unlink(missing_ok=True)
        names = ", ".join(p.name for p in done)
        return notes + [f"{_relative(target, folder)}: merged {names}"]
    return [f"{_relative(target, folder)}: kept changing while merging; try again"]
