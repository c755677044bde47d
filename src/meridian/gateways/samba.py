"""Samba's configuration for one site's SMB export, and its users.

Everything smbd keeps (pid, locks, state, cache, the password database, its RPC sockets) is
under the site's own directory, and it listens only on the configured address and port, so
two sites on one host run two smbd that never meet. Users are Unix accounts of the host
named in ``[exports.smb] users``; their SMB passwords are in ``DATA/secrets/smb-passwords``
(``user:password`` lines, 0600; Meridian writes a random one for a user that has none) and
are loaded into a fresh password database at every start.

Oplocks and leases are off: another site changes files behind smbd's back (through the
mount, where no lease is broken), and a client holding a lease would keep reading its own
cached bytes. Without them every open asks the server, which reads through the mount and
sees the other site's change.

Reads go out with sendfile (``use sendfile``): smbd hands the mount's pages to the socket
without copying them through its own buffers (Samba does so only for unsigned, unencrypted
reads, and falls back to a plain read otherwise).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from meridian.errors import BadInput
from meridian.site.exports import ExportConfig

PASSWORD_FILE = "smb-passwords"


def smb_config(export: ExportConfig, mount: Path, workdir: Path, site: str) -> str:
    """The whole smb.conf for ``export`` of ``mount``."""
    any_address = export.host in ("0.0.0.0", "::")
    listen = "" if any_address else (f"    interfaces = {export.host}\n"
                                     f"    bind interfaces only = yes\n")
    squash = "    invalid users = root\n" if export.root_squash else ""
    dirs = {key: workdir / sub for key, sub in (
        ("pid directory", "run"), ("lock directory", "lock"), ("state directory", "state"),
        ("cache directory", "cache"), ("private dir", "private"), ("ncalrpc dir", "ncalrpc"),
        ("binddns dir", "bind-dns"))}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"    {key} = {path}\n" for key, path in dirs.items())
    return f"""# Written by meridian site run at every start; edits are lost.
[global]
    server role = standalone server
    workgroup = MERIDIAN
    netbios name = {('M-' + site)[:15].upper()}
    smb ports = {export.port}
{listen}    disable netbios = yes
    server min protocol = SMB2_10
{lines}    passdb backend = tdbsam:{workdir / 'private' / 'passdb.tdb'}
    log file = {workdir / 'smbd.log'}
    max log size = 10000
    security = user
    map to guest = never
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    usershare path =
    hosts allow = {' '.join(export.clients)}
    hosts deny = ALL
{squash}    oplocks = no
    level2 oplocks = no
    kernel oplocks = no
    smb2 leases = no
    strict sync = yes
    use sendfile = yes
    unix extensions = no

[{export.name}]
    path = {mount}
    read only = {'yes' if export.read_only else 'no'}
    valid users = {' '.join(export.users)}
    browseable = yes
"""


def smbd_command(config: Path) -> list[str]:
    return ["smbd", "-F", "--no-process-group", "--debug-stdout", "-s", str(config)]


def read_passwords(secrets_dir: Path) -> dict[str, str]:
    path = secrets_dir / PASSWORD_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    passwords = {}
    for line in text.splitlines():
        user, sep, password = line.partition(":")
        if sep and user.strip():
            passwords[user.strip()] = password
    return passwords


def ensure_passwords(export: ExportConfig, secrets_dir: Path) -> dict[str, str]:
    """Every configured user's password, a random one written for a user without (0600)."""
    passwords = read_passwords(secrets_dir)
    missing = [user for user in export.users if user not in passwords]
    if missing:
        for user in missing:
            passwords[user] = secrets.token_urlsafe(18)
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = secrets_dir / PASSWORD_FILE
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write("".join(f"{user}:{password}\n" for user, password in passwords.items()))
        tmp.replace(path)
    return {user: passwords[user] for user in export.users}


def load_users(config: Path, workdir: Path, passwords: dict[str, str]) -> None:
    """A fresh password database holding exactly ``passwords`` (BadInput naming a user that
    is not a Unix account of this host)."""
    (workdir / "private" / "passdb.tdb").unlink(missing_ok=True)
    for user, password in passwords.items():
        result = subprocess.run(["pdbedit", "-s", str(config), "-a", "-t", "-u", user],
                                input=f"{password}\n{password}\n", capture_output=True,
                                text=True, check=False, timeout=30)
        if result.returncode != 0:
            raise BadInput(f"exports.smb.users: cannot add {user!r} (a Unix account of this "
                           f"host is needed): {(result.stderr or result.stdout).strip()}")
