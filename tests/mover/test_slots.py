"""Fetch slots: a reader's blocks before read-ahead."""

from __future__ import annotations

import asyncio

import pytest

from meridian.mover.slots import FetchSlots


def test_read_ahead_leaves_the_reserved_slots_to_readers() -> None:
    async def run() -> list[str]:
        slots = FetchSlots(3, reserved=2)
        order: list[str] = []
        release = asyncio.Event()

        async def fetch(key: str) -> None:
            async with slots.slot(key):
                order.append(key)
                await release.wait()

        background = [asyncio.create_task(fetch(f"ahead{i}")) for i in range(3)]
        await asyncio.sleep(0.01)
        assert order == ["ahead0"] and slots.free == 2  # read-ahead stops at the reserve

        async def reader(key: str) -> None:
            async with slots.urgent(key):
                await fetch(key)

        readers = [asyncio.create_task(reader(f"now{i}")) for i in range(2)]
        await asyncio.sleep(0.01)
        assert order == ["ahead0", "now0", "now1"] and slots.free == 0
        release.set()
        await asyncio.gather(*background, *readers)
        return order

    order = asyncio.run(run())
    assert sorted(order[3:]) == ["ahead1", "ahead2"] and len(order) == 5


def test_a_queued_read_ahead_block_becomes_urgent_when_a_reader_waits_for_it() -> None:
    async def run() -> None:
        slots = FetchSlots(2, reserved=1)
        hold = asyncio.Event()
        got: list[str] = []

        async def fetch(key: str) -> None:
            async with slots.slot(key):
                got.append(key)
                await hold.wait()

        first = asyncio.create_task(fetch("a"))  # takes the one slot read-ahead may use
        queued = asyncio.create_task(fetch("b"))  # waits: only the reserved slot is free
        await asyncio.sleep(0.01)
        assert got == ["a"]
        async with slots.urgent("b"):  # a reader now waits for b: it may take the reserve
            await asyncio.sleep(0.01)
            assert got == ["a", "b"] and slots.is_urgent("b")
        assert not slots.is_urgent("b")
        hold.set()
        await asyncio.gather(first, queued)
        assert slots.free == 2

    asyncio.run(run())


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError):
        FetchSlots(0)
    assert FetchSlots(1, reserved=2).reserved == 0  # a lone slot serves read-ahead too
