"""Recursive-descent parser of the Objective language (grammar: docs/objective-language.md).

Precedence, loosest first: OR (``||``), AND (``&&``), NOT (``!``), comparison. A condition may
end in ``?TRUE`` or ``?ALWAYS`` (Hammerspace's applicability suffix; accepted, no effect).
Every check happens here: unknown names, argument counts, kinds of compared values, SLO names,
regular expressions, contradicting SLOs within one branch. Any problem raises
:class:`ObjectiveError` at the first offending token; nothing else escapes, whatever the input
(nesting is capped at :data:`MAX_NESTING` so recursion stays bounded).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

from meridian.objectives import matching
from meridian.objectives.lexer import Lexer, Token, TokenKind
from meridian.objectives.slos import (Slo, canonical_slo, contradicts, describe_known_slos,
                                      slo_problem)
from meridian.objectives.syntax import (ATTRIBUTES, FUNCTIONS, KEYWORDS, SIZE_UNITS, TIME_UNITS,
                                        UNIT_LIST, And, Attribute, Branch, Call, Comparison,
                                        Condition, Kind, Literal, Matcher, Not, ObjectiveError,
                                        Or, Rule, Value, kind_of, render, render_string)

MAX_NESTING = 50
"""Deepest nesting of parentheses, NOT and function calls that a rule may have."""

_COMPARISONS = ("==", "=", "!=", "<", "<=", ">", ">=")
_ORDERINGS = ("<", "<=", ">", ">=")
_NUMERIC = frozenset({Kind.NUMBER, Kind.SIZE, Kind.AGE})
_EXPECTED_BY_KIND = {
    Kind.SIZE: "a size, such as 4096 or 33KB",
    Kind.AGE: "an age, such as 3600 or 2DAYS",
    Kind.NUMBER: "a number, a size or an age",
    Kind.STRING: "a string",
    Kind.ID: "a number (an id) or a string (a name)",
    Kind.BOOL: "TRUE, FALSE or a condition",
}
_ATTRIBUTE_LIST = ", ".join(ATTRIBUTES)
_FUNCTION_LIST = "FNMATCH, MATCH_EXTENSION or REGEX"
_SUBJECTS = "a string to match (PATH, NAME, EXTENSION, ORIGIN_SITE or a quoted string)"


class Parser:
    """Parses one text; use :meth:`rule` or :meth:`condition` once per instance."""

    def __init__(self, text: str, groups: Iterable[str]) -> None:
        self._groups = tuple(groups)
        self._depth = 0
        self._lexer = Lexer(text)
        self._token = self._lexer.next()

    def rule(self) -> Rule:
        """``IF ... THEN {...} [ELSE IF ...]* [ELSE {...}]`` or ``{...}``, then the end."""
        if self._token.is_word("IF"):
            return self._if_chain()
        if self._token.is_operator("{"):
            branch = Branch(None, self._actions("the start"))
            self._expect_end("the end of the rule")
            return Rule((branch,))
        empty = self._token.kind is TokenKind.END
        raise self._error("IF or '{' to start the rule", "empty rule" if empty else "")

    def condition(self) -> tuple[Condition, str]:
        """A condition with its optional ``?TRUE``/``?ALWAYS`` suffix, then the end."""
        if self._token.kind is TokenKind.END:
            raise self._error("a condition", "empty condition")
        condition = self._or()
        suffix = self._suffix()
        self._expect_end("the end of the condition" if suffix
                         else "AND, OR, ?TRUE, ?ALWAYS or the end of the condition")
        return condition, suffix

    # -- rule structure -------------------------------------------------------------------

    def _if_chain(self) -> Rule:
        branches: list[Branch] = []
        self._advance()  # IF
        while True:
            condition = self._or()
            suffix = self._suffix()
            if not self._token.is_word("THEN"):
                raise self._error("THEN after the condition" if suffix
                                  else "THEN, AND or OR after the condition")
            self._advance()
            branches.append(Branch(condition, self._actions("THEN"), suffix))
            if not self._token.is_word("ELSE"):
                self._expect_end("ELSE or the end of the rule")
                return Rule(tuple(branches))
            self._advance()
            if self._token.is_word("IF"):
                self._advance()
                continue
            branches.append(Branch(None, self._actions("ELSE")))
            self._expect_end("the end of the rule")
            return Rule(tuple(branches))

    def _suffix(self) -> str:
        if not self._token.is_operator("?"):
            return ""
        self._advance()
        if not self._token.is_word("TRUE", "ALWAYS"):
            raise self._error("TRUE or ALWAYS after '?'")
        return "?" + self._advance().text.upper()

    def _actions(self, after: str) -> tuple[Slo, ...]:
        if not self._token.is_operator("{"):
            raise self._error(f"'{{' after {after}")
        self._advance()
        chosen: list[Slo] = []
        if self._token.is_operator("}"):
            self._advance()
            return ()
        while True:
            self._add_slo(chosen, *self._action())
            if self._token.is_operator("}"):
                self._advance()
                return tuple(chosen)
            if not self._token.is_operator(","):
                raise self._error("',' or '}' after the SLO")
            self._advance()

    def _action(self) -> tuple[Slo, Token]:
        token = self._token
        if token.kind is TokenKind.NAME and token.text.lower().startswith("keep-versions"):
            raise self._error("SLO('name')", "keep-versions(N) is not supported yet")
        if not token.is_word("SLO"):
            raise self._error("SLO('name')")
        self._advance()
        if not self._token.is_operator("("):
            raise self._error("'(' after SLO")
        self._advance()
        name = self._token
        if name.kind is not TokenKind.STRING:
            raise self._error("a quoted SLO name, such as 'place-on-local-volumes'")
        problem = slo_problem(name.value, self._groups)
        if problem is not None:
            raise self._error(describe_known_slos(self._groups), problem)
        self._advance()
        if not self._token.is_operator(")"):
            raise self._error("')' after the SLO name")
        self._advance()
        return Slo(canonical_slo(name.value)), name

    def _add_slo(self, chosen: list[Slo], slo: Slo, token: Token) -> None:
        if slo in chosen:
            return
        for earlier in chosen:
            if contradicts(earlier.name, slo.name):
                raise self._error_at(token, "SLOs that can hold together in one branch",
                                     f"'{slo.name}' contradicts '{earlier.name}'")
        chosen.append(slo)

    # -- conditions -----------------------------------------------------------------------

    def _or(self) -> Condition:
        operands = [self._and()]
        while self._token.is_word("OR") or self._token.is_operator("||"):
            self._advance()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(_flattened(operands, Or))

    def _and(self) -> Condition:
        operands = [self._not()]
        while self._token.is_word("AND") or self._token.is_operator("&&"):
            self._advance()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else And(_flattened(operands, And))

    def _not(self) -> Condition:
        if not (self._token.is_word("NOT") or self._token.is_operator("!")):
            return self._primary()
        self._enter(self._advance())
        operand = self._not()
        self._depth -= 1
        return Not(operand)

    def _primary(self) -> Condition:
        if self._token.is_operator("("):
            opening = self._advance()
            self._enter(opening)
            inner = self._or()
            if not self._token.is_operator(")"):
                raise self._error(f"AND, OR or ')' (to close the '(' of {opening.line}:{opening.column})")
            self._advance()
            self._depth -= 1
            return inner
        left = self._value("a condition")
        if self._token.is_operator(*_COMPARISONS):
            operator = self._advance()
            right_token = self._token
            right = self._value(f"a value after '{operator.text}'")
            self._check_comparison(left, operator, right, right_token)
            return Comparison(left, operator.text, right)
        if kind_of(left) is Kind.BOOL:
            return left
        raise self._error(f"a comparison operator (==, !=, <, <=, >, >=) after {render(left)}")

    def _check_comparison(self, left: Value, operator: Token, right: Value,
                          right_token: Token) -> None:
        left_kind, right_kind = kind_of(left), kind_of(right)
        if operator.text in _ORDERINGS and left_kind in (Kind.STRING, Kind.BOOL):
            raise self._error_at(operator, "'==' or '!='",
                                 f"{render(left)} is {left_kind.value}, which has no order")
        if _comparable(left_kind, operator.text, right_kind):
            return
        if left_kind is Kind.ID and operator.text in _ORDERINGS:
            expected = "a number (an id)"
        else:
            expected = _EXPECTED_BY_KIND[left_kind]
        raise self._error_at(right_token, expected,
                             f"cannot compare {render(left)} ({left_kind.value}) "
                             f"with {render(right)} ({right_kind.value})")

    # -- values ---------------------------------------------------------------------------

    def _value(self, expected: str) -> Value:
        token = self._token
        if token.kind is TokenKind.NUMBER:
            return self._number()
        if token.kind is TokenKind.STRING:
            self._advance()
            return Literal(token.value, Kind.STRING, render_string(token.value))
        if token.kind is not TokenKind.NAME:
            raise self._error(expected)
        word = token.text.upper()
        if word in ("TRUE", "FALSE"):
            self._advance()
            return Literal(word == "TRUE", Kind.BOOL, word)
        if word in KEYWORDS:
            raise self._error(expected)
        if word in FUNCTIONS:
            self._advance()
            return self._call(token)
        if word in ATTRIBUTES:
            self._advance()
            return Attribute(word)
        if self._lexer.upcoming_char() == "(":
            raise self._error(_FUNCTION_LIST, f"unknown function '{token.text}'"
                              + _did_you_mean(word, FUNCTIONS))
        raise self._error(f"an attribute ({_ATTRIBUTE_LIST}) or a function ({_FUNCTION_LIST})",
                          f"unknown attribute '{token.text}'" + _did_you_mean(word, ATTRIBUTES))

    def _number(self) -> Literal:
        number = self._advance()
        value = float(number.text)
        unit = self._token
        attached = unit.offset == number.end
        if unit.kind is TokenKind.NAME and (attached or unit.text.upper() in _UNITS):
            if unit.text.upper() not in _UNITS:
                raise self._error(f"a unit ({UNIT_LIST})", f"unknown unit '{unit.text}'")
            self._advance()
            return _scaled(value, unit.text, number.text + ("" if attached else " ") + unit.text)
        if not self._token.is_operator("*"):
            return Literal(value, Kind.NUMBER, number.text)
        self._advance()
        unit = self._token
        if unit.kind is not TokenKind.NAME or unit.text.upper() not in _UNITS:
            raise self._error(f"a unit after '*' ({UNIT_LIST})")
        self._advance()
        return _scaled(value, unit.text, f"{number.text}*{unit.text}")

    def _call(self, name: Token) -> Call:
        function = name.text.upper()
        noun = FUNCTIONS[function]
        if not self._token.is_operator("("):
            raise self._error(f"'(' after {function}")
        self._enter(self._advance())
        argument = self._token
        if argument.kind is not TokenKind.STRING:
            raise self._error(f"a quoted {noun} as the first argument of {function}")
        checked = self._checked_argument(function, argument)
        self._advance()
        if self._token.is_operator(")"):
            raise self._error(f"',' and the string to match after the {noun}",
                              f"{function} takes two arguments")
        if not self._token.is_operator(","):
            raise self._error(f"',' or ')' after the {noun}")
        self._advance()
        subject_token = self._token
        subject = self._value(f"{_SUBJECTS} as the second argument of {function}")
        if kind_of(subject) is not Kind.STRING:
            raise self._error_at(subject_token, _SUBJECTS,
                                 f"{render(subject)} is {kind_of(subject).value}")
        if self._token.is_operator(","):
            raise self._error("')' after the string to match", f"{function} takes two arguments")
        if not self._token.is_operator(")"):
            raise self._error("')' after the string to match")
        self._advance()
        self._depth -= 1
        if checked is None:  # FNMATCH: how to match depends on the subject
            is_path = isinstance(subject, Attribute) and subject.name == "PATH"
            checked = self._compiled(argument, lambda: matching.compile_glob(argument.value, is_path))
        return Call(function, argument.value, subject, checked)

    def _checked_argument(self, function: str, argument: Token) -> Matcher | None:
        """The compiled first argument of REGEX / MATCH_EXTENSION (errors at its position);
        None for FNMATCH, compiled once the subject is known."""
        if function == "REGEX":
            return self._compiled(argument, lambda: matching.compile_regex(argument.value))
        if function == "MATCH_EXTENSION":
            try:
                return matching.compile_extension(argument.value)
            except ValueError:
                raise self._error_at(argument, "an extension such as \"clip\"",
                                     "empty extension") from None
        return None

    def _compiled(self, argument: Token, compile_it: Callable[[], Matcher]) -> Matcher:
        try:
            return compile_it()
        except (re.error, RecursionError, OverflowError, ValueError, MemoryError) as exc:
            where = getattr(exc, "pos", None)
            columns = argument.value_columns
            if isinstance(where, int) and 0 <= where < len(columns):
                column = columns[where]
            else:
                column = argument.column + len(argument.text) - 1
            reason = getattr(exc, "msg", None) or type(exc).__name__
            raise ObjectiveError("a valid Python regular expression", argument.line, column,
                                 f"invalid pattern: {reason}") from None

    # -- tokens ---------------------------------------------------------------------------

    def _advance(self) -> Token:
        """Consume the current token and return it."""
        token, self._token = self._token, self._lexer.next()
        return token

    def _enter(self, token: Token) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise self._error_at(token, f"at most {MAX_NESTING} levels of parentheses, NOT and calls",
                                 "too deeply nested")

    def _expect_end(self, expected: str) -> None:
        if self._token.kind is not TokenKind.END:
            raise self._error(expected)

    def _error(self, expected: str, problem: str = "") -> ObjectiveError:
        return self._error_at(self._token, expected, problem)

    @staticmethod
    def _error_at(token: Token, expected: str, problem: str = "") -> ObjectiveError:
        return ObjectiveError(expected, token.line, token.column, problem)


_UNITS = {**SIZE_UNITS, **TIME_UNITS}


def _comparable(left: Kind, operator: str, right: Kind) -> bool:
    if left in _NUMERIC and right in _NUMERIC:
        return {left, right} != {Kind.SIZE, Kind.AGE}
    if Kind.ID in (left, right):
        other = right if left is Kind.ID else left
        if other in (Kind.NUMBER, Kind.ID):
            return True
        return other is Kind.STRING and operator not in _ORDERINGS
    return left is right and left in (Kind.STRING, Kind.BOOL) and operator not in _ORDERINGS


def _flattened(operands: list[Condition], operator: type[And] | type[Or]) -> tuple[Condition, ...]:
    """``a OR (b OR c)`` is ``a OR b OR c``: same meaning, same order of evaluation."""
    flat: list[Condition] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, operator) else (operand,))
    return tuple(flat)


def _scaled(value: float, unit: str, source: str) -> Literal:
    upper = unit.upper()
    if upper in SIZE_UNITS:
        return Literal(value * SIZE_UNITS[upper], Kind.SIZE, source)
    return Literal(value * TIME_UNITS[upper], Kind.AGE, source)


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
