"""The mount's wait for the next request: spin on the device, then park on the event loop."""

from __future__ import annotations

import asyncio
import os

import pyfuse3.asyncio

from meridian.mount import waiting


def test_a_ready_descriptor_is_taken_without_parking_until_the_burst_ends() -> None:
    parked: list[int] = []

    async def park(fd: int) -> None:
        parked.append(fd)

    async def run() -> None:
        read, write = os.pipe()
        try:
            wait = waiting.SpinningWait(0.001)
            os.write(write, b"x")  # readable from now on
            for _ in range(waiting.BURST):
                await wait(read)
            assert parked == [] and wait.streak == waiting.BURST
            await wait(read)  # the burst is over: park once, however ready the device is
            assert parked == [read] and wait.streak == 0
        finally:
            os.close(read)
            os.close(write)

    original = waiting._parked
    waiting._parked = park
    try:
        asyncio.run(run())
    finally:
        waiting._parked = original


def test_an_idle_descriptor_parks_after_the_spin() -> None:
    async def run() -> None:
        read, write = os.pipe()
        try:
            wait = waiting.SpinningWait(0.0005)
            asyncio.get_running_loop().call_later(0.05, os.write, write, b"x")
            await asyncio.wait_for(wait(read), timeout=5)  # parked on the loop, then woken
            assert wait.streak == 0
        finally:
            os.close(read)
            os.close(write)

    asyncio.run(run())


def test_install_zero_restores_pyfuse3s_wait() -> None:
    original = pyfuse3.asyncio.wait_readable
    try:
        waiting.install(0.0001)
        assert isinstance(pyfuse3.asyncio.wait_readable, waiting.SpinningWait)
        waiting.install(0)
        assert pyfuse3.asyncio.wait_readable is waiting._parked
    finally:
        pyfuse3.asyncio.wait_readable = original
