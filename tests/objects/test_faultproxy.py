"""The fault-injecting proxy (tests/faultproxy.py), exercised through boto3 against moto."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from meridian.errors import (
    BucketAccessDenied,
    BucketUnreachable,
    ObjectNotFound,
    ObjectStoreError,
)
from meridian.objects.s3 import S3ObjectStore
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.s3


@pytest.fixture
def proxy(moto_server: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server) as running:
        yield running


@pytest.fixture
def bucket(s3_bucket: tuple[str, str]) -> str:
    return s3_bucket[1]


def store_via(proxy: FaultProxy, bucket: str, **kwargs: Any) -> S3ObjectStore:
    return S3ObjectStore(bucket, "via-proxy", endpoint_url=proxy.url, **kwargs)


def test_plain_boto3_put_and_ranged_get_pass_through(proxy: FaultProxy, bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1")
    try:
        body = bytes(range(256)) * 8192  # 2 MiB: botocore sends Expect: 100-continue
        client.put_object(Bucket=bucket, Key="dir/obj", Body=body)
        assert client.get_object(Bucket=bucket, Key="dir/obj")["Body"].read() == body
        part = client.get_object(Bucket=bucket, Key="dir/obj", Range="bytes=10-19")
        assert part["Body"].read() == body[10:20]
        assert part["ContentRange"] == f"bytes 10-19/{len(body)}"
        head = client.head_object(Bucket=bucket, Key="dir/obj")
        assert head["ContentLength"] == len(body)
        listed = client.list_objects_v2(Bucket=bucket, Prefix="dir/")
        assert [o["Key"] for o in listed["Contents"]] == ["dir/obj"]
    finally:
        client.close()
    assert proxy.requests == 5


def test_store_works_through_the_proxy(proxy: FaultProxy, bucket: str) -> None:
    with store_via(proxy, bucket) as store:
        store.put("a/b", b"0123456789")
        assert store.get("a/b", 2, 5) == b"234"
        assert store.head("a/b") is not None
        with pytest.raises(ObjectNotFound):
            store.get("missing")


def test_botocore_retries_injected_503s(proxy: FaultProxy, bucket: str) -> None:
    with store_via(proxy, bucket, max_attempts=3) as store:
        store.put("k", b"v")
        before = proxy.requests
        proxy.fail_next(2, status=503)
        assert store.get("k") == b"v"
        assert proxy.requests - before == 3


def test_one_attempt_surfaces_bucket_unreachable(proxy: FaultProxy, bucket: str) -> None:
    with store_via(proxy, bucket, max_attempts=1) as store:
        proxy.fail_next(1, status=503)
        with pytest.raises(BucketUnreachable, match="HTTP 503"):
            store.put("k", b"v")
        store.put("k", b"v")  # the fault is used up
        proxy.fail_next(1, status=500)
        with pytest.raises(BucketUnreachable, match=bucket):
            store.get("k")


def test_injected_403_is_access_denied(proxy: FaultProxy, bucket: str) -> None:
    with store_via(proxy, bucket, max_attempts=3) as store:
        proxy.fail_next(1, status=403)
        with pytest.raises(BucketAccessDenied, match="bucket-format.md"):
            store.put("k", b"v")
        proxy.fail_next(1, status=403)
        with pytest.raises(BucketAccessDenied):
            store.head("k")  # HEAD answers have no body: the status alone decides


def test_other_client_errors_stay_in_the_object_store_family(
    proxy: FaultProxy, bucket: str
) -> None:
    with store_via(proxy, bucket) as store:
        proxy.fail_next(1, status=400)
        with pytest.raises(ObjectStoreError, match=r"InjectedFault \(HTTP 400\)") as raised:
            store.put("k", b"v")
        assert type(raised.value) is ObjectStoreError


def test_refused_connections_are_unreachable_quickly(proxy: FaultProxy, bucket: str) -> None:
    with store_via(proxy, bucket, max_attempts=2, connect_timeout=1) as store:
        store.put("k", b"v")  # a pooled keep-alive connection now exists
        proxy.refuse(True)
        started = time.monotonic()
        with pytest.raises(BucketUnreachable, match="could not connect"):
            store.get("k")
        assert time.monotonic() - started < 5
        proxy.refuse(False)
        assert store.get("k") == b"v"


def test_delay_beyond_read_timeout_is_unreachable(proxy: FaultProxy, bucket: str) -> None:
    with store_via(proxy, bucket, max_attempts=1, read_timeout=0.3) as store:
        store.put("k", b"v")
        proxy.delay(1.0)
        with pytest.raises(BucketUnreachable, match="no answer within 0.3 s"):
            store.get("k")
        proxy.delay(0)
        assert store.get("k") == b"v"


def test_list_page_size_is_honoured(proxy: FaultProxy, bucket: str) -> None:
    with store_via(proxy, bucket, list_page_size=10) as store:
        for i in range(25):
            store.put(f"p/{i:02d}", b"x")
        before = proxy.requests
        assert [info.key for info in store.list("p/")] == [f"p/{i:02d}" for i in range(25)]
        assert proxy.requests - before == 3


def _request_in_thread(proxy: FaultProxy, method: str, path: str,
                       body: bytes | None = None) -> tuple[threading.Thread, list[object]]:
    """Send one request through ``proxy`` from a thread; the outcome (the status, or the
    exception) lands in the returned list."""
    outcome: list[object] = []

    def send() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", urlsplit(proxy.url).port, timeout=30)
        try:
            conn.request(method, path, body=body)
            outcome.append(conn.getresponse().status)
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, outcome


def _wait_held(proxy: FaultProxy, count: int) -> None:
    deadline = time.monotonic() + 10
    while proxy.held != count:
        assert time.monotonic() < deadline, f"held {proxy.held}, expected {count}"
        time.sleep(0.01)


def test_hang_reads_requests_but_never_answers_until_dropped(
        proxy: FaultProxy, bucket: str, moto_server: str) -> None:
    direct = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    try:
        proxy.hang(True)
        thread, outcome = _request_in_thread(proxy, "PUT", f"/{bucket}/held", b"x")
        _wait_held(proxy, 1)  # connection accepted, request read ...
        thread.join(0.5)
        assert thread.is_alive() and outcome == []  # ... and no answer
        proxy.hang(False)
        thread.join(5)
        assert not thread.is_alive()
        assert isinstance(outcome[0], (http.client.RemoteDisconnected, ConnectionError))
        assert proxy.held == 0
        with pytest.raises(direct.exceptions.NoSuchKey):  # it never went upstream
            direct.get_object(Bucket=bucket, Key="held")
        with store_via(proxy, bucket) as store:  # requests after the hang are handled again
            store.put("after", b"v")
            assert store.get("after") == b"v"
    finally:
        direct.close()


def test_hang_holds_back_an_answer_already_on_its_way(
        proxy: FaultProxy, bucket: str, moto_server: str) -> None:
    direct = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    try:
        proxy.delay(0.5)
        thread, outcome = _request_in_thread(proxy, "PUT", f"/{bucket}/sent", b"y")
        while proxy.requests == 0:
            time.sleep(0.01)
        time.sleep(0.1)  # past the check before forwarding, into the delay
        proxy.hang(True)  # while the request waits out its delay, before it is forwarded
        _wait_held(proxy, 1)  # upstream answered; the answer is held
        assert direct.get_object(Bucket=bucket, Key="sent")["Body"].read() == b"y"
        assert thread.is_alive() and outcome == []
        proxy.hang(False)
        thread.join(5)
        assert isinstance(outcome[0], (http.client.RemoteDisconnected, ConnectionError))
    finally:
        direct.close()


def test_an_answer_without_a_length_is_passed_on_as_it_comes() -> None:
    """A streamed answer (a site's journal stream) reaches the client piece by piece, not once
    the upstream has finished it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()

    class Streaming(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in (b'{"n":1}\n', b'{"n":2}\n'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                release.wait(10)  # the second line only once the client holds the first
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Streaming)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as proxy:
            parts = urlsplit(proxy.url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            conn.request("GET", "/journal?stream=true")
            answer = conn.getresponse()
            assert answer.status == 200 and answer.getheader("Content-Type") == "application/x-ndjson"
            started = time.monotonic()
            assert answer.readline() == b'{"n":1}\n'
            assert time.monotonic() - started < 5  # not held until the upstream's end
            release.set()
            assert answer.read() == b'{"n":2}\n'
            conn.close()
    finally:
        release.set()
        upstream.shutdown()
        upstream.server_close()
