"""merge and merge_conflicts: two sites that both added a version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meridian.flame import ClipError, OpenClip, merge, merge_conflicts, new_clip

DATA = Path(__file__).parent / "data"
PLATE = "/hs-mount/project/sq01/sh010/plates/sh010_plate.[1001-1098].exr"
COPY_NAME = "sh010.conflict-20251124-100500-west.clip"


def render(site: str, version: str = "v001") -> str:
    return f"/hs-mount/project/sq01/sh010/renders/{version}_{site}/sh010_{version}.[1001-1098].exr"


@pytest.fixture
def base() -> bytes:
    """The shot's clip as published the day before: v000, the plate."""
    data = new_clip("sh010", PLATE).to_bytes()
    return re.sub(rb"<creationDate>[^<]*</creationDate>",
                  b"<creationDate>2025/11/23 18:00:00</creationDate>", data)


def both_added_v001(base: bytes, east_date: str, west_date: str) -> tuple[OpenClip, OpenClip]:
    east = OpenClip.parse(base, "sh010.clip")
    east.add_version(render("east"), creation_date=east_date)
    west = OpenClip.parse(base, COPY_NAME)
    west.add_version(render("west"), creation_date=west_date)
    return east, west


def test_both_added_v001_copy_renumbered_current_is_newest(base: bytes) -> None:
    east, west = both_added_v001(base, "2025/11/24 10:00:00", "2025/11/24 10:05:00")
    east_bytes, west_bytes = east.to_bytes(), west.to_bytes()
    merged, notes = merge(east, west)
    assert [(v.name, v.paths["video"]) for v in merged.versions()] == [
        ("v000", PLATE), ("v001", render("east")), ("v002", render("west"))]
    assert [v.creation_date for v in merged.versions()][1:] == ["2025/11/24 10:00:00",
                                                                "2025/11/24 10:05:00"]
    assert merged.current_version == "v002"  # west's was made later
    out = merged.to_bytes().decode()
    assert '<feeds currentVersion="v002">' in out
    assert '<version type="version" uid="v002">\n            <name>v002</name>' in out
    assert any("both sites made v001" in n and COPY_NAME in n and "v002" in n for n in notes)
    assert merged.path == east.path
    assert (east.to_bytes(), west.to_bytes()) == (east_bytes, west_bytes)  # inputs unchanged


def test_current_is_the_newest_whichever_side_it_came_from(base: bytes) -> None:
    east, west = both_added_v001(base, "2025/11/24 10:07:00", "2025/11/24 10:05:00")
    merged, _ = merge(east, west)
    assert merged.current_version == "v001"  # east's own v001 is the newest
    assert [v.name for v in merged.versions()] == ["v000", "v001", "v002"]


def test_without_dates_current_is_the_last_added(base: bytes) -> None:
    east, west = both_added_v001(base, "", "")
    merged, _ = merge(east, west)
    assert merged.current_version == "v002"


def test_merge_is_deterministic_and_idempotent(base: bytes) -> None:
    east, west = both_added_v001(base, "2025/11/24 10:00:00", "2025/11/24 10:05:00")
    first, _ = merge(east, west)
    second, _ = merge(east, west)
    assert first.to_bytes() == second.to_bytes()
    again, notes = merge(first, west)  # merging the same copy twice adds nothing
    assert again.to_bytes() == first.to_bytes() and notes == []


def test_versions_only_in_the_copy_are_added_and_collisions_skip_taken_names(
        base: bytes) -> None:
    east = OpenClip.parse(base, "sh010.clip")
    east.add_version(render("east"), creation_date="2025/11/24 10:00:00")
    west = OpenClip.parse(base, COPY_NAME)
    west.add_version(render("west"), creation_date="2025/11/24 10:01:00")
    west.add_version(render("west", "v002"), creation_date="2025/11/24 10:02:00")
    merged, notes = merge(east, west)
    by_name = {v.name: v.paths["video"] for v in merged.versions()}
    assert by_name == {"v000": PLATE, "v001": render("east"), "v003": render("west"),
                       "v002": render("west", "v002")}
    assert merged.current_version == "v002"
    assert any("v002 added from" in n for n in notes)


def test_merge_keeps_the_clips_unknown_elements(base: bytes) -> None:
    ours = OpenClip.read(DATA / "sh010_plate_v001.clip")
    theirs_bytes = (DATA / "sh010_plate_v001.clip").read_bytes().replace(
        b"renders/v001/sh010_comp_v001", b"renders/v001_west/sh010_comp_v001").replace(
        b"2025/11/24 17:45:03", b"2025/11/24 18:00:00").replace(
        b"5E21801C-41C2-4B47-90B6-C1E25235F032", b"9A000000-0000-4000-8000-00000000WEST")
    merged, _ = merge(ours, OpenClip.parse(theirs_bytes, COPY_NAME))
    out = merged.to_bytes().decode()
    for kept in ("<sourceName type=\"string\">A001C003_251124_R1AB</sourceName>",
                 "GATEWAY_NODE_ID", "<!-- written by the east site's Shot Publish",
                 "<startTimecode type=\"time\">"):
        assert kept in out
    # the copy's v001 came whole: its feed (sampleRate...) and its <version> userData
    assert out.count("<sampleRate") == 3
    assert out.count("<batchSetup") == 2
    assert "9A000000-0000-4000-8000-00000000WEST" in out
    assert merged.current_version == "v002"


