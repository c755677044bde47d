"""A site's configuration: one TOML file (``meridian.toml``), validated when it is loaded.

Every error names the key and the problem (``ConfigError``), so a typo at 3 a.m. reads as
``config: bucket.url: missing`` rather than a traceback. Credentials may be given in the file
(``bucket.access_key_id`` / ``bucket.secret_access_key``) but are better left to the standard
AWS chain (environment, ``~/.aws``, instance role); they never appear in logs or ``describe()``.

Example::

    [site]
    name = "east"
    data = "/srv/meridian/east"      # metadata store and the default local volume
    mount = "/mnt/meridian"          # where `site run` mounts unless --mount is given
    request_spin_us = 100            # µs the mount polls for the next request before it
                                     # sleeps (0: sleep at once; see mount/waiting.py)
    writeback_cache = false          # the kernel's writeback cache (docs/design-notes.md)

    [bucket]
    url = "s3://studio-bucket/meridian"   # or file:///srv/bucket
    endpoint_url = "https://s3.vpce.example"  # optional: private endpoint, MinIO, moto
    region = "eu-west-1"                  # optional

    [[volumes]]
    name = "local"
    path = "/srv/meridian/east/volumes/local"
    capacity = "2TiB"                     # optional: no limit but the disk

    [mover]
    upload_workers = 4
    fetch_workers = 8
    read_timeout = 60                     # seconds a read waits for content before EIO
    sequence_readahead = 8                # frames fetched ahead when a sequence is read
    space_wait = 30                       # seconds a write on a full volume waits for uploads
    gc_grace = 86400                      # seconds unreferenced content stays in the bucket
    gc_interval = 600                     # seconds between garbage collection rounds (0: off)
    gc_hold = 600                         # seconds peers hold uploads of what is being deleted

    [api]
    listen = "0.0.0.0:7411"               # HOST:PORT; port 0 picks a free port
    # TLS (made by `meridian init`; or files from the studio's own CA):
    cert = "/srv/meridian/east/tls/site.crt"
    key = "/srv/meridian/east/tls/site.key"
    ca = "/srv/meridian/east/tls/ca.crt"   # peers' certificates must chain to it
    # plain_http = true                   # only with a loopback listen address
    max_body = "4MiB"                     # larger request bodies: 413
    max_streams = 16                      # long polls + event streams per credential

    [[peers]]
    name = "west"
    url = "https://west.example:7411/api/v1"

Credentials are not in this file: ``DATA/secrets/`` (``meridian.trust.credentials``).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from meridian.errors import BadInput, ConfigError
from meridian.site.exports import ExportsConfig, exports_doc, parse_exports
from meridian.sitecall.client import check_site_url, is_loopback
from meridian.trust.credentials import SecretsDir
from meridian.trust.tls import TlsFiles

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20,
          "MB": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
          "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}
_SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def parse_size(text: str | int, key: str = "capacity") -> int:
    """``"500GiB"`` → bytes (powers of 1024). Raises ConfigError naming ``key``."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ConfigError(key, f"must be positive, got {text}")
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in _UNITS:
        raise ConfigError(key, f"{text!r} is not a size (examples: 500GiB, 2TB, 1048576)")
    value = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if value <= 0:
        raise ConfigError(key, f"must be positive, got {text!r}")
    return value


@dataclass(frozen=True)
class VolumeConfig:
    name: str
    path: Path
    capacity: int | None = None


@dataclass(frozen=True)
class BucketConfig:
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MoverConfig:
    upload_workers: int = 4
    fetch_workers: int = 8
    read_timeout: float = 60.0
    sequence_readahead: int = 8
    retry_base: float = 0.5  # seconds before the first retry; doubles up to retry_max
    retry_max: float = 60.0
    space_wait: float = 30.0  # seconds a write on a full volume waits for uploads to make room
    gc_grace: float = 86400.0  # seconds content stays in the bucket after its last reference
    gc_interval: float = 600.0  # seconds between garbage collection rounds (0: never)
    gc_hold: float = 600.0  # seconds a peer holds uploads of content being deleted
    objectives_sweep: float = 60.0  # seconds between sweeps for rules that depend on time


