"""LocalVolume: staging files, commit, reads, adoption of whole files, restart."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.content import LocalVolume, RangeSet, hash_bytes
from meridian.content import staging as staging_module
from meridian.errors import BadPath, ContentError


def commit_bytes(volume: LocalVolume, data: bytes) -> str:
    """Write ``data`` through a staging file and commit it; returns the hash."""
    staging = volume.new_staging()
    staging.write(0, data)
    return volume.commit(staging).hash


def files_under(folder: Path) -> list[str]:
    """Names of the files (not folders) under ``folder``, sorted."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_new_volume_creates_its_folders(root: Path) -> None:
    LocalVolume(root)
    assert sorted(p.name for p in root.iterdir()) == ["content", "partial", "staging"]


def test_staging_write_read_truncate(volume: LocalVolume) -> None:
    staging = volume.new_staging()
    assert staging.path.parent == volume.root / "staging"
    assert staging.write(0, b"hello") == 5
    assert staging.read(0, 100) == b"hello"
    staging.write(8, b"xy")  # leaves a hole of zeros
    assert staging.size == 10
    assert staging.read(0, 10) == b"hello\0\0\0xy"
    assert volume.usage().staging == 10
    staging.truncate(3)
    assert staging.size == 3 and staging.read(0, 10) == b"hel"
    staging.truncate(6)
    assert staging.read(0, 10) == b"hel\0\0\0"
    assert os.path.getsize(staging.path) == 6
    assert volume.usage().staging == 6
    staging.discard()
    staging.discard()  # idempotent
    assert not staging.path.exists()
    assert volume.usage().staging == 0
    with pytest.raises(ContentError):
        staging.write(0, b"late")


def test_sequential_writes_are_hashed_as_they_arrive(
    volume: LocalVolume, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [os.urandom(4096) for _ in range(8)]
    staging = volume.new_staging()
    offset = 0
    for chunk in chunks:
        staging.write(offset, chunk)
        offset += len(chunk)
    assert staging.hashed_upto == offset

    def no_second_read(source: object) -> str:
        raise AssertionError("commit re-read a file written front to back")

    monkeypatch.setattr(staging_module, "hash_file", no_second_read)
    assert volume.commit(staging).hash == hash_bytes(b"".join(chunks))


def test_a_write_behind_the_hashed_prefix_forces_a_rehash(volume: LocalVolume) -> None:
    staging = volume.new_staging()
    staging.write(0, b"aaaa")
    staging.write(1, b"B")
    assert staging.hashed_upto == 0
    assert volume.commit(staging).hash == hash_bytes(b"aBaa")

    staging = volume.new_staging()
    staging.write(0, b"abcdef")
    staging.truncate(2)
    staging.write(2, b"Z")
    assert volume.commit(staging).hash == hash_bytes(b"abZ")


write_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 3000), st.binary(min_size=1, max_size=700)),
        st.tuples(st.just("truncate"), st.integers(0, 3000), st.just(b"")),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(write_ops, st.booleans())
