"""How content is laid out in the bucket: immutable fixed-size blocks plus a manifest written last.

Written down for operators and other implementations in ``docs/bucket-format.md``::

    meridian-format.json                      {"format": "meridian-bucket", "version": 1,
                                               "block_size": 4194304, "hash": "blake3"}
    content/<H[0:2]>/<H>/blocks/00000000      bytes [0, B) of the content named H
    content/<H[0:2]>/<H>/blocks/00000001      bytes [B, 2B) ...
    content/<H[0:2]>/<H>/manifest.json        {"hash": H, "size": N, "block_size": B,
                                               "blocks": n, "block_hashes": [...]},
                                               written LAST

"Manifest present" means "content complete in the bucket"; deletion runs in reverse (manifest
first), so no manifest ever points at a missing block. Version 2 adds one rule: *small* content
(1 byte to one byte less than the block size) is its one block and has no manifest; a lone
block 0 shorter than the block size cannot be part of a larger content (whose block 0 is
always full), so it is complete. One PUT per small file instead of two: moto answers ~400 PUTs
a second here, so the second PUT halved the rate of small files made durable. Version-1
buckets are read and written as before (every content has a manifest). Version 3 makes
``block_hashes`` (the BLAKE3 hash of each block, in order) required in every manifest, so a
reader verifies each block on its own before using any of its bytes; small content needs none
(its one block's hash is the content hash). Version-1 and -2 buckets stay at their version and
their manifests gain ``block_hashes`` as an optional field (their readers ignore it).
A site refuses a bucket whose format marker is missing or names a version it does not know
(:meth:`ContentBucket.check_format`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from meridian.errors import BadPath, BucketFormatError, ObjectNotFound
from meridian.objects.interface import ObjectStore
from meridian.testpoints import reached

FORMAT_KEY = "meridian-format.json"
FORMAT_NAME = "meridian-bucket"
FORMAT_VERSION = 3
KNOWN_VERSIONS = frozenset({1, 2, FORMAT_VERSION})
HASH_NAME = "blake3"
DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024
MAX_BLOCK_SIZE = 5 * 1024**3
"""The largest single PutObject S3 accepts: blocks never need multipart upload."""
MAX_BLOCKS = 10**8
"""Block indexes are written with 8 decimal digits, so listing order is block order."""
CONTENT_PREFIX = "content/"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_KEY = re.compile(r"^content/([0-9a-f]{2})/([0-9a-f]{64})/(manifest\.json|blocks/(\d{8}))$")


@dataclass(frozen=True)
class BucketFormat:
    """The bucket's format marker: layout version, block size in bytes, hash algorithm."""

    version: int
    block_size: int
    hash: str


@dataclass(frozen=True)
class ContentManifest:
    """A complete content in the bucket: its hash, size, and how it is cut into blocks.
    ``block_hashes``: each block's hash, in order, when the bucket says (always in version 3,
    for content of one block too: then it is ``(hash,)``); ``None`` for an older manifest."""

    hash: str
    size: int
    block_size: int
    blocks: int
    block_hashes: tuple[str, ...] | None = None


def check_hash(h: str) -> str:
    """Return ``h`` if it is a content hash (64 lower-case hex digits); raise :class:`BadPath`."""
    if not isinstance(h, str) or not _HASH.match(h):
        raise BadPath(f"content hash {h!r}: not 64 lower-case hex digits")
    return h


