"""kill -9 at exact steps (MERIDIAN_TESTPOINT, docs/design-notes.md "Test points"): between a
rename and the fsync of its folder, while a joining site installs its snapshot, during a
drain, in the middle of a collection's delete, in the middle of an eviction. After a restart:
fsck is clean, every acknowledged byte is there, and nothing is left over."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import blake3
import pytest
import tomli_w

from meridian.meta.sqlite import SqliteMetaStore
from meridian.objects import open_object_store
from meridian.objects.layout import ContentBucket
from tests.sitehelpers import (
    MERIDIAN,
    RunningSite,
    free_port,
    init_linked,
    init_site,
    meridian,
    snapshot,
    wait_for,
)

POINT = "MERIDIAN_TESTPOINT"


def _edit(site: RunningSite, table: str, **values: object) -> None:
    doc = tomllib.loads(site.config.read_text())
    doc.setdefault(table, {}).update(values)
    site.config.write_text(tomli_w.dumps(doc))


def _died_at(site: RunningSite, point: str, timeout: float = 60.0) -> None:
    """Wait until the site killed itself at ``point``; unmount what it left."""
    assert site.process is not None
    site.process.wait(timeout=timeout)
    assert site.process.returncode == -9, site.log()
    assert f"testpoint {point}: kill" in site.log()
    site.stop()  # detaches the stale mount


def _fsck_clean(site: RunningSite) -> None:
    fsck = meridian("fsck", "--json", "--config", str(site.config), check=False)
    report = json.loads(fsck.stdout)
    assert fsck.returncode == 0 and report["clean"], report["problems"]


def _leftovers(site: RunningSite) -> list[Path]:
    """Files on the site's volume that nothing accounts for: staging or temp files, content
    the store has no record of, a partial instance's data without its ranges (or the
    reverse). (Content replaced or deleted meanwhile keeps its record until garbage
    collection: not a leftover.)"""
    store = SqliteMetaStore(site.data / "meta.db", site.name, read_only=True)
    try:
        volume = site.data / "volumes" / "local"
        found = list((volume / "staging").iterdir())
        for shard in (volume / "content").iterdir():
            found += [f for f in shard.iterdir() if store.content(f.name) is None]
        for f in (volume / "partial").iterdir():
            other = f.with_suffix(".ranges" if f.suffix == ".data" else ".data")
            if store.content(f.name.split(".")[0]) is None or not other.exists():
                found.append(f)
    finally:
        store.close()
    return found


def test_kill_between_installing_content_and_fsyncing_its_folder(file_site: RunningSite) -> None:
    site = file_site
    kept = {f"a{n}.exr": os.urandom(300_000 + n) for n in range(3)}
    for name, data in kept.items():
        (site.mount / name).write_bytes(data)
    site.stop()
    site.extra_env = {POINT: "volume.installed:kill"}
    site.start()
    lost = os.urandom(200_000)
    try:
        (site.mount / "dies.exr").write_bytes(lost)  # its close never returns
    except OSError:
        pass
    _died_at(site, "volume.installed")

    site.extra_env = {}
    site.start()
    for name, data in kept.items():
        assert (site.mount / name).read_bytes() == data, name
    if (site.mount / "dies.exr").exists():  # created, never acknowledged: empty or whole
        assert (site.mount / "dies.exr").read_bytes() in (b"", lost)
    assert _leftovers(site) == []  # the installed content no store commit refers to is gone
    site.stop()
    _fsck_clean(site)


SAVER = r"""
import os, sys
mount, data = sys.argv[1], open(sys.argv[2], "rb").read()
tmp, target = os.path.join(mount, "shot.clip.tmp"), os.path.join(mount, "shot.clip")
with open(tmp, "wb") as f:  # an application's atomic save
    f.write(data)
    os.fsync(f.fileno())
