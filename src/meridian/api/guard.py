"""The gate every request passes before a route runs: credential, scope, body size, audit.

In this order, each refusal answered before the route sees anything (nothing changes):

1. **Credential**: ``Authorization: Bearer <credential>`` must be live in this site's
   ``CredentialStore`` (hashed there): else 401.
2. **Scope**: a peer's or joining site's credential reaches only the routes of
   ``PEER_ROUTES`` / ``JOIN_ROUTES``; a route naming a peer (``peers/{name}/leave``,
   ``peers/{name}/rotate``) only for that peer itself: else 403. The admin credential reaches
   every route.
3. **Body size**: a body larger than ``[api] max_body`` is 413, whether announced
   (``Content-Length``) or sent chunked (counted as it arrives).

The web console (``/console/...``) is the one exception to 1 and 2: a browser holds no
credential, so the console checks its own session cookie and CSRF token
(``meridian.console.sessions``) and its routes are reached only through a session that the
admin credential opened; 3 and the audit apply to it as to every route.

The caller is then in ``request.state.caller`` for the routes, and
``request.state.credential_live()`` says whether its credential still holds (a long answer
asks again). Every request that asks for a
change (any method but GET and HEAD; ``POST references`` is a question, not audited) and every
refusal is one line of the audit log (``DATA/audit.log``, 0600, JSON: when, who — the caller
and its credential's id, never the credential —, from where, what, the answer).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from meridian.trust.credentials import Caller, CredentialStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_PREFIX = "/api/v1"
PEER_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (method, re.compile(f"^{_PREFIX}{pattern}$")) for method, pattern in [
        ("GET", "/site"), ("GET", "/journal"), ("GET", "/content/[^/]+"), ("GET", "/digest"),
        ("GET", "/content/[^/]+/blocks"), ("GET", "/snapshot"),
        ("POST", "/references"), ("GET", "/replication"),
        ("POST", "/peers/(?P<peer>[^/]+)/leave"), ("POST", "/peers/(?P<peer>[^/]+)/rotate"),
    ])
JOIN_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (method, re.compile(f"^{_PREFIX}{pattern}$")) for method, pattern in [
        ("GET", "/site"), ("POST", "/join")])
_READS = frozenset({"GET", "HEAD"})
CONSOLE_PREFIX = "/console"


def allowed(caller: Caller, method: str, path: str) -> bool:
    """Whether ``caller`` may call ``method path`` (the scope table above)."""
    if caller.kind == "admin":
        return True
    routes = PEER_ROUTES if caller.kind == "peer" else JOIN_ROUTES
    for route_method, pattern in routes:
        match = pattern.match(path)
        if match and method == route_method:
            named = match.groupdict().get("peer")
            return named is None or named == caller.name
    return False


class AuditLog:
    """Appends one JSON line per audited request to ``path`` (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, **fields: Any) -> None:
        line = json.dumps({"time": round(time.time(), 3), **fields}, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


async def _answer(send: Send, status: int, detail: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of the whole API (``build_app`` wraps the app with it)."""

    def __init__(self, app: App, credentials: CredentialStore, audit: AuditLog, *,
                 max_body: int) -> None:
        self.app = app
        self.credentials = credentials
        self.audit = audit
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "?"
        what = f"{method} {path}" + (f"?{scope['query_string'].decode()}"
                                     if scope.get("query_string") else "")
        presented = headers.get("authorization", "")
        presented = presented[7:].strip() if presented[:7].lower() == "bearer " else ""
        console = path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
        caller = None if console else self.credentials.check(presented)
        if caller is None and not console:
            self.audit.record(who=None, where=where, what=what, status=401)
            await _answer(send, 401, "missing, wrong or expired credential: send "
                          "'Authorization: Bearer <credential>' issued by the site you call",
                          [(b"www-authenticate", b"Bearer")])
            return
        who = f"{caller.label} ({caller.credential_id})" if caller else "console session"
        if caller is not None and not allowed(caller, method, path):
            self.audit.record(who=who, where=where, what=what, status=403)
            await _answer(send, 403, f"a {caller.kind} credential does not reach {method} "
                                     f"{path}" + (f" (only {caller.name}'s own)"
                                                  if caller.name and "/peers/" in path else ""))
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            self.audit.record(who=who, where=where, what=what, status=413)
            await _answer(send, 413, f"request body of {length} bytes: at most {self.max_body}")
            return
        if caller is not None:
            state = scope.setdefault("state", {})
            state["caller"] = caller
            state["credential_live"] = lambda: self.credentials.check(presented) is not None
        if method not in _READS:  # bodies are small: read here, within the limit, then replay
            body, more = bytearray(), True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                body += message.get("body", b"")
                more = bool(message.get("more_body"))
                if len(body) > self.max_body:
                    self.audit.record(who=who, where=where, what=what, status=413)
                    await _answer(send, 413, f"request body over {self.max_body} bytes")
                    return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()
            receive = replay
        status = 0

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watched_send)
        changes = method not in _READS and path != f"{_PREFIX}/references"
        if changes or status in (401, 403, 413):
            self.audit.record(who=who, where=where, what=what, status=status)
