"""The console's HTTP routes, on the site's own API app (``add_console``): pages under
``/console/...`` and the fragments they refresh, plus the admin route that issues sign-in
tokens (``POST /api/v1/console/sign-in``, admin scope through the guard).

Every console route needs a session (``meridian.console.sessions``): without one a page is a
401 sign-in notice and nothing of the site is shown; every request that changes something
(POST, DELETE) also needs the session's CSRF token in ``X-CSRF-Token`` (403 without). The
pages are rendered on the server (Jinja2, autoescaped) and kept live by htmx: fragments swap
in on events of the site's event stream (``/console/stream``, server-sent events) or, for state
that is not a journal change (link lag, job progress), by polling a small fragment.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from meridian.console.flame_view import DEFAULT_ROOT, ClipArrivals, clips_under, version_frames
from meridian.console.live import Activity, StreamCount, event_stream
from meridian.console.sessions import COOKIE, CSRF_HEADER, ConsoleSessions, Session, csrf_ok
from meridian.console.views import (Cached, file_view, folder_page, normalise,
                                    rule_preview, sites_view)
from meridian.errors import BadInput, NotFound
from meridian.meta.sqlite import SqliteMetaStore
from meridian.site.inspect import DigestCache

if TYPE_CHECKING:
    from meridian.api.events import EventHub
    from meridian.site import Site

STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


class NoSession(Exception):
    """The request carries no live console session."""


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("meridian.console", "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["size"] = human_size
    env.filters["element_id"] = element_id
    return env


def element_id(text: str) -> str:
    """A stable HTML id for a path (any characters): what htmx preserves across refreshes."""
    return "e" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def human_size(value: int | None) -> str:
    if value is None:
        return "no limit"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


async def form_of(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (what htmx sends) as lists of values."""
    return parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)


