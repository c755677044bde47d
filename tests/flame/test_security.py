"""Hostile and malformed clips: refused with file, line and element; never overwritten."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from meridian.errors import BadInput
from meridian.flame import ClipError, OpenClip, new_clip
from meridian.flame.xmlio import MAX_CLIP_BYTES

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["hostile_billion_laughs.clip", "hostile_external_entity.clip"])
def test_dtd_and_entities_are_refused_naming_the_file(name: str) -> None:
    started = time.monotonic()
    with pytest.raises(ClipError) as caught:
        OpenClip.read(DATA / name)
    assert time.monotonic() - started < 2  # refused, not expanded
    error = caught.value
    assert isinstance(error, BadInput)
    assert error.path == DATA / name and error.line == 2
    assert str(error).startswith(f"{DATA / name}:2: <!DOCTYPE>: refused")
    assert "root:" not in str(error)  # /etc/passwd was not read into the message


def test_external_entity_without_internal_subset_is_refused() -> None:
    data = (b'<?xml version="1.0"?>\n<!DOCTYPE clip SYSTEM "http://example.invalid/clip.dtd">\n'
            b"<clip><tracks/></clip>\n")
    with pytest.raises(ClipError, match=r"^x\.clip:2: <!DOCTYPE>: refused"):
        OpenClip.parse(data, "x.clip")


def test_undeclared_entity_is_a_syntax_error() -> None:
    data = b'<?xml version="1.0"?>\n<clip>\n  <name>&ghost;</name>\n</clip>\n'
    with pytest.raises(ClipError, match=r"^sh\.clip:3: <name>: not well-formed XML: undefined "
                                        r"entity"):
        OpenClip.parse(data, "sh.clip")


def test_malformed_clip_names_file_line_and_element() -> None:
    with pytest.raises(ClipError) as caught:
        OpenClip.read(DATA / "malformed_mismatched.clip")
    error = caught.value
    assert (error.line, error.element) == (13, "feed")
    assert str(error) == f"{DATA / 'malformed_mismatched.clip'}:13: <feed>: not well-formed " \
                         "XML: mismatched tag"


@pytest.mark.parametrize(("xml", "line", "element", "problem"), [
    ("<project>\n</project>", 2, "project", "not an Open Clip"),
    ("<clip>\n  <tracks>\n    <track>\n      <feeds/>\n    </track>\n  </tracks>\n</clip>",
     4, "track", "track without uid"),
    ("<clip><tracks>\n<track uid='a'><feeds/></track>\n<track uid='a'><feeds/></track>\n"
     "</tracks></clip>", 4, "track", "two tracks with uid 'a'"),
    ("<clip><tracks><track uid='a'>\n<name>a</name>\n</track></tracks></clip>", 2, "track",
     "has no <feeds>"),
    ("<clip><tracks><track uid='a'><feeds>\n\n<feed uid='f1'/>\n</feeds></track></tracks></clip>",
     4, "feed", "feed without vuid"),
    ("<clip><tracks><track uid='a'><feeds>\n<feed vuid='v1'/>\n<feed vuid='v1'/>\n</feeds>"
     "</track></tracks></clip>", 4, "feed", "two feeds of version 'v1'"),
    ("<clip><tracks><track uid='a'><feeds/></track></tracks>\n<versions>\n<version/>\n"
     "</versions></clip>", 4, "version", "version without uid"),
    ("<clip>\n<handler><options><ScanPattern type='string'> </ScanPattern></options></handler>"
     "\n</clip>", 3, "ScanPattern", "empty ScanPattern"),
    ("<clip>\n<name>nothing</name>\n</clip>", 2, "clip", "no <track> and no handler ScanPattern"),
])
def test_unusable_clip_names_line_and_element(xml: str, line: int, element: str,
                                              problem: str) -> None:
    data = b'<?xml version="1.0"?>\n' + xml.encode()
    with pytest.raises(ClipError) as caught:
        OpenClip.parse(data, "sh010.clip")
    assert str(caught.value).startswith(f"sh010.clip:{line}: <{element}>: ")
    assert problem in str(caught.value)


def test_too_large_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.clip"
    path.write_bytes(b"<clip>" + b" " * MAX_CLIP_BYTES + b"</clip>")
    with pytest.raises(ClipError, match="too large"):
        OpenClip.read(path)


def test_unreadable_file_is_a_clip_error(tmp_path: Path) -> None:
    with pytest.raises(ClipError, match=re.escape(f"{tmp_path / 'none.clip'}: cannot read")):
        OpenClip.read(tmp_path / "none.clip")


@pytest.mark.parametrize("name", ["malformed_mismatched.clip", "hostile_billion_laughs.clip"])
def test_write_never_overwrites_a_malformed_clip(tmp_path: Path, name: str) -> None:
    target = tmp_path / "sh050.clip"
    target.write_bytes((DATA / name).read_bytes())
    clip = new_clip("sh050", "/p/sh050_plate.[1001-1010].exr")
    with pytest.raises(ClipError, match="not overwritten"):
        clip.write(target)
    assert target.read_bytes() == (DATA / name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sh050.clip"]
