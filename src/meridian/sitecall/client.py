"""Calling a site: TLS, the credential, timeouts, retries and errors, once for every caller.

A ``SiteEndpoint`` says which site and how to reach it: its API URL (``https://host:port/api/v1``),
the credential to present (a callable, read at each request, so a rotated credential is used
from the next request on) and the CA its certificate must chain to. ``https`` is required
except to a loopback address (``http://127.0.0.1``, a site configured for plain HTTP on
purpose); the system's CAs are never trusted for calls between sites.

Two clients share the rules: ``AsyncSiteCaller`` (one ``httpx.AsyncClient`` for the services
of a running site: links, content from peers, garbage collection) and ``SiteClient`` (blocking,
for the CLI). Answers become errors in one place (``answer_error``): 401 and 403 are
``CallRefused`` (a ``PeerUnreachable`` whose message says which credential was refused), 400
and 422 ``BadInput``, 404 ``NotFound``, anything else and every network failure
``PeerUnreachable``. Idempotent calls may be retried (``retries``) on network failures and 5xx
answers, with exponential backoff; nothing else is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from meridian.errors import BadInput, NotFound, PeerUnreachable

CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 30.0
RETRY_BASE = 0.25
_IDEMPOTENT = frozenset({"GET", "HEAD"})


class CallRefused(PeerUnreachable):
    """The called site refused the credential presented (401) or its scope (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_site_url(url: str, what: str = "url") -> str:
    """``https://host:port[/api/v1]`` → ``https://host:port/api/v1``; ``http://`` only to a
    loopback address. Raises BadInput naming ``what``."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"{what} {url!r}: give a site's API URL, e.g. https://10.0.0.2:7411/api/v1")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise BadInput(f"{what} {url!r}: plain http:// only to a loopback address; sites talk "
                       "TLS (https://) to each other")
    return url if url.endswith("/api/v1") else url + "/api/v1"


@lru_cache(maxsize=16)
def _context(ca: str, stamp: tuple[int, int]) -> Any:
    from meridian.trust.tls import client_context
    return client_context(Path(ca))


@dataclass(frozen=True)
class SiteEndpoint:
    """One site to call: ``name`` (for messages), ``url`` (``.../api/v1``), ``credential``
    (returns the credential to present; None: none held), ``ca`` (the CA file its certificate
    must chain to; None only for http:// on loopback)."""

    name: str
    url: str
    credential: Callable[[], str | None] = field(repr=False)
    ca: Path | None = None

    def verify(self) -> Any:
        if self.url.startswith("http://"):
            return False  # check_site_url allowed it: loopback only
        if self.ca is None:
            raise BadInput(f"{self.name}: no CA to verify {self.url} against (api.ca)")
        try:
            st = self.ca.stat()
        except OSError as exc:
            raise BadInput(f"{self.name}: cannot read the CA {self.ca}: {exc.strerror}") from None
        return _context(str(self.ca), (st.st_mtime_ns, st.st_ino))  # a new CA file: reloaded

    def headers(self) -> dict[str, str]:
        credential = self.credential()
        if not credential:
            raise CallRefused(f"this site holds no credential for {self.name} (exchange them "
                              f"with `meridian peer add {self.name} URL`)", 401)
        return {"Authorization": f"Bearer {credential}"}


def answer_error(endpoint: SiteEndpoint, response: httpx.Response) -> Exception | None:
    """The error an answer means, or None for a 2xx."""
    if response.status_code < 300:
        return None
    try:
        detail = str(response.json().get("detail", ""))
    except (ValueError, AttributeError):
        detail = response.text[:300]
    where = f"{endpoint.name} ({response.request.method} {response.request.url.path})"
    if response.status_code == 401:
        return CallRefused(f"{where} refused the credential presented: {detail}", 401)
    if response.status_code == 403:
        return CallRefused(f"{where} refused: {detail}", 403)
    if response.status_code in (400, 413, 422):
        return BadInput(f"{where}: {detail or response.status_code}")
    if response.status_code == 404:
        return NotFound(detail or f"{where}: not found")
    return PeerUnreachable(f"{where}: HTTP {response.status_code} {detail}")


def _transport_error(endpoint: SiteEndpoint, exc: Exception) -> PeerUnreachable:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        text = f"its TLS certificate is not trusted here ({text})"
    return PeerUnreachable(f"{endpoint.name} ({endpoint.url}): {text}")


def _timeout(total: float | None) -> httpx.Timeout:
    return httpx.Timeout(total or DEFAULT_TIMEOUT, connect=CONNECT_TIMEOUT)


class AsyncSiteCaller:
    """One pooled async client for all of a site's calls to its peers (one CA per site)."""

    def __init__(self, max_connections: int = 16) -> None:
        self._clients: dict[Any, httpx.AsyncClient] = {}
        self._max = max_connections

    def _client(self, endpoint: SiteEndpoint) -> httpx.AsyncClient:
        verify = endpoint.verify()
        key = id(verify) if verify is not False else False
        client = self._clients.get(key)
        if client is None:
            client = httpx.AsyncClient(verify=verify,
                                       limits=httpx.Limits(max_connections=self._max))
            self._clients[key] = client
        return client

    async def request(self, endpoint: SiteEndpoint, method: str, path: str, *,
                      params: dict[str, Any] | None = None, body: Any = None,
                      headers: dict[str, str] | None = None, timeout: float | None = None,
                      retries: int = 0) -> httpx.Response:
        """The answer (any status: check it with ``answer_error``). Raises PeerUnreachable
        on network failure after ``retries`` more attempts (idempotent methods only)."""
        attempts = 1 + (retries if method in _IDEMPOTENT else 0)
        for attempt in range(attempts):
            try:
                response = await self._client(endpoint).request(
                    method, endpoint.url + path, params=params, json=body,
                    headers={**endpoint.headers(), **(headers or {})}, timeout=_timeout(timeout))
            except httpx.HTTPError as exc:
                if attempt + 1 >= attempts:
                    raise _transport_error(endpoint, exc) from None
            else:
                if response.status_code < 500 or attempt + 1 >= attempts:
                    return response
            await asyncio.sleep(RETRY_BASE * 2 ** attempt)
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def stream(self, endpoint: SiteEndpoint, method: str, path: str, *,
                     params: dict[str, Any] | None = None,
                     timeout: float | None = None) -> AsyncIterator[httpx.Response]:
        """An answer read as it comes (``response.aiter_lines()``); ``timeout`` bounds each
        wait for more of it. An error answer's body is read first, so ``answer_error`` can
        quote it. A network failure, at the start or while reading, raises PeerUnreachable;
        nothing is retried (the caller asks again from where it stands)."""
        try:
            async with self._client(endpoint).stream(
                    method, endpoint.url + path, params=params, headers=endpoint.headers(),
                    timeout=_timeout(timeout)) as response:
                if response.status_code >= 300:
                    await response.aread()
                yield response
        except httpx.HTTPError as exc:
            raise _transport_error(endpoint, exc) from None

    async def call(self, endpoint: SiteEndpoint, method: str, path: str, **kwargs: Any) -> Any:
        """JSON in, JSON out; any error status raised (``answer_error``)."""
        response = await self.request(endpoint, method, path, **kwargs)
        error = answer_error(endpoint, response)
        if error is not None:
            raise error
        return response.json()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


class SiteClient:
    """Blocking calls to one site (the CLI: admin commands, join, drain, leave, watch)."""

    def __init__(self, endpoint: SiteEndpoint) -> None:
        self.endpoint = endpoint
        self._client = httpx.Client(verify=endpoint.verify())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SiteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, timeout: float | None = None,
                retries: int = 0) -> httpx.Response:
        attempts = 1 + (retries if method in _IDEMPOTENT else 0)
        for attempt in range(attempts):
            try:
                response = self._client.request(
                    method, self.endpoint.url + path, params=params, json=body,
                    headers=self.endpoint.headers(), timeout=_timeout(timeout))
            except httpx.HTTPError as exc:
                if attempt + 1 >= attempts:
                    raise _transport_error(self.endpoint, exc) from None
            else:
                if response.status_code < 500 or attempt + 1 >= attempts:
                    return response
            time.sleep(RETRY_BASE * 2 ** attempt)
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, body: Any = None,
             query: dict[str, Any] | None = None, timeout: float | None = None,
             retries: int = 0) -> Any:
        """JSON in, JSON out. Raises BadInput, NotFound, CallRefused, PeerUnreachable."""
        response = self.request(method, path, params=query, body=body, timeout=timeout,
                                retries=retries)
        error = answer_error(self.endpoint, response)
        if error is not None:
            raise error
        try:
            return response.json()
        except ValueError:
            raise PeerUnreachable(f"{self.endpoint.name}: answered {path} with no JSON") from None

    def download(self, path: str, write: Callable[[bytes], None],
                 timeout: float = 600.0) -> dict[str, str]:
        """Stream a GET answer's body into ``write``; returns the answer's headers."""
        try:
            with self._client.stream("GET", self.endpoint.url + path,
                                     headers=self.endpoint.headers(),
                                     timeout=_timeout(timeout)) as response:
                if response.status_code >= 300:
                    response.read()
                    error = answer_error(self.endpoint, response)
                    assert error is not None
                    raise error
                for chunk in response.iter_bytes(1 << 20):
                    write(chunk)
                return dict(response.headers)
        except httpx.HTTPError as exc:
            raise _transport_error(self.endpoint, exc) from None

    def stream_lines(self, path: str, params: dict[str, Any],
                     read_timeout: float = 15.0) -> Iterator[str]:
        """The lines of a streamed answer (server-sent events)."""
        try:
            with self._client.stream("GET", self.endpoint.url + path, params=params,
                                     headers=self.endpoint.headers(),
                                     timeout=httpx.Timeout(30.0, read=read_timeout,
                                                           connect=CONNECT_TIMEOUT)) as response:
                if response.status_code >= 300:
                    response.read()
                    error = answer_error(self.endpoint, response)
                    assert error is not None
                    raise error
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise _transport_error(self.endpoint, exc) from None

