"""Instance selectors: a JSON rule tree that picks instances from the inventory.

Bulk actions and schedules name their instances by rule rather than by list, so that
a database created tomorrow with ``env=dev`` is covered without editing anything. A
selector is plain JSON (it is stored and sent over the API as is)::

    {"all": [                                   # AND
        {"provider": "aws"},
        {"any": [                               # OR, nested freely
            {"name": "stg-.*"},
            {"tag": {"key": "env", "value": "dev|stg"}}
        ]}
    ]}

Leaf conditions:

- ``name``: a regex over the instance name.
- ``tag``: ``{"key": K, "value": REGEX}`` (an instance without tag ``K`` never matches a
  value condition), ``{"key": K, "exists": true|false}``, or ``{"key": K}`` (= exists).
  ``key`` is exact; ``key_regex`` instead takes a regex over tag keys (a value
  condition then matches when any matching key has a matching value).
- ``provider``, ``account`` (name or id), ``region``, ``engine``: one exact value or a
  list of them (any of).

Every regex is *anchored*: it must match the whole string (``stg`` matches ``stg`` but
not ``stg-1``; write ``stg.*`` for a prefix). Matching is case-sensitive unless the
pattern says ``(?i)``. Patterns are compiled once, when the selector is parsed.

This module is pure: evaluation needs the instance and its account's name, nothing else.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import Instance, ProviderKind

MAX_DEPTH = 8
"""Nesting levels of all/any (a leaf at the top is depth 1)."""
MAX_RULES = 200
"""Rules (groups and leaves) in one selector."""
MAX_PATTERN = 256
"""Characters in one regex; instance names and tag values are short, so are useful regexes."""
MAX_VALUES = 100
"""Values in one provider/account/region/engine list."""

GROUPS = ("all", "any")
FIELDS = ("provider", "account", "region", "engine")
LEAVES = ("name", "tag", *FIELDS)
_TAG_KEYS = ("key", "key_regex", "value", "exists")


class Rule(ABC):
    """One node of the tree."""

    @abstractmethod
    def matches(self, instance: Instance, account_name: str | None) -> bool: ...

    @abstractmethod
    def describe(self) -> str: ...

    def walk(self) -> Iterator[Rule]:
        yield self


@dataclass(frozen=True)
class AllOf(Rule):
    rules: tuple[Rule, ...]

    def matches(self, instance: Instance, account_name: str | None) -> bool:
        return all(r.matches(instance, account_name) for r in self.rules)

    def describe(self) -> str:
        return " AND ".join(_wrap(r) for r in self.rules)

    def walk(self) -> Iterator[Rule]:
        yield self
        for r in self.rules:
            yield from r.walk()


@dataclass(frozen=True)
class AnyOf(Rule):
    rules: tuple[Rule, ...]

    def matches(self, instance: Instance, account_name: str | None) -> bool:
        return any(r.matches(instance, account_name) for r in self.rules)

    def describe(self) -> str:
        return " OR ".join(_wrap(r) for r in self.rules)

    def walk(self) -> Iterator[Rule]:
        yield self
        for r in self.rules:
            yield from r.walk()


def _wrap(rule: Rule) -> str:
    text = rule.describe()
    if isinstance(rule, (AllOf, AnyOf)) and len(rule.rules) > 1:
        return f"({text})"
    return text


@dataclass(frozen=True)
class NameRule(Rule):
    pattern: re.Pattern[str]

    def matches(self, instance: Instance, account_name: str | None) -> bool:
        return self.pattern.fullmatch(instance.name) is not None

    def describe(self) -> str:
        return f"name ~ /{self.pattern.pattern}/"


@dataclass(frozen=True)
class TagRule(Rule):
    """``key`` (exact) or ``key_pattern``; then ``value`` (regex) or ``exists``."""

    key: str | None
    key_pattern: re.Pattern[str] | None
    value: re.Pattern[str] | None
    exists: bool = True

    def _values(self, tags: dict[str, str]) -> list[str]:
        if self.key is not None:
            return [tags[self.key]] if self.key in tags else []
        assert self.key_pattern is not None
        return [v for k, v in tags.items() if self.key_pattern.fullmatch(k)]

    def matches(self, instance: Instance, account_name: str | None) -> bool:
        values = self._values(instance.tags)
        if self.value is not None:
            return any(self.value.fullmatch(v) is not None for v in values)
        return bool(values) == self.exists

    def describe(self) -> str:
        key = self.key if self.key is not None else f"/{self.key_pattern.pattern}/"  # type: ignore[union-attr]
        if self.value is not None:
            return f"tag {key} ~ /{self.value.pattern}/"
        return f"has tag {key}" if self.exists else f"no tag {key}"


@dataclass(frozen=True)
class FieldRule(Rule):
    """provider, account, region or engine equal to one of ``values``."""

    field: str
    values: tuple[str, ...]

    def matches(self, instance: Instance, account_name: str | None) -> bool:
        if self.field == "provider":
            return instance.provider.value in self.values
        if self.field == "region":
            return instance.region is not None and instance.region in self.values
        if self.field == "engine":
            return instance.engine in self.values
        # account: by name, or by id; local instances have no account and never match
        if instance.account_id is None:
            return False
        return account_name in self.values or str(instance.account_id) in self.values

    def describe(self) -> str:
        if len(self.values) == 1:
            return f"{self.field} = {self.values[0]}"
        return f"{self.field} in ({', '.join(self.values)})"


@dataclass(frozen=True)
class Selector:
    """A parsed, validated selector. Build it with :func:`parse_selector`."""

    root: Rule

    def matches(self, instance: Instance, account_name: str | None = None) -> bool:
        """Whether ``instance`` (whose account is called ``account_name``) is selected."""
        return self.root.matches(instance, account_name)

    def filter(
        self, instances: Iterable[Instance], account_names: dict[UUID, str]
    ) -> list[Instance]:
        """The selected instances, in their given order."""
        return [
            i for i in instances
            if self.root.matches(i, account_names.get(i.account_id) if i.account_id else None)
        ]

    def describe(self) -> str:
        """A one-line human reading, e.g. ``provider = aws AND (name ~ /stg-.*/ OR ...)``."""
        return self.root.describe()

    def values(self, field: str) -> set[str]:
        """Every value a provider/account/region/engine condition names (to check them)."""
        return {v for r in self.root.walk() if isinstance(r, FieldRule) and r.field == field
                for v in r.values}


class _Budget:
    """Counts rules while parsing so that an oversized selector fails early."""

    def __init__(self) -> None:
        self.rules = 0

    def take(self, where: str) -> None:
        self.rules += 1
        if self.rules > MAX_RULES:
            raise ValidationError(
                f"{where or 'selector'}: a selector may hold at most {MAX_RULES} rules"
            )


def parse_selector(data: Any) -> Selector:
    """Validate a JSON rule tree; raise ValidationError naming the path of the bad node.

    Paths read like ``all[1].any[0].tag.value``.
    """
    if isinstance(data, Selector):
        return data
    return Selector(_parse(data, "", 1, _Budget()))


def selector_document(selector: Selector) -> dict[str, Any]:
    """The selector's JSON rule tree, the inverse of :func:`parse_selector`:
    ``parse_selector(selector_document(s)) == s``. It is the form users write, the store
    keeps (an assignment's selector) and the API shows."""
    return _document(selector.root)


def _document(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, AllOf):
        return {"all": [_document(r) for r in rule.rules]}
    if isinstance(rule, AnyOf):
        return {"any": [_document(r) for r in rule.rules]}
    if isinstance(rule, NameRule):
        return {"name": rule.pattern.pattern}
    if isinstance(rule, TagRule):
        body: dict[str, Any] = (
            {"key": rule.key} if rule.key is not None
            else {"key_regex": rule.key_pattern.pattern}  # type: ignore[union-attr]
        )
        if rule.value is not None:
            body["value"] = rule.value.pattern
        else:
            body["exists"] = rule.exists
        return {"tag": body}
    if isinstance(rule, FieldRule):
        return {rule.field: rule.values[0] if len(rule.values) == 1 else list(rule.values)}
    raise TypeError(f"no document form for {type(rule).__name__}")


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fail(where: str, message: str) -> ValidationError:
    return ValidationError(f"{where or 'selector'}: {message}")


def _parse(node: Any, path: str, depth: int, budget: _Budget) -> Rule:
    choices = ", ".join(GROUPS + LEAVES)
    if not isinstance(node, dict):
        raise _fail(path, f"must be an object with one key, one of: {choices}")
    if len(node) != 1:
        found = ", ".join(map(str, node)) or "none"
        raise _fail(path, f"must have exactly one key, one of: {choices} (found: {found})")
    [(key, value)] = node.items()
    if key not in GROUPS and key not in LEAVES:
        raise _fail(path, f"unknown condition {key!r}; use one of: {choices}")
    if depth > MAX_DEPTH:
        raise _fail(path, f"selectors may nest at most {MAX_DEPTH} levels deep")
    budget.take(path)
    where = _at(path, key)
    if key in GROUPS:
        if not isinstance(value, list) or not value:
            raise _fail(where, "must be a non-empty list of rules")
        children = tuple(
            _parse(child, f"{where}[{n}]", depth + 1, budget) for n, child in enumerate(value)
        )
        return AllOf(children) if key == "all" else AnyOf(children)
    return _leaf(key, value, where)


def _leaf(key: str, value: Any, where: str) -> Rule:
    if key == "name":
        return NameRule(_regex(value, where, allow_empty=False))
    if key == "tag":
        return _tag(value, where)
    return FieldRule(key, _field_values(key, value, where))


def _regex(pattern: Any, where: str, *, allow_empty: bool) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise _fail(where, "must be a regex (a string)")
    if not pattern and not allow_empty:
        raise _fail(where, "must not be empty (use '.*' to match anything)")
    if len(pattern) > MAX_PATTERN:
        raise _fail(where, f"regex is longer than {MAX_PATTERN} characters")
    try:
        return re.compile(pattern)
    except re.error as exc:
        pos = f" at position {exc.pos}" if exc.pos is not None else ""
        raise _fail(where, f"bad regex {pattern!r}{pos}: {exc.msg}") from None


def _tag(value: Any, where: str) -> TagRule:
    if not isinstance(value, dict):
        raise _fail(where, 'must be an object like {"key": "env", "value": "dev|stg"}')
    unknown = sorted(set(map(str, value)) - set(_TAG_KEYS))
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(unknown)}; use key or key_regex, "
                           "then value or exists")
    if ("key" in value) == ("key_regex" in value):
        raise _fail(where, "needs exactly one of key (exact) or key_regex")
    key: str | None = None
    key_pattern: re.Pattern[str] | None = None
    if "key" in value:
        key = value["key"]
        if not isinstance(key, str) or not key:
            raise _fail(f"{where}.key", "must be a non-empty string")
    else:
        key_pattern = _regex(value["key_regex"], f"{where}.key_regex", allow_empty=False)
    if "value" in value and "exists" in value:
        raise _fail(where, "give value or exists, not both")
    if "value" in value:
        # An empty pattern is allowed: it selects tags whose value is empty.
        pattern = _regex(value["value"], f"{where}.value", allow_empty=True)
        return TagRule(key, key_pattern, pattern)
    exists = value.get("exists", True)
    if not isinstance(exists, bool):
        raise _fail(f"{where}.exists", "must be true or false")
    return TagRule(key, key_pattern, None, exists)


