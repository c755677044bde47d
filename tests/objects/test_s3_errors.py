"""S3ObjectStore turns botocore failures into meridian.errors, and never shows credentials."""

from __future__ import annotations

import socket
import time
import traceback

import pytest

from meridian.errors import BucketAccessDenied, BucketUnreachable, ObjectNotFound
from meridian.objects.s3 import S3ObjectStore

pytestmark = pytest.mark.s3

ACCESS_KEY = "AKIAMERIDIANTESTKEY1"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETVALUE"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in (ACCESS_KEY, SECRET_KEY, TOKEN):
            assert secret not in text


def full_text(exc: BaseException) -> str:
    """The exception as a traceback would print it, chained causes included."""
    return "".join(traceback.format_exception(exc))


def test_closed_port_is_unreachable_within_seconds() -> None:
    port = closed_port()
    with S3ObjectStore("some-bucket", endpoint_url=f"http://127.0.0.1:{port}",
                       access_key=ACCESS_KEY, secret_key=SECRET_KEY, session_token=TOKEN,
                       connect_timeout=1, max_attempts=2) as store:
        for call in (lambda: store.get("k"), lambda: store.put("k", b"v"),
                     lambda: store.head("k"), lambda: list(store.list()),
                     lambda: store.delete("k")):
            started = time.monotonic()
            with pytest.raises(BucketUnreachable) as raised:
                call()
            assert time.monotonic() - started < 5
            message = str(raised.value)
            assert f"127.0.0.1:{port}" in message and "some-bucket" in message
            assert_no_secrets(message, full_text(raised.value))
        assert_no_secrets(store.url, repr(store))


def test_no_credentials_anywhere_is_access_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3ObjectStore("some-bucket", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    with store, pytest.raises(BucketAccessDenied, match="no usable AWS credentials"):
        store.get("k")


def test_missing_bucket_is_unreachable_and_named(moto_server: str) -> None:
    with S3ObjectStore("no-such-bucket-here", endpoint_url=moto_server,
                       access_key=ACCESS_KEY, secret_key=SECRET_KEY) as store:
        for call in (lambda: store.get("k"), lambda: store.put("k", b"v"),
                     lambda: list(store.list()), lambda: store.delete("k")):
            with pytest.raises(BucketUnreachable, match="bucket 'no-such-bucket-here' does not"):
                call()
        with pytest.raises(BucketUnreachable) as raised:
            store.get("k", 0, 10)
        assert raised.value.__cause__ is None  # botocore's text is not chained along
        assert_no_secrets(str(raised.value), full_text(raised.value), store.url, repr(store))


def test_explicit_credentials_work_and_stay_hidden(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    with S3ObjectStore(bucket, "p", endpoint_url=endpoint, access_key=ACCESS_KEY,
                       secret_key=SECRET_KEY, session_token=TOKEN) as store:
        store.put("k", b"v")
        assert store.get("k") == b"v"
        with pytest.raises(ObjectNotFound) as raised:
            store.get("missing")
        assert_no_secrets(store.url, repr(store), str(raised.value), full_text(raised.value))
        assert_no_secrets(*(repr(v) for v in vars(store).values() if not callable(v)))


def test_foreign_keys_are_skipped_when_listing(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    with S3ObjectStore(bucket, endpoint_url=endpoint) as store:
        store._client.put_object(Bucket=bucket, Key="folder/", Body=b"")  # console marker
        store._client.put_object(Bucket=bucket, Key="a//b", Body=b"")
        store.put("folder/real", b"1")
        assert [info.key for info in store.list()] == ["folder/real"]
