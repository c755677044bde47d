"""Undo: trash, undelete, versions and snapshots (services over the store and the bucket)."""
