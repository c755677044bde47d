"""Randomized multi-site runs: the one generator and harness behind the seeded tests, the
Hypothesis state machine (``test_replica_randomized.py``) and ``scripts/soak.py``.

A ``World`` is three sites (stores of one engine, ``memory`` or ``sqlite``) whose links work
only when a step says so. ``act`` makes one random user change at one site (kinds chosen from
a mix), ``pull`` lets one link deliver one batch, ``heal`` delivers everything, ``check`` says
whether the sites diverged and whether anything acknowledged was lost.

The no-loss ledger: every write acknowledged at a site (its content is the text written,
unique per run) must still be readable at every site after healing, under its name, a conflict
name or in ``/.meridian/lost+found``. A version may be gone only when some site deliberately
removed or replaced that very version while it could see it: unlinked its last name, renamed
something over it, wrote over it. The generator records those as ``dead`` when it does them.

Mixes with purges (``p``) or undeletes (``n``) run with the trash on at every site; ``check``
then also compares every site's undo records (``undo_records``), which must be the same.
"""

from __future__ import annotations

import random
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from meridian.errors import MeridianError
from meridian.meta import TRASH_SETTING, AttrChanges, Inode, MetaStore
from meridian.meta.clock import HybridClock
from meridian.meta.memory import MemoryMetaStore
from meridian.meta.sqlite import SqliteMetaStore
from meridian.meta.undorecords import UndoRecords
from meridian.site.inspect import namespace_digest
from meridian.undo.restore import undelete, undo_store

FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
LINK = stat.S_IFLNK | 0o777
SITES = ("east", "west", "north")
NAMES = ("a", "b", "c.exr", "d", "e", "f", "g.exr", "h")
ENGINES = ("memory", "sqlite")

# One letter per kind of change, and how often it is picked when its mix allows it.
KINDS = {
    "w": 30,  # write (create + content, or overwrite an existing file)
    "m": 10,  # mkdir
    "r": 18,  # rename a file, symlink or directory, within or across directories, maybe over a name
    "u": 12,  # unlink
    "d": 8,   # rmdir (of an empty directory)
    "x": 6,   # chmod
    "o": 5,   # chown
    "l": 7,   # hard link
    "s": 5,   # symlink
    "a": 7,   # set or remove an extended attribute
    "t": 5,   # set the modification time (touch -d)
    "p": 3,   # purge the trash (of one removed path, or all of it)
    "n": 6,   # undelete a removed path (what ``meridian undelete`` does)
}
TRASH_KINDS = "pn"  # a mix with one of these runs with the trash on at every site

# The operation mixes the seeded runs and the soak go through.
MIXES = {
    "wmu": "writes + mkdir + unlink",
    "wr": "writes + renames",
    "wmud": "writes + mkdir + unlink + rmdir",
    "wmd": "writes + mkdir + rmdir",
    "wrx": "writes + renames + chmod",
    "wmrud": "writes + mkdir + renames + unlink + rmdir",
    "wlsur": "writes + hard links + symlinks + unlink + renames",
    "wxoat": "writes + chmod + chown + xattrs + times",
    "wmrudxosat": "every kind but hard links",
    "wmrudxolsat": "every kind",
    "wmrudpn": "writes + mkdir + renames + unlink + rmdir + purges + undeletes (trash on)",
    "wlupn": "writes + hard links + unlink + purges + undeletes (trash on)",
}


@dataclass
class Outcome:
    """What ``check`` found after healing: ``diverged`` names the sites whose digest differs
    from the first site's, ``records`` those whose undo records (trash, versions, purges and
    what they hold) differ from it; ``lost`` lists (site, text) of acknowledged writes not
    found."""

    diverged: list[str] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)
    records: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diverged and not self.lost and not self.records


def write(store: MetaStore, path: str, content: str) -> Inode:
    """Write ``content`` (its own hash) to ``path``, creating the file if needed."""
    parent, _, name = path.rpartition("/")
    directory = store.resolve(parent or "/")
    try:
        inode = store.lookup(directory.ino, name)
    except MeridianError:
        inode = store.create(directory.ino, name, FILE, 0, 0)
    return store.set_content(inode.ino, content, len(content))


def pull(dst: MetaStore, src: MetaStore, limit: int = 50, *, batches: int | None = None) -> int:
    """``dst`` takes ``src``'s journal from its position (``batches`` batches of ``limit``
    entries, or until nothing is left); returns how many entries were applied."""
    applied = 0
    while batches is None or batches > 0:
        entries = src.journal(after=dst.peer_position(src.site_name), limit=limit)
        if not entries:
            break
        result = dst.apply_entries(src.site_name, entries)
        applied += result.applied
        if result.gap:
            break
        if batches is not None:
            batches -= 1
    return applied


