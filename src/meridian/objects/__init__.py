"""Object stores: where content blocks live between sites (one interface, several backends).

    ObjectStore (interface.py)       put / get (ranges) / head / list / delete / close
    ├── LocalObjectStore (local.py)  file:///dir, the embedded default
    ├── S3ObjectStore (s3.py)        s3://bucket[/prefix], any S3 implementation
    └── MemoryObjectStore            memory://, for tests
    ContentBucket (layout.py)        content as fixed-size blocks + a manifest, versioned format

:func:`open_object_store` picks the backend from the bucket URL of a site's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from meridian.errors import ConfigError
from meridian.objects.interface import ObjectInfo, ObjectStore, check_key
from meridian.objects.layout import (
    DEFAULT_BLOCK_SIZE,
    FORMAT_VERSION,
    BucketFormat,
    ContentBucket,
    ContentManifest,
)
from meridian.objects.local import LocalObjectStore
from meridian.objects.memory import MemoryObjectStore

if TYPE_CHECKING:
    from meridian.objects.s3 import S3ObjectStore

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "FORMAT_VERSION",
    "BucketFormat",
    "ContentBucket",
    "ContentManifest",
    "LocalObjectStore",
    "MemoryObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "S3ObjectStore",
    "check_key",
    "open_object_store",
]

_ACCEPTED = "accepted: file:///absolute/dir, s3://bucket, s3://bucket/key/prefix, memory://"


def open_object_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> ObjectStore:
    """Open the store named by a bucket URL (config key ``bucket.url``).

    ``file:///abs/dir`` → :class:`LocalObjectStore` (the directory is created if missing);
    ``s3://bucket[/prefix]`` → :class:`S3ObjectStore` (the other arguments apply to it only;
    no request is sent yet); ``memory://`` → a new, empty :class:`MemoryObjectStore`.
    Raises :class:`ConfigError` naming ``bucket.url`` for any other form.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError("bucket.url", f"not a URL; {_ACCEPTED}") from None
    if "@" in parts.netloc:  # never echo what may be credentials
        shown = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
        raise ConfigError("bucket.url", f"{shown!r}: credentials do not belong in the URL")
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ConfigError("bucket.url", f"{url!r}: a file URL is file:///absolute/dir")
        path = unquote(parts.path)
        if not path.startswith("/") or path.rstrip("/") == "":
            raise ConfigError("bucket.url", f"{url!r}: needs an absolute directory, not /")
        return LocalObjectStore(Path(path), create=True)
    if scheme == "s3":
        if not parts.netloc or parts.query or parts.fragment:
            raise ConfigError("bucket.url", f"{url!r}: an S3 URL is s3://bucket[/key/prefix]")
        from meridian.objects.s3 import S3ObjectStore  # boto3 is imported only when used

        return S3ObjectStore(
            parts.netloc,
            unquote(parts.path).strip("/"),
            endpoint_url=endpoint_url,
            region=region,
            access_key=access_key,
            secret_key=secret_key,
        )
    if scheme == "memory":
        if parts.netloc or parts.path.strip("/"):
            raise ConfigError("bucket.url", f"{url!r}: a memory URL is just memory://")
        return MemoryObjectStore()
    raise ConfigError("bucket.url", f"{url!r}: unknown scheme {parts.scheme!r}; {_ACCEPTED}")


def __getattr__(name: str) -> object:
    """Import :class:`S3ObjectStore` (and boto3) lazily, on first use of the name."""
    if name == "S3ObjectStore":
        from meridian.objects.s3 import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
