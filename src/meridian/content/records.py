"""The values a local volume hands out: frozen snapshots, safe to keep and share."""

from __future__ import annotations

from dataclasses import dataclass

# Why evict() refused, in the words the CLI and the dashboard show.
REFUSED_NOT_LOCAL = "not local"
REFUSED_PINNED = "pinned"
REFUSED_OPEN = "open"
REFUSED_ONLY_COPY = "only copy (not complete in the bucket)"


@dataclass(frozen=True)
class CommittedContent:
    """Content that :meth:`LocalVolume.commit` made durable in the volume's content store."""

    hash: str
    size: int


@dataclass(frozen=True)
class InstanceInfo:
    """One instance on a local volume, as it was when :meth:`LocalVolume.instances` ran.

    ``last_used`` is wall-clock seconds since the epoch (from the file's atime or mtime for
    instances found at start-up).
    """

    hash: str
    size: int
    present_bytes: int
    complete: bool
    pinned: bool
    open_count: int
    last_used: float


@dataclass(frozen=True)
class VolumeUsage:
    """Bytes on a local volume. ``used`` = ``staging + complete + partial`` plus bytes reserved
    by writes in flight (zero when the volume is idle). ``capacity`` None means unlimited;
    ``count`` is the number of instances (complete and partial)."""

    capacity: int | None
    used: int
    staging: int
    complete: int
    partial: int
    count: int


@dataclass(frozen=True)
class EvictResult:
    """What :meth:`LocalVolume.evict` did: ``evicted`` and the bytes ``freed``, or the
    ``reason`` it refused (one of the ``REFUSED_*`` strings)."""

    hash: str
    evicted: bool
    freed: int = 0
    reason: str | None = None
