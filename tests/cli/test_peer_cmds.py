"""`meridian peer add/remove/rotate/invite` against a real API over TLS (east's, in-process)."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
import stat
from pathlib import Path

import httpx
import pytest

from meridian.api import ApiServer
from meridian.cli.main import main
from meridian.site import Site, load_config
from meridian.trust.credentials import CredentialStore, PresentedCredentials
from meridian.trust.tls import host_names, reissue


def init(tmp_path: Path, name: str) -> Path:
    assert main(["init", "--site", name, "--data", str(tmp_path / name), "--bucket",
                 f"file://{tmp_path}/bucket"]) == 0
    return tmp_path / name / "meridian.toml"


def test_peers_exchange_rotate_and_revoke_credentials(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    east_toml, west_toml = init(tmp_path, "east"), init(tmp_path, "west")
    east, west = load_config(east_toml), load_config(west_toml)
    reissue(west.tls, east.tls, "west", host_names("127.0.0.1"))  # one namespace, as a join does
    capsys.readouterr()

    async def scenario() -> None:
        site = Site.open(east)
        server = ApiServer(site)
        await server.start()
        url = server.url

        def cli(*args: str) -> int:
            return main(list(args))

        try:
            for_west = tmp_path / "for-west"
            assert await asyncio.to_thread(cli, "peer", "add", "west", "https://127.0.0.1:9",
                                           "--issued-out", str(for_west), "--config",
                                           str(east_toml)) == 0
            assert stat.S_IMODE(for_west.stat().st_mode) == 0o600
            issued = for_west.read_text().strip()
            assert issued not in (east.data / "secrets" / "credentials.json").read_text()
            monkeypatch.setattr("sys.stdin", io.StringIO(issued + "\n"))
            assert await asyncio.to_thread(cli, "peer", "add", "east", url, "--credential-file",
                                           "-", "--config", str(west_toml)) == 0
            printed = capsys.readouterr().out.strip().splitlines()[-1]  # east's, shown once
            assert len(printed) == 43 and printed != issued
            assert load_config(west_toml).peers[0].url == url
            presented = PresentedCredentials(west.secrets)
            assert presented.get("east") == issued
            tls = ssl.create_default_context(cafile=str(east.tls.ca))
            async with httpx.AsyncClient(base_url=url, verify=tls) as raw:
                ok = await raw.get("/journal", headers={"Authorization": f"Bearer {issued}"})
                assert ok.status_code == 200

                assert await asyncio.to_thread(cli, "peer", "rotate", "east", "--grace", "30",
                                               "--config", str(west_toml)) == 0
                new = presented.get("east")
                assert new and new != issued
                for credential in (issued, new):  # both, during the grace
                    answer = await raw.get("/journal",
                                           headers={"Authorization": f"Bearer {credential}"})
                    assert answer.status_code == 200
                assert CredentialStore(east.secrets).peers() == {"west": 2}

                assert await asyncio.to_thread(cli, "peer", "remove", "west", "--config",
                                               str(east_toml)) == 0
                for credential in (issued, new):  # at once, on the running site
                    answer = await raw.get("/journal",
                                           headers={"Authorization": f"Bearer {credential}"})
                    assert answer.status_code == 401
            assert load_config(east_toml).peers == ()
            assert await asyncio.to_thread(cli, "peer", "remove", "west", "--config",
                                           str(east_toml)) == 2  # nothing left to remove
        finally:
            await server.stop()
            site.close()

    asyncio.run(scenario())


def test_invitations_need_the_ca_key_and_are_private(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    east_toml, west_toml = init(tmp_path, "east"), init(tmp_path, "west")
    east, west = load_config(east_toml), load_config(west_toml)
    reissue(west.tls, east.tls, "west", host_names("127.0.0.1"))  # west: no CA key now
    out = tmp_path / "north.join"
    assert main(["peer", "invite", "north", "--url", "https://127.0.0.1:7411", "--out",
                 str(out), "--config", str(east_toml)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    invitation = json.loads(out.read_text())
    assert invitation["for"] == "north" and invitation["url"].endswith("/api/v1")
    capsys.readouterr()
    assert main(["peer", "invite", "north", "--url", "https://127.0.0.1:7411",
                 "--config", str(west_toml)]) == 2
    assert "does not hold the namespace CA key" in capsys.readouterr().err
    assert main(["init", "--site", "north", "--data", str(tmp_path / "north"), "--join",
                 "https://127.0.0.1:7411", "--token", "x" * 43]) == 2
    assert "--join-file" in capsys.readouterr().err
    assert not (tmp_path / "north").exists()
    old = east.secrets.admin_credential()
    assert main(["site", "new-admin-credential", "--config", str(east_toml)]) == 0
    accepted = CredentialStore(east.secrets)
    assert accepted.check(old) is None
    assert accepted.check(east.secrets.admin_credential()) is not None
