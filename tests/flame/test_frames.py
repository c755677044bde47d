"""FramePattern: the bracket and printf forms, padding, and Hypothesis round trips."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.errors import BadInput
from meridian.flame import FramePattern

FAST = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize(("text", "expected"), [
    ("/p/sh010_v001.[1001-1098].exr", FramePattern("/p/sh010_v001.", 1001, 1098, 4, ".exr")),
    ("/p/plate.[001001-001100].exr", FramePattern("/p/plate.", 1001, 1100, 6, ".exr")),
    ("/p/a.[0100-0269].dpx", FramePattern("/p/a.", 100, 269, 4, ".dpx")),
    ("/dir/file_[1-5].dpx", FramePattern("/dir/file_", 1, 5, 1, ".dpx")),
    ("/dir/file_[099-10005].dpx", FramePattern("/dir/file_", 99, 10005, 3, ".dpx")),
    ("Media/Video1.[0000-0004 ].dpx", FramePattern("Media/Video1.", 0, 4, 4, ".dpx")),
    ("/p/[1-2]/x.[0001-0003].exr", FramePattern("/p/[1-2]/x.", 1, 3, 4, ".exr")),
])
def test_parse_bracket_form(text: str, expected: FramePattern) -> None:
    assert FramePattern.parse(text) == expected


def test_frames_keep_padding_and_count() -> None:
    pattern = FramePattern.parse("/p/plate.[000998-001001].exr")
    assert pattern.frames() == ["/p/plate.000998.exr", "/p/plate.000999.exr",
                                "/p/plate.001000.exr", "/p/plate.001001.exr"]
    assert len(pattern) == 4


def test_numbers_wider_than_padding_are_written_in_full() -> None:
    pattern = FramePattern.parse("/d/f_[098-10001].dpx")
    frames = pattern.frames()
    assert frames[0] == "/d/f_098.dpx" and frames[2] == "/d/f_100.dpx"
    assert frames[-1] == "/d/f_10001.dpx"
    assert pattern.bracket() == "/d/f_[098-10001].dpx"


def test_bracket_and_str() -> None:
    pattern = FramePattern("/p/sh010_v001.", 1001, 1098, 4, ".exr")
    assert pattern.bracket() == "/p/sh010_v001.[1001-1098].exr"
    assert str(pattern) == pattern.bracket()
    assert FramePattern.parse("Media/V.[0000-0004 ].dpx").bracket() == "Media/V.[0000-0004].dpx"


@pytest.mark.parametrize(("text", "first", "last", "expected"), [
    ("versions/v001/sh040.%04d.exr", 1001, 1048, FramePattern("versions/v001/sh040.", 1001,
                                                               1048, 4, ".exr")),
    ("/p/a.%d.dpx", 1, 3, FramePattern("/p/a.", 1, 3, 1, ".dpx")),
    ("/p/a_%06d.exr", 7, 7, FramePattern("/p/a_", 7, 7, 6, ".exr")),
])
def test_parse_printf(text: str, first: int, last: int, expected: FramePattern) -> None:
    pattern = FramePattern.parse_printf(text, first, last)
    assert pattern == expected
    assert len(pattern.frames()) == last - first + 1


@pytest.mark.parametrize(("text", "message"), [
    ("/p/still.png", "no frame range"),
    ("/p/a.%04d.exr", "parse_printf"),
    ("/p/a.{frame}.exr", "{frame}"),
    ("/p/a.[1098-1001].exr", "ends before it starts"),
])
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        FramePattern.parse(text)


def test_invariants_checked() -> None:
    with pytest.raises(BadInput):
        FramePattern("/p/a.", 10, 9, 4, ".exr")
    with pytest.raises(BadInput):
        FramePattern("/p/a.", 1, 9, 0, ".exr")
    with pytest.raises(BadInput):
        FramePattern.parse_printf("/p/a.exr", 1, 2)
    with pytest.raises(BadInput):
        FramePattern.parse_printf("/p/a.%04d.exr", 5, 1)


# Path parts: anything but a bracketed digit range in the tail (the range is the last one).
_part = st.text(alphabet=st.sampled_from("abc_./-0123456789[]% vV"), max_size=20)
_tail = _part.filter(lambda t: re.search(r"\[\s*\d+\s*-\s*\d+\s*\]", t) is None)


@st.composite
def patterns(draw: st.DrawFn) -> FramePattern:
    first = draw(st.integers(min_value=0, max_value=100_000))
    last = first + draw(st.integers(min_value=0, max_value=300))
    return FramePattern(draw(_part), first, last, draw(st.integers(1, 8)), draw(_tail))


@FAST
@given(patterns())
def test_bracket_round_trip(pattern: FramePattern) -> None:
    parsed = FramePattern.parse(pattern.bracket())
    # The padding read back is the width of ``first`` as written: at least its digit count.
    assert parsed == dataclasses.replace(pattern,
                                         padding=max(pattern.padding, len(str(pattern.first))))
    assert parsed.bracket() == pattern.bracket()
    assert parsed.frames() == pattern.frames()


@FAST
@given(patterns())
def test_frames_count_and_order(pattern: FramePattern) -> None:
    frames = pattern.frames()
    assert len(frames) == pattern.last - pattern.first + 1 == len(pattern)
    assert len(set(frames)) == len(frames)
    assert frames[0] == pattern.frame(pattern.first) and frames[-1] == pattern.frame(pattern.last)
    for number, path in zip(range(pattern.first, pattern.last + 1), frames, strict=True):
        digits = path[len(pattern.head):len(path) - len(pattern.tail)]
        assert int(digits) == number and len(digits) >= pattern.padding


@FAST
@given(st.integers(0, 10**6), st.integers(0, 500), st.integers(1, 8))
def test_text_round_trip(first: int, span: int, padding: int) -> None:
    text = f"/hs-mount/p/sh010_v001.[{first:0{padding}d}-{first + span:0{padding}d}].exr"
    assert FramePattern.parse(text).bracket() == text
