"""The per-shot Batch setup template that ``meridian flame publish`` writes.

Flame's own ``.batch`` format is Autodesk's and undocumented, so Meridian does not pretend to
write it. Each shot gets instead a small, documented XML file (``<shot>_setup.xml`` in the
shot's ``batch`` folder) that says what the shot's Batch needs, for an artist or a Flame hook to
build the Batch from:

* ``plateClip`` — the shot's Open Clip and the version holding the plate (``v000``); the plate's
  frame pattern is given too (``platePattern``), for tools that read frames directly;
* ``renderPattern`` — where a Write File node renders, with Flame's ``<version>`` token left in
  (``.../renders/<version>/sh010_<version>.[0993-1020].exr``);
* ``outputClip`` — the Open Clip the Write File node adds each render to as a new version
  ("create open clip"); it is the shot's clip, so the plate is v000 and renders are v001, ...
* the frame range (plate frames with handles, and the cut in/out inside it) and the rate.

The file starts with a comment saying it is a template for Flame's Batch and not a Flame-saved
setup. Example::

    <?xml version="1.0" encoding="UTF-8"?>
    <!-- Meridian Batch setup template for shot sh010 ... -->
    <meridianBatchSetup version="1">
      <project>feature</project>
      <sequence>sq010</sequence>
      <shot>sh010</shot>
      <frames first="993" last="1020" cutIn="1001" cutOut="1012" handles="8"/>
      <rate numerator="24" denominator="1"/>
      <plateClip version="v000">/p/sq010/sh010/flame/sh010.clip</plateClip>
      <platePattern>/p/sq010/sh010/plates/sh010_plate.[0993-1020].exr</platePattern>
      <renderPattern>/p/sq010/sh010/renders/&lt;version&gt;/sh010_&lt;version&gt;.[0993-1020].exr
      </renderPattern>  (on one line in the file)
      <outputClip>/p/sq010/sh010/flame/sh010.clip</outputClip>
    </meridianBatchSetup>
"""

from __future__ import annotations

import os
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from meridian.errors import BadInput

FORMAT_VERSION = "1"
ROOT_TAG = "meridianBatchSetup"


@dataclass(frozen=True)
class BatchSetup:
    """What one shot's Batch reads and writes. Paths are absolute; ``project`` may be ``""``.

    ``first``..``last`` are the plate's frames (handles included); ``cut_in``..``cut_out`` the
    frames of the cut inside them; ``rate`` is (numerator, denominator) frames per second.
    """

    project: str
    sequence: str
    shot: str
    first: int
    last: int
    cut_in: int
    cut_out: int
    handles: int
    rate: tuple[int, int]
    plate_clip: str
    plate_version: str
    plate_pattern: str
    render_pattern: str
    output_clip: str


def render_setup(setup: BatchSetup) -> str:
    """The setup's file text (UTF-8 XML with the template header comment). Pure."""
    root = ET.Element(ROOT_TAG, {"version": FORMAT_VERSION})
    ET.SubElement(root, "project").text = setup.project
    ET.SubElement(root, "sequence").text = setup.sequence
    ET.SubElement(root, "shot").text = setup.shot
    ET.SubElement(root, "frames", {
        "first": str(setup.first), "last": str(setup.last), "cutIn": str(setup.cut_in),
        "cutOut": str(setup.cut_out), "handles": str(setup.handles)})
    ET.SubElement(root, "rate", {"numerator": str(setup.rate[0]),
                                 "denominator": str(setup.rate[1])})
    ET.SubElement(root, "plateClip", {"version": setup.plate_version}).text = setup.plate_clip
    ET.SubElement(root, "platePattern").text = setup.plate_pattern
    ET.SubElement(root, "renderPattern").text = setup.render_pattern
    ET.SubElement(root, "outputClip").text = setup.output_clip
    ET.indent(root, "  ")
    header = (
        f"<!-- Meridian Batch setup template for shot {_comment_safe(setup.shot)}, written by\n"
        "     'meridian flame publish'. This is NOT a Flame-saved .batch file and Flame does\n"
        "     not open it: it is a template to build the shot's Batch from.\n"
        "       plateClip     - Read: the shot's Open Clip at this version (the plate)\n"
        "       renderPattern - Write File: render path; <version> is Flame's version token\n"
        "       outputClip    - Write File 'create open clip': each render becomes a version\n"
        "     Frame numbers include the handles; cutIn..cutOut is the cut. -->\n")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{header}{body}\n'


def write_setup(path: Path, setup: BatchSetup) -> bool:
    """Write the setup at ``path`` unless a file is already there.

    Returns True when written, False when ``path`` existed (it is left untouched: publishing
    again never overwrites a setup an artist may have edited). The write is crash-safe: a
    temporary file in the same folder (named ``.<name>.tmp-<random>``), fsync, rename, fsync of
    the folder; a reader never sees half a setup.
    """
    if os.path.lexists(path):
        return False
    data = render_setup(setup).encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _fsync_dir(path.parent)
    return True


def read_setup(path: Path) -> BatchSetup:
    """Read a setup written by :func:`write_setup`.

    Raises :class:`BadInput` naming the file when it is not one (malformed XML, a DTD, another
    root element or format version, a missing or non-numeric field).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
        if "<!DOCTYPE" in text or "<!ENTITY" in text:
            raise BadInput(f"{path}: a Batch setup may not declare a DTD or entities")
        root = ET.fromstring(text)
    except (OSError, UnicodeDecodeError, ET.ParseError) as exc:
        raise BadInput(f"{path}: not a readable Batch setup: {exc}") from exc
    if root.tag != ROOT_TAG or root.get("version") != FORMAT_VERSION:
        raise BadInput(f"{path}: not a Meridian Batch setup version {FORMAT_VERSION}")
    try:
        frames = _child(root, "frames", path)
        rate = _child(root, "rate", path)
        plate_clip = _child(root, "plateClip", path)
        return BatchSetup(
            project=_text(root, "project", path), sequence=_text(root, "sequence", path),
            shot=_text(root, "shot", path),
            first=int(frames.attrib["first"]), last=int(frames.attrib["last"]),
            cut_in=int(frames.attrib["cutIn"]), cut_out=int(frames.attrib["cutOut"]),
            handles=int(frames.attrib["handles"]),
            rate=(int(rate.attrib["numerator"]), int(rate.attrib["denominator"])),
            plate_clip=plate_clip.text or "", plate_version=plate_clip.get("version", ""),
            plate_pattern=_text(root, "platePattern", path),
            render_pattern=_text(root, "renderPattern", path),
            output_clip=_text(root, "outputClip", path))
    except (KeyError, ValueError) as exc:
        raise BadInput(f"{path}: bad Batch setup field: {exc}") from exc


def _child(root: ET.Element, tag: str, path: Path) -> ET.Element:
    found = root.find(tag)
    if found is None:
        raise BadInput(f"{path}: Batch setup has no <{tag}>")
    return found


def _text(root: ET.Element, tag: str, path: Path) -> str:
    return _child(root, tag, path).text or ""


def _comment_safe(text: str) -> str:
    return text.replace("--", "- -")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
