"""Open Clip: the public API of ``meridian.flame``'s clip handling, and :func:`new_clip`.

The work is done in small modules, re-exported here so callers import from one place:

    frames     FramePattern: ``name.[1001-1098].exr`` and ``name.%04d.exr`` paths
    xmlio      ClipError, safe parsing (no DTD, no entities), atomic writes
    elements   version names, dates, uids, new paths: the small pieces of a clip
    clipfile   OpenClip, ClipVersion: read, add_version, write
    merge      merge, merge_conflicts: uniting conflict copies
    scan       scan_versions: the versions of a scan-pattern clip, found on disk
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from meridian.errors import BadInput
from meridian.flame.clipfile import ClipVersion, OpenClip
from meridian.flame.elements import new_path_text, new_uid, utc_now
from meridian.flame.frames import FramePattern
from meridian.flame.merge import merge, merge_conflicts
from meridian.flame.scan import scan_versions
from meridian.flame.xmlio import ClipError, ParsedXml, serialize

__all__ = [
    "ClipError",
    "ClipVersion",
    "FramePattern",
    "OpenClip",
    "merge",
    "merge_conflicts",
    "new_clip",
    "scan_versions",
]

CLIP_SCHEMA_VERSION = "6"
"""The ``<clip version>`` new clips get: read by Flame 2019 and later."""


def _duration_label(frames: int, rate: tuple[int, int]) -> str:
    """Flame's duration label ``HH:MM:SS+FF`` (frames counted at the nearest whole rate)."""
    fps = max(1, round(rate[0] / rate[1]))
    seconds, frame = divmod(frames, fps)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{second:02d}+{frame:02d}"


def _rate(parent: ET.Element, tag: str, rate: tuple[int, int], **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {"type": "rate", **attrib})
    ET.SubElement(element, "numerator").text = str(rate[0])
    ET.SubElement(element, "denominator").text = str(rate[1])
    return element


def new_clip(name: str, pattern: str, *, version: str = "v000", track_uid: str = "video",
             width: int = 1920, height: int = 1080, rate: tuple[int, int] = (24, 1)) -> OpenClip:
    """A fresh one-track clip with one version: what Shot Publish writes for a shot's plate.

    ``pattern`` is a bracket frame pattern (``/p/sh010_plate.[1001-1098].exr``, written as
    given) or a single file (written with ``encoding="file"``). The track carries the
    duration (frames of the range at ``rate``, a fraction such as ``(24000, 1001)``), the feed
    a ``storageFormat`` of ``width`` x ``height`` and the ``sampleRate``; ``<versions>`` names
    ``version`` (creation date now, UTC) and both ``currentVersion`` attributes point at it.
    The clip has no path until written. Raises :class:`BadInput` for an empty name, version
    or track uid, a bad pattern, or a size or rate that is not positive."""
    if not name.strip() or not version.strip() or not track_uid.strip():
        raise BadInput("a new clip needs a name, a version name and a track uid")
    if width <= 0 or height <= 0 or rate[0] <= 0 or rate[1] <= 0:
        raise BadInput(f"{name}: size {width}x{height} and rate {rate[0]}/{rate[1]} "
                       "must be positive")
    encoding, text = new_path_text(pattern)
    frames = len(FramePattern.parse(text)) if encoding == "pattern" else 1

    root = ET.Element("clip", {"type": "clip", "version": CLIP_SCHEMA_VERSION})
    ET.SubElement(root, "name", {"type": "string"}).text = name
    tracks = ET.SubElement(root, "tracks", {"type": "tracks"})
    track = ET.SubElement(tracks, "track", {"type": "track", "uid": track_uid})
    ET.SubElement(track, "trackType").text = "video"
    ET.SubElement(track, "dropMode", {"type": "string"}).text = "NDF"
    duration = ET.SubElement(track, "duration",
                             {"type": "time", "label": _duration_label(frames, rate)})
    _rate(duration, "rate", rate)
    ET.SubElement(duration, "nbTicks").text = str(frames)
    ET.SubElement(duration, "dropMode").text = "NDF"
    ET.SubElement(track, "name", {"type": "string"}).text = name
    feeds = ET.SubElement(track, "feeds", {"currentVersion": version})
    feed = ET.SubElement(feeds, "feed", {"type": "feed", "vuid": version, "uid": new_uid()})
    storage = ET.SubElement(feed, "storageFormat", {"type": "format"})
    ET.SubElement(storage, "type").text = "video"
    ET.SubElement(storage, "width", {"type": "uint"}).text = str(width)
    ET.SubElement(storage, "height", {"type": "uint"}).text = str(height)
    ET.SubElement(storage, "pixelRatio", {"type": "float"}).text = "1"
    _rate(feed, "sampleRate", rate, version="4")
    spans = ET.SubElement(feed, "spans", {"type": "spans", "version": "4"})
    span = ET.SubElement(spans, "span", {"type": "span", "version": "4"})
    ET.SubElement(span, "path", {"encoding": encoding}).text = text
    versions = ET.SubElement(root, "versions", {"type": "versions", "currentVersion": version})
    entry = ET.SubElement(versions, "version", {"type": "version", "uid": version})
    ET.SubElement(entry, "name").text = version
    ET.SubElement(entry, "creationDate").text = utc_now()
    ET.SubElement(entry, "userData", {"type": "dict"})
    ET.indent(root, space="    ")
    return OpenClip.parse(serialize(ParsedXml(root)))
