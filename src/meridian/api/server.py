"""Serving the API on the site's own asyncio loop (uvicorn's ``Server.serve``), over TLS with
the site's key and certificate (``[api] cert``/``key``) unless ``[api] plain_http`` is set, which
the config allows only on a loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from meridian.api.app import build_app
from meridian.api.guard import AuditLog, Guard
from meridian.errors import BadInput
from meridian.trust.credentials import CredentialStore

if TYPE_CHECKING:
    from meridian.site import Site

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the site handles SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:7411"`` → (host, port). Raises BadInput."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise BadInput(f"api.listen {listen!r}: use HOST:PORT, e.g. 127.0.0.1:7411 (port 0: any)")
    return host.strip("[]"), int(port)


class ApiServer:
    """The site's HTTP API. ``start`` binds (so a busy port fails at once), ``stop`` ends it."""

    def __init__(self, site: Site, listen: str | None = None) -> None:
        if site.config.api is None:
            raise BadInput(f"site {site.config.name} has no [api] section")
        self.site = site
        self.host, self.port = split_listen(listen or site.config.api.listen)
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Where this host's CLI reaches the API (a wildcard address: its loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{self.site.config.scheme}://{host}:{self.port}/api/v1"

    async def start(self) -> None:
        # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on
        # connections whose socket says TCP, and h11 writes a response's head and body apart;
        # with Nagle on, the body waits for the client's delayed ACK (40 ms on Linux).
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise BadInput(f"api.listen {self.host}:{self.port}: cannot listen: {exc.strerror}") from None
        self.port = sock.getsockname()[1]
        self._app = build_app(self.site)
        api = self.site.config.api
        assert api is not None
        guarded = Guard(self._app, CredentialStore(self.site.config.secrets),
                        AuditLog(self.site.config.data / "audit.log"), max_body=api.max_body)
        tls: dict[str, str] = {}
        if not api.plain_http:
            files = self.site.config.tls
            for path, key in ((files.cert, "api.cert"), (files.key, "api.key")):
                if not path.exists():
                    sock.close()
                    raise BadInput(f"{key} {path}: missing (made by `meridian init`; or set "
                                   f"[api] cert and key to the studio CA's files)")
            tls = {"ssl_certfile": str(files.cert), "ssl_keyfile": str(files.key)}
        config = uvicorn.Config(guarded, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=2, limit_concurrency=512,
                                **tls)  # type: ignore[arg-type]
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="api")
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        log.info("API of site %s at %s", self.site.config.name, self.url)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._app.state.shutdown()  # answer long polls and end event streams now
            await self._task
            self._server = None
