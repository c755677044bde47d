"""scan_versions: the versions of a scan-pattern clip, found on a tmp tree."""

from __future__ import annotations

from pathlib import Path

from meridian.flame import OpenClip, scan_versions

DATA = Path(__file__).parent / "data"


def touch(root: Path, *relative: str) -> None:
    for name in relative:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_versions_in_folder_and_file_names(tmp_path: Path) -> None:
    touch(tmp_path,
          "renders/v001/sh030_comp_v001.1001.exr",
          "renders/v001/sh030_comp_v001.1002.exr",
          "renders/v002/sh030_comp_v002.1098.exr",
          "renders/v010/sh030_comp_v010.1050.exr",
          "renders/v003/sh030_comp_v004.1001.exr",   # folder and file disagree
          "renders/v005/sh030_comp_v005.0999.exr",   # outside the range
          "renders/v006/sh030_comp_v006.01001.exr",  # wrong padding
          "renders/v007/sh030_comp_v007.1001.dpx",   # another extension
          "renders/v008/sh030_comp_v008.tmp")
    (tmp_path / "renders/v009").mkdir()  # an empty folder
    (tmp_path / "renders/v011").mkdir()
    (tmp_path / "renders/v011/sh030_comp_v011.1001.exr").mkdir()  # a folder is not a frame
    pattern = f"{tmp_path}/renders/v{{version}}/sh030_comp_v{{version}}.[1001-1098].exr"
    assert scan_versions(pattern, Path("/nowhere")) == ["001", "002", "010"]


def test_relative_pattern_is_under_root(tmp_path: Path) -> None:
    touch(tmp_path, "sq01/sh030/renders/sh030_comp_v1.1001.exr",
          "sq01/sh030/renders/sh030_comp_v12.1001.exr",
          "sq01/sh030/renders/sh030_comp_v2.1001.exr")
    pattern = "sq01/sh030/renders/sh030_comp_v{version}.[1001-1001].exr"
    assert scan_versions(pattern, tmp_path) == ["1", "2", "12"]  # numbers by value
    assert scan_versions(pattern, tmp_path / "elsewhere") == []


def test_frame_token_printf_and_movies(tmp_path: Path) -> None:
    touch(tmp_path, "a/sh040_v001.17.exr", "a/sh040_v002.x.exr",
          "b/sh040_v001.0001.exr", "b/sh040_v002.001.exr",
          "c/sh040_grade_v003.mov", "c/sh040_grade_vA.mov")
    assert scan_versions(f"{tmp_path}/a/sh040_v{{version}}.{{frame}}.exr", tmp_path) == ["001"]
    assert scan_versions(f"{tmp_path}/b/sh040_v{{version}}.%04d.exr", tmp_path) == ["001"]
    assert scan_versions(f"{tmp_path}/c/sh040_grade_v{{version}}.mov", tmp_path) == ["003", "A"]


def test_pattern_without_version_token_and_missing_folders(tmp_path: Path) -> None:
    touch(tmp_path, "a/sh040.1001.exr")
    assert scan_versions(f"{tmp_path}/a/sh040.[1001-1001].exr", tmp_path) == []
    assert scan_versions(f"{tmp_path}/missing/v{{version}}/x.[1-2].exr", tmp_path) == []


def test_versions_of_the_golden_scan_clip(tmp_path: Path) -> None:
    clip = OpenClip.read(DATA / "sh030_comp_scan.clip")
    assert clip.scan_pattern is not None
    relative = clip.scan_pattern.removeprefix("/")
    touch(tmp_path, relative.replace("{version}", "001").replace("[1001-1098]", "1001"),
          relative.replace("{version}", "002").replace("[1001-1098]", "1050"))
    assert scan_versions(relative, tmp_path) == ["001", "002"]
