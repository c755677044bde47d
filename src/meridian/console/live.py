"""What keeps the console live: its event stream (server-sent events carrying HTML lines for
htmx to swap in) and the Activity page's recent changes, transfers and throughput.

The stream follows the site's ``EventHub`` (the same events as ``/api/v1/events``, filtered by
glob) and ends when the site stops. Throughput is sampled from the mover's byte counters each
time the Activity fragment is asked for (every two seconds while the page is open), so nothing
runs while nobody watches.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from jinja2 import Environment

from meridian.api.events import matches, normalise_glob

if TYPE_CHECKING:
    from meridian.api.events import EventHub
    from meridian.meta import JournalEntry
    from meridian.site import Site

HEARTBEAT = 15.0
COALESCE = 0.3  # seconds: changes this close together are one message (one page refresh)
RECENT = 200  # changes the Activity page keeps
SAMPLES = 60  # throughput samples kept (two minutes at one per two seconds)


class StreamCount:
    """How many console event streams are open (capped like the API's, ``[api] max_streams``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0


def event_stream(hub: EventHub, env: Environment, glob: str | None,
                 count: StreamCount) -> StreamingResponse:
    """``text/event-stream`` of the changes matching ``glob``: an ``event: change`` per burst
    of changes (those within ``COALESCE`` seconds of its first), whose data is their rendered
    ``<li>`` lines, newest first (htmx's SSE extension swaps them in, or a listing reloads on
    it: at most one reload per burst, and the last change of a burst is never left out). Raises
    HTTPException 429 when ``count`` streams are open already."""
    if count.open >= count.limit:
        raise HTTPException(429, f"{count.limit} console event streams are open already: "
                                 "close a console tab")
    pattern = normalise_glob(glob) if glob else None
    queue = hub.subscribe()
    line = env.get_template("_event.html")
    count.open += 1

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b": live\n\n"
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                batch, ended = [first], first is None
                deadline = asyncio.get_running_loop().time() + COALESCE
                while not ended:  # what else comes within COALESCE goes in the same message
                    left = deadline - asyncio.get_running_loop().time()
                    if left <= 0:
                        break
                    try:
                        more = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                    batch.append(more)
                    ended = more is None
                shown = [e for e in batch if e is not None and matches(e, pattern)]
                if shown:  # newest first: the feed inserts the message at its top
                    html = "".join(" ".join(line.render(event=e).split())
                                   for e in reversed(shown))
                    yield f"event: change\ndata: {html}\n\n".encode()
                if ended:
                    return
        finally:
            hub.unsubscribe(queue)
            count.open -= 1

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class Activity:
    """Recent changes, for the Activity page's first paint, and the mover's throughput over
    the last samples. Entries are kept as they commit and turned into events (paths
    resolved) only when the page asks: a busy site pays nothing for a console nobody opens."""

    def __init__(self, site: Site, hub: EventHub) -> None:
        self.site = site
        self.hub = hub
        self.entries: deque[JournalEntry] = deque(maxlen=RECENT)
        self.samples: deque[tuple[float, int, int]] = deque(maxlen=SAMPLES)
        site.meta.add_listener(self.entries.extend)

    def recent(self, glob: str | None) -> list[dict[str, Any]]:
        pattern = normalise_glob(glob) if glob else None
        events = (self.hub.event_of(entry) for entry in reversed(self.entries))
        return [e for e in events if matches(e, pattern)][:50]

    def stats(self) -> dict[str, Any]:
        """Jobs running, uploads queued and in flight, and the recent rates (bytes/second)
        as points of a small chart."""
        mover = self.site.mover.stats()
        now = time.monotonic()
        self.samples.append((now, mover.bytes_uploaded, mover.bytes_fetched))
        rates: list[tuple[float, float]] = []
        points = list(self.samples)
        for (t0, up0, down0), (t1, up1, down1) in zip(points, points[1:]):
            span = max(t1 - t0, 1e-3)
            rates.append(((up1 - up0) / span, (down1 - down0) / span))
        jobs = [j.as_dict() for j in self.site.jobs.jobs.values() if j.running]
        return {"jobs": jobs, "queued": mover.queued, "uploading": mover.uploads_in_flight,
                "uploaded": mover.bytes_uploaded, "fetched": mover.bytes_fetched,
                "chart": chart(rates)}


def chart(rates: list[tuple[float, float]], width: int = 360, height: int = 80) -> dict[str, Any]:
    """Two polylines (uploads, fetches) scaled into a ``width`` x ``height`` SVG box."""
    top = max([max(up, down) for up, down in rates] + [1.0])
    step = width / max(SAMPLES - 1, 1)

    def line(which: int) -> str:
        start = width - step * (len(rates) - 1)
        return " ".join(f"{start + n * step:.1f},{height - r[which] / top * (height - 4):.1f}"
                        for n, r in enumerate(rates))

    return {"width": width, "height": height, "up": line(0), "down": line(1), "top": top,
            "last_up": rates[-1][0] if rates else 0.0,
            "last_down": rates[-1][1] if rates else 0.0}
