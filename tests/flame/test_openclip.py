"""OpenClip: golden round trips, what is read, add_version, new_clip."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import meridian.flame.clipfile as clipfile
from meridian.errors import BadInput
from meridian.flame import ClipError, ClipVersion, FramePattern, OpenClip, new_clip
from meridian.flame.elements import next_version_name
from tests.flame.xmlcompare import infoset

DATA = Path(__file__).parent / "data"
GOLDEN = ["sh010_plate_v001.clip", "sh020_multichannel.clip", "card_still.clip",
          "sh030_comp_scan.clip", "sh040_printf.clip", "sh010_plate_v002.expected.clip"]


def feed_paths(clip: OpenClip, track: str) -> list[tuple[str, str]]:
    """(vuid, path text) of each feed of ``track``, read from the clip's bytes."""
    data = infoset(clip.to_bytes())
    out: list[tuple[str, str]] = []

    def walk(nodes: list[object], in_track: bool) -> None:
        for node in nodes:
            assert isinstance(node, list)
            if node[0] != "element":
                continue
            attrs = dict(node[2])
            here = in_track or (node[1] == "track" and attrs.get("uid") == track)
            if node[1] == "feed" and here:
                out.append((attrs["vuid"], _first_text(node[3], "path")))
            walk(node[3], here)

    walk(data, False)
    return out


def without_version(nodes: list[Any], name: str, current: str) -> list[Any]:
    """``nodes`` without the feeds and version element of ``name``, currentVersion ``current``."""
    out: list[Any] = []
    for node in nodes:
        if node[0] != "element":
            out.append(node)
            continue
        attrs = dict(node[2])
        if (node[1], attrs.get("vuid"), attrs.get("uid")) in (("feed", name, attrs.get("uid")),
                                                               ("version", None, name)):
            continue
        pairs = [(k, current if k == "currentVersion" else v) for k, v in node[2]]
        out.append(["element", node[1], pairs, without_version(node[3], name, current)])
    return out


def _first_text(nodes: list[object], name: str) -> str:
    for node in nodes:
        assert isinstance(node, list)
        if node[0] == "element" and node[1] == name:
            return "".join(n[1] for n in node[3] if n[0] == "text")
        if node[0] == "element":
            found = _first_text(node[3], name)
            if found:
                return found
    return ""


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_round_trip_keeps_the_infoset(name: str) -> None:
    data = (DATA / name).read_bytes()
    out = OpenClip.parse(data, DATA / name).to_bytes()
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert infoset(out) == infoset(data)
    assert OpenClip.parse(out).to_bytes() == out  # stable


def test_round_trip_of_flame_written_clip_is_byte_identical() -> None:
    data = (DATA / "sh010_plate_v001.clip").read_bytes()
    assert OpenClip.parse(data).to_bytes() == data


def test_unknown_elements_namespaces_comments_and_pis_are_kept() -> None:
    out = OpenClip.read(DATA / "sh040_printf.clip").to_bytes().decode()
    assert '<?meridian-test keep="this processing instruction"?>' in out
    assert '<customStudioData xmlns:st="urn:example:studio" st:owner="prep" reviewed="yes">' in out
    assert "<st:ticket id=\"PREP-118\">rig removal &amp; paint &lt;done&gt;</st:ticket>" in out
    assert "<!-- an artist's note that must survive -->" in out
    assert out.endswith("</clip>\n<!-- trailing comment after the root -->\n")
    assert out.index("<comment>cleanup plate") < out.index("<customStudioData") < out.index(
        "<tracks>")


def test_one_track_clip_as_flame_writes_it() -> None:
    clip = OpenClip.read(DATA / "sh010_plate_v001.clip")
    assert clip.path == DATA / "sh010_plate_v001.clip"
    assert (clip.name, clip.kind, clip.scan_pattern) == ("sh010", "feeds", None)
    assert clip.track_uids() == ["video"]
    assert clip.current_version == "v001"
    assert clip.versions() == [
        ClipVersion("v000", "2025/11/24 09:12:40",
                    {"video": "/hs-mount/project/sq01/sh010/plates/"
                              "sh010_plate.[001001-001098].exr"}),
        ClipVersion("v001", "2025/11/24 17:45:03",
                    {"video": "/hs-mount/project/sq01/sh010/renders/v001/"
                              "sh010_comp_v001.[1001-1098].exr"}),
    ]
    plate = clip.frame_patterns("v000")["video"]
    assert (plate.first, plate.last, plate.padding) == (1001, 1098, 6)
    assert plate.frames()[0].endswith("sh010_plate.001001.exr")


def test_several_tracks() -> None:
    clip = OpenClip.read(DATA / "sh020_multichannel.clip")
    assert clip.track_uids() == ["BEAUTY:MasterBeauty", "Z:Depth", "matte:crypto00"]
    assert [v.name for v in clip.versions()] == ["v001", "v002"]
    assert clip.current_version == "v002"
    v002 = clip.versions()[1]
    assert v002.creation_date == "2025/12/02 19:30:00"
    assert set(v002.paths) == set(clip.track_uids())
    assert all("/v002/" in p for p in v002.paths.values())


