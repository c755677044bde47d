"""Bad rules are refused with the line, the column and what was expected
(docs/objective-language.md, Errors)."""

from __future__ import annotations

import pickle

import pytest

from meridian.objectives import ObjectiveError, parse
from meridian.objectives.parser import MAX_NESTING


def error_of(text: str) -> ObjectiveError:
    with pytest.raises(ObjectiveError) as caught:
        parse(text)
    return caught.value


def test_the_briefs_example_points_at_path_and_says_what_was_expected() -> None:
    error = error_of('IF FNMATCH("x*" PATH) THEN {SLO(place)}')
    assert (error.line, error.column) == (1, 17)
    assert error.expected == "',' or ')' after the pattern"
    assert str(error) == "expected ',' or ')' after the pattern at 1:17"


@pytest.mark.parametrize("text, line, column, fragment", [
    ("", 1, 1, "empty rule; expected IF or '{'"),
    ("  \n\t ", 1, 1, "empty rule"),
    ("IF", 1, 3, "expected a condition at 1:3"),
    ("IF IS_FILE", 1, 11, "expected THEN, AND or OR after the condition"),
    ("IF IS_FILE THEN", 1, 16, "expected '{' after THEN"),
    ("IF IS_FILE THEN {", 1, 18, "expected SLO('name')"),
    ("IF IS_FILE THEN {SLO('keep-online')", 1, 36, "',' or '}' after the SLO"),
    ("IF IS_FILE THEN {SLO('keep-online'),}", 1, 37, "expected SLO('name')"),
    ("IF IS_FILE THEN {SLO(keep-online)}", 1, 22, "a quoted SLO name"),
    ("IF IS_FILE THEN {SLO('keep-online' }", 1, 36, "')' after the SLO name"),
    ("IF IS_FILE THEN {} ELSE", 1, 24, "'{' after ELSE"),
    ("IF IS_FILE THEN {} ELSE {} ELSE {}", 1, 28, "expected the end of the rule"),
    ("IF IS_FILE THEN {} {}", 1, 20, "ELSE or the end of the rule"),
    ("{} {}", 1, 4, "expected the end of the rule"),
    ("THEN {}", 1, 1, "expected IF or '{'"),
    ("IF SIZE THEN {}", 1, 9, "comparison operator (==, !=, <, <=, >, >=) after SIZE"),
    ("IF SIZE > THEN {}", 1, 11, "expected a value after '>'"),
    ("IF SIZE >> 3 THEN {}", 1, 10, "expected a value after '>'"),
    ("IF\n  SIZ > 3 THEN {}", 2, 3, "unknown attribute 'SIZ' (did you mean SIZE?)"),
    ("IF FNMATHC('a', NAME) THEN {}", 1, 4, "unknown function 'FNMATHC' (did you mean FNMATCH?)"),
    ("IF FNMATCH 'a' THEN {}", 1, 12, "'(' after FNMATCH"),
    ("IF FNMATCH(PATH, 'a') THEN {}", 1, 12, "a quoted pattern as the first argument of FNMATCH"),
    ("IF FNMATCH('a') THEN {}", 1, 15, "FNMATCH takes two arguments"),
    ("IF FNMATCH('a', NAME, PATH) THEN {}", 1, 21, "FNMATCH takes two arguments"),
    ("IF FNMATCH('a', SIZE) THEN {}", 1, 17, "SIZE is a size"),
    ("IF FNMATCH('a', NAME THEN {}", 1, 22, "')' after the string to match"),
    ("IF MATCH_EXTENSION('', NAME) THEN {}", 1, 20, "empty extension"),
    ("IF MATCH_EXTENSION(NAME) THEN {}", 1, 20, "a quoted extension"),
    ("IF REGEX('ab[c', NAME) THEN {}", 1, 13, "invalid pattern"),
    ("IF REGEX('a\\\\q', NAME) THEN {}", 1, 12, "invalid pattern: bad escape"),
    ("IF NAME == 'abc THEN {}", 1, 12, "unterminated string"),
    ('IF NAME == "abc\n" THEN {}', 1, 12, "unterminated string"),
    ("IF NAME == 'abc\\", 1, 12, "unterminated string"),
    ("IF SIZE > 3XB THEN {}", 1, 12, "unknown unit 'XB'"),
    ("IF SIZE > 3e5 THEN {}", 1, 12, "unknown unit 'e5'"),
    ("IF SIZE > 3 * FOO THEN {}", 1, 15, "a unit after '*'"),
    ("IF SIZE > 2DAYS THEN {}", 1, 11, "cannot compare SIZE (a size) with 2DAYS (an age)"),
    ("IF MODIFY_AGE < 1GB THEN {}", 1, 17, "expected an age"),
    ("IF SIZE == 'big' THEN {}", 1, 12, "expected a size"),
    ("IF NAME == 3 THEN {}", 1, 12, "expected a string"),
    ("IF NAME < 'b' THEN {}", 1, 9, "expected '==' or '!='"),
    ("IF IS_OPEN > FALSE THEN {}", 1, 12, "no order"),
    ("IF OWNER < 'bob' THEN {}", 1, 12, "expected a number (an id)"),
    ("IF IS_OPEN == 1 THEN {}", 1, 15, "expected TRUE, FALSE or a condition"),
    ("IF (IS_OPEN THEN {}", 1, 13, "(to close the '(' of 1:4)"),
    ("IF IS_OPEN) THEN {}", 1, 11, "THEN, AND or OR"),
    ("IF IS_OPEN AND THEN {}", 1, 16, "expected a condition"),
    ("IF IS_OPEN & IS_FILE THEN {}", 1, 12, "unexpected character '&'; expected '&&'"),
    ("IF IS_OPEN | IS_FILE THEN {}", 1, 12, "expected '||'"),
    ("IF IS_OPEN # note", 1, 12, "unexpected character '#'"),
    ("IF IS_OPEN ?MAYBE THEN {}", 1, 13, "TRUE or ALWAYS after '?'"),
    ("IF IS_OPEN ?TRUE ?TRUE THEN {}", 1, 18, "THEN after the condition"),
    ("{SLO('place')}", 1, 6, "unknown SLO 'place'; expected place-on-, confine-to- or"),
    ("{SLO('place-on-local-volume')}", 1, 6, "did you mean 'place-on-local-volumes'?"),
    ("{SLO('keep-versions')}", 1, 6, "'keep-versions' is not supported yet"),
    ("{keep-versions(3)}", 1, 2, "keep-versions(N) is not supported yet"),
    ("{SLO('keep-online'), keep-versions(3)}", 1, 22, "keep-versions(N) is not supported yet"),
    ("{SLO('do-not-move'), SLO('prefetch-sequence')}", 1, 26,
     "'prefetch-sequence' contradicts 'do-not-move'"),
    ("IF\u00a0IS_FILE THEN {}", 1, 3, "unexpected character '\\xa0'"),
])
def test_errors_name_the_position_and_what_was_expected(text: str, line: int, column: int,
                                                        fragment: str) -> None:
    error = error_of(text)
    assert fragment in str(error)
    assert (error.line, error.column) == (line, column), str(error)
    assert str(error).endswith(f" at {line}:{column}")


def test_an_unknown_slo_names_the_valid_ones_briefly() -> None:
    message = str(error_of("IF IS_FILE THEN {SLO('fast')}"))
    for name in ("local-volumes", "shared-object-volumes", "keep-online", "do-not-move",
                 "prefetch-sequence", "confine-to-site"):
        assert name in message
    assert len(message) < 300


def test_nesting_is_capped_instead_of_overflowing_the_stack() -> None:
    assert parse("IF " + "(" * MAX_NESTING + "IS_FILE" + ")" * MAX_NESTING + " THEN {}")
    for opener in ("(", "NOT ", "!", "FNMATCH('a', "):
        error = error_of("IF " + opener * (MAX_NESTING + 1) + "IS_FILE")
        assert "too deeply nested" in str(error)
    assert "too deeply nested" in str(error_of("IF " + "(" * 100_000))


def test_objective_errors_survive_pickling() -> None:
    error = error_of("IF")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.line, copy.column, copy.expected) == (
        str(error), error.line, error.column, error.expected)
