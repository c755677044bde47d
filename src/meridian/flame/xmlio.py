"""Reading and writing clip XML safely: the one module of ``meridian.flame`` that parses XML.

- :func:`parse_xml` refuses DTDs, entity declarations and external entities (defusedxml over
  expat, no network), so a billion-laughs or external-entity file never expands; every refusal
  and every syntax error is a :class:`ClipError` naming the file, the line and the element.
  Comments and processing instructions are kept, in and around the root element, and names
  keep the namespace prefixes they were written with, so writing the tree back gives the same
  infoset.
- :func:`serialize` writes UTF-8 with an XML declaration; whitespace that was read is kept.
- :func:`write_atomic` replaces a file the crash-safe way (temp file in the same folder, fsync,
  rename, fsync the folder): a reader, here or at another site, sees the old clip or the new
  one, never a part.
- :func:`insert_child` adds an element indented like the rest of the document.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.ElementTree import ParseError as DefusedParseError

from meridian.errors import BadInput

MAX_CLIP_BYTES = 16 * 1024 * 1024
"""Clips are a few KB; anything past this is refused before it is parsed."""


class ClipError(BadInput):
    """A clip that cannot be used. ``str()`` names the file, the line and the element, e.g.
    ``sh010.clip:12: <feeds>: feed without vuid``. ``path`` (None for bytes without a file),
    ``line`` (1-based, None when unknown) and ``element`` (tag name, None when it is about the
    whole file) say where; ``problem`` says what."""

    def __init__(self, path: Path | str | None, line: int | None, element: str | None,
                 problem: str) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.element = element
        self.problem = problem
        where = str(path) if path is not None else "<clip>"
        if line is not None:
            where += f":{line}"
        if element is not None:
            where += f": <{element}>"
        super().__init__(f"{where}: {problem}")


@dataclass
class ParsedXml:
    """A parsed document: the root, the line each element started on, and the comments and
    processing instructions before (``prolog``) and after (``epilog``) the root."""

    root: ET.Element
    lines: dict[ET.Element, int] = field(default_factory=dict)
    prolog: list[ET.Element[Any]] = field(default_factory=list)
    epilog: list[ET.Element[Any]] = field(default_factory=list)


_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"


class _Builder:
    """The parser's target: a TreeBuilder that notes each element's line and open elements."""

    def __init__(self) -> None:
        self.tree = ET.TreeBuilder(insert_comments=True, insert_pis=True)
        self.lines: dict[ET.Element, int] = {}
        self.open: list[str] = []
        self.prolog: list[ET.Element[Any]] = []
        self.epilog: list[ET.Element[Any]] = []
        self.expat: Any = None
        self.had_root = False
        self.declared: list[tuple[str, str]] = []
        self.scopes: list[list[tuple[str, str]]] = [[("xml", _XML_NAMESPACE)]]

    # Namespaces are kept as written: expat reports "{uri}name", which is turned back into
    # "prefix:name" with the document's own prefix, and each declaration into its xmlns
    # attribute, so the tree holds the names as they were and serializes them unchanged.

    def start_ns(self, prefix: str, uri: str) -> None:
        self.declared.append((prefix, uri))

    def end_ns(self, prefix: str) -> None:
        pass

    def _prefixed(self, name: str, attribute: bool) -> str:
        if not name.startswith("{"):
            return name
        uri, local = name[1:].split("}", 1)
        for scope in reversed(self.scopes):
            for prefix, bound in reversed(scope):
                if bound == uri and (prefix or not attribute) and self._bound(prefix) == uri:
                    return f"{prefix}:{local}" if prefix else local
        return name  # not expressible with the prefixes in scope: ElementTree will add one

    def _bound(self, prefix: str) -> str | None:
        """The namespace ``prefix`` means here (an inner declaration shadows an outer one)."""
        for scope in reversed(self.scopes):
            for declared, uri in reversed(scope):
                if declared == prefix:
                    return uri
        return None

    def start(self, tag: str, attrib: dict[str, str]) -> ET.Element:
        self.scopes.append(self.declared)
        written = {f"xmlns:{p}" if p else "xmlns": uri for p, uri in self.declared}
        self.declared = []
        written.update((self._prefixed(k, True), v) for k, v in attrib.items())
        name = self._prefixed(tag, False)
        element = self.tree.start(name, written)
        self.lines[element] = int(self.expat.CurrentLineNumber) if self.expat else 0
        self.open.append(name)
        self.had_root = True
        return element

    def end(self, tag: str) -> ET.Element:
        self.scopes.pop()
        return self.tree.end(self.open.pop())

    def data(self, text: str) -> None:
        self.tree.data(text)

    def comment(self, text: str) -> None:
        if self.open:
            self.tree.comment(text)
        else:
            (self.epilog if self.had_root else self.prolog).append(ET.Comment(text))

    def pi(self, target: str, text: str | None = None) -> None:
        if self.open:
            self.tree.pi(target, text)
        else:
            (self.epilog if self.had_root else self.prolog).append(
                ET.ProcessingInstruction(target, text))

    def close(self) -> ET.Element:
        return self.tree.close()


_REFUSED: dict[type[Exception], str] = {
    DTDForbidden: "a document type declaration",
    EntitiesForbidden: "an entity declaration",
    ExternalReferenceForbidden: "an external entity reference",
}
_REFUSED_ELEMENT: dict[type[Exception], str] = {
    DTDForbidden: "!DOCTYPE", EntitiesForbidden: "!ENTITY", ExternalReferenceForbidden: "!ENTITY"}


def _tag_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(data: bytes, path: Path | str | None) -> ParsedXml:
    """Parse ``data`` (``path`` only names it in errors). Raises :class:`ClipError` for a DTD,
    an entity, an external reference, a syntax error or a document over ``MAX_CLIP_BYTES``."""
    if len(data) > MAX_CLIP_BYTES:
        raise ClipError(path, None, None, f"{len(data)} bytes: too large for a clip")
    builder = _Builder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True,
                              forbid_external=True)
    expat: Any = getattr(parser, "parser", None)
    builder.expat = expat

    def where() -> tuple[int | None, str | None]:
        line = int(expat.CurrentLineNumber) if expat is not None else None
        return line, (_tag_name(builder.open[-1]) if builder.open else None)

    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException as exc:
        line, element = where()
        raise ClipError(path, line, element or _REFUSED_ELEMENT.get(type(exc)),
                        f"refused: {_REFUSED.get(type(exc), 'hostile XML')} "
                        "(a clip may not have a DTD or entities)") from None
    except (DefusedParseError, ET.ParseError) as exc:
        line = exc.position[0] if exc.position else None
        element = _tag_name(builder.open[-1]) if builder.open else None
        message = str(exc).split(": line ")[0]
        raise ClipError(path, line, element, f"not well-formed XML: {message}") from None
    return ParsedXml(root, builder.lines, builder.prolog, builder.epilog)


def serialize(parsed: ParsedXml) -> bytes:
    """The document as UTF-8 bytes with an XML declaration, comments around the root kept."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    for node in parsed.prolog:
        parts += [ET.tostring(node, encoding="unicode"), "\n"]
    tail, parsed.root.tail = parsed.root.tail, None
    try:
        parts += [ET.tostring(parsed.root, encoding="unicode"), "\n"]
    finally:
        parsed.root.tail = tail
    for node in parsed.epilog:
        parts += [ET.tostring(node, encoding="unicode"), "\n"]
    return "".join(parts).encode("utf-8")


