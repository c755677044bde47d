"""The console over real HTTP (TLS) without a browser: who gets in, CSRF, paging, the digest.

A site with its API on 127.0.0.1 (no mount): the console's pages and fragments refuse every
request without a session, a sign-in URL opens one session once, a change without the
session's CSRF token is refused, and a folder is served a page at a time.
"""

from __future__ import annotations

import asyncio
import re
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from meridian.api import ApiServer
from meridian.api.guard import allowed
from meridian.console.views import PAGE_SIZE
from meridian.site import Site
from meridian.site.inspect import namespace_digest
from meridian.trust.credentials import Caller
from tests.apisite import admin_auth, ca_context, make_site

Scenario = Callable[[Site, httpx.AsyncClient, str], Awaitable[None]]


def with_console(tmp_path: Path, scenario: Scenario, **settings: object) -> None:
    async def main() -> None:
        site = make_site(tmp_path, api=dict(settings))
        api = ApiServer(site)
        await api.start()
        base = api.url.removesuffix("/api/v1")
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30,
                                         verify=ca_context(site)) as client:
                await scenario(site, client, base)
        finally:
            await api.stop()
            site.close()

    asyncio.run(main())


async def sign_in(site: Site, client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    """A session's cookie header and its CSRF token."""
    issued = await client.post("/api/v1/console/sign-in", headers=admin_auth(site))
    assert issued.status_code == 200, issued.text
    opened = await client.get(issued.json()["path"])
    assert opened.status_code == 303 and opened.headers["location"] == "/console/sites"
    value = opened.cookies["meridian_console"]
    page = await client.get("/console/files", headers={"Cookie": f"meridian_console={value}"})
    assert page.status_code == 200
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert found is not None
    return {"Cookie": f"meridian_console={value}"}, found.group(1)


def test_nothing_without_a_session_and_a_sign_in_url_works_once(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, base: str) -> None:
        paths = ["/console", "/console/sites", "/console/files?path=/", "/console/objectives",
                 "/console/flame", "/console/activity", "/console/fragments/sites",
                 "/console/fragments/files", "/console/stream", "/console/static/console.css"]
        for path in paths:
            for headers in [{}, admin_auth(site), {"Cookie": "meridian_console=forged"}]:
                answer = await client.get(path, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert "meridian console --config" in answer.text
        assert (await client.post("/api/v1/console/sign-in")).status_code == 401
        assert not allowed(Caller("peer", "west"), "POST", "/api/v1/console/sign-in")

        issued = await client.post("/api/v1/console/sign-in", headers=admin_auth(site))
        path = issued.json()["path"]
        opened = await client.get(path)
        cookie = opened.headers["set-cookie"].lower()
        for flag in ("httponly", "samesite=strict", "secure", "path=/console"):
            assert flag in cookie, cookie
        assert (await client.get(path)).status_code == 401  # spent
        assert (await client.get("/console/signin?token=made-up")).status_code == 401

    with_console(tmp_path, scenario)


def test_changes_need_the_sessions_csrf_token(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, base: str) -> None:
        session, csrf = await sign_in(site, client)
        other, other_csrf = await sign_in(site, client)
        assert csrf != other_csrf
        body = {"rule": "IF FNMATCH(\"x*\" PATH) THEN {SLO('place-on-local-volumes')}"}
        for headers in [session, {**session, "X-CSRF-Token": "wrong"},
                        {**session, "X-CSRF-Token": other_csrf}]:
            refused = await client.post("/console/fragments/rule-check", data=body,
                                        headers=headers)
            assert refused.status_code == 403, headers
            added = await client.post("/console/objectives", data=body, headers=headers)
            assert added.status_code == 403
        assert site.meta.objectives() == []
        checked = await client.post("/console/fragments/rule-check", data=body,
                                    headers={**session, "X-CSRF-Token": csrf})
        assert checked.status_code == 200
        assert "at 1:17" in checked.text and 'data-column="17"' in checked.text
        signed_out = await client.post("/console/signout",
                                       headers={**session, "X-CSRF-Token": csrf})
        assert signed_out.status_code == 200
        assert (await client.get("/console/sites", headers=session)).status_code == 401

    with_console(tmp_path, scenario)


def test_a_large_folder_is_served_a_page_at_a_time(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, base: str) -> None:
        folder = site.meta.create(1, "big", stat.S_IFDIR | 0o755, 0, 0)
        total = PAGE_SIZE * 2 + 50
        for n in range(total):
            site.meta.create(folder.ino, f"f{n:05d}.exr", stat.S_IFREG | 0o644, 0, 0)
        session, _ = await sign_in(site, client)
        rows = re.compile(r'<tr class="entry file" data-name="(f\d+\.exr)"')
        first = await client.get("/console/fragments/files?path=./big", headers=session)
        names = rows.findall(first.text)
        assert names == [f"f{n:05d}.exr" for n in range(PAGE_SIZE)]
        assert f"{total} entries" in first.text and "Page 1 of 3" in first.text
        last = await client.get("/console/fragments/files?path=/big&page_number=3",
                                headers=session)
        assert rows.findall(last.text) == [f"f{n:05d}.exr" for n in range(PAGE_SIZE * 2, total)]
        bad = await client.get("/console/fragments/files?path=/big/../..", headers=session)
        assert bad.status_code == 400
        missing = await client.get("/console/fragments/files?path=/nothing", headers=session)
        assert missing.status_code == 404

    with_console(tmp_path, scenario)


def test_the_digest_route_answers_admins_and_peers(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, base: str) -> None:
        site.meta.create(1, "a", stat.S_IFDIR | 0o755, 0, 0)
        answer = await client.get("/api/v1/digest", headers=admin_auth(site))
        assert answer.json()["digest"] == namespace_digest(site.meta)
        assert allowed(Caller("peer", "west"), "GET", "/api/v1/digest")
        assert (await client.get("/api/v1/digest")).status_code == 401

    with_console(tmp_path, scenario)


def test_console_event_streams_are_capped(tmp_path: Path) -> None:
    async def scenario(site: Site, client: httpx.AsyncClient, base: str) -> None:
        session, _ = await sign_in(site, client)
        async with client.stream("GET", "/console/stream", headers=session) as first, \
                client.stream("GET", "/console/stream?glob=./a/*", headers=session) as second:
            assert first.status_code == second.status_code == 200
            third = await client.get("/console/stream", headers=session)
            assert third.status_code == 429
        again = await client.get("/console/sites", headers=session)
        assert again.status_code == 200

    with_console(tmp_path, scenario, max_streams=2)


def test_meridian_console_needs_the_site_running(tmp_path: Path) -> None:
    from tests.sitehelpers import init_site, meridian

    site = init_site(tmp_path, "solo", f"file://{tmp_path}/bucket")
    answer = meridian("console", "--config", str(site.config), check=False)
    assert answer.returncode == 3, answer
    assert "not running" in answer.stderr and answer.stdout == ""
