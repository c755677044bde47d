"""A kept-alive API call answers in a millisecond or two, not in a delayed-ACK period.

The site's API (real uvicorn on 127.0.0.1, as ``site run`` starts it) writes an answer's head
and body apart; if its connections leave Nagle's algorithm on, every body waits for the
client's delayed ACK, ~40 ms on Linux (docs/design-notes.md, TCP_NODELAY). The bound below is
a guard against that coming back, far above a healthy answer and far below the 40 ms.
"""

from __future__ import annotations

import asyncio
import stat
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from meridian.meta import ROOT_INO
from meridian.site import Site
from tests.api.test_api import AUTH, with_api

BOUND_MS = 20.0


def test_kept_alive_site_calls_answer_well_under_a_delayed_ack(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        assert (await client.get("/site", headers=AUTH)).status_code == 200  # connects
        took_ms = []
        for _ in range(20):
            started = time.perf_counter()
            answer = await client.get("/site", headers=AUTH)
            took_ms.append((time.perf_counter() - started) * 1000)
            assert answer.json()["site"] == "east"
        assert statistics.median(took_ms) < BOUND_MS, took_ms

    with_api(tmp_path, scenario)


def test_a_long_poll_answers_soon_after_the_commit_that_wakes_it(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        took_ms = []
        for n in range(5):
            after = site.meta.last_seq()
            poll = asyncio.create_task(
                client.get("/journal", params={"after": after, "wait": 5}, headers=AUTH))
            await asyncio.sleep(0.05)  # the poll is held by now
            assert not poll.done()
            committed = time.perf_counter()
            site.meta.create(ROOT_INO, f"f{n}", stat.S_IFREG | 0o644, 0, 0)
            answer = await poll
            took_ms.append((time.perf_counter() - committed) * 1000)
            assert [e["op"]["name"] for e in answer.json()["entries"]] == [f"f{n}"]
        assert statistics.median(took_ms) < BOUND_MS, took_ms

    with_api(tmp_path, scenario)



def test_a_poll_is_not_woken_by_commits_of_only_the_origin_it_skips() -> None:
    """A peer's long poll leaves out the peer's own changes (relayed back): applying them
    here must not wake it (it would scan and find nothing to send); a change of any other
    origin, or the server stopping, does."""
    from types import SimpleNamespace

    from meridian.api.journal import JournalFeed

    def entries(*origins: str) -> list[Any]:
        return [SimpleNamespace(origin=origin) for origin in origins]

    async def scenario() -> None:
        feed = JournalFeed()
        west_poll = asyncio.create_task(feed.wait(5.0, skip_origin="west"))
        any_poll = asyncio.create_task(feed.wait(5.0))
        await asyncio.sleep(0.01)
        feed.committed(entries("west", "west"))
        await asyncio.sleep(0.01)
        assert any_poll.done() and not west_poll.done()
        feed.committed(entries("west", "north"))
        await asyncio.wait_for(west_poll, 1.0)

        stopping = asyncio.create_task(feed.wait(5.0, skip_origin="west"))
        await asyncio.sleep(0.01)
        feed.close()
        await asyncio.wait_for(stopping, 1.0)

    asyncio.run(scenario())
