"""deploy/schema/sla_config.schema.json, the JSON Schema editors use for sla_config.yaml, agrees
with the loader: the shipped file and the tests' configs are valid for both, each invalid file
below is refused by both, and so is every generated file, except for what only the loader can
check (support.config_schema.BEYOND_SCHEMA, each case shown below)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from internal.config.sla_config import ConfigError, parse_config
from internal.sla.metric import TRIGGERS
from support.config_schema import (
    BEYOND_SCHEMA,
    assert_agreement,
    disagreement,
    json_view,
    schema_errors,
)
from support.configs import BASE, config_text
from support.env import ROOT

ORDERED: list[dict[str, Any]] = [
    {
        "name": "vip-billing",
        "match": {
            "priority": ["high"],
            "customer_tier": ["gold"],
            "group": ["billing"],
            "assignee": ["alice"],
            "tags_any": ["vip"],
            "tags_all": ["vip", "emea"],
            "attributes": {"region": "emea", "note": ""},
        },
        "targets": {"response": "15m", "resolution": "4h"},
        "calendar": "emea_office",
    },
    {"name": "default", "targets": {"response": "1h", "resolution": "1d"}},
]
ORDERED_M: list[dict[str, Any]] = [
    {"name": "vip", "match": {"tags_any": ["vip"]}, "targets": {"reply": "15m"}},
    {"name": "default", "targets": {}, "calendar": "emea_office"},
]


def with_(**changes: object) -> dict[str, Any]:
    doc = yaml.safe_load(config_text())
    doc.update(changes)
    return doc


def tier(**targets: object) -> dict[str, Any]:
    return {"high": {"gold": {"response": "15m", "resolution": "4h", **targets}}}


def calendar(**fields: object) -> dict[str, Any]:
    """BASE's calendars (its policies name one) and a calendar `c` with `fields`."""
    return {
        **BASE["calendars"],
        "c": {"timezone": "UTC", "hours": {"mon": "09:00-17:00"}, **fields},
    }


def step(**fields: object) -> list[dict[str, Any]]:
    return [{"at_percent": 100, "level": 1, "kind": "breach", **fields}]


REPLY = {"start": ["customer_reply"], "stop": ["agent_reply"], "cycles": "each_start"}


def metrics(targets: dict[str, object] | None = None, **definitions: object) -> dict[str, Any]:
    """BASE with a metrics section of `definitions` (default: one `reply` metric) and one policy
    with `targets` (default: a target for each metric)."""
    definitions = definitions or {"reply": REPLY}
    targets = {name: "1h" for name in definitions} if targets is None else targets
    return with_(metrics=definitions, policies={"high": {"gold": targets}})


def reply(**fields: object) -> dict[str, Any]:
    return metrics(reply={**REPLY, **fields})


def test_the_shipped_config_is_valid_for_schema_and_loader() -> None:
    text = (ROOT / "sla_config.yaml").read_text()
    parse_config(text)
    assert schema_errors(json_view(yaml.safe_load(text))) == []


def test_the_tests_base_config_is_valid_for_both() -> None:
    """config_text() checks agreement on every config a test writes; the base one is valid."""
    parse_config(config_text())
    assert schema_errors(json_view(BASE)) == []