os.rename(tmp, target)  # the site dies here, after its commit, before answering
fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
os.fsync(fd)
"""


def test_kill_in_a_rename_before_the_directory_fsync(file_site: RunningSite,
                                                     tmp_path: Path) -> None:
    """An atomic save (write a temp file, fsync, rename over the target, fsync the folder)
    with the site killed inside the rename: afterwards the target is one whole version and
    the temp name is gone, or the rename did not happen at all; never both names, never a
    mix."""
    site = file_site
    old, new = os.urandom(250_000), os.urandom(260_000)
    (site.mount / "shot.clip").write_bytes(old)
    site.stop()
    site.extra_env = {POINT: "mount.renamed:kill"}
    site.start()
    (tmp_path / "new").write_bytes(new)
    saver = subprocess.run([sys.executable, "-c", SAVER, str(site.mount), str(tmp_path / "new")],
                           capture_output=True, timeout=60)
    assert saver.returncode != 0  # the rename never answered
    _died_at(site, "mount.renamed")

    site.extra_env = {}
    site.start()
    names = sorted(p.name for p in site.mount.iterdir())
    assert names == ["shot.clip"], names  # committed before the kill: the rename holds
    assert (site.mount / "shot.clip").read_bytes() == new
    assert _leftovers(site) == []
    site.stop()
    _fsck_clean(site)


@pytest.mark.parametrize("point", ["join.downloaded", "join.adopted"])
def test_kill_while_a_joining_site_installs_its_snapshot(tmp_path: Path, point: str) -> None:
    east = init_site(tmp_path, "east", f"file://{tmp_path / 'bucket'}",
                     "--api-listen", f"127.0.0.1:{free_port()}")
    west = RunningSite("west", tmp_path / "west", tmp_path / "west-mnt", tmp_path / "west.log")
    east.start()
    try:
        (east.mount / "shots").mkdir()
        for n in range(30):
            (east.mount / "shots" / f"f{n:02d}.exr").write_bytes(os.urandom(2000 + n))
        invitation = tmp_path / "west.join"
        meridian("peer", "invite", "west", "--config", str(east.config), "--out",
                 str(invitation))
        args = ["init", "--site", "west", "--data", str(west.data), "--join-file",
                str(invitation), "--api-listen", f"127.0.0.1:{free_port()}"]
        died = meridian(*args, check=False, env={POINT: f"{point}:kill"})
        assert died.returncode == -9 and f"testpoint {point}: kill" in died.stderr
        assert not west.config.exists()  # no site yet: the config is written last

        meridian(*args)  # the same command again finishes the join (its credential spent)
        assert not (west.data / "tmp" / "join-snapshot.db").exists()
        assert not list((east.data / "tmp").glob("snapshot-*"))
        _fsck_clean(west)
        west.start()
        try:
            assert snapshot(west.mount) == snapshot(east.mount)
            (east.mount / "shots" / "after.txt").write_text("tailing")
            wait_for(lambda: (west.mount / "shots" / "after.txt").read_text() == "tailing",
                     what="west tails east's journal")
        finally:
            west.stop()
        _fsck_clean(west)
    finally:
        east.stop()


def test_kill_during_a_drain(tmp_path: Path, stopper: list[RunningSite]) -> None:
    """east dies with its uploads in the bucket but not yet recorded so, while `site drain`
    waits for them; after a restart the drain finishes, east leaves, west has every byte."""
    bucket_url = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west"], bucket_url)
    east, west = sites["east"], sites["west"]
    flag = tmp_path / "resume"
    east.extra_env = {POINT: f"mover.uploaded:pause:{flag}"}
    for site in (east, west):
        stopper.append(site)
        site.start()
    written = {f"plates/p{n}.exr": os.urandom(400_000 + n) for n in range(4)}
    (east.mount / "plates").mkdir()
    for rel, data in written.items():
        (east.mount / rel).write_bytes(data)
    wait_for(lambda: Path(f"{flag}.paused").exists(), what="an upload paused before its record")
    # under a terminal `site drain` draws its progress: once it has, it is under way
    terminal, drain_side = pty.openpty()
    drain = subprocess.Popen([*MERIDIAN, "site", "drain", "--config", str(east.config),
                              "--timeout", "4"], stdout=subprocess.DEVNULL, stderr=drain_side)
    os.close(drain_side)
    try:
        said = _read_until(terminal, b"draining east")
        east.kill9()  # during the drain
        drain.wait(timeout=60)
        said += _read_until(terminal, None)
    finally:
        os.close(terminal)
        if drain.poll() is None:
            drain.kill()
            drain.wait()
    assert drain.returncode == 1 and b"not drained" in said, said
    east.stop()

    east.extra_env = {}
    east.start()
    drained = meridian("site", "drain", "--config", str(east.config), "--timeout", "120")
    assert "is drained" in drained.stdout
    meridian("site", "leave", "--config", str(east.config))
    assert east.process is not None and east.process.wait(timeout=30) == 0
    east.process = None
    for rel, data in written.items():  # east is gone: every byte comes from the bucket
        assert (west.mount / rel).read_bytes() == data, rel
    bucket = ContentBucket(open_object_store(bucket_url))
    hashes = {blake3.blake3(d).hexdigest() for d in written.values()}
    assert set(bucket.iter_contents()) == hashes  # nothing in the bucket that no file uses
    west.stop()
    _fsck_clean(west)


def _read_until(fd: int, wanted: bytes | None, timeout: float = 60.0) -> bytes:
    """Read a terminal until ``wanted`` appears (None: until it closes)."""
    said = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            return said
        if not chunk:
            return said
        said += chunk
        if wanted is not None and wanted in said:
            return said
    raise AssertionError(f"terminal did not say {wanted!r} in {timeout}s: {said!r}")


def test_kill_in_the_middle_of_a_collections_delete(tmp_path: Path) -> None:
    bucket_url = f"file://{tmp_path / 'bucket'}"
    site = init_site(tmp_path, "solo", bucket_url)
    _edit(site, "mover", gc_grace=0, gc_interval=0.3)
    _edit(site, "namespace", trash_days=0)  # no trash: a removed file's content is garbage
    site.extra_env = {POINT: "bucket.deleting:kill"}
    bucket = ContentBucket(open_object_store(bucket_url))
    gone, kept = os.urandom(9 * 1024 * 1024), os.urandom(500_000)  # gone: three blocks
    gone_hash = blake3.blake3(gone).hexdigest()
    site.start()
    try:
        (site.mount / "gone.exr").write_bytes(gone)
        (site.mount / "kept.exr").write_bytes(kept)
        wait_for(lambda: bucket.manifest(gone_hash) is not None, what="gone.exr uploaded")
        wait_for(lambda: bucket.manifest(blake3.blake3(kept).hexdigest()) is not None,
                 what="kept.exr uploaded")
        (site.mount / "gone.exr").unlink()
        _died_at(site, "bucket.deleting")
        blocks = [i.key for i in bucket.store.list(bucket.content_prefix(gone_hash))]
        assert bucket.manifest(gone_hash) is None and len(blocks) == 3  # half deleted

        site.extra_env = {}
        site.start()
        wait_for(lambda: not list(bucket.store.list(bucket.content_prefix(gone_hash))),
                 what="the interrupted delete finished")
        assert (site.mount / "kept.exr").read_bytes() == kept
        assert not (site.mount / "gone.exr").exists()
        # the collector forgets the content's record and removes the site's copy in two
        # steps: a look between them (a loaded machine) sees the copy without its record
        wait_for(lambda: _leftovers(site) == [], what="no leftovers on the volume")
    finally:
        site.stop()
    _fsck_clean(site)


def test_kill_in_the_middle_of_an_eviction(tmp_path: Path) -> None:
    site = init_site(tmp_path, "solo", f"file://{tmp_path / 'bucket'}", "--capacity", "3MiB")
    site.extra_env = {POINT: "volume.evicting:kill"}
    site.start()
    acknowledged: dict[str, bytes] = {}
    try:
        for n in range(8):  # 8 MB through a 3 MiB volume: older content must be evicted
            data = os.urandom(1_000_000 + n)
            try:
                (site.mount / f"f{n}.exr").write_bytes(data)
            except OSError:
                break
            acknowledged[f"f{n}.exr"] = data
            if site.process is not None and site.process.poll() is not None:
                break
        _died_at(site, "volume.evicting")
        assert len(acknowledged) >= 2

        site.extra_env = {}
        site.start()
        for name, data in acknowledged.items():  # from the volume or, evicted, the bucket
            assert (site.mount / name).read_bytes() == data, name
        # a read of an evicted file may return while its fetch still renames the fetched
        # copy into place: a look then (a loaded machine) sees the fetch's temporary file
        wait_for(lambda: _leftovers(site) == [], what="no leftovers on the volume")
    finally:
        site.stop()
    _fsck_clean(site)
