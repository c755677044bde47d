"""Config validation: every error names the key and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meridian.errors import ConfigError
from meridian.site.config import load_config, parse_config, parse_size, write_config


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "site": {"name": "east", "data": "/srv/east"},
        "bucket": {"url": "s3://studio/meridian", "endpoint_url": "http://127.0.0.1:9000"},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            base.setdefault(section, {})[field] = value
        else:
            base[section] = value
    return base


def test_minimal_config_gets_a_default_volume() -> None:
    config = parse_config(doc())
    assert config.name == "east" and config.data == Path("/srv/east")
    assert config.volumes[0].path == Path("/srv/east/volumes/local")
    assert config.volumes[0].capacity is None
    assert config.meta_path == Path("/srv/east/meta.db")


@pytest.mark.parametrize(("overrides", "key", "problem"), [
    ({"site": None}, "site", "missing section"),
    ({"site__name": None}, "site.name", "missing"),
    ({"site__name": "East Coast"}, "site.name", "lower-case"),
    ({"site__data": "relative/dir"}, "site.data", "absolute path"),
    ({"site__colour": "blue"}, "site.colour", "unknown key"),
    ({"site__request_spin_us": -1}, "site.request_spin_us", "microseconds"),
    ({"site__request_spin_us": 0.5}, "site.request_spin_us", "whole number"),
    ({"site__request_spin_us": True}, "site.request_spin_us", "whole number"),
    ({"site__writeback_cache": "yes"}, "site.writeback_cache", "true or false"),
    ({"bucket__url": None}, "bucket.url", "missing"),
    ({"bucket__url": "ftp://x"}, "bucket.url", "s3://"),
    ({"bucket__endpoint_url": "localhost:9000"}, "bucket.endpoint_url", "http(s)"),
    ({"bucket__region": 5}, "bucket.region", "must be a string"),
    ({"volumes": [{"name": "a", "path": "/a", "capacity": "lots"}]}, "volumes[0].capacity",
     "not a size"),
    ({"volumes": [{"name": "a"}]}, "volumes[0].path", "missing"),
    ({"volumes": []}, "volumes", "non-empty"),
    ({"mover": {"upload_workers": 0}}, "mover.upload_workers", "≥ 1"),
    ({"mover": {"read_timeout": "soon"}}, "mover.read_timeout", "number"),
    ({"mover": {"speed": 3}}, "mover.speed", "unknown key"),
    ({"api": {"listen": "127.0.0.1:0", "token": "x" * 43}}, "api.token", "no longer"),
    ({"api": {"listen": "nowhere"}}, "api.listen", "HOST:PORT"),
    ({"api": {"listen": "0.0.0.0:7411", "plain_http": True}}, "api.plain_http", "loopback"),
    ({"api": {"listen": "127.0.0.1:0", "plain_http": "yes"}}, "api.plain_http", "true or false"),
    ({"api": {"listen": "127.0.0.1:0", "max_body": "huge"}}, "api.max_body", "not a size"),
    ({"api": {"listen": "127.0.0.1:0", "max_streams": 0}}, "api.max_streams", "whole number"),
    ({"api": {"listen": "127.0.0.1:0", "cert": "site.crt"}}, "api.cert", "absolute"),
    ({"peers": [{"name": "west", "url": "ftp://w"}]}, "peers[0].url", "API URL"),
    ({"peers": [{"name": "west", "url": "http://10.0.0.2:7411"}]}, "peers[0].url", "loopback"),
    ({"peers": [{"name": "east", "url": "https://w"}]}, "peers[0].name", "another"),
    ({"peers": [{"name": "west", "url": "https://w", "token": "t" * 43}]}, "peers[0].token",
     "no longer"),
])
def test_bad_values_name_the_key(overrides: dict[str, Any], key: str, problem: str) -> None:
    bad = doc()
    for name, value in overrides.items():
        section, _, field = name.partition("__")
        if field:
            if value is None:
                bad[section].pop(field, None)
            else:
                bad[section][field] = value
        elif value is None:
            bad.pop(section)
        else:
            bad[section] = value
    with pytest.raises(ConfigError) as exc:
        parse_config(bad)
    assert exc.value.key == key and problem in exc.value.problem


@pytest.mark.parametrize(("text", "expected"), [
    ("1048576", 1 << 20), ("500GiB", 500 << 30), ("2TB", 2 << 40), ("1.5 GiB", 3 << 29), (4096, 4096)])
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1GiB", "0", "12 parsecs", "GiB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


def test_write_then_load_round_trips_and_secrets_stay_out_of_describe(tmp_path: Path) -> None:
    config = parse_config(doc(bucket__secret_access_key="s3cr3t", bucket__access_key_id="AKIA1",
                              site__request_spin_us=0, site__writeback_cache=True,
                              volumes=[{"name": "local", "path": "/fast", "capacity": "1GiB"}],
                              api={"listen": "127.0.0.1:7411", "max_streams": 4,
                                   "ca": "/etc/studio/ca.pem", "max_body": "1MiB"},
                              peers=[{"name": "west", "url": "http://127.0.0.1:7412/api/v1"},
                                     {"name": "north", "url": "https://north.studio:7411"}]),
                          tmp_path / "meridian.toml")
    write_config(config, tmp_path / "meridian.toml")
    again = load_config(tmp_path / "meridian.toml")
    assert again == config and again.request_spin == 0.0 and again.writeback_cache
    assert "s3cr3t" not in repr(again) and "s3cr3t" not in str(again.describe())
    assert again.peers[0].url == "http://127.0.0.1:7412/api/v1"
    assert again.peers[1].url == "https://north.studio:7411/api/v1"
    assert again.api is not None and again.api.max_body == 1 << 20
    assert again.tls.ca == Path("/etc/studio/ca.pem")
    assert again.tls.key == Path("/srv/east/tls/site.key")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nothing.toml")
    (tmp_path / "bad.toml").write_text("[site\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
