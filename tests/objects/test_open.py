"""open_object_store: which backend a bucket URL names, and the ConfigError for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian.errors import ConfigError
from meridian.objects import LocalObjectStore, MemoryObjectStore, open_object_store
from meridian.objects.s3 import S3ObjectStore


def test_file_url_opens_a_local_store_and_creates_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "bucket dir"
    with open_object_store(target.as_uri()) as store:
        assert isinstance(store, LocalObjectStore)
        assert target.is_dir()
        assert store.url == target.as_uri()
        store.put("k", b"v")
    assert (target / "k").read_bytes() == b"v"
    with open_object_store(f"file://localhost{target}") as again:
        assert again.get("k") == b"v"


def test_memory_url_opens_a_fresh_memory_store() -> None:
    first, second = open_object_store("memory://"), open_object_store("memory://")
    assert isinstance(first, MemoryObjectStore) and first.url == "memory://"
    first.put("k", b"v")
    assert second.head("k") is None


@pytest.mark.parametrize(
    ("url", "bucket", "prefix_url"),
    [
        ("s3://my-bucket", "my-bucket", "s3://my-bucket"),
        ("s3://my-bucket/", "my-bucket", "s3://my-bucket"),
        ("s3://my-bucket/studio/meridian/", "my-bucket", "s3://my-bucket/studio/meridian"),
    ],
)
def test_s3_url_opens_an_s3_store(url: str, bucket: str, prefix_url: str) -> None:
    with open_object_store(url, endpoint_url="http://127.0.0.1:9", region="eu-west-1",
                           access_key="AKIDOPEN", secret_key="open-secret") as store:
        assert isinstance(store, S3ObjectStore)
        assert store.bucket == bucket
        assert store.url == prefix_url
        assert store.endpoint == "http://127.0.0.1:9"
        assert "open-secret" not in repr(store) and "AKIDOPEN" not in repr(store)


@pytest.mark.parametrize(
    "url",
    ["", "bucket", "/abs/dir", "relative/dir", "http://example.com/b", "gs://bucket",
     "file://server/share", "file:///", "file:relative", "s3://", "s3:///prefix",
     "s3://bucket/a/../b", "s3://bucket?x=1", "s3://user:pw@bucket", "s3://a_b@c",
     "memory://named", "s3://x"],
)
def test_other_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        open_object_store(url)
    assert raised.value.key == "bucket.url"
    assert "pw" not in str(raised.value)  # credentials in a URL are never echoed


def test_unknown_scheme_message_says_what_is_accepted() -> None:
    with pytest.raises(ConfigError, match=r"gs.*file:///.*s3://bucket.*memory://"):
        open_object_store("gs://bucket")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"endpoint_url": "ftp://host"}, "bucket.endpoint_url"),
        ({"endpoint_url": "http://"}, "bucket.endpoint_url"),
        ({"endpoint_url": "http://AKID:hunter2@host"}, "bucket.endpoint_url"),
        ({"access_key": "AKIDONLY"}, "bucket.secret_key"),
        ({"secret_key": "hunter2"}, "bucket.secret_key"),
    ],
)
def test_bad_s3_settings_are_config_errors(kwargs: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        open_object_store("s3://bucket", **kwargs)
    assert raised.value.key == key
    assert "hunter2" not in str(raised.value)


def test_bad_s3_store_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        S3ObjectStore("bucket", max_attempts=0)
    with pytest.raises(ConfigError, match="list_page_size"):
        S3ObjectStore("bucket", list_page_size=1001)