VALID = {
    "minimal": {"policies": tier()},
    "default ladder": {k: v for k, v in BASE.items() if k != "escalation"},
    "numeric durations": with_(policies=tier(response=900, resolution=14400.5)),
    "padded duration strings": with_(policies=tier(response=" 15 m ", resolution="1.5h")),
    "the largest duration": with_(policies=tier(response=315360000, resolution="3650d")),
    "upper-case pause status": with_(pause_statuses=["ON_HOLD", "in_progress"]),
    "no pause status": with_(pause_statuses=[]),
    "unquoted holiday dates": with_(calendars=calendar(holidays=[date(2026, 12, 25)])),
    "split hours up to midnight": with_(
        calendars=calendar(hours={"sat": "9:00-12:00, 13:00 - 24:00"})
    ),
    "the built-in calendar by name": with_(policies=tier(calendar="24x7")),
    "no channels, no notify": {"escalation": step(), "policies": tier()},
    "the top percent and level": with_(escalation=step(at_percent=10000, level=1000)),
    "a metrics section": metrics(),
    "every metric field": metrics(
        first={
            "start": ["created", "reopened"],
            "stop": ["agent_reply", "status:resolved"],
            "pause": ["status:on_hold", "status:in_progress"],
            "resume": ["customer_reply"],
            "cycles": "once",
            "escalation": step(notify=["team"]),
        }
    ),
    "a metric with cycles left out": metrics(m={"start": ["created"], "stop": ["reopened"]}),
    "a tier with only a calendar": metrics(targets={"calendar": "emea_office"}),
    "a tier without some metric": metrics(
        targets={"a": "1h"}, a={"start": ["created"], "stop": ["agent_reply"]}, b=REPLY
    ),
    "a channel with quiet hours": with_(
        channels={
            **BASE["channels"],
            "team": {
                "slack_webhook_env": "SLACK_WEBHOOK_URL",
                "quiet_hours": "emea_office",
                "quiet_min_level": 3,
            },
            "lead": {"slack_webhook_env": "SLACK_WEBHOOK_URL_LEAD", "quiet_hours": "24x7"},
        }
    ),
    "ordered policies": with_(policies=ORDERED),
    "ordered policies with metrics": metrics(targets={"reply": "1h"}) | {"policies": ORDERED_M},
    "an ordered policy without match": with_(
        policies=[{"name": "all", "targets": {"response": 60, "resolution": "1d"}}]
    ),
    "an ordered policy with an empty match": with_(
        policies=[{"name": "all", "match": {}, "targets": {"response": 60, "resolution": "1d"}}]
    ),
    "a channel whose webhook is in a file": with_(
        channels={**BASE["channels"], "team": {"slack_webhook_file": "/run/secrets/team/url"}}
    ),
    "a channel of type slack": with_(
        channels={
            **BASE["channels"],
            "team": {"type": "slack", "slack_webhook_env": "SLACK_WEBHOOK_URL"},
        }
    ),
}


@pytest.mark.parametrize("doc", VALID.values(), ids=VALID.keys())
def test_valid_configs_are_valid_for_both(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc)
    parse_config(text)
    assert schema_errors(json_view(yaml.safe_load(text))) == []


