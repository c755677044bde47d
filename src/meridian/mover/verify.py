"""What each block of a content must hash to, so a fetched block is checked on its own.

A content's hash covers the whole content; a reader that waited for every block before trusting
any would wait for the whole file. So every block has its own BLAKE3 hash, learnt here, and the
mover checks each fetched block against it before the block is written to the local volume or
used by any read (a block that fails is fetched from another source).

Where the list comes from, first that answers:

- content of one block needs none: that block's hash is the content hash;
- the bucket's manifest (``block_hashes``; required from bucket format 3);
- a peer's ``GET /api/v1/content/{hash}/blocks``: before the upload is done the manifest does not
  exist yet; a site answers from a complete local instance whose whole hash it has just
  checked, or with a list it learnt itself (from the bucket, or from the content's origin);
- content an older Meridian uploaded (a manifest without block hashes, no peer that can
  answer): every block is read from the bucket once, each block and the whole hashed; the list
  is used only if the whole hashes to the content's name. That reads the content twice (a
  one-time cost per content and site process, the price of never trusting a block unchecked).

Lists are kept in memory (a few dozen bytes per block) for the life of the process.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from meridian.content import LocalVolume, hash_bytes, new_hasher
from meridian.content.hashing import hash_blocks
from meridian.errors import BucketFormatError, ContentUnavailable, ObjectNotFound, ObjectStoreError
from meridian.objects.layout import ContentBucket, ContentManifest

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_HASH = re.compile(r"[0-9a-f]{64}")
# (content hash, size) -> the block hashes a peer gives for it, or None if none can now
PeerHashes = Callable[[str, int], Awaitable[list[str] | None]]


class Runner(Protocol):
    """Runs a blocking call off the event loop (the mover's threads)."""

    def __call__(self, fn: Callable[..., _T], *args: object) -> Awaitable[_T]: ...


def block_problem(data: bytes, length: int, expected: str) -> str | None:
    """Why ``data`` is not the block that hashes to ``expected`` and holds ``length`` bytes
    (None: it is). Runs a BLAKE3 pass over the block: call it off the event loop."""
    return mismatch(len(data), hash_bytes(data), length, expected)


def mismatch(got: int, actual: str, length: int, expected: str) -> str | None:
    """Why a block of ``got`` bytes hashing to ``actual`` is not the one of ``length`` bytes
    hashing to ``expected`` (None: it is)."""
    if got != length:
        return f"{got} bytes, expected {length}"
    if actual != expected:
        return f"hashes to {actual[:12]}, expected {expected[:12]}"
    return None


def fits(content_hash: str, blocks: int, hashes: Sequence[object]) -> bool:
    """``hashes`` is one well-formed hash per block (a lone block's is the content's)."""
    if len(hashes) != blocks or not all(isinstance(x, str) and _HASH.fullmatch(x) for x in hashes):
        return False
    return blocks != 1 or hashes[0] == content_hash


class BlockHashes:
    """Block hash lists by content hash; loop thread only. ``run`` runs blocking calls on the
    mover's threads."""

    def __init__(self, bucket: ContentBucket, volume: LocalVolume,
                 run: Runner, *, read_timeout: float,
                 from_peers: PeerHashes | None = None) -> None:
        self.bucket = bucket
        self.volume = volume
        self._run = run
        self.read_timeout = read_timeout
        self.from_peers = from_peers
        self._known: dict[str, tuple[str, ...]] = {}
        self._rotten: set[str] = set()  # local instances found not to match their hash
        self._resolving: dict[str, asyncio.Future[tuple[str, ...]]] = {}

    def remember(self, content_hash: str, hashes: Sequence[str]) -> None:
        """A list this site computed from bytes it checked (an upload, a verified instance)."""
        self._known[content_hash] = tuple(hashes)

    def known(self, content_hash: str, size: int) -> tuple[str, ...] | None:
        """The list if it is known without asking anyone (one block, or learnt before)."""
        blocks = self.bucket.block_count(size)
        if blocks <= 1:
            return (content_hash,) * blocks
        return self._known.get(content_hash)

    async def of(self, content_hash: str, size: int) -> tuple[str, ...]:
        """The hash of every block of the content (``size`` bytes). Waits for a source up to
        ``read_timeout``; raises ContentUnavailable when none gives a usable list."""
        blocks = self.bucket.block_count(size)
        if blocks <= 1:
            return (content_hash,) * blocks
        known = self._known.get(content_hash)
        if known is not None:
            return known
        future = self._resolving.get(content_hash)
        if future is None:
            future = asyncio.ensure_future(self._resolve(content_hash, size, blocks))
            self._resolving[content_hash] = future
            future.add_done_callback(lambda _: self._resolving.pop(content_hash, None))
        return await asyncio.shield(future)

    async def here(self, content_hash: str) -> tuple[str, ...] | None:
        """The list this site can vouch for, for a peer that asks: one it learnt already, or
        one computed from the complete local instance after checking the instance's whole
        hash (None if there is none, or it is corrupt: that is logged)."""
        known = self._known.get(content_hash)
        if known is not None:
            return known
        if content_hash in self._rotten or not self.volume.has(content_hash):
            return None
        try:
            whole, hashes = await self._run(self._hash_local, content_hash)
        except (OSError, ContentUnavailable) as exc:
            log.warning("block hashes of %s: local instance unreadable: %s", content_hash[:12],
                        exc)
            return None
        if whole != content_hash:
            self._rotten.add(content_hash)  # said once; a fetch may ask every 0.25 s
            log.error("local instance of %s hashes to %s: corrupt on this site's disk; its "
                      "blocks are not vouched for", content_hash[:12], whole[:12])
            return None
        self._known[content_hash] = tuple(hashes)
        return self._known[content_hash]

    def _hash_local(self, content_hash: str) -> tuple[str, list[str]]:
        return hash_blocks(self.volume.path_of(content_hash), self.bucket.block_size)

    async def _resolve(self, content_hash: str, size: int, blocks: int) -> tuple[str, ...]:
        deadline = time.monotonic() + self.read_timeout
        while True:
            manifest: ContentManifest | None = None
            unreachable = False
            try:
                manifest = await self._run(self.bucket.manifest, content_hash)
            except BucketFormatError as exc:  # a damaged manifest: the peers may still answer
                log.error("manifest of %s in the bucket is unusable: %s", content_hash[:12], exc)
            except ObjectStoreError as exc:  # asked again below, until read_timeout
                unreachable = True
                log.warning("manifest of %s: bucket: %s", content_hash[:12], exc)
            if manifest is not None and manifest.size != size:
                log.error("manifest of %s in the bucket says %d bytes, the file %d: ignored",
                          content_hash[:12], manifest.size, size)
                manifest = None
            listed = manifest.block_hashes if manifest is not None else None
            if listed is not None:
                return self._keep(content_hash, listed)
            if self.from_peers is not None:
                offered = await self.from_peers(content_hash, size)
                if offered is not None and fits(content_hash, blocks, offered):
                    return self._keep(content_hash, offered)
                if offered is not None:
                    log.error("a peer's block hashes of %s do not fit its %d blocks: ignored",
                              content_hash[:12], blocks)
            if manifest is not None:  # complete in the bucket, uploaded without block hashes
                hashes = await self._run(self._scan_bucket, content_hash, size, blocks)
                return self._keep(content_hash, hashes)
            if self.from_peers is None and not unreachable:
                raise ContentUnavailable(f"content {content_hash[:12]} is not complete in the "
                                         "bucket and no peer could say its block hashes")
            if time.monotonic() > deadline:
                raise ContentUnavailable(f"content {content_hash[:12]}: no block hashes from "
                                         "the bucket or a reachable peer in time")
            await asyncio.sleep(1.0 if unreachable else 0.25)

    def _keep(self, content_hash: str, hashes: Sequence[str]) -> tuple[str, ...]:
        self._known[content_hash] = tuple(hashes)
        return self._known[content_hash]

    def _scan_bucket(self, content_hash: str, size: int, blocks: int) -> list[str]:
        """Content uploaded without block hashes: read it whole from the bucket, hash each
        block and the whole; the list is good only if the whole is the content's name."""
        whole = new_hasher()
        hashes = []
        block_size = self.bucket.block_size
        for index in range(blocks):
            try:
                data = self.bucket.get_block(content_hash, index)
            except ObjectNotFound as exc:
                raise ContentUnavailable(f"content {content_hash[:12]} block {index} is missing "
                                         f"from the bucket: {exc}") from exc
            except ObjectStoreError as exc:
                raise ContentUnavailable(f"content {content_hash[:12]} block {index}: "
                                         f"{exc}") from exc
            expected = min(block_size, size - index * block_size)
            if len(data) != expected:
                raise ContentUnavailable(f"content {content_hash[:12]} block {index} in the "
                                         f"bucket is {len(data)} bytes, expected {expected}")
            whole.update(data)
            hashes.append(hash_bytes(data))
        actual = whole.hexdigest()
        if actual != content_hash:
            log.error("content %s in the bucket (uploaded without block hashes) hashes to %s: "
                      "corrupt; no block of it is used", content_hash[:12], actual[:12])
            raise ContentUnavailable(f"content {content_hash[:12]} is corrupt in the bucket")
        return hashes
