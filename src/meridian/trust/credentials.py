"""Credentials: what a site accepts from its callers, and what it presents to its peers.

A credential is a bearer token of 256 random bits (``secrets.token_urlsafe(32)``). Each
belongs to one **caller**:

- ``admin``: the site's own operator (the CLI on its host, a console). Every route.
- ``peer:NAME``: the credential this site issued to site NAME. Only the replication routes,
  and ``leave`` / ``rotate`` for NAME itself (``meridian.api.scopes`` has the table).
- ``join:NAME``: a one-time credential that lets site NAME join (``POST /api/v1/join``) until
  it expires; it is spent by its first successful use.

The site that checks a credential keeps only its SHA-256 (``credentials.json``). A salted,
slow hash (bcrypt, scrypt) protects *guessable* secrets; a 256-bit random token cannot be
guessed, so a leaked hash file gives an attacker a 2^256 search, and one fast hash keeps every
request cheap (docs/security.md). The comparison runs in constant time over every record.

The credentials this site presents to peers (each issued by that peer) are kept in clear in
``peers.json``, and the admin credential in ``admin.token``, for the CLI on this host: both
files are 0600 in a 0700 folder, like an SSH key.

Files are re-read when they change on disk (size, mtime, inode), so ``meridian peer remove``
takes effect on a running site at its next request, and a rotated credential is presented from
the next request on. Writers hold an ``flock`` on ``secrets/lock`` and replace files atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meridian.errors import BadInput

CREDENTIALS_FORMAT = 1
KINDS = ("admin", "peer", "join")


def new_credential() -> str:
    """256 random bits, URL-safe (43 characters), never starting with '-'."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (temp file, fsync,
    rename): never readable by others, never half written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_secret_input(source: str, what: str) -> str:
    """A secret from a file, or from standard input when ``source`` is ``-`` (never from the
    command line, where ``ps`` shows it). Raises BadInput naming ``what``."""
    import sys

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise BadInput(f"{what}: cannot read {source}: {exc.strerror}") from None
    text = text.strip()
    if not text:
        raise BadInput(f"{what}: {source} is empty")
    return text


@dataclass(frozen=True)
class Caller:
    """Who presented a credential."""

    kind: str  # admin | peer | join
    name: str | None = None  # the peer's or joining site's name
    credential_id: str = ""

    @property
    def label(self) -> str:
        return self.kind if self.name is None else f"{self.kind}:{self.name}"


class SecretsDir:
    """``DATA/secrets``: the files of one site's credentials (0700 folder, 0600 files)."""

    def __init__(self, data: Path) -> None:
        self.path = data / "secrets"

    @property
    def admin(self) -> Path:
        return self.path / "admin.token"

    @property
    def accepted(self) -> Path:
        return self.path / "credentials.json"

    @property
    def presented(self) -> Path:
        return self.path / "peers.json"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def admin_credential(self) -> str:
        """The admin credential, for the CLI on this host. Raises BadInput if unreadable."""
        try:
            return self.admin.read_text().strip()
        except PermissionError:
            raise BadInput(f"{self.admin}: not readable by this user (the site's admin "
                           "credential: run as the site's owner)") from None
        except OSError:
            raise BadInput(f"{self.admin}: missing (the site's admin credential, made by "
                           "`meridian init`)") from None


