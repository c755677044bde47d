"""The site's HTTP API (FastAPI on the site's asyncio loop), under ``/api/v1``.

Why FastAPI: it runs on the loop the mount already uses (through uvicorn's ``Server.serve``),
and it writes the OpenAPI document (``/api/v1/openapi.json``) from the routes themselves, so
the document cannot drift from the code.

Every request passes ``meridian.api.guard`` first (credential, scope, body size, audit).
The routes here serve what peers and operators read: the site's identity, its journal (long
poll), local content by hash with ``Range`` (streamed: memory does not grow with its size),
one snapshot copy at a time, and the event stream (server-sent events, filterable by glob;
a replay is at most ``EVENTS_PAGE`` entries, then says where to continue). Long polls and
event streams open at once are capped per credential (``[api] max_streams``): 429 beyond.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from meridian.api.events import EventHub, matches, normalise_glob, sse
from meridian.api.journal import JournalFeed, JournalReader
from meridian.api.limits import SnapshotCopies, StreamCaps
from meridian.content.hashing import check_hash
from meridian.api.paths import resolve_path
from meridian.errors import BadPath, ContentError
from meridian.meta import JOURNAL_STREAM_MEDIA_TYPE
from meridian.meta.sqlite import SqliteMetaStore
from meridian.site.inspect import DigestCache, placements
from meridian.trust.credentials import Caller

if TYPE_CHECKING:
    from meridian.site import Site

MAX_WAIT = 30.0
EVENTS_PAGE = 1000  # entries an event stream replays before it says where to continue
CONTENT_CHUNK = 1 << 20  # bytes read from the volume per step of a content answer
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def caller_of(request: Request) -> Caller:
    """The caller the guard let in (``meridian.api.guard``)."""
    caller: Caller = request.state.caller
    return caller


class ReferencesRequest(BaseModel):
    hashes: list[str]
    retiring: list[str] = []  # retired contents the caller is about to delete
    hold: float = 0.0  # seconds to hold uploads of those (docs/replication.md)


def parse_range(header: str, size: int) -> tuple[int, int]:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` → [start, end). Raises ValueError when the
    header is malformed or the range is not satisfiable."""
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise ValueError(f"malformed Range header {header!r}")
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise ValueError(f"range {header!r} not satisfiable for {size} bytes")
    return start, end


