"""A fault-injecting HTTP reverse proxy for tests: put it between a client and a server.

    with FaultProxy("http://127.0.0.1:5000") as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, ...)
        proxy.fail_next(2, status=503)   # the next 2 requests get a 503, not forwarded
        proxy.delay(0.5)                 # every request waits 0.5 s before it is handled
        proxy.refuse(True)               # connection refused (listening socket closed)
        proxy.refuse(False)              # listening again, on the same port
        proxy.hang(True)                 # requests are read but never answered (a hung peer)
        proxy.hang(False)                # the held connections are dropped, unanswered
        proxy.requests                   # how many requests arrived so far

Requests are forwarded faithfully — method, path and query, headers (``Host`` as the client
sent it, ``Range``), body — and so are the answers (status, headers, body), so AWS signatures
stay valid. An answer without a length (a stream) is passed on as it comes. Only hop-by-hop headers are dropped. Standard library only; every method of the
control API is thread-safe.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
     "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "expect"}
)
_ERROR_CODES = {403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError",
                502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}


class FaultProxy:
    """A reverse proxy on 127.0.0.1 (a free port unless ``port`` is given) to ``upstream``."""

    def __init__(self, upstream: str, *, port: int = 0, upstream_timeout: float = 60) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self._upstream = (parts.hostname, parts.port or 80)
        self._upstream_timeout = upstream_timeout
        self._port = port
        self._lock = threading.Lock()
        self._fail_count = 0
        self._fail_status = 503
        self._delay = 0.0
        self._refusing = False
        self._requests = 0
        self._hang_gate: threading.Event | None = None  # set when the hang that holds ends
        self._held = 0
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Start listening (idempotent); returns self."""
        with self._lock:
            if self._server is None and not self._refusing:
                self._listen()
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections. Idempotent."""
        with self._lock:
            self._close_listener()
            self._drop_connections()
            self._end_hang()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the port stays the same across refuse/reopen)."""
        return f"http://127.0.0.1:{self._port}"

    # -- control API -------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` requests with ``status`` (an S3-style XML error), unforwarded."""
        with self._lock:
            self._fail_count = n
            self._fail_status = status

    def delay(self, seconds: float) -> None:
        """Wait ``seconds`` before handling each request from now on (0 turns it off)."""
        with self._lock:
            self._delay = seconds

    def refuse(self, refusing: bool) -> None:
        """True: close the listening socket and open connections (clients get refused).
        False: listen again on the same port."""
        with self._lock:
            self._refusing = refusing
            if refusing:
                self._close_listener()
                self._drop_connections()
            elif self._server is None:
                self._listen()

    def hang(self, hanging: bool) -> None:
        """True: keep accepting connections and reading requests, but answer none (neither
        forwarded nor failed), and hold back answers still on their way. False: the held
        connections are dropped without an answer; later requests are handled again."""
        with self._lock:
            if hanging and self._hang_gate is None:
                self._hang_gate = threading.Event()
            elif not hanging:
                self._end_hang()

    @property
    def held(self) -> int:
        """How many requests a hang holds unanswered right now."""
        with self._lock:
            return self._held

    @property
    def requests(self) -> int:
        """How many requests have arrived (failed, delayed and forwarded ones alike)."""
        with self._lock:
            return self._requests

    # -- internals ---------------------------------------------------------------------------

    def _listen(self) -> None:
        server = _ProxyServer(("127.0.0.1", self._port), _ProxyHandler)
        server.proxy = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = None
            self._thread = None

    def _drop_connections(self) -> None:
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._connections.clear()

    def _end_hang(self) -> None:
        if self._hang_gate is not None:
            self._hang_gate.set()
            self._hang_gate = None

    def _hold_if_hung(self) -> bool:
        """Block while a hang is on; True if this request was held (drop it unanswered)."""
        with self._lock:
            gate = self._hang_gate
            if gate is None:
                return False
            self._held += 1
        gate.wait()
        with self._lock:
            self._held -= 1
        return True

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _next_action(self) -> tuple[bool, int | None, float]:
        """Count a request; return (refuse it, status to fail it with, delay before it)."""
        with self._lock:
            self._requests += 1
            status = None
            if self._fail_count > 0:
                self._fail_count -= 1
                status = self._fail_status
            return self._refusing, status, self._delay


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up (timeouts in tests) are expected: stay quiet."""


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        # The head and the body of an answer are written apart; with Nagle on, the body would
        # wait for the client's delayed ACK (40 ms per request on a kept-alive connection).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.proxy._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """No access log on stderr."""

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _handle(self) -> None:
        try:
            body = self._read_body()
            refusing, status, delay = self.server.proxy._next_action()
            if refusing:
                self.close_connection = True
                return
            if self.server.proxy._hold_if_hung():
                self._drop()
                return
            if delay:
                time.sleep(delay)
            if status is not None:
                self._answer_error(status)
            else:
                self._forward(body)
        except OSError:
            self.close_connection = True  # the client went away (timeout) or we were refused

    def _drop(self) -> None:
        """Close the connection without a word (the client sees it end, no answer)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _relay_stream(self, response: http.client.HTTPResponse) -> None:
        """An answer without a length (a journal stream, server-sent events): passed on piece
        by piece as upstream sends it, chunked, as a plain proxy does; a hang that begins
        meanwhile holds the rest back and then drops the connection."""
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        while True:
            piece = response.read1(1 << 16)
            if self.server.proxy._hold_if_hung():
                self._drop()
                return
            if not piece:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _answer_error(self, status: int) -> None:
        code = _ERROR_CODES.get(status, "InjectedFault")
        payload = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>injected by FaultProxy</Message></Error>"
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _forward(self, body: bytes) -> None:
        host, port = self.server.proxy._upstream
        upstream = http.client.HTTPConnection(
            host, port, timeout=self.server.proxy._upstream_timeout
        )
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            chunked = False
            for name, value in self.headers.items():
                if name.lower() == "transfer-encoding":
                    chunked = True
                elif name.lower() not in _HOP_BY_HOP:
                    upstream.putheader(name, value)
            if chunked:  # the body was de-chunked on the way in: send it with a length
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            if response.getheader("Content-Length") is None and self.command != "HEAD":
                self._relay_stream(response)
                return
            payload = response.read()
            if self.server.proxy._hold_if_hung():  # a hang began while upstream answered
                self._drop()
                return
            self.send_response_only(response.status, response.reason)
            has_length = False
            for name, value in response.getheaders():
                if name.lower() in _HOP_BY_HOP:
                    continue
                has_length = has_length or name.lower() == "content-length"
                self.send_header(name, value)
            if not has_length:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (http.client.HTTPException, ConnectionRefusedError):
            self._answer_error(502)
        finally:
            upstream.close()
