"""The XML infoset of a document, for round-trip assertions, read independently of the code
under test (the standard library's expat, with namespaces not expanded, so prefixes count).

Two documents have the same infoset here when they have the same elements (names as written),
attributes (names, values and order), non-whitespace text, comments and processing
instructions, in the same order, in and around the root; whitespace-only text between
elements does not count.
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat


def infoset(data: bytes) -> list[Any]:
    """The document as nested lists: ``["element", name, [(attr, value)...], [children]]``,
    ``["text", text]``, ``["comment", text]``, ``["pi", target, data]`` (trusted input)."""
    parser = expat.ParserCreate()  # no namespace processing: names as written
    parser.ordered_attributes = True
    top: list[Any] = []
    stack: list[list[Any]] = [top]
    text: list[str] = []

    def flush() -> None:
        joined = "".join(text)
        text.clear()
        if joined.strip():
            stack[-1].append(["text", joined])

    def start(name: str, attributes: list[str]) -> None:
        flush()
        children: list[Any] = []
        pairs = list(zip(attributes[::2], attributes[1::2], strict=True))
        stack[-1].append(["element", name, pairs, children])
        stack.append(children)

    def end(name: str) -> None:
        flush()
        stack.pop()

    def comment(data: str) -> None:
        flush()
        stack[-1].append(["comment", data])

    def pi(target: str, data: str) -> None:
        flush()
        stack[-1].append(["pi", target, data])

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    parser.CommentHandler = comment
    parser.ProcessingInstructionHandler = pi
    parser.Parse(data, True)
    flush()
    return top
