"""Sizes and the I/O constants the bench scripts share."""

from __future__ import annotations

import argparse
import re
import sys

CHUNK = 1 << 20
"""Every timed read and write moves this many bytes a call."""
BUFFER = 64 << 20
"""The random buffer writes take their bytes from (each write stamped, so nothing dedupes)."""
MB = 1e6  # MB/s are 10^6 bytes per second


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)(B?)\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1GiB, 512MiB, 1048576)")
    number, unit, binary, b = match.groups()
    unit = unit.upper()
    if not unit:
        factor = 1
    else:
        power = "KMGT".index(unit) + 1
        decimal = bool(b) and not binary  # "MB" is 10^6; "MiB" and a bare "M" are 2^20
        factor = (1000 if decimal else 1024) ** power
    size = int(float(number) * factor)
    if size <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return size


def parse_size_or_zero(text: str) -> int:
    return 0 if text.strip() in ("0", "0B") else parse_size(text)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return f"{n} B"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)



