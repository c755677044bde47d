"""``[exports]`` in the site's config: validated with errors naming the key; round-trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meridian.errors import ConfigError
from meridian.site import load_config, parse_config, write_config


def doc(exports: Any) -> dict[str, Any]:
    return {"site": {"name": "east", "data": "/srv/east"}, "bucket": {"url": "file:///srv/b"},
            "exports": exports}


def test_both_exports_parse_with_defaults_and_round_trip(tmp_path: Path) -> None:
    config = parse_config(doc({
        "nfs": {"listen": "0.0.0.0:2049", "clients": ["10.20.0.0/16", "127.0.0.1"]},
        "smb": {"listen": "10.0.0.5:445", "users": ["artist"], "access": "ro"}}))
    nfs, smb = config.exports.nfs, config.exports.smb
    assert nfs is not None and smb is not None
    assert (nfs.port, nfs.read_only, nfs.root_squash, nfs.name) == (2049, False, True, "meridian")
    assert nfs.url() == "nfs://127.0.0.1:2049/meridian"
    assert smb.url() == "//10.0.0.5:445/meridian" and smb.read_only and smb.clients == ("127.0.0.1",)
    write_config(config, tmp_path / "meridian.toml")
    assert load_config(tmp_path / "meridian.toml").exports == config.exports


def test_no_exports_section_means_none() -> None:
    config = parse_config({k: v for k, v in doc({}).items() if k != "exports"})
    assert config.exports.enabled() == []


@pytest.mark.parametrize("exports, key", [
    ({"ftp": {}}, "exports.ftp"),
    ({"nfs": {"listen": "2049"}}, "exports.nfs.listen"),
    ({"nfs": {"listen": "0.0.0.0:0"}}, "exports.nfs.listen"),
    ({"nfs": {"listen": "0.0.0.0:2049", "clients": ["everyone"]}}, "exports.nfs.clients"),
    ({"nfs": {"listen": "0.0.0.0:2049", "clients": []}}, "exports.nfs.clients"),
    ({"nfs": {"listen": "0.0.0.0:2049", "access": "write"}}, "exports.nfs.access"),
    ({"nfs": {"listen": "0.0.0.0:2049", "root_squash": "yes"}}, "exports.nfs.root_squash"),
    ({"nfs": {"listen": "0.0.0.0:2049", "users": ["a"]}}, "exports.nfs.users"),
    ({"nfs": {"listen": "0.0.0.0:2049", "name": "a/b"}}, "exports.nfs.name"),
    ({"smb": {"listen": "0.0.0.0:445"}}, "exports.smb.users"),
    ({"smb": {"listen": "0.0.0.0:445", "users": ["Bad User"]}}, "exports.smb.users"),
    ({"smb": {"listen": "0.0.0.0:445", "users": ["root"]}}, "exports.smb.users"),
])
def test_bad_exports_name_the_key(exports: Any, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(doc(exports))
    assert key in str(exc.value)
