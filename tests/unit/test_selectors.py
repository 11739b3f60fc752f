"""Selector rule trees: parsing, validation errors with paths, and evaluation tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.selectors import (
    MAX_DEPTH,
    MAX_RULES,
    parse_selector,
    selector_document,
    selector_from_filters,
)
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind

ACCOUNT_ID = uuid.UUID("6f1c2a7e-0000-4000-8000-000000000001")
NOW = datetime(2025, 1, 6, 12, tzinfo=UTC)


def inst(name: str = "stg-1", *, provider: str = "aws", region: str | None = "us-east-1",
         engine: str = "postgres", tags: dict[str, str] | None = None,
         account_id: uuid.UUID | None = ACCOUNT_ID) -> Instance:
    return Instance(
        id=uuid.uuid4(), account_id=account_id, provider=ProviderKind(provider),
        provider_id=f"arn:aws:rds:{region}:123456789012:db:{name}", kind=InstanceKind.INSTANCE,
        name=name, engine=engine, engine_version="16", instance_class="db.t3.micro",
        region=region, status=InstanceStatus.RUNNING, raw_status="available",
        tags=tags if tags is not None else {"env": "dev", "team": "data"}, endpoint_host=None,
        endpoint_port=None, multi_az=False, node_count=1, cluster_provider_id=None,
        hourly_cost_cents=None, first_seen_at=NOW, last_seen_at=NOW, missing_since=None,
    )


MATCH_TABLE: list[tuple[str, dict[str, Any], Instance, bool]] = [
    # regexes are anchored at both ends
    ("exact name", {"name": "stg"}, inst("stg"), True),
    ("no prefix match", {"name": "stg"}, inst("stg-1"), False),
    ("no suffix match", {"name": "stg"}, inst("old-stg"), False),
    ("explicit prefix", {"name": "stg.*"}, inst("stg-1"), True),
    ("alternation is anchored as a whole", {"name": "stg|dev"}, inst("stg-1"), False),
    ("alternation", {"name": "stg-.*|dev-.*"}, inst("dev-9"), True),
    ("case-sensitive", {"name": "STG-1"}, inst("stg-1"), False),
    ("inline ignore-case", {"name": "(?i)STG-1"}, inst("stg-1"), True),
    # tags
    ("tag value", {"tag": {"key": "env", "value": "dev|stg"}}, inst(tags={"env": "stg"}), True),
    ("tag value anchored", {"tag": {"key": "env", "value": "dev"}},
     inst(tags={"env": "dev2"}), False),
    ("missing tag never matches a value", {"tag": {"key": "env", "value": ".*"}},
     inst(tags={}), False),
    ("empty value pattern matches an empty value", {"tag": {"key": "env", "value": ""}},
     inst(tags={"env": ""}), True),
    ("tag key is exact", {"tag": {"key": "en.", "value": "dev"}}, inst(tags={"env": "dev"}),
     False),
    ("key_regex", {"tag": {"key_regex": "e.v", "value": "dev"}}, inst(tags={"env": "dev"}),
     True),
    ("key_regex: any matching key with a matching value",
     {"tag": {"key_regex": "env|stage", "value": "stg"}},
     inst(tags={"env": "dev", "stage": "stg"}), True),
    ("exists", {"tag": {"key": "team", "exists": True}}, inst(), True),
    ("exists by default", {"tag": {"key": "team"}}, inst(tags={}), False),
    ("not exists", {"tag": {"key": "keep-awake", "exists": False}}, inst(), True),
    ("not exists, but it does", {"tag": {"key": "team", "exists": False}}, inst(), False),
    # exact fields, single or list
    ("provider", {"provider": "aws"}, inst(), True),
    ("provider list", {"provider": ["gcp", "local"]}, inst(), False),
    ("provider list hit", {"provider": ["gcp", "local"]}, inst(provider="local"), True),
    ("region", {"region": ["eu-west-1", "us-east-1"]}, inst(), True),
    ("no region never matches", {"region": "us-east-1"}, inst(region=None), False),
    ("engine exact", {"engine": "postgres"}, inst(engine="aurora-postgresql"), False),
    ("engine list", {"engine": ["mysql", "aurora-postgresql"]}, inst(engine="aurora-postgresql"),
     True),
    ("account by name", {"account": "dev-account"}, inst(), True),
    ("account by id", {"account": str(ACCOUNT_ID).upper()}, inst(), True),
    ("other account", {"account": ["prod"]}, inst(), False),
    ("no account", {"account": "dev-account"}, inst(account_id=None), False),
    # combinations
    ("AND all true", {"all": [{"provider": "aws"}, {"name": "stg-.*"}]}, inst(), True),
    ("AND one false", {"all": [{"provider": "aws"}, {"name": "prod-.*"}]}, inst(), False),
    ("OR one true", {"any": [{"provider": "gcp"}, {"name": "stg-.*"}]}, inst(), True),
    ("OR none true", {"any": [{"provider": "gcp"}, {"name": "prod"}]}, inst(), False),
    ("nested AND in OR",
     {"any": [{"all": [{"provider": "gcp"}, {"name": "stg-1"}]},
              {"all": [{"region": "us-east-1"}, {"tag": {"key": "env", "value": "dev"}}]}]},
     inst(), True),
    ("nested OR in AND, inner miss",
     {"all": [{"provider": "aws"},
              {"any": [{"tag": {"key": "env", "value": "prod"}}, {"engine": "mysql"}]}]},
     inst(), False),
    ("single-child groups", {"all": [{"any": [{"all": [{"name": ".*"}]}]}]}, inst(), True),
]


@pytest.mark.parametrize("label,rule,instance,expected", MATCH_TABLE,
                         ids=[row[0] for row in MATCH_TABLE])
def test_evaluation_table(label: str, rule: dict[str, Any], instance: Instance,
                          expected: bool) -> None:
    assert parse_selector(rule).matches(instance, "dev-account") is expected


ERROR_TABLE: list[tuple[Any, str]] = [
    ({"all": [{"provider": "aws"}, {"name": "stg-("}]},
     "all[1].name: bad regex 'stg-(' at position 4: missing ), unterminated subpattern"),
    ({"any": [{"tag": {"key": "env", "value": "a[b"}}]},
     "any[0].tag.value: bad regex 'a[b' at position 1: unterminated character set"),
    ({"tag": {"key_regex": "*x"}}, "tag.key_regex: bad regex '*x' at position 0: nothing to "
                                   "repeat"),
    ([{"name": "x"}], "selector: must be an object"),
    ({}, "selector: must have exactly one key"),
    ({"name": "a", "provider": "aws"}, "selector: must have exactly one key"),
    ({"all": [{"nmae": "x"}]}, "all[0]: unknown condition 'nmae'"),
    ({"all": []}, "all: must be a non-empty list of rules"),
    ({"any": {"name": "x"}}, "any: must be a non-empty list of rules"),
    ({"all": [{"any": ["x"]}]}, "all[0].any[0]: must be an object"),
    ({"name": ""}, "name: must not be empty"),
    ({"name": 3}, "name: must be a regex"),
    ({"provider": "azure"}, "provider: unknown provider 'azure'"),
    ({"provider": ["aws", "ibm"]}, "provider[1]: unknown provider 'ibm'"),
    ({"region": []}, "region: must be a string or a non-empty list"),
    ({"engine": ["postgres", ""]}, "engine[1]: must be a non-empty string"),
    ({"tag": "env=dev"}, "tag: must be an object"),
    ({"tag": {"value": "dev"}}, "tag: needs exactly one of key (exact) or key_regex"),
    ({"tag": {"key": "a", "key_regex": "b"}}, "tag: needs exactly one of key"),
    ({"tag": {"key": "env", "value": "dev", "exists": True}}, "tag: give value or exists"),
    ({"tag": {"key": "env", "exists": "yes"}}, "tag.exists: must be true or false"),
    ({"tag": {"key": "", "value": "x"}}, "tag.key: must be a non-empty string"),
    ({"tag": {"key": "env", "regex": "x"}}, "tag: unknown field(s) regex"),
    ({"name": "a" * 300}, "name: regex is longer than 256"),
]


@pytest.mark.parametrize("data,message", ERROR_TABLE, ids=[e[1][:40] for e in ERROR_TABLE])
def test_errors_name_the_path(data: Any, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_selector(data)
    assert err.value.message.startswith(message), err.value.message


def test_depth_and_size_limits_are_clear() -> None:
    deep: dict[str, Any] = {"name": "x"}
    for _ in range(MAX_DEPTH - 1):
        deep = {"all": [deep]}
    parse_selector(deep)  # exactly at the limit
    with pytest.raises(ValidationError, match=f"at most {MAX_DEPTH} levels deep"):
        parse_selector({"any": [deep]})
    wide = {"any": [{"name": f"n{i}"} for i in range(MAX_RULES)]}
    with pytest.raises(ValidationError, match=f"at most {MAX_RULES} rules"):
        parse_selector(wide)
    parse_selector({"any": [{"name": f"n{i}"} for i in range(MAX_RULES - 1)]})


def test_the_document_round_trips_and_describe_reads() -> None:
    raw = {"all": [
        {"provider": "aws"},
        {"any": [{"name": "stg-.*"}, {"tag": {"key": "env", "value": "dev|stg"}},
                 {"tag": {"key_regex": "owner.*", "exists": False}}]},
        {"region": ["us-east-1", "eu-west-1"]},
    ]}
    sel = parse_selector(raw)
    assert selector_document(sel) == raw
    assert parse_selector(selector_document(sel)) == sel
    assert sel.describe() == (
        "provider = aws AND (name ~ /stg-.*/ OR tag env ~ /dev|stg/ OR no tag /owner.*/) "
        "AND region in (us-east-1, eu-west-1)"
    )
    assert selector_document(parse_selector({"tag": {"key": "team"}})) == {
        "tag": {"key": "team", "exists": True}}


def test_filter_keeps_order_and_uses_account_names() -> None:
    other = uuid.uuid4()
    items = [inst("b"), inst("a", account_id=other), inst("c", account_id=None)]
    sel = parse_selector({"any": [{"account": "prod"}, {"name": "c"}]})
    assert [i.name for i in sel.filter(items, {ACCOUNT_ID: "dev", other: "prod"})] == ["a", "c"]
    assert parse_selector({"account": ["prod", str(other)]}).values("account") == {
        "prod", str(other)}


def test_from_filters_builds_an_and_selector() -> None:
    assert selector_from_filters() is None
    sel = selector_from_filters(provider="aws", tags=["env=dev|stg", "team"], name="stg-.*",
                                region="us-east-1")
    assert sel is not None
    assert selector_document(sel) == {"all": [
        {"provider": "aws"}, {"region": "us-east-1"}, {"name": "stg-.*"},
        {"tag": {"key": "env", "value": "dev|stg"}}, {"tag": {"key": "team", "exists": True}},
    ]}
    assert sel.matches(inst("stg-2", tags={"env": "stg", "team": "x"}), None)
    assert not sel.matches(inst("stg-2", tags={"env": "stg"}), None)
    assert not sel.matches(inst("stg-2", tags={"env": "stg", "team": "x"}, provider="gcp"), None)
    # a value containing '=' keeps it: only the first '=' separates key and value
    eq = selector_from_filters(tags=["expr=a=b"])
    assert eq is not None and eq.matches(inst(tags={"expr": "a=b"}), None)


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "stg-("}, "--name: bad regex 'stg-(' at position 4"),
    ({"provider": "azure"}, "--provider: unknown provider 'azure'"),
    ({"tags": ["=dev"]}, "--tag '=dev': must look like key=value"),
    ({"tags": ["env=(dev"]}, "--tag 'env=(dev'.value: bad regex '(dev' at position 0"),
])
def test_from_filters_errors_name_the_flag(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        selector_from_filters(**kwargs)
    assert err.value.message.startswith(message), err.value.message


_names = st.text(alphabet="abcxyz-0123", min_size=1, max_size=8)


@given(_names, st.lists(_names, min_size=1, max_size=4))
def test_escaped_names_match_exactly_one_name(name: str, others: list[str]) -> None:
    """An escaped literal is anchored: it selects that name and no longer or shorter one."""
    import re

    sel = parse_selector({"name": re.escape(name)})
    for other in [*others, name + "x", "x" + name, name[:-1] or "q"]:
        assert sel.matches(inst(other), None) is (other == name)


@given(st.lists(st.booleans(), min_size=1, max_size=6))
def test_all_any_agree_with_python(bits: list[bool]) -> None:
    leaves = [{"name": ".*"} if b else {"name": "(?!)"} for b in bits]
    i = inst()
    assert parse_selector({"all": leaves}).matches(i, None) is all(bits)
    assert parse_selector({"any": leaves}).matches(i, None) is any(bits)