def test_still_with_encoding_file_and_no_versions_element() -> None:
    clip = OpenClip.read(DATA / "card_still.clip")
    assert clip.name == "card_still"  # no <name>: the file name
    assert clip.versions() == [ClipVersion("v0", None, {"t0": "cards/sq01_title_card.png"})]
    assert clip.current_version == "v0"  # none declared: the last version
    assert clip.frame_patterns("v0") == {}  # a still is not a sequence


def test_printf_path_with_start_frame_and_duration() -> None:
    clip = OpenClip.read(DATA / "sh040_printf.clip")
    assert clip.versions()[0].paths == {"video": "versions/v001/sh040_prep.%04d.exr"}
    assert clip.frame_patterns("v001") == {
        "video": FramePattern("versions/v001/sh040_prep.", 1001, 1048, 4, ".exr")}
    # stereo: the first of <paths>
    assert clip.versions()[1].paths == {
        "video": "versions/v002/left/sh040_prep_L.[1001-1048].exr"}


def test_printf_path_without_range_is_an_error_naming_the_path() -> None:
    data = (DATA / "sh040_printf.clip").read_bytes().replace(
        b"<startFrame>1001</startFrame>", b"")
    clip = OpenClip.parse(data, "sh040.clip")
    with pytest.raises(ClipError, match=r"^sh040\.clip:\d+: <path>: .*startFrame"):
        clip.frame_patterns("v001")


def test_scan_clip() -> None:
    clip = OpenClip.read(DATA / "sh030_comp_scan.clip")
    assert clip.kind == "scan"
    assert clip.scan_pattern == ("/hs-mount/project/sq01/sh030/renders/v{version}/"
                                 "sh030_comp_v{version}.[1001-1098].exr")
    assert clip.versions() == [] and clip.track_uids() == []
    assert clip.current_version is None
    with pytest.raises(ClipError, match="scan-pattern"):
        clip.add_version("/p/x.[1-2].exr")


# -- add_version ------------------------------------------------------------------------------

@pytest.fixture
def fixed_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clipfile, "new_uid", lambda: "00000000-0000-4000-8000-000000000002")


@pytest.mark.usefixtures("fixed_uid")
def test_add_version_matches_golden_file() -> None:
    clip = OpenClip.read(DATA / "sh010_plate_v001.clip")
    name = clip.add_version(
        "/hs-mount/project/sq01/sh010/renders/v002/sh010_comp_v002.[1001-1098].exr",
        creation_date="2025/11/25 11:02:17")
    assert name == "v002"
    assert clip.to_bytes() == (DATA / "sh010_plate_v002.expected.clip").read_bytes()


def test_add_version_one_track() -> None:
    clip = OpenClip.read(DATA / "sh010_plate_v001.clip")
    before = infoset(clip.to_bytes())
    name = clip.add_version("/r/sh010_comp_v002.[001001-001098].exr")
    assert name == "v002"
    assert clip.current_version == "v002"
    out = clip.to_bytes().decode()
    assert re.search(r'<feeds currentVersion="v002">', out)
    assert re.search(r'<versions type="versions" currentVersion="v002">', out)
    # the new feed: bracket path as given (padding kept), storageFormat of the one it follows
    assert feed_paths(clip, "video")[-1] == ("v002", "/r/sh010_comp_v002.[001001-001098].exr")
    new_feed = out[out.index('vuid="v002"'):]
    assert "<pixelLayout type=\"string\">RGBA</pixelLayout>" in new_feed.split("</feed>")[0]
    assert '<spans type="spans" version="4">' in new_feed.split("</feed>")[0]
    version = clip.versions()[-1]
    assert version.name == "v002" and version.creation_date is not None
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d", version.creation_date)
    # everything else kept: without the new feed and version, and with currentVersion put
    # back, the infoset is the original one
    assert without_version(infoset(clip.to_bytes()), "v002", "v001") == before
    assert out.count("<feed ") == 3 and out.count("<version ") == 3
    assert "GATEWAY_NODE_ID" in out and "batchSetup" in out


def test_add_version_several_tracks() -> None:
    clip = OpenClip.read(DATA / "sh020_multichannel.clip")
    with pytest.raises(BadInput, match="one pattern per track"):
        clip.add_version("/renders/v003/a.[1001-1100].exr")
    patterns = {uid: f"/renders/sh020/light/v003/{uid.replace(':', '_')}.[1001-1100].exr"
                for uid in clip.track_uids()}
    name = clip.add_version(patterns, creation_date="2025/12/04 09:00:00")
    assert name == "v003"
    assert clip.versions()[-1] == ClipVersion("v003", "2025/12/04 09:00:00", patterns)
    out = clip.to_bytes().decode()
    assert out.count('<feeds currentVersion="v003">') == 3
    assert '<versions currentVersion="v003">' in out
    # each track's new feed copies that track's storageFormat (Z has nbChannels 1)
    z_track = out[out.index('uid="Z:Depth"'):out.index('uid="matte:crypto00"')]
    assert z_track.count('<nbChannels type="uint">1</nbChannels>') == 3
    assert "type=" not in z_track.split('vuid="v003"')[1].split("<storageFormat")[0]
    assert infoset(OpenClip.parse(clip.to_bytes()).to_bytes()) == infoset(clip.to_bytes())