@dataclass(frozen=True)
class ApiConfig:
    listen: str = "127.0.0.1:0"  # port 0: any free port (written to DATA/run.json)
    cert: Path | None = None  # None: DATA/tls/site.crt
    key: Path | None = None  # None: DATA/tls/site.key
    ca: Path | None = None  # None: DATA/tls/ca.crt
    plain_http: bool = False  # no TLS: allowed only on a loopback address
    max_body: int = 4 << 20  # bytes; a larger request body is answered 413
    max_streams: int = 16  # long polls and event streams open at once per credential

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")


@dataclass(frozen=True)
class ReplicationConfig:
    max_clock_skew: float = 60.0  # seconds a peer's clock may run ahead of this site's


@dataclass(frozen=True)
class SnapshotSchedule:
    """``[[namespace.snapshots]]``: a snapshot named ``<name>-<UTC time>`` every ``every``
    seconds, the newest ``keep`` of them kept (made by the site ``at``; default every site)."""

    name: str
    every: float
    keep: int
    at: str | None = None


@dataclass(frozen=True)
class NamespaceConfig:
    """``[namespace]``: undo. ``trash_days``: how long removed files and replaced versions
    stay restorable (0: no trash)."""

    trash_days: float = 7.0
    snapshots: tuple[SnapshotSchedule, ...] = ()


@dataclass(frozen=True)
class PeerConfig:
    name: str
    url: str  # the peer's API, e.g. https://10.0.0.2:7411/api/v1 (its credential: secrets/)


@dataclass(frozen=True)
class SiteConfig:
    name: str
    data: Path
    bucket: BucketConfig
    volumes: tuple[VolumeConfig, ...]
    mount: Path | None = None
    mover: MoverConfig = MoverConfig()
    api: ApiConfig | None = None  # no [api] section: the site serves no API
    peers: tuple[PeerConfig, ...] = ()
    replication: ReplicationConfig = ReplicationConfig()
    namespace: NamespaceConfig = NamespaceConfig()
    path: Path | None = None  # the file it was loaded from
    request_spin_us: int = 100  # the mount's spin before it parks (mount/waiting.py)
    writeback_cache: bool = False  # the kernel's writeback cache on the mount
    exports: ExportsConfig = ExportsConfig()  # NFS and SMB gateways (site/exports.py)

    @property
    def request_spin(self) -> float:
        """``request_spin_us`` in seconds."""
        return self.request_spin_us / 1e6

    @property
    def meta_path(self) -> Path:
        return self.data / "meta.db"

    @property
    def secrets(self) -> SecretsDir:
        """``DATA/secrets``: credentials accepted (hashed) and presented to peers."""
        return SecretsDir(self.data)

    @property
    def tls(self) -> TlsFiles:
        """This site's key, certificate and CA: ``[api]`` paths, else ``DATA/tls/``."""
        default = TlsFiles.default(self.data)
        api = self.api or ApiConfig()
        return TlsFiles(api.key or default.key, api.cert or default.cert,
                        api.ca or default.ca, default.ca_key)

    @property
    def scheme(self) -> str:
        return "http" if self.api is not None and self.api.plain_http else "https"

    def describe(self) -> dict[str, Any]:
        """A credential-free summary (for logs, ``status`` and ``/.meridian/site.json``)."""
        return {"site": self.name, "config": str(self.path) if self.path else None,
                "data": str(self.data), "mount": str(self.mount) if self.mount else None,
                "bucket": self.bucket.url, "endpoint_url": self.bucket.endpoint_url,
                "volumes": [{"name": v.name, "path": str(v.path), "capacity": v.capacity}
                            for v in self.volumes],
                "peers": [{"name": p.name, "url": p.url} for p in self.peers]}


