"""Bytes written survive a metadata store that cannot commit (its disk full), through a real
mount: the site's data folder (meta.db) on a small tmpfs filled to the last byte, its volume
elsewhere, so the content step of a commit succeeds and the metadata step fails."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from meridian.content.hashing import hash_bytes
from tests.sitehelpers import RunningSite, init_site, meridian


@pytest.fixture
def site_with_small_meta_disk(tmp_path: Path) -> Iterator[tuple[RunningSite, Path]]:
    data = tmp_path / "solo"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(data)], check=True)
    site = None
    try:
        site = init_site(tmp_path, "solo", f"file://{tmp_path}/bucket")
        doc = tomllib.loads(site.config.read_text())
        doc["volumes"] = [{"name": "local", "path": str(tmp_path / "volume")}]
        site.config.write_text(tomli_w.dumps(doc))
        site.start()
        yield site, data
    finally:
        if site is not None:
            site.stop()
        subprocess.run(["umount", "-l", str(data)], check=False)


def _fill(folder: Path) -> Path:
    """Fill ``folder``'s file system to the last byte; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\xff" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def _pin_wal(data: Path) -> sqlite3.Connection:
    """A reader holding a snapshot of meta.db: the WAL cannot start over while it does, so
    once it can no longer grow every commit fails (the checkpointer cannot make room)."""
    reader = sqlite3.connect(f"file:{data / 'meta.db'}?mode=ro", uri=True,
                             isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM kv").fetchall()
    return reader


def _exhaust_metadata(site: RunningSite, round_: int) -> int:
    """Change metadata until the store cannot commit any more (its WAL cannot grow).
    Returns the errno the failing change got."""
    for i in range(50_000):
        try:
            os.mkdir(site.mount / f"d{round_}-{i}")
        except OSError as exc:
            return exc.errno or 0
    raise AssertionError(f"metadata kept committing on a full disk:\n{site.log()}")


def _committed(site: RunningSite, name: str) -> str | None:
    rows = json.loads(meridian("ls", "--json", "--config", str(site.config), f"./{name}").stdout)
    content: str | None = rows[0]["content"]
    return content


def test_a_failed_metadata_commit_loses_no_byte(
        site_with_small_meta_disk: tuple[RunningSite, Path]) -> None:
    site, data = site_with_small_meta_disk
    m = site.mount
    (m / "synced").write_bytes(b"old")
    (m / "closed").write_bytes(b"old")
    new_synced, new_closed = os.urandom(300_000), os.urandom(200_000)

    reader = _pin_wal(data)
    filler = _fill(data)
    assert _exhaust_metadata(site, 1) in (errno.EIO, errno.ENOSPC)
    # fsync: refused, and the next fsync of the same descriptor, with room again, commits
    with open(m / "synced", "r+b") as f:
        f.write(new_synced)
        f.flush()
        with pytest.raises(OSError) as exc:
            os.fsync(f.fileno())
        assert exc.value.errno in (errno.EIO, errno.ENOSPC)
        f.seek(0)
        assert f.read() == new_synced and os.fstat(f.fileno()).st_size == len(new_synced)
        filler.unlink()
        reader.close()
        os.fsync(f.fileno())
    assert _committed(site, "synced") == hash_bytes(new_synced)

    reader = _pin_wal(data)
    filler = _fill(data)
    assert _exhaust_metadata(site, 2) in (errno.EIO, errno.ENOSPC)
    # close: refused; the bytes stay the file's (read back, stat), and are committed in the
    # background once the disk has room
    f = open(m / "closed", "r+b")
    f.write(new_closed)
    with pytest.raises(OSError) as exc:
        f.close()
    assert exc.value.errno in (errno.EIO, errno.ENOSPC)
    assert (m / "closed").read_bytes() == new_closed
    assert os.stat(m / "closed").st_size == len(new_closed)
    assert _committed(site, "closed") != hash_bytes(new_closed)
    filler.unlink()
    reader.close()
    deadline = time.monotonic() + 60
    while _committed(site, "closed") != hash_bytes(new_closed):
        assert time.monotonic() < deadline, site.log()
        time.sleep(0.2)

    site.stop()  # and it is durable: a restarted site has both files' new bytes
    site.start()
    assert (m / "synced").read_bytes() == new_synced
    assert (m / "closed").read_bytes() == new_closed
