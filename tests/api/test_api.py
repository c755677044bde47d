"""The site's HTTP API over real HTTP on 127.0.0.1 (a site without a mount)."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from meridian.api import ApiServer
from meridian.api.app import parse_range
from meridian.meta import JOURNAL_FORMAT, ROOT_INO
from meridian.site import Site
from meridian.trust.credentials import CredentialStore
from tests.apisite import admin_auth, ca_context
from tests.apisite import make_site as make_tls_site

AUTH: dict[str, str] = {}  # the admin credential of the site of the running test


def make_site(tmp_path: Path) -> Site:
    site = make_tls_site(tmp_path)
    AUTH.clear()
    AUTH.update(admin_auth(site))
    return site


def with_api(tmp_path: Path, scenario: Callable[[Site, httpx.AsyncClient, str], Awaitable[None]]) -> None:
    async def main() -> None:
        site = make_site(tmp_path)
        api = ApiServer(site)
        await api.start()
        try:
            async with httpx.AsyncClient(base_url=api.url, timeout=30,
                                         verify=ca_context(site)) as client:
                await scenario(site, client, api.url)
        finally:
            await api.stop()
            site.close()

    asyncio.run(main())


def test_requests_without_the_credential_get_401(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        assert url.startswith("https://127.0.0.1:")
        for path in ["/site", "/journal", "/content/" + "a" * 64, "/openapi.json"]:
            for headers in [{}, {"Authorization": "Bearer wrong-token-wrong-token"}]:
                answer = await client.get(url + path, headers=headers)
                assert answer.status_code == 401, path
                assert "credential" in answer.json()["detail"]
        assert (await client.get("/site", headers=AUTH)).json()["site"] == "east"

    with_api(tmp_path, scenario)


def test_openapi_document_lists_the_routes(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        doc = (await client.get("/openapi.json", headers=AUTH)).json()
        assert {"/api/v1/site", "/api/v1/journal", "/api/v1/content/{content_hash}"} <= set(doc["paths"])

    with_api(tmp_path, scenario)


def test_journal_pull_and_long_poll(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        site.meta.create(ROOT_INO, "a", stat.S_IFREG | 0o644, 0, 0)
        first = (await client.get("/journal", params={"after": 0}, headers=AUTH)).json()
        assert [e["op"]["name"] for e in first["entries"]] == ["a"] and first["last_seq"] == 1

        async def later() -> None:
            await asyncio.sleep(0.3)
            site.meta.create(ROOT_INO, "b", stat.S_IFREG | 0o644, 0, 0)

        started = time.monotonic()
        writer = asyncio.create_task(later())
        polled = (await client.get("/journal", params={"after": 1, "wait": 20}, headers=AUTH)).json()
        await writer
        assert [e["op"]["name"] for e in polled["entries"]] == ["b"]
        assert time.monotonic() - started < 10  # woken by the commit, not by the 20 s wait
        bad = await client.get("/journal", params={"after": -1}, headers=AUTH)
        assert bad.status_code == 422

    with_api(tmp_path, scenario)


def test_journal_leaves_out_the_callers_own_changes_but_counts_them(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        site.meta.create(ROOT_INO, "a", stat.S_IFREG | 0o644, 0, 0)
        mine = (await client.get("/journal", params={"after": 0, "skip_origin": "east"},
                                 headers=AUTH)).json()
        assert mine["entries"] == [] and mine["through"] == 1 and mine["last_seq"] == 1
        other = (await client.get("/journal", params={"after": 0, "skip_origin": "west"},
                                  headers=AUTH)).json()
        assert [e["op"]["name"] for e in other["entries"]] == ["a"] and other["through"] == 1

        async def later() -> None:
            await asyncio.sleep(0.3)
            site.meta.create(ROOT_INO, "b", stat.S_IFREG | 0o644, 0, 0)

        started = time.monotonic()
        writer = asyncio.create_task(later())
        held = (await client.get("/journal", params={"after": 1, "wait": 1, "skip_origin": "east"},
                                 headers=AUTH)).json()
        await writer
        assert held["entries"] == [] and held["through"] == 2  # its own echo did not answer
        assert time.monotonic() - started >= 0.9  # it waited out the poll

    with_api(tmp_path, scenario)


def test_journal_stream_sends_each_commit_as_a_line_and_ends_after_wait(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        site.meta.create(ROOT_INO, "a", stat.S_IFREG | 0o644, 0, 0)

        async def later() -> None:
            await asyncio.sleep(0.3)
            site.meta.create(ROOT_INO, "b", stat.S_IFREG | 0o644, 0, 0)
            await asyncio.sleep(0.3)
            site.meta.create(ROOT_INO, "c", stat.S_IFREG | 0o644, 0, 0)

        started = time.monotonic()
        lines: list[tuple[float, dict[str, Any]]] = []
        params = {"after": 0, "wait": 2, "stream": "true", "skip_origin": "west"}
        async with client.stream("GET", "/journal", params=params, headers=AUTH) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("application/x-ndjson")
            writer = asyncio.create_task(later())
            async for line in answer.aiter_lines():
                if line:
                    lines.append((time.monotonic() - started, json.loads(line)))
            await writer
        ended = time.monotonic() - started
        names = [[e["op"]["name"] for e in batch["entries"]] for _, batch in lines]
        assert [n for n in names if n] == [["a"], ["b"], ["c"]], names  # one line per commit
        assert lines[0][0] < 1.0  # the first line at once
        b_at = next(at for at, batch in lines if batch["entries"][:1] and
                    batch["entries"][0]["op"]["name"] == "b")
        assert b_at < 1.5  # woken by the commit, not by the heartbeat (5 s) or the end (2 s)
        assert [batch["through"] for _, batch in lines][-1] == 3 == lines[-1][1]["last_seq"]
        assert 1.9 <= ended < 10  # held for ``wait`` seconds, then ended
        assert all(batch["format"] == JOURNAL_FORMAT and batch["site"] == "east"
                   for _, batch in lines)
        # the stream's hold on the caller's streams is given back when it ends
        held = await client.get("/journal", params={"after": 3, "wait": 0.1}, headers=AUTH)
        assert held.status_code == 200 and held.json()["entries"] == []

    with_api(tmp_path, scenario)


def test_journal_stream_leaves_out_the_callers_own_changes_and_counts_them(
        tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        site.meta.create(ROOT_INO, "a", stat.S_IFREG | 0o644, 0, 0)
        params = {"after": 0, "wait": 1, "stream": "true", "skip_origin": "east"}
        async with client.stream("GET", "/journal", params=params, headers=AUTH) as answer:
            batches = [json.loads(line) async for line in answer.aiter_lines() if line]
        assert all(batch["entries"] == [] for batch in batches), batches
        assert batches[-1]["through"] == 1  # its own entry counted all the same

    with_api(tmp_path, scenario)


def test_a_journal_stream_ends_soon_after_its_credential_is_revoked(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        store = CredentialStore(site.config.secrets)
        peer = {"Authorization": f"Bearer {store.issue_peer('west')}"}
        params = {"after": 0, "wait": 30, "stream": "true", "skip_origin": "west"}
        async with client.stream("GET", "/journal", params=params, headers=peer) as answer:
            assert answer.status_code == 200
            lines = answer.aiter_lines()
            assert json.loads(await anext(lines))["through"] == 0  # the first line, at once
            store.revoke("west")
            started = time.monotonic()
            rest = [line async for line in lines]
        assert time.monotonic() - started < 10, rest  # not the 30 s asked for
        again = await client.get("/journal", params={"after": 0}, headers=peer)
        assert again.status_code == 401

    with_api(tmp_path, scenario)


def test_content_by_hash_with_ranges(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        data = bytes(range(256)) * 100
        staging = site.volume.new_staging()
        staging.write(0, data)
        h = site.volume.commit(staging).hash
        f = site.meta.create(ROOT_INO, "f", stat.S_IFREG | 0o644, 0, 0)
        site.meta.set_content(f.ino, h, len(data))
        whole = await client.get(f"/content/{h}", headers=AUTH)
        assert whole.status_code == 200 and whole.content == data
        part = await client.get(f"/content/{h}", headers={**AUTH, "Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        tail = await client.get(f"/content/{h}", headers={**AUTH, "Range": "bytes=-10"})
        assert tail.content == data[-10:]
        beyond = await client.get(f"/content/{h}", headers={**AUTH, "Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        assert (await client.get("/content/" + "0" * 64, headers=AUTH)).status_code == 404
        assert (await client.get("/content/not-a-hash", headers=AUTH)).status_code == 400

    with_api(tmp_path, scenario)


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-9", (0, 10)), ("bytes=5-", (5, 100)), ("bytes=-5", (95, 100)),
    ("bytes=90-200", (90, 100))])
def test_parse_range(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-", "items=0-1", "bytes=5-2", "bytes=a-b"])
def test_bad_ranges(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 100)


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    from meridian.errors import BadInput

    async def main() -> None:
        site = make_site(tmp_path)
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            api = ApiServer(site, f"127.0.0.1:{busy.getsockname()[1]}")
            with pytest.raises(BadInput, match="cannot listen"):
                await api.start()
        site.close()

    asyncio.run(main())


def test_event_stream_replays_then_follows_filtered_by_glob(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        d = site.meta.create(ROOT_INO, "flame", stat.S_IFDIR | 0o755, 0, 0)
        site.meta.create(d.ino, "old.clip", stat.S_IFREG | 0o644, 0, 0)
        site.meta.create(d.ino, "frame.exr", stat.S_IFREG | 0o644, 0, 0)
        received: list[dict[str, object]] = []

        async def listen() -> None:
            params = {"glob": "./flame/*.clip", "after": 0}
            async with client.stream("GET", "/events", params=params, headers=AUTH) as answer:
                assert answer.status_code == 200
                assert answer.headers["content-type"].startswith("text/event-stream")
                async for line in answer.aiter_lines():
                    if line.startswith("data: "):
                        import json
                        received.append(json.loads(line[6:]))
                        if len(received) == 3:
                            return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.3)
        site.meta.create(d.ino, "new.clip", stat.S_IFREG | 0o644, 0, 0)
        site.meta.create(d.ino, "other.exr", stat.S_IFREG | 0o644, 0, 0)
        site.meta.rename(d.ino, "new.clip", d.ino, "newer.clip")
        await asyncio.wait_for(listener, 10)
        assert [(e["op"], e["path"]) for e in received] == [
            ("create", "/flame/old.clip"), ("create", "/flame/new.clip"),
            ("rename", "/flame/newer.clip")]
        assert received[2]["old_path"] == "/flame/new.clip"
        unauthorised = await client.get("/events")
        assert unauthorised.status_code == 401

    with_api(tmp_path, scenario)


def test_stopping_does_not_wait_for_open_event_streams(tmp_path: Path) -> None:
    async def main() -> None:
        site = make_site(tmp_path)
        api = ApiServer(site)
        await api.start()
        client = httpx.AsyncClient(base_url=api.url, timeout=30, verify=ca_context(site))
        stream = client.stream("GET", "/events", headers=AUTH)
        answer = await stream.__aenter__()
        assert answer.status_code == 200
        started = time.monotonic()
        await asyncio.wait_for(api.stop(), 15)
        assert time.monotonic() - started < 10
        try:
            await stream.__aexit__(None, None, None)
        except httpx.HTTPError:
            pass
        await client.aclose()
        site.close()

    asyncio.run(main())


def test_placement_confines_paths_to_the_namespace(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, url: str) -> None:
        d = site.meta.create(ROOT_INO, "shots", stat.S_IFDIR | 0o755, 0, 0)
        site.meta.create(d.ino, "empty.exr", stat.S_IFREG | 0o644, 0, 0)
        rows = (await client.get("/placement", params={"path": "./shots"}, headers=AUTH)).json()
        assert [(r["path"], r["state"]) for r in rows] == [("/shots/empty.exr", "empty")]
        escape = await client.get("/placement", params={"path": "./shots/../../etc"}, headers=AUTH)
        assert escape.status_code == 400 and "'..'" in escape.json()["detail"]
        missing = await client.get("/placement", params={"path": "./nothing"}, headers=AUTH)
        assert missing.status_code == 404

    with_api(tmp_path, scenario)
