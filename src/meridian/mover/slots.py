"""Fetch slots where a reader's blocks go before read-ahead.

Read-ahead queues many blocks at once: opening frame 1 of a sequence queues frames 2-9 (24
blocks of 4 MiB) before frame 1's own blocks are asked for, and with first-come slots the
player then waited for all of them. Here a block a reader is waiting for ("urgent") may take
any free slot, while read-ahead may only take a slot when more than ``reserved`` are free; a
block queued by read-ahead becomes urgent as soon as a reader waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class FetchSlots:
    """``total`` slots; ``reserved`` of them only for urgent keys. Loop thread only."""

    def __init__(self, total: int, reserved: int = 2) -> None:
        if total < 1:
            raise ValueError(f"need at least one fetch slot, got {total}")
        self.total = total
        self.reserved = min(reserved, total - 1)  # read-ahead always keeps one slot
        self.free = total
        self._urgent: dict[Hashable, int] = {}  # key -> readers waiting for it
        self._freed = asyncio.Event()

    def is_urgent(self, key: Hashable) -> bool:
        return key in self._urgent

    @asynccontextmanager
    async def urgent(self, key: Hashable) -> AsyncIterator[None]:
        """While inside, ``key`` is urgent (a reader waits for it). Nests."""
        self._urgent[key] = self._urgent.get(key, 0) + 1
        self._wake()  # a waiting fetch of it may now take a reserved slot
        try:
            yield
        finally:
            left = self._urgent[key] - 1
            if left:
                self._urgent[key] = left
            else:
                del self._urgent[key]

    @asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        """Hold one slot for fetching ``key``; waits until one may be taken."""
        while not (self.free > (0 if key in self._urgent else self.reserved)):
            freed = self._freed
            await freed.wait()
        self.free -= 1
        try:
            yield
        finally:
            self.free += 1
            self._wake()

    def _wake(self) -> None:
        self._freed.set()
        self._freed = asyncio.Event()
