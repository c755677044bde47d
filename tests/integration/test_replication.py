"""Sites as users run them (a process and a FUSE mount each), pulling each other over HTTP.

Tests wait with generous timeouts and never assert latencies (those belong to bench/).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


from tests.faultproxy import FaultProxy
from tests.sitehelpers import (
    admin_headers,
    MERIDIAN,
    RunningSite,
    api_url,
    init_linked,
    snapshot,
    tls_verify,
    wait_for,
)


def start_all(sites: dict[str, RunningSite], stopper: list[RunningSite]) -> None:
    for site in sites.values():
        stopper.append(site)
        site.start()


def same_everywhere(*sites: RunningSite) -> bool:
    trees = [snapshot(site.mount) for site in sites]
    return all(tree == trees[0] for tree in trees[1:])


def digest(site: RunningSite) -> str:
    out = subprocess.run([*MERIDIAN, "status", "--json", "--config", str(site.config)],
                         capture_output=True, text=True, timeout=60)
    info = json.loads(out.stdout)
    return str(info["digest"])


def test_two_sites_see_each_others_changes(tmp_path: Path, stopper: list[RunningSite]) -> None:
    bucket = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west"], bucket)
    start_all(sites, stopper)
    east, west = sites["east"].mount, sites["west"].mount
    (east / "project" / "sh010").mkdir(parents=True)
    frames = {f"project/sh010/plate.{n:04d}.exr": os.urandom(300_000 + n) for n in range(1001, 1004)}
    for rel, data in frames.items():
        (east / rel).write_bytes(data)
    (east / "project" / "notes.txt").write_text("first")
    os.chmod(east / "project" / "notes.txt", 0o600)
    os.symlink("sh010/plate.1001.exr", east / "project" / "current")
    (east / "project" / "gone.txt").write_text("soon deleted")
    wait_for(lambda: (west / "project" / "gone.txt").exists(), what="west sees gone.txt")
    (east / "project" / "gone.txt").unlink()
    os.rename(east / "project" / "notes.txt", east / "project" / "readme.txt")
    wait_for(lambda: same_everywhere(sites["east"], sites["west"]), what="identical trees")
    for rel, data in frames.items():  # first access at west: bytes from the bucket or east
        assert (west / rel).read_bytes() == data
    assert os.readlink(west / "project" / "current") == "sh010/plate.1001.exr"
    # and back: a change made at west reaches east
    (west / "project" / "sh010" / "comp.nk").write_text("from west")
    wait_for(lambda: (east / "project" / "sh010" / "comp.nk").read_text() == "from west",
             what="east sees west's file")
    wait_for(lambda: digest(sites["east"]) == digest(sites["west"]), what="equal digests")
    event = _first_event(sites["east"], "./project/sh010/*.nk")  # replicated changes are events
    assert event["origin"] == "west" and event["path"] == "/project/sh010/comp.nk"
    wait_for(lambda: _peer(sites["west"], "east").get("entries_behind") == 0, what="no lag")
    link = _peer(sites["west"], "east")
    assert link["link"] == {"connected": True, "error": "", "refused": False}
    assert link["seconds_behind"] == 0


def _first_event(site: RunningSite, glob: str) -> dict[str, object]:
    import tomllib

    import httpx

    with httpx.Client(verify=tls_verify(site)) as client, client.stream(  # type: ignore[arg-type]
            "GET", f"{api_url(site)}/events", params={"after": 0, "glob": glob},
            headers=admin_headers(site), timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event: dict[str, object] = json.loads(line.removeprefix("data: "))
                return event
    raise AssertionError("no event")


def _peer(site: RunningSite, name: str) -> dict[str, object]:
    out = subprocess.run([*MERIDIAN, "status", "--json", "--config", str(site.config)],
                         capture_output=True, text=True, timeout=60)
    peers = {p["name"]: p for p in json.loads(out.stdout)["peers"]}
    return dict(peers[name])


def test_three_sites_read_content_whose_upload_is_not_done_from_its_origin(
        tmp_path: Path, stopper: list[RunningSite], s3_bucket: tuple[str, str]) -> None:
    """north's way to the bucket (moto over HTTP) is cut after it starts: what it writes stays
    on its volume, and east and west read those bytes from north's API."""
    endpoint, name = s3_bucket
    with FaultProxy(endpoint) as north_s3:
        sites = init_linked(tmp_path, ["east", "west", "north"], f"s3://{name}",
                            "--endpoint-url", endpoint)
        _set_endpoint(sites["north"], north_s3.url)
        start_all(sites, stopper)
        north_s3.refuse(True)
        data = os.urandom(5 * 1024 * 1024 + 17)  # two blocks
        (sites["north"].mount / "render.exr").write_bytes(data)
        for site_name in ("east", "west"):
            target = sites[site_name].mount / "render.exr"
            # the name comes first (created empty), then its content: wait for the size
            wait_for(lambda: target.stat().st_size == len(data),
                     what=f"{site_name} sees render.exr written")
            assert target.read_bytes() == data  # bytes that are in no bucket yet: from north
        wait_for(lambda: same_everywhere(*sites.values()), what="identical trees")
        north_s3.refuse(False)


def _set_endpoint(site: RunningSite, url: str) -> None:
    import tomllib

    import tomli_w

    doc = tomllib.loads(site.config.read_text())
    doc["bucket"]["endpoint_url"] = url
    site.config.write_text(tomli_w.dumps(doc))


