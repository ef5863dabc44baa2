"""A small evaluator for Cloud Logging's query language (and the Monitoring filters written in
the same `field op value` form), so that tests ask which log entries a filter selects instead of
looking for substrings in it.

Covers what the program writes: comparisons `= != =~ !~ : < <= > >=` on dotted field paths,
quoted or bare values, `AND` / `OR` / `NOT` (and juxtaposition as AND), parentheses. Severities
compare by level, as in Logging. Anything else fails to parse rather than pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT"]
TOKEN = re.compile(
    r"\s*(?:(?P<lparen>\()|(?P<rparen>\))|(?P<op>!=|=~|!~|<=|>=|=|:|<|>)"
    r'|(?P<string>"(?:[^"\\]|\\.)*")|(?P<word>[^\s()"=!<>:~]+))'
)
Entry = Mapping[str, Any]
Predicate = Callable[[Entry], bool]


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"cannot parse filter at {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _field(entry: Entry, path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _compare(actual: Any, op: str, expected: str) -> bool:
    if actual is None:
        return op == "!="
    if op == "=~":
        return re.search(expected, str(actual)) is not None
    if op == "!~":
        return re.search(expected, str(actual)) is None
    if op == ":":
        return expected.lower() in str(actual).lower()
    if op in ("=", "!="):
        return (str(actual) == expected) is (op == "=")
    if expected in SEVERITIES:
        left, right = SEVERITIES.index(str(actual)), SEVERITIES.index(expected)
    else:
        left, right = float(actual), float(expected)
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ValueError("filter ends too early")
        self.index += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()}")
        return predicate

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() == ("word", "OR"):
            self.take()
            terms.append(self.conjunction())
        return lambda entry: any(term(entry) for term in terms)

    def conjunction(self) -> Predicate:
        terms = [self.negation()]
        while (
            (token := self.peek()) is not None
            and token != ("word", "OR")
            and token[0] != ("rparen")
        ):
            if token == ("word", "AND"):
                self.take()
            terms.append(self.negation())
        return lambda entry: all(term(entry) for term in terms)

    def negation(self) -> Predicate:
        if self.peek() == ("word", "NOT"):
            self.take()
            inner = self.negation()
            return lambda entry: not inner(entry)
        return self.primary()

    def primary(self) -> Predicate:
        kind, text = self.take()
        if kind == "lparen":
            inner = self.disjunction()
            if self.take()[0] != "rparen":
                raise ValueError("missing )")
            return inner
        if kind != "word":
            raise ValueError(f"expected a field, got {text!r}")
        op_kind, op = self.take()
        value_kind, value = self.take()
        if op_kind != "op" or value_kind not in ("string", "word"):
            raise ValueError(f"expected `{text} <op> <value>`")
        if value_kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        return lambda entry: _compare(_field(entry, text), op, value)


def matches(log_filter: str, entry: Entry) -> bool:
    """Whether `log_filter` selects `entry` (a log entry or a time series, as a mapping)."""
    return _Parser(log_filter).parse()(entry)