def blocks_for(size: int, block_size: int) -> int:
    """How many blocks of ``block_size`` hold ``size`` bytes (0 for 0); ``ValueError`` if < 0."""
    if size < 0:
        raise ValueError(f"content size {size} is negative")
    return -(-size // block_size)


def _check_block_size(block_size: object) -> int:
    if type(block_size) is not int or not 1 <= block_size <= MAX_BLOCK_SIZE:
        raise ValueError(f"block size {block_size!r} is not an integer in 1..{MAX_BLOCK_SIZE}")
    return block_size


class ContentBucket:
    """Content stored in an :class:`ObjectStore` as blocks + manifest, behind a format marker.

    Thread-safe as the store is. Methods that need the block size (:attr:`block_size`,
    :meth:`block_count`, :meth:`put_block`, :meth:`put_manifest`) read and check the format
    marker on first use, so they raise :class:`BucketFormatError` on a bucket this Meridian
    does not understand. Every method taking a hash raises :class:`BadPath` for a bad one.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._format: BucketFormat | None = None

    @property
    def store(self) -> ObjectStore:
        """The object store underneath."""
        return self._store

    def initialize(self, block_size: int = DEFAULT_BLOCK_SIZE) -> BucketFormat:
        """Write the format marker if the bucket has none; return the bucket's format.

        Idempotent. When a marker exists it is checked and returned as it is (its block size
        wins over ``block_size``); :class:`BucketFormatError` if it is not one we understand.
        ``ValueError`` for a block size outside 1..5 GiB.
        """
        _check_block_size(block_size)
        found = self._read_format()
        if found is None:
            marker = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                      "block_size": block_size, "hash": HASH_NAME}
            self._store.put(FORMAT_KEY, _to_json(marker))
            found = self._read_format()  # what the bucket holds, should two sites race
            if found is None:
                raise BucketFormatError(f"{self._store.url}: {FORMAT_KEY} vanished once written")
        self._format = found
        return found

    def check_format(self) -> BucketFormat:
        """Read and check the format marker; return it.

        Raises :class:`BucketFormatError` when the marker is missing, not JSON, names another
        format, a version this Meridian does not know, or an unusable block size or hash. The
        message says what was found and what this Meridian understands.
        """
        found = self._read_format()
        if found is None:
            raise BucketFormatError(
                f"{self._store.url}: no format marker {FORMAT_KEY}; this Meridian understands "
                f"{_understood()}. Initialise the bucket first (an empty bucket only)."
            )
        self._format = found
        return found

    @property
    def block_size(self) -> int:
        """The bucket's block size in bytes (from the marker, checked on first use)."""
        return self._checked().block_size

    def block_count(self, size: int) -> int:
        """Blocks needed for ``size`` bytes with this bucket's block size (0 for size 0)."""
        return blocks_for(size, self.block_size)

    def content_prefix(self, h: str) -> str:
        """``content/<H[0:2]>/<H>/``: every key of content ``h`` starts with it."""
        return f"{CONTENT_PREFIX}{check_hash(h)[:2]}/{h}/"

    def block_key(self, h: str, index: int) -> str:
        """``content/<H[0:2]>/<H>/blocks/<index, 8 digits>``; ``ValueError`` for a bad index."""
        if type(index) is not int or not 0 <= index < MAX_BLOCKS:
            raise ValueError(f"block index {index!r} is not in 0..{MAX_BLOCKS - 1}")
        return f"{self.content_prefix(h)}blocks/{index:08d}"

    def manifest_key(self, h: str) -> str:
        """``content/<H[0:2]>/<H>/manifest.json``."""
        return f"{self.content_prefix(h)}manifest.json"

    def put_block(self, h: str, index: int, data: bytes) -> None:
        """Store block ``index`` of content ``h`` (bytes ``[index*B, (index+1)*B)``).

        Idempotent (same bytes, same key). ``ValueError`` when ``data`` is empty or longer
        than the block size. Only the last block of a content may be shorter than B; the
        caller cuts the content, this does not check it.
        """
        key = self.block_key(h, index)
        if not 1 <= len(data) <= self.block_size:
            raise ValueError(f"block of {len(data)} bytes; blocks hold 1..{self.block_size}")
        self._store.put(key, data)

    def get_block(self, h: str, index: int, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of one block (clipped); :class:`ObjectNotFound` if missing."""
        return self._store.get(self.block_key(h, index), start, end)

    def is_small(self, size: int) -> bool:
        """Whether content of ``size`` bytes is stored without a manifest (version 2)."""
        return self._checked().version >= 2 and 0 < size < self.block_size

    def finish(self, h: str, size: int,
               block_hashes: Sequence[str] | None = None) -> ContentManifest:
        """Mark content ``h`` complete once all its blocks are stored: its manifest, except for
        small content, whose one block is the mark. Idempotent. ``block_hashes`` as for
        :meth:`put_manifest`."""
        if self.is_small(size):
            return ContentManifest(check_hash(h), size, self.block_size, 1, (h,))
        return self.put_manifest(h, size, block_hashes)

    def put_manifest(self, h: str, size: int,
                     block_hashes: Sequence[str] | None = None) -> ContentManifest:
        """Write the manifest of content ``h`` (``size`` bytes): call it after every block.

        From then on the content counts as complete in the bucket. Idempotent.
        ``block_hashes``: the hash of each block, in order; required in a version-3 bucket
        (``ValueError`` without it), written when given in older ones. ``ValueError`` when
        there is not one valid hash per block.
        """
        check_hash(h)
        blocks = self.block_count(size)
        hashes = None if block_hashes is None else tuple(block_hashes)
        if hashes is None and self._checked().version >= 3:
            raise ValueError(f"content {h[:12]}: a version-3 manifest needs block_hashes")
        if hashes is not None and not _block_hashes_fit(h, blocks, hashes):
            raise ValueError(f"content {h[:12]}: {len(hashes)} block hashes for {blocks} "
                             "blocks (one valid hash per block; a lone block's is the content's)")
        manifest = ContentManifest(h, size, self.block_size, blocks, hashes)
        body: dict[str, Any] = {"hash": h, "size": size, "block_size": manifest.block_size,
                                "blocks": blocks}
        if hashes is not None:
            body["block_hashes"] = list(hashes)
        self._store.put(self.manifest_key(h), _to_json(body))
        return manifest

    def manifest(self, h: str) -> ContentManifest | None:
        """The manifest of content ``h``, or ``None`` when the content is not complete here.

        Raises :class:`BucketFormatError` for a manifest that does not parse or contradicts
        itself (wrong hash, block count that does not fit the size).
        """
        key = self.manifest_key(h)
        try:
            raw = self._store.get(key)
        except ObjectNotFound:
            return self._small_content(h)
        doc = _parse_object(raw, f"{self._store.url}: {key}")
        size, block_size, blocks = doc.get("size"), doc.get("block_size"), doc.get("blocks")
        listed = doc.get("block_hashes")
        if (
            doc.get("hash") != h
            or type(size) is not int
            or type(blocks) is not int
            or type(block_size) is not int
            or not 1 <= block_size <= MAX_BLOCK_SIZE
            or size < 0
            or blocks != blocks_for(size, block_size)
        ):
            raise BucketFormatError(f"{self._store.url}: {key} is inconsistent: {doc!r:.300}")
        if listed is None and self._checked().version >= 3:
            raise BucketFormatError(f"{self._store.url}: {key} has no block_hashes (required "
                                    "in a version-3 bucket)")
        hashes = None
        if listed is not None:
            if not isinstance(listed, list) or not _block_hashes_fit(h, blocks, listed):
                raise BucketFormatError(f"{self._store.url}: {key}: block_hashes is not one "
                                        f"hash per block: {listed!r:.300}")
            hashes = tuple(listed)
        return ContentManifest(h, size, block_size, blocks, hashes)

    def _small_content(self, h: str) -> ContentManifest | None:
        """Small content without a manifest (version 2): a lone block 0, shorter than B."""
        if self._checked().version < 2:
            return None
        info = self._store.head(self.block_key(h, 0))
        if info is None or not 0 < info.size < self.block_size:
            return None
        return ContentManifest(h, info.size, self.block_size, 1, (h,))

    def confirm_complete(self, h: str, size: int) -> bool:
        """Whether this site can see for itself that content ``h`` (``size`` bytes) is whole
        in the bucket: a manifest (or small content) of that size, and every block present at
        its full length (one HEAD each). Stronger than :meth:`is_complete`, which trusts the
        manifest; what a site checks before it lets its own copy go on another site's word.
        Raises ObjectStoreError when the bucket does not answer."""
        manifest = self.manifest(h)
        if manifest is None or manifest.size != size:
            return False
        for index in range(manifest.blocks):
            info = self._store.head(self.block_key(h, index))
            expected = min(manifest.block_size, size - index * manifest.block_size)
            if info is None or info.size != expected:
                return False
        return True

    def is_complete(self, h: str) -> bool:
        """Whether content ``h`` is complete in the bucket: its manifest is present (one
        HEAD; all its blocks are then too), or it is small content (a second HEAD)."""
        if self._store.head(self.manifest_key(h)) is not None:
            return True
        return self._small_content(h) is not None

    def iter_contents(self) -> Iterator[str]:
        """Yield the hash of every complete content (with a manifest, or small), sorted.

        Lazy, but it lists every key under ``content/``, blocks included: a full scan.
        """
        small_ok = self._checked().version >= 2
        current, manifest, first, more = "", False, 0, False

        def complete() -> bool:
            return manifest or (small_ok and 0 < first < self.block_size and not more)

        for info in self._store.list(CONTENT_PREFIX):
            match = _CONTENT_KEY.match(info.key)
            if not match or not match.group(2).startswith(match.group(1)):
                continue
            if match.group(2) != current:
                if current and complete():
                    yield current
                current, manifest, first, more = match.group(2), False, 0, False
            if match.group(4) is None:
                manifest = True
            elif int(match.group(4)) == 0:
                first = info.size
            else:
                more = True
        if current and complete():
            yield current

    def delete_content(self, h: str) -> None:
        """Delete content ``h``: the manifest first, then its blocks (the reverse of writing).

        Idempotent; an interrupted delete leaves blocks without a manifest (garbage, never a
        manifest pointing at missing blocks) and running it again finishes the job.
        """
        self._store.delete(self.manifest_key(h))
        reached("bucket.deleting")  # the manifest is gone, the blocks not yet
        leftovers = [info.key for info in self._store.list(self.content_prefix(h))]
        for key in leftovers:
            self._store.delete(key)

    def _checked(self) -> BucketFormat:
        return self._format if self._format is not None else self.check_format()

    def _read_format(self) -> BucketFormat | None:
        """The checked marker, ``None`` if there is none; :class:`BucketFormatError` if bad."""
        try:
            raw = self._store.get(FORMAT_KEY)
        except ObjectNotFound:
            return None
        where = f"{self._store.url}: {FORMAT_KEY}"
        doc = _parse_object(raw, where, f"; this Meridian understands {_understood()}")
        fmt, version = doc.get("format"), doc.get("version")
        block_size, hash_name = doc.get("block_size"), doc.get("hash")
        if fmt != FORMAT_NAME:
            problem = f"format {fmt!r}"
        elif type(version) is not int or version not in KNOWN_VERSIONS:
            problem = f"format {FORMAT_NAME!r} version {version!r} (from a newer Meridian?)"
        elif type(block_size) is not int or not 1 <= block_size <= MAX_BLOCK_SIZE:
            problem = f"version {version} with an unusable block_size {block_size!r}"
        elif hash_name != HASH_NAME:
            problem = f"version {version} with hash {hash_name!r}"
        else:
            return BucketFormat(version, block_size, hash_name)
        raise BucketFormatError(
            f"{where}: found {problem}; this Meridian understands {_understood()}"
        )


def _block_hashes_fit(h: str, blocks: int, hashes: Sequence[object]) -> bool:
    """One valid hash per block; a content of one block is that block, so its hash is ``h``."""
    if len(hashes) != blocks or not all(isinstance(x, str) and _HASH.match(x) for x in hashes):
        return False
    return blocks != 1 or hashes[0] == h


def _understood() -> str:
    versions = ", ".join(str(v) for v in sorted(KNOWN_VERSIONS))
    return f"format {FORMAT_NAME!r} version {versions} with hash {HASH_NAME!r}"


def _to_json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def _parse_object(raw: bytes, where: str, hint: str = "") -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, json.JSONDecodeError):
        raise BucketFormatError(f"{where}: found {raw[:40]!r}, not JSON{hint}") from None
    if not isinstance(doc, dict):
        raise BucketFormatError(f"{where}: found {type(doc).__name__}, not a JSON object{hint}")
    return doc
