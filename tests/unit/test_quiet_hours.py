"""Quiet hours of a channel (internal/sla/quiet_hours.py) and their config keys: when a channel is
quiet, when its quiet period ends, which levels pass, with explicit timestamps (weekends,
holidays, both DST changes); and the config errors that name `quiet_hours` and
`quiet_min_level`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from internal.config.sla_config import ConfigError, parse_config
from internal.sla.business_calendar import BusinessCalendar
from internal.sla.calendar import ALWAYS_OPEN
from internal.sla.quiet_hours import QuietHours, held_until, next_opening, quiet_until
from support.configs import BASE

BERLIN = ZoneInfo("Europe/Berlin")
# Speaking hours of a Berlin team: weekdays 09:00-18:00, with a lunch break on Fridays, closed
# on Christmas Day (a Friday in 2026).
OFFICE = BusinessCalendar(
    "office",
    "Europe/Berlin",
    {
        **{d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu")},
        "fri": "09:00-12:00,13:00-18:00",
    },
    ["2026-12-25"],
)
QUIET = QuietHours(OFFICE, min_level=3)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def test_open_during_speaking_hours() -> None:
    """Inside the calendar's hours the channel is not quiet, to the microsecond of opening."""
    assert quiet_until(QUIET, berlin(2026, 12, 2, 10, 0)) is None  # a Wednesday
    assert quiet_until(QUIET, berlin(2026, 12, 2, 9, 0)) is None
    assert quiet_until(QUIET, berlin(2026, 12, 2, 17, 59, 59)) is None


def test_quiet_at_night_until_the_next_morning() -> None:
    """From closing (the end of a range is closed) until the next opening instant."""
    assert quiet_until(QUIET, berlin(2026, 12, 2, 18, 0)) == berlin(2026, 12, 3, 9, 0)
    assert quiet_until(QUIET, berlin(2026, 12, 3, 3, 0)) == berlin(2026, 12, 3, 9, 0)
    just_before = berlin(2026, 12, 3, 9, 0) - timedelta(microseconds=1)
    assert quiet_until(QUIET, just_before) == berlin(2026, 12, 3, 9, 0)


def test_a_break_between_ranges_is_quiet_too() -> None:
    assert quiet_until(QUIET, berlin(2026, 12, 4, 12, 30)) == berlin(2026, 12, 4, 13, 0)


def test_quiet_over_the_weekend_until_monday() -> None:
    assert quiet_until(QUIET, berlin(2026, 12, 4, 19, 0)) == berlin(2026, 12, 7, 9, 0)
    assert quiet_until(QUIET, berlin(2026, 12, 6, 12, 0)) == berlin(2026, 12, 7, 9, 0)


def test_a_holiday_is_quiet_all_day_and_joins_the_weekend() -> None:
    """Christmas Day (Friday) is closed: quiet from Thursday evening to Monday morning."""
    assert quiet_until(QUIET, berlin(2026, 12, 25, 11, 0)) == berlin(2026, 12, 28, 9, 0)
    assert quiet_until(QUIET, berlin(2026, 12, 24, 18, 30)) == berlin(2026, 12, 28, 9, 0)


def test_the_end_of_quiet_hours_across_spring_forward() -> None:
    """Berlin goes from CET (+1) to CEST (+2) on Sunday 29 March 2026: Friday's evening quiet
    ends at Monday 09:00 CEST, 07:00 UTC (an hour earlier in UTC than the week before)."""
    friday_evening = datetime(2026, 3, 27, 17, 0, tzinfo=UTC)  # 18:00 CET
    assert quiet_until(QUIET, friday_evening) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    week_before = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
    assert quiet_until(QUIET, week_before) == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)


def test_the_end_of_quiet_hours_across_fall_back() -> None:
    """Back to CET on Sunday 25 October 2026: Monday 09:00 is 08:00 UTC again."""
    friday_evening = datetime(2026, 10, 23, 16, 0, tzinfo=UTC)  # 18:00 CEST
    assert quiet_until(QUIET, friday_evening) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


