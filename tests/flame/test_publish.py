"""Shot Publish: timelines in three formats, plates, clips, setups, idempotence, media lookup.

The data folder holds one cut (sequence sq010, four shots at 24 fps) as a CMX 3600 EDL, an FCP 7
XML and an .otio. Plate "frames" are a few bytes each, named like EXR frames, whose content
names the source frame, so a test can tell which source frame became which plate frame.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from meridian.errors import BadInput
from meridian.flame.batch import read_setup
from meridian.flame.openclip import OpenClip
from meridian.flame.publish import Layout, publish
from meridian.flame.timeline import Shot, name_shots, read_timeline

DATA = Path(__file__).parent / "data"
FORMATS = ("edl", "xml", "otio")

# (shot, where its source frames live under media/, frame-file prefix, cut source in, frames)
SOURCES = {
    "sh010": ("scans", "A001C003.", 86640, 12),        # found by source file name
    "sh020": ("day2/cam_a", "A001C007_", 89280, 10),   # by source file name, "_" separator
    "sh030": ("B002C001", "frame.", 172920, 8),        # by reel: folder per reel
    "sh040": ("scans", "B002C004.", 187200, 6),
}


def make_media(media: Path, handles: int, skip: tuple[str, ...] = ()) -> None:
    """Source frames for every shot not in ``skip``, ``handles`` frames each side."""
    for shot, (folder, prefix, source_in, count) in SOURCES.items():
        if shot in skip:
            continue
        (media / folder).mkdir(parents=True, exist_ok=True)
        for frame in range(source_in - handles, source_in + count + handles):
            (media / folder / f"{prefix}{frame:07d}.exr").write_bytes(f"{prefix}{frame}".encode())


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_ino, p.stat().st_size)
            for p in root.rglob("*")}


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    make_media(folder, handles=8)
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


# -- timelines ----------------------------------------------------------------------------------

def test_the_three_formats_read_as_the_same_cut() -> None:
    cuts = [read_timeline(DATA / f"sq010.{ext}") for ext in FORMATS]
    assert cuts[0] == cuts[1] == cuts[2]
    cut = cuts[0]
    assert cut.name == "sq010" and cut.rate == 24.0
    assert [s.name for s in cut.shots] == ["sh010", "sh020", "sh030", "sh040"]
    first = cut.shots[0]
    assert (first.reel, first.source_path, first.source_name) == (
        "A001C003", "/mnt/scans/A001C003.mov", "A001C003")
    assert (first.source_in, first.source_out, first.record_in, first.duration_frames) == (
        86640, 86652, 0, 12)
    assert [s.record_in for s in cut.shots] == [0, 12, 22, 30]


def test_unreadable_timelines_are_bad_input_naming_the_file(tmp_path: Path) -> None:
    for name, text in (("cut.txt", "hello"), ("bad.edl", "001  A001 V C 01:00:00:00\n"),
                       ("bad.xml", "<xmeml><sequence>"), ("bad.otio", "{not json")):
        (tmp_path / name).write_text(text)
        with pytest.raises(BadInput, match=name):
            read_timeline(tmp_path / name)
    with pytest.raises(BadInput, match="absent.edl"):
        read_timeline(tmp_path / "absent.edl")


# -- the tree -----------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", FORMATS)
def test_publish_writes_the_default_layout(ext: str, root: Path, media: Path) -> None:
    report = publish(DATA / f"sq010.{ext}", root, media=media, handles=8, progress=False)
    assert report.ok, report.lines()
    assert report.published == ["sh010", "sh020", "sh030", "sh040"] and report.kept == []
    assert report.frames_linked == (12 + 10 + 8 + 6) + 4 * 16 and report.frames_copied == 0
    for shot in ("sh010", "sh020", "sh030", "sh040"):
        for sub in ("plates", "renders/v001", "flame", "batch"):
            assert (root / "sq010" / shot / sub).is_dir()
        assert (root / "sq010" / shot / "flame" / f"{shot}.clip").is_file()
        assert (root / "sq010" / shot / "batch" / f"{shot}_setup.xml").is_file()
    assert (root / "sq010" / "flame" / "sq010.clip").is_file()
    assert len(report.written) == 4 * 2 + 1


def test_the_three_formats_give_the_same_tree(tmp_path: Path, media: Path) -> None:
    results = []
    for ext in FORMATS:
        root = tmp_path / ext
        root.mkdir()
        publish(DATA / f"sq010.{ext}", root, media=media, handles=8, progress=False)
        clips = {p: [(v.name, {k: x.replace(str(root), "") for k, x in v.paths.items()})
                     for v in OpenClip.read(root / p).versions()]
                 for p in tree(root) if p.endswith(".clip")}
        setups = {p: (root / p).read_text().replace(str(root), "")
                  for p in tree(root) if p.endswith(".xml")}
        results.append((tree(root), clips, setups))
    assert results[0] == results[1] == results[2]


def test_plates_are_numbered_from_start_frame_with_handles(root: Path, media: Path) -> None:
    publish(DATA / "sq010.edl", root, media=media, handles=8, start_frame=1001, progress=False)
    plates = root / "sq010" / "sh010" / "plates"
    assert sorted(p.name for p in plates.iterdir()) == [
        f"sh010_plate.{n:04d}.exr" for n in range(993, 1021)]
    # the cut's first frame is start_frame; handles come before it and after the cut's end
    assert (plates / "sh010_plate.1001.exr").read_bytes() == b"A001C003.86640"
    assert (plates / "sh010_plate.0993.exr").read_bytes() == b"A001C003.86632"
    assert (plates / "sh010_plate.1020.exr").read_bytes() == b"A001C003.86659"


def test_no_handles_and_another_start_frame(root: Path, media: Path) -> None:
    publish(DATA / "sq010.edl", root, media=media, start_frame=101, progress=False)
    plates = root / "sq010" / "sh020" / "plates"
    assert sorted(p.name for p in plates.iterdir()) == [
        f"sh020_plate.{n:04d}.exr" for n in range(101, 111)]
    assert (plates / "sh020_plate.0101.exr").read_bytes() == b"A001C007_89280"
    clip = OpenClip.read(root / "sq010" / "sh020" / "flame" / "sh020.clip")
    assert clip.versions()[0].paths["video"].endswith("/sh020_plate.[0101-0110].exr")
    with pytest.raises(BadInput):
        publish(DATA / "sq010.edl", root, media=media, handles=10, start_frame=5)


def test_shot_clip_has_v000_pointing_at_the_plates(root: Path, media: Path) -> None:
    publish(DATA / "sq010.edl", root, media=media, handles=8, progress=False)
    clip = OpenClip.read(root / "sq010" / "sh010" / "flame" / "sh010.clip")
    assert clip.name == "sh010" and clip.current_version == "v000"
    [version] = clip.versions()
    assert version.name == "v000"
    assert version.paths == {
        "video": f"{root}/sq010/sh010/plates/sh010_plate.[0993-1020].exr"}
    assert len(clip.frame_patterns("v000")["video"]) == 28


def test_sequence_clip_has_one_feed_per_shot_in_cut_order(root: Path, media: Path) -> None:
    publish(DATA / "sq010.edl", root, media=media, progress=False)
    clip = OpenClip.read(root / "sq010" / "flame" / "sq010.clip")
    assert [v.name for v in clip.versions()] == ["sh010", "sh020", "sh030", "sh040"]
    assert clip.versions()[2].paths["video"] == (
        f"{root}/sq010/sh030/plates/sh030_plate.[1001-1008].exr")


def test_batch_setup_names_plate_clip_render_pattern_and_output_clip(root: Path,
                                                                     media: Path) -> None:
    publish(DATA / "sq010.edl", root, media=media, handles=8, project="feature",
            progress=False)
    path = root / "sq010" / "sh010" / "batch" / "sh010_setup.xml"
    assert "NOT a Flame-saved .batch file" in path.read_text()
    setup = read_setup(path)
    shot = root / "sq010" / "sh010"
    assert setup.plate_clip == setup.output_clip == str(shot / "flame" / "sh010.clip")
    assert setup.plate_version == "v000"
    assert setup.plate_pattern == f"{shot}/plates/sh010_plate.[0993-1020].exr"
    assert setup.render_pattern == (
        f"{shot}/renders/<version>/sh010_<version>.[0993-1020].exr")
    assert (setup.first, setup.last, setup.cut_in, setup.cut_out, setup.handles) == (
        993, 1020, 1001, 1012, 8)
    assert (setup.project, setup.sequence, setup.shot, setup.rate) == (
        "feature", "sq010", "sh010", (24, 1))


# -- idempotence --------------------------------------------------------------------------------

def test_publishing_again_changes_nothing(root: Path, media: Path) -> None:
    publish(DATA / "sq010.edl", root, media=media, handles=8, progress=False)
    before = snapshot(root)
    report = publish(DATA / "sq010.xml", root, media=media, handles=8)
    assert snapshot(root) == before
    assert report.ok and report.published == [] and report.written == []
    assert report.kept == ["sh010", "sh020", "sh030", "sh040"]
    assert report.frames_kept == 36 + 4 * 16 and report.frames_linked == 0
    # every frame is there, so the media are not needed (nor walked) any more
    assert publish(DATA / "sq010.otio", root, handles=8, progress=False).ok
    assert snapshot(root) == before


def test_a_shot_added_to_the_cut_is_added_and_nothing_else_changes(root: Path, media: Path,
                                                                   tmp_path: Path) -> None:
    lines = (DATA / "sq010.edl").read_text().splitlines(keepends=True)
    first_three = tmp_path / "sq010.edl"
    first_three.write_text("".join(lines[:lines.index("004  B002C004 V     C        "
                                                      "02:10:00:00 02:10:00:06 01:00:01:06 "
                                                      "01:00:01:12\n")]))
    first = publish(first_three, root, media=media, progress=False)
    assert first.published == ["sh010", "sh020", "sh030"]
    seq_clip = root / "sq010" / "flame" / "sq010.clip"
    # folders that gain an entry (sq010, sq010/flame) and the sequence clip do change
    before = {k: v for k, v in snapshot(root).items()
              if (root / k).is_file() and k != "sq010/flame/sq010.clip"}
    report = publish(DATA / "sq010.edl", root, media=media, progress=False)
    after = snapshot(root)
    assert report.published == ["sh040"] and report.kept == ["sh010", "sh020", "sh030"]
    assert {k: after[k] for k in before} == before
    assert sorted(k for k in set(after) - set(before) if (root / k).is_file()) == sorted(
        ["sq010/flame/sq010.clip"] + [p for p in tree(root)
                                      if p.startswith("sq010/sh040") and (root / p).is_file()])
    assert [v.name for v in OpenClip.read(seq_clip).versions()] == [
        "sh010", "sh020", "sh030", "sh040"]
    assert set(report.written) == {seq_clip, root / "sq010/sh040/flame/sh040.clip",
                                   root / "sq010/sh040/batch/sh040_setup.xml"}


def test_missing_frames_are_added_when_media_appears_later(root: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_media(media, handles=0, skip=("sh040",))
    assert publish(DATA / "sq010.edl", root, media=media, progress=False).missing.keys() == {
        "sh040"}
    clip = root / "sq010" / "sh040" / "flame" / "sh040.clip"
    mtime = clip.stat().st_mtime_ns
    make_media(media, handles=0)
    report = publish(DATA / "sq010.edl", root, media=media, progress=False)
    assert report.ok and report.frames_linked == 6 and report.kept[-1] == "sh040"
    assert clip.stat().st_mtime_ns == mtime


# -- media --------------------------------------------------------------------------------------

def test_missing_media_is_reported_per_shot_and_the_shot_is_still_written(
        root: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_media(media, handles=8, skip=("sh040",))
    report = publish(DATA / "sq010.edl", root, media=media, handles=8, progress=False)
    assert not report.ok
    assert list(report.missing) == ["sh040"]
    assert "B002C004" in report.missing["sh040"]
    assert report.published == ["sh010", "sh020", "sh030", "sh040"]
    shot = root / "sq010" / "sh040"
    assert (shot / "flame" / "sh040.clip").is_file()
    assert (shot / "batch" / "sh040_setup.xml").is_file()
    assert (shot / "renders" / "v001").is_dir() and list((shot / "plates").iterdir()) == []
    assert any("sh040: missing media" in line for line in report.lines())


def test_source_frames_short_of_the_handles_are_reported(root: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    make_media(media, handles=2)
    report = publish(DATA / "sq010.edl", root, media=media, handles=4, progress=False)
    assert set(report.missing) == {"sh010", "sh020", "sh030", "sh040"}
    assert "4 of 20 source frames" in report.missing["sh010"]
    assert report.frames_linked == (12 + 10 + 8 + 6) + 4 * 4


def test_no_media_folder_reports_every_shot(root: Path) -> None:
    report = publish(DATA / "sq010.edl", root, progress=False)
    assert report.missing == dict.fromkeys(("sh010", "sh020", "sh030", "sh040"),
                                           "no media folder given")
    assert len(report.written) == 9


def test_sources_are_found_by_file_name_or_by_reel_folder(root: Path, media: Path) -> None:
    publish(DATA / "sq010.edl", root, media=media, progress=False)
    plate = root / "sq010" / "sh030" / "plates" / "sh030_plate.1001.exr"
    assert plate.samefile(media / "B002C001" / "frame.0172920.exr")  # hard link, reel folder
    plate = root / "sq010" / "sh020" / "plates" / "sh020_plate.1001.exr"
    assert plate.samefile(media / "day2" / "cam_a" / "A001C007_0089280.exr")


def test_two_sequences_of_one_name_are_ambiguous(root: Path, media: Path) -> None:
    (media / "other").mkdir()
    (media / "other" / "A001C003.0086640.exr").write_bytes(b"x")
    report = publish(DATA / "sq010.edl", root, media=media, progress=False)
    assert list(report.missing) == ["sh010"]
    assert "2 sequences named A001C003" in report.missing["sh010"]


def test_frames_are_copied_when_they_cannot_be_linked(root: Path, media: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)  # the module calls os.link
    report = publish(DATA / "sq010.edl", root, media=media, progress=False)
    assert report.ok and report.frames_linked == 0 and report.frames_copied == 36
    plate = root / "sq010" / "sh010" / "plates" / "sh010_plate.1001.exr"
    assert plate.read_bytes() == b"A001C003.86640"
    assert not plate.samefile(media / "scans" / "A001C003.0086640.exr")
    assert not [p for p in root.rglob(".*")]  # no temp file left


# -- names and patterns -------------------------------------------------------------------------

EDL_WITHOUT_NAMES = """TITLE: reel 2 / cut
001  A001C003 V     C        01:00:10:00 01:00:10:12 01:00:00:00 01:00:00:12
* FROM CLIP: /mnt/scans/A001C003.mov
002  A001C007 V     C        01:02:00:00 01:02:00:10 01:00:00:12 01:00:00:22
003  B002C001 V     C        02:00:05:00 02:00:05:08 01:00:00:22 01:00:01:06
* FROM CLIP NAME: sh030
"""


def test_shot_names_fall_back_to_a_numbered_pattern(tmp_path: Path, root: Path,
                                                    media: Path) -> None:
    edl = tmp_path / "cut.edl"
    edl.write_text(EDL_WITHOUT_NAMES)
    cut = read_timeline(edl)
    assert [s.name for s in cut.shots] == ["A001C003", "002", "sh030"]
    assert name_shots(cut) == ["sh010", "sh020", "sh030"]
    assert name_shots(cut, "ab####") == ["ab0010", "ab0020", "ab0030"]
    report = publish(edl, root, media=media, shot_names="ab####", progress=False)
    assert report.sequence == "reel_2_cut"
    assert (root / "reel_2_cut" / "ab0020" / "flame" / "ab0020.clip").is_file()
    assert (root / "reel_2_cut" / "ab0020" / "plates" / "ab0020_plate.1001.exr").read_bytes() \
        == b"A001C007_89280"


def test_clip_names_that_look_like_shots_are_used_and_kept_unique() -> None:
    cut = read_timeline(DATA / "sq010.otio")
    assert name_shots(cut) == ["sh010", "sh020", "sh030", "sh040"]
    twice = type(cut)(cut.name, cut.rate, cut.shots + (
        Shot(5, "sh010", "", "", 0, 5, 36, 5, 24.0),
        Shot(6, "A001", "A001", "", 0, 5, 41, 5, 24.0)))  # a reel name is not a shot name
    assert name_shots(twice) == ["sh010", "sh020", "sh030", "sh040", "sh010_2", "sh060"]
    for bad in ("shot", "sh##_##", "sh/###"):
        with pytest.raises(BadInput):
            name_shots(cut, bad)


def test_a_pattern_with_project_and_its_sequence_clip(root: Path, media: Path) -> None:
    pattern = "<project>/<sequence>/<shot>/{plates,renders/<version>,flame,batch,ref/<name>}"
    with pytest.raises(BadInput, match="project"):
        publish(DATA / "sq010.edl", root, pattern=pattern, media=media)
    report = publish(DATA / "sq010.edl", root, pattern=pattern, media=media, project="feat",
                     progress=False)
    assert report.ok
    assert (root / "feat" / "sq010" / "flame" / "sq010.clip").is_file()
    assert (root / "feat" / "sq010" / "sh010" / "ref" / "sh010").is_dir()
    assert read_setup(root / "feat/sq010/sh010/batch/sh010_setup.xml").project == "feat"


def test_bad_patterns_are_refused_before_anything_is_written(root: Path) -> None:
    for pattern in ("<sequence>/<shot>/{plates,flame,batch}",           # no renders
                    "<sequence>/<shot>/{plates,renders,flame,batch,<take>}",
                    "/abs/<shot>/{plates,renders,flame,batch}",
                    "<sequence>/{plates,renders,flame,batch}",           # no <shot>
                    "<shot>/../{plates,renders,flame,batch}",
                    "<name>/<shot>/{plates,renders,flame,batch}"):       # above the shot
        with pytest.raises(BadInput):
            publish(DATA / "sq010.edl", root, pattern=pattern)
    assert os.listdir(root) == []
    layout = Layout.parse("<shot>/{plates,renders,flame,batch}")
    assert layout.renders == "<shot>/renders/<version>" and layout.sequence_flame == "flame"
