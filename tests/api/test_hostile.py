"""Hostile callers against a site's real API over TLS on 127.0.0.1 (docs/security.md).

Each test is one line of the threat model: no credential, a wrong one, an expired or spent
join credential, a peer's credential on every admin route and on another site's leave, a
server certificate from another CA, a body over the limit, too many streams, and a whole-
content GET of a large file with the memory it takes watched.
"""

from __future__ import annotations

import asyncio
import json
import stat
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from meridian.api import ApiServer
from meridian.api.guard import allowed
from meridian.errors import PeerUnreachable
from meridian.meta import ROOT_INO
from meridian.site import Site
from meridian.sitecall import SiteClient, SiteEndpoint
from meridian.trust.credentials import Caller, CredentialStore
from meridian.trust.tls import TlsFiles, make_namespace
from tests.apisite import admin_auth, ca_context, make_site

Scenario = Callable[[Site, httpx.AsyncClient], Awaitable[None]]


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def with_api(tmp_path: Path, scenario: Scenario, api: dict[str, Any] | None = None) -> None:
    async def main() -> None:
        site = make_site(tmp_path, peers=[{"name": "west", "url": "https://127.0.0.1:9/api/v1"},
                                          {"name": "north", "url": "https://127.0.0.1:9/api/v1"}],
                         api=api)
        server = ApiServer(site)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                         verify=ca_context(site)) as client:
                await scenario(site, client)
        finally:
            await server.stop()
            site.close()

    asyncio.run(main())


def routes(site: Site, client_app: Any) -> list[tuple[str, str]]:
    """Every (method, path) of the API, path parameters filled in."""
    found = [("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs")]
    for path, methods in client_app.openapi()["paths"].items():
        concrete = (path.replace("{content_hash}", "a" * 64).replace("{name}", "north")
                    .replace("{objective_id}", "x").replace("{job_id}", "x"))
        found += [(method.upper(), concrete) for method in methods]
    return found


