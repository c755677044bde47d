"""``meridian.gateways`` — the site's mount served to workstations over NFS and SMB.

An adapter beside the mount: nfs-ganesha (NFSv4, FSAL VFS) and Samba's smbd export the
site's FUSE mount, each as a child process of ``meridian site run`` with its configuration,
state and logs under ``DATA/exports/<protocol>/``. ``docs/gateways.md`` has the semantics.
"""

from meridian.gateways.supervisor import Gateways, read_gateway_state

__all__ = ["Gateways", "read_gateway_state"]
