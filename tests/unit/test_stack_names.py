"""Stack and instance names: DNS labels, reserved names, suggestions, the 63-char limit."""

from __future__ import annotations

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.stacks.names import (
    container_name,
    is_dns_label,
    suggest_name,
    validate_instance_name,
    validate_prefix,
    validate_stack_name,
)


@pytest.mark.parametrize("name", ["a", "db", "pg1", "my-db", "a1-b2-c3", "x" * 40, "0db"])
def test_valid_names_are_accepted(name: str) -> None:
    assert validate_stack_name(name) == name
    assert validate_instance_name(name, "s") == name


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("My_DB", "my-db"),
        ("web app", "web-app"),
        ("-db-", "db"),
        ("db.1", "db-1"),
        ("Postgres__16", "postgres-16"),
        ("ÄÖ", "service1"),
        ("", "service1"),
    ],
)
def test_invalid_instance_name_suggests_a_valid_one(name: str, suggestion: str) -> None:
    with pytest.raises(ValidationError) as exc:
        validate_instance_name(name, "dev")
    assert f"try '{suggestion}'" in exc.value.message
    assert "not a valid instance name" in exc.value.message
    assert is_dns_label(suggestion)
    validate_instance_name(suggestion, "dev")  # the suggestion itself is accepted


@pytest.mark.parametrize("name", ["default", "system", "none", "all"])
def test_reserved_names_are_refused_with_suggestion(name: str) -> None:
    for check in (lambda: validate_stack_name(name), lambda: validate_instance_name(name, "s")):
        with pytest.raises(ValidationError) as exc:
            check()
        assert "reserved" in exc.value.message
        assert f"try 'my-{name}'" in exc.value.message
    validate_instance_name(suggest_name(name), "s")


def test_non_string_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        validate_stack_name(12)  # type: ignore[arg-type]


def test_container_name_joins_prefix_stack_and_instance() -> None:
    assert container_name("snoozeql", "dev", "pg1") == "snoozeql-dev-pg1"
    assert container_name("acme", "shop", "cache") == "acme-shop-cache"


def test_container_name_of_exactly_63_characters_is_accepted() -> None:
    stack = "s" * 20
    room = 63 - len("snoozeql") - len(stack) - 2
    instance = "i" * room
    name = container_name("snoozeql", stack, instance)
    assert len(name) == 63


def test_instance_name_that_breaks_the_limit_says_limit_and_length() -> None:
    stack = "s" * 20
    instance = "i" * 34  # 8 + 1 + 20 + 1 + 34 = 64
    with pytest.raises(ValidationError) as exc:
        validate_instance_name(instance, stack)
    msg = exc.value.message
    assert "64 characters" in msg
    assert "limit is 63" in msg
    assert "at most 33 characters" in msg
    with pytest.raises(ValidationError):
        container_name("snoozeql", stack, instance)


def test_stack_name_that_leaves_no_room_for_an_instance_is_refused() -> None:
    # snoozeql-<stack>-x must fit: stack at most 63 - 8 - 3 = 52 characters
    validate_stack_name("s" * 52)
    with pytest.raises(ValidationError) as exc:
        validate_stack_name("s" * 53)
    msg = exc.value.message
    assert "at most 63" in msg and "the shortest is 64" in msg
    assert "at most 52 characters (it is 53)" in msg


def test_stack_name_limit_depends_on_the_prefix() -> None:
    validate_stack_name("s" * 52, prefix="snoozeql")
    with pytest.raises(ValidationError):
        validate_stack_name("s" * 52, prefix="snoozeql-dev")
    validate_stack_name("s" * 56, prefix="abcd")


@pytest.mark.parametrize("prefix", ["Snooze", "-x", "", "a" * 60])
def test_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="prefix"):
        validate_prefix(prefix)


def test_suggestion_respects_length_room() -> None:
    with pytest.raises(ValidationError) as exc:
        validate_instance_name("a" * 30 + "-" + "b" * 10, "s" * 20)
    suggestion = exc.value.message.rsplit("try '", 1)[1].rstrip("'")
    validate_instance_name(suggestion, "s" * 20)