def test_no_credential_or_a_wrong_one_is_401_everywhere(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        assert str(client.base_url).startswith("https://")
        from meridian.api.app import build_app
        for method, path in routes(site, build_app(site)):
            for headers in ({}, bearer("w" * 43), {"Authorization": "Basic d2VzdDp3ZXN0"}):
                answer = await client.request(method, path.removeprefix("/api/v1"),
                                              headers=headers, json={})
                assert answer.status_code == 401, (method, path, headers)
                assert answer.headers["www-authenticate"] == "Bearer"
        audit = (site.config.data / "audit.log").read_text().splitlines()
        assert json.loads(audit[-1])["status"] == 401 and json.loads(audit[-1])["who"] is None

    with_api(tmp_path, scenario)


def test_a_peer_credential_gets_403_on_every_admin_route(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        west = CredentialStore(site.config.secrets).issue_peer("west")
        from meridian.api.app import build_app
        refused = 0
        for method, path in routes(site, build_app(site)):
            if allowed(Caller("peer", "west"), method, path):
                continue
            answer = await client.request(method, path.removeprefix("/api/v1"),
                                          headers=bearer(west), json={})
            assert answer.status_code == 403, (method, path, answer.text)
            refused += 1
        assert refused >= 15
        add = await client.post("/objectives", headers=bearer(west),
                                json={"rules": ["IF TRUE THEN {SLO('place-on-local-volumes')}"]})
        assert add.status_code == 403
        assert site.meta.objectives() == []  # nothing changed
        mine = await client.get("/journal", headers=bearer(west))  # what a peer may do
        assert mine.status_code == 200
        audit = [json.loads(line) for line in
                 (site.config.data / "audit.log").read_text().splitlines()]
        last = audit[-1]
        assert last["status"] == 403 and last["who"].startswith("peer:west (")
        assert last["what"] == "POST /api/v1/objectives" and last["where"].startswith("127.0.0.1:")
        assert west not in (site.config.data / "audit.log").read_text()

    with_api(tmp_path, scenario)


def test_a_leave_or_rotation_spoofed_for_another_site_is_403(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        west = CredentialStore(site.config.secrets).issue_peer("west")
        spoofed = await client.post("/peers/north/leave", headers=bearer(west),
                                    json={"origin_seq": 0})
        assert spoofed.status_code == 403 and "north" in spoofed.json()["detail"]
        assert "north" not in site.meta.departed()
        stolen = await client.post("/peers/north/rotate", headers=bearer(west), json={})
        assert stolen.status_code == 403
        own = await client.post("/peers/west/leave", headers=bearer(west), json={"origin_seq": 0})
        assert own.status_code == 200 and "west" in site.meta.departed()

    with_api(tmp_path, scenario)


def test_join_credentials_expire_are_spent_once_and_reach_only_join(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        store = CredentialStore(site.config.secrets)
        expired = store.issue_join("south", 0.2)
        await asyncio.sleep(0.4)
        assert (await client.get("/site", headers=bearer(expired))).status_code == 401
        fresh = store.issue_join("south", 60)
        assert (await client.get("/site", headers=bearer(fresh))).status_code == 200
        for path in ("/snapshot", "/journal", "/objectives"):
            assert (await client.get(path, headers=bearer(fresh))).status_code == 403, path
        from meridian.trust.tls import host_names, new_request
        _, csr = new_request("south", host_names("127.0.0.1"))
        body = {"site": "south", "csr": csr.decode(), "credential": "s" * 43}
        other = await client.post("/join", headers=bearer(fresh), json={**body, "site": "east2"})
        assert other.status_code == 403  # issued for south, not east2
        joined = await client.post("/join", headers=bearer(fresh), json=body)
        assert joined.status_code == 200, joined.text
        assert "BEGIN CERTIFICATE" in joined.json()["certificate"]
        peer = joined.json()["credential"]
        assert (await client.get("/journal", headers=bearer(peer))).status_code == 200
        again = await client.post("/join", headers=bearer(fresh), json=body)
        assert again.status_code == 401  # spent

    with_api(tmp_path, scenario)


def test_rotation_keeps_the_old_credential_for_its_grace_only(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        old = CredentialStore(site.config.secrets).issue_peer("west")
        rotated = await client.post("/peers/west/rotate", headers=bearer(old), json={"grace": 1})
        new = rotated.json()["credential"]
        assert (await client.get("/journal", headers=bearer(new))).status_code == 200
        assert (await client.get("/journal", headers=bearer(old))).status_code == 200  # grace
        await asyncio.sleep(1.2)
        assert (await client.get("/journal", headers=bearer(old))).status_code == 401
        assert (await client.get("/journal", headers=bearer(new))).status_code == 200
        CredentialStore(site.config.secrets).revoke("west")  # meridian peer remove
        assert (await client.get("/journal", headers=bearer(new))).status_code == 401

    with_api(tmp_path, scenario)


def test_a_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        stranger = TlsFiles.default(tmp_path / "stranger")
        make_namespace(stranger, "stranger", ["127.0.0.1"])
        admin = site.config.secrets.admin_credential()
        endpoint = SiteEndpoint("east", str(client.base_url).rstrip("/"), lambda: admin,
                                stranger.ca)
        with SiteClient(endpoint) as caller, pytest.raises(PeerUnreachable, match="not trusted"):
            await asyncio.to_thread(caller.call, "GET", "/site")
        trusted = SiteEndpoint("east", str(client.base_url).rstrip("/"), lambda: admin,
                               site.config.tls.ca)
        with SiteClient(trusted) as caller:
            assert (await asyncio.to_thread(caller.call, "GET", "/site"))["site"] == "east"

    with_api(tmp_path, scenario)


def test_a_body_over_the_limit_is_413_and_changes_nothing(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        rule = "IF TRUE THEN {SLO('place-on-local-volumes')}"
        big = {"rules": [rule] * 5000}
        announced = await client.post("/objectives", headers=admin_auth(site), json=big)
        assert announced.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            data = json.dumps(big).encode()
            for at in range(0, len(data), 8192):
                yield data[at:at + 8192]

        chunked = await client.post("/objectives", content=chunks(),
                                    headers={**admin_auth(site),
                                             "Content-Type": "application/json"})
        assert chunked.status_code == 413
        assert site.meta.objectives() == []
        small = await client.post("/objectives", headers=admin_auth(site), json={"rules": [rule]})
        assert small.status_code == 200
        audit = json.loads((site.config.data / "audit.log").read_text().splitlines()[-1])
        assert audit["who"].startswith("admin (") and audit["status"] == 200

    with_api(tmp_path, scenario, api={"max_body": "64KiB"})


def test_long_polls_and_event_streams_are_capped_per_credential(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        west = CredentialStore(site.config.secrets).issue_peer("west")
        polls = [asyncio.create_task(client.get("/journal", params={"wait": 3},
                                                headers=bearer(west))) for _ in range(2)]
        await asyncio.sleep(0.5)
        third = await client.get("/journal", params={"wait": 3}, headers=bearer(west))
        assert third.status_code == 429 and "max_streams" in third.json()["detail"]
        quick = await client.get("/journal", headers=bearer(west))  # no wait: not counted
        assert quick.status_code == 200
        admin = await client.get("/journal", params={"wait": 0.1}, headers=admin_auth(site))
        assert admin.status_code == 200  # another credential has its own count
        assert [p.status_code for p in await asyncio.gather(*polls)] == [200, 200]

    with_api(tmp_path, scenario, api={"max_streams": 2})


def test_events_replay_one_page_then_say_where_to_continue(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        for n in range(1200):
            site.meta.create(ROOT_INO, f"f{n}", stat.S_IFREG | 0o644, 0, 0)
        kinds, ids, data = [], [], []
        async with client.stream("GET", "/events", params={"after": 0},
                                 headers=admin_auth(site)) as answer:
            async for line in answer.aiter_lines():  # the stream ends by itself
                if line.startswith("event: "):
                    kinds.append(line[7:])
                elif line.startswith("id: "):
                    ids.append(int(line[4:]))
                elif line.startswith("data: "):
                    data.append(json.loads(line[6:]))
        assert kinds.count("change") == 1000 and kinds[-1] == "continue"
        assert data[-1] == {"after": ids[-1]} and ids[-1] == 1000

    with_api(tmp_path, scenario)


def test_concurrent_snapshots_share_one_consistent_copy(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        site.meta.create(ROOT_INO, "a", stat.S_IFREG | 0o644, 0, 0)
        answers = await asyncio.gather(*(client.get("/snapshot", headers=admin_auth(site))
                                         for _ in range(4)))
        assert {a.status_code for a in answers} == {200}
        assert len({a.headers["x-meridian-journal-seq"] for a in answers}) == 1
        assert len({a.content for a in answers}) == 1
        copies = list((site.config.data / "tmp").glob("snapshot-*.db"))
        assert len(copies) <= 1

    with_api(tmp_path, scenario)


def test_a_whole_content_get_of_a_large_file_streams(tmp_path: Path) -> None:
    size = 64 << 20

    async def scenario(site: Site, client: httpx.AsyncClient) -> None:
        staging = site.volume.new_staging()
        block = bytes(range(256)) * 4096  # 1 MiB
        for at in range(0, size, len(block)):
            staging.write(at, block)
        content = site.volume.commit(staging).hash
        f = site.meta.create(ROOT_INO, "big.exr", stat.S_IFREG | 0o644, 0, 0)
        site.meta.set_content(f.ino, content, size)
        received = 0
        tracemalloc.start()
        try:
            async with client.stream("GET", f"/content/{content}",
                                     headers=admin_auth(site)) as answer:
                assert answer.status_code == 200
                assert int(answer.headers["content-length"]) == size
                async for chunk in answer.aiter_bytes():
                    received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert received == size
        assert peak < 16 << 20, f"{peak / 2**20:.1f} MiB allocated at peak for {size >> 20} MiB"

    with_api(tmp_path, scenario)


def test_plain_http_is_refused_off_loopback() -> None:
    from meridian.errors import BadInput
    from meridian.sitecall import check_site_url

    with pytest.raises(BadInput, match="loopback"):
        check_site_url("http://10.1.2.3:7411/api/v1")
    assert check_site_url("http://127.0.0.1:7411") == "http://127.0.0.1:7411/api/v1"
