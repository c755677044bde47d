"""ContentBucket: the versioned block + manifest layout, against the memory and local stores."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3
import pytest

from meridian.errors import BadPath, BucketFormatError, ObjectNotFound
from meridian.objects import (
    DEFAULT_BLOCK_SIZE,
    FORMAT_VERSION,
    BucketFormat,
    ContentBucket,
    ContentManifest,
    LocalObjectStore,
    MemoryObjectStore,
    ObjectStore,
)
from meridian.objects.layout import FORMAT_KEY

B = 16  # a tiny block size keeps the tests fast and the edge cases visible


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    opened: ObjectStore
    opened = MemoryObjectStore() if request.param == "memory" else LocalObjectStore(tmp_path)
    with opened:
        yield opened


@pytest.fixture
def bucket(store: ObjectStore) -> ContentBucket:
    content = ContentBucket(store)
    content.initialize(block_size=B)
    return content


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def block_hashes(data: bytes) -> list[str]:
    return [h(data[i:i + B]) for i in range(0, len(data), B)]


def upload(bucket: ContentBucket, data: bytes) -> str:
    """What the mover does: every block, then the manifest (none for small content)."""
    digest = h(data)
    for i in range(bucket.block_count(len(data))):
        bucket.put_block(digest, i, data[i * B:(i + 1) * B])
    bucket.finish(digest, len(data), block_hashes(data))
    return digest


def test_constants() -> None:
    assert FORMAT_VERSION == 3
    assert DEFAULT_BLOCK_SIZE == 4 * 1024 * 1024


def test_initialize_writes_the_marker_and_is_idempotent(store: ObjectStore) -> None:
    first = ContentBucket(store).initialize()
    assert first == BucketFormat(version=3, block_size=DEFAULT_BLOCK_SIZE, hash="blake3")
    marker = json.loads(store.get(FORMAT_KEY))
    assert marker == {"format": "meridian-bucket", "version": 3, "block_size": 4194304,
                      "hash": "blake3"}
    raw = store.get(FORMAT_KEY)
    again = ContentBucket(store).initialize(block_size=B)  # the existing block size wins
    assert again == first
    assert store.get(FORMAT_KEY) == raw
    assert ContentBucket(store).check_format() == first
    assert ContentBucket(store).block_size == DEFAULT_BLOCK_SIZE


def test_initialize_refuses_a_silly_block_size(store: ObjectStore) -> None:
    for size in (0, -1, 5 * 1024**3 + 1):
        with pytest.raises(ValueError):
            ContentBucket(store).initialize(block_size=size)
    assert store.head(FORMAT_KEY) is None


def test_missing_marker_is_refused(store: ObjectStore) -> None:
    content = ContentBucket(store)
    with pytest.raises(BucketFormatError, match="no format marker.*version 1, 2, 3"):
        content.check_format()
    with pytest.raises(BucketFormatError):
        _ = content.block_size
    with pytest.raises(BucketFormatError):
        content.put_block("a" * 64, 0, b"x")


@pytest.mark.parametrize(
    ("marker", "found"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"format": "juicefs", "version": 1, "block_size": 16, "hash": "blake3"}',
         "format 'juicefs'"),
        (b'{"format": "meridian-bucket", "version": 4, "block_size": 16, "hash": "blake3"}',
         "version 4"),
        (b'{"format": "meridian-bucket", "version": "1", "block_size": 16, "hash": "blake3"}',
         "version '1'"),
        (b'{"format": "meridian-bucket", "block_size": 16, "hash": "blake3"}', "version None"),
        (b'{"format": "meridian-bucket", "version": 1, "block_size": 0, "hash": "blake3"}',
         "block_size 0"),
        (b'{"format": "meridian-bucket", "version": 1, "block_size": 16, "hash": "md5"}',
         "hash 'md5'"),
    ],
)
def test_unknown_or_garbage_marker_is_refused(
    store: ObjectStore, marker: bytes, found: str
) -> None:
    store.put(FORMAT_KEY, marker)
    for attempt in (ContentBucket(store).check_format, ContentBucket(store).initialize):
        with pytest.raises(BucketFormatError) as raised:
            attempt()
        message = str(raised.value)
        assert found in message  # what was found
        assert "understands format 'meridian-bucket' version 1, 2, 3" in message  # we know
    assert store.get(FORMAT_KEY) == marker  # initialize never overwrites a marker


def test_block_count_edges(bucket: ContentBucket) -> None:
    assert bucket.block_size == B
    assert bucket.block_count(0) == 0
    assert bucket.block_count(1) == 1
    assert bucket.block_count(B - 1) == 1
    assert bucket.block_count(B) == 1
    assert bucket.block_count(B + 1) == 2
    assert bucket.block_count(10 * B) == 10
    with pytest.raises(ValueError):
        bucket.block_count(-1)


def test_key_scheme(bucket: ContentBucket) -> None:
    digest = h(b"key scheme")
    base = f"content/{digest[:2]}/{digest}/"
    assert bucket.block_key(digest, 0) == base + "blocks/00000000"
    assert bucket.block_key(digest, 12345) == base + "blocks/00012345"
    assert bucket.manifest_key(digest) == base + "manifest.json"
    for index in (-1, 10**8):
        with pytest.raises(ValueError):
            bucket.block_key(digest, index)


@pytest.mark.parametrize("size", [0, 1, B - 1, B, B + 1, 3 * B, 3 * B + 5])
def test_blocks_and_manifest_round_trip(bucket: ContentBucket, size: int) -> None:
    data = bytes((i * 7) % 251 for i in range(size))
    digest = upload(bucket, data)
    manifest = bucket.manifest(digest)
    assert manifest == ContentManifest(digest, size, B, bucket.block_count(size),
                                       tuple(block_hashes(data)))
    if 0 < size < B:  # small: its one block, no manifest (format version 2)
        assert bucket.store.head(bucket.manifest_key(digest)) is None
    else:
        assert json.loads(bucket.store.get(bucket.manifest_key(digest))) == {
            "hash": digest, "size": size, "block_size": B, "blocks": manifest.blocks,
            "block_hashes": block_hashes(data)}
    assert b"".join(bucket.get_block(digest, i) for i in range(manifest.blocks)) == data
    blocks = [info for info in bucket.store.list(bucket.content_prefix(digest) + "blocks/")]
    assert [info.size for info in blocks] == [
        min(B, size - i * B) for i in range(manifest.blocks)]
    if size > 3:
        assert bucket.get_block(digest, 0, 1, 3) == data[1:3]
    assert bucket.is_complete(digest)
    assert list(bucket.iter_contents()) == [digest]


def test_put_block_refuses_empty_or_oversized(bucket: ContentBucket) -> None:
    digest = h(b"x")
    with pytest.raises(ValueError):
        bucket.put_block(digest, 0, b"")
    with pytest.raises(ValueError):
        bucket.put_block(digest, 0, b"x" * (B + 1))
    assert list(bucket.store.list("content/")) == []


def test_complete_only_after_the_manifest(bucket: ContentBucket) -> None:
    data = b"y" * (2 * B + 3)
    digest = h(data)
    for i in range(3):
        bucket.put_block(digest, i, data[i * B:(i + 1) * B])
        assert not bucket.is_complete(digest)
        assert bucket.manifest(digest) is None
        assert list(bucket.iter_contents()) == []
    bucket.put_manifest(digest, len(data), block_hashes(data))
    assert bucket.is_complete(digest)
    assert list(bucket.iter_contents()) == [digest]


def test_iter_contents_lists_complete_contents_sorted(bucket: ContentBucket) -> None:
    complete = [upload(bucket, f"file {n}".encode() * n) for n in range(12)]
    partial = h(b"partial" * B)  # its first block only: full-size, so not small content
    bucket.put_block(partial, 0, (b"partial" * B)[:B])
    bucket.store.put("content/zz/not-a-hash/manifest.json", b"{}")  # foreign: ignored
    assert list(bucket.iter_contents()) == sorted(complete)


def test_delete_removes_the_manifest_first(bucket: ContentBucket) -> None:
    data = b"z" * (4 * B)
    digest = upload(bucket, data)
    deleted: list[str] = []
    real_delete = bucket.store.delete

    def spy(key: str) -> None:
        # at every step: a manifest, if present, has all its blocks
        if bucket.is_complete(digest):
            for i in range(4):
                assert bucket.store.head(bucket.block_key(digest, i)) is not None
        deleted.append(key)
        real_delete(key)

    bucket.store.delete = spy  # type: ignore[method-assign]
    bucket.delete_content(digest)
    assert deleted[0] == bucket.manifest_key(digest)
    assert sorted(deleted[1:]) == [bucket.block_key(digest, i) for i in range(4)]
    assert not bucket.is_complete(digest)
    assert list(bucket.store.list("content/")) == []
    bucket.delete_content(digest)  # idempotent
    with pytest.raises(ObjectNotFound):
        bucket.get_block(digest, 0)


def test_interrupted_delete_leaves_no_dangling_manifest(bucket: ContentBucket) -> None:
    digest = upload(bucket, b"w" * (3 * B))
    bucket.store.delete(bucket.manifest_key(digest))  # crash right after step one
    assert bucket.manifest(digest) is None
    assert list(bucket.iter_contents()) == []
    bucket.delete_content(digest)  # running it again finishes the job
    assert list(bucket.store.list("content/")) == []


def test_inconsistent_manifest_is_a_format_error(bucket: ContentBucket) -> None:
    digest = h(b"abc")
    key = bucket.manifest_key(digest)
    for body in (b"garbage", b'{"hash": "%s", "size": 3, "block_size": 16, "blocks": 2}'
                 % digest.encode(), b'{"hash": "%s", "size": 3, "block_size": 16, "blocks": 1}'
                 % ("0" * 64).encode()):
        bucket.store.put(key, body)
        with pytest.raises(BucketFormatError, match="manifest"):
            bucket.manifest(digest)


@pytest.mark.parametrize(
    "bad", ["", "abc", "A" * 64, "g" * 64, "a" * 63, "a" * 65, "../" + "a" * 61, "a" * 63 + "/"]
)
def test_bad_hash_raises_bad_path(bucket: ContentBucket, bad: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: bucket.block_key(bad, 0),
        lambda: bucket.put_block(bad, 0, b"x"),
        lambda: bucket.get_block(bad, 0),
        lambda: bucket.put_manifest(bad, 1, [bad]),
        lambda: bucket.manifest(bad),
        lambda: bucket.is_complete(bad),
        lambda: bucket.delete_content(bad),
    ]
    for call in calls:
        with pytest.raises(BadPath, match="content hash"):
            call()


def test_small_content_is_its_block_and_a_lone_full_block_is_not_complete(
        bucket: ContentBucket) -> None:
    small = h(b"tiny")
    bucket.put_block(small, 0, b"tiny")
    assert bucket.is_complete(small)
    assert bucket.manifest(small) == ContentManifest(small, 4, B, 1, (small,))
    bucket.finish(small, 4)  # writes nothing more
    assert [info.key for info in bucket.store.list("content/")] == [bucket.block_key(small, 0)]
    large = h(b"L" * (2 * B))
    bucket.put_block(large, 0, b"L" * B)  # an upload cut after its first block
    assert not bucket.is_complete(large) and bucket.manifest(large) is None
    assert list(bucket.iter_contents()) == [small]
    bucket.delete_content(small)
    assert not bucket.is_complete(small) and list(bucket.iter_contents()) == []


def test_a_version_1_bucket_keeps_a_manifest_for_every_content(store: ObjectStore) -> None:
    store.put(FORMAT_KEY, json.dumps({"format": "meridian-bucket", "version": 1,
                                      "block_size": B, "hash": "blake3"}).encode())
    old = ContentBucket(store)
    assert old.check_format().version == 1
    small = h(b"tiny")
    old.put_block(small, 0, b"tiny")
    assert not old.is_complete(small)  # version 1: no manifest, not complete
    old.finish(small, 4)
    assert store.head(old.manifest_key(small)) is not None
    assert old.is_complete(small) and list(old.iter_contents()) == [small]


def legacy_bucket(store: ObjectStore, version: int) -> ContentBucket:
    store.put(FORMAT_KEY, json.dumps({"format": "meridian-bucket", "version": version,
                                      "block_size": B, "hash": "blake3"}).encode())
    return ContentBucket(store)


def test_a_version_3_manifest_needs_one_hash_per_block(bucket: ContentBucket) -> None:
    data = bytes(range(40))  # three blocks
    digest = h(data)
    with pytest.raises(ValueError, match="block_hashes"):
        bucket.put_manifest(digest, len(data))
    for wrong in (block_hashes(data)[:2], block_hashes(data) + [digest], ["x" * 64] * 3):
        with pytest.raises(ValueError, match="block hashes"):
            bucket.put_manifest(digest, len(data), wrong)
    with pytest.raises(ValueError, match="block hashes"):  # a lone block is the content
        bucket.put_manifest(h(b"q" * B), B, [h(b"other")])
    assert list(bucket.store.list("content/")) == []
    key = bucket.manifest_key(digest)
    base = {"hash": digest, "size": len(data), "block_size": B, "blocks": 3}
    for doc in (base, {**base, "block_hashes": block_hashes(data)[:2]},
                {**base, "block_hashes": "abc"}):
        bucket.store.put(key, json.dumps(doc).encode())
        with pytest.raises(BucketFormatError, match="block_hashes"):
            bucket.manifest(digest)


@pytest.mark.parametrize("version", [1, 2])
def test_older_buckets_read_manifests_without_block_hashes_and_gain_them(
        store: ObjectStore, version: int) -> None:
    old = legacy_bucket(store, version)
    data = bytes(range(40))
    digest = h(data)
    for i in range(3):
        old.put_block(digest, i, data[i * B:(i + 1) * B])
    store.put(old.manifest_key(digest), json.dumps(
        {"hash": digest, "size": 40, "block_size": B, "blocks": 3}).encode())  # as before
    assert old.manifest(digest) == ContentManifest(digest, 40, B, 3, None)
    old.put_manifest(digest, 40)  # still allowed there ...
    assert old.manifest(digest) == ContentManifest(digest, 40, B, 3, None)
    old.finish(digest, 40, block_hashes(data))  # ... and the list is written when known
    assert old.manifest(digest) == ContentManifest(digest, 40, B, 3, tuple(block_hashes(data)))
    assert old.check_format().version == version  # the bucket keeps its version


def test_confirm_complete_heads_every_block(bucket: ContentBucket) -> None:
    data = bytes(range(40))
    digest = upload(bucket, data)
    small = upload(bucket, b"tiny")
    assert bucket.confirm_complete(digest, 40) and bucket.confirm_complete(small, 4)
    assert not bucket.confirm_complete(digest, 41)  # not the size the site knows
    assert not bucket.confirm_complete(h(b"never"), 5)
    bucket.store.put(bucket.block_key(digest, 1), data[B:2 * B - 1])  # a truncated block
    assert bucket.is_complete(digest) and not bucket.confirm_complete(digest, 40)
    bucket.store.delete(bucket.block_key(digest, 1))  # a block lost under its manifest
    assert bucket.is_complete(digest) and not bucket.confirm_complete(digest, 40)