def _field_values(field: str, value: Any, where: str) -> tuple[str, ...]:
    raw = [value] if isinstance(value, str) else value
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "must be a string or a non-empty list of strings")
    if len(raw) > MAX_VALUES:
        raise _fail(where, f"lists may hold at most {MAX_VALUES} values")
    out: list[str] = []
    for n, v in enumerate(raw):
        at = where if isinstance(value, str) else f"{where}[{n}]"
        if not isinstance(v, str) or not v:
            raise _fail(at, "must be a non-empty string")
        if field == "provider" and v not in {p.value for p in ProviderKind}:
            raise _fail(at, f"unknown provider {v!r}; use one of: "
                            + ", ".join(p.value for p in ProviderKind))
        if field == "account":
            try:
                v = str(UUID(v))  # ids compare in their canonical form
            except ValueError:
                pass
        if v not in out:
            out.append(v)
    return tuple(out)


def selector_from_filters(
    *,
    provider: str | list[str] | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    account: str | list[str] | None = None,
    region: str | list[str] | None = None,
    engine: str | list[str] | None = None,
) -> Selector | None:
    """An AND selector from CLI-style flags, or None when no flag is given.

    ``tags`` are ``key=REGEX`` (the value is an anchored regex, like ``--name``) or a bare
    ``key`` (the tag must exist). Errors name the flag: ``--name: bad regex ...``.
    """
    rules: list[Rule] = []
    for flag, value in (("provider", provider), ("account", account), ("region", region),
                        ("engine", engine)):
        if value is not None and value != []:
            rules.append(FieldRule(flag, _field_values(flag, value, f"--{flag}")))
    if name is not None:
        rules.append(NameRule(_regex(name, "--name", allow_empty=False)))
    for pair in tags or []:
        key, sep, value = pair.partition("=")
        where = f"--tag {pair!r}"
        if not key:
            raise _fail(where, "must look like key=value (the value is a regex) or key")
        spec: dict[str, Any] = {"key": key, "value": value} if sep else {"key": key}
        rules.append(_tag(spec, where))
    if not rules:
        return None
    if len(rules) + 1 > MAX_RULES:
        raise ValidationError(f"a selector may hold at most {MAX_RULES} rules")
    return Selector(AllOf(tuple(rules)))
