"""A content fetched whole (``add_fetched``): checked, installed complete with one fsync."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from meridian.content import LocalVolume, hash_bytes
from meridian.errors import ContentError, NoSpace


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_installs_complete_and_survives_a_restart(root: Path, volume: LocalVolume) -> None:
    data = os.urandom(64 * 1024)
    h = hash_bytes(data)
    assert volume.add_fetched(h, data)
    assert volume.has(h) and volume.read(h, 0, len(data)) == data
    assert files_under(root) == [f"content/{h[:2]}/{h}"]  # no temp file, no partial files
    assert stat.S_IMODE(os.stat(root / "content" / h[:2] / h).st_mode) == 0o400
    assert volume.usage().complete == len(data)
    assert not volume.add_fetched(h, data)  # already here: nothing written again
    assert volume.usage().complete == len(data)
    again = LocalVolume(root)
    assert again.has(h) and again.read(h, 0, len(data)) == data


def test_refuses_bytes_that_are_not_the_content(root: Path, volume: LocalVolume) -> None:
    data = os.urandom(4096)
    h = hash_bytes(data)
    wrong = bytes([data[0] ^ 1]) + data[1:]
    with pytest.raises(ContentError, match="hash to"):
        volume.add_fetched(h, wrong)
    assert not volume.has(h) and volume.size_of(h) is None
    assert files_under(root) == []
    assert volume.usage().used == 0


def test_replaces_a_partial_instance(root: Path, volume: LocalVolume) -> None:
    data = os.urandom(10_000)
    h = hash_bytes(data)
    volume.begin_partial(h, len(data))
    volume.write_partial(h, 0, data[:4000])
    assert volume.add_fetched(h, data)
    assert volume.has(h) and volume.read(h, 0, len(data)) == data
    assert files_under(root) == [f"content/{h[:2]}/{h}"]
    usage = volume.usage()
    assert usage.partial == 0 and usage.complete == len(data)


def test_a_content_that_does_not_fit_is_refused_and_nothing_written(root: Path) -> None:
    volume = LocalVolume(root, capacity=1000)
    data = os.urandom(2000)
    with pytest.raises(NoSpace):
        volume.add_fetched(hash_bytes(data), data)
    assert files_under(root) == []
    assert volume.usage().used == 0


def test_a_new_volume_has_every_shard_folder(root: Path, volume: LocalVolume) -> None:
    shards = sorted(p.name for p in (root / "content").iterdir())
    assert shards == [f"{n:02x}" for n in range(256)]
    assert all(stat.S_IMODE((root / "content" / s).stat().st_mode) == 0o700 for s in shards)
