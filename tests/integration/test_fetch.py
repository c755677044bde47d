"""Content that is not on the local volume is fetched from the bucket on first access."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from tests.sitehelpers import RunningSite, meridian


def placement(site: RunningSite, path: str) -> dict[str, object]:
    rows = json.loads(meridian("ls", "--placement", "--json", "--config", str(site.config),
                               path).stdout)
    assert len(rows) == 1
    row: dict[str, object] = rows[0]
    return row


def wait_state(site: RunningSite, path: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while placement(site, path)["state"] != state:
        assert time.monotonic() < deadline, f"{path} never became {state}: {site.log()}"
        time.sleep(0.1)


def drop_local_instances(site: RunningSite) -> None:
    """What eviction does, done by hand while the site is stopped."""
    volume = site.data / "volumes" / "local"
    shutil.rmtree(volume / "content")
    (volume / "content").mkdir()


def test_first_access_fetches_from_the_bucket_ranged(site: RunningSite) -> None:
    block = 4 * 1024 * 1024
    data = os.urandom(3 * block + 12345)  # four blocks
    (site.mount / "plate.exr").write_bytes(data)
    wait_state(site, "./plate.exr", "both")
    site.stop()
    drop_local_instances(site)
    site.start()
    assert placement(site, "./plate.exr")["state"] == "bucket"

    with open(site.mount / "plate.exr", "rb") as f:  # the first bytes, before the rest
        f.seek(block + 100)
        assert f.read(1000) == data[block + 100: block + 1100]
    row = placement(site, "./plate.exr")
    assert row["state"] == "partial" and 0 < int(row["local_bytes"]) < len(data)  # type: ignore[call-overload]

    assert (site.mount / "plate.exr").read_bytes() == data
    wait_state(site, "./plate.exr", "both")


def test_overwrite_of_a_file_that_is_only_in_the_bucket(file_site: RunningSite) -> None:
    data = os.urandom(5 * 1024 * 1024)
    (file_site.mount / "clip.mov").write_bytes(data)
    wait_state(file_site, "./clip.mov", "both")
    file_site.stop()
    drop_local_instances(file_site)
    file_site.start()
    with open(file_site.mount / "clip.mov", "r+b") as f:  # in-place edit needs the old bytes
        f.seek(10)
        f.write(b"EDIT")
    assert (file_site.mount / "clip.mov").read_bytes() == data[:10] + b"EDIT" + data[14:]


def test_missing_content_is_an_io_error_not_wrong_bytes(file_site: RunningSite, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    (file_site.mount / "lost.bin").write_bytes(data)
    wait_state(file_site, "./lost.bin", "both")
    file_site.stop()
    drop_local_instances(file_site)
    shutil.rmtree(tmp_path / "bucket" / "content")  # the bucket lost it too
    file_site.start()
    try:
        (file_site.mount / "lost.bin").read_bytes()
    except OSError as exc:
        assert exc.errno == 5  # EIO
    else:
        raise AssertionError("a read of content that exists nowhere returned bytes")
    fsck = meridian("fsck", "--config", str(file_site.config), check=False)
    assert fsck.returncode == 1 and "lost.bin" in fsck.stdout and "manifest is missing" in fsck.stdout


def test_opening_a_frame_fetches_the_next_frames(file_site: RunningSite) -> None:
    seq = file_site.mount / "seq"
    seq.mkdir()
    frames = {i: os.urandom(300_000) for i in range(1001, 1013)}
    for i, data in frames.items():
        (seq / f"plate.{i:04d}.exr").write_bytes(data)
    for i in frames:
        wait_state(file_site, f"./seq/plate.{i:04d}.exr", "both")
    file_site.stop()
    drop_local_instances(file_site)
    file_site.start()
    assert (seq / "plate.1001.exr").read_bytes() == frames[1001]
    # the default read-ahead (8 frames) brings 1002-1009 without anyone reading them
    deadline = time.monotonic() + 15
    while placement(file_site, "./seq/plate.1009.exr")["state"] != "both":
        assert time.monotonic() < deadline, file_site.log()
        time.sleep(0.1)
    assert placement(file_site, "./seq/plate.1012.exr")["state"] == "bucket"