def build_app(site: Site) -> FastAPI:
    """The API of ``site`` (wrap it in ``meridian.api.guard.Guard`` to serve it)."""
    feed = JournalFeed()
    site.meta.add_listener(feed.committed)
    reader = JournalReader(site.meta, site.config.name, feed)
    hub = EventHub(site.meta)
    assert site.config.api is not None
    caps = StreamCaps(site.config.api.max_streams)
    copies = SnapshotCopies(site.meta, site.config.data / "tmp")

    app = FastAPI(title="Meridian site API", version="1", openapi_url="/api/v1/openapi.json",
                  docs_url="/api/v1/docs", redoc_url=None)

    def shutdown() -> None:
        feed.close()
        hub.close()
        copies.close()

    app.state.shutdown = shutdown
    from meridian.api.admin import add_admin_routes
    from meridian.api.peers import add_peer_routes
    from meridian.console import add_console
    add_admin_routes(app, site)
    add_peer_routes(app, site)
    add_console(app, site, hub)
    digests = DigestCache(site.meta, site.config.meta_path
                          if isinstance(site.meta, SqliteMetaStore) else None, site.config.name)
    from meridian.api.undo import add_undo_routes
    add_undo_routes(app, site)

    @app.get("/api/v1/site", summary="Who this site is (no credentials)")
    async def describe() -> dict[str, Any]:
        info = site.describe()
        info["journal_last_seq"] = site.meta.last_seq()
        return info

    @app.get("/api/v1/digest", summary="This site's namespace digest (equal once in sync)")
    async def namespace_digest() -> dict[str, Any]:
        """The digest ``meridian status`` prints and the journal position it holds, for peers
        and consoles comparing sites: the last one computed (in a worker thread, when the
        journal moved, at most every few seconds: it walks the whole namespace)."""
        digest, seq = await digests.fresh()
        return {"site": site.config.name, "digest": digest, "journal_last_seq": seq}

    @app.get("/api/v1/journal", summary="Journal entries after a sequence number (long poll)")
    async def journal(request: Request, after: Annotated[int, Query(ge=0)] = 0,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                      wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0.0,
                      skip_origin: Annotated[str | None, Query(max_length=64)] = None,
                      stream: bool = False) -> Any:
        """Entries with ``seq > after``, in order, and ``through``: the last position read.
        With ``wait``, an answer with no entries is held up to that many seconds and returned
        as soon as a new entry commits. ``skip_origin`` (the caller's own name) leaves out the
        caller's own changes relayed back to it: it holds them already, and without them a
        busy site is not woken for its own echo; ``through`` still counts them. With
        ``stream=true``: one such answer per line (``application/x-ndjson``) for ``wait``
        seconds, a line as soon as entries commit (``meridian.api.journal``)."""
        caller = caller_of(request)
        if stream:
            hold = caps.hold(caller, True)
            hold.__enter__()
            lines = reader.stream(after, limit, wait, skip_origin,
                                  lambda: hold.__exit__(None, None, None),
                                  request.state.credential_live)
            return StreamingResponse(lines, media_type=JOURNAL_STREAM_MEDIA_TYPE,
                                     headers={"Cache-Control": "no-store"})
        with caps.hold(caller, wait > 0):
            return await reader.poll(after, limit, wait, skip_origin)

    @app.get("/api/v1/snapshot", summary="The whole namespace, for a joining site",
             response_class=FileResponse,
             responses={200: {"description": "a SQLite file (docs/replication.md, joining); "
                                             "header X-Meridian-Journal-Seq: its journal position"}})
    async def snapshot() -> FileResponse:
        """One bulk transfer, not entry by entry: a consistent copy of this site's store.
        The joining site then pulls this site's journal from the position in the header.
        One copy is made at a time; callers that ask while it is sent share it."""
        copy = await copies.acquire()
        return FileResponse(copy.path, media_type="application/vnd.sqlite3",
                            headers={"X-Meridian-Journal-Seq": str(copy.seq),
                                     "X-Meridian-Site": site.config.name},
                            background=BackgroundTask(copies.release, copy))

    @app.post("/api/v1/references", summary="Which of these contents this site still uses")
    async def references(body: ReferencesRequest) -> dict[str, Any]:
        """For garbage collection at a peer: which of ``retiring`` this site acknowledges
        (it holds its uploads of them for ``hold`` seconds, counts them as not in the bucket,
        uploads none and refers to none), then the hashes an inode here refers to, how many
        changes of each origin this site holds, and the sites it knows have left."""
        for hash in [*body.hashes, *body.retiring]:
            try:
                check_hash(hash)
            except BadPath as exc:
                raise HTTPException(400, str(exc)) from None
        acknowledged, granted = site.acknowledge_retirement(body.retiring, body.hold)
        return {"site": site.config.name, "referenced": sorted(site.meta.referenced(body.hashes)),
                "acknowledged": sorted(acknowledged), "hold": granted,
                "positions": site.meta.positions(), "departed": sorted(site.meta.departed())}

    @app.get("/api/v1/replication", summary="This site's links to its peers, and what it holds")
    async def replication() -> dict[str, Any]:
        """Each link's state (connected, error, position in the peer's journal, entries and
        seconds behind) and, per origin site, how many of its changes this site holds."""
        return {"site": site.config.name, "links": site.replication.status(),
                "positions": site.meta.positions(),
                "gc": {"held_back": site.collector.held_back}}

    def local_size(content_hash: str) -> int | None:
        """The size of a content this site knows or holds (None: neither); 400 for a value
        that is not a content hash."""
        try:
            check_hash(content_hash)
        except BadPath as exc:
            raise HTTPException(400, str(exc)) from None
        record = site.meta.content(content_hash)
        return record.size if record is not None else site.volume.size_of(content_hash)

    @app.get("/api/v1/content/{content_hash}", summary="Local content by hash (Range allowed)",
             responses={206: {"description": "the requested range"},
                        404: {"description": "no local bytes for that range"},
                        416: {"description": "range not satisfiable"}})
    async def content(content_hash: str, request: Request) -> Response:
        size = local_size(content_hash)
        if size is None:
            raise HTTPException(404, f"content {content_hash[:12]} is not known here")
        header = request.headers.get("range")
        try:
            start, end = parse_range(header, size) if header else (0, size)
        except ValueError as exc:
            raise HTTPException(416, str(exc), headers={"Content-Range": f"bytes */{size}"})
        site.volume.open_ref(content_hash)  # not evicted while it is being sent
        try:
            first = await asyncio.to_thread(site.volume.read, content_hash, start,
                                            min(CONTENT_CHUNK, end - start))
        except ContentError:
            site.volume.close_ref(content_hash)
            raise HTTPException(404, f"bytes {start}-{end - 1} of {content_hash[:12]} "
                                     "are not on this site's volume") from None

        async def body() -> AsyncIterator[bytes]:
            # a later piece missing (a partial instance) ends the answer short of its
            # Content-Length: the caller sees an error, never wrong bytes
            try:
                yield first
                position = start + len(first)
                while position < end:
                    piece = await asyncio.to_thread(site.volume.read, content_hash, position,
                                                    min(CONTENT_CHUNK, end - position))
                    yield piece
                    position += len(piece)
            finally:
                site.volume.close_ref(content_hash)

        headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start)}
        if header:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return StreamingResponse(body(), 206 if header else 200, headers,
                                 media_type="application/octet-stream")

    @app.get("/api/v1/content/{content_hash}/blocks",
             summary="The hash of each block of a content, as this site vouches for it",
             responses={404: {"description": "this site cannot vouch for that content's "
                                             "blocks (no checked instance or list here)"}})
    async def content_blocks(content_hash: str) -> dict[str, Any]:
        """For a peer fetching blocks of a content before its upload is done (the manifest,
        which lists them too, is written last): each block's BLAKE3 hash, from a complete
        instance here whose whole hash was checked, or from a list this site learnt itself.
        The peer checks every block it fetches against it."""
        size = local_size(content_hash)
        hashes = await site.mover.block_hashes.here(content_hash)
        if size is None or hashes is None:
            raise HTTPException(404, f"site {site.config.name} cannot vouch for the blocks of "
                                     f"{content_hash[:12]}")
        return {"hash": content_hash, "size": size, "block_size": site.bucket.block_size,
                "block_hashes": list(hashes)}

    @app.get("/api/v1/placement", summary="Where each file's content is, under a path")
    async def placement(path: str = "./") -> list[dict[str, Any]]:
        """``path`` is a namespace path (``./a/b``); ``..`` is refused (400)."""
        top = resolve_path(site, path)
        return [vars(p) for p in placements(site.meta, site.volume, top)]

    @app.get("/api/v1/events", summary="Server-sent events of every change, filterable by glob",
             response_class=StreamingResponse)
    async def events(request: Request, glob: str | None = None,
                     after: Annotated[int | None, Query(ge=0)] = None,
                     heartbeat: Annotated[float, Query(gt=0, le=300)] = 15.0) -> StreamingResponse:
        """``text/event-stream``; each event's ``id`` is its journal sequence number. With
        ``after``, entries after that number are replayed first: at most ``EVENTS_PAGE``; when
        more are left, the stream ends with a ``continue`` event whose data is
        ``{"after": N}``: ask again from there. A comment line is sent every ``heartbeat``
        seconds so proxies keep the connection open."""
        pattern = normalise_glob(glob) if glob else None
        hold = caps.hold(caller_of(request), True)
        hold.__enter__()
        queue = hub.subscribe()  # before the replay, so nothing falls between the two
        backlog = site.meta.journal(after, EVENTS_PAGE + 1) if after is not None else []

        async def stream() -> AsyncIterator[bytes]:
            try:
                last = after or 0
                for entry in backlog[:EVENTS_PAGE]:
                    event = hub.event_of(entry)
                    last = entry.seq
                    if matches(event, pattern):
                        yield sse(event)
                if len(backlog) > EVENTS_PAGE:
                    yield (f"event: continue\ndata: {json.dumps({'after': last})}\n\n").encode()
                    return
                yield b": live\n\n"
                while True:
                    try:
                        live = await asyncio.wait_for(queue.get(), heartbeat)
                    except TimeoutError:
                        yield b": heartbeat\n\n"
                        continue
                    if live is None:
                        yield sse(None)
                        return
                    if live["seq"] > last and matches(live, pattern):
                        yield sse(live)
            finally:
                hub.unsubscribe(queue)
                hold.__exit__(None, None, None)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    return app
