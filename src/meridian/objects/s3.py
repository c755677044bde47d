"""An object store in an S3 bucket (AWS S3, MinIO, Ceph RGW, moto), under an optional key prefix.

Uses only ListObjectsV2, GetObject (with ``Range``), PutObject, DeleteObject and HeadObject, so
the IAM policy in ``docs/bucket-format.md`` (ListBucket, GetObject, PutObject, DeleteObject;
HeadObject is covered by GetObject) is all it needs. Path-style addressing, so a private or
VPC endpoint URL works without wildcard DNS.

Credentials are the explicit ones when given, else boto3's standard chain (environment,
``~/.aws``, instance or task role). They are handed to boto3 and never kept, shown or logged:
not in :attr:`S3ObjectStore.url`, ``repr`` or any exception message.

botocore's exceptions are translated in one place, :meth:`S3ObjectStore._translated`; callers
see only :mod:`meridian.errors`.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit

import boto3  # type: ignore[import-untyped,unused-ignore]
import botocore.loaders  # type: ignore[import-untyped,unused-ignore]
import botocore.session  # type: ignore[import-untyped,unused-ignore]
from botocore import exceptions as boto_errors  # type: ignore[import-untyped,unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

from meridian.errors import (
    BadPath,
    BucketAccessDenied,
    BucketUnreachable,
    ConfigError,
    ObjectNotFound,
    ObjectStoreError,
)
from meridian.objects.interface import ObjectInfo, ObjectStore, check_key, check_prefix, check_range

_BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")
_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                           "ExpiredToken", "InvalidToken", "AllAccessDisabled"})
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_BUSY_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})
_WRONG_REGION_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed"})
_NETWORK_ERRORS = (
    boto_errors.ConnectionError,  # refused, DNS, connect timeout, TLS, proxy
    boto_errors.HTTPClientError,  # read timeout, connection closed, broken body stream
    boto_errors.IncompleteReadError,
)


class _RangeNotSatisfiable(ObjectStoreError):
    """HTTP 416 to a ranged GET: the range starts at or past the end. Never leaves this module."""


class S3ObjectStore(ObjectStore):
    """:class:`ObjectStore` over ``s3://bucket/prefix``; one boto3 client shared by all threads.

    ``endpoint_url``: a custom (private, VPC, MinIO, moto) endpoint, ``http`` or ``https``.
    ``max_attempts``: total attempts per request, botocore's own retries included (standard
    mode, exponential backoff). ``list_page_size``: keys per ListObjectsV2 page (1..1000).
    Raises :class:`ConfigError` for an unusable bucket name, prefix, endpoint or setting;
    nothing is sent to S3 before the first operation.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_attempts: int = 3,
        max_connections: int = 16,
        list_page_size: int = 1000,
    ) -> None:
        if not _BUCKET_NAME.match(bucket):
            raise ConfigError("bucket.url", f"{bucket!r} is not a valid S3 bucket name")
        prefix = prefix.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except BadPath as exc:
                raise ConfigError("bucket.url", f"key prefix unusable: {exc}") from None
        _check_endpoint(endpoint_url)
        if (access_key is None) != (secret_key is None):
            raise ConfigError(
                "bucket.secret_key", "give both access_key and secret_key, or neither"
            )
        if max_attempts < 1:
            raise ConfigError("bucket.max_attempts", f"{max_attempts} is less than 1")
        if not 1 <= list_page_size <= 1000:
            raise ConfigError("bucket.list_page_size", f"{list_page_size} is not in 1..1000")
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._page_size = list_page_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_connections,
            # Plain Content-Length PUTs without trailing checksums: every S3 implementation
            # understands them (older MinIO and Ceph RGW do not all take aws-chunked trailers).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session(
            botocore_session=_new_botocore_session(),
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region,
        )
        # verify=False only for plain http, where there is no TLS to verify: AWS_CA_BUNDLE in
        # the environment then cannot get in the way. https keeps full verification.
        plain_http = endpoint_url is not None and endpoint_url.lower().startswith("http://")
        self._client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            config=config,
            verify=False if plain_http else None,
        )
        self._endpoint = str(self._client.meta.endpoint_url)

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url!r}, endpoint={self._endpoint!r})"

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def endpoint(self) -> str:
        """The endpoint URL in use (the custom one, or the region's AWS endpoint)."""
        return self._endpoint

    def put(self, key: str, data: bytes) -> None:
        """One PutObject (atomic on S3; idempotent; overwrites)."""
        full = self._prefix + check_key(key)
        with self._translated("put", key):
            self._client.put_object(Bucket=self._bucket, Key=full, Body=bytes(data))

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """One GetObject, with a ``Range`` header unless the whole object is asked for.

        An empty range costs a HeadObject instead (to raise :class:`ObjectNotFound` when
        missing). A range starting past the end (HTTP 416) gives ``b""``.
        """
        check_range(start, end)
        full = self._prefix + check_key(key)
        if end is not None and end <= start:
            if self.head(key) is None:
                raise ObjectNotFound(f"no object {key!r} in {self.url}")
            return b""
        extra: dict[str, str] = {}
        if start > 0 or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with self._translated("get", key):
                response = self._client.get_object(Bucket=self._bucket, Key=full, **extra)
                with contextlib.closing(response["Body"]) as body:
                    return bytes(body.read())
        except _RangeNotSatisfiable:
            return b""

    def head(self, key: str) -> ObjectInfo | None:
        """One HeadObject; ``None`` on 404 (also when the bucket itself is missing: a HEAD
        answer has no body to tell the two apart)."""
        full = self._prefix + check_key(key)
        try:
            with self._translated("head", key):
                response = self._client.head_object(Bucket=self._bucket, Key=full)
        except ObjectNotFound:
            return None
        return ObjectInfo(key, int(response["ContentLength"]))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """ListObjectsV2 pages of ``list_page_size`` keys, fetched as the iterator advances."""
        check_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        request: dict[str, Any] = {
            "Bucket": self._bucket,
            "Prefix": self._prefix + prefix,
            "MaxKeys": self._page_size,
        }
        while True:
            with self._translated("list", prefix):
                page = self._client.list_objects_v2(**request)
            for item in page.get("Contents", []):
                key = str(item["Key"])[len(self._prefix):]
                try:
                    check_key(key)
                except BadPath:
                    continue  # not ours: a console "folder/" marker, a '//' key, ...
                yield ObjectInfo(key, int(item["Size"]))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            request["ContinuationToken"] = token

    def delete(self, key: str) -> None:
        """One DeleteObject (S3 answers 204 for a missing key too: idempotent)."""
        full = self._prefix + check_key(key)
        with self._translated("delete", key):
            self._client.delete_object(Bucket=self._bucket, Key=full)

    def close(self) -> None:
        """Close the client's connection pool. Idempotent."""
        self._client.close()

    @contextlib.contextmanager
    def _translated(self, op: str, key: str) -> Iterator[None]:
        """The one place where botocore exceptions become :mod:`meridian.errors` exceptions.

        Messages name the operation, key, bucket and endpoint, never credentials; the botocore
        exception is not chained (its text may quote the server's answer verbatim).
        """
        try:
            yield
        except boto_errors.ClientError as exc:
            self._raise_client_error(op, key, exc)
        except (boto_errors.NoCredentialsError, boto_errors.PartialCredentialsError):
            raise BucketAccessDenied(
                f"{op} {key!r} in {self.url}: no usable AWS credentials found (config, "
                "environment, ~/.aws or instance role)"
            ) from None
        except _NETWORK_ERRORS as exc:
            raise BucketUnreachable(
                f"{op} {key!r}: cannot reach bucket {self._bucket!r} at {self._endpoint}: "
                f"{self._network_reason(exc)}"
            ) from None
        except boto_errors.BotoCoreError as exc:
            raise ObjectStoreError(
                f"{op} {key!r} in {self.url} at {self._endpoint}: {type(exc).__name__}"
            ) from None

    def _raise_client_error(self, op: str, key: str, exc: boto_errors.ClientError) -> NoReturn:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        where = f"{op} {key!r} in {self.url} at {self._endpoint}"
        answer = f"{code or 'error'} (HTTP {status})"
        if code == "NoSuchBucket":
            raise BucketUnreachable(
                f"bucket {self._bucket!r} does not exist at {self._endpoint} ({op} {key!r})"
            )
        if code == "InvalidRange" or status == 416:
            raise _RangeNotSatisfiable(where)
        if code in _MISSING_CODES or status == 404:
            raise ObjectNotFound(f"no object {key!r} in {self.url}")
        if code in _DENIED_CODES or status in (401, 403):
            raise BucketAccessDenied(
                f"{where}: refused, {answer}; check the credentials and the bucket policy "
                "(docs/bucket-format.md lists the permissions needed)"
            )
        if code in _WRONG_REGION_CODES or status == 301:
            raise BucketUnreachable(f"{where}: {answer}; the bucket is in another region?")
        if status >= 500 or code in _BUSY_CODES:
            raise BucketUnreachable(f"{where}: {answer} after retries")
        raise ObjectStoreError(f"{where}: {answer}")

    def _network_reason(self, exc: Exception) -> str:
        reasons = [
            (boto_errors.ConnectTimeoutError, f"no connection within {self._connect_timeout:g} s"),
            (boto_errors.ReadTimeoutError, f"no answer within {self._read_timeout:g} s"),
            (boto_errors.EndpointConnectionError, "could not connect (refused, DNS or network)"),
            (boto_errors.ConnectionClosedError, "the connection was closed by the other end"),
        ]
        return next((text for kind, text in reasons if isinstance(exc, kind)), type(exc).__name__)


_loader_lock = threading.Lock()
_loader: Any = None


def _new_botocore_session() -> Any:
    """A fresh botocore session (its own credential chain) sharing one model loader.

    Parsing botocore's service models is most of the cost of a new client (~60 ms); the
    loader caches them, so every store after the first is built in a few milliseconds.
    """
    global _loader
    with _loader_lock:
        if _loader is None:
            _loader = botocore.loaders.create_loader()
        loader = _loader
    session = botocore.session.Session()
    session.register_component("data_loader", loader)
    return session


def _check_endpoint(endpoint_url: str | None) -> None:
    if endpoint_url is None:
        return
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("bucket.endpoint_url", "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "bucket.endpoint_url", "must not hold credentials; use access_key/secret_key"
        )