def sync(*sites: MetaStore) -> None:
    """Every site pulls from every other, whole journals, until nothing is left (a full mesh
    of working links: enough rounds for an entry to be relayed across every site)."""
    for _ in range(len(sites) + 1):
        for dst in sites:
            for src in sites:
                if dst is not src:
                    pull(dst, src)


def undo_records(store: MetaStore) -> list[tuple[str, str]]:
    """A site's undo records and what they hold (every site must end with the same)."""
    records = undo_store(store)
    assert isinstance(records, UndoRecords)
    return [row for prefix in ("trash:", "version:", "purge:", "purged:", "purgedtrash:", "hold:")
            for row in records._kv_prefixed(prefix)]


def tree(store: MetaStore) -> dict[str, str]:
    """A readable picture of a site's tree for failure messages."""
    shown = {}
    for path, inode in store.walk():
        if inode.is_file:
            what = f"{inode.content} {stat.S_IMODE(inode.mode):o} {inode.uid}:{inode.gid} n{inode.nlink}"
        elif inode.is_dir:
            what = f"dir {stat.S_IMODE(inode.mode):o} {inode.uid}:{inode.gid}"
        else:
            what = f"-> {inode.target}"
        xattrs = store.listxattr(inode.ino)
        shown[path] = what + (f" {xattrs}" if xattrs else "") + f" m{inode.mtime_ns}"
    return shown


