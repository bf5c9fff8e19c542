"""SLAWATCH_RETENTION_DAYS (internal/config/settings.py) and how often the scheduler enqueues a
retention run (internal/worker/scheduler.py): pure parsing and arithmetic."""

from __future__ import annotations

import pytest

from internal.config.settings import Settings, SettingsError
from internal.worker.scheduler import RETENTION_EVERY_SECONDS, retention_due


@pytest.mark.parametrize(
    ("raw", "days"), [(None, 0), ("", 0), ("0", 0), ("30", 30), (" 365 ", 365)]
)
def test_retention_is_off_unless_set_to_a_number_of_days(raw: str | None, days: int) -> None:
    """Unset, empty or 0 keeps every ticket for ever (the default); a whole number is days."""
    env = {} if raw is None else {"SLAWATCH_RETENTION_DAYS": raw}
    assert Settings.from_env(env).retention_days == days


@pytest.mark.parametrize("raw", ["-1", "1.5", "30d", "forever", "nan", "400000"])
def test_a_bad_retention_is_refused_naming_the_variable(raw: str) -> None:
    """Negative, fractional, with a unit, not a number or beyond 365,000 days: a SettingsError
    whose message starts with the variable's name."""
    with pytest.raises(SettingsError, match=r"^SLAWATCH_RETENTION_DAYS: "):
        Settings.from_env({"SLAWATCH_RETENTION_DAYS": raw})


def test_retention_runs_once_per_ten_minutes_of_five_second_ticks() -> None:
    assert [tick for tick in range(1, 1 + 3 * 120) if retention_due(tick, 5)] == [120, 240, 360]
    assert RETENTION_EVERY_SECONDS == 600


def test_ticks_as_long_as_the_retention_period_run_it_every_time() -> None:
    assert all(retention_due(tick, 600) for tick in range(10))
    assert all(retention_due(tick, 3600) for tick in range(10))
