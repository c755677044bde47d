"""OpenClip.write: atomic replace through a temp file no ``*.clip`` pattern matches."""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path

import pytest

from meridian.errors import BadInput
from meridian.flame import OpenClip, new_clip

DATA = Path(__file__).parent / "data"


@pytest.fixture
def clip_file(tmp_path: Path) -> Path:
    path = tmp_path / "sh010.clip"
    path.write_bytes((DATA / "sh010_plate_v001.clip").read_bytes())
    return path


def test_write_goes_through_a_hidden_temp_file_then_rename(clip_file: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renames.append((os.fspath(src), os.fspath(dst)))
        assert Path(src).exists() and Path(src).stat().st_size > 0
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    clip = OpenClip.read(clip_file)
    clip.add_version("/r/sh010_comp_v002.[1001-1098].exr")
    clip.write()
    [(src, dst)] = renames
    assert dst == str(clip_file)
    temp = Path(src)
    assert temp.parent == clip_file.parent
    assert temp.name.startswith(".sh010.clip.tmp-")
    for pattern in ("*.clip", "*/*.clip", "sh010*.clip", ".*.clip"):
        assert not fnmatch.fnmatch(temp.name, pattern)
    assert not temp.exists()
    assert [v.name for v in OpenClip.read(clip_file).versions()] == ["v000", "v001", "v002"]
    assert sorted(p.name for p in clip_file.parent.iterdir()) == ["sh010.clip"]


def test_write_syncs_file_and_folder(clip_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    OpenClip.read(clip_file).write()
    assert synced == [False, True]  # the temp file, then the folder after the rename


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_old_file_intact_when_writing_fails(clip_file: Path, monkeypatch: pytest.MonkeyPatch,
                                            failing: str) -> None:
    before = clip_file.read_bytes()
    clip = OpenClip.read(clip_file)
    clip.add_version("/r/sh010_comp_v002.[1001-1098].exr")

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="No space left"):
        clip.write()
    monkeypatch.undo()
    assert clip_file.read_bytes() == before
    assert sorted(p.name for p in clip_file.parent.iterdir()) == ["sh010.clip"]


def test_write_keeps_permission_bits(clip_file: Path) -> None:
    clip_file.chmod(0o640)
    OpenClip.read(clip_file).write()
    assert stat.S_IMODE(clip_file.stat().st_mode) == 0o640


def test_write_a_new_clip_needs_a_path(tmp_path: Path) -> None:
    clip = new_clip("sh010", "/p/sh010_plate.[1001-1098].exr")
    with pytest.raises(BadInput, match="no path"):
        clip.write()
    clip.write(tmp_path / "sh010.clip")
    assert clip.path == tmp_path / "sh010.clip"
    assert OpenClip.read(tmp_path / "sh010.clip").to_bytes() == clip.to_bytes()


def test_write_elsewhere_leaves_path(clip_file: Path, tmp_path: Path) -> None:
    clip = OpenClip.read(clip_file)
    clip.write(tmp_path / "copy.clip")
    assert clip.path == clip_file
    assert (tmp_path / "copy.clip").read_bytes() == clip_file.read_bytes()
