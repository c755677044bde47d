"""Shot Publish: a timeline's shots as folders, plate frames, Open Clips and Batch setups.

``publish(timeline, root)`` reads the cut (:mod:`meridian.flame.timeline`); per shot it makes
the folders of ``pattern`` under ``root``, places the plate frames, writes the shot's Open Clip
and Batch setup (:mod:`meridian.flame.batch`); then the sequence clip.

**Pattern.** Folder templates relative to ``root``; ``{a,b}`` lists alternatives (brace
expansion). Tokens: ``<project>`` (the ``project`` argument, required when used),
``<sequence>`` (the timeline's name), ``<shot>`` (the shot name), ``<name>`` (the event's clip
name in the timeline, else the shot name) and ``<version>`` (``v001`` in folders: the folder
the first render goes to; kept as Flame's token in the setup's render path). Token values are
made path-safe (characters other than letters, digits, ``._-`` become ``_``). The default,
``<sequence>/<shot>/{plates,renders/<version>,flame,batch}``, gives for shot ``sh010``::

    sq010/sh010/plates/sh010_plate.[1001-1098].exr    frames, numbered from start_frame
    sq010/sh010/renders/v001/                          where the first render goes
    sq010/sh010/flame/sh010.clip                       the shot's Open Clip, v000 = plate
    sq010/sh010/batch/sh010_setup.xml                  the Batch setup template
    sq010/flame/sq010.clip                             the sequence clip

Every folder lies in the shot folder (the path up to the component with ``<shot>``, above
which only ``<project>``/``<sequence>`` may appear); folders named ``plates``, ``flame``,
``batch`` and the one with ``<version>`` (else ``renders`` + ``/<version>``) play those roles;
the sequence clip goes in a ``flame`` folder beside the shot folders. Else :class:`BadInput`.

**Shot names** (:func:`~meridian.flame.timeline.name_shots`). With ``shot_names=None``: the
event's clip name when it looks like a shot (``sh010``), else ``sh###`` numbered in tens by
event order (event 3 → ``sh030``). A pattern such as ``"ab####"`` names every event (an
explicit choice wins over clip names). A name used by an earlier event gets ``_2``, ``_3``...

**Plates.** Frames ``start_frame - handles`` .. ``start_frame + duration + handles - 1`` (the
cut starts at ``start_frame``; at least four digits) from source frames ``source_in - handles``
on (numbered as :mod:`meridian.flame.timeline` says). A source is found under ``media`` by the
event's source file name, then its reel (``Shot.source_name``, ``Shot.reel``), as a frame
sequence ``<name>.<frame>.exr`` (or ``_<frame>``) anywhere under ``media``, or a folder
``<name>/`` holding one sequence ``*.<frame>.exr``. A frame is hard-linked when source and
plate folder share a file system, else copied (temp file, fsync, rename). A source not found,
ambiguous (two sequences of the name) or short of frames is reported in ``missing`` per shot;
the frames there are placed and the shot's folders, clip and setup are written all the same.

**Sequence clip.** An index of the cut's plates: one track, one feed per shot, each a version
named after its shot (``sh010``, ``sh020``, ... in cut order; the current version is the last
one added), pointing at the shot's plate frames. Open Clip tracks hold versions, not edits, so
Flame's version menu on it steps through the shots' plates.

**Idempotent.** Nothing that exists is changed: an existing shot clip means the shot is
``kept`` (not rewritten), existing setups and frames are left as they are (frames ``kept``),
and the sequence clip only gains versions for shots it does not list yet. Publishing the same
timeline twice writes nothing the second time; a timeline that gained a shot adds that shot.
Publish again with the same pattern, handles and start frame, or the plates will not match.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from meridian.cli.progress import Progress
from meridian.errors import BadInput
from meridian.flame.batch import BatchSetup, write_setup
from meridian.flame.openclip import OpenClip, new_clip
from meridian.flame.timeline import Shot, Timeline, name_shots, rate_ratio, read_timeline

DEFAULT_PATTERN = "<sequence>/<shot>/{plates,renders/<version>,flame,batch}"
PLATE_VERSION = "v000"
FIRST_RENDER_VERSION = "v001"
TOKENS = ("project", "sequence", "shot", "version", "name")

_TOKEN = re.compile(r"<([^<>/]*)>")
_BRACES = re.compile(r"\{([^{}]*)\}")
_MEDIA_FRAME = re.compile(r"(?:(?P<name>.+)[._])?(?P<frame>\d+)\.exr", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP,
            errno.ENOSYS}


@dataclass
class PublishReport:
    """What one publish did. ``published``/``kept``: shots whose clip was written now / was
    already there. ``frames_*``: plate frames hard-linked, copied, or already there.
    ``missing``: shot -> why its plate is incomplete. ``failed``: shot (or the sequence name,
    for the sequence clip) -> the error that stopped it. ``written``: clips and setups written
    (frames are counted, not listed). ``ok`` is False when anything is missing or failed."""

    timeline: Path
    sequence: str
    published: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    frames_linked: int = 0
    frames_copied: int = 0
    frames_kept: int = 0
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.failed

    def lines(self) -> list[str]:
        """A human summary: one line of counts, then one per shot missing media or failed."""
        out = [f"{self.sequence}: {len(self.published)} shots published, {len(self.kept)} kept;"
               f" frames {self.frames_linked} linked, {self.frames_copied} copied,"
               f" {self.frames_kept} kept; {len(self.written)} files written"]
        out += [f"{shot}: missing media: {why}" for shot, why in self.missing.items()]
        out += [f"{shot}: failed: {why}" for shot, why in self.failed.items()]
        return out


@dataclass(frozen=True)
class Layout:
    """A naming pattern, checked and split into roles. Templates are relative to the root."""

    folders: tuple[str, ...]
    shot_dir: str
    plates: str
    renders: str
    flame: str
    batch: str

    @classmethod
    def parse(cls, pattern: str) -> Layout:
        """Expand braces and check the folders (see the module doc). Raises :class:`BadInput`."""
        folders = tuple(dict.fromkeys(_check_template(t, pattern) for t in _expand(pattern)))
        shot_dirs = {_shot_dir(f, pattern) for f in folders}
        if len(shot_dirs) != 1:
            raise BadInput(f"pattern {pattern!r}: folders lie in different shot folders "
                           f"({', '.join(sorted(shot_dirs))})")
        by_last = {f.rsplit("/", 1)[-1]: f for f in reversed(folders)}
        renders = next((f for f in folders if "<version>" in f), None)
        if renders is None and "renders" in by_last:
            renders = by_last["renders"] + "/<version>"
            folders += (renders,)
        roles = {"plates": by_last.get("plates"), "flame": by_last.get("flame"),
                 "batch": by_last.get("batch"), "renders/<version>": renders}
        found = {role: folder for role, folder in roles.items() if folder is not None}
        if len(found) < len(roles):
            lacking = ", ".join(role for role in roles if role not in found)
            raise BadInput(f"pattern {pattern!r}: no folder for {lacking}")
        shot_dir = shot_dirs.pop()
        parent_tokens = set(_TOKEN.findall(shot_dir.rsplit("/", 1)[0] if "/" in shot_dir else ""))
        if parent_tokens - {"project", "sequence"}:
            raise BadInput(f"pattern {pattern!r}: above the shot folder only <project> and "
                           "<sequence> may be used (the sequence clip lives there)")
        return cls(folders, shot_dir, found["plates"], found["renders/<version>"],
                   found["flame"], found["batch"])

    @property
    def sequence_flame(self) -> str:
        """The folder of the sequence clip: ``flame`` beside the shot folders."""
        parent = self.shot_dir.rsplit("/", 1)[0] if "/" in self.shot_dir else ""
        return f"{parent}/flame" if parent else "flame"


def _expand(pattern: str) -> list[str]:
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    return [out for alt in match.group(1).split(",")
            for out in _expand(pattern[:match.start()] + alt + pattern[match.end():])]


def _check_template(template: str, pattern: str) -> str:
    text = template.strip().strip("/") if not template.startswith("/") else template
    parts = text.split("/")
    if text.startswith("/") or any(p in ("", ".", "..") for p in parts) or "{" in text:
        raise BadInput(f"pattern {pattern!r}: {template!r} is not a relative folder path")
    unknown = sorted({t for t in _TOKEN.findall(text) if t not in TOKENS})
    if unknown:
        raise BadInput(f"pattern {pattern!r}: unknown token(s) {', '.join(unknown)} "
                       f"(known: {', '.join('<' + t + '>' for t in TOKENS)})")
    return text


def _shot_dir(folder: str, pattern: str) -> str:
    parts = folder.split("/")
    for n, part in enumerate(parts):
        if "<shot>" in part:
            return "/".join(parts[:n + 1])
    raise BadInput(f"pattern {pattern!r}: folder {folder!r} has no <shot>")


def _fill(template: str, values: dict[str, str]) -> str:
    return _TOKEN.sub(lambda m: values[m.group(1)], template)


def _safe(value: str) -> str:
    return _UNSAFE.sub("_", value.strip()).lstrip(".") or "_"


class MediaIndex:
    """The EXR frame sequences under a media folder, indexed by sequence name and by folder
    name, from one walk made at the first :meth:`find` (so a publish that needs no frame does
    not walk the media); symlinked folders are not followed, dot-files are skipped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, dict[str, dict[int, Path]]] = {}
        self._by_folder: dict[str, dict[str, dict[str, dict[int, Path]]]] = {}
        self._walked = False

    def _walk(self) -> None:
        self._walked = True
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for filename in filenames:
                match = _MEDIA_FRAME.fullmatch(filename)
                if match is None or filename.startswith("."):
                    continue
                name, frame, path = match["name"] or "", int(match["frame"]), Path(dirpath,
                                                                                    filename)
                if name:
                    self._by_name.setdefault(name, {}).setdefault(dirpath, {})[frame] = path
                folder = self._by_folder.setdefault(os.path.basename(dirpath), {})
                folder.setdefault(dirpath, {}).setdefault(name, {})[frame] = path

    def find(self, names: list[str]) -> tuple[dict[int, Path] | None, str]:
        """The frames (number -> path) of the first of ``names`` found, and where they are;
        or ``None`` and why nothing usable was found (not there, or ambiguous)."""
        if not self._walked:
            self._walk()
        why: list[str] = []
        for name in dict.fromkeys(n for n in names if n):
            places = self._by_name.get(name, {})
            if len(places) == 1:
                (folder, frames), = places.items()
                return frames, f"{name} in {folder}"
            if places:
                why.append(f"{len(places)} sequences named {name} ({', '.join(sorted(places))})")
                continue
            folders = self._by_folder.get(name, {})
            singles = {d: seqs for d, seqs in folders.items() if len(seqs) == 1}
            if len(folders) == 1 and singles:
                (folder, seqs), = singles.items()
                return next(iter(seqs.values())), f"folder {folder}"
            if folders:
                why.append(f"folder(s) named {name} hold several sequences")
        if not why:
            why.append(f"no {' or '.join(dict.fromkeys(n for n in names if n)) or 'source name'}"
                       f" under {self.root}")
        return None, "; ".join(why)


