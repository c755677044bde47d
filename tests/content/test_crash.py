"""Crash safety (docs/design.md, rule 2): what commit acknowledged survives kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import meridian
from meridian.content import LocalVolume, RangeSet, hash_bytes

# The child commits content in a loop and prints each hash once commit has returned, while
# also keeping a staging file and a partial instance in flight; the parent kills it mid-work.
CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from meridian.content import LocalVolume, hash_bytes

    volume = LocalVolume(Path(sys.argv[1]))
    partial_data = bytes(range(256)) * 64
    partial = hash_bytes(partial_data)
    volume.begin_partial(partial, len(partial_data))
    volume.write_partial(partial, 0, partial_data[:4096])
    print("partial", partial, flush=True)
    for n in range(10_000):
        data = n.to_bytes(4, "big") * 16_384
        staging = volume.new_staging()
        for offset in range(0, len(data), 8192):
            staging.write(offset, data[offset : offset + 8192])
        leftover = volume.new_staging()
        leftover.write(0, b"never acknowledged")
        print("committed", volume.commit(staging).hash, n, flush=True)
    """
)


def test_committed_content_survives_sigkill(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    env = dict(os.environ, PYTHONPATH=str(Path(meridian.__file__).parents[1]))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    acknowledged: dict[str, int] = {}
    try:
        kind, partial = child.stdout.readline().split()
        assert kind == "partial"
        while len(acknowledged) < 25:
            line = child.stdout.readline()
            assert line, "child exited early"
            _, content_hash, number = line.split()
            acknowledged[content_hash] = int(number)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    volume = LocalVolume(root)
    for h, n in acknowledged.items():
        data = volume.read(h, 0, 1 << 20)
        assert data == n.to_bytes(4, "big") * 16_384
        assert hash_bytes(data) == h
    assert list((root / "staging").iterdir()) == []
    assert volume.present(partial) == RangeSet([(0, 4096)])
    assert volume.usage().staging == 0
