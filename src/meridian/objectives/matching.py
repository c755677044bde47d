"""The matchers behind FNMATCH, MATCH_EXTENSION and REGEX, compiled once when a rule is parsed.

- FNMATCH: Python's ``fnmatch.fnmatchcase`` (case-sensitive; ``*`` crosses ``/``, so ``**`` is
  the same as ``*``; ``?`` is any one character; ``[...]`` a class). When the subject is the
  PATH attribute, pattern and path are both taken relative to the namespace root: leading
  ``./`` and ``/`` are removed from each, so ``./a/*``, ``/a/*`` and ``a/*`` are one pattern.
  Other subjects (NAME, a literal...) are matched as they are.
- MATCH_EXTENSION(ext, s): ``s`` ends in ``.ext`` with at least one character before the dot
  (``.clip`` alone is a hidden file, not an extension). ``ext`` may be given with its dot.
  Case-sensitive; ``ext`` may have inner dots (``tar.gz``).
- REGEX: ``re.fullmatch``; :func:`compile_regex` raises ``re.error`` (with ``pos``) when bad.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass


def root_relative(path: str) -> str:
    """``path`` without its leading ``./`` and ``/`` (``./a/b``, ``/a/b``, ``a/b`` → ``a/b``)."""
    while path.startswith(("./", "/")):
        path = path[2:] if path.startswith("./") else path[1:]
    return path


@dataclass(frozen=True)
class GlobMatcher:
    """FNMATCH's pattern; ``relative_to_root`` when the subject is PATH (module docstring)."""

    pattern: str
    relative_to_root: bool
    regex: re.Pattern[str]

    def __call__(self, subject: str) -> bool:
        if self.relative_to_root:
            subject = root_relative(subject)
        return self.regex.match(subject) is not None


@dataclass(frozen=True)
class ExtensionMatcher:
    """MATCH_EXTENSION's extension, stored without its leading dot (never empty)."""

    extension: str

    def __call__(self, subject: str) -> bool:
        suffix = "." + self.extension
        return subject.endswith(suffix) and len(subject) > len(suffix)


@dataclass(frozen=True)
class RegexMatcher:
    regex: re.Pattern[str]

    def __call__(self, subject: str) -> bool:
        return self.regex.fullmatch(subject) is not None


def compile_glob(pattern: str, relative_to_root: bool) -> GlobMatcher:
    if relative_to_root:
        pattern = root_relative(pattern)
    return GlobMatcher(pattern, relative_to_root, re.compile(fnmatch.translate(pattern)))


def compile_extension(extension: str) -> ExtensionMatcher:
    """Raises ValueError if ``extension`` is empty once its leading dot is removed."""
    bare = extension[1:] if extension.startswith(".") else extension
    if not bare:
        raise ValueError("empty extension")
    return ExtensionMatcher(bare)


def compile_regex(pattern: str) -> RegexMatcher:
    """Raises ``re.error`` (or RecursionError/OverflowError for monstrous patterns) if bad."""
    return RegexMatcher(re.compile(pattern))