class World:
    """Three sites of one engine, a shared ticking wall clock, and the no-loss ledger.

    The wall clock moves a second per reading: conflict names carry the second of the losing
    change, and two losers of one site in one second would need ``-2`` suffixes, whose order
    depends on arrival (rare in life, constant in a fast test)."""

    def __init__(self, engine: str, names: tuple[str, ...] = SITES, *,
                 directory: Path | None = None, trash: bool = False) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
        self.engine = engine
        self._tmp: Path | None = None
        self.sites: list[MetaStore] = []
        if engine == "sqlite" and directory is None:
            shm = Path("/dev/shm")
            self._tmp = Path(tempfile.mkdtemp(prefix="meridian-rand-",
                                              dir=shm if shm.is_dir() else None))
            directory = self._tmp
        now = [1_764_590_400_000]

        def wall_ms() -> int:
            now[0] += 1000
            return now[0]

        for name in names:
            store: MetaStore
            site_id = f"{name:0>32}"[-32:]  # file ids the same in every run: replays repeat
            if engine == "memory":
                store = MemoryMetaStore(name, site_id=site_id)
            else:
                assert directory is not None
                store = SqliteMetaStore(directory / f"{name}.db", name, site_id=site_id)
            store._clock = HybridClock(store._clock.last, wall_ms)  # type: ignore[attr-defined]
            if trash:
                store.put_setting(TRASH_SETTING, "1")
            self.sites.append(store)
        self.trash = trash
        self.acked: dict[str, str] = {}  # text written -> the site that wrote it
        self.dead: set[str] = set()  # versions some site deliberately removed or replaced
        self._counter = 0
        self.trace: list[Step | Pull] = []  # what was done, in order: ``replay`` does it again

    def close(self) -> None:
        for store in self.sites:
            store.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- links ------------------------------------------------------------------------------
    def pull(self, link: Pull) -> int:
        self.trace.append(link)
        return pull(self.sites[link.dst], self.sites[link.src], link.limit, batches=link.batches)

    def heal(self) -> None:
        """Every link works until nothing is left to deliver."""
        while True:
            moved = 0
            for dst in self.sites:
                for src in self.sites:
                    if dst is not src:
                        moved += pull(dst, src)
            if not moved:
                return

    def check(self) -> Outcome:
        """Digests equal everywhere; every acknowledged write not deliberately removed is a
        file's content at every site."""
        outcome = Outcome()
        digests = [namespace_digest(s) for s in self.sites]
        outcome.diverged = [s.site_name for s, d in zip(self.sites, digests) if d != digests[0]]
        for store in self.sites:
            held = {inode.content for _, inode in store.walk() if inode.is_file}
            outcome.lost += [(store.site_name, text) for text in sorted(self.acked)
                             if text not in self.dead and text not in held]
        if self.trash:
            kept = [undo_records(s) for s in self.sites]
            outcome.records = [s.site_name for s, r in zip(self.sites, kept) if r != kept[0]]
        return outcome

    def explain(self, outcome: Outcome) -> str:
        lines = []
        if outcome.diverged:
            first = tree(self.sites[0])
            for store in self.sites[1:]:
                other = tree(store)
                for path in sorted(set(first) | set(other)):
                    if first.get(path) != other.get(path):
                        lines.append(f"  {path}: {self.sites[0].site_name}={first.get(path)!r} "
                                     f"{store.site_name}={other.get(path)!r}")
        if outcome.lost:
            lines.append(f"  lost: {outcome.lost}")
        if outcome.records:
            first = set(undo_records(self.sites[0]))
            for store in self.sites[1:]:
                other = set(undo_records(store))
                for key, value in sorted(first ^ other):
                    at = self.sites[0].site_name if (key, value) in first else store.site_name
                    lines.append(f"  undo record only at {at}: {key} = {value}")
        return "\n".join(lines)

    # -- user changes -----------------------------------------------------------------------
    def act(self, rng: random.Random, index: int, mix: str) -> Step | None:
        """One random change of a kind in ``mix`` at site ``index``, as a user would make it
        (``choose`` then ``do``); returns it (None if the site had nothing to make it on)."""
        step = self.choose(rng, index, mix)
        if step is not None:
            self.do(step)
        return step

    def choose(self, rng: random.Random, index: int, mix: str) -> Step | None:
        """A random change of a kind in ``mix`` at site ``index``, on what the site holds."""
        kinds = [k for k in KINDS if k in mix]
        kind = rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0]
        site = self.sites[index]
        listing = list(site.walk())
        dirs = [p for p, i in listing if i.is_dir and not p.startswith("/.meridian")]
        files = [p for p, i in listing if i.is_file]
        movable = [p for p, _ in listing if p not in ("/", "/.meridian", "/.meridian/lost+found")]
        if kind in "uxolat" and not files:
            kind = "w"
        removed = sorted({r.path for r in undo_store(site).trash_list()}) if self.trash else []
        if kind == "n":
            if not removed:
                kind = "w"
            else:
                return Step(index, "n", rng.choice(removed))
        if kind == "p":
            return Step(index, "p", rng.choice(["/", *removed]))
        if kind == "w":
            if files and rng.random() < 0.3:
                return Step(index, "w", rng.choice(files))
            return Step(index, "w", _join(rng.choice(dirs), rng.choice(NAMES)))
        if kind == "m":
            return Step(index, "m", _join(rng.choice(dirs), rng.choice(NAMES)))
        if kind == "r":
            if not movable:
                return None
            return Step(index, "r", rng.choice(movable), _join(rng.choice(dirs), rng.choice(NAMES)))
        if kind == "u":
            return Step(index, "u", rng.choice(files))
        if kind == "d":
            empty = [p for p in dirs if p != "/" and not site.list_dir(site.resolve(p).ino)]
            candidates = empty or dirs[1:]
            return Step(index, "d", rng.choice(candidates)) if candidates else None
        if kind == "x":
            return Step(index, "x", rng.choice(files + dirs), rng.choice([0o600, 0o640, 0o644, 0o755]))
        if kind == "o":
            owner = rng.choice([0, 1000, 1001])
            return Step(index, "o", rng.choice(files + dirs), owner,
                        owner if rng.random() < 0.5 else None)
        if kind == "t":
            return Step(index, "t", rng.choice(files + dirs), rng.randrange(1, 1 << 40) * 1_000_000)
        if kind == "l":
            return Step(index, "l", rng.choice(files), _join(rng.choice(dirs), rng.choice(NAMES)))
        if kind == "s":
            return Step(index, "s", _join(rng.choice(dirs), rng.choice(NAMES)), rng.choice(NAMES))
        key = rng.choice(["user.a", "user.b"])
        value = None if rng.random() < 0.3 else bytes(rng.randrange(256) for _ in range(3))
        return Step(index, "a", rng.choice(files + dirs), key, value)

    def do(self, step: Step) -> bool:
        """Make ``step``'s change; False if the site's state does not allow it (it raised a
        ``MeridianError`` and changed nothing), as a user would see."""
        self.trace.append(step)
        site = self.sites[step.site]
        kind, path = step.kind, step.path
        try:
            if kind == "w":
                self._counter += 1
                text = f"{site.site_name}-{self._counter}"
                before = self._content_at(site, path)
                write(site, path, text)  # raises before changing anything if it cannot
                self.acked[text] = site.site_name
                if before is not None:
                    self.dead.add(before)  # overwritten where it was seen
            elif kind == "m":
                parent, name = _split(site, path)
                site.create(parent, name, DIR, 0, 0)
            elif kind == "s":
                parent, name = _split(site, path)
                site.create(parent, name, LINK, 0, 0, target=str(step.args[0]))
            elif kind == "r":
                target = str(step.args[0])
                replaced = self._content_at(site, target, last_name_only=True)
                if site.resolve(path).ino == self._ino_at(site, target):
                    replaced = None  # a name onto its own hard link: nothing happens
                parent, name = _split(site, path)
                new_parent, new_name = _split(site, target)
                site.rename(parent, name, new_parent, new_name)
                if replaced is not None:
                    self.dead.add(replaced)
            elif kind == "u":
                gone = self._content_at(site, path, last_name_only=True)
                site.unlink(*_split(site, path))
                if gone is not None:
                    self.dead.add(gone)
            elif kind == "d":
                site.rmdir(*_split(site, path))
            elif kind == "x":
                site.setattr(site.resolve(path).ino, AttrChanges(mode=int(str(step.args[0]))))
            elif kind == "o":
                uid, gid = step.args
                site.setattr(site.resolve(path).ino, AttrChanges(
                    uid=int(str(uid)), gid=int(str(gid)) if gid is not None else None))
            elif kind == "t":
                site.setattr(site.resolve(path).ino, AttrChanges(mtime_ns=int(str(step.args[0]))))
            elif kind == "l":
                site.link(site.resolve(path).ino, *_split(site, str(step.args[0])))
            elif kind == "n":
                undelete(site, path)  # makes its files again: nothing new is acknowledged
            elif kind == "p":
                undo_store(site).trash_purge(None if path == "/" else path)
            elif kind == "a":
                key, value = str(step.args[0]), step.args[1]
                if value is None:
                    site.removexattr(site.resolve(path).ino, key)
                else:
                    assert isinstance(value, bytes)
                    site.setxattr(site.resolve(path).ino, key, value)
            else:
                raise ValueError(f"unknown kind of change {kind!r}")
        except MeridianError:
            return False
        return True

    @staticmethod
    def _ino_at(site: MetaStore, path: str) -> int | None:
        try:
            return site.resolve(path).ino
        except MeridianError:
            return None

    def _content_at(self, site: MetaStore, path: str, *,
                    last_name_only: bool = False) -> str | None:
        """The acknowledged version a change at ``path`` removes at ``site`` (with
        ``last_name_only``: only if that is the file's last name)."""
        try:
            inode = site.resolve(path)
        except MeridianError:
            return None
        if not inode.is_file or inode.content not in self.acked:
            return None
        if last_name_only and inode.nlink > 1:
            return None
        return inode.content