def test_any_write_order_gives_the_hash_of_the_final_bytes(
    ops: list[tuple[str, int, bytes]], front_to_back: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        volume = LocalVolume(Path(tmp))
        staging = volume.new_staging()
        model = bytearray()
        if front_to_back:  # a sequential prefix, then whatever the ops say
            for piece in (b"x" * 100, b"y" * 50):
                staging.write(len(model), piece)
                model += piece
        for kind, offset, data in ops:
            if kind == "write":
                staging.write(offset, data)
                if len(model) < offset + len(data):
                    model.extend(bytes(offset + len(data) - len(model)))
                model[offset : offset + len(data)] = data
            else:
                staging.truncate(offset)
                del model[offset:]
                model.extend(bytes(offset - len(model)))
        assert staging.read(0, len(model) + 10) == bytes(model)
        committed = volume.commit(staging)
        assert committed.hash == hash_bytes(bytes(model))
        assert committed.size == len(model)
        assert volume.read(committed.hash, 0, len(model)) == bytes(model)


def test_commit_makes_content_readable_and_read_only(volume: LocalVolume) -> None:
    data = b"frame 0100" * 1000
    staging = volume.new_staging()
    staging.write(0, data)
    committed = volume.commit(staging)
    h = committed.hash
    assert committed.size == len(data)
    path = volume.path_of(h)
    assert path == volume.root / "content" / h[:2] / h
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert path.read_bytes() == data
    assert volume.has(h) and volume.size_of(h) == len(data)
    assert volume.read(h, 5, 10) == data[5:15]
    assert volume.read(h, len(data) - 3, 100) == data[-3:]  # clipped to the size
    assert volume.read(h, len(data) + 5, 10) == b""
    assert volume.present(h) == RangeSet.full(len(data))
    assert volume.missing(h, 0, len(data) + 100) == []
    assert files_under(volume.root / "staging") == []
    usage = volume.usage()
    assert (usage.staging, usage.complete, usage.partial, usage.count) == (0, len(data), 0, 1)
    # the staging file is finished: more writes are refused, commit again is a no-op
    with pytest.raises(ContentError):
        staging.write(0, b"x")
    assert volume.commit(staging) == committed
    staging.discard()
    assert volume.has(h)


def test_commit_of_present_content_deduplicates(volume: LocalVolume) -> None:
    first = commit_bytes(volume, b"same bytes")
    staging = volume.new_staging()
    staging.write(0, b"same bytes")
    assert volume.commit(staging).hash == first
    assert not staging.path.exists()
    assert files_under(volume.root / "staging") == []
    assert files_under(volume.root / "content") == [first]
    usage = volume.usage()
    assert (usage.used, usage.complete, usage.staging, usage.count) == (10, 10, 0, 1)


def test_empty_content_commits(volume: LocalVolume) -> None:
    h = commit_bytes(volume, b"")
    assert h == hash_bytes(b"")
    assert volume.read(h, 0, 10) == b""
    assert volume.size_of(h) == 0


def test_new_staging_from_base_copies_it(volume: LocalVolume) -> None:
    base = commit_bytes(volume, b"version one")
    staging = volume.new_staging(base)
    assert staging.size == 11 and staging.read(0, 11) == b"version one"
    assert staging.hashed_upto == 11  # the copy was hashed on the way
    staging.write(11, b", appended")
    new = volume.commit(staging)
    assert new.hash == hash_bytes(b"version one, appended")
    assert volume.read(base, 0, 100) == b"version one"
    with pytest.raises(ContentError):
        volume.new_staging(hash_bytes(b"not here"))
    assert files_under(volume.root / "staging") == []
    assert volume.usage().staging == 0


def test_add_complete_verifies_and_adopts(volume: LocalVolume, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(b"fetched whole")
    h = hash_bytes(b"fetched whole")
    assert volume.add_complete(h, good).size == 13
    assert not good.exists()
    assert volume.read(h, 0, 100) == b"fetched whole"
    assert stat.S_IMODE(volume.path_of(h).stat().st_mode) == 0o400

    bad = tmp_path / "bad"
    bad.write_bytes(b"corrupt")
    wrong = hash_bytes(b"expected")
    with pytest.raises(ContentError):
        volume.add_complete(wrong, bad)
    assert not volume.has(wrong) and not bad.exists()
    assert files_under(volume.root / "content") == [h]

    again = tmp_path / "again"
    again.write_bytes(b"fetched whole")
    volume.add_complete(h, again)  # already here: dedup
    assert not again.exists()
    assert volume.usage().complete == 13


def test_reads_of_absent_content_raise(volume: LocalVolume) -> None:
    absent = hash_bytes(b"elsewhere")
    assert not volume.has(absent)
    assert volume.size_of(absent) is None
    assert volume.present(absent) == RangeSet()
    assert volume.missing(absent, 0, 10) == [(0, 10)]
    with pytest.raises(ContentError):
        volume.read(absent, 0, 1)
    with pytest.raises(ContentError):
        volume.path_of(absent)
    with pytest.raises(BadPath):
        volume.read("../../etc/passwd", 0, 1)


def test_restart_keeps_instances_and_removes_leftovers(root: Path) -> None:
    volume = LocalVolume(root)
    complete = commit_bytes(volume, b"complete content")
    partial_data = os.urandom(1000)
    partial = hash_bytes(partial_data)
    volume.begin_partial(partial, 1000)
    volume.write_partial(partial, 100, partial_data[100:300])
    volume.write_partial(partial, 600, partial_data[600:1000])
    leftover = volume.new_staging()
    leftover.write(0, b"never acknowledged")
    (root / "partial" / ".tmp-0123-x.ranges").write_bytes(b"{")
    (root / "content" / complete[:2] / (".tmp-99-" + complete)).write_bytes(b"half")

    reopened = LocalVolume(root)
    assert reopened.read(complete, 0, 100) == b"complete content"
    assert reopened.present(partial) == RangeSet([(100, 300), (600, 1000)])
    assert reopened.read(partial, 650, 50) == partial_data[650:700]
    assert files_under(root / "staging") == []
    assert not any(name.startswith(".tmp-") for name in files_under(root))
    usage = reopened.usage()
    assert (usage.staging, usage.complete, usage.partial, usage.count) == (0, 16, 600, 2)
    reopened.write_partial(partial, 0, partial_data[:100])
    reopened.write_partial(partial, 300, partial_data[300:600])
    assert reopened.finish_partial(partial)
    assert reopened.read(partial, 0, 1000) == partial_data


def test_restart_discards_partials_without_a_valid_ranges_file(root: Path) -> None:
    volume = LocalVolume(root)
    hashes = [hash_bytes(bytes([n]) * 10) for n in range(4)]
    for h in hashes:
        volume.begin_partial(h, 10)
        volume.write_partial(h, 0, b"\0" * 5)
    partial_dir = root / "partial"
    (partial_dir / f"{hashes[0]}.ranges").unlink()  # missing
    (partial_dir / f"{hashes[1]}.ranges").write_text("{not json")  # corrupt
    (partial_dir / f"{hashes[2]}.ranges").write_text(json.dumps({"size": 10, "ranges": [[0, 11]]}))
    orphan = hash_bytes(b"orphan")
    (partial_dir / f"{orphan}.ranges").write_text(json.dumps({"size": 1, "ranges": []}))

    reopened = LocalVolume(root)
    assert [info.hash for info in reopened.instances()] == [hashes[3]]
    assert files_under(partial_dir) == [f"{hashes[3]}.data", f"{hashes[3]}.ranges"]
    assert reopened.usage().partial == 5


def test_restart_orders_least_recently_used_by_file_times(root: Path) -> None:
    volume = LocalVolume(root)
    hashes = [commit_bytes(volume, bytes([n]) * 10) for n in range(3)]
    for when, h in zip([3000, 1000, 2000], hashes, strict=True):
        os.utime(volume.path_of(h), (when, when))
    reopened = LocalVolume(root)
    infos = reopened.instances()
    assert [info.hash for info in infos] == [hashes[1], hashes[2], hashes[0]]
    assert [info.last_used for info in infos] == [1000, 2000, 3000]


def test_add_complete_copies_from_another_file_system(volume: LocalVolume) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == volume.root.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the volume")
    data = os.urandom(3 << 20)
    h = hash_bytes(data)
    with tempfile.NamedTemporaryFile(dir=shm, delete=False) as src:
        src.write(data)
    volume.add_complete(h, Path(src.name))
    assert not Path(src.name).exists()
    assert volume.read(h, 0, len(data)) == data
    assert files_under(volume.root / "content") == [h]
    assert stat.S_IMODE(volume.path_of(h).stat().st_mode) == 0o400
