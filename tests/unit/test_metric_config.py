"""The `metrics:` section of the SLA config: without it a config means part one's two clocks,
exactly; with it, each metric is parsed into the definition the engine runs, policies' targets
are keyed by metric name, and every invalid definition is refused with the key path named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from internal.config.sla_config import ConfigError, load_config, parse_config, parse_served_config
from internal.sla.metric import Cycles, default_metrics
from internal.sla.metric_run import HistoryEvent, run_metrics
from internal.sla.model import Activity, Mode, Status
from support.config_schema import assert_agreement, json_view, schema_errors
from support.configs import BASE, config_text
from support.env import ROOT

EXAMPLE = ROOT / "examples" / "zendesk-like.yaml"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

NEXT_REPLY = {
    "start": ["customer_reply"],
    "stop": ["agent_reply", "status:resolved"],
    "cycles": "each_start",
}
FIRST_REPLY = {"start": ["created"], "stop": ["agent_reply"]}


def doc(metrics: object, targets: dict[str, object] | None = None, **rest: object) -> str:
    """BASE with a `metrics:` section and one policy of `targets` (default: both metrics)."""
    targets = {"first_reply": "1h", "next_reply": "4h"} if targets is None else targets
    return yaml.safe_dump(
        {**BASE, "metrics": metrics, "policies": {"high": {"gold": targets}}, **rest},
        sort_keys=False,
    )


def test_without_a_metrics_section_the_config_means_part_ones_two_clocks() -> None:
    """The shipped file and the tests' base config: response and resolution, as the built-in
    definitions, resolution pausing in the file's pause statuses; the rules unchanged."""
    for text in ((ROOT / "sla_config.yaml").read_text(), config_text()):
        config = parse_config(text)
        assert not config.defines_metrics
        assert config.metrics == default_metrics(config.pause_statuses)
        assert config.rules.metrics == config.metrics
        for tiers in config.policies.values():
            for targets in tiers.values():
                assert list(targets.seconds) == ["response", "resolution"]


def test_pause_statuses_reach_the_default_resolution_metric() -> None:
    config = parse_config(config_text(pause_statuses=["on_hold", "in_progress"]))
    assert config.metric("resolution").pause == {Status.ON_HOLD, Status.IN_PROGRESS}
    assert config.metric("response").pause == frozenset()


def test_a_metrics_section_is_parsed_into_definitions() -> None:
    config = parse_config(doc({"first_reply": FIRST_REPLY, "next_reply": NEXT_REPLY}))
    assert config.defines_metrics
    first, nxt = config.metrics
    assert (first.name, first.cycles, first.start.names, first.stop.names) == (
        "first_reply",
        Cycles.ONCE,
        ("created",),
        ("agent_reply",),
    )
    assert first.resume.names == ("reopened",)  # the default of a once-metric
    assert (nxt.cycles, nxt.stop.names, nxt.resume.names) == (
        Cycles.EACH_START,
        ("agent_reply", "status:resolved"),
        (),
    )
    assert config.policies["high"]["gold"].seconds == {"first_reply": 3600.0, "next_reply": 14400.0}


def test_a_policy_without_a_target_for_a_metric_gives_no_clock_of_it() -> None:
    config = parse_config(
        doc({"first_reply": FIRST_REPLY, "next_reply": NEXT_REPLY}, {"next_reply": 60})
    )
    targets = config.policies["high"]["gold"]
    assert targets.seconds == {"next_reply": 60.0}
    events = [HistoryEvent(T0 + timedelta(minutes=1), None, Activity.CUSTOMER_REPLY)]
    assert list(run_metrics(config.metrics, T0, events, targets.seconds, targets.calendar)) == [
        "next_reply"
    ]


def test_a_metric_may_have_its_own_ladder() -> None:
    ladder = [{"at_percent": 100, "level": 1, "kind": "breach", "notify": ["lead"]}]
    config = parse_config(
        doc({"first_reply": FIRST_REPLY, "next_reply": {**NEXT_REPLY, "escalation": ladder}})
    )
    assert config.ladder_for("first_reply") is config.ladder
    own = config.ladder_for("next_reply")
    assert [(s.at_percent, s.level, s.notify) for s in own.steps] == [(100.0, 1, ("lead",))]


