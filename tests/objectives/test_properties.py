"""Properties of the language, checked with Hypothesis: FNMATCH against an independent glob
matcher, error positions of corrupted rules, and that no input crashes the parser."""

from __future__ import annotations

import fnmatch
import functools
import string

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from meridian.objectives import FileFacts, ObjectiveError, parse

FAST = settings(max_examples=200, deadline=None)


def reference_glob(pattern: str, subject: str) -> bool:
    """The documented FNMATCH semantics without brackets, written independently: ``*`` is any
    run of characters including ``/``, ``?`` any one character, the rest literal."""

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(subject)
        if pattern[i] == "*":
            return match(i + 1, j) or (j < len(subject) and match(i, j + 1))
        return j < len(subject) and pattern[i] in ("?", subject[j]) and match(i + 1, j + 1)

    return match(0, 0)


def strip_root(path: str) -> str:
    while path[:2] == "./" or path[:1] == "/":
        path = path[2:] if path[:2] == "./" else path[1:]
    return path


def fnmatch_path(pattern: str, path: str) -> bool:
    objective = parse(f'IF FNMATCH("{pattern}", PATH) THEN {{SLO("keep-online")}}')
    return objective.evaluate(FileFacts(path)).matched


components = st.text("ab.c", min_size=1, max_size=4).filter(lambda c: c not in (".", ".."))
relative_paths = st.lists(components, max_size=4).map("/".join)
patterns = st.text("ab./*?", max_size=10)


@FAST
@given(patterns, relative_paths)
@example("*/b/*", "a/b/c/d")
@example("**", "")
@example("./a*", "a/b")
def test_fnmatch_on_path_follows_the_documented_semantics(pattern: str, path: str) -> None:
    assert fnmatch_path(pattern, "./" + path) is reference_glob(strip_root(pattern), path)


@FAST
@given(patterns.filter(lambda p: not p.startswith((".", "/"))), relative_paths)
def test_dot_slash_slash_and_nothing_before_a_pattern_are_the_same_root(pattern: str,
                                                                        path: str) -> None:
    results = {fnmatch_path(prefix + pattern, "./" + path) for prefix in ("", "./", "/")}
    assert len(results) == 1


@FAST
@given(st.text("ab.*?[]!-", max_size=8),
       st.text("ab.-!", min_size=1, max_size=6).filter(lambda n: n not in (".", "..")))
def test_fnmatch_on_name_is_fnmatchcase(pattern: str, name: str) -> None:
    objective = parse(f"IF FNMATCH('{pattern}', NAME) THEN {{}}")
    assert objective.evaluate(FileFacts("./d/" + name)).matched is fnmatch.fnmatchcase(name, pattern)


# -- error positions -------------------------------------------------------------------------

ATOMS = [
    ["IS_FILE"], ["NOT", "IS_OPEN"], ["!", "IS_SYMLINK"], ["SIZE", ">", "33KB"],
    ["MODIFY_AGE", "<=", "30", "*", "DAYS"], ["FNMATCH", "(", '"./a/*"', ",", "PATH", ")"],
    ["OWNER", "==", "'alice'"], ["(", "IS_DIRECTORY", "OR", "IS_SYMLINK", ")"],
    ["REGEX", "(", '"[a-z]+\\\\.exr"', ",", "NAME", ")"],
    ["MATCH_EXTENSION", "(", "'clip'", ",", "NAME", ")"], ["EXTENSION", "!=", '"exr"'],
    ["GROUP", ">=", "100"], ["LAST_USE_AGE", ">", "2", "WEEKS"], ["TRUE"],
]
SLOS = ["'place-on-local-volumes'", '"keep-online"', "'prefetch-sequence'", "'CONFINE-TO-SITE'"]
PUNCTUATION = set("(){},")


@st.composite
def conditions(draw: st.DrawFn) -> list[str]:
    tokens = list(draw(st.sampled_from(ATOMS)))
    for _ in range(draw(st.integers(0, 2))):
        tokens += [draw(st.sampled_from(["AND", "OR", "&&", "||"]))]
        tokens += draw(st.sampled_from(ATOMS))
    return tokens


@st.composite
def actions(draw: st.DrawFn) -> list[str]:
    names = draw(st.lists(st.sampled_from(SLOS), max_size=3))
    tokens = ["{"]
    for index, name in enumerate(names):
        tokens += ([","] if index else []) + ["SLO", "(", name, ")"]
    return tokens + ["}"]


@st.composite
def rules(draw: st.DrawFn) -> list[str]:
    """A valid rule as a list of tokens, keywords in random case."""
    if draw(st.booleans()):
        tokens = draw(actions())
    else:
        tokens = ["IF", *draw(conditions()), "THEN", *draw(actions())]
        for _ in range(draw(st.integers(0, 2))):
            tokens += ["ELSE", "IF", *draw(conditions()), "THEN", *draw(actions())]
        if draw(st.booleans()):
            tokens += ["ELSE", *draw(actions())]
    return [token.lower() if token[0] in string.ascii_letters and draw(st.booleans()) else token
            for token in tokens]


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """Tokens of a valid rule and the whitespace before each (and one more at the end)."""
    tokens = draw(rules())
    gaps: list[str] = [draw(st.sampled_from(["", " ", "\n", " \n\t"]))]
    for before, after in zip(tokens, tokens[1:]):
        touching_allowed = before in PUNCTUATION or after in PUNCTUATION
        choices = ["", " ", "\n", "  \n  ", "\t"] if touching_allowed else [" ", "\n", "\n\n "]
        gaps.append(draw(st.sampled_from(choices)))
    gaps.append(draw(st.sampled_from(["", " ", "\n"])))
    return tokens, gaps


