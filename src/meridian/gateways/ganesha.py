"""nfs-ganesha's configuration for one site's NFS export (NFSv4 only, FSAL VFS).

NFSv4 alone needs neither rpcbind nor the MOUNT, NLM and RQUOTA services, so two sites on one
host each run their own ganesha on their own port without meeting: the pid file, recovery
directory, log and configuration are under the site's own directory. ganesha looks for the
system D-Bus for its admin interface and carries on without it (it logs that it could not
connect); ``Dbus_Name_Prefix`` keeps two sites apart on a host that has a bus.

The export is the site's FUSE mount. FSAL VFS keeps kernel file handles
(``name_to_handle_at``) and turns them back into files with ``open_by_handle_at``; the mount
answers lookups of "." and ".." by number for that (``mount/fs.py``), so handles survive a
restart of the site. ganesha puts a file system id beside the kernel handle; a FUSE mount
has none of its own (statfs f_fsid is 0), so ganesha would take the mount's device number,
which the kernel hands out anew at every mount: handles would go stale at every restart.
``fsid_type = Major64`` keeps only the device's major number (0 for every FUSE mount), the
same after a restart; this ganesha exports one file system only, so it is unambiguous.
Attributes are not cached by ganesha (``Attr_Expiration_Time = 0``):
a change another site makes shows through the mount at once, and must through NFS too.
It has a price: ganesha then opens the file at the mount to refresh its attributes, twice
for every READ, three requests each (docs/gateways.md, "Figures").
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from meridian.site.exports import ExportConfig

EXPORT_ID = 1


def plugins_dir() -> Path:
    """Where the Debian package puts ganesha's FSAL modules (libfsalvfs.so)."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    for candidate in (Path(f"/usr/lib/{multiarch}/ganesha"), Path("/usr/lib64/ganesha"),
                      Path("/usr/lib/ganesha")):
        if (candidate / "libfsalvfs.so").exists():
            return candidate
    return Path(f"/usr/lib/{multiarch}/ganesha")


def ganesha_config(export: ExportConfig, mount: Path, workdir: Path, site: str) -> str:
    """The whole ganesha.conf for ``export`` of ``mount``."""
    access = "RO" if export.read_only else "RW"
    squash = "root_squash" if export.root_squash else "no_root_squash"
    clients = ", ".join(export.clients)
    return f"""# Written by meridian site run at every start; edits are lost.
NFS_CORE_PARAM {{
    Protocols = 4;
    NFS_Port = {export.port};
    Bind_addr = {export.host};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Plugins_Dir = "{plugins_dir()}";
    Dbus_Name_Prefix = "meridian_{site.replace('-', '_')}";
}}
NFSV4 {{
    RecoveryBackend = fs;
    RecoveryRoot = "{workdir / 'recovery'}";
    Graceless = true;
    Only_Numeric_Owners = true;
    Allow_Numeric_Owners = true;
}}
NFS_KRB5 {{
    Active_krb5 = false;
}}
MDCACHE {{
    Dir_Chunk = 0;
}}
EXPORT_DEFAULTS {{
    Access_Type = None;
}}
EXPORT {{
    Export_Id = {EXPORT_ID};
    Path = "{mount}";
    Pseudo = "/{export.name}";
    Protocols = 4;
    Transports = TCP;
    SecType = sys;
    Squash = {squash};
    Anonymous_uid = 65534;
    Anonymous_gid = 65534;
    Attr_Expiration_Time = 0;
    Access_Type = None;
    CLIENT {{
        Clients = {clients};
        Access_Type = {access};
    }}
    FSAL {{
        Name = VFS;
        fsid_type = Major64;
    }}
}}
LOG {{
    Default_Log_Level = EVENT;
}}
"""


def ganesha_command(config: Path, workdir: Path) -> list[str]:
    return ["ganesha.nfsd", "-F", "-f", str(config), "-L", str(workdir / "ganesha.log"),
            "-p", str(workdir / "ganesha.pid"), "-N", "NIV_EVENT"]
