"""A link reading its peer's journal as a stream, between two sites over real TLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Callable
from pathlib import Path

from meridian.api import ApiServer
from meridian.errors import NotFound
from meridian.meta import ROOT_INO
from meridian.site import Site
from tests.replication.test_hostile_peer import open_site


def has(site: Site, name: str) -> bool:
    try:
        site.meta.lookup(ROOT_INO, name)
        return True
    except NotFound:
        return False


async def until(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``check()`` held; raises after ``seconds``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def test_entries_follow_each_other_on_one_stream_and_a_paused_link_applies_none(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        east = open_site(tmp_path, "east", [])
        east_api = ApiServer(east)
        await east_api.start()
        west = open_site(tmp_path, "west", [{"name": "east", "url": east_api.url}], linked=east)
        try:
            west.replication.start()
            link = west.replication.links["east"]
            await until(lambda: link.state.connected, 20)
            for n in range(5):  # each well before the stream's heartbeat: woken by the commit
                east.meta.create(ROOT_INO, f"f{n}", stat.S_IFREG | 0o644, 0, 0)
                assert await until(lambda: has(west, f"f{n}"), 20) < 2.0
            link.pause()
            east.meta.create(ROOT_INO, "while-paused", stat.S_IFREG | 0o644, 0, 0)
            await asyncio.sleep(1.0)
            assert not has(west, "while-paused")  # the line came, and was not applied
            assert west.meta.peer_position("east") == 5
            link.resume()
            await until(lambda: has(west, "while-paused"), 20)
            assert west.meta.peer_position("east") == 6 and link.state.connected
        finally:
            await west.replication.stop()
            await east_api.stop()
            west.close()
            east.close()

    asyncio.run(scenario())
