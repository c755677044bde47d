"""Read an editorial timeline (CMX 3600 EDL, FCP 7 XML, ``.otio``) into plain values.

OpenTimelineIO does the parsing; this module is the one place that talks to it, so the rest of
``meridian.flame`` sees only the frozen dataclasses below and never an OTIO object or exception.

Which adapter reads a file is chosen by its suffix:

    ``.edl``   ``cmx_3600``  (package ``otio-cmx3600-adapter``); EDLs carry no rate: ``rate``
    ``.xml``   ``fcp_xml``   (package ``otio-fcp-adapter``)
    ``.otio``  ``otio_json`` (built into ``opentimelineio``)

Events are the clips of the video tracks, in record order (ties: lower track first). Gaps,
transitions, black and bars (generator references), disabled clips and the contents of nested
sequences are not events. Every failure to read the file (missing, unreadable, malformed, a
format OTIO refuses) is raised as :class:`~meridian.errors.BadInput` naming the file.

Frame numbers (``Shot.source_in`` / ``source_out``) are in the source media's own numbering:

* an image-sequence reference (``name.[1001-1098].exr`` in an EDL comment, or an OTIO
  ``ImageSequenceReference``) numbers its frames from its ``start_frame``, which is the first
  frame of its available range;
* any other source is taken to be numbered by timecode: the frame number is the source
  timecode counted in frames at the event's rate (``01:00:10:00`` at 24 fps is frame 86640),
  which is how scans and camera-to-EXR conversions are commonly named.

Shot names for the events come from :func:`name_shots` (the clip name when it looks like a
shot, else a numbered pattern such as ``sh###``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio  # type: ignore[import-untyped]

from meridian.errors import BadInput

ADAPTERS = {".edl": "cmx_3600", ".xml": "fcp_xml", ".otio": "otio_json"}

# A frame-number part at the end of a source file name: ".1001", ".[1001-1098]", ".%04d", ".####"
_FRAME_PART = re.compile(r"[._](?:\d+|\[\d+-\d+\]|%0?\d*d|#+|@+)$")
_SHOT_LIKE = re.compile(r"(?:[A-Za-z][A-Za-z0-9]*_)?[A-Za-z]{1,4}_?\d{2,5}[A-Za-z]?")
_NAME_SAFE = re.compile(r"[A-Za-z0-9._-]*")
DEFAULT_SHOT_NAMES = "sh###"


@dataclass(frozen=True)
class Shot:
    """One event of the cut.

    ``index`` is the 1-based event order; ``name`` the event's clip name as the timeline has it
    (``""`` when none: an EDL without ``* FROM CLIP NAME``); ``reel`` the source's reel or tape
    name (``""`` when none); ``source_path`` the source media's path as written in the timeline,
    a ``file://`` URL turned into a path (``""`` when none). ``source_in`` is the source frame
    number of the event's first frame and ``source_out`` the one after its last (exclusive, as
    in EDLs). ``record_in`` is the event's first frame counted from the start of the cut (not a
    timecode: EDLs lose the record start). ``rate`` is frames per second.
    """

    index: int
    name: str
    reel: str
    source_path: str
    source_in: int
    source_out: int
    record_in: int
    duration_frames: int
    rate: float

    @property
    def source_name(self) -> str:
        """The source file's name without folder, extension or frame-number part ("" if none).

        ``/mnt/scans/A001C003.mov`` and ``/mnt/scans/A001C003.[86400-86500].exr`` both give
        ``A001C003``.
        """
        if not self.source_path:
            return ""
        stem = os.path.basename(self.source_path.rstrip("/"))
        stem, _ = os.path.splitext(stem)
        return _FRAME_PART.sub("", stem)


@dataclass(frozen=True)
class Timeline:
    """A cut: its ``name`` (the EDL ``TITLE``, the FCP sequence name, the OTIO timeline name,
    else the file's stem), its ``rate`` in frames per second, and its events in record order."""

    name: str
    rate: float
    shots: tuple[Shot, ...]


def rate_ratio(rate: float) -> tuple[int, int]:
    """``rate`` as the (numerator, denominator) an Open Clip wants: 23.976 → (24000, 1001)."""
    if abs(rate - round(rate)) < 1e-6:
        return (round(rate), 1)
    ntsc = round(rate * 1.001)
    if abs(rate - ntsc / 1.001) < 1e-3:
        return (ntsc * 1000, 1001)
    frac = Fraction(rate).limit_denominator(1001)
    return (frac.numerator, frac.denominator)


def looks_like_shot(shot: Shot) -> bool:
    """True when the event's clip name reads as a shot name: optionally a sequence and ``_``,
    then 1-4 letters, 2-5 digits and maybe a letter (``sh010``, ``SH0010A``, ``sq010_sh010``),
    and not merely the reel or source file name (``A001`` as the reel is no shot)."""
    return (bool(shot.name) and _SHOT_LIKE.fullmatch(shot.name) is not None
            and shot.name not in (shot.reel, shot.source_name))


def name_shots(timeline: Timeline, pattern: str | None = None) -> list[str]:
    """One shot name per event of ``timeline``, in event order.

    With ``pattern=None``: the event's clip name where :func:`looks_like_shot`, else
    ``sh###`` numbered in tens by event order (event 3 is ``sh030``). With a pattern, every
    event is named from it (an explicit choice wins over clip names). A name an earlier event
    has gets ``_2``, ``_3``, ... ``pattern`` has one run of ``#`` for the number (event index
    x 10, zero-padded to the run's width) and otherwise letters, digits and ``._-``; else
    :class:`BadInput`."""
    numbering = pattern if pattern is not None else DEFAULT_SHOT_NAMES
    runs = re.findall(r"#+", numbering)
    if len(runs) != 1 or not _NAME_SAFE.fullmatch(numbering.replace("#", "")):
        raise BadInput(f"shot name pattern {numbering!r}: needs one run of # (e.g. sh###) "
                       "and only letters, digits, '.', '_' and '-'")
    names: list[str] = []
    for shot in timeline.shots:
        if pattern is None and looks_like_shot(shot):
            name = shot.name
        else:
            name = numbering.replace(runs[0], f"{shot.index * 10:0{len(runs[0])}d}")
        base, n = name, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def read_timeline(path: Path | str, *, rate: float = 24.0) -> Timeline:
    """Read the timeline at ``path``. ``rate`` is used only for EDLs, which do not carry one.

    Raises :class:`BadInput` (message starting with the path) when the suffix is not one of
    ``.edl``, ``.xml``, ``.otio``, the file cannot be read, OTIO cannot parse it, or it has no
    video event.
    """
    path = Path(path)
    adapter = ADAPTERS.get(path.suffix.lower())
    if adapter is None:
        raise BadInput(f"{path}: not a timeline this can read (use .edl, .xml or .otio)")
    if not path.is_file():
        raise BadInput(f"{path}: no such timeline file")
    kwargs: dict[str, Any] = {"rate": rate} if adapter == "cmx_3600" else {}
    try:
        loaded = otio.adapters.read_from_file(str(path), adapter_name=adapter, **kwargs)
        return _convert(loaded, path)
    except BadInput:
        raise
    except Exception as exc:  # every vendor failure is a bad input file; translated here only
        raise BadInput(f"{path}: cannot read timeline: {type(exc).__name__}: {exc}") from exc


def _convert(loaded: Any, path: Path) -> Timeline:
    if not isinstance(loaded, otio.schema.Timeline):
        raise BadInput(f"{path}: holds a {type(loaded).__name__}, not one timeline")
    found: list[tuple[float, int, Any]] = []
    for track_no, track in enumerate(loaded.video_tracks()):
        for item in track:
            if not isinstance(item, otio.schema.Clip) or not item.enabled:
                continue
            if isinstance(item.media_reference, otio.schema.GeneratorReference):
                continue
            found.append((float(item.range_in_parent().start_time.to_seconds()), track_no, item))
    if not found:
        raise BadInput(f"{path}: the timeline has no video event")
    found.sort(key=lambda entry: (entry[0], entry[1]))
    shots = tuple(_shot(n, clip) for n, (_, _, clip) in enumerate(found, start=1))
    name = str(loaded.name or "").strip() or path.stem
    return Timeline(name=name, rate=shots[0].rate, shots=shots)


def _shot(index: int, clip: Any) -> Shot:
    srange = clip.trimmed_range()
    rate = float(srange.start_time.rate)
    duration = int(round(srange.duration.to_frames(rate)))
    record_in = int(round(clip.range_in_parent().start_time.to_frames(rate)))
    ref = clip.media_reference
    if isinstance(ref, otio.schema.ImageSequenceReference) and ref.available_range is not None:
        offset = (srange.start_time - ref.available_range.start_time).to_frames(rate)
        source_in = int(ref.start_frame) + int(round(offset))
        pad = int(ref.frame_zero_padding)
        frames = f"[{int(ref.start_frame):0{pad}d}-{int(ref.end_frame()):0{pad}d}]"
        source_path = os.path.join(_as_path(str(ref.target_url_base)),
                                   f"{ref.name_prefix}{frames}{ref.name_suffix}")
    else:
        source_in = int(round(srange.start_time.to_frames(rate)))
        url = getattr(ref, "target_url", None) or ""
        source_path = _as_path(str(url))
    return Shot(index=index, name=str(clip.name or "").strip(), reel=_reel(clip),
                source_path=source_path, source_in=source_in,
                source_out=source_in + duration, record_in=record_in,
                duration_frames=duration, rate=rate)


def _as_path(url: str) -> str:
    if url.startswith("file:"):
        return str(otio.url_utils.filepath_from_url(url))
    return url


def _reel(clip: Any) -> str:
    """The reel from an EDL event line, else from FCP XML's ``<timecode><reel><name>``."""
    cmx = clip.metadata.get("cmx_3600") or {}
    if cmx.get("reel"):
        return str(cmx["reel"]).strip()
    ref_meta: Any = clip.media_reference.metadata.get("fcp_xml") if clip.media_reference else None
    try:
        return str(ref_meta["timecode"]["reel"]["name"] or "").strip()
    except (KeyError, TypeError):
        return ""
