"""Random operations on a few files through a real mount, every byte read checked.

Each operation runs twice, on the mount and on a plain local directory (the reference), and
once on an in-memory model of the files (a bytearray per inode). Every read, from a
descriptor, from a memory map or of a whole file by name, must give the model's bytes on
both sides. Writes at random offsets (holes included), truncates by name and by descriptor,
shared memory maps read and written, posix_fallocate, renames over existing names, unlinks
of open files, opens with O_TRUNC, fsync and close (each close commits).

``MERIDIAN_DATA_OPS`` sets the number of operations (20,000 by default; ``make soak-data``
runs 500,000) and ``MERIDIAN_DATA_SEED`` replays a run: the seed is printed, and named in
every failure.
"""

from __future__ import annotations

import mmap
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.sitehelpers import RunningSite

OPS = int(os.environ.get("MERIDIAN_DATA_OPS", "20000"))
NAMES = ("a", "b", "c", "d")
MAX_OPEN = 5
MAX_SIZE = 1024 * 1024  # keeps each close's commit short


@dataclass
class Handle:
    inode: int  # the model's inode
    mount_fd: int
    ref_fd: int


@dataclass
class Twin:
    """The mount, the reference directory and the model, driven by one random stream."""

    mount: Path
    ref: Path
    rng: random.Random
    data: dict[int, bytearray] = field(default_factory=dict)  # model: inode -> bytes
    names: dict[str, int] = field(default_factory=dict)  # model: name -> inode
    handles: list[Handle] = field(default_factory=list)
    history: deque[str] = field(default_factory=lambda: deque(maxlen=25))
    next_inode: int = 1

    # -- helpers ------------------------------------------------------------------------
    def check(self, what: str, mount_bytes: bytes, ref_bytes: bytes, model: bytes) -> None:
        if ref_bytes != model:
            raise AssertionError(f"the test's model disagrees with the local directory "
                                 f"({what}): {_diff(ref_bytes, model)}")
        if mount_bytes != model:
            raise AssertionError(f"{what}: the mount returned other bytes: "
                                 f"{_diff(mount_bytes, model)}")

    def handle(self) -> Handle | None:
        return self.rng.choice(self.handles) if self.handles else None

    def offset_in(self, size: int, past: int) -> int:
        if self.rng.random() < 0.3:
            return self.rng.choice((0, max(0, size - 1), size))
        return self.rng.randrange(0, min(MAX_SIZE - 1, size + past) + 1)

    def length(self, largest: int) -> int:
        kind = self.rng.random()
        if kind < 0.5:
            return self.rng.randint(1, 100)
        if kind < 0.9:
            return self.rng.randint(1, 8192)
        return self.rng.randint(1, largest)

    # -- operations ---------------------------------------------------------------------
    def op_open(self) -> str:
        if len(self.handles) >= MAX_OPEN:
            return self.op_close()
        name = self.rng.choice(NAMES)
        trunc = self.rng.random() < 0.1
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if trunc else 0)
        mount_fd = os.open(self.mount / name, flags, 0o644)
        ref_fd = os.open(self.ref / name, flags, 0o644)
        if name not in self.names:
            self.names[name] = self.next_inode
            self.data[self.next_inode] = bytearray()
            self.next_inode += 1
        inode = self.names[name]
        if trunc:
            del self.data[inode][:]
        self.handles.append(Handle(inode, mount_fd, ref_fd))
        return f"open {name}{' O_TRUNC' if trunc else ''} (inode {inode})"

    def op_close(self) -> str:
        h = self.handle()
        if h is None:
            return self.op_open()
        self.handles.remove(h)
        os.close(h.mount_fd)
        os.close(h.ref_fd)
        return f"close inode {h.inode}"

    def op_write(self) -> str:
        h = self.handle()
        if h is None:
            return self.op_open()
        model = self.data[h.inode]
        offset = self.offset_in(len(model), 65536)
        data = self.rng.randbytes(min(self.length(256 * 1024), MAX_SIZE - offset))
        assert os.pwrite(h.mount_fd, data, offset) == len(data)
        assert os.pwrite(h.ref_fd, data, offset) == len(data)
        if offset > len(model):
            model.extend(bytes(offset - len(model)))
        model[offset:offset + len(data)] = data
        return f"pwrite inode {h.inode} [{offset}, {offset + len(data)})"

    def op_read(self) -> str:
        h = self.handle()
        if h is None:
            return self.op_open()
        model = self.data[h.inode]
        offset = self.offset_in(len(model), 100)
        size = self.length(512 * 1024)
        what = f"pread inode {h.inode} {size} bytes at {offset} (size {len(model)})"
        self.check(what, os.pread(h.mount_fd, size, offset), os.pread(h.ref_fd, size, offset),
                   bytes(model[offset:offset + size]))
        return what

    def op_ftruncate(self) -> str:
        h = self.handle()
        if h is None:
            return self.op_open()
        size = self._new_size(len(self.data[h.inode]))
        os.ftruncate(h.mount_fd, size)
        os.ftruncate(h.ref_fd, size)
        _resize(self.data[h.inode], size)
        return f"ftruncate inode {h.inode} to {size}"

    def op_truncate(self) -> str:
        if not self.names:
            return self.op_open()
        name = self.rng.choice(sorted(self.names))
        size = self._new_size(len(self.data[self.names[name]]))
        os.truncate(self.mount / name, size)
        os.truncate(self.ref / name, size)
        _resize(self.data[self.names[name]], size)
        return f"truncate {name} to {size}"

    def _new_size(self, size: int) -> int:
        if self.rng.random() < 0.2:
            return 0
        return self.rng.randrange(0, min(MAX_SIZE, 2 * size + 4096) + 1)

    def op_mmap_read(self) -> str:
        h = self.handle()
        if h is None or not self.data[h.inode]:
            return self.op_read()
        model = self.data[h.inode]
        offset = self.rng.randrange(len(model))
        end = min(len(model), offset + self.length(64 * 1024))
        with mmap.mmap(h.mount_fd, len(model), mmap.MAP_SHARED, mmap.PROT_READ) as view:
            got = view[offset:end]
        with mmap.mmap(h.ref_fd, len(model), mmap.MAP_SHARED, mmap.PROT_READ) as view:
            ref = view[offset:end]
        what = f"mmap read inode {h.inode} [{offset}, {end}) (size {len(model)})"
        self.check(what, got, ref, bytes(model[offset:end]))
        return what

    def op_mmap_write(self) -> str:
        h = self.handle()
        if h is None or not self.data[h.inode]:
            return self.op_write()
        model = self.data[h.inode]
        offset = self.rng.randrange(len(model))
        data = self.rng.randbytes(min(len(model) - offset, self.length(64 * 1024)))
        for fd in (h.mount_fd, h.ref_fd):
            with mmap.mmap(fd, len(model), mmap.MAP_SHARED,
                           mmap.PROT_READ | mmap.PROT_WRITE) as view:
                view[offset:offset + len(data)] = data
        model[offset:offset + len(data)] = data
        return f"mmap write inode {h.inode} [{offset}, {offset + len(data)})"

    def op_fallocate(self) -> str:
        h = self.handle()
        if h is None:
            return self.op_open()
        model = self.data[h.inode]
        offset = self.offset_in(len(model), 65536)
        length = min(self.length(256 * 1024), MAX_SIZE - offset) or 1
        os.posix_fallocate(h.mount_fd, offset, length)
        os.posix_fallocate(h.ref_fd, offset, length)
        if offset + length > len(model):
            model.extend(bytes(offset + length - len(model)))
        return f"posix_fallocate inode {h.inode} [{offset}, {offset + length})"

    def op_rename(self) -> str:
        if not self.names:
            return self.op_open()
        src = self.rng.choice(sorted(self.names))
        dst = self.rng.choice(NAMES)
        os.rename(self.mount / src, self.mount / dst)
        os.rename(self.ref / src, self.ref / dst)
        if src != dst:
            self.names[dst] = self.names.pop(src)
        self._forget_unreachable()
        return f"rename {src} -> {dst}"

    def op_unlink(self) -> str:
        if not self.names:
            return self.op_open()
        name = self.rng.choice(sorted(self.names))
        os.unlink(self.mount / name)
        os.unlink(self.ref / name)
        del self.names[name]
        self._forget_unreachable()
        return f"unlink {name}"

    def op_fsync(self) -> str:
        h = self.handle()
        if h is None:
            return self.op_open()
        os.fsync(h.mount_fd)
        return f"fsync inode {h.inode}"

    def op_read_whole(self) -> str:
        if not self.names:
            return self.op_open()
        name = self.rng.choice(sorted(self.names))
        what = f"read all of {name}"
        self.check(what, (self.mount / name).read_bytes(), (self.ref / name).read_bytes(),
                   bytes(self.data[self.names[name]]))
        size = os.stat(self.mount / name).st_size
        if size != len(self.data[self.names[name]]):
            raise AssertionError(f"stat {name}: size {size}, "
                                 f"expected {len(self.data[self.names[name]])}")
        return what

    def _forget_unreachable(self) -> None:
        live = set(self.names.values()) | {h.inode for h in self.handles}
        for inode in [i for i in self.data if i not in live]:
            del self.data[inode]

    def close_all(self) -> None:
        while self.handles:
            self.op_close()
        self._forget_unreachable()


