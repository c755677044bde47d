"""The CLI's conventions: --help that explains, exit codes, clear errors, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meridian.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's --help / usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [[], ["init"], ["site", "run"], ["status"], ["ls"], ["fsck"], ["up"], ["exec"]])
def test_help_explains_every_command(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "usage: meridian" in out and len(out.splitlines()) > 4


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err
    code, _, err = run(capsys, "init", "--site", "x")
    assert code == 2 and "required" in err


def test_no_site_found_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MERIDIAN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "status")
    assert code == 2 and "which site?" in err


def test_init_status_ls_fsck_on_a_new_site(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "east"
    code, out, err = run(capsys, "init", "--site", "east", "--data", str(data), "--bucket",
                         f"file://{tmp_path}/bucket", "--capacity", "1GiB")
    assert code == 0, err
    assert (data / "meridian.toml").exists() and (tmp_path / "bucket" / "meridian-format.json").exists()
    code, _, err = run(capsys, "init", "--site", "east", "--data", str(data), "--bucket",
                       f"file://{tmp_path}/bucket")
    assert code == 2 and "already holds a site" in err

    monkeypatch.setenv("MERIDIAN_CONFIG", str(data / "meridian.toml"))
    code, out, _ = run(capsys, "status", "--json")
    info = json.loads(out)
    assert code == 0 and info["site"] == "east" and info["bucket_state"]["reachable"]
    assert info["volume"]["capacity"] == 1 << 30 and info["uploads"]["queued"] == 0
    code, out, _ = run(capsys, "ls", "--placement", "--json", "./")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(capsys, "fsck")
    assert code == 0 and "clean" in out
    code, _, err = run(capsys, "ls", "./a/../b")
    assert code == 2 and "'..'" in err
    code, _, err = run(capsys, "ls", "./nothing")
    assert code == 2 and "no such file" in err


def test_bad_config_names_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "meridian.toml"
    config.write_text('[site]\nname = "east"\ndata = "relative"\n[bucket]\nurl = "file:///b"\n')
    code, _, err = run(capsys, "status", "--config", str(config))
    assert code == 2 and "site.data" in err and "absolute" in err


def test_bucket_of_unknown_format_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "meridian-format.json").write_text('{"format": "meridian-bucket", "version": 99}')
    code, _, err = run(capsys, "init", "--site", "east", "--data", str(tmp_path / "east"),
                       "--bucket", f"file://{bucket}")
    assert code == 2 and "99" in err
    assert not (tmp_path / "east").exists()


def test_status_reports_an_unreachable_peer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "east" / "meridian.toml"
    code, _, err = run(capsys, "init", "--site", "east", "--data", str(tmp_path / "east"),
                       "--bucket", f"file://{tmp_path}/bucket")
    assert code == 0, err
    with open(config, "a") as f:
        f.write(f'\n[[peers]]\nname = "west"\nurl = "https://127.0.0.1:{port}/api/v1"\n')
    from meridian.trust.credentials import PresentedCredentials, SecretsDir
    PresentedCredentials(SecretsDir(tmp_path / "east")).put("west", "west-credential-" * 3)
    code, out, _ = run(capsys, "status", "--config", str(config))
    assert code == 0 and "peer       west" in out and "UNREACHABLE" in out
    assert "west-credential" not in out