INVALID = {
    "ordered policies empty": with_(policies=[]),
    "an ordered policy without name": with_(policies=[{"targets": ORDERED[0]["targets"]}]),
    "an ordered policy without targets": with_(policies=[{"name": "a"}]),
    "an ordered policy with an unknown key": with_(policies=[{**ORDERED[1], "when": 1}]),
    "an ordered policy name empty": with_(policies=[{**ORDERED[1], "name": ""}]),
    "an ordered policy name with a newline": with_(policies=[{**ORDERED[1], "name": "a\n"}]),
    "an ordered policy name not a string": with_(policies=[{**ORDERED[1], "name": 5}]),
    "an ordered policy not a mapping": with_(policies=["default"]),
    "a match condition unknown": with_(policies=[{**ORDERED[1], "match": {"tags": ["vip"]}}]),
    "a match condition not a list": with_(policies=[{**ORDERED[1], "match": {"group": "x"}}]),
    "a match condition empty": with_(policies=[{**ORDERED[1], "match": {"tags_all": []}}]),
    "a match value empty": with_(policies=[{**ORDERED[1], "match": {"assignee": [""]}}]),
    "a match value not a string": with_(policies=[{**ORDERED[1], "match": {"priority": [1]}}]),
    "match attributes empty": with_(policies=[{**ORDERED[1], "match": {"attributes": {}}}]),
    "a match attribute not a string": with_(
        policies=[{**ORDERED[1], "match": {"attributes": {"region": 1}}}]
    ),
    "an ordered policy's calendar among targets": with_(
        policies=[{**ORDERED[1], "targets": {**ORDERED[1]["targets"], "calendar": "24x7"}}]
    ),
    "an ordered policy missing resolution": with_(
        policies=[{"name": "a", "targets": {"response": "1h"}}]
    ),
    "an ordered policy's target not a duration": metrics(targets={"reply": "1h"})
    | {"policies": [{"name": "a", "targets": {"reply": "soon"}}]},
    "empty file": None,
    "a list": [1, 2],
    "no policies": {k: v for k, v in BASE.items() if k != "policies"},
    "unknown top-level key": with_(surprise=1),
    "no policy": with_(policies={}),
    "no tier": with_(policies={"high": {}}),
    "tier not a mapping": with_(policies={"high": {"gold": "15m"}}),
    "missing resolution": with_(policies={"high": {"gold": {"response": "1h"}}}),
    "unknown target key": with_(policies=tier(sla=3)),
    "duration word": with_(policies=tier(response="soon")),
    "duration zero": with_(policies=tier(response=0)),
    "duration zero string": with_(policies=tier(response="0.0m")),
    "negative duration": with_(policies=tier(response="-5m")),
    "duration unit": with_(policies=tier(response="5 minutes")),
    "duration bool": with_(policies=tier(response=True)),
    "duration over 3650 days": with_(policies=tier(response=315360001)),
    "duration infinite": with_(policies=tier(response=float("inf"))),
    "calendar not a name": with_(policies=tier(calendar=[])),
    "calendar null": with_(policies=tier(calendar=None)),
    "pause status unknown": with_(pause_statuses=["waiting"]),
    "pause status that cannot pause": with_(pause_statuses=["resolved"]),
    "pause status not a list": with_(pause_statuses="on_hold"),
    "pause status with a newline": with_(pause_statuses=["on_hold\n"]),
    "empty ladder": with_(escalation=[]),
    "step kind": with_(escalation=step(kind="panic")),
    "step without at_percent": with_(escalation=[{"level": 1, "kind": "breach"}]),
    "step at 0%": with_(escalation=step(at_percent=0)),
    "step over 10000%": with_(escalation=step(at_percent=10001)),
    "level 0": with_(escalation=step(level=0)),
    "level bool": with_(escalation=step(level=True)),
    "level string": with_(escalation=step(level="1")),
    "notify not a list": with_(escalation=step(notify="team")),
    "notify a number": with_(escalation=step(notify=[1])),
    "unknown step key": with_(escalation=step(when="now")),
    "channel without a variable": with_(channels={"team": {}}),
    "channel variable not a name": with_(channels={"team": {"slack_webhook_env": "not a name"}}),
    "channel variable with a newline": with_(channels={"team": {"slack_webhook_env": "HOOK\n"}}),
    "channel webhook file relative": with_(channels={"team": {"slack_webhook_file": "url"}}),
    "channel webhook file not a string": with_(channels={"team": {"slack_webhook_file": 1}}),
    "channel webhook file with a NUL": with_(channels={"team": {"slack_webhook_file": "/a\x00"}}),
    "channel webhook file too long": with_(
        channels={"team": {"slack_webhook_file": "/" + "a" * 4096}}
    ),
    "channel webhook in a variable and a file": with_(
        channels={
            "team": {"slack_webhook_env": "SLACK_WEBHOOK_URL", "slack_webhook_file": "/run/url"}
        }
    ),
    "channel not a mapping": with_(channels={"team": "SLACK_WEBHOOK_URL"}),
    "channel of an unknown type": with_(
        channels={
            **BASE["channels"],
            "team": {"type": "pager", "slack_webhook_env": "SLACK_WEBHOOK_URL"},
        }
    ),
    "quiet hours not a name": with_(
        channels={"team": {"slack_webhook_env": "SLACK_WEBHOOK_URL", "quiet_hours": ["24x7"]}}
    ),
    "quiet_min_level without quiet hours": with_(
        channels={"team": {"slack_webhook_env": "SLACK_WEBHOOK_URL", "quiet_min_level": 2}}
    ),
    "quiet_min_level 0": with_(
        channels={
            "team": {
                "slack_webhook_env": "SLACK_WEBHOOK_URL",
                "quiet_hours": "24x7",
                "quiet_min_level": 0,
            }
        }
    ),
    "quiet_min_level a string": with_(
        channels={
            "team": {
                "slack_webhook_env": "SLACK_WEBHOOK_URL",
                "quiet_hours": "24x7",
                "quiet_min_level": "3",
            }
        }
    ),
    "calendar 24x7 redefined": with_(calendars={**calendar(), "24x7": calendar()["c"]}),
    "calendar without timezone": with_(
        calendars={**calendar(), "c": {"hours": {"mon": "09:00-17:00"}}}
    ),
    "calendar without hours": with_(calendars={**calendar(), "c": {"timezone": "UTC"}}),
    "calendar with no open day": with_(calendars=calendar(hours={})),
    "timezone not a string": with_(calendars=calendar(timezone=1)),
    "unknown weekday": with_(calendars=calendar(hours={"monday": "09:00-17:00"})),
    "hours not a range": with_(calendars=calendar(hours={"mon": "nine to five"})),
    "hours past midnight": with_(calendars=calendar(hours={"mon": "09:00-24:30"})),
    "hours from 24:00": with_(calendars=calendar(hours={"mon": "24:00-24:00"})),
    "hours with a trailing comma": with_(calendars=calendar(hours={"mon": "09:00-17:00,"})),
    "holiday that does not exist": with_(calendars=calendar(holidays=["2026-02-30"])),
    "holiday not a date": with_(calendars=calendar(holidays=["Christmas"])),
    "holiday with a time": with_(calendars=calendar(holidays=["2026-12-25T00:00:00"])),
    "unknown calendar key": with_(calendars=calendar(open=True)),
    "metrics empty": with_(metrics={}, policies={"high": {"gold": {}}}),
    "metrics a list": with_(metrics=[REPLY]),
    "metric unknown trigger": reply(stop=["agent_replied"]),
    "metric unknown status": reply(stop=["status:waiting"]),
    "metric trigger not a string": reply(start=[3]),
    "metric pause not a status": reply(pause=["agent_reply"]),
    "metric that can never stop": reply(stop=[]),
    "metric stopped only by created": reply(stop=["created", "created"]),
    "metric never started": reply(start=[]),
    "metric without start": metrics(reply={"stop": ["agent_reply"]}),
    "metric resume on each_start": reply(resume=["reopened"]),
    "metric empty resume on each_start": reply(resume=[]),
    "metric cycles unknown": reply(cycles="always"),
    "metric unknown key": reply(restart=["created"]),
    "metric empty ladder": reply(escalation=[]),
    "metric ladder step kind": reply(escalation=step(kind="panic")),
    "metric name not an identifier": metrics(targets={}, **{"Reply-Time": REPLY}),
    "metric name with a newline": metrics(targets={}, **{"reply\n": REPLY}),
    "metric named calendar": metrics(targets={}, calendar=REPLY),
    "metric target not a duration": metrics(targets={"reply": "soon"}),
    "metric calendar not a name": metrics(targets={"reply": "1h", "calendar": 5}),
    "part one's targets missing without metrics": with_(policies={"high": {"gold": {}}}),
}