def test_partition_then_heal_converges_and_loses_nothing(tmp_path: Path,
                                                         stopper: list[RunningSite]) -> None:
    bucket = f"file://{tmp_path / 'bucket'}"
    names = ["east", "west"]
    proxies = {}
    sites = init_linked(tmp_path, names, bucket, plain=True)  # the proxies speak plain HTTP
    try:
        # each site is reached through a proxy, so a link can be cut while both keep running
        for name, site in sites.items():
            proxies[name] = FaultProxy(api_url(site).removesuffix("/api/v1")).start()
        _route_peers_through(sites, proxies)
        start_all(sites, stopper)
        east, west = sites["east"].mount, sites["west"].mount
        (east / "shared.clip").write_text("v0")
        (east / "doomed.txt").write_text("d0")
        wait_for(lambda: same_everywhere(sites["east"], sites["west"]), what="first sync")

        for proxy in proxies.values():
            proxy.refuse(True)  # the link is cut both ways; both sites keep working
        (east / "shared.clip").write_text("east-v1")
        (west / "shared.clip").write_text("west-v1")
        (east / "doomed.txt").unlink()  # delete at one side ...
        (west / "doomed.txt").write_text("west kept this")  # ... modify at the other
        (west / "only-west.txt").write_text("w")
        written = {b"east-v1", b"west-v1", b"west kept this", b"w"}

        for proxy in proxies.values():
            proxy.refuse(False)
        wait_for(lambda: same_everywhere(sites["east"], sites["west"]), timeout=60,
                 what="convergence after the partition")
        tree = snapshot(east)
        contents = {value[0] for value in tree.values() if isinstance(value, tuple)
                    and isinstance(value[0], bytes)}
        assert written <= contents, "an acknowledged write was lost"
        copies = [name for name in tree if name.startswith("shared.conflict-")]
        assert len(copies) == 1 and copies[0].endswith(".clip")
        assert tree["doomed.txt"][0] == b"west kept this"  # type: ignore[index]
        wait_for(lambda: digest(sites["east"]) == digest(sites["west"]), what="equal digests")
    finally:
        for proxy in proxies.values():
            proxy.stop()


def _route_peers_through(sites: dict[str, RunningSite], proxies: dict[str, FaultProxy]) -> None:
    import tomllib

    import tomli_w

    for site in sites.values():
        doc = tomllib.loads(site.config.read_text())
        for peer in doc["peers"]:
            peer["url"] = f"{proxies[peer['name']].url}/api/v1"
        site.config.write_text(tomli_w.dumps(doc))


def test_kill9_in_the_middle_of_replication_loses_nothing_and_applies_nothing_twice(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    bucket = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west"], bucket)
    start_all(sites, stopper)
    east = sites["east"].mount
    (east / "batch").mkdir()
    for n in range(200):
        (east / "batch" / f"f{n:03d}").write_text(str(n))
    sites["west"].kill9()  # while it is pulling the 200 creates and writes
    for n in range(200, 260):
        (east / "batch" / f"f{n:03d}").write_text(str(n))
    sites["west"].start()
    wait_for(lambda: same_everywhere(sites["east"], sites["west"]), timeout=60,
             what="west caught up after kill -9")
    names = sorted(os.listdir(sites["west"].mount / "batch"))
    assert names == [f"f{n:03d}" for n in range(260)]  # no conflict copies: nothing applied twice


def test_random_cuts_and_heals_over_three_sites_converge_without_loss(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    """Seeded random rounds: some links cut (a site's API refused through its proxy), random
    writes, deletes and renames at random sites; then a round with every link cut in which
    every site writes the same names; heal everything. Every site must end with the same tree,
    and every version written in the last round must still be there (as the file or a conflict
    copy): those writes were all concurrent, so none may be lost."""
    import random

    seed = int(os.environ.get("MERIDIAN_TEST_SEED", "1234"))
    rng = random.Random(seed)
    names = ["a.exr", "b.exr", "shot.clip"]
    sites = init_linked(tmp_path, ["east", "west", "north"], f"file://{tmp_path / 'bucket'}",
                        plain=True)  # the proxies speak plain HTTP
    proxies: dict[str, FaultProxy] = {}
    try:
        for name, site in sites.items():
            proxies[name] = FaultProxy(api_url(site).removesuffix("/api/v1")).start()
        _route_peers_through(sites, proxies)
        start_all(sites, stopper)
        for round_ in range(4):
            cut = {n for n in sites if rng.random() < 0.5}
            for name, proxy in proxies.items():
                proxy.refuse(name in cut)
            for _ in range(6):
                site = sites[rng.choice(sorted(sites))]
                target = site.mount / rng.choice(names)
                action = rng.random()
                try:
                    if action < 0.6:
                        target.write_bytes(f"{site.name}-{round_}-{rng.random()}".encode())
                    elif action < 0.8:
                        target.unlink()
                    else:
                        target.rename(site.mount / rng.choice(names))
                except FileNotFoundError:
                    pass  # deleted or renamed away by a change that arrived meanwhile
                time.sleep(rng.random() * 0.2)
        for proxy in proxies.values():
            proxy.refuse(True)
        last_round = set()
        for site in sites.values():
            for name in names:
                data = f"final {site.name} {name}".encode()
                (site.mount / name).write_bytes(data)
                last_round.add(data)
        for proxy in proxies.values():
            proxy.refuse(False)
        wait_for(lambda: same_everywhere(*sites.values()), timeout=90,
                 what=f"convergence (seed {seed})")
        contents = {value[0] for value in snapshot(sites["east"].mount).values()
                    if isinstance(value, tuple) and isinstance(value[0], bytes)}
        assert last_round <= contents, f"seed {seed}: lost {last_round - contents}"
        wait_for(lambda: len({digest(s) for s in sites.values()}) == 1, what="equal digests")
    finally:
        for proxy in proxies.values():
            proxy.stop()
