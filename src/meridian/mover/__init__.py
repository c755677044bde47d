"""``meridian.mover`` — uploads to and fetches from the bucket, with retries and priorities."""

from meridian.mover.mover import Mover, MoverStats

__all__ = ["Mover", "MoverStats"]