def add_console(app: FastAPI, site: Site, hub: EventHub) -> None:
    """Mount the console on ``app`` (the site's API app): its pages, fragments, static files,
    event stream and the admin route that issues one-time sign-in tokens."""
    sessions = ConsoleSessions()
    env = _templates()
    cache = Cached()
    digests = DigestCache(site.meta, site.config.meta_path
                          if isinstance(site.meta, SqliteMetaStore) else None, site.config.name)
    arrivals = ClipArrivals()
    site.meta.add_listener(arrivals.committed)
    activity = Activity(site, hub)
    secure = site.config.api is not None and not site.config.api.plain_http
    streams = StreamCount(site.config.api.max_streams if site.config.api else 16)

    def page(name: str, request: Request, session: Session | None, status: int = 200,
             **values: Any) -> HTMLResponse:
        html = env.get_template(name).render(site=site.config.name, session=session,
                                             request=request, **values)
        return HTMLResponse(html, status, headers=SECURITY_HEADERS)

    def need(request: Request, changes: bool = False) -> Session:
        session = sessions.find(request.cookies.get(COOKIE))
        if session is None:
            raise NoSession()
        if changes and not csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, "missing or wrong CSRF token (X-CSRF-Token)")
        return session

    async def refused(request: Request, exc: Exception) -> Response:
        return page("signin.html", request, None, 401, problem="no console session")

    app.add_exception_handler(NoSession, refused)

    @app.post("/api/v1/console/sign-in", summary="A one-time sign-in URL for the web console")
    async def issue() -> dict[str, Any]:
        """Admin scope. The token is good once, for ten minutes; ``path`` is the URL's path."""
        token = sessions.issue_token()
        return {"token": token, "path": f"/console/signin?token={token}"}

    @app.get("/console/signin", include_in_schema=False)
    async def signin(request: Request, token: str = "") -> Response:
        opened = sessions.open(token)
        if opened is None:
            return page("signin.html", request, None, 401,
                        problem="this sign-in URL is unknown, spent or expired")
        session_id, _ = opened
        answer = RedirectResponse("/console/sites", 303, headers=SECURITY_HEADERS)
        answer.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", secure=secure,
                          path="/console")
        return answer

    @app.post("/console/signout", include_in_schema=False)
    async def signout(request: Request) -> Response:
        need(request, changes=True)
        sessions.close(request.cookies.get(COOKIE))
        answer = HTMLResponse("signed out", headers={"HX-Redirect": "/console/sites"})
        answer.delete_cookie(COOKIE, path="/console")
        return answer

    @app.get("/console", include_in_schema=False)
    @app.get("/console/", include_in_schema=False)
    async def home(request: Request) -> Response:
        need(request)
        return RedirectResponse("/console/sites", 303)

    @app.get("/console/static/{name:path}", include_in_schema=False)
    async def static(request: Request, name: str) -> Response:
        need(request)
        parts = name.split("/")
        if any(p in ("", ".", "..") for p in parts) or len(parts) > 2:
            raise HTTPException(404, "no such file")
        kind = STATIC_TYPES.get(name[name.rfind("."):])
        target = resources.files("meridian.console").joinpath("static", *parts)
        if kind is None or not target.is_file():
            raise HTTPException(404, "no such file")
        return Response(target.read_bytes(), media_type=kind,
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/console/stream", include_in_schema=False)
    async def stream(request: Request, glob: str = "") -> Response:
        """Server-sent events: each change as an HTML line (event ``change``)."""
        need(request)
        return event_stream(hub, env, glob or None, streams)

    # -- Sites ---------------------------------------------------------------------------------
    @app.get("/console/sites", include_in_schema=False)
    async def sites(request: Request) -> Response:
        session = need(request)
        return page("sites.html", request, session, tab="sites",
                    view=await sites_view(site, cache, digests))

    @app.get("/console/fragments/sites", include_in_schema=False)
    async def sites_fragment(request: Request) -> Response:
        session = need(request)
        return page("_sites.html", request, session, view=await sites_view(site, cache, digests))

    # -- Files ---------------------------------------------------------------------------------
    def listing(path: str, page_number: int) -> dict[str, Any]:
        try:
            return folder_page(site, path, page_number)
        except NotFound:
            raise HTTPException(404, f"{path}: no such folder") from None
        except BadInput as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/console/files", include_in_schema=False)
    async def files(request: Request, path: str = "/", page_number: int = 1) -> Response:
        session = need(request)
        folder = listing(path, page_number)
        return page("files.html", request, session, tab="files", folder=folder,
                    glob=folder["path"].rstrip("/") + "/*")

    @app.get("/console/fragments/files", include_in_schema=False)
    async def files_fragment(request: Request, path: str = "/", page_number: int = 1) -> Response:
        session = need(request)
        return page("_files.html", request, session, folder=listing(path, page_number))

    @app.get("/console/fragments/file", include_in_schema=False)
    async def file_fragment(request: Request, path: str) -> Response:
        session = need(request)
        try:
            view = await file_view(site, path)
        except (NotFound, BadInput) as exc:
            raise HTTPException(404, str(exc)) from None
        return page("_file.html", request, session, file=view)

    @app.post("/console/jobs", include_in_schema=False)
    async def start_job(request: Request) -> Response:
        session = need(request, changes=True)
        form = await form_of(request)
        kind = (form.get("kind") or [""])[0]
        paths = ["." + normalise(p) for p in form.get("paths", [])]
        try:
            job = site.jobs.start(kind, paths)
        except BadInput as exc:
            return page("_job.html", request, session, job=None, problem=str(exc))
        return page("_job.html", request, session, job=job.as_dict())

    @app.get("/console/fragments/jobs/{job_id}", include_in_schema=False)
    async def job_fragment(request: Request, job_id: str) -> Response:
        session = need(request)
        try:
            job = site.jobs.get(job_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        answer = page("_job.html", request, session, job=job.as_dict())
        if not job.running:  # the listing shows where the files are now
            answer.headers["HX-Trigger"] = "job-finished"
        return answer

    # -- Objectives ----------------------------------------------------------------------------
    def objectives() -> list[dict[str, Any]]:
        return [{"id": r.id, "text": r.text, "position": n + 1}
                for n, r in enumerate(site.meta.objectives())]

    def changed() -> None:
        site.orchestrator.load_rules()
        site.orchestrator.start_sweep()

    @app.get("/console/objectives", include_in_schema=False)
    async def objectives_page(request: Request) -> Response:
        session = need(request)
        return page("objectives.html", request, session, tab="objectives",
                    rules=objectives(), problem="")

    @app.post("/console/fragments/rule-check", include_in_schema=False)
    async def rule_check(request: Request) -> Response:
        session = need(request, changes=True)  # a POST like any other: the token is checked
        text = (await form_of(request)).get("rule", [""])[0].replace("\r\n", "\n")
        preview = rule_preview(site, text)  # on the loop: the store is not shared with threads
        return page("_rule_check.html", request, session, preview=preview)

    @app.post("/console/objectives", include_in_schema=False)
    async def add_objective(request: Request) -> Response:
        session = need(request, changes=True)
        text = (await form_of(request)).get("rule", [""])[0].replace("\r\n", "\n").strip()
        problem = ""
        try:
            if not text:
                raise BadInput("no rule given")
            from meridian.objectives.language import parse
            parse(text, site.orchestrator.groups)
            site.meta.add_objectives([text])
            changed()
        except BadInput as exc:
            problem = f"not added: {exc}"
        return page("_objectives.html", request, session, rules=objectives(), problem=problem)

    @app.post("/console/objectives/{objective_id}/remove", include_in_schema=False)
    async def remove_objective(request: Request, objective_id: str) -> Response:
        session = need(request, changes=True)
        try:
            site.meta.remove_objective(objective_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        changed()
        return page("_objectives.html", request, session, rules=objectives(), problem="")

    @app.post("/console/objectives/{objective_id}/up", include_in_schema=False)
    async def move_up(request: Request, objective_id: str) -> Response:
        session = need(request, changes=True)
        ids = [r["id"] for r in objectives()]
        if objective_id not in ids:
            raise HTTPException(404, f"no objective {objective_id!r}")
        at = ids.index(objective_id)
        if at > 0:
            site.meta.move_objective(objective_id, ids[at - 1])
            changed()
        return page("_objectives.html", request, session, rules=objectives(), problem="")

    # -- Flame ---------------------------------------------------------------------------------
    @app.get("/console/flame", include_in_schema=False)
    async def flame(request: Request, root: str = DEFAULT_ROOT) -> Response:
        session = need(request)
        root = normalise(root)
        return page("flame.html", request, session, tab="flame", root=root,
                    clips=await clips_under(site, root, arrivals), glob=root.rstrip("/") + "/*")

    @app.get("/console/fragments/flame", include_in_schema=False)
    async def flame_fragment(request: Request, root: str = DEFAULT_ROOT) -> Response:
        session = need(request)
        root = normalise(root)
        return page("_flame.html", request, session, root=root,
                    clips=await clips_under(site, root, arrivals))

    @app.post("/console/flame/cache", include_in_schema=False)
    async def flame_cache(request: Request) -> Response:
        session = need(request, changes=True)
        form = await form_of(request)
        clip, version = form.get("clip", [""])[0], form.get("version", [""])[0]
        root = normalise(form.get("root", [DEFAULT_ROOT])[0])
        try:
            frames = version_frames(site, normalise(clip), version, root)
            job = site.jobs.start("cache", frames)
        except (BadInput, NotFound) as exc:
            return page("_job.html", request, session, job=None, problem=str(exc))
        return page("_job.html", request, session, job=job.as_dict())

    # -- Activity ------------------------------------------------------------------------------
    @app.get("/console/activity", include_in_schema=False)
    async def activity_page(request: Request, glob: str = "") -> Response:
        session = need(request)
        return page("activity.html", request, session, tab="activity", glob=glob,
                    recent=activity.recent(glob or None), stats=activity.stats())

    @app.get("/console/fragments/activity", include_in_schema=False)
    async def activity_fragment(request: Request) -> Response:
        session = need(request)
        return page("_activity_stats.html", request, session, stats=activity.stats())