def _resize(model: bytearray, size: int) -> None:
    if size < len(model):
        del model[size:]
    else:
        model.extend(bytes(size - len(model)))


def _diff(got: bytes, expected: bytes) -> str:
    if len(got) != len(expected):
        return f"{len(got)} bytes instead of {len(expected)}"
    first = next(i for i in range(len(got)) if got[i] != expected[i])
    return f"first difference at byte {first}: {got[first:first + 8]!r} instead of " \
           f"{expected[first:first + 8]!r}"


WEIGHTS: dict[str, int] = {
    "op_write": 25, "op_read": 25, "op_mmap_read": 3, "op_mmap_write": 3, "op_ftruncate": 5,
    "op_truncate": 3, "op_fallocate": 3, "op_rename": 4, "op_unlink": 1, "op_open": 8,
    "op_close": 5, "op_fsync": 1, "op_read_whole": 3,
}


def run_random_operations(mount: Path, ref: Path, seed: int, count: int) -> float:
    """``count`` random operations from ``seed``; returns the seconds they took."""
    twin = Twin(mount, ref, random.Random(seed))
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    started = time.monotonic()
    index = 0
    try:
        for index in range(count):
            op: Callable[[], str] = getattr(twin, twin.rng.choices(kinds, weights)[0])
            twin.history.append(f"{index}: {op()}")
        twin.close_all()
        for name in sorted(twin.names):  # after every close: what was committed
            twin.check(f"{name} after the last close", (mount / name).read_bytes(),
                       (ref / name).read_bytes(), bytes(twin.data[twin.names[name]]))
        assert sorted(os.listdir(mount)) == sorted(os.listdir(ref)) == sorted(twin.names)
    except BaseException as exc:
        recent = "\n  ".join(twin.history)
        raise AssertionError(f"seed {seed} (MERIDIAN_DATA_SEED={seed} replays it), operation "
                             f"{index}: {exc!r}\n last operations:\n  {recent}") from exc
    finally:
        for h in twin.handles:
            os.close(h.mount_fd)
            os.close(h.ref_fd)
    return time.monotonic() - started


def test_random_operations_read_back_every_byte(file_site: RunningSite, tmp_path: Path) -> None:
    seed = int(os.environ.get("MERIDIAN_DATA_SEED") or random.randrange(1 << 32))
    print(f"seed {seed}: MERIDIAN_DATA_SEED={seed} replays this run")
    ref = tmp_path / "reference"
    ref.mkdir()
    work = file_site.mount / "random"
    work.mkdir()
    seconds = run_random_operations(work, ref, seed, OPS)
    print(f"{OPS} operations in {seconds:.1f} s")
