"""``[exports]``: the site's NFS and SMB gateways to workstations, as configured.

Example::

    [exports.nfs]                      # nfs-ganesha, NFSv4, FSAL VFS over the site's mount
    listen = "0.0.0.0:2049"
    clients = ["10.20.0.0/16"]         # addresses or networks allowed (others: refused)
    access = "rw"                      # or "ro"
    root_squash = true                 # root on a client acts as nobody (default)

    [exports.smb]                      # Samba (smbd), SMB2 and later
    listen = "0.0.0.0:445"
    clients = ["10.20.0.0/16"]
    access = "rw"
    users = ["artist", "comp"]         # Unix accounts of this host allowed to log in;
                                       # passwords: DATA/secrets/smb-passwords (0600)

``name`` (default ``meridian``) is the NFSv4 path (``nfs://HOST:PORT/meridian``) and the SMB
share (``//HOST:PORT/meridian``). What the gateways are and how they run:
``docs/gateways.md``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from meridian.errors import ConfigError

PROTOCOLS = ("nfs", "smb")
_LISTEN = re.compile(r"\[?([0-9A-Za-z.:-]+?)\]?:(\d{1,5})")
_SHARE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class ExportConfig:
    """One gateway: ``protocol`` "nfs" or "smb", where it listens, who may use it, how."""

    protocol: str
    listen: str
    clients: tuple[str, ...] = ("127.0.0.1",)
    read_only: bool = False
    root_squash: bool = True
    name: str = "meridian"
    users: tuple[str, ...] = ()  # smb only

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def url(self, host: str | None = None) -> str:
        """How a client names it: ``nfs://HOST:PORT/NAME`` or ``//HOST:PORT/NAME``."""
        where = host or ("127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host)
        prefix = "nfs:" if self.protocol == "nfs" else ""
        return f"{prefix}//{where}:{self.port}/{self.name}"

    def describe(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "listen": self.listen, "url": self.url(),
                "clients": list(self.clients), "access": "ro" if self.read_only else "rw",
                "root_squash": self.root_squash, "users": list(self.users)}


@dataclass(frozen=True)
class ExportsConfig:
    nfs: ExportConfig | None = None
    smb: ExportConfig | None = None

    def enabled(self) -> list[ExportConfig]:
        return [e for e in (self.nfs, self.smb) if e is not None]


def parse_exports(doc: Any) -> ExportsConfig:
    """Validate the ``[exports]`` table (missing: no exports). Raises ConfigError."""
    if doc is None:
        return ExportsConfig()
    if not isinstance(doc, dict):
        raise ConfigError("exports", "must be a table ([exports.nfs], [exports.smb])")
    unknown = set(doc) - set(PROTOCOLS)
    if unknown:
        raise ConfigError(f"exports.{sorted(unknown)[0]}", "unknown export: use nfs or smb")
    parsed = {protocol: _export(protocol, doc[protocol]) for protocol in PROTOCOLS
              if protocol in doc}
    return ExportsConfig(**parsed)


def _export(protocol: str, table: Any) -> ExportConfig:
    section = f"exports.{protocol}"
    if not isinstance(table, dict):
        raise ConfigError(section, "must be a table")
    known = {"listen", "clients", "access", "root_squash", "name"} | (
        {"users"} if protocol == "smb" else set())
    for key in table:
        if key not in known:
            raise ConfigError(f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    listen = table.get("listen")
    match = _LISTEN.fullmatch(listen) if isinstance(listen, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise ConfigError(f"{section}.listen", f"{listen!r}: use HOST:PORT (port 1-65535)")
    clients = table.get("clients", ["127.0.0.1"])
    if not isinstance(clients, list) or not clients:
        raise ConfigError(f"{section}.clients", "must be a non-empty list of addresses or networks")
    for client in clients:
        try:
            ipaddress.ip_network(str(client), strict=False)
        except ValueError:
            raise ConfigError(f"{section}.clients", f"{client!r} is not an address or network "
                              f"(10.0.0.5, 10.20.0.0/16)") from None
    access = table.get("access", "rw")
    if access not in ("rw", "ro"):
        raise ConfigError(f"{section}.access", f"{access!r}: use \"rw\" or \"ro\"")
    squash = table.get("root_squash", True)
    if not isinstance(squash, bool):
        raise ConfigError(f"{section}.root_squash", f"must be true or false, got {squash!r}")
    name = table.get("name", "meridian")
    if not isinstance(name, str) or not _SHARE.match(name):
        raise ConfigError(f"{section}.name", f"{name!r}: 1-32 letters, digits, '-' or '_'")
    users: list[str] = []
    if protocol == "smb":
        users = table.get("users", [])
        if not isinstance(users, list) or not users:
            raise ConfigError(f"{section}.users", "must list the Unix accounts allowed to log in")
        for user in users:
            if not isinstance(user, str) or not _USER.match(user):
                raise ConfigError(f"{section}.users", f"{user!r} is not a Unix account name")
            if user == "root" and squash:
                raise ConfigError(f"{section}.users", "root may not log in while root_squash "
                                  "is on")
    return ExportConfig(protocol, str(listen), tuple(str(c) for c in clients), access == "ro",
                        squash, name, tuple(users))


def exports_doc(exports: ExportsConfig) -> dict[str, Any]:
    """The ``[exports]`` table that ``parse_exports`` reads back as ``exports``."""
    doc: dict[str, Any] = {}
    for export in exports.enabled():
        table: dict[str, Any] = {"listen": export.listen, "clients": list(export.clients),
                                 "access": "ro" if export.read_only else "rw",
                                 "root_squash": export.root_squash}
        if export.name != "meridian":
            table["name"] = export.name
        if export.protocol == "smb":
            table["users"] = list(export.users)
        doc[export.protocol] = table
    return doc
