from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meridian.mount.sequence import next_frames


def test_next_frames_keep_padding_and_extension() -> None:
    assert next_frames("plate.0099.exr", 2) == ["plate.0100.exr", "plate.0101.exr"]
    assert next_frames("sh010_comp_v003.1001.dpx", 1) == ["sh010_comp_v003.1002.dpx"]
    assert next_frames("frame9.tif", 2) == ["frame10.tif", "frame11.tif"]


def test_names_without_a_frame_number_have_no_next_frames() -> None:
    assert next_frames("shot.clip", 3) == []
    assert next_frames("README", 3) == []
    assert next_frames("plate.0001.exr", 0) == []


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=8),
       st.integers(min_value=1, max_value=5))
def test_frames_follow_in_order(first: int, padding: int, count: int) -> None:
    name = f"plate.{first:0{padding}d}.exr"
    frames = next_frames(name, count)
    assert [int(f.split(".")[1]) for f in frames] == list(range(first + 1, first + count + 1))
    assert all(len(f.split(".")[1]) >= padding for f in frames)