@pytest.mark.parametrize("doc", INVALID.values(), ids=INVALID.keys())
def test_invalid_configs_are_refused_by_both(doc: object) -> None:
    text = yaml.safe_dump(doc)
    with pytest.raises(ConfigError):
        parse_config(text)
    try:
        view = json_view(yaml.safe_load(text))
    except ValueError:
        return  # not expressible in JSON at all (infinity): the loader alone refuses it
    assert schema_errors(view) != []


ONLY_THE_LOADER = {
    "a policy names a calendar that is not defined": with_(policies=tier(calendar="mars")),
    "a step notifies a channel that is not defined": with_(escalation=step(notify=["pager"])),
    "a channel's quiet hours name a calendar that is not defined": with_(
        channels={"team": {"slack_webhook_env": "SLACK_WEBHOOK_URL", "quiet_hours": "night"}}
    ),
    "the ladder does not ascend": with_(
        escalation=[
            {"at_percent": 90, "level": 2, "kind": "warning"},
            {"at_percent": 80, "level": 3, "kind": "breach"},
        ]
    ),
    "no such time zone": with_(calendars=calendar(timezone="Mars/Olympus")),
    "an empty, inverted or overlapping range": with_(
        calendars=calendar(hours={"mon": "09:00-12:00,11:00-13:00"})
    ),
    "a duration string over 3650d": with_(policies=tier(response="3651d")),
    "a level written as a float": with_(escalation=step(level=2.0)),
    "a policy has a target for a metric that is not defined": metrics(
        targets={"reply": "1h", "first_reply": "1h"}
    ),
    "two ordered policies have one name": with_(policies=[ORDERED[1], ORDERED[1]]),
}


