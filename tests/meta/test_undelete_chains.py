"""Undeletes and purges racing other changes at three sites: the chains the randomized runs
with the trash on found diverging, each reduced to its few changes (``docs/conflicts.md``).
Every case runs on both engines in a three-site ``World`` with the trash on, heals and checks
that every site shows the same tree and undo records, with nothing acknowledged lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.meta.randomized import ENGINES, Pull, Step, World
from tests.meta.test_hard_link_chains import do, healed_files

EAST, WEST, NORTH = 0, 1, 2


@pytest.fixture(params=ENGINES)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with World(request.param, trash=True) as made:
        yield made


def test_a_loser_numbered_past_an_undeleted_name_takes_it_once_freed(world: World) -> None:
    """North's ``f`` loses its name to east's at east and west (there it is
    ``f.conflict-…-north``) and is deleted there under that name; east's user undeletes it,
    which makes a new file under the conflict name. North writes ``f`` meanwhile, so the
    file comes back everywhere, and loses ``f`` again to the ``f`` west undeleted. At north
    the new file held the conflict name then, so north's file got ``-2``; at east that file
    was gone by the time, so it got the name itself. Once the name is freed, a loser
    numbered past it takes it, as where it was free when the loser came."""
    do(world,
       Step(NORTH, "w", "/g.exr"), Step(NORTH, "w", "/f"),
       Pull(WEST, NORTH, 1),
       Step(EAST, "w", "/f"),
       Pull(NORTH, EAST, 50, 1), Pull(WEST, EAST, 50, 1),
       Step(NORTH, "u", "/f"), Step(NORTH, "w", "/f"),
       Step(WEST, "u", "/f.conflict-20251201-120003-north"), Step(WEST, "u", "/f"),
       Pull(EAST, WEST),
       Step(WEST, "n", "/f"),
       Step(EAST, "n", "/f.conflict-20251201-120003-north"),
       Pull(WEST, EAST, 3),
       Step(WEST, "u", "/f.conflict-20251201-120003-north"))
    files = healed_files(world)
    assert files["/f.conflict-20251201-120003-north"] == "north-4 n1"
    assert not any(path.endswith("-north-2") for path in files)
