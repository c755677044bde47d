"""Hard links renamed, unlinked, deleted and written at several sites at once: the chains the
randomized runs found diverging, each reduced to its few changes (``docs/conflicts.md``).

Every case runs on both engines in a three-site ``World`` (a clock that moves a second per
change, so versions follow the order of the steps), with partial deliveries where the case
needs a site to have seen only part of another's journal, then heals and checks that every
site shows the same tree, nothing acknowledged lost, and the outcome the rules give.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.meta.randomized import ENGINES, Pull, Step, World, tree

EAST, WEST, NORTH = 0, 1, 2


@pytest.fixture(params=ENGINES)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with World(request.param) as made:
        yield made


def do(world: World, *steps: Step | Pull) -> None:
    for step in steps:
        if isinstance(step, Pull):
            world.pull(step)
        else:
            assert world.do(step), f"{step} could not be made"


def healed_files(world: World) -> dict[str, str]:
    """Heal, check the sites agree and lost nothing; the files as ``path: content nN``."""
    world.heal()
    outcome = world.check()
    assert outcome.ok, world.explain(outcome)
    return {path: " ".join(what.split()[:1] + what.split()[3:4])
            for path, what in tree(world.sites[EAST]).items()
            if not what.startswith(("dir", "->"))}


def test_a_file_deleted_at_its_link_name_comes_back_as_that_name(world: World) -> None:
    """North moves the file's first name and unlinks it, keeping the link's name, which east
    renames and then deletes; west, which saw only the create, writes and renames the first
    name. The write brings the file back, as the name east deleted (the link's), not as the
    first name north had removed: west's rename of the first name moves nothing."""
    do(world,
       Step(NORTH, "w", "/d"), Step(NORTH, "l", "/d", "/f"),
       Step(NORTH, "r", "/d", "/g"), Step(NORTH, "u", "/g"),
       Pull(EAST, NORTH), Pull(WEST, NORTH, 1, 1),
       Step(EAST, "r", "/f", "/b"),
       Step(WEST, "w", "/d"), Step(WEST, "r", "/d", "/h"),
       Step(EAST, "u", "/b"))
    assert healed_files(world) == {"/b": "west-2 n1"}


def test_a_file_brought_back_gets_each_of_its_names_once(world: World) -> None:
    """West's file gets a link at east (kept, then unlinked there), its first name renamed
    by west and unlinked at north; east links it again; north then deletes it while west
    writes it. It comes back with the names it had when deleted, each once: the unlinks of
    one name each (east's of ``f``, north's of ``e``) are both done once it has a name more
    (the link ``g.exr``)."""
    do(world,
       Step(WEST, "w", "/b"), Pull(EAST, WEST),
       Step(WEST, "r", "/b", "/e"), Pull(NORTH, WEST),
       Step(EAST, "l", "/b", "/f"), Pull(NORTH, EAST),
       Step(EAST, "u", "/f"), Step(NORTH, "u", "/e"),
       Pull(EAST, NORTH), Pull(NORTH, EAST, 3, 1),
       Step(EAST, "l", "/e", "/g.exr"),
       Step(WEST, "w", "/e"),
       Step(NORTH, "u", "/e"),
       Pull(EAST, NORTH, 3))
    files = healed_files(world)
    assert files == {"/g.exr": "west-2 n1"}


def test_a_removed_name_whose_removal_is_undone_comes_back_where_it_was_renamed(
        world: World) -> None:
    """Two sites each unlink a different name of one file (east the link, west the first
    name): the later unlink is undone, so the file keeps its first name, which north renamed
    meanwhile (later than any change that bound it): it is there, at every site."""
    do(world,
       Step(EAST, "w", "/f"), Step(EAST, "l", "/f", "/g"))
    world.heal()
    do(world,
       Step(EAST, "u", "/g"),
       Step(NORTH, "r", "/f", "/h"),
       Step(WEST, "u", "/f"),
       # west hears of north's rename after its own unlink, and of east's unlink last
       Pull(WEST, NORTH), Pull(EAST, WEST), Pull(EAST, NORTH))
    assert healed_files(world) == {"/h": "east-1 n1"}


def test_a_rename_of_a_conflict_copy_a_site_never_made_is_followed(world: World) -> None:
    """East's version e1 loses to north's concurrent n1: west and north keep e1 as a
    conflict copy, east does not (its own e2 replaced e1 there). West renames the copy to
    ``x`` and writes it there, north renames it to ``y`` later. North's rename reaches east
    before the copy exists there; the copy first appears at east when west's write brings it,
    as ``x``: it goes where north's later rename put it, as everywhere else."""
    do(world, Step(EAST, "w", "/d"))
    world.heal()
    do(world,
       Step(EAST, "w", "/d"), Step(NORTH, "w", "/d"),
       Pull(WEST, EAST), Pull(WEST, NORTH), Pull(NORTH, EAST),
       Step(EAST, "w", "/d"))
    copy = next(path for path in tree(world.sites[WEST]) if ".conflict-" in path)
    do(world,
       Step(WEST, "r", copy, "/x"), Step(NORTH, "r", copy, "/y"),
       Step(WEST, "w", "/x"),
       Pull(EAST, NORTH))  # north's rename reaches east before the copy exists there
    files = healed_files(world)
    assert "/x" not in files and files["/y"].startswith("west-"), files


def test_one_name_of_a_hard_linked_file_renamed_at_two_sites(world: World) -> None:
    """North links ``b.exr`` to the file, then renames its first name to ``a.txt`` after
    east renamed that same name to ``d1/notes``: the later rename wins for that name, the
    link's name stays (as a conflict copy's name here: west made a ``b.exr`` of its own)."""
    do(world, Step(EAST, "m", "/d1"), Step(EAST, "w", "/shot.clip"))
    world.heal()
    do(world,
       Step(NORTH, "l", "/shot.clip", "/b.exr"),
       Step(WEST, "w", "/b.exr"),
       Step(EAST, "r", "/shot.clip", "/d1/notes"),
       Step(NORTH, "r", "/shot.clip", "/a.txt"))
    files = healed_files(world)
    assert "/d1/notes" not in files and files["/a.txt"] == "east-1 n2", files
    assert files["/b.exr"] == "west-2 n1"



def test_an_undone_unlink_takes_back_the_very_name_being_removed(world: World) -> None:
    """East's file loses its first name ``h`` to west's later rename onto it (west and north
    keep it as a conflict name). East renames the link's name ``a`` to ``e`` and unlinks it;
    north renames the first name, later, to ``d`` then ``e`` and unlinks it there. North's
    unlink is the later: undone, the file keeps its first name, as ``e``. At north, east's
    unlink of the link's name arrives when the link's name holds ``e``: the first name
    comes back onto ``e``, the link's name moves aside, and that is the one that goes."""
    do(world,
       Step(WEST, "s", "/a", "f"), Step(EAST, "w", "/h"), Step(WEST, "w", "/c.exr"),
       Step(EAST, "l", "/h", "/a"),
       Step(WEST, "r", "/c.exr", "/g.exr"), Step(WEST, "r", "/g.exr", "/h"),
       Step(NORTH, "w", "/h"),
       Pull(NORTH, EAST, 1),
       Step(EAST, "r", "/a", "/e"), Step(EAST, "u", "/e"),
       Pull(WEST, EAST, 1, 1))
    copy = next(path for path in tree(world.sites[NORTH]) if path.startswith("/h.conflict-"))
    do(world,
       Step(WEST, "r", copy, "/c.exr"),
       Step(NORTH, "r", copy, "/d"), Step(NORTH, "r", "/d", "/e"), Step(NORTH, "u", "/e"))
    files = healed_files(world)
    assert files["/e"] == "east-1 n1" and "/c.exr" not in files, files


def test_a_name_unlinked_elsewhere_after_the_delete_here_does_not_come_back(
        world: World) -> None:
    """East's file has names ``a`` (first) and ``f`` (a link). North unlinks ``f``; east,
    not knowing, unlinks ``a`` and then ``f`` (a delete). West, having seen north's unlink,
    writes the file: the write undoes the delete, and the two unlinks of one name each
    (north's of ``f``, east's of ``a``) leave it the name the later removed: ``a``. At east
    the file was deleted as ``f`` before north's unlink of ``f`` arrived."""
    do(world,
       Step(EAST, "w", "/a"), Step(EAST, "l", "/a", "/f"),
       Pull(NORTH, EAST),
       Step(NORTH, "u", "/f"), Step(EAST, "u", "/a"), Step(EAST, "u", "/f"),
       Pull(WEST, NORTH, 50, 1),
       Step(WEST, "w", "/a"))
    assert healed_files(world) == {"/a": "west-2 n1"}


def test_a_name_unlinked_elsewhere_comes_back_where_it_was_renamed_here(
        world: World) -> None:
    """North unlinks the file's first name, renames its link ``d`` to ``e`` and deletes it;
    west, not knowing, unlinks ``d``; east writes the file. The write undoes north's delete;
    of the unlinks of one name each (north's of the first name, west's of the link), west's
    is the later and is undone: the file keeps the link's name, where north's rename put
    it. At north, west's unlink arrives after the delete and names ``d``, which is ``e``
    here."""
    do(world,
       Step(EAST, "w", "/g.exr"), Step(EAST, "l", "/g.exr", "/d"),
       Pull(NORTH, EAST), Step(NORTH, "u", "/g.exr"), Pull(WEST, EAST),
       Step(NORTH, "r", "/d", "/e"), Step(NORTH, "u", "/e"),
       Step(WEST, "u", "/d"), Pull(NORTH, WEST),
       Step(EAST, "w", "/d"))
    assert healed_files(world) == {"/e": "east-2 n1"}


def test_an_unlink_of_a_name_removed_here_too_keeps_its_place_here(world: World) -> None:
    """Three names: ``g.exr`` (first), links ``d`` and ``a``. North unlinks the first name,
    renames ``d`` to ``e`` and unlinks it, then deletes the file as ``a``; east renames
    ``a`` to ``f`` and unlinks it; west unlinks ``d``, the latest unlink of one name; east
    then writes the file. It comes back as the name west's unlink removed, where north's
    rename put it: ``e``. At north, west's unlink of ``d`` arrives when the file is deleted
    and that name was already removed here, as ``e``."""
    do(world,
       Step(EAST, "w", "/g.exr"), Step(EAST, "l", "/g.exr", "/d"),
       Step(EAST, "l", "/g.exr", "/a"),
       Pull(NORTH, EAST, 50, 1), Step(NORTH, "u", "/g.exr"), Pull(WEST, EAST),
       Step(EAST, "r", "/a", "/f"), Step(NORTH, "r", "/d", "/e"),
       Step(EAST, "u", "/f"), Step(NORTH, "u", "/e"),
       Step(WEST, "u", "/d"), Step(NORTH, "u", "/a"), Pull(NORTH, WEST),
       Step(EAST, "w", "/d"))
    assert healed_files(world) == {"/e": "east-2 n1"}


def test_a_name_a_delete_removed_comes_back_with_the_file(world: World) -> None:
    """North's file gets a link ``a`` at east; east unlinks the first name (keeping ``a``)
    then deletes the file as ``a``; north, not knowing of the link, deletes the file as its
    first name; west writes it. The write undoes both deletes: the file comes back without
    its first name (east unlinked it keeping another) and with ``a``. At north, where the
    file was already deleted, east's delete of ``a`` must not drop the name kept for it."""
    do(world,
       Step(NORTH, "w", "/d"), Step(NORTH, "r", "/d", "/g.exr"),
       Pull(EAST, NORTH), Step(EAST, "l", "/g.exr", "/a"),
       Step(NORTH, "r", "/g.exr", "/c.exr"), Pull(WEST, NORTH),
       Step(EAST, "u", "/g.exr"), Step(NORTH, "u", "/c.exr"), Step(EAST, "u", "/a"),
       Step(WEST, "w", "/c.exr"))
    assert healed_files(world) == {"/a": "west-2 n1"}


def test_an_unlink_done_late_removes_the_first_name_not_the_new_link(world: World) -> None:
    """North unlinks the link ``g.exr`` (keeping the first name), west the first name
    (keeping ``g.exr``): the later, west's, is left undone where it would leave the file
    nameless. North then renames the first name to ``f`` and links ``c.exr``: with a name
    more, both unlinks are done, and the one left undone removes the first name (``f``),
    never the new link."""
    do(world,
       Step(EAST, "w", "/c.exr"), Pull(WEST, EAST, 3),
       Step(EAST, "l", "/c.exr", "/g.exr"), Pull(NORTH, EAST, 1),
       Step(WEST, "r", "/c.exr", "/b"), Step(NORTH, "u", "/g.exr"),
       Step(WEST, "r", "/b", "/h"), Pull(WEST, EAST, 50, 1), Step(WEST, "u", "/h"),
       Step(NORTH, "r", "/c.exr", "/f"), Step(NORTH, "l", "/f", "/c.exr"))
    assert healed_files(world) == {"/c.exr": "east-1 n1"}


def test_a_rename_reaching_a_deleted_file_moves_a_name_removed_before(world: World) -> None:
    """North unlinks the link ``g.exr``; west renames the first name onto ``g.exr``; east
    unlinks the first name there (keeping the link) and west deletes the file; north renames
    the first name to ``f`` and writes it. The write undoes west's delete; of the unlinks of
    one name each, east's (of the first name) is the later and is undone: the file keeps its
    first name, where north's rename put it. At east the rename arrives when the file is
    already deleted there: the record of the first name's removal moves with it."""
    do(world,
       Step(EAST, "w", "/c.exr"), Pull(WEST, EAST, 3),
       Step(EAST, "l", "/c.exr", "/g.exr"), Pull(NORTH, EAST, 1),
       Step(NORTH, "u", "/g.exr"), Step(WEST, "r", "/c.exr", "/g.exr"),
       Pull(EAST, WEST, 1), Step(EAST, "u", "/g.exr"),
       Step(NORTH, "r", "/c.exr", "/f"), Step(NORTH, "w", "/f"),
       Step(WEST, "u", "/g.exr"))
    assert healed_files(world) == {"/f": "north-2 n1"}


def test_a_name_given_back_by_a_write_goes_when_the_file_is_linked_again(
        world: World) -> None:
    """As above, then north links ``c.exr`` to the file: with a name more, both unlinks of one
    name each are done, the first name's too (given back at east by north's write, where the
    file was deleted): only the new link is left, at every site."""
    do(world,
       Step(EAST, "w", "/c.exr"), Pull(WEST, EAST, 3),
       Step(EAST, "l", "/c.exr", "/g.exr"), Pull(NORTH, EAST, 1),
       Step(NORTH, "u", "/g.exr"), Step(WEST, "r", "/c.exr", "/g.exr"),
       Pull(EAST, WEST, 1), Step(EAST, "u", "/g.exr"),
       Step(NORTH, "r", "/c.exr", "/f"), Step(NORTH, "w", "/f"),
       Step(NORTH, "l", "/f", "/c.exr"), Step(WEST, "u", "/g.exr"))
    assert healed_files(world) == {"/c.exr": "north-2 n1"}


def test_a_copy_written_through_a_link_comes_back_under_its_own_name(world: World) -> None:
    """North's version of /f loses to west's and becomes a conflict copy at west and east;
    north writes on from its own version, so it never makes that copy. East links the copy as
    /a and west writes it through /a. North learns of the copy only from that write: the
    write names the copy's own name (not the link's), so north brings it back as
    ``f.conflict-…-north`` with /a as its link, like the others (it once named it after the
    link, ``a.conflict-…``: seeds 1151 and 71192 of the hard-link mix)."""
    do(world,
       Step(WEST, "w", "/f"), Pull(NORTH, WEST), Pull(EAST, WEST),
       Step(NORTH, "w", "/f"), Step(WEST, "w", "/f"), Step(NORTH, "w", "/f"),
       Pull(WEST, NORTH, 3, 1), Pull(EAST, WEST))
    copies = [path for path in tree(world.sites[EAST]) if path.endswith("-north")]
    assert len(copies) == 1 and copies[0].startswith("/f.conflict-")
    do(world, Step(EAST, "l", copies[0], "/a"), Pull(WEST, EAST), Step(WEST, "w", "/a"))
    files = healed_files(world)
    assert files[copies[0]] == files["/a"] == "west-5 n2"
    assert not any(path.startswith("/a.conflict-") for path in files)


def test_a_superseded_copy_written_meanwhile_comes_back_with_every_name(world: World) -> None:
    """East's version of /g loses to north's and is a conflict copy at north and west, where
    west links it as /a; north writes the copy through /a while east writes on from its own
    version, which supersedes the copy at west: west drops it, names and all, before north's
    write arrives. The write brings it back with every name, as a delete of it would come
    back: its own name and /a, at west as at east, which never made the copy (seeds 1367 and
    1389 of the every-kind mix)."""
    do(world,
       Step(WEST, "w", "/g"), Pull(EAST, WEST), Pull(NORTH, WEST),
       Step(EAST, "w", "/g"), Step(NORTH, "w", "/g"), Pull(NORTH, EAST),
       Step(EAST, "w", "/g"), Pull(WEST, NORTH))
    copies = [path for path in tree(world.sites[WEST]) if path.endswith("-east")]
    assert len(copies) == 1 and copies[0].startswith("/g.conflict-")
    do(world, Step(WEST, "l", copies[0], "/a"), Pull(NORTH, WEST), Step(NORTH, "w", "/a"),
       Pull(WEST, EAST))
    assert copies[0] not in tree(world.sites[WEST])  # superseded there, for now
    files = healed_files(world)
    assert files[copies[0]] == files["/a"] == "north-5 n2"
    assert not any(path.startswith("/a.conflict-") for path in files)


def test_a_name_that_looks_like_a_conflict_name_is_not_taken_for_the_loser(world: World) -> None:
    """East names a file ``f.conflict-…-east`` itself (a copy kept by hand, say), links it as
    /f and renames that link to /h; north's own /f (later) makes the link lose /f at north,
    where it waits to take /f back; west renames north's /f onto /h, later still. Once /f is
    free at north, the waiting loser has moved on (to /h, then a conflict name of /h): nothing
    takes /f back. The file's own name, which only looks like a conflict name of /f, stays
    where it is (it once moved to /f at north: seed 2032 of the hard-link mix)."""
    own = "/f.conflict-20251201-120013-east"
    do(world,
       Step(EAST, "w", own), Step(EAST, "l", own, "/f"), Step(EAST, "r", "/f", "/h"),
       Step(NORTH, "w", "/f"), Pull(WEST, NORTH, 50, 1), Step(WEST, "r", "/f", "/h"))
    files = healed_files(world)
    assert files[own] == "east-1 n2" and files["/h"] == "north-2 n1"
    assert "/f" not in files


def test_two_names_of_one_file_put_into_lost_found_keep_a_name_each(world: World) -> None:
    """East renames west's file to ``b`` and links it as ``e/e``, then renames ``b`` into
    ``a``; west removes both folders meanwhile. Both names of the file go to lost+found, each
    under a name of its own (the link's carries the link's version), whatever order the
    folders went in: east moves the link's name there first, west the file's own name."""
    do(world,
       Step(WEST, "m", "/e"), Step(WEST, "w", "/g.exr"), Step(WEST, "d", "/e"),
       Pull(EAST, WEST, 3, 1),
       Step(EAST, "r", "/g.exr", "/b"), Step(EAST, "l", "/b", "/e/e"),
       Step(WEST, "m", "/a"),
       Pull(EAST, WEST, 1),
       Step(EAST, "r", "/b", "/a/e"),
       Step(WEST, "d", "/a"))
    files = healed_files(world)
    assert list(files.values()) == ["west-1 n2", "west-1 n2"]
    own, link = sorted(files)
    assert own == "/.meridian/lost+found/e~" + world.sites[EAST].resolve(own).file_id
    assert link.startswith(own + "+")


def test_a_write_after_a_delete_keeps_the_name_the_latest_unlink_removed(world: World) -> None:
    """East's file gets a link ``b`` at west and ``f`` at north; its own name is renamed at
    west and unlinked at east, ``b`` is unlinked at east then at west (the latest unlink);
    west and north each rename another file over ``f``, north's a delete there (its last
    name), while east writes the file through ``f``. The write brings the file back with the
    name the latest unlink removed (``b``), at north too, where the file was deleted and the
    removal of ``f`` by west's rename had been undone when it came (the last name then)."""
    do(world,
       Step(EAST, "w", "/c.exr"), Pull(WEST, EAST, 3),
       Step(EAST, "s", "/b", "e"), Pull(NORTH, EAST, 1),
       Step(NORTH, "s", "/h", "b"),
       Step(EAST, "w", "/c.exr"),
       Step(WEST, "r", "/c.exr", "/f"),
       Step(NORTH, "l", "/c.exr", "/f"),
       Step(WEST, "l", "/f", "/b"),
       Pull(WEST, NORTH, 3), Pull(EAST, WEST, 50, 1),
       Step(EAST, "u", "/b"),
       Step(EAST, "u", "/f.conflict-20251201-120006-west"),
       Pull(NORTH, EAST),
       Step(WEST, "r", "/h", "/f"),
       Step(EAST, "w", "/f"),
       Pull(NORTH, WEST, 50, 1),
       Step(NORTH, "u", "/f"),
       Step(NORTH, "w", "/h"), Step(NORTH, "l", "/h", "/g.exr"),
       Step(NORTH, "r", "/g.exr", "/f"),
       Step(WEST, "u", "/b"),
       Pull(NORTH, WEST, 3, 1))
    assert healed_files(world) == {"/b": "east-3 n1", "/f": "north-4 n2", "/h": "north-4 n2"}


def test_a_copy_renamed_then_deleted_comes_back_under_the_name_it_was_given(
        world: World) -> None:
    """West's write of ``b`` loses to east's and is kept as a conflict copy, which west
    renames to ``b`` (east's file moved away meanwhile), links as ``d`` and writes again.
    At east the rename lost ``b`` to east's own later ``b`` and the copy kept its conflict
    name; north then renames another file over ``b``, a delete of the copy. West's write
    brings the copy back at every site as ``b``, the name west's rename gave it, not under
    the conflict name east had given it for a while."""
    do(world,
       Step(EAST, "w", "/h"), Step(EAST, "w", "/h"), Step(EAST, "w", "/h"),
       Step(NORTH, "w", "/h"),
       Pull(WEST, EAST),
       Step(EAST, "w", "/d"), Step(WEST, "r", "/h", "/b"), Step(EAST, "w", "/d"),
       Step(WEST, "w", "/b"), Step(EAST, "w", "/e"), Step(WEST, "w", "/c.exr"),
       Step(WEST, "w", "/b"), Step(EAST, "w", "/h"),
       Pull(WEST, EAST, 3),
       Step(EAST, "r", "/h", "/f"),
       Step(WEST, "r", "/b.conflict-20251201-120016-west", "/b"),
       Step(EAST, "r", "/f", "/d"),
       Pull(WEST, EAST), Pull(NORTH, WEST, 3),
       Step(WEST, "l", "/b", "/d"), Step(WEST, "w", "/d"),
       Step(NORTH, "r", "/e", "/b"),
       Step(EAST, "w", "/b"),
       Pull(EAST, NORTH, 3),
       Step(EAST, "r", "/b", "/f"), Step(EAST, "r", "/b", "/c.exr"))
    assert healed_files(world) == {"/b": "west-12 n2", "/c.exr": "east-8 n1",
                                   "/d": "west-12 n2", "/f": "east-13 n1", "/h": "north-4 n1"}


def test_two_names_of_one_file_waiting_for_one_name_both_wait(world: World) -> None:
    """East links its file as ``c.exr`` and renames the link to ``g.exr``; north, which saw
    only the file, renames it to ``g.exr``, deletes it, and writes a new ``g.exr``. When
    east's changes reach north, both names of east's file lose ``g.exr`` to north's new
    file and wait for it. North removes its file: the later of the two (north's rename)
    takes the name; east then unlinks that name, and the link's name, still waiting, takes
    ``g.exr``, as at east."""
    do(world,
       Step(NORTH, "w", "/b"), Step(NORTH, "w", "/e"), Step(NORTH, "u", "/e"),
       Pull(EAST, NORTH, 50, 1),
       Step(EAST, "w", "/a"), Pull(NORTH, EAST, 3, 1),
       Step(EAST, "l", "/a", "/c.exr"), Pull(NORTH, EAST, 3, 1),
       Step(EAST, "r", "/c.exr", "/g.exr"),
       Step(NORTH, "r", "/a", "/g.exr"), Step(NORTH, "u", "/g.exr"),
       Step(NORTH, "w", "/g.exr"),
       Pull(NORTH, EAST),
       Step(NORTH, "u", "/g.exr"),
       Step(EAST, "u", "/a"))
    assert healed_files(world) == {"/b": "north-1 n1", "/g.exr": "east-3 n1"}


def test_a_conflict_copy_keeps_its_own_name_when_an_unlink_is_undone(world: World) -> None:
    """A conflict copy linked as ``f``: north unlinks ``f`` and west, later, the copy's own
    name. At east west's unlink comes first, so north's (the earlier) would remove the last
    name and is swapped with it: the copy gets its own name back, conflict tag and all (no
    site ever gave it the plain name), not ``e``, which would take the name from the file
    it is a copy of."""
    do(world,
       Step(EAST, "w", "/e"), Pull(WEST, EAST),
       Step(EAST, "w", "/e"), Step(WEST, "w", "/e"),
       Pull(WEST, EAST), Pull(EAST, WEST), Pull(NORTH, EAST))
    copy = next(path for path in tree(world.sites[EAST]) if "conflict" in path)
    do(world, Step(EAST, "l", copy, "/f"), Pull(NORTH, EAST), Pull(WEST, EAST),
       Step(NORTH, "u", "/f"), Step(WEST, "u", copy),
       Pull(EAST, WEST), Pull(EAST, NORTH))
    files = healed_files(world)
    assert sorted(files) == ["/e", copy]


def test_a_name_that_only_looks_like_a_conflict_name_comes_back_as_it_is(
        world: World) -> None:
    """West writes a file a user named like a conflict copy; east deletes it while west
    writes it again, so the write brings it back at east. It came back there without the
    tag, as a name that lost a conflict does, while west kept it: only a tag that encodes
    the change that bound the name (as Meridian's own tags do) is taken off now (seed 133
    of the mix ``wlupn``, where an undelete had made such a name)."""
    name = "/d.conflict-20251201-120034-north"
    do(world,
       Step(WEST, "w", name),
       Pull(EAST, WEST),
       Step(EAST, "u", name),
       Step(WEST, "w", name))
    assert list(healed_files(world)) == [name]


def test_two_undone_unlinks_of_one_name_are_redone_as_the_later(world: World) -> None:
    """West and north both unlink ``c.exr``, a name of a file with four names. At north each
    unlink of the name comes when it is the file's last name there, so both are left undone.
    West's link ``b`` then gives the file another name and the undone unlinks are redone:
    the earlier went alone and the later stayed on record for a name already gone, so
    west's unlink of ``b`` (earlier than north's of ``c.exr``) kept ``b`` at north, where
    every other site keeps ``c.exr``, the name the latest unlink removed (seed 30050 of
    ``wlsur`` in runs of 300 changes)."""
    do(world,
       Step(WEST, "w", "/a"), Step(WEST, "l", "/a", "/d"), Step(WEST, "l", "/d", "/c.exr"),
       Step(EAST, "s", "/d", "d"),
       Step(WEST, "r", "/a", "/h"),
       Pull(NORTH, WEST, 50, 1), Pull(EAST, NORTH, 1),
       Step(EAST, "u", "/h"), Step(WEST, "u", "/c.exr"), Step(EAST, "r", "/d", "/f"),
       Step(WEST, "l", "/d", "/b"), Step(EAST, "u", "/d"), Step(WEST, "u", "/b"),
       Step(NORTH, "u", "/c.exr"))
    assert healed_files(world) == {"/c.exr": "west-1 n1"}
