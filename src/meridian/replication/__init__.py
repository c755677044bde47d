"""Replication: every site pulls every peer's journal and applies it (docs/design.md, data
flow steps 4-6).

The rules of applying (conflicts, relay, exactly once) live with the store, in
``meridian.meta.replica``, because an entry and the position that counts it must commit in one
store transaction; this package is the service around them: the links to the peers, their
state for ``status``, and the hooks through which the mount and the event stream hear of what
was applied.
"""

from meridian.replication.link import EntryRefused, LinkState, Peer, PeerLink, entries_of
from meridian.replication.service import Replication

__all__ = ["EntryRefused", "LinkState", "Peer", "PeerLink", "Replication", "entries_of"]