def test_a_night_window_in_a_zone_ahead_of_utc_spans_the_utc_date() -> None:
    """Tokyo speaking hours 08:00-20:00: quiet at 21:00 JST ends at 08:00 JST, 23:00 UTC of the
    previous UTC date."""
    tokyo = QuietHours(BusinessCalendar("jp", "Asia/Tokyo", {"tue": "08:00-20:00"}))
    monday_21_jst = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert quiet_until(tokyo, monday_21_jst) == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)


def test_now_in_another_zone_is_read_as_its_instant() -> None:
    at = datetime(2026, 12, 2, 18, 30, tzinfo=BERLIN)
    assert quiet_until(QUIET, at) == berlin(2026, 12, 3, 9, 0)


def test_twenty_four_seven_and_no_quiet_hours_are_never_quiet() -> None:
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    assert quiet_until(QuietHours(ALWAYS_OPEN), now) is None
    assert quiet_until(None, now) is None
    assert next_opening(ALWAYS_OPEN, now) == now


def test_levels_at_or_above_the_minimum_pass_the_rest_wait() -> None:
    night = berlin(2026, 12, 2, 23, 0)
    morning = berlin(2026, 12, 3, 9, 0)
    assert held_until(QUIET, 1, night) == morning
    assert held_until(QUIET, 2, night) == morning
    assert held_until(QUIET, 3, night) is None
    assert held_until(QUIET, 4, night) is None
    assert held_until(QUIET, 1, berlin(2026, 12, 3, 10, 0)) is None  # speaking hours


def test_without_a_minimum_level_nothing_passes() -> None:
    night = berlin(2026, 12, 2, 23, 0)
    assert held_until(QuietHours(OFFICE), 1000, night) == berlin(2026, 12, 3, 9, 0)


# --- the config keys


def channels_config(**team: object) -> str:
    doc = dict(BASE)
    doc["channels"] = {
        **BASE["channels"],  # type: ignore[dict-item]
        "team": {"slack_webhook_env": "SLACK_WEBHOOK_URL", **team},
    }
    return yaml.safe_dump(doc)


def test_the_config_gives_a_channel_its_quiet_hours() -> None:
    """quiet_hours names the calendar itself; quiet_min_level is optional (None: all wait)."""
    config = parse_config(channels_config(quiet_hours="emea_office", quiet_min_level=3))
    quiet = config.channels["team"].quiet
    assert quiet is not None and quiet.min_level == 3
    assert quiet.calendar is config.calendars["emea_office"]
    assert config.channels["lead"].quiet is None
    everything_waits = parse_config(channels_config(quiet_hours="emea_office"))
    quiet = everything_waits.channels["team"].quiet
    assert quiet is not None and quiet.min_level is None


@pytest.mark.parametrize(
    ("team", "message"),
    [
        ({"quiet_hours": "night"}, "channels.team.quiet_hours: unknown calendar 'night'"),
        ({"quiet_hours": 5}, "channels.team.quiet_hours: unknown calendar 5"),
        (
            {"quiet_min_level": 2},
            "channels.team.quiet_min_level: needs quiet_hours",
        ),
        (
            {"quiet_hours": "24x7", "quiet_min_level": 0},
            "channels.team.quiet_min_level: expected an integer from 1 to 1000, got 0",
        ),
        (
            {"quiet_hours": "24x7", "quiet_min_level": True},
            "channels.team.quiet_min_level: expected an integer from 1 to 1000, got True",
        ),
        (
            {"quiet_hours": "24x7", "quiet_min_level": "3"},
            "channels.team.quiet_min_level: expected an integer from 1 to 1000, got '3'",
        ),
        ({"quiet_hour": "24x7"}, "channels.team.quiet_hour: unknown key"),
    ],
)
def test_bad_quiet_keys_are_refused_naming_the_key(team: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(channels_config(**team))
    assert str(info.value).startswith(message), str(info.value)
