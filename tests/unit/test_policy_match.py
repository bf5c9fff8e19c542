"""Ordered policies (DESIGN §9): the list form of `policies`, each with a unique name, an optional
`match` and its targets; the first whose match holds applies. The part-one map means the same as
a list matching priority x tier, its policies named "priority/tier". Errors name the key; the
loader under fuzzed list forms raises nothing but ConfigError, with a short message."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.config.sla_config import ConfigError, parse_config
from internal.sla.policy import Facts, facts_of
from support.configs import BASE

METRICS = {
    "first_reply": {"start": ["created"], "stop": ["agent_reply"]},
    "resolution": {"start": ["created"], "stop": ["status:resolved", "status:closed"]},
}
ORDERED: list[dict[str, Any]] = [
    {
        "name": "vip-billing",
        "match": {
            "priority": ["high"],
            "customer_tier": ["gold"],
            "group": ["billing"],
            "tags_any": ["vip"],
            "attributes": {"region": "emea"},
        },
        "targets": {"first_reply": "15m", "resolution": "4h"},
        "calendar": "emea_office",
    },
    {"name": "alice", "match": {"assignee": ["alice"]}, "targets": {"first_reply": "20m"}},
    {"name": "both-tags", "match": {"tags_all": ["a", "b"]}, "targets": {"first_reply": "25m"}},
    {
        "name": "billing",
        "match": {"group": ["billing", "refunds"]},
        "targets": {"resolution": "8h"},
    },
    {"name": "default", "targets": {"first_reply": "1h", "resolution": "24h"}},
]


def config_of(policies: object, metrics: object = METRICS) -> Any:
    doc = {**copy.deepcopy(BASE), "policies": policies}
    if metrics is not None:
        doc["metrics"] = metrics
    return parse_config(yaml.safe_dump(doc))


CONFIG = config_of(ORDERED)


def chosen(**fields: Any) -> str:
    facts = Facts(
        fields.pop("priority", "low"),
        fields.pop("customer_tier", "silver"),
        fields.pop("group", ""),
        fields.pop("assignee", ""),
        frozenset(fields.pop("tags", ())),
        fields.pop("attributes", {}),
    )
    assert not fields
    policy = CONFIG.choose(facts)
    return "" if policy is None else policy.name


VIP = {
    "priority": "high",
    "customer_tier": "gold",
    "group": "billing",
    "tags": ["vip", "x"],
    "attributes": {"region": "emea", "lang": "de"},
}


def test_every_condition_must_hold_and_the_first_match_wins() -> None:
    """The VIP ticket matches the first policy, although the later `billing` and `default` match
    it too; taking away any one of its conditions falls through to the next that holds."""
    assert chosen(**VIP) == "vip-billing"
    assert chosen(**{**VIP, "priority": "low"}) == "billing"
    assert chosen(**{**VIP, "customer_tier": "silver"}) == "billing"
    assert chosen(**{**VIP, "group": "sales"}) == "default"
    assert chosen(**{**VIP, "tags": ["x"]}) == "billing"  # tags_any: none of them
    assert chosen(**{**VIP, "attributes": {"region": "apac"}}) == "billing"
    assert chosen(**{**VIP, "attributes": {}}) == "billing"  # the attribute must be there


def test_each_condition_kind() -> None:
    """assignee: one of the values; tags_all: every tag (more are fine); group: any listed
    value; no match at all: the policy without one."""
    assert chosen(assignee="alice") == "alice"
    assert chosen(assignee="bob") == "default"
    assert chosen(tags=["b", "a", "c"]) == "both-tags"
    assert chosen(tags=["a"]) == "default"
    assert chosen(group="refunds") == "billing"
    assert chosen() == "default"
    policy = CONFIG.choose(
        Facts("high", "gold", "billing", "", frozenset({"vip"}), VIP["attributes"])
    )
    assert policy is not None
    assert policy.targets.seconds == {"first_reply": 900.0, "resolution": 14_400.0}
    assert policy.targets.calendar.name == "emea_office"
    assert policy.targets.policy == "vip-billing"


def test_without_a_catch_all_a_ticket_may_match_nothing() -> None:
    """No policy without `match`: a ticket outside every match has none (ingest refuses it)."""
    config = config_of(ORDERED[:-1])
    assert config.choose(Facts("low", "silver")) is None
    assert config.targets("low", "silver") is None


def test_may_match_counts_fields_the_event_leaves_empty_as_unknown() -> None:
    """An event without group may belong to a ticket whose group is billing: it may match; an
    event that gives another group cannot match the billing-only policy."""
    config = config_of(ORDERED[3:4])
    assert config.may_match("low", "silver")
    assert config.may_match("low", "silver", group="refunds")
    assert not config.may_match("low", "silver", group="sales")


def test_current_fields_are_the_latest_given_of_each() -> None:
    """facts_of: each field from the latest event that gives it, tags and attributes whole."""
    facts = facts_of(
        "high",
        "gold",
        [
            ("billing", "alice", ["a", "b"], {"region": "emea"}),
            (None, None, ["c"], None),
            ("sales", None, None, None),
        ],
    )
    assert facts == Facts("high", "gold", "sales", "alice", frozenset({"c"}), {"region": "emea"})


def test_the_map_form_is_a_list_matching_priority_and_tier() -> None:
    """Part one's map: a policy per priority x tier, named "priority/tier", same targets."""
    config = parse_config(yaml.safe_dump(BASE))
    assert config.is_map_form
    names = [p.name for p in config.ordered_policies.policies]
    assert names == ["high/gold", "high/silver", "low/gold", "low/silver"]
    policy = config.choose(Facts("high", "silver", "any-group", "", frozenset({"vip"})))
    assert policy is not None and policy.name == "high/silver"
    assert policy.targets == config.targets("high", "silver")
    assert config.choose(Facts("high", "bronze")) is None
    assert config.targets("high", "gold").policy == "high/gold"