def _place(src: Path, dst: Path) -> str:
    """Put ``src`` at ``dst`` (absent): ``"linked"`` (hard link) or ``"copied"``."""
    if os.stat(src).st_dev == os.stat(dst.parent).st_dev:
        try:
            os.link(src, dst)
            return "linked"
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
    tmp = dst.with_name(f".{dst.name}.tmp-{secrets.token_hex(4)}")
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, dst)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return "copied"


def publish(timeline: Path, root: Path, *, pattern: str = DEFAULT_PATTERN,
            media: Path | None = None, handles: int = 0, start_frame: int = 1001,
            shot_names: str | None = None, project: str | None = None, progress: bool = True,
            rate: float = 24.0) -> PublishReport:
    """Publish the shots of ``timeline`` under ``root`` (see the module doc for the rules).

    ``rate`` is the frame rate of an EDL (EDLs carry none). Raises :class:`BadInput` before
    anything is written for an unreadable timeline, a bad pattern or shot-name pattern, a
    ``root`` or ``media`` that is not a folder, ``<project>`` used without ``project``, or
    ``handles``/``start_frame`` that would number a frame below 0. Problems of one shot
    (media, file system errors) are in the report and do not stop the others. Idempotent.
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise BadInput(f"{root}: the publish root is not a folder")
    if media is not None and not Path(media).is_dir():
        raise BadInput(f"{media}: the media folder is not a folder")
    if handles < 0 or start_frame - handles < 0:
        raise BadInput(f"handles {handles}, start frame {start_frame}: frames would go below 0")
    layout = Layout.parse(pattern)
    if not project and any("<project>" in f for f in layout.folders):
        raise BadInput(f"pattern {pattern!r} uses <project>: give a project name")
    cut = read_timeline(timeline, rate=rate)
    names = _publish_names(cut, shot_names)
    sequence = _safe(cut.name)
    report = PublishReport(timeline=Path(timeline), sequence=sequence)
    index = MediaIndex(Path(media)) if media is not None else None
    bar = Progress(f"publish {sequence}", total=len(cut.shots), unit="shots") if progress \
        else None
    seq_values = {"project": _safe(project) if project else "", "sequence": sequence}
    plates: list[tuple[str, str]] = []
    for shot, name in zip(cut.shots, names):
        values = dict(seq_values, shot=name, name=_safe(shot.name or name),
                      version=FIRST_RENDER_VERSION)
        try:
            plates.append((name, _publish_shot(shot, name, values, root, layout, index,
                                               handles, start_frame, report)))
        except OSError as exc:
            report.failed[name] = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        except BadInput as exc:
            report.failed[name] = str(exc)
        if bar is not None:
            bar.advance()
    if bar is not None:
        bar.close()
    seq_clip = root / _fill(layout.sequence_flame, seq_values) / f"{sequence}.clip"
    try:
        _sequence_clip(seq_clip, sequence, plates, rate_ratio(cut.rate), report)
    except (BadInput, OSError) as exc:
        report.failed[sequence] = f"sequence clip {seq_clip}: {exc}"
    return report


def _publish_names(cut: Timeline, pattern: str | None) -> list[str]:
    names = name_shots(cut, pattern)
    if any(name == "flame" for name in names):
        raise BadInput("a shot may not be named 'flame' (the sequence clip's folder)")
    return names


def _publish_shot(shot: Shot, name: str, values: dict[str, str], root: Path, layout: Layout,
                  index: MediaIndex | None, handles: int, start_frame: int,
                  report: PublishReport) -> str:
    """Folders, frames, clip and setup of one shot; returns its plate pattern (absolute)."""
    for folder in layout.folders:
        (root / _fill(folder, values)).mkdir(parents=True, exist_ok=True)
    plates_dir = root / _fill(layout.plates, values)
    first = start_frame - handles
    count = shot.duration_frames + 2 * handles
    last = first + count - 1
    pad = max(4, len(str(last)))
    plate = f"{plates_dir}/{name}_plate.[{first:0{pad}d}-{last:0{pad}d}].exr"
    _place_frames(shot, name, plates_dir, first, count, pad, handles, index, report)

    rate = rate_ratio(shot.rate)
    clip_path = root / _fill(layout.flame, values) / f"{name}.clip"
    if clip_path.exists():
        report.kept.append(name)
    else:
        new_clip(name, plate, version=PLATE_VERSION, rate=rate).write(clip_path)
        report.written.append(clip_path)
        report.published.append(name)

    render_values = dict(values, version="<version>")
    render_dir = root / _fill(layout.renders, render_values)
    setup = BatchSetup(
        project=values["project"], sequence=values["sequence"], shot=name,
        first=first, last=last, cut_in=start_frame,
        cut_out=start_frame + shot.duration_frames - 1, handles=handles, rate=rate,
        plate_clip=str(clip_path), plate_version=PLATE_VERSION, plate_pattern=plate,
        render_pattern=f"{render_dir}/{name}_<version>.[{first:0{pad}d}-{last:0{pad}d}].exr",
        output_clip=str(clip_path))
    setup_path = root / _fill(layout.batch, values) / f"{name}_setup.xml"
    if write_setup(setup_path, setup):
        report.written.append(setup_path)
    return plate


def _place_frames(shot: Shot, name: str, plates_dir: Path, first: int, count: int, pad: int,
                  handles: int, index: MediaIndex | None, report: PublishReport) -> None:
    """Place the frames not there yet; report the shot in ``missing`` when some cannot be."""
    targets = [plates_dir / f"{name}_plate.{first + n:0{pad}d}.exr" for n in range(count)]
    todo = [n for n, target in enumerate(targets) if not os.path.lexists(target)]
    report.frames_kept += count - len(todo)
    if not todo:
        return
    if index is None:
        report.missing[name] = "no media folder given"
        return
    frames, where = index.find([shot.source_name, shot.reel])
    if frames is None:
        report.missing[name] = where
        return
    lacking: list[int] = []
    for n in todo:
        source = frames.get(shot.source_in - handles + n)
        if source is None:
            lacking.append(shot.source_in - handles + n)
            continue
        if _place(source, targets[n]) == "linked":
            report.frames_linked += 1
        else:
            report.frames_copied += 1
    if lacking:
        report.missing[name] = (f"{len(lacking)} of {count} source frames not in {where} "
                                f"(frames {lacking[0]}-{lacking[-1]})")


def _sequence_clip(path: Path, sequence: str, plates: list[tuple[str, str]],
                   rate: tuple[int, int], report: PublishReport) -> None:
    """Create the sequence clip, or add the shots it does not list yet (nothing else)."""
    if not plates:
        return
    if path.exists():
        clip = OpenClip.read(path)
        listed = {version.name for version in clip.versions()}
        todo = [(name, plate) for name, plate in plates if name not in listed]
        if not todo:
            return
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        (name, plate), todo = plates[0], plates[1:]
        clip = new_clip(sequence, plate, version=name, rate=rate)
    for name, plate in todo:
        clip.add_version(plate, name=name)
    clip.write(path)
    report.written.append(path)
