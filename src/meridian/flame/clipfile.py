"""Open Clip files (``.clip``): read them, append a version, write them back atomically.

Two kinds of clip are read alike:

- **feeds** (``kind == "feeds"``): ``<tracks>`` of ``<track uid>``, each with ``<feeds>`` of one
  ``<feed vuid>`` per version; ``<versions>`` holds each version's metadata (name, date). A
  version is the set of feeds sharing a ``vuid`` across tracks.
- **scan** (``kind == "scan"``): no tracks, a ``<handler>`` whose ``ScanPattern`` has a
  ``{version}`` token; Flame finds the versions on disk (:func:`meridian.flame.scan.scan_versions`).
  A clip with both tracks and a ScanPattern is a feeds clip (its versions are listed).

Everything this module does not understand is kept: parsing then :meth:`OpenClip.to_bytes`
gives the same infoset (elements, attributes, text, comments, order; only whitespace that was
not read may differ). Reading checks what the versions rely on (root ``<clip>``, track uids
unique, each feed's ``vuid`` unique in its track, version uids unique) and raises
:class:`~meridian.flame.xmlio.ClipError` naming file, line and element otherwise; a clip that
fails to read is never overwritten by :meth:`OpenClip.write`.

Dates Meridian writes (``<creationDate>``) are UTC, ``YYYY/MM/DD HH:MM:SS`` as Flame writes
them, so versions written at two sites compare by date.
"""

from __future__ import annotations

from copy import deepcopy
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from meridian.errors import BadInput
from meridian.flame.elements import (
    first_path,
    int_child,
    kept_attributes,
    new_path_text,
    new_uid,
    next_version_name,
    tag_name,
    utc_now,
)
from meridian.flame.frames import FramePattern, has_frame_range, has_printf_token
from meridian.flame.xmlio import (
    MAX_CLIP_BYTES,
    ClipError,
    ParsedXml,
    indent_unit,
    insert_child,
    parse_xml,
    serialize,
    write_atomic,
)


@dataclass(frozen=True)
class ClipVersion:
    """One version of a feeds clip. ``name`` is its vuid (``"v001"``); ``creation_date`` the
    ``<creationDate>`` text of its ``<version>`` (None when absent); ``paths`` maps each track
    uid that has a feed of this version to the first ``<path>`` of that feed, as written
    (bracket, printf or plain file path; surrounding whitespace stripped)."""

    name: str
    creation_date: str | None
    paths: dict[str, str]


