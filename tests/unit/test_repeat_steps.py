"""Ladder steps that repeat (DESIGN §11): how the config says it, what it refuses (naming the
key), and when the repeat after a due one comes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from internal.config.sla_config import ConfigError, parse_config
from internal.usecase.alert_changes import next_due_after
from support.config_schema import assert_agreement
from support.configs import config_text

BREACH = {"at_percent": 100, "level": 3, "kind": "breach", "notify": ["lead"]}


def with_breach(**keys: object) -> str:
    doc = yaml.safe_load(config_text())
    doc["escalation"] = [{**BREACH, **keys}]
    return yaml.safe_dump(doc)


def test_a_step_repeats_every_duration_at_most_repeat_max_times() -> None:
    config = parse_config(with_breach(repeat_every="30m", repeat_max=4))
    [step] = config.ladder.steps
    assert (step.repeat_every, step.repeat_max) == (1800.0, 4)


def test_a_step_without_the_keys_never_repeats() -> None:
    [step] = parse_config(with_breach()).ladder.steps
    assert (step.repeat_every, step.repeat_max) == (None, None)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"repeat_every": "30m"}, "escalation[0].repeat_max: missing"),
        ({"repeat_max": 2}, "escalation[0].repeat_every: missing"),
        ({"repeat_every": "soon", "repeat_max": 2}, "escalation[0].repeat_every: expected"),
        ({"repeat_every": 0, "repeat_max": 2}, "escalation[0].repeat_every: a duration must"),
        ({"repeat_every": "5m", "repeat_max": 0}, "escalation[0].repeat_max: expected"),
        ({"repeat_every": "5m", "repeat_max": 101}, "escalation[0].repeat_max: expected"),
        ({"repeat_every": "5m", "repeat_max": True}, "escalation[0].repeat_max: expected"),
        ({"repeat_every": "5m", "repeat_max": "3"}, "escalation[0].repeat_max: expected"),
    ],
)
def test_bad_repeat_settings_are_refused_naming_the_key(
    keys: dict[str, object], message: str
) -> None:
    text = with_breach(**keys)
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value).startswith(message)
    # The JSON Schema refuses the same files (it cannot say everything the loader says, but
    # these it can).
    assert_agreement(text)


T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_the_next_repeat_is_every_after_the_due_one_when_on_time() -> None:
    assert next_due_after(600, T, T) == T + timedelta(minutes=10)
    assert next_due_after(600, T, T + timedelta(minutes=9)) == T + timedelta(minutes=10)


def test_a_late_evaluation_schedules_from_now_so_that_repeats_do_not_burst() -> None:
    late = T + timedelta(minutes=25)
    assert next_due_after(600, T, late) == late + timedelta(minutes=10)
    # Exactly at the following instant: that one is past, the next is from now.
    assert next_due_after(600, T, T + timedelta(minutes=10)) == T + timedelta(minutes=20)