@dataclass(frozen=True)
class Step:
    """One user change at one site: ``kind`` (a letter of ``KINDS``), the path it acts on,
    and what else it needs (a rename's or link's new path, a mode, an owner, ...)."""

    site: int
    kind: str
    path: str
    args: tuple[object, ...] = ()

    def __init__(self, site: int, kind: str, path: str, *args: object) -> None:
        object.__setattr__(self, "site", site)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "args", args)


@dataclass(frozen=True)
class Pull:
    """One link delivering ``batches`` batches of ``limit`` entries (None: everything)."""

    dst: int
    src: int
    limit: int = 50
    batches: int | None = None


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def _split(site: MetaStore, path: str) -> tuple[int, str]:
    """(directory inode, name) of ``path`` at ``site``."""
    parent, _, name = path.rpartition("/")
    return site.resolve(parent or "/").ino, name


def run(seed: int, mix: str, engine: str, steps: int = 60) -> tuple[Outcome, str]:
    """One seeded run: ``steps`` changes at random sites with random links working in
    between, then healing. Returns the outcome and, if it failed, what differs."""
    rng = random.Random(f"{seed}/{mix}")
    with World(engine, trash=any(kind in mix for kind in TRASH_KINDS)) as world:
        for _ in range(steps):
            world.act(rng, rng.randrange(len(world.sites)), mix)
            if rng.random() < 0.3:  # a link that works at this moment
                dst, src = rng.sample(range(len(world.sites)), 2)
                world.pull(Pull(dst, src, rng.choice([1, 3, 50]), rng.choice([1, None])))
        world.heal()
        outcome = world.check()
        return outcome, ("" if outcome.ok else world.explain(outcome))


def replay(trace: list[Step | Pull], engine: str, *,
           trash: bool = False) -> tuple[Outcome, World]:
    """Do ``trace`` again in a new world, heal and check (the world is closed: read its
    ``trace`` and outcome only)."""
    with World(engine, trash=trash) as world:
        for item in trace:
            if isinstance(item, Pull):
                world.pull(item)
            else:
                world.do(item)
        world.heal()
        return world.check(), world


def plan(runs: int, first_seed: int = 0,
         mixes: list[str] | None = None) -> Iterator[tuple[int, str, str]]:
    """``runs`` (seed, mix, engine) triples spread evenly over ``mixes`` (default every one)
    and both engines."""
    combos = [(mix, engine) for engine in ENGINES for mix in (mixes or list(MIXES))]
    for n in range(runs):
        mix, engine = combos[n % len(combos)]
        yield first_seed + n // len(combos), mix, engine