class _JsonFile:
    """A JSON document on disk, re-read when the file changes."""

    def __init__(self, path: Path, empty: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._empty = empty
        self._stamp: tuple[int, int, int] | None = None
        self._doc: dict[str, Any] = empty()

    def read(self) -> dict[str, Any]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._doc = None, self._empty()
            return self._doc
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._doc = json.loads(self.path.read_text())
            self._stamp = stamp
        return self._doc

    def write(self, doc: dict[str, Any]) -> None:
        write_secret(self.path, json.dumps(doc, indent=1) + "\n")
        self._stamp = None


class CredentialStore:
    """The credentials this site accepts, hashed. Safe to use from several processes (the
    running site and the CLI): reads follow the file, writes hold the secrets lock."""

    def __init__(self, secrets_dir: SecretsDir, clock: Callable[[], float] = time.time) -> None:
        self.dir = secrets_dir
        self.clock = clock
        self._file = _JsonFile(secrets_dir.accepted,
                               lambda: {"format": CREDENTIALS_FORMAT, "credentials": []})

    def _records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self._file.read()["credentials"]
        return records

    def check(self, presented: str) -> Caller | None:
        """The caller whose live credential ``presented`` is, or None (unknown, expired, a
        spent join credential). Constant time in the credential's bytes."""
        if not presented:
            return None
        wanted = digest(presented)
        now = self.clock()
        found = None
        for record in self._records():
            if hmac.compare_digest(record["hash"], wanted):
                found = record
        if found is None or found.get("spent"):
            return None
        if found.get("expires") is not None and found["expires"] <= now:
            return None
        return Caller(found["kind"], found.get("name"), found["id"])

    @contextmanager
    def _changing(self) -> Iterator[list[dict[str, Any]]]:
        with self.dir.locked():
            self._file._stamp = None
            records = [dict(r) for r in self._records()]
            yield records
            now = self.clock()
            live = [r for r in records  # forget what expired more than a day ago
                    if r.get("expires") is None or r["expires"] > now - 86400]
            self._file.write({"format": CREDENTIALS_FORMAT, "credentials": live})

    def _issue(self, records: list[dict[str, Any]], kind: str, name: str | None,
               expires: float | None) -> str:
        credential = new_credential()
        records.append({"id": secrets.token_hex(6), "kind": kind, "name": name,
                        "hash": digest(credential), "created": self.clock(),
                        "expires": expires})
        return credential

    def issue_admin(self) -> str:
        """A new admin credential (the previous one stops working at once); also written to
        ``admin.token`` for the CLI on this host."""
        with self._changing() as records:
            records[:] = [r for r in records if r["kind"] != "admin"]
            credential = self._issue(records, "admin", None, None)
        write_secret(self.dir.admin, credential + "\n")
        return credential

    def issue_peer(self, name: str, *, grace: float | None = None) -> str:
        """A new credential for peer ``name``. Its previous ones stay valid for ``grace``
        seconds more (rotation without a gap), or stop at once when ``grace`` is None."""
        with self._changing() as records:
            deadline = None if grace is None else self.clock() + grace
            kept = []
            for record in records:
                if record["kind"] == "peer" and record["name"] == name:
                    if deadline is None:
                        continue
                    if record["expires"] is None or record["expires"] > deadline:
                        record["expires"] = deadline
                kept.append(record)
            records[:] = kept
            return self._issue(records, "peer", name, None)

    def issue_join(self, name: str, ttl: float) -> str:
        """A one-time credential for site ``name`` to join, valid ``ttl`` seconds."""
        if ttl <= 0:
            raise BadInput(f"a join credential must live a positive time, not {ttl}")
        with self._changing() as records:
            return self._issue(records, "join", name, self.clock() + ttl)

    def spend_join(self, credential_id: str) -> bool:
        """Spend join credential ``credential_id``: True the first time only."""
        with self._changing() as records:
            for record in records:
                if (record["id"] == credential_id and record["kind"] == "join"
                        and not record.get("spent")):
                    record["spent"] = True
                    return True
        return False

    def revoke(self, name: str) -> int:
        """Every credential of peer (or joining site) ``name`` stops at once; how many."""
        with self._changing() as records:
            before = len(records)
            records[:] = [r for r in records
                          if not (r["kind"] in ("peer", "join") and r["name"] == name)]
            return before - len(records)

    def peers(self) -> dict[str, int]:
        """Peer name → how many live credentials it has (two during a rotation)."""
        now = self.clock()
        counts: dict[str, int] = {}
        for record in self._records():
            if record["kind"] == "peer" and (record["expires"] is None or record["expires"] > now):
                counts[record["name"]] = counts.get(record["name"], 0) + 1
        return counts


class PresentedCredentials:
    """The credentials this site presents to its peers (each issued by that peer), by peer
    name, in ``peers.json`` (0600). ``get`` follows the file, so a credential rotated by the
    CLI is presented by the running site from its next request."""

    def __init__(self, secrets_dir: SecretsDir) -> None:
        self.dir = secrets_dir
        self._file = _JsonFile(secrets_dir.presented, lambda: {"peers": {}})

    def get(self, peer: str) -> str | None:
        value = self._file.read()["peers"].get(peer)
        return str(value) if value else None

    def put(self, peer: str, credential: str) -> None:
        with self.dir.locked():
            self._file._stamp = None
            doc = {"peers": dict(self._file.read()["peers"])}
            doc["peers"][peer] = credential
            self._file.write(doc)

    def remove(self, peer: str) -> bool:
        with self.dir.locked():
            self._file._stamp = None
            doc = {"peers": dict(self._file.read()["peers"])}
            found = doc["peers"].pop(peer, None) is not None
            self._file.write(doc)
            return found