def _table(doc: dict[str, Any], key: str, required: bool = True) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        if required:
            raise ConfigError(key, "missing section")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _string(table: dict[str, Any], section: str, key: str, required: bool = True) -> str | None:
    value = table.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{section}.{key}", "missing")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{section}.{key}", f"must be a string, got {type(value).__name__}")
    return value


def _absolute(value: str, key: str) -> Path:
    path = Path(value)
    if not path.is_absolute():
        raise ConfigError(key, f"must be an absolute path, got {value!r}")
    return path


def _check_unknown(table: dict[str, Any], section: str, known: set[str]) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{section}.{key}" if section else key,
                              f"unknown key (known: {', '.join(sorted(known))})")


def parse_config(doc: dict[str, Any], path: Path | None = None) -> SiteConfig:
    """Validate a parsed TOML document. Raises ConfigError naming the first bad key."""
    _check_unknown(doc, "", {"site", "bucket", "volumes", "mover", "api", "peers", "replication",
                             "exports", "namespace"})
    site = _table(doc, "site")
    _check_unknown(site, "site", {"name", "data", "mount", "request_spin_us", "writeback_cache"})
    name = _string(site, "site", "name") or ""
    if not _SITE_NAME.match(name):
        raise ConfigError("site.name", f"{name!r}: use lower-case letters, digits, '-' or '_'")
    data = _absolute(_string(site, "site", "data") or "", "site.data")
    mount_text = _string(site, "site", "mount", required=False)
    mount = _absolute(mount_text, "site.mount") if mount_text else None
    spin = site.get("request_spin_us", SiteConfig.request_spin_us)
    if isinstance(spin, bool) or not isinstance(spin, int) or not 0 <= spin <= 10_000:
        raise ConfigError("site.request_spin_us", f"must be a whole number of microseconds "
                          f"from 0 to 10000, got {spin!r}")
    writeback = site.get("writeback_cache", False)
    if not isinstance(writeback, bool):
        raise ConfigError("site.writeback_cache", f"must be true or false, got {writeback!r}")

    bucket_doc = _table(doc, "bucket")
    _check_unknown(bucket_doc, "bucket", {f.name for f in fields(BucketConfig)})
    optional = {f.name: _string(bucket_doc, "bucket", f.name, required=False)
                for f in fields(BucketConfig) if f.name != "url"}
    bucket = BucketConfig(url=_string(bucket_doc, "bucket", "url") or "", **optional)
    if not bucket.url.startswith(("s3://", "file:///", "memory://")):
        raise ConfigError("bucket.url", f"{bucket.url!r}: use s3://bucket[/prefix] or file:///dir")
    if bucket.endpoint_url and not bucket.endpoint_url.startswith(("http://", "https://")):
        raise ConfigError("bucket.endpoint_url", f"{bucket.endpoint_url!r} is not an http(s) URL")

    raw_volumes = doc.get("volumes", [{"name": "local", "path": str(data / "volumes" / "local")}])
    if not isinstance(raw_volumes, list) or not raw_volumes:
        raise ConfigError("volumes", "must be a non-empty array of tables ([[volumes]])")
    volumes = []
    for i, vol in enumerate(raw_volumes):
        key = f"volumes[{i}]"
        if not isinstance(vol, dict):
            raise ConfigError(key, "must be a table")
        _check_unknown(vol, key, {"name", "path", "capacity"})
        capacity = vol.get("capacity")
        volumes.append(VolumeConfig(
            name=_string(vol, key, "name") or "",
            path=_absolute(_string(vol, key, "path") or "", f"{key}.path"),
            capacity=parse_size(capacity, f"{key}.capacity") if capacity is not None else None))
    if len(volumes) > 1:
        raise ConfigError("volumes", "one local volume per site is supported in this version")

    mover_doc = _table(doc, "mover", required=False)
    known = {f.name: f for f in fields(MoverConfig)}
    _check_unknown(mover_doc, "mover", set(known))
    mover_values: dict[str, Any] = {}
    for key, value in mover_doc.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"mover.{key}", f"must be a non-negative number, got {value!r}")
        if key.endswith("workers") and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"mover.{key}", f"must be a whole number ≥ 1, got {value!r}")
        mover_values[key] = value
    api = _api(_table(doc, "api", required=False))
    raw_peers = doc.get("peers", [])
    if not isinstance(raw_peers, list):
        raise ConfigError("peers", "must be an array of tables ([[peers]])")
    peers = []
    for i, peer in enumerate(raw_peers):
        key = f"peers[{i}]"
        if not isinstance(peer, dict):
            raise ConfigError(key, "must be a table")
        if "token" in peer:
            raise ConfigError(f"{key}.token", "credentials are no longer kept in the config: "
                              "remove the key and exchange credentials with `meridian peer add`")
        _check_unknown(peer, key, {"name", "url"})
        peer_name = _string(peer, key, "name") or ""
        if not _SITE_NAME.match(peer_name) or peer_name == name:
            raise ConfigError(f"{key}.name", f"{peer_name!r}: another site's name, lower-case")
        url = _string(peer, key, "url") or ""
        try:
            url = check_site_url(url, "url")
        except BadInput as exc:
            raise ConfigError(f"{key}.url", str(exc)) from None
        peers.append(PeerConfig(peer_name, url))
    if len({p.name for p in peers}) != len(peers):
        raise ConfigError("peers", "a peer is listed twice")
    replication_doc = _table(doc, "replication", required=False)
    _check_unknown(replication_doc, "replication", {"max_clock_skew"})
    skew = replication_doc.get("max_clock_skew", ReplicationConfig.max_clock_skew)
    if isinstance(skew, bool) or not isinstance(skew, (int, float)) or not 0 < skew <= 86400:
        raise ConfigError("replication.max_clock_skew",
                          f"must be a number of seconds above 0 and at most 86400, got {skew!r}")
    return SiteConfig(name=name, data=data, bucket=bucket, volumes=tuple(volumes), mount=mount,
                      mover=MoverConfig(**mover_values), api=api, peers=tuple(peers),
                      replication=ReplicationConfig(float(skew)),
                      namespace=_namespace(_table(doc, "namespace", required=False)), path=path,
                      request_spin_us=spin, writeback_cache=writeback,
                      exports=parse_exports(doc.get("exports")))