class OpenClip:
    """One Open Clip document. Build one with :meth:`read`, :meth:`parse` or :func:`new_clip`.

    ``path`` is the file it was read from (None for bytes); :meth:`write` writes there by
    default. Methods that change the clip change this object only; nothing is on disk before
    :meth:`write`. Not thread-safe."""

    def __init__(self, doc: ParsedXml, path: Path | None = None) -> None:
        self.path = path
        self._doc = doc
        self._check()

    @classmethod
    def read(cls, path: Path | str) -> OpenClip:
        """Read and check the clip at ``path``. Raises :class:`ClipError` when it cannot be
        read, is not well-formed, declares a DTD or entities, or is not a usable clip."""
        path = Path(path)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_CLIP_BYTES + 1)
        except OSError as exc:
            raise ClipError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data: bytes, path: Path | str | None = None) -> OpenClip:
        """Parse ``data``; ``path`` names it in errors and is where :meth:`write` writes."""
        target = Path(path) if path is not None else None
        return cls(parse_xml(data, target), target)

    # -- reading ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The clip's ``<name>``; else the file name without ``.clip``; else ``""``."""
        text = (self._doc.root.findtext("name") or "").strip()
        if text:
            return text
        return self.path.stem if self.path is not None else ""

    @property
    def kind(self) -> str:
        """``"feeds"`` (versions listed in the file) or ``"scan"`` (found on disk by Flame)."""
        return "feeds" if self._tracks() else "scan"

    @property
    def scan_pattern(self) -> str | None:
        """The handler's ScanPattern text (with its ``{version}`` token), None without one."""
        element = self._scan_element()
        return (element.text or "").strip() if element is not None else None

    def track_uids(self) -> list[str]:
        """The track uids, in file order (``[]`` for a scan clip)."""
        return [t.attrib["uid"] for t in self._tracks()]

    def versions(self) -> list[ClipVersion]:
        """The versions in file order: feed vuids in order of first appearance, then versions
        only ``<versions>`` lists. ``[]`` for a scan clip (see ``scan_versions``)."""
        return [self._clip_version(n) for n in self._version_names()]

    @property
    def current_version(self) -> str | None:
        """``<versions currentVersion>``; else the first track's ``<feeds currentVersion>``;
        else the last version; None for a scan clip or a clip without versions."""
        if self.kind == "scan":
            return None
        versions = self._doc.root.find("versions")
        if versions is not None and versions.get("currentVersion"):
            return versions.get("currentVersion")
        for track in self._tracks():
            current = self._feeds(track).get("currentVersion")
            if current:
                return current
        names = self._version_names()
        return names[-1] if names else None

    def frame_patterns(self, name: str) -> dict[str, FramePattern]:
        """Track uid -> the frames of version ``name``, for tracks whose path is a sequence:
        a bracket range, or a printf token with ``<startFrame>`` and ``<duration>`` in the span
        or the feed. Single files and unbounded ``{frame}`` paths are left out. Raises
        :class:`ClipError` for a range that cannot be read."""
        result: dict[str, FramePattern] = {}
        for track in self._tracks():
            feed = self._feed(track, name)
            span, path = first_path(feed) if feed is not None else (None, None)
            if path is None or path.get("encoding") == "file":
                continue
            text = (path.text or "").strip()
            try:
                if has_frame_range(text):
                    result[track.attrib["uid"]] = FramePattern.parse(text)
                elif has_printf_token(text):
                    start = int_child((span, feed), "startFrame")
                    duration = int_child((span, feed), "duration")
                    if start is None or not duration:
                        raise BadInput("a printf path needs <startFrame> and <duration>")
                    result[track.attrib["uid"]] = FramePattern.parse_printf(
                        text, start, start + duration - 1)
            except BadInput as exc:
                raise self._error(path, str(exc)) from None
        return result

    # -- changing --------------------------------------------------------------------------

    def add_version(self, paths: dict[str, str] | str, name: str | None = None,
                    creation_date: str | None = None) -> str:
        """Append one version and make it current; returns its name.

        ``paths``: a ``str`` is the one pattern of a one-track clip; a clip with several tracks
        takes a dict with a pattern for every track uid. Each track gets a ``<feed>`` (its
        ``storageFormat`` copied from the track's last feed), ``<versions>`` gets a
        ``<version>`` (created, listing the existing versions, if the clip had none), and both
        ``currentVersion`` attributes name the new version. ``name`` defaults to the next free
        ``vNNN``; ``creation_date`` to now (UTC). Raises :class:`ClipError` for a scan clip or
        a name that exists, :class:`BadInput` for unknown or missing tracks or a bad pattern;
        nothing changes then."""
        if self.kind == "scan":
            raise self._error(self._doc.root, "a scan-pattern clip lists no versions: add "
                              "files that match its ScanPattern instead")
        uids = self.track_uids()
        if isinstance(paths, str):
            if len(uids) != 1:
                raise BadInput(f"{self.name}: {len(uids)} tracks ({', '.join(uids)}): "
                               "give one pattern per track uid")
            paths = {uids[0]: paths}
        unknown, missing = set(paths) - set(uids), set(uids) - set(paths)
        if unknown or missing:
            raise BadInput(f"{self.name}: tracks are {', '.join(uids)}"
                           + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
                           + (f"; missing: {', '.join(sorted(missing))}" if missing else ""))
        texts = {uid: new_path_text(text) for uid, text in paths.items()}
        names = self._version_names()
        if name is None:
            name = next_version_name(names)
        elif not name.strip() or name != name.strip():
            raise BadInput(f"{name!r}: not a version name")
        elif name in names:
            existing = self._version_element(name)
            raise self._error(existing if existing is not None else self._doc.root,
                              f"version {name!r} exists")
        feeds = {t.attrib["uid"]: self._new_feed(t, name, *texts[t.attrib["uid"]])
                 for t in self._tracks()}
        self._append_version(name, feeds, self._new_version(name, creation_date or utc_now()))
        self._set_current(name)
        return name

    # -- writing ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The clip as UTF-8 XML with a declaration."""
        return serialize(self._doc)

    def write(self, path: Path | str | None = None) -> None:
        """Replace the file at ``path`` (default: :attr:`path`) atomically: a temp file
        ``.<name>.tmp-<random>`` in the same folder, fsync, rename, fsync the folder. Refuses
        (:class:`ClipError`, file untouched) to overwrite a file that is not a readable clip.
        Raises :class:`BadInput` without a path and ``OSError`` when the file system fails
        (the old file is then intact). Sets :attr:`path` if it was None."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise BadInput(f"{self.name}: no path to write the clip to")
        data = self.to_bytes()
        OpenClip.parse(data, target)  # what is written must read back
        if target.exists():
            try:
                OpenClip.read(target)
            except ClipError as exc:
                raise ClipError(target, exc.line, exc.element,
                                f"{exc.problem}; not overwritten") from None
        write_atomic(target, data)
        if self.path is None:
            self.path = target

    def copy(self) -> OpenClip:
        """An independent copy (same path)."""
        return OpenClip.parse(self.to_bytes(), self.path)

    # -- package internals (also used by meridian.flame.merge) ----------------------------

    def _error(self, element: ET.Element | None, problem: str) -> ClipError:
        if element is None:
            return ClipError(self.path, None, None, problem)
        return ClipError(self.path, self._doc.lines.get(element), tag_name(element), problem)

    def _tracks(self) -> list[ET.Element]:
        tracks = self._doc.root.find("tracks")
        return [] if tracks is None else tracks.findall("track")

    @staticmethod
    def _feeds(track: ET.Element) -> ET.Element:
        feeds = track.find("feeds")
        assert feeds is not None  # checked when read
        return feeds

    def _feed(self, track: ET.Element, name: str) -> ET.Element | None:
        for feed in self._feeds(track).iterfind("feed"):
            if feed.get("vuid") == name:
                return feed
        return None

    def _version_element(self, name: str) -> ET.Element | None:
        versions = self._doc.root.find("versions")
        for version in versions.iterfind("version") if versions is not None else ():
            if version.get("uid") == name:
                return version
        return None

    def _scan_element(self) -> ET.Element | None:
        for handler in self._doc.root.iterfind("handler"):
            element = handler.find(".//ScanPattern")
            if element is not None:
                return element
        return None

    def _version_names(self) -> list[str]:
        names: dict[str, None] = {}
        for track in self._tracks():
            for feed in self._feeds(track).iterfind("feed"):
                names.setdefault(feed.attrib["vuid"])
        versions = self._doc.root.find("versions")
        if self._tracks() and versions is not None:
            for version in versions.iterfind("version"):
                names.setdefault(version.attrib["uid"])
        return list(names)

    def _clip_version(self, name: str) -> ClipVersion:
        paths: dict[str, str] = {}
        for track in self._tracks():
            feed = self._feed(track, name)
            _, path = first_path(feed) if feed is not None else (None, None)
            if path is not None:
                paths[track.attrib["uid"]] = (path.text or "").strip()
        element = self._version_element(name)
        date = (element.findtext("creationDate") or "").strip() if element is not None else ""
        return ClipVersion(name, date or None, paths)

    def _check(self) -> None:
        root = self._doc.root
        if root.tag != "clip":
            raise self._error(root, f"not an Open Clip: the root is <{tag_name(root)}>, not <clip>")
        scan = self._scan_element()
        if scan is not None and not (scan.text or "").strip():
            raise self._error(scan, "empty ScanPattern")
        if not self._tracks():
            if scan is None:
                raise self._error(root, "no <track> and no handler ScanPattern: no media")
            return
        track_uids: set[str] = set()
        for track in self._tracks():
            uid = track.get("uid")
            if not uid:
                raise self._error(track, "track without uid")
            if uid in track_uids:
                raise self._error(track, f"two tracks with uid {uid!r}")
            track_uids.add(uid)
            feeds = track.find("feeds")
            if feeds is None:
                raise self._error(track, f"track {uid!r} has no <feeds>")
            vuids: set[str] = set()
            for feed in feeds.iterfind("feed"):
                vuid = feed.get("vuid")
                if not vuid:
                    raise self._error(feed, f"feed without vuid in track {uid!r}")
                if vuid in vuids:
                    raise self._error(feed, f"two feeds of version {vuid!r} in track {uid!r}")
                vuids.add(vuid)
        versions = root.find("versions")
        version_uids: set[str] = set()
        for version in versions.iterfind("version") if versions is not None else ():
            uid = version.get("uid")
            if not uid:
                raise self._error(version, "version without uid")
            if uid in version_uids:
                raise self._error(version, f"two versions with uid {uid!r}")
            version_uids.add(uid)

    def _new_feed(self, track: ET.Element, name: str, encoding: str, text: str) -> ET.Element:
        """A ``<feed>`` for version ``name`` of ``track``, shaped like the track's last feed."""
        previous_feeds = self._feeds(track).findall("feed")
        previous = previous_feeds[-1] if previous_feeds else None
        feed = ET.Element("feed", kept_attributes(previous, ("type", "version"), {"type": "feed"}))
        feed.set("vuid", name)
        feed.set("uid", new_uid())
        storage = previous.find("storageFormat") if previous is not None else None
        if storage is not None:
            feed.append(deepcopy(storage))
        old_spans = previous.find("spans") if previous is not None else None
        old_span = old_spans.find("span") if old_spans is not None else None
        shape = ("type", "version")
        spans = ET.SubElement(feed, "spans", kept_attributes(old_spans, shape, {"type": "spans"}))
        span = ET.SubElement(spans, "span", kept_attributes(old_span, shape, {"type": "span"}))
        ET.SubElement(span, "path", {"encoding": encoding}).text = text
        return feed

    def _new_version(self, name: str, creation_date: str | None) -> ET.Element:
        versions = self._doc.root.find("versions")
        previous = versions.findall("version")[-1:] if versions is not None else []
        element = ET.Element("version", kept_attributes(previous[0] if previous else None,
                                                        ("type",), {"type": "version"}))
        element.set("uid", name)
        ET.SubElement(element, "name").text = name
        if creation_date:
            ET.SubElement(element, "creationDate").text = creation_date
        ET.SubElement(element, "userData", {"type": "dict"})
        return element

    def _depths(self) -> dict[ET.Element, int]:
        depths = {self._doc.root: 0}
        for element in self._doc.root.iter():
            for child in element:
                depths[child] = depths[element] + 1
        return depths

    def _append_version(self, name: str, feeds: dict[str, ET.Element],
                        version: ET.Element) -> None:
        """Append ``feeds`` (by track uid; tracks without one get none) and ``version``,
        indented like the document. ``<versions>`` is created after ``<tracks>`` if missing,
        listing the versions the feeds already had. No checks: callers made them."""
        root, unit = self._doc.root, indent_unit(self._doc.root)
        if root.find("versions") is None:
            existing = self._version_names()
            tracks = root.find("tracks")
            assert tracks is not None
            versions = ET.Element("versions", {"type": "versions"})
            for old in existing:
                entry = ET.SubElement(versions, "version", {"type": "version", "uid": old})
                ET.SubElement(entry, "name").text = old
            insert_child(root, list(root).index(tracks) + 1, versions, 0, unit)
        depths = self._depths()
        for track in self._tracks():
            feed = feeds.get(track.attrib["uid"])
            if feed is not None:
                holder = self._feeds(track)
                insert_child(holder, len(holder), feed, depths[holder], unit)
        versions_element = root.find("versions")
        assert versions_element is not None
        insert_child(versions_element, len(versions_element), version, 1, unit)

    def _set_current(self, name: str) -> None:
        """Point ``<versions currentVersion>`` and every track's ``<feeds currentVersion>``
        at ``name``."""
        versions = self._doc.root.find("versions")
        if versions is not None:
            versions.set("currentVersion", name)
        for track in self._tracks():
            self._feeds(track).set("currentVersion", name)
