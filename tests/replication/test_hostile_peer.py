"""A peer that sends entries no site could have written, over real HTTP on 127.0.0.1.

West pulls from two peers: east, a real site behind its real API, and "rogue", an HTTP server
answering journal pulls with a batch of one valid entry and one forged entry. The link to rogue
must stop with one log line naming the peer, the entry and the field, apply nothing of the
batch, and show the refusal in its status; the link to east goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from meridian.api import ApiServer
from meridian.errors import NotFound
from meridian.meta import ROOT_INO
from meridian.meta.journal import version
from meridian.replication.link import LinkState
from meridian.site import Site
from meridian.site.trust import link_local
from meridian.trust.credentials import PresentedCredentials
from tests.apisite import make_site

ROGUE_CREDENTIAL = "r" * 43
ROGUE_ID = "fedcba9876543210fedcba9876543210"


def rogue_batch(forged: dict[str, Any], hlc: int | None = None) -> dict[str, Any]:
    now = (time.time_ns() // 1_000_000) << 16
    valid = {"seq": 1, "origin": "rogue", "origin_seq": 1, "hlc": now,
             "op": {"op": "create", "parent": "root", "name": "from-rogue",
                    "fid": f"{ROGUE_ID}.1", "mode": stat.S_IFREG | 0o644, "uid": 0, "gid": 0,
                    "target": None, "rdev": 0}}
    bad = {"seq": 2, "origin": "rogue", "origin_seq": 2, "hlc": hlc or now + 1, "op": forged}
    return {"site": "rogue", "format": 1, "last_seq": 2, "through": 2, "entries": [valid, bad]}


class RogueServer:
    """Answers every GET with the same journal batch, or with ``lines``: batches streamed one
    per line (``application/x-ndjson``, as a site answers ``stream=true``); counts the pulls."""

    def __init__(self, batch: dict[str, Any], lines: list[dict[str, Any]] | None = None) -> None:
        body = json.dumps(batch).encode()
        kind = "application/json"
        if lines is not None:
            body, kind = b"".join(json.dumps(line).encode() + b"\n" for line in lines), \
                "application/x-ndjson"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.pulls += 1
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.pulls = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RogueServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def open_site(root: Path, name: str, peers: list[dict[str, str]],
              linked: Site | None = None) -> Site:
    """A site pulling from ``peers``: in the namespace of ``linked`` (its CA, and credentials
    exchanged with it); the rogue gets a credential too (it accepts any)."""
    site = make_site(root, name, peers=peers)
    if linked is not None:
        link_local([linked.config, site.config])
    PresentedCredentials(site.config.secrets).put("rogue", ROGUE_CREDENTIAL)
    return site


async def links_until_refused(site: Site) -> LinkState:
    """Start ``site``'s links; the state of its link to rogue once that refused a batch, or
    after 20 s."""
    site.replication.start()
    link = site.replication.links["rogue"]
    deadline = time.monotonic() + 20
    while not link.state.refused and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return link.state


YEAR_MS = 365 * 86400 * 1000
FORGED = {
    "dot-dot name": ({"op": "create", "parent": "root", "name": "..", "fid": f"{ROGUE_ID}.2",
                      "mode": stat.S_IFDIR | 0o755, "uid": 0, "gid": 0}, None, "op.name"),
    "name of 300 bytes": ({"op": "create", "parent": "root", "name": "x" * 300,
                           "fid": f"{ROGUE_ID}.2", "mode": stat.S_IFREG | 0o644, "uid": 0,
                           "gid": 0}, None, "op.name"),
    "missing key": ({"op": "unlink", "parent": "root", "name": "from-rogue"}, None, "op.fid"),
    "hash that climbs": ({"op": "instance", "hash": "../../../../etc/passwd", "size": 1},
                         None, "op.hash"),
    "clock a year ahead": ({"op": "rename", "parent": "root", "name": "from-rogue",
                            "new_parent": "root", "new_name": "mine", "fid": f"{ROGUE_ID}.1"},
                           ((time.time_ns() // 1_000_000 + YEAR_MS) << 16), "hlc"),
    "version a year ahead": ({"op": "unlink", "parent": "root", "name": "from-rogue",
                              "fid": f"{ROGUE_ID}.1",
                              "seen": version((time.time_ns() // 1_000_000 + YEAR_MS) << 16,
                                              "rogue")}, None, "op.seen"),
}


@pytest.mark.parametrize("what", list(FORGED))
def test_a_hostile_peer_is_stopped_while_other_links_go_on(
        what: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    forged, hlc, field = FORGED[what]

    async def scenario(rogue: RogueServer) -> None:
        east = open_site(tmp_path, "east", [])
        east_api = ApiServer(east)
        await east_api.start()
        west = open_site(tmp_path, "west", [
            {"name": "east", "url": east_api.url},
            {"name": "rogue", "url": rogue.url}], linked=east)
        try:
            west.replication.start()
            east.meta.create(ROOT_INO, "from-east", stat.S_IFREG | 0o644, 0, 0)
            deadline = time.monotonic() + 20
            links = west.replication.links
            while time.monotonic() < deadline:
                got_east = any(n == "from-east" for n, _ in west.meta.list_dir(ROOT_INO))
                if got_east and links["rogue"].state.refused:
                    break
                await asyncio.sleep(0.02)
            state = {s["peer"]: s for s in west.replication.status()}
            assert any(n == "from-east" for n, _ in west.meta.list_dir(ROOT_INO)), state
            rogue_state = state["rogue"]
            assert rogue_state["refused"] and not rogue_state["connected"], rogue_state
            message = rogue_state["error"]
            assert "rogue" in message and "rogue/2" in message and "seq 2" in message, message
            assert f"{field}:" in message, message
            assert state["east"]["connected"] and not state["east"]["error"], state["east"]
            # nothing of the refused batch, not even its valid first entry
            with pytest.raises(NotFound):
                west.meta.lookup(ROOT_INO, "from-rogue")
            assert west.meta.applied_seq("rogue") == 0 and west.meta.peer_position("rogue") == 0
            # the link keeps working for east after the refusal
            east.meta.create(ROOT_INO, "later", stat.S_IFREG | 0o644, 0, 0)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if any(n == "later" for n, _ in west.meta.list_dir(ROOT_INO)):
                    break
                await asyncio.sleep(0.02)
            assert any(n == "later" for n, _ in west.meta.list_dir(ROOT_INO))
        finally:
            await west.replication.stop()
            await east_api.stop()
            west.close()
            east.close()

    with caplog.at_level(logging.WARNING, logger="meridian.replication"):
        with RogueServer(rogue_batch(forged, hlc)) as rogue:
            asyncio.run(scenario(rogue))
    stopped = [r for r in caplog.records if "rogue" in r.getMessage() and "stopped" in r.getMessage()]
    assert len(stopped) == 1 and stopped[0].levelno == logging.ERROR, caplog.text


def test_a_peer_in_a_newer_journal_format_is_refused(tmp_path: Path) -> None:
    async def scenario(rogue: RogueServer) -> None:
        west = open_site(tmp_path, "west", [{"name": "rogue", "url": rogue.url}])
        try:
            state = await links_until_refused(west)
            assert state.refused and "journal format 99" in state.error
            assert west.meta.applied_seq("rogue") == 0
        finally:
            await west.replication.stop()
            west.close()

    batch = rogue_batch({"op": "retire", "hash": "a" * 64})
    batch["format"] = 99
    with RogueServer(batch) as rogue:
        asyncio.run(scenario(rogue))


def test_a_forged_entry_on_a_later_line_of_a_stream_stops_the_link_there(tmp_path: Path) -> None:
    """A streamed answer is taken batch by batch: the lines before the forged one are applied
    (each was checked whole), the forged line's batch is not, and the link stops at it."""
    forged, _, field = FORGED["dot-dot name"]
    whole = rogue_batch(forged)
    first = {**whole, "through": 1, "entries": whole["entries"][:1]}
    second = {**whole, "through": 2, "entries": whole["entries"][1:]}

    async def scenario(rogue: RogueServer) -> None:
        west = open_site(tmp_path, "west", [{"name": "rogue", "url": rogue.url}])
        try:
            state = await links_until_refused(west)
            assert state.refused, state
            assert "rogue/2" in state.error and f"{field}:" in state.error
            west.meta.lookup(ROOT_INO, "from-rogue")  # the first line's entry: applied
            assert west.meta.peer_position("rogue") == 1
        finally:
            await west.replication.stop()
            west.close()

    with RogueServer(whole, lines=[first, second]) as rogue:
        asyncio.run(scenario(rogue))