@pytest.mark.parametrize("paths", [
    {"BEAUTY:MasterBeauty": "/a.[1-2].exr", "Z:Depth": "/b.[1-2].exr"},  # one missing
    {"BEAUTY:MasterBeauty": "/a.[1-2].exr", "Z:Depth": "/b.[1-2].exr",
     "matte:crypto00": "/c.[1-2].exr", "N:Normals": "/d.[1-2].exr"},  # one unknown
    {"BEAUTY:MasterBeauty": "/a.%04d.exr", "Z:Depth": "/b.[1-2].exr",
     "matte:crypto00": "/c.[1-2].exr"},  # printf: new versions are bracket form
    {"BEAUTY:MasterBeauty": "/a.[9-2].exr", "Z:Depth": "/b.[1-2].exr",
     "matte:crypto00": "/c.[1-2].exr"},  # bad range
])
def test_add_version_refusals_change_nothing(paths: dict[str, str]) -> None:
    clip = OpenClip.read(DATA / "sh020_multichannel.clip")
    before = clip.to_bytes()
    with pytest.raises(BadInput):
        clip.add_version(paths)
    assert clip.to_bytes() == before


def test_add_version_with_a_name_that_exists() -> None:
    clip = OpenClip.read(DATA / "sh010_plate_v001.clip")
    with pytest.raises(ClipError, match=r"sh010_plate_v001\.clip:\d+: <version>: .*'v001' exists"):
        clip.add_version("/r/x.[1-2].exr", name="v001")
    assert clip.add_version("/r/x.[1-2].exr", name="v001_retime") == "v001_retime"
    assert clip.add_version("/r/y.[1-2].exr") == "v002"  # next after the highest vNNN


def test_add_version_creates_versions_element_listing_existing_ones() -> None:
    clip = OpenClip.read(DATA / "card_still.clip")
    assert clip.add_version("cards/sq01_title_card_v2.png") == "v001"
    out = clip.to_bytes().decode()
    assert '<path encoding="file">cards/sq01_title_card_v2.png</path>' in out
    assert [v.name for v in clip.versions()] == ["v0", "v001"]
    assert clip.current_version == "v001"
    assert out.index("</tracks>") < out.index('<versions type="versions" currentVersion="v001">')
    assert '<version type="version" uid="v0">' in out


def test_next_version_name() -> None:
    assert next_version_name([]) == "v001"
    assert next_version_name(["v000"]) == "v001"
    assert next_version_name(["v009", "v010", "comp"]) == "v011"
    assert next_version_name(["v0"]) == "v001"
    assert next_version_name(["v0999"]) == "v1000"


# -- new_clip ---------------------------------------------------------------------------------

def test_new_clip_for_a_plate() -> None:
    clip = new_clip("sh010", "/hs-mount/project/sq01/sh010/plates/sh010_plate.[1001-1098].exr",
                    rate=(24000, 1001), width=2048, height=858)
    assert clip.path is None and clip.kind == "feeds" and clip.name == "sh010"
    assert clip.track_uids() == ["video"]
    assert clip.current_version == "v000"
    [version] = clip.versions()
    assert version.name == "v000" and version.creation_date
    assert version.paths == {"video": "/hs-mount/project/sq01/sh010/plates/"
                                      "sh010_plate.[1001-1098].exr"}
    out = clip.to_bytes().decode()
    assert '<duration type="time" label="00:00:04+02">' in out
    assert "<nbTicks>98</nbTicks>" in out and "<numerator>24000</numerator>" in out
    assert '<width type="uint">2048</width>' in out and '<height type="uint">858</height>' in out
    assert '<feeds currentVersion="v000">' in out
    assert '<versions type="versions" currentVersion="v000">' in out
    # then a render lands: v001 with the plate's storageFormat
    assert clip.add_version("/r/sh010_comp_v001.[1001-1098].exr") == "v001"
    assert clip.to_bytes().decode().count('<width type="uint">2048</width>') == 2


def test_new_clip_refusals() -> None:
    with pytest.raises(BadInput):
        new_clip("", "/p/a.[1-2].exr")
    with pytest.raises(BadInput):
        new_clip("sh010", "/p/a.%04d.exr")
    with pytest.raises(BadInput):
        new_clip("sh010", "/p/a.[1-2].exr", rate=(0, 1))


def test_namespace_prefixes_kept_even_when_redeclared() -> None:
    data = (b'<?xml version="1.0" encoding="UTF-8"?>\n<clip xmlns:a="urn:one" a:k="1">'
            b'<x xmlns:a="urn:two"><a:y a:k="2"/></x><a:z/>'
            b'<tracks><track uid="t"><feeds/></track></tracks></clip>\n')
    out = OpenClip.parse(data).to_bytes()
    assert infoset(out) == infoset(data)