def _namespace(doc: dict[str, Any]) -> NamespaceConfig:
    _check_unknown(doc, "namespace", {"trash_days", "snapshots"})
    days = doc.get("trash_days", NamespaceConfig.trash_days)
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 <= days <= 3650:
        raise ConfigError("namespace.trash_days", f"must be a number of days from 0 to 3650 "
                          f"(0: no trash), got {days!r}")
    raw = doc.get("snapshots", [])
    if not isinstance(raw, list):
        raise ConfigError("namespace.snapshots", "must be an array of tables")
    schedules = []
    for i, item in enumerate(raw):
        key = f"namespace.snapshots[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(key, "must be a table")
        _check_unknown(item, key, {"name", "every", "keep", "at"})
        name = item.get("name")
        if not isinstance(name, str) or not _SITE_NAME.match(name):
            raise ConfigError(f"{key}.name", f"{name!r}: lower-case letters, digits, '-', '_'")
        every, keep = item.get("every"), item.get("keep")
        if isinstance(every, bool) or not isinstance(every, (int, float)) or every < 60:
            raise ConfigError(f"{key}.every", f"must be at least 60 seconds, got {every!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ConfigError(f"{key}.keep", f"must be a whole number ≥ 1, got {keep!r}")
        at = item.get("at")
        if at is not None and not isinstance(at, str):
            raise ConfigError(f"{key}.at", f"must be a site name, got {at!r}")
        schedules.append(SnapshotSchedule(name, float(every), keep, at))
    return NamespaceConfig(float(days), tuple(schedules))


def _api(api_doc: dict[str, Any]) -> ApiConfig | None:
    if not api_doc:
        return None
    if "token" in api_doc:
        raise ConfigError("api.token", "credentials are no longer kept in the config: remove "
                          "the key (the admin credential is DATA/secrets/admin.token)")
    _check_unknown(api_doc, "api", {"listen", "cert", "key", "ca", "plain_http", "max_body",
                                    "max_streams"})
    listen = _string(api_doc, "api", "listen", required=False) or ApiConfig.listen
    if not re.fullmatch(r"\[?[0-9A-Za-z.:-]+\]?:\d{1,5}", listen):
        raise ConfigError("api.listen", f"{listen!r}: use HOST:PORT (port 0: any free port)")
    paths: dict[str, Path | None] = {}
    for key in ("cert", "key", "ca"):
        text = _string(api_doc, "api", key, required=False)
        paths[key] = _absolute(text, f"api.{key}") if text else None
    plain = api_doc.get("plain_http", False)
    if not isinstance(plain, bool):
        raise ConfigError("api.plain_http", f"must be true or false, got {plain!r}")
    if plain and not is_loopback(ApiConfig(listen=listen).host):
        raise ConfigError("api.plain_http", f"plain HTTP only on a loopback address, not on "
                          f"{listen!r}: sites talk TLS to each other")
    max_body = parse_size(api_doc.get("max_body", ApiConfig.max_body), "api.max_body")
    streams = api_doc.get("max_streams", ApiConfig.max_streams)
    if isinstance(streams, bool) or not isinstance(streams, int) or not 1 <= streams <= 10_000:
        raise ConfigError("api.max_streams", f"must be a whole number from 1 to 10000, "
                          f"got {streams!r}")
    return ApiConfig(listen=listen, cert=paths["cert"], key=paths["key"], ca=paths["ca"],
                     plain_http=plain, max_body=max_body, max_streams=streams)


def load_config(path: Path | str) -> SiteConfig:
    """Read and validate ``path``. Raises ConfigError (a missing file or bad TOML included)."""
    path = Path(path).resolve()
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(str(path), "no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return parse_config(doc, path)


def write_config(config: SiteConfig, path: Path) -> None:
    """Write ``config`` as TOML (credentials included only if they were given)."""
    bucket = {k: v for k, v in vars(config.bucket).items() if v is not None}
    site: dict[str, Any] = {"name": config.name, "data": str(config.data)}
    if config.mount:
        site["mount"] = str(config.mount)
    if config.request_spin_us != SiteConfig.request_spin_us:
        site["request_spin_us"] = config.request_spin_us
    if config.writeback_cache:
        site["writeback_cache"] = True
    doc: dict[str, Any] = {
        "site": site,
        "bucket": bucket,
        "volumes": [{k: v for k, v in {"name": v.name, "path": str(v.path),
                                        "capacity": v.capacity}.items() if v is not None}
                    for v in config.volumes],
        "mover": vars(config.mover),
    }
    if config.api is not None:
        api: dict[str, Any] = {"listen": config.api.listen}
        for key in ("cert", "key", "ca"):
            if getattr(config.api, key) is not None:
                api[key] = str(getattr(config.api, key))
        if config.api.plain_http:
            api["plain_http"] = True
        if config.api.max_body != ApiConfig.max_body:
            api["max_body"] = config.api.max_body
        if config.api.max_streams != ApiConfig.max_streams:
            api["max_streams"] = config.api.max_streams
        doc["api"] = api
    if config.replication != ReplicationConfig():
        doc["replication"] = vars(config.replication)
    if config.exports.enabled():
        doc["exports"] = exports_doc(config.exports)
    if config.namespace != NamespaceConfig():
        doc["namespace"] = {"trash_days": config.namespace.trash_days, "snapshots": [
            {k: v for k, v in vars(s).items() if v is not None}
            for s in config.namespace.snapshots]}
    if config.peers:
        doc["peers"] = [{"name": p.name, "url": p.url} for p in config.peers]
    tmp = path.with_suffix(".toml.tmp")
    tmp.unlink(missing_ok=True)
    # 0600: the file holds the API token and bucket credentials
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(tomli_w.dumps(doc))
    tmp.replace(path)
