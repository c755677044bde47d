"""Directory renames at several sites that make a cycle at one of them: the chains the
randomized runs found diverging, each reduced to its few changes (``docs/conflicts.md``).

A rename that would put a directory under itself is undone into ``/.meridian/lost+found``
(the later of the renames that make the cycle). Once a later rename breaks the cycle, the
undone rename is redone, so a site that saw the breaking rename first (and never had the
cycle) and a site that had it end with the same tree. Every case runs on both engines in a
three-site ``World`` (a clock that moves a second per change), heals and checks that every
site shows the same tree with nothing acknowledged lost.
"""

from __future__ import annotations

from tests.meta.randomized import Pull, Step, World, tree
from tests.meta.test_hard_link_chains import do, world  # noqa: F401 (world: a fixture)

EAST, WEST, NORTH = 0, 1, 2
LOST = "/.meridian/lost+found"


def healed_dirs(world: World) -> list[str]:
    """Heal, check the sites agree and lost nothing; the directories a user made."""
    world.heal()
    outcome = world.check()
    assert outcome.ok, world.explain(outcome)
    return sorted(path for path, what in tree(world.sites[EAST]).items()
                  if what.startswith("dir") and path not in ("/", "/.meridian", LOST))


def test_a_rename_undone_for_a_cycle_is_redone_once_a_later_rename_breaks_it(
        world: World) -> None:
    """East moves ``x`` out of ``g``, ``g`` into ``x`` and ``g`` back to the top as
    ``c.exr``; west, which saw only the first changes, moves ``x`` into ``g`` (the latest
    rename of ``x``). West meets a cycle when east's ``g`` into ``x`` comes, and undoes its
    own rename; east's next rename breaks the cycle, so west redoes it, as east, which never
    had the cycle, applied it: ``x`` ends in ``c.exr`` everywhere."""
    do(world,
       Step(NORTH, "m", "/f"),
       Step(EAST, "m", "/g.exr"), Step(EAST, "m", "/g.exr/c.exr"),
       Step(EAST, "r", "/g.exr/c.exr", "/g.exr/a"),
       Pull(EAST, NORTH, 1),
       Step(EAST, "r", "/g.exr/a", "/f/a"),
       Step(EAST, "r", "/g.exr", "/f/a/d"),
       Step(EAST, "r", "/f/a/d", "/c.exr"),
       Pull(WEST, EAST, 3, 1),
       Step(WEST, "r", "/g.exr/a", "/g.exr/g.exr"))
    assert healed_dirs(world) == ["/c.exr", "/c.exr/g.exr", "/f"]


def test_a_local_rename_that_breaks_the_cycle_redoes_the_undone_rename(world: World) -> None:
    """West moves ``x`` into ``g`` after east moved ``g`` into ``x``: at west the cycle undoes
    west's own rename. West's user then moves ``g`` out to ``g2`` there: the cycle is gone,
    and west redoes its rename at once, as east does when the move of ``g`` reaches it."""
    do(world,
       Step(EAST, "m", "/g"), Step(EAST, "m", "/x"), Pull(WEST, EAST),
       Step(EAST, "r", "/g", "/x/g"),
       Step(WEST, "r", "/x", "/g/x"),
       Pull(WEST, EAST))
    west = world.sites[WEST]
    assert [path for path in tree(west) if path.startswith(LOST + "/")][-1].endswith("/g")
    lost_g = next(path for path in tree(west) if path.startswith(LOST + "/") and
                  path.endswith("/g"))
    do(world, Step(WEST, "r", lost_g, "/g2"))
    assert "/g2/x" in tree(west)  # redone at once, before any other site answers
    assert healed_dirs(world) == ["/g2", "/g2/x"]


def test_a_redone_rename_takes_its_name_back_once_it_is_free(world: World) -> None:
    """North moves east's ``d`` into west's ``a`` while east moved ``a`` into ``d``: east
    undoes north's rename (the later). West writes a file ``a/d`` meanwhile. When east moves
    ``a`` out of lost+found the cycle is gone and north's rename is redone, but ``d`` in
    ``a`` is taken by west's later file: the directory waits under its conflict name and
    takes the name back when west renames its file away, as at the sites that never had
    the cycle."""
    do(world,
       Step(NORTH, "w", "/h"), Step(NORTH, "r", "/h", "/b"),
       Step(WEST, "w", "/f"), Step(WEST, "m", "/a"),
       Step(NORTH, "r", "/b", "/a"),
       Pull(EAST, NORTH), Pull(EAST, WEST, 50, 1),
       Step(NORTH, "r", "/a", "/d"),
       Step(EAST, "m", "/d"),
       Pull(NORTH, EAST),
       Step(EAST, "r", "/a.conflict-20251201-120006-west", "/d/d"),
       Pull(EAST, NORTH, 3),
       Step(NORTH, "r", "/d", "/a/d"),
       Step(WEST, "w", "/a/d"),
       Pull(EAST, NORTH, 1, 1), Pull(EAST, WEST, 1, 1),
       Step(WEST, "r", "/a/d", "/h"))
    lost_a = next(path for path in tree(world.sites[EAST])
                  if path.startswith(LOST + "/") and path.endswith("/d")
                  and path.count("/") == 4)
    do(world, Step(EAST, "r", lost_a, "/b"))
    assert healed_dirs(world) == ["/b", "/b/d"]


def test_a_directory_delete_that_breaks_the_cycle_redoes_the_undone_rename(
        world: World) -> None:
    """North moves ``c`` into ``g/b``; east, later, moves ``g`` into ``c``: a cycle wherever
    both arrive, and east's rename is undone there. West removes ``g/b`` (empty where it ran):
    what north put in it goes to lost+found, the cycle is gone, and east's rename is redone,
    as at any site where the delete came before the cycle."""
    do(world,
       Step(EAST, "m", "/g"), Step(EAST, "m", "/g/b"), Step(EAST, "m", "/c"),
       Pull(WEST, EAST), Pull(NORTH, EAST))
    c = world.sites[EAST].resolve("/c").file_id
    do(world,
       Step(NORTH, "r", "/c", "/g/b/h"),
       Step(EAST, "r", "/g", "/c/e"),
       Step(WEST, "d", "/g/b"),
       Pull(NORTH, EAST), Pull(NORTH, WEST))
    assert healed_dirs(world) == [f"{LOST}/h~{c}", f"{LOST}/h~{c}/e"]


def test_a_file_named_like_a_conflict_copy_is_named_alike_in_lost_and_found(
        world: World) -> None:
    """North removes ``/b/e`` while east writes a file into it whose name looks like a
    conflict copy's (a user's copy of one, say). East moves the file to lost+found as the
    removal evacuates the folder, north puts it there as its folder is gone: both name it
    from the name without the conflict tag (seeds 20034 and 20094 of the 150-change runs;
    east stripped the tag, north kept it)."""
    do(world,
       Step(NORTH, "m", "/b"), Step(NORTH, "m", "/b/e"),
       Pull(EAST, NORTH, 1),
       Step(NORTH, "d", "/b/e"),
       Step(EAST, "w", "/b/e/h.conflict-20251201-120040-north"))
    assert healed_dirs(world) == ["/b"]
    lost = [path for path in tree(world.sites[EAST]) if path.startswith(LOST + "/")]
    assert [path.split("~")[0] for path in lost] == [f"{LOST}/h"]
