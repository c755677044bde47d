"""Flame integration: Open Clip files (read, append versions, merge conflict copies, find the
versions of scan-pattern clips). ``meridian.flame.openclip`` documents the modules behind it."""

from meridian.flame.openclip import *  # noqa: F403 - the package's face is openclip's
from meridian.flame.openclip import __all__ as __all__
