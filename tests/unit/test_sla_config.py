"""The SLA config parser: the shape of DESIGN §5 is accepted, and every error names its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from internal.config.sla_config import ConfigError, load_config, parse_config, parse_duration
from internal.sla.model import AlertKind, Status
from support.configs import BASE, config_text

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "sla_config.yaml")
    assert config.targets("high", "gold") is not None
    assert config.ladder.warn_percent == 85


def test_base_test_config_parses_with_targets_and_calendars() -> None:
    config = parse_config(config_text())
    gold = config.targets("high", "gold")
    silver = config.targets("high", "silver")
    assert (
        gold is not None
        and gold.seconds["response"] == 900
        and gold.seconds["resolution"] == 4 * 3600
    )
    assert gold.calendar.name == "24x7"
    assert silver is not None and silver.calendar.name == "emea_office"
    assert [s.level for s in config.ladder.steps] == [1, 2, 3, 4]
    assert config.ladder.steps[2].kind is AlertKind.BREACH
    assert config.pause_statuses == frozenset({Status.ON_HOLD})
    assert config.targets("high", "bronze") is None


def test_version_is_a_hash_of_the_file() -> None:
    assert parse_config(config_text()).version == parse_config(config_text()).version
    assert parse_config(config_text()).version != parse_config(config_text() + "\n# edit").version


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (900, 900),
        ("900", 900),
        ("15m", 900),
        ("4h", 14400),
        ("1d", 86400),
        ("1.5h", 5400),
        ("30s", 30),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value, "k") == seconds


@pytest.mark.parametrize("value", ["soon", "-5m", 0, True, None, "5 minutes", [1]])
def test_bad_durations_name_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^policies\.x\.y\.response: "):
        parse_duration(value, "policies.x.y.response")


def mutate(**changes: object) -> str:
    doc = yaml.safe_load(config_text())
    doc.update(changes)
    return yaml.safe_dump(doc)


BAD_CONFIGS = [
    ("not: [valid", "not valid YAML"),
    (
        mutate(policies={"high": {"gold": {"response": "soon", "resolution": "4h"}}}),
        "policies.high.gold.response",
    ),
    (
        mutate(policies={"high": {"gold": {"response": "1h"}}}),
        "policies.high.gold.resolution: missing",
    ),
    (
        mutate(
            policies={"high": {"gold": {"response": "1h", "resolution": "2h", "calendar": "mars"}}}
        ),
        "policies.high.gold.calendar: unknown calendar 'mars'",
    ),
    (
        mutate(policies={"high": {"gold": {"response": "1h", "resolution": "2h", "sla": 3}}}),
        "policies.high.gold.sla: unknown key",
    ),
    (mutate(policies={}), "policies: at least one policy"),
    (mutate(policies={"high": {}}), "policies.high: no customer tiers"),
    (mutate(pause_statuses=["waiting"]), "pause_statuses[0]: unknown status 'waiting'"),
    (mutate(pause_statuses=["resolved"]), "pause_statuses[0]: 'resolved' cannot pause"),
    (mutate(escalation=[]), "escalation: at least one step"),
    (mutate(escalation=[{"at_percent": 100, "level": 1, "kind": "panic"}]), "escalation[0].kind"),
    (mutate(escalation=[{"level": 1, "kind": "breach"}]), "escalation[0].at_percent: missing"),
    (
        mutate(
            escalation=[
                {"at_percent": 90, "level": 2, "kind": "warning"},
                {"at_percent": 80, "level": 3, "kind": "breach"},
            ]
        ),
        "escalation[1]: steps must ascend",
    ),
    (
        mutate(escalation=[{"at_percent": 90, "level": 1, "kind": "warning", "notify": ["pager"]}]),
        "escalation[0].notify: unknown channel 'pager'",
    ),
    (
        mutate(channels={"team": {"slack_webhook_env": "not a name"}}),
        "channels.team.slack_webhook_env",
    ),
    (
        mutate(calendars={"c": {"timezone": "Mars/Olympus", "hours": {"mon": "09:00-17:00"}}}),
        "calendars.c: timezone",
    ),
    (mutate(calendars={"c": {"hours": {"mon": "09:00-17:00"}}}), "calendars.c.timezone: missing"),
    (
        mutate(calendars={"c": {"timezone": "UTC", "hours": {"mon": "17:00-09:00"}}}),
        "calendars.c: hours.mon",
    ),
    (mutate(surprise=1), "surprise: unknown key"),
    (
        mutate(channels={"team": {"type": "pager", "slack_webhook_env": "SLACK_WEBHOOK_URL"}}),
        "channels.team.type: expected one of slack, got 'pager'",
    ),
]


def test_a_channel_is_a_slack_webhook_unless_it_says_otherwise() -> None:
    """`type` defaults to slack, the one notifier kind there is; naming it changes nothing."""
    channels = yaml.safe_load(config_text())["channels"]
    implicit = parse_config(mutate(channels={**channels, "team": {"slack_webhook_env": "HOOK"}}))
    explicit = parse_config(
        mutate(channels={**channels, "team": {"type": "slack", "slack_webhook_env": "HOOK"}})
    )
    assert implicit.channels["team"].type == explicit.channels["team"].type == "slack"
    assert explicit.channels["team"].slack_webhook_env == "HOOK"


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_invalid_configs_are_rejected_with_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_default_ladder_when_escalation_is_omitted() -> None:
    doc = dict(BASE)
    del doc["escalation"]
    config = parse_config(yaml.safe_dump(doc))
    assert [(s.at_percent, s.level, s.kind.value) for s in config.ladder.steps] == [
        (85, 1, "warning"),
        (95, 2, "warning"),
        (100, 3, "breach"),
        (150, 4, "breach"),
    ]
    assert all(s.notify == ("team",) for s in config.ladder.steps)