def test_each_check_beyond_the_schema_is_shown_by_a_case() -> None:
    assert set(ONLY_THE_LOADER) == set(BEYOND_SCHEMA)


@pytest.mark.parametrize("reason", ONLY_THE_LOADER, ids=ONLY_THE_LOADER.keys())
def test_what_only_the_loader_can_check(reason: str) -> None:
    text = yaml.safe_dump(ONLY_THE_LOADER[reason])
    assert schema_errors(json_view(yaml.safe_load(text))) == []
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert BEYOND_SCHEMA[reason].search(str(info.value))
    assert disagreement(text) is None


def test_a_real_disagreement_is_reported() -> None:
    """The agreement check can fail: a schema looser than the loader (any mapping) and one
    stricter than it (a list) are each caught on an ordinary file."""
    unknown_key = "policies: {high: {gold: {response: 15m, resolution: 4h}}}\nsurprise: 1\n"
    valid = "policies: {high: {gold: {response: 15m, resolution: 4h}}}\n"
    assert disagreement(unknown_key) is None and disagreement(valid) is None
    loose = Draft202012Validator({"type": "object"})
    strict = Draft202012Validator({"type": "array"})
    assert disagreement(valid, loose) is None
    assert "the loader refuses (surprise: unknown key" in str(disagreement(unknown_key, loose))
    assert "the loader accepts, the schema refuses" in str(disagreement(valid, strict))
    assert "the loader accepts" not in str(disagreement("a: [", strict))  # neither is YAML


