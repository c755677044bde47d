"""meridian.content — one site's local volume: where file content lives on local disk.

Content is immutable and named by its BLAKE3 hash. The mount writes into staging files and
commits them; the mover fetches missing content into partial instances; the volume evicts
least-recently-used evictable instances to stay within its capacity.

Modules: ``ranges`` (byte-range sets), ``hashing`` (content hashes), ``volume``
(:class:`LocalVolume`, built from ``staging``, ``partial``, ``capacity``, ``index``,
``layout`` and ``durable``), ``records`` (the frozen values it returns).
"""

from __future__ import annotations

from meridian.content.hashing import HASH_NAME, check_hash, hash_bytes, hash_file, new_hasher
from meridian.content.inspector import VolumeInspector
from meridian.content.ranges import RangeSet
from meridian.content.records import (
    REFUSED_NOT_LOCAL,
    REFUSED_ONLY_COPY,
    REFUSED_OPEN,
    REFUSED_PINNED,
    CommittedContent,
    EvictResult,
    InstanceInfo,
    VolumeUsage,
)
from meridian.content.staging import StagingFile
from meridian.content.volume import LocalVolume

__all__ = [
    "HASH_NAME",
    "REFUSED_NOT_LOCAL",
    "REFUSED_ONLY_COPY",
    "REFUSED_OPEN",
    "REFUSED_PINNED",
    "CommittedContent",
    "EvictResult",
    "InstanceInfo",
    "LocalVolume",
    "RangeSet",
    "StagingFile",
    "VolumeInspector",
    "VolumeUsage",
    "check_hash",
    "hash_bytes",
    "hash_file",
    "new_hasher",
]
