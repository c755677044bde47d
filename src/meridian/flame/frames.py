"""Frame patterns: the ``name.[1001-1098].exr`` paths of Open Clip spans.

Flame writes an image sequence as one path whose frame range is in brackets; the width of the
first number is the frame padding: ``[001001-001100]`` is six digits, ``[0100-0269]`` four.
Wider numbers are written in full (``[099-10005]`` has padding 3 and ends at ``10005``), as
``printf("%03d")`` does. Some writers put a printf token (``%04d``) in the path and the range in
``<startFrame>``/``<duration>`` elements: :meth:`FramePattern.parse_printf` reads those.

Every refusal raises :class:`~meridian.errors.BadInput`; :mod:`meridian.flame.openclip` turns
it into a :class:`~meridian.flame.xmlio.ClipError` naming the file, line and element.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meridian.errors import BadInput

# The frame range: "[1001-1098]" (Autodesk's own samples sometimes have a space before "]").
_BRACKET = re.compile(r"\[\s*(\d+)\s*-\s*(\d+)\s*\]")
# A printf frame token: "%04d", "%4d" (same padding as written by these tools) or "%d".
_PRINTF = re.compile(r"%(\d*)d")


@dataclass(frozen=True)
class FramePattern:
    """An image sequence: frames ``first`` .. ``last`` (inclusive), each path being ``head``,
    the frame number zero-padded to at least ``padding`` digits, then ``tail``.

    Invariants (checked, :class:`BadInput` otherwise): ``0 <= first <= last``, ``padding >= 1``.
    """

    head: str
    first: int
    last: int
    padding: int
    tail: str

    def __post_init__(self) -> None:
        if self.first < 0 or self.last < self.first:
            raise BadInput(f"frame range {self.first}-{self.last}: needs 0 <= first <= last")
        if self.padding < 1:
            raise BadInput(f"frame padding {self.padding}: needs at least 1 digit")

    @classmethod
    def parse(cls, text: str) -> FramePattern:
        """Read the bracket form ``head[first-last]tail``; the last bracketed range is the frame
        range (an earlier one belongs to a folder name). The padding is the width of ``first``
        as written. Raises :class:`BadInput` for a path without a range (a printf token needs
        :meth:`parse_printf`; ``{frame}`` is an unbounded pattern with no range to read)."""
        matches = list(_BRACKET.finditer(text))
        if not matches:
            if _PRINTF.search(text):
                raise BadInput(f"{text!r}: a printf frame token needs its range "
                               "(FramePattern.parse_printf(text, first, last))")
            if "{frame}" in text:
                raise BadInput(f"{text!r}: a {{frame}} pattern has no frame range")
            raise BadInput(f"{text!r}: no frame range like [1001-1098]")
        match = matches[-1]
        first, last = int(match.group(1)), int(match.group(2))
        if last < first:
            raise BadInput(f"{text!r}: frame range ends before it starts")
        return cls(text[:match.start()], first, last, len(match.group(1)), text[match.end():])

    @classmethod
    def parse_printf(cls, text: str, first: int, last: int) -> FramePattern:
        """Read ``head%04dtail`` with the range given apart (``<startFrame>`` and
        ``<duration>``: ``last = start + duration - 1``). ``%d`` has padding 1; the last token
        is the frame number. Raises :class:`BadInput` without a token or with a bad range."""
        matches = list(_PRINTF.finditer(text))
        if not matches:
            raise BadInput(f"{text!r}: no printf frame token like %04d")
        match = matches[-1]
        padding = int(match.group(1)) if match.group(1) else 1
        return cls(text[:match.start()], first, last, max(padding, 1), text[match.end():])

    def frame(self, number: int) -> str:
        """The path of frame ``number`` (not checked against the range)."""
        return f"{self.head}{number:0{self.padding}d}{self.tail}"

    def frames(self) -> list[str]:
        """Every frame path, ``first`` to ``last``, padding kept."""
        return [self.frame(n) for n in range(self.first, self.last + 1)]

    def __len__(self) -> int:
        return self.last - self.first + 1

    def bracket(self) -> str:
        """The bracket form Flame reads: ``head[0100-0269]tail``."""
        return f"{self.head}[{self.first:0{self.padding}d}-{self.last:0{self.padding}d}]{self.tail}"

    def __str__(self) -> str:
        return self.bracket()


def has_frame_range(text: str) -> bool:
    """Whether ``text`` has a bracketed frame range (the form :meth:`FramePattern.parse` reads)."""
    return _BRACKET.search(text) is not None


def has_printf_token(text: str) -> bool:
    """Whether ``text`` has a printf frame token (``%04d``, ``%d``)."""
    return _PRINTF.search(text) is not None