# --- generated configs: every value mostly valid, sometimes a near miss, so that files both
# accepted and refused (for one reason or several) come out.
def mostly(valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # The near miss is a middle value: Hypothesis draws the ends of a range more often.
    return st.integers(0, 12).flatmap(lambda i: bad if i == 6 else valid)


durations = mostly(
    st.one_of(
        st.integers(1, 315_360_000),
        st.floats(0.001, 315_360_000),
        st.sampled_from(["15m", "4h", " 2d ", "0.5h", "3650d", "87600h", "1.5", "15 m", "30s"]),
    ),
    st.one_of(
        st.integers(-10, 0),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(["0m", "3651d", "1.", "15mm", "-1s", "", "soon", "1e3", "0.0", "1 d s"]),
        st.booleans(),
        st.none(),
        st.just([1]),
    ),
)
channel_names = st.sampled_from(["team", "lead", "manager"])
steps = st.fixed_dictionaries(
    {
        "at_percent": mostly(
            st.one_of(st.integers(1, 10_000), st.floats(0.01, 10_000)),
            st.one_of(st.sampled_from([0, -5, 10_001, "90", None]), st.floats()),
        ),
        "level": mostly(st.integers(1, 1000), st.sampled_from([0, 1001, 2.0, "1", True])),
        "kind": mostly(st.sampled_from(["warning", "breach"]), st.sampled_from(["Breach", "x"])),
    },
    optional={
        "notify": mostly(
            st.lists(channel_names, max_size=3),
            st.one_of(st.just("team"), st.just(["nobody"]), st.just([3])),
        ),
    },
).flatmap(lambda step: mostly(st.just(step), st.just({**step, "when": 1})))
hours = mostly(
    st.sampled_from(["09:00-17:00", "9:00-12:00, 13:00-17:30", "00:00-24:00", "08:30-18:00"]),
    st.sampled_from(
        [
            "17:00-09:00",
            "09:00-09:00",
            "09:00-12:00,11:00-13:00",
            "25:00-26:00",
            "09:00-17:00,",
            "",
            "9-5",
            "24:00-24:00",
            "09:00-24:30",
        ]
    )
    | st.none(),
)
calendars = st.fixed_dictionaries(
    {
        "timezone": mostly(
            st.sampled_from(["UTC", "Europe/Berlin", "Asia/Tokyo"]),
            st.sampled_from(["Mars/Olympus", "", 1]),
        ),
        "hours": mostly(
            st.dictionaries(
                st.sampled_from(["mon", "tue", "sat", "sun"]), hours, min_size=1, max_size=3
            ),
            st.one_of(st.just({}), st.just({"monday": "09:00-17:00"}), st.just("09:00-17:00")),
        ),
    },
    optional={
        "holidays": st.lists(
            mostly(
                st.one_of(st.dates(), st.dates().map(date.isoformat)),
                st.sampled_from(["2026-02-30", "25.12.2026", "x", 2026]),
            ),
            max_size=3,
        )
    },
)
targets = st.fixed_dictionaries(
    {"response": durations, "resolution": durations},
    optional={
        "calendar": mostly(st.sampled_from(["24x7", "office"]), st.sampled_from(["mars", None, 3]))
    },
)
documents = st.fixed_dictionaries(
    {
        "policies": st.dictionaries(
            st.sampled_from(["urgent", "high", "low"]),
            st.dictionaries(st.sampled_from(["gold", "silver"]), targets, min_size=1, max_size=2),
            min_size=1,
            max_size=3,
        ),
        "calendars": mostly(
            st.fixed_dictionaries({"office": calendars}),
            st.one_of(
                st.just({"24x7": {"timezone": "UTC", "hours": {"mon": "09:00-17:00"}}}), st.just([])
            ),
        ),
        "channels": st.dictionaries(
            channel_names,
            mostly(
                st.fixed_dictionaries(
                    {"slack_webhook_env": st.sampled_from(["SLACK_WEBHOOK_URL", "_X1", "HOOK_2"])},
                    optional={
                        "quiet_hours": mostly(
                            st.sampled_from(["office", "24x7"]), st.sampled_from(["night", 3])
                        ),
                        "quiet_min_level": mostly(
                            st.integers(1, 1000), st.sampled_from([0, 1001, 2.0, "1", True])
                        ),
                    },
                ),
                st.sampled_from(
                    [
                        {},
                        {"slack_webhook_env": "9BAD"},
                        {"slack_webhook_env": "A B"},
                        "SLACK_WEBHOOK_URL",
                    ]
                ),
            ),
            max_size=3,
        ),
    },
    optional={
        "escalation": mostly(st.lists(steps, min_size=1, max_size=4), st.just([])),
        "pause_statuses": st.lists(
            mostly(
                st.sampled_from(["on_hold", "In_Progress", "ON_HOLD"]),
                st.sampled_from(["open", "resolved", "waiting", 1]),
            ),
            max_size=2,
        ),
    },
).flatmap(
    # Now and then an unknown top-level key.
    lambda doc: mostly(st.just(doc), st.just({**doc, "surprise": 1}))
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_generated_configs_get_the_same_verdict_from_schema_and_loader(doc: dict[str, Any]) -> None:
    assert_agreement(yaml.safe_dump(doc))


def verdict(doc: dict[str, Any]) -> str:
    text = yaml.safe_dump(doc)
    try:
        parse_config(text)
    except ConfigError:
        try:
            refused_by_schema = schema_errors(json_view(yaml.safe_load(text))) != []
        except ValueError:
            return "not JSON"
        return "refused by both" if refused_by_schema else "refused by the loader only"
    return "accepted"


def test_the_generator_makes_valid_and_invalid_files() -> None:
    """The agreement above means something: the strategy reaches files the loader accepts (with
    several policies), files both refuse, and files only the loader can refuse."""
    # Derandomized: the same examples every run, so that a lucky or unlucky draw cannot decide it.
    quick = settings(phases=[Phase.generate], max_examples=1000, database=None, derandomize=True)
    find(documents, lambda d: verdict(d) == "accepted" and len(d["policies"]) > 1, settings=quick)
    find(documents, lambda d: verdict(d) == "refused by both", settings=quick)
    find(documents, lambda d: verdict(d) == "refused by the loader only", settings=quick)


# --- generated configs with a metrics section: definitions mostly valid, and policies whose
# targets are mostly keyed by the metrics defined.
def rarely(valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # For values a file has many of (triggers): a near miss in one of 30, so that whole files
    # with several metrics are still often valid.
    return st.integers(0, 30).flatmap(lambda i: bad if i == 15 else valid)


triggers = rarely(
    st.sampled_from(TRIGGERS),
    st.sampled_from(["agent_replied", "status:waiting", "Created", "status:", 3, None]),
)
# Most stop lists name a trigger that can stop; ["created"] alone is the near miss.
stop_triggers = rarely(
    st.sampled_from([t for t in TRIGGERS if t != "created"]),
    st.sampled_from(["agent_replied", "status:waiting", 3]),
)
status_triggers = rarely(
    st.sampled_from([t for t in TRIGGERS if t.startswith("status:")]),
    st.sampled_from(["agent_reply", "created", "status:ON_HOLD"]),
)


def _metric_definition(cycles: str) -> st.SearchStrategy[dict[str, Any]]:
    # `resume` for once-metrics; on an each_start one it is a near miss of its own (below).
    optional: dict[str, st.SearchStrategy[Any]] = {
        "pause": st.lists(status_triggers, max_size=2),
        "escalation": mostly(st.lists(steps, min_size=1, max_size=3), st.just([])),
    }
    if cycles == "once":
        optional["resume"] = st.lists(triggers, max_size=2)
    return st.fixed_dictionaries(
        {
            "start": mostly(st.lists(triggers, min_size=1, max_size=3), st.just([])),
            "stop": mostly(
                st.lists(stop_triggers, min_size=1, max_size=3), st.sampled_from([[], ["created"]])
            ),
            "cycles": mostly(st.just(cycles), st.sampled_from(["twice", None])),
        },
        optional=optional,
    )


metric_definitions = (
    st.sampled_from(["once", "each_start"])
    .flatmap(_metric_definition)
    .flatmap(
        lambda d: mostly(
            st.just(d),
            st.sampled_from([{**d, "restart": ["created"]}, {**d, "resume": ["reopened"]}]),
        )
    )
)
metric_names = mostly(
    st.sampled_from(["first_reply", "next_reply", "periodic_update", "resolution", "r2"]),
    st.sampled_from(["Next-Reply", "calendar", "x\n", "9lives"]),
)


def metric_policies(names: list[str]) -> st.SearchStrategy[Any]:
    tier_targets = st.fixed_dictionaries(
        {},
        optional={
            **{name: durations for name in names},
            "calendar": mostly(st.sampled_from(["24x7", "office"]), st.sampled_from(["mars", 3])),
        },
    ).flatmap(lambda t: mostly(st.just(t), st.just({**t, "ghost": "1h"})))
    return st.dictionaries(
        st.sampled_from(["high", "low"]),
        st.dictionaries(st.sampled_from(["gold", "silver"]), tier_targets, min_size=1, max_size=2),
        min_size=1,
        max_size=2,
    )


metric_documents = mostly(
    st.dictionaries(metric_names, metric_definitions, min_size=1, max_size=3), st.just({})
).flatmap(
    lambda defs: st.fixed_dictionaries(
        {
            "metrics": st.just(defs),
            "policies": metric_policies(list(defs)),
            "calendars": st.just({"office": {"timezone": "UTC", "hours": {"mon": "09:00-17:00"}}}),
            "channels": st.dictionaries(
                channel_names, st.just({"slack_webhook_env": "SLACK_WEBHOOK_URL"}), max_size=3
            ),
        }
    )
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metric_documents)
def test_generated_metric_configs_get_the_same_verdict_from_schema_and_loader(
    doc: dict[str, Any],
) -> None:
    assert_agreement(yaml.safe_dump(doc))


def test_the_metric_generator_makes_valid_and_invalid_files() -> None:
    """As above, for files with a metrics section: accepted ones with several metrics, ones both
    refuse, and ones only the loader refuses (a target for a metric not defined)."""
    quick = settings(
        phases=[Phase.generate],
        max_examples=1000,
        database=None,
        derandomize=True,
        deadline=None,
    )
    find(
        metric_documents,
        lambda d: verdict(d) == "accepted" and len(d["metrics"]) > 1,
        settings=quick,
    )
    find(metric_documents, lambda d: verdict(d) == "refused by both", settings=quick)
    find(metric_documents, lambda d: verdict(d) == "refused by the loader only", settings=quick)
