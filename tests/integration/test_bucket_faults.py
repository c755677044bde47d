"""Bucket faults: errors are retried and logged, local writes go on, a full volume says ENOSPC.

A fault-injecting proxy sits between the site and moto (restarting moto would lose its
objects), so the bucket can refuse connections or answer 503 on demand.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from tests.faultproxy import FaultProxy
from tests.sitehelpers import RunningSite, init_site, meridian


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_config(site: RunningSite, section: str, **values: object) -> None:
    doc = tomllib.loads(site.config.read_text())
    doc.setdefault(section, {}).update(values)
    site.config.write_text(tomli_w.dumps(doc))


def states(site: RunningSite) -> dict[str, str]:
    rows = json.loads(meridian("ls", "--placement", "--json", "--config", str(site.config),
                               "./").stdout)
    return {r["path"]: r["state"] for r in rows}


def wait_until(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def proxied_site(tmp_path: Path, s3_bucket: tuple[str, str]) -> Iterator[tuple[RunningSite, FaultProxy]]:
    endpoint, bucket = s3_bucket
    with FaultProxy(endpoint) as proxy:
        site = init_site(tmp_path, "east", f"s3://{bucket}", "--endpoint-url", proxy.url,
                         "--capacity", "12MiB")
        set_config(site, "mover", retry_base=0.2, retry_max=1.0, space_wait=1.0)
        site.start()
        try:
            yield site, proxy
        finally:
            site.stop()


def test_unreachable_bucket_is_an_error_at_start_not_a_hang(tmp_path: Path) -> None:
    started = time.monotonic()
    result = meridian("init", "--site", "x", "--data", str(tmp_path / "x"), "--bucket", "s3://nowhere",
                      "--endpoint-url", f"http://127.0.0.1:{free_port()}", check=False, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "unreachable" in result.stderr and time.monotonic() - started < 30
    assert "testing" not in result.stderr  # no credentials in messages


def test_a_site_that_knows_its_bucket_starts_without_it(tmp_path: Path,
                                                         s3_bucket: tuple[str, str]) -> None:
    """docs/design.md, rule 1: a site works while cut off. A site that has used its bucket starts
    during a bucket outage (and says so); one that never saw it work refuses (exit 3)."""
    endpoint, bucket = s3_bucket
    with FaultProxy(endpoint) as proxy:
        site = init_site(tmp_path, "east", f"s3://{bucket}", "--endpoint-url", proxy.url)
        proxy.refuse(True)
        site.start()
        try:
            (site.mount / "during-the-outage.exr").write_bytes(b"frame")
            assert (site.mount / "during-the-outage.exr").read_bytes() == b"frame"
            assert "unreachable at start" in site.log()
        finally:
            site.stop()
        import sqlite3
        db = sqlite3.connect(site.data / "meta.db")
        db.execute("DELETE FROM kv WHERE key = 'setting:bucket_format'")
        db.commit()
        db.close()
        result = meridian("site", "run", "--config", str(site.config), "--mount",
                          str(tmp_path / "mnt"), check=False, timeout=60)
    assert result.returncode == 3 and "unreachable" in result.stderr
    assert str(tmp_path / "mnt") not in Path("/proc/mounts").read_text()


def test_refused_connections_are_retried_and_local_writes_go_on(
        proxied_site: tuple[RunningSite, FaultProxy]) -> None:
    site, proxy = proxied_site
    proxy.refuse(True)
    data = os.urandom(2 * 1024 * 1024)
    (site.mount / "a.exr").write_bytes(data)  # the write itself never waits for the bucket
    assert (site.mount / "a.exr").read_bytes() == data
    assert wait_until(lambda: "upload of" in site.log() and "failed" in site.log())
    assert states(site)["/a.exr"] == "in flight"
    status = json.loads(meridian("status", "--json", "--config", str(site.config), check=False).stdout)
    assert status["uploads"]["queued"] == 1 and status["uploads"]["failing"] == 1
    proxy.refuse(False)
    assert wait_until(lambda: states(site)["/a.exr"] == "both"), site.log()


def test_5xx_answers_are_retried(proxied_site: tuple[RunningSite, FaultProxy]) -> None:
    site, proxy = proxied_site
    proxy.fail_next(12, status=503)
    (site.mount / "b.exr").write_bytes(b"x" * 100_000)
    assert wait_until(lambda: states(site)["/b.exr"] == "both"), site.log()
    assert proxy.requests > 12


def test_full_volume_gives_enospc_and_keeps_what_is_stored(
        proxied_site: tuple[RunningSite, FaultProxy]) -> None:
    site, proxy = proxied_site
    proxy.refuse(True)  # nothing reaches the bucket, so nothing on the volume is evictable
    first = os.urandom(6 * 1024 * 1024)
    (site.mount / "first.exr").write_bytes(first)
    with pytest.raises(OSError) as exc:
        (site.mount / "second.exr").write_bytes(os.urandom(8 * 1024 * 1024))
    assert exc.value.errno == errno.ENOSPC
    assert (site.mount / "first.exr").read_bytes() == first
    proxy.refuse(False)  # once first.exr is in the bucket it may be evicted to make room
    assert wait_until(lambda: states(site)["/first.exr"] == "both"), site.log()
    third = os.urandom(8 * 1024 * 1024)
    (site.mount / "third.exr").write_bytes(third)
    assert (site.mount / "third.exr").read_bytes() == third
    assert (site.mount / "first.exr").read_bytes() == first  # fetched back from the bucket


def test_fetched_content_can_be_evicted_again(tmp_path: Path) -> None:
    """Content fetched back after a restart counts as in the bucket: it makes room later."""
    site = init_site(tmp_path, "east", f"file://{tmp_path}/bucket", "--capacity", "12MiB")
    site.start()
    try:
        a, b = os.urandom(7 * 1024 * 1024), os.urandom(7 * 1024 * 1024)
        (site.mount / "a.exr").write_bytes(a)
        (site.mount / "b.exr").write_bytes(b)  # evicts a once a is in the bucket
        assert wait_until(lambda: states(site) == {"/a.exr": "bucket", "/b.exr": "both"}
                          or states(site) == {"/a.exr": "both", "/b.exr": "both"}), site.log()
        site.stop()
        site.start()
        for _ in range(3):  # each read must evict the other file to fit
            assert (site.mount / "a.exr").read_bytes() == a
            assert (site.mount / "b.exr").read_bytes() == b
    finally:
        site.stop()