def temp_name(path: Path) -> Path:
    """``.<name>.tmp-<random>`` beside ``path``: hidden, and no ``*.clip`` pattern matches it."""
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same folder, write, fsync, rename over
    ``path``, fsync the folder. The temp file takes the old file's permission bits. On any
    failure the temp file is removed and ``path`` is as it was; the ``OSError`` is raised."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a folder; the rename is done
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def indent_unit(root: ET.Element) -> str | None:
    """The document's indentation step (``"    "``, ``"\\t"``, ``""``), read from the
    whitespace before the root's first child; None for a document written without newlines."""
    text = root.text
    if len(root) == 0 or text is None or text.strip() or "\n" not in text:
        return None
    return text.rsplit("\n", 1)[1]


def insert_child(parent: ET.Element, index: int, child: ET.Element, depth: int,
                 unit: str | None) -> None:
    """Insert ``child`` at ``index`` of ``parent`` (``depth`` levels below the root), indented
    with ``unit`` like the rest of the document (no whitespace added when ``unit`` is None).
    Whitespace already in the document is moved, never dropped."""
    if unit is not None:
        lead = "\n" + unit * (depth + 1)
        if index > 0:
            previous = parent[index - 1]
            child.tail, previous.tail = previous.tail, lead
        elif len(parent) > 0:
            child.tail, parent.text = parent.text, lead
        else:
            parent.text, child.tail = lead, "\n" + unit * depth
        ET.indent(child, space=unit, level=depth + 1)
    parent.insert(index, child)