def test_scan_clips(tmp_path: Path) -> None:
    scan = OpenClip.read(DATA / "sh030_comp_scan.clip")
    merged, notes = merge(scan, OpenClip.read(DATA / "sh030_comp_scan.clip"))
    assert merged.to_bytes() == scan.to_bytes() and notes == []
    with pytest.raises(ClipError, match="cannot merge"):
        merge(OpenClip.read(DATA / "sh010_plate_v001.clip"), scan)


# -- merge_conflicts --------------------------------------------------------------------------

def test_merge_conflicts_on_a_folder_tree(tmp_path: Path, base: bytes) -> None:
    flame = tmp_path / "sq01" / "sh010" / "flame"
    flame.mkdir(parents=True)
    east, west = both_added_v001(base, "2025/11/24 10:00:00", "2025/11/24 10:05:00")
    east.write(flame / "sh010.clip")
    west.write(flame / COPY_NAME)
    # a malformed copy: reported, never deleted; its clip untouched
    other = tmp_path / "sq01" / "sh020" / "flame"
    other.mkdir(parents=True)
    new_clip("sh020", "/p/sh020_plate.[1001-1010].exr").write(other / "sh020.clip")
    sh020_before = (other / "sh020.clip").read_bytes()
    bad = other / "sh020.conflict-20251124-100500-west.clip"
    bad.write_bytes((DATA / "malformed_mismatched.clip").read_bytes())
    # a copy whose clip is gone: reported, left
    lonely = tmp_path / "sq01" / "sh030.conflict-20251124-100500-west-2.clip"
    lonely.write_bytes(base)

    notes = merge_conflicts(tmp_path)

    assert sorted(p.name for p in flame.iterdir()) == ["sh010.clip"]
    merged = OpenClip.read(flame / "sh010.clip")
    assert [v.name for v in merged.versions()] == ["v000", "v001", "v002"]
    assert merged.versions()[2].paths == {"video": render("west")}
    assert merged.current_version == "v002"
    assert bad.exists() and (other / "sh020.clip").read_bytes() == sh020_before
    assert lonely.exists()
    text = "\n".join(notes)
    assert "both sites made v001" in text
    assert f"sq01/sh010/flame/sh010.clip: merged {COPY_NAME}" in text
    assert f"{bad}:13: <feed>: not well-formed XML" in text and "left in place" in text
    assert "sq01/sh030.conflict-20251124-100500-west-2.clip: no sh030.clip beside it" in text

    after = (flame / "sh010.clip").read_bytes()
    again = merge_conflicts(tmp_path)  # idempotent: only what could not be merged is reported
    assert (flame / "sh010.clip").read_bytes() == after
    assert not any("sh010" in n for n in again) and len(again) == 2


def test_copy_with_nothing_new_is_removed_without_rewriting(tmp_path: Path,
                                                            base: bytes) -> None:
    (tmp_path / "sh010.clip").write_bytes(base)
    (tmp_path / COPY_NAME).write_bytes(base)
    before = (tmp_path / "sh010.clip").stat()
    notes = merge_conflicts(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sh010.clip"]
    assert (tmp_path / "sh010.clip").stat().st_ino == before.st_ino  # not replaced
    assert notes == [f"sh010.clip: merged {COPY_NAME}"]


def test_malformed_original_is_never_overwritten(tmp_path: Path, base: bytes) -> None:
    original = (DATA / "malformed_mismatched.clip").read_bytes()
    (tmp_path / "sh010.clip").write_bytes(original)
    (tmp_path / COPY_NAME).write_bytes(base)
    notes = merge_conflicts(tmp_path)
    assert (tmp_path / "sh010.clip").read_bytes() == original
    assert (tmp_path / COPY_NAME).exists()
    assert len(notes) == 1 and "not well-formed" in notes[0]


def test_several_copies_of_one_clip(tmp_path: Path, base: bytes) -> None:
    clip = OpenClip.parse(base)
    clip.write(tmp_path / "sh010.clip")
    for i, site in enumerate(["north", "west"]):
        copy = OpenClip.parse(base)
        copy.add_version(render(site), creation_date=f"2025/11/24 10:0{i}:00")
        copy.write(tmp_path / f"sh010.conflict-20251124-10000{i}-{site}.clip")
    merge_conflicts(tmp_path)
    merged = OpenClip.read(tmp_path / "sh010.clip")
    assert [(v.name, v.paths["video"]) for v in merged.versions()] == [
        ("v000", PLATE), ("v001", render("north")), ("v002", render("west"))]
    assert merged.current_version == "v002"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sh010.clip"]