def test_the_example_config_loads_and_its_metrics_run() -> None:
    """examples/zendesk-like.yaml: the four metrics of the README, valid for the schema too, and
    a short conversation gives the cycles a help desk would count."""
    text = EXAMPLE.read_text()
    assert_agreement(text)
    assert schema_errors(json_view(yaml.safe_load(text))) == []
    config = parse_config(text)
    assert [d.name for d in config.metrics] == [
        "first_reply",
        "next_reply",
        "periodic_update",
        "resolution",
    ]
    assert config.metric("periodic_update").ladder is not None
    gold = config.policies["high"]["gold"]
    assert set(gold.seconds) == {"first_reply", "next_reply", "periodic_update", "resolution"}
    assert "periodic_update" not in config.policies["low"]["silver"].seconds

    def at(minutes: int, activity: Activity, status: Status | None = None) -> HistoryEvent:
        return HistoryEvent(T0 + timedelta(minutes=minutes), status, activity)

    conversation = [
        at(10, Activity.AGENT_REPLY),
        at(20, Activity.CUSTOMER_REPLY),
        at(25, Activity.CUSTOMER_REPLY),
        at(50, Activity.AGENT_REPLY),
        at(60, Activity.NONE, Status.RESOLVED),
    ]
    cycles = run_metrics(config.metrics, T0, conversation, gold.seconds, gold.calendar)
    ends = {
        name: [(c.number, c.clock.runs[0].start, c.clock.runs[-1].end) for c in cs]
        for name, cs in cycles.items()
    }
    m = [T0 + timedelta(minutes=x) for x in range(61)]
    assert ends == {
        "first_reply": [(1, m[0], m[10])],
        "next_reply": [(1, m[20], m[50])],
        "periodic_update": [(1, m[10], m[50]), (2, m[50], m[60])],
        "resolution": [(1, m[0], m[60])],
    }
    assert all(c.clock.mode is Mode.STOPPED for cs in cycles.values() for c in cs)


ERRORS: dict[str, tuple[str, str]] = {
    "unknown trigger": (
        doc(
            {
                "first_reply": FIRST_REPLY,
                "next_reply": {**NEXT_REPLY, "stop": ["status:closed", "agent_replied"]},
            }
        ),
        "metrics.next_reply.stop[1]: unknown trigger 'agent_replied'",
    ),
    "a status that does not exist": (
        doc({"first_reply": {**FIRST_REPLY, "stop": ["status:waiting"]}}, {"first_reply": "1h"}),
        "metrics.first_reply.stop[0]: unknown status 'waiting'"
        " (statuses: open, in_progress, on_hold, resolved, closed)",
    ),
    "a status trigger in upper case": (
        doc({"first_reply": {**FIRST_REPLY, "pause": ["status:ON_HOLD"]}}, {"first_reply": "1h"}),
        "metrics.first_reply.pause[0]: unknown status 'ON_HOLD'"
        " (statuses: open, in_progress, on_hold, resolved, closed)",
    ),
    "a trigger that is not a string": (
        doc({"first_reply": {**FIRST_REPLY, "start": [1]}}, {"first_reply": "1h"}),
        "metrics.first_reply.start[0]: expected a trigger name, got 1",
    ),
    "pause naming a trigger that is not a status": (
        doc(
            {"first_reply": {**FIRST_REPLY, "pause": ["status:on_hold", "customer_reply"]}},
            {"first_reply": "1h"},
        ),
        "metrics.first_reply.pause[1]: pause takes status:<name> triggers only,"
        " got 'customer_reply'",
    ),
    "a metric that can never stop": (
        doc({"first_reply": {**FIRST_REPLY, "stop": []}}, {"first_reply": "1h"}),
        "metrics.first_reply.stop: the metric can never stop: name a trigger other than created",
    ),
    "a metric stopped only by its creation": (
        doc({"first_reply": {**FIRST_REPLY, "stop": ["created"]}}, {"first_reply": "1h"}),
        "metrics.first_reply.stop: the metric can never stop: name a trigger other than created",
    ),
    "a metric that never starts": (
        doc({"first_reply": {**FIRST_REPLY, "start": []}}, {"first_reply": "1h"}),
        "metrics.first_reply.start: at least one trigger is required",
    ),
    "resume on an each_start metric": (
        doc({"next_reply": {**NEXT_REPLY, "resume": ["reopened"]}}, {"next_reply": "1h"}),
        "metrics.next_reply.resume: an each_start metric cannot resume (each start is a new cycle)",
    ),
    "an empty resume on an each_start metric": (
        doc({"next_reply": {**NEXT_REPLY, "resume": []}}, {"next_reply": "1h"}),
        "metrics.next_reply.resume: an each_start metric cannot resume (each start is a new cycle)",
    ),
    "a policy target for an undefined metric": (
        doc({"first_reply": FIRST_REPLY}, {"first_reply": "1h", "next_reply": "4h"}),
        "policies.high.gold.next_reply: a target for a metric that is not defined under metrics",
    ),
    "a part-one target once metrics are defined": (
        doc({"first_reply": FIRST_REPLY}, {"response": "1h", "resolution": "4h"}),
        "policies.high.gold.response: a target for a metric that is not defined under metrics",
    ),
    "a bad target duration": (
        doc({"first_reply": FIRST_REPLY}, {"first_reply": "soon"}),
        "policies.high.gold.first_reply: expected a duration such as 900, '15m' or '4h',"
        " got 'soon'",
    ),
    "a per-metric ladder that does not ascend": (
        doc(
            {
                "first_reply": {
                    **FIRST_REPLY,
                    "escalation": [
                        {"at_percent": 90, "level": 2, "kind": "warning"},
                        {"at_percent": 80, "level": 3, "kind": "breach"},
                    ],
                }
            },
            {"first_reply": "1h"},
        ),
        "metrics.first_reply.escalation[1]: steps must ascend in both at_percent and level",
    ),
    "a per-metric ladder step of an unknown kind": (
        doc(
            {
                "first_reply": {
                    **FIRST_REPLY,
                    "escalation": [{"at_percent": 90, "level": 2, "kind": "panic"}],
                }
            },
            {"first_reply": "1h"},
        ),
        "metrics.first_reply.escalation[0].kind: expected 'warning' or 'breach', got 'panic'",
    ),
    "a per-metric ladder notifying an unknown channel": (
        doc(
            {
                "first_reply": {
                    **FIRST_REPLY,
                    "escalation": [
                        {"at_percent": 100, "level": 1, "kind": "breach", "notify": ["pager"]}
                    ],
                }
            },
            {"first_reply": "1h"},
        ),
        "metrics.first_reply.escalation[0].notify: unknown channel 'pager'",
    ),
    "an empty per-metric ladder": (
        doc({"first_reply": {**FIRST_REPLY, "escalation": []}}, {"first_reply": "1h"}),
        "metrics.first_reply.escalation: at least one step is required",
    ),
    "an unknown cycles value": (
        doc({"first_reply": {**FIRST_REPLY, "cycles": "twice"}}, {"first_reply": "1h"}),
        "metrics.first_reply.cycles: expected 'once' or 'each_start', got 'twice'",
    ),
    "an unknown key in a metric": (
        doc({"first_reply": {**FIRST_REPLY, "restart": ["created"]}}, {"first_reply": "1h"}),
        "metrics.first_reply.restart: unknown key"
        " (allowed: cycles, escalation, pause, resume, start, stop)",
    ),
    "a metric without stop": (
        doc({"first_reply": {"start": ["created"]}}, {"first_reply": "1h"}),
        "metrics.first_reply.stop: missing",
    ),
    "a metric name that is not an identifier": (
        doc({"First-Reply": FIRST_REPLY}, {}),
        "metrics.First-Reply: a metric name is lower-case letters, digits and '_', starting with"
        " a letter, at most 64 characters, and not 'calendar'",
    ),
    "a metric named calendar": (
        doc({"calendar": FIRST_REPLY}, {}),
        "metrics.calendar: a metric name is lower-case letters, digits and '_', starting with"
        " a letter, at most 64 characters, and not 'calendar'",
    ),
    "an empty metrics section": (
        doc({}, {}),
        "metrics: at least one metric is required (or leave the section out)",
    ),
    "a metrics section that is a list": (
        doc([FIRST_REPLY], {}),
        "metrics: expected a mapping, got list",
    ),
}