def assemble(tokens: list[str], gaps: list[str]) -> tuple[str, list[int]]:
    """The text and the offset of each token."""
    text, offsets = gaps[0], []
    for token, gap in zip(tokens, gaps[1:]):
        offsets.append(len(text))
        text += token + gap
    return text, offsets


def position(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def offset_of(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(lines[i]) + 1 for i in range(line - 1)) + column - 1


@FAST
@given(layouts())
def test_generated_rules_parse_and_round_trip(layout: tuple[list[str], list[str]]) -> None:
    text, _ = assemble(*layout)
    objective = parse(text)
    assert parse(objective.canonical_text()) == objective
    objective.evaluate(FileFacts("./a/b.clip", size=40_000, now=1e9, owner="alice"))


@FAST
@given(layouts(), st.data())
def test_a_stray_character_is_reported_exactly_where_it_is(layout: tuple[list[str], list[str]],
                                                          data: st.DataObject) -> None:
    tokens, gaps = layout
    text, offsets = assemble(tokens, gaps)
    where = data.draw(st.sampled_from([*offsets, len(text)]))
    stray = data.draw(st.sampled_from("@#$`~;^%"))
    corrupted = text[:where] + stray + text[where:]
    try:
        parse(corrupted)
    except ObjectiveError as error:
        assert (error.line, error.column) == position(corrupted, where)
        assert f"unexpected character {stray!r}" in str(error)
    else:
        raise AssertionError(f"{corrupted!r} was accepted")


@FAST
@given(layouts(), st.data())
def test_an_unknown_name_is_reported_where_it_is(layout: tuple[list[str], list[str]],
                                                 data: st.DataObject) -> None:
    tokens, gaps = layout
    names = [i for i, token in enumerate(tokens)
             if token.upper() in {"IS_FILE", "SIZE", "OWNER", "NAME", "PATH", "IS_OPEN",
                                  "EXTENSION", "GROUP", "LAST_USE_AGE", "FNMATCH", "REGEX"}]
    assume(names)
    index = data.draw(st.sampled_from(names))
    tokens = [*tokens[:index], "BOGUS_" + tokens[index], *tokens[index + 1:]]
    text, offsets = assemble(tokens, gaps)
    try:
        parse(text)
    except ObjectiveError as error:
        assert (error.line, error.column) == position(text, offsets[index])
        assert "unknown" in str(error) and "BOGUS_" in str(error)
    else:
        raise AssertionError(f"{text!r} was accepted")


@FAST
@given(layouts(), st.data())
def test_a_missing_or_doubled_token_is_reported_at_or_after_it(
        layout: tuple[list[str], list[str]], data: st.DataObject) -> None:
    tokens, gaps = layout
    index = data.draw(st.integers(0, len(tokens) - 1))
    if data.draw(st.booleans()):
        corrupted = [*tokens[:index], *tokens[index + 1:]]
        new_gaps = [*gaps[:index], gaps[index] or " ", *gaps[index + 2:]]  # no fused names
    else:
        corrupted = [*tokens[:index + 1], tokens[index], *tokens[index + 1:]]
        new_gaps = [*gaps[:index + 1], " ", *gaps[index + 1:]]
    text, offsets = assemble(corrupted, new_gaps)
    prefix_end = offsets[index - 1] + len(corrupted[index - 1]) if index else 0
    try:
        parse(text)
    except ObjectiveError as error:
        assert 1 <= error.line <= text.count("\n") + 1 and error.column >= 1
        assert prefix_end <= offset_of(text, error.line, error.column) <= len(text)


# -- nothing crashes -------------------------------------------------------------------------

def parse_or_refuse(text: str) -> None:
    try:
        objective = parse(text)
    except ObjectiveError as error:
        assert error.line >= 1 and error.column >= 1 and error.expected
        return
    objective.evaluate(FileFacts("./a/b.exr", size=5, now=1e9, owner="alice"))
    assert parse(objective.canonical_text()) == objective


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_arbitrary_text_only_ever_raises_objective_error(text: str) -> None:
    parse_or_refuse(text)


VOCABULARY = ["IF", "THEN", "ELSE", "AND", "OR", "NOT", "SLO", "TRUE", "?", "ALWAYS", "(", ")",
              "{", "}", ",", "*", "==", "=", "!=", "<", ">=", "!", "&&", "||", "SIZE", "PATH",
              "NAME", "OWNER", "IS_FILE", "MODIFY_AGE", "FNMATCH", "REGEX", "MATCH_EXTENSION",
              "3", "2.5", "KB", "DAYS", "'*.exr'", '"a(b"', "'.'", "'keep-online'",
              "'do-not-move'", "'prefetch-sequence'", "'x", "keep-versions", "FOO", "\n"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=25),
       st.sampled_from([" ", "", "\n"]))
def test_token_soup_only_ever_raises_objective_error(words: list[str], glue: str) -> None:
    parse_or_refuse(glue.join(words))