def test_the_list_form_without_metrics_needs_response_and_resolution() -> None:
    """Without a metrics section, a list item's targets are part one's two, both required."""
    config = config_of([{"name": "all", "targets": {"response": "1h", "resolution": "1d"}}], None)
    assert config.targets("x", "y").seconds == {"response": 3600.0, "resolution": 86_400.0}
    with pytest.raises(ConfigError, match=r"^policies\[0\]\.targets\.resolution: missing"):
        config_of([{"name": "all", "targets": {"response": "1h"}}], None)


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ([], r"^policies: at least one policy is required"),
        ([{"targets": {"first_reply": "1h"}}], r"^policies\[0\]\.name: missing"),
        ([{"name": "a"}], r"^policies\[0\]\.targets: missing"),
        ([{"name": "", "targets": {}}], r"^policies\[0\]\.name: expected 1-128"),
        ([{"name": 3, "targets": {}}], r"^policies\[0\]\.name: expected"),
        (
            [{"name": "a", "targets": {}}, {"name": "a", "targets": {}}],
            r"^policies\[1\]\.name: 'a' names an earlier policy",
        ),
        ([{"name": "a", "targets": {}, "when": {}}], r"^policies\[0\]\.when: unknown key"),
        (
            [{"name": "a", "targets": {}, "match": {"tags": ["x"]}}],
            r"^policies\[0\]\.match\.tags: unknown key",
        ),
        (
            [{"name": "a", "targets": {}, "match": {"tags_any": "vip"}}],
            r"^policies\[0\]\.match\.tags_any: expected a list",
        ),
        (
            [{"name": "a", "targets": {}, "match": {"tags_all": []}}],
            r"^policies\[0\]\.match\.tags_all: at least one value",
        ),
        (
            [{"name": "a", "targets": {}, "match": {"group": ["ok", 7]}}],
            r"^policies\[0\]\.match\.group\[1\]: expected a non-empty string",
        ),
        (
            [{"name": "a", "targets": {}, "match": {"attributes": {"region": 1}}}],
            r"^policies\[0\]\.match\.attributes\.region: expected",
        ),
        (
            [{"name": "a", "targets": {}, "match": {"attributes": ["region"]}}],
            r"^policies\[0\]\.match\.attributes: expected a mapping",
        ),
        ([{"name": "a", "targets": {}, "match": []}], r"^policies\[0\]\.match: expected a mapping"),
        (
            [{"name": "a", "targets": {"first_reply": "soon"}}],
            r"^policies\[0\]\.targets\.first_reply: expected a duration",
        ),
        (
            [{"name": "a", "targets": {"triage": "1h"}}],
            r"^policies\[0\]\.targets\.triage: a target for a metric that is not defined",
        ),
        (
            [{"name": "a", "targets": {"calendar": "24x7"}}],
            r"^policies\[0\]\.targets\.calendar: a target for a metric",
        ),
        (
            [{"name": "a", "targets": {}, "calendar": "mars"}],
            r"^policies\[0\]\.calendar: unknown calendar 'mars'",
        ),
        (["a"], r"^policies: expected a mapping .* or a list of policies.*policies\[0\] is a str"),
    ],
)
def test_errors_name_the_key(policies: object, message: str) -> None:
    """Each mistake in the list form is refused with a message naming its key."""
    with pytest.raises(ConfigError, match=message):
        config_of(policies)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=8),
    st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers()), max_size=3),
)
policy_keys = st.sampled_from(["name", "match", "targets", "calendar", "other"])
match_keys = st.sampled_from(
    ["priority", "customer_tier", "group", "assignee", "tags_any", "tags_all", "attributes", "x"]
)


@st.composite
def mutated_lists(draw: st.DrawFn) -> list[Any]:
    """A valid list form with a few of its values replaced or added, at any depth."""
    policies = copy.deepcopy(ORDERED)
    for _ in range(draw(st.integers(1, 4))):
        item = policies[draw(st.integers(0, len(policies) - 1))]
        where = draw(st.sampled_from(["policy", "match", "targets"]))
        if where == "policy":
            item[draw(policy_keys)] = draw(values)
        elif where == "match" and isinstance(item.get("match", {}), dict):
            item.setdefault("match", {})[draw(match_keys)] = draw(values)
        elif isinstance(item.get("targets"), dict):
            item["targets"][draw(st.sampled_from(["first_reply", "resolution", "zz"]))] = draw(
                values
            )
    return policies


@settings(max_examples=300, deadline=None)
@given(mutated_lists())
def test_fuzzed_list_forms_parse_or_name_a_key(policies: list[Any]) -> None:
    """Never a traceback: a ConfigError whose short message names `policies` (a list item's
    key), or a config whose every policy has a unique name and finite positive targets."""
    try:
        config = config_of(policies)
    except ConfigError as err:
        assert str(err).startswith("policies"), str(err)
        assert len(str(err)) < 300 and "\n" not in str(err)
    else:
        names = [p.name for p in config.ordered_policies.policies]
        assert len(names) == len(set(names))
        for p in config.ordered_policies.policies:
            assert all(0 < s < float("inf") for s in p.targets.seconds.values())
