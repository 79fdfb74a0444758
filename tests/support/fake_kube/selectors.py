"""Label and field selectors with the API server's syntax and matching rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_KEY = rf"(?:[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_NOT_EXISTS = re.compile(rf"^!\s*(?P<key>{_KEY})$")
_COMPARE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|!=|=|>|<)\s*(?P<value>{_VALUE})$")
_EXISTS = re.compile(rf"^(?P<key>{_KEY})$")
_FIELD = re.compile(r"^(?P<key>[A-Za-z0-9.]+)\s*(?P<op>==|!=|=)\s*(?P<value>[^,]*)$")


class SelectorError(ValueError):
    """A selector the server cannot parse (answered with 400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # one of in, notin, exists, !exists, gt, lt ("=" and "==" are "in", "!=" "notin")
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            # As in Kubernetes: an object without the label is not in any set of values.
            return not present or value not in self.values
        (bound,) = self.values
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        return number > int(bound) if self.op == "gt" else number < int(bound)


def _split(selector: str) -> list[str]:
    """Split at the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise SelectorError(f"unable to parse requirement: unbalanced ')' in {selector!r}")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def _requirement(text: str) -> Requirement:
    if match := _SET.match(text):
        values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
        if not all(re.fullmatch(_VALUE, v) for v in values):
            raise SelectorError(f"unable to parse requirement: invalid value in {text!r}")
        return Requirement(match["key"], match["op"], values)
    if match := _NOT_EXISTS.match(text):
        return Requirement(match["key"], "!exists")
    if match := _COMPARE.match(text):
        op = {"=": "in", "==": "in", "!=": "notin", ">": "gt", "<": "lt"}[match["op"]]
        if op in ("gt", "lt") and not match["value"].isdigit():
            raise SelectorError(f"unable to parse requirement: {text!r}: an integer is required")
        return Requirement(match["key"], op, frozenset({match["value"]}))
    if match := _EXISTS.match(text):
        return Requirement(match["key"], "exists")
    raise SelectorError(f"unable to parse requirement: {text!r}")


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, selector: str) -> LabelSelector:
        return cls(tuple(_requirement(part) for part in _split(selector)))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal, value)

    @classmethod
    def parse(cls, selector: str, supported: frozenset[str]) -> FieldSelector:
        terms = []
        for part in (p.strip() for p in selector.split(",")):
            if not part:
                continue
            match = _FIELD.match(part)
            if match is None:
                raise SelectorError(f"invalid selector: {part!r}; expected field=value")
            if match["key"] not in supported:
                raise SelectorError(f"field label not supported: {match['key']}")
            terms.append((match["key"], match["op"] != "!=", match["value"].strip()))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, key) == value) == equal for key, equal, value in self.terms)
