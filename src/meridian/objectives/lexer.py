"""Tokens of the Objective language, read one at a time (so the first error in the text is
the one reported).

Whitespace is `` \\t\\r\\n\\f\\v``; only ``\\n`` starts a new line. Lines and columns are
1-based and count characters. Strings are single- or double-quoted on one line; inside them
``\\\\``, ``\\"`` and ``\\'`` stand for the character after the backslash, and any other
backslash is kept as written (so ``REGEX("\\d+", NAME)`` means what it says).
Names are ASCII letters, digits, ``_`` and inner ``-`` (``keep-versions``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from meridian.objectives.syntax import ObjectiveError

_SPACE = " \t\r\n\f\v"
_QUOTES = "\"'"
_ESCAPABLE = ("\\", '"', "'")  # what a backslash escapes; any other backslash stays
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "=", "<", ">", "!", "(", ")", "{", "}", ",",
              "*", "?")


class TokenKind(enum.Enum):
    NAME = "name"
    NUMBER = "number"
    STRING = "string"
    OPERATOR = "operator"
    END = "end"


@dataclass(frozen=True)
class Token:
    """One token. ``text`` is as written (strings with their quotes); ``offset``/``end`` index
    the source. For strings, ``value`` is the decoded text and ``value_columns`` the column of
    each of its characters. The END token sits just after the last token (1:1 if none)."""

    kind: TokenKind
    text: str
    line: int
    column: int
    offset: int
    end: int
    value: str = ""
    value_columns: tuple[int, ...] = ()

    def is_word(self, *words: str) -> bool:
        """True if this is a name equal (case-insensitively) to one of ``words`` (upper-case)."""
        return self.kind is TokenKind.NAME and self.text.upper() in words

    def is_operator(self, *operators: str) -> bool:
        return self.kind is TokenKind.OPERATOR and self.text in operators


class Lexer:
    """Reads ``text`` token by token; :meth:`next` raises :class:`ObjectiveError` at the first
    character that starts no token, or at the opening quote of an unterminated string."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1
        self._line_start = 0
        self._end_position = (1, 1)

    def next(self) -> Token:
        self._skip_space()
        text, pos = self._text, self._pos
        if pos >= len(text):
            line, column = self._end_position
            return Token(TokenKind.END, "", line, column, pos, pos)
        column = pos - self._line_start + 1
        token = self._string(pos, column) if text[pos] in _QUOTES else self._plain(pos, column)
        self._pos = token.end
        self._end_position = (self._line, column + token.end - token.offset)
        return token

    def upcoming_char(self) -> str:
        """The next character that is not whitespace ("" at the end), without consuming it."""
        pos = self._pos
        while pos < len(self._text) and self._text[pos] in _SPACE:
            pos += 1
        return self._text[pos:pos + 1]

    def _skip_space(self) -> None:
        text, pos = self._text, self._pos
        while pos < len(text) and text[pos] in _SPACE:
            if text[pos] == "\n":
                self._line += 1
                self._line_start = pos + 1
            pos += 1
        self._pos = pos

    def _plain(self, pos: int, column: int) -> Token:
        text = self._text
        for pattern, kind in ((_NUMBER, TokenKind.NUMBER), (_NAME, TokenKind.NAME)):
            found = pattern.match(text, pos)
            if found:
                return Token(kind, found.group(), self._line, column, pos, found.end())
        for operator in _OPERATORS:
            if text.startswith(operator, pos):
                return Token(TokenKind.OPERATOR, operator, self._line, column, pos,
                             pos + len(operator))
        char = text[pos]
        expected = {"&": "'&&'", "|": "'||'"}.get(
            char, "a keyword, a name, a number, a quoted string or an operator")
        raise ObjectiveError(expected, self._line, column, f"unexpected character {char!r}")

    def _string(self, start: int, column: int) -> Token:
        text, quote = self._text, self._text[start]
        chars: list[str] = []
        columns: list[int] = []
        pos = start + 1
        while pos < len(text) and text[pos] != "\n":
            char = text[pos]
            if char == quote:
                return Token(TokenKind.STRING, text[start:pos + 1], self._line, column, start,
                             pos + 1, "".join(chars), tuple(columns))
            step = 2 if char == "\\" and text[pos + 1:pos + 2] in _ESCAPABLE else 1
            chars.append(text[pos + step - 1])
            columns.append(column + pos - start)
            pos += step
        raise ObjectiveError(f"a closing {quote} before the end of the line", self._line, column,
                             "unterminated string")