@pytest.mark.parametrize("case", ERRORS, ids=ERRORS.keys())
def test_invalid_metric_configs_are_refused_naming_the_key(case: str) -> None:
    """Each error names the key path, so that the log line is enough to fix the file; the
    schema refuses the same file, or the check is one only the loader can make."""
    text, message = ERRORS[case]
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == message
    assert_agreement(text)


def _valid(metrics: dict[str, Any], targets: dict[str, Any]) -> None:
    text = doc(metrics, targets)
    parse_config(text)
    assert schema_errors(json_view(yaml.safe_load(text))) == []


def test_edge_cases_both_accept() -> None:
    """A once metric with an explicit empty resume, a tier with no targets but a calendar, a
    metric named like a part-one clock, cycles left out (once)."""
    _valid({"first_reply": {**FIRST_REPLY, "resume": []}}, {"first_reply": "1h"})
    _valid({"first_reply": FIRST_REPLY}, {"calendar": "emea_office"})
    _valid({"response": {"start": ["created"], "stop": ["status:in_progress"]}}, {"response": 60})
    config = parse_config(doc({"x": {"start": ["reopened"], "stop": ["reopened"]}}, {"x": 9}))
    assert config.metric("x").cycles is Cycles.ONCE


def test_a_serving_process_loads_a_metrics_section(tmp_path: Path) -> None:
    """A process loading the example (at start or on reload) serves its metrics, as parsed; a
    file without the section loads as before."""
    served, parsed = parse_served_config(EXAMPLE.read_text()), parse_config(EXAMPLE.read_text())
    assert (served.version, served.metrics) == (parsed.version, parsed.metrics)
    path = tmp_path / "sla.yaml"
    path.write_text(EXAMPLE.read_text())
    loaded = load_config(path)
    assert loaded.defines_metrics and loaded.metrics == parse_config(EXAMPLE.read_text()).metrics
    path.write_text(config_text())
    assert load_config(path).version == parse_config(config_text()).version
