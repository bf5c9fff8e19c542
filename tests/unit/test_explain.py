"""The full view's timelines from stored rows (internal/usecase/explain.py): each stored clock
gets the timelines of its metric's cycles on its own stored calendar, by (metric, cycle), from
the stored history (a NULL status left unchanged, activities read back); a clock whose metric or
calendar the config no longer defines gets none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from internal.config.sla_config import parse_config
from internal.store.query_repo import TicketDetail
from internal.store.rows import ClockRow, HistoryRow, TicketRow
from internal.usecase.explain import clock_timelines
from support.configs import config_text

CREATED = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # Friday 16:00 in Berlin
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def hours(n: float) -> datetime:
    return CREATED + timedelta(hours=n)


def clock_row(metric: str, calendar: str) -> ClockRow:
    return ClockRow(metric, 1, 3600.0, calendar, "running", CREATED, 0.0, None, None, 0)


def history_row(at: datetime, status: str | None, activity: str | None = None) -> HistoryRow:
    return HistoryRow(status, "high", "silver", at, at, activity, None, None, None, None)


def detail(clocks: list[ClockRow], history: list[HistoryRow]) -> TicketDetail:
    ticket = TicketRow("T-1", "high", "silver", "open", CREATED, history[-1].updated_at, 0, "v")
    return TicketDetail(ticket, clocks, history, [])


def test_each_stored_clock_is_explained_on_its_own_calendar() -> None:
    """response on emea_office is split by office hours; resolution on 24x7 is not; an event
    whose status is NULL (an activity) leaves the status as it was."""
    config = parse_config(config_text())
    history = [
        history_row(CREATED, "open"),
        history_row(hours(0.5), None, "customer_reply"),
        history_row(hours(66), "on_hold"),  # Monday 09:00 UTC
    ]
    rows = [clock_row("response", "emea_office"), clock_row("resolution", "24x7")]
    timelines = clock_timelines(config, detail(rows, history), NOW)
    assert sorted(timelines) == [("resolution", 1), ("response", 1)]
    response = [(s.kind.value, s.start, s.cause.trigger) for s in timelines[("response", 1)]]
    assert response == [
        ("running", CREATED, "created"),
        ("outside_hours", hours(1), "calendar"),
        ("running", hours(65), "calendar"),  # Monday 08:00 UTC, 09:00 in Berlin
        ("stopped", hours(66), "status:on_hold"),
    ]
    resolution = [(s.kind.value, s.start, s.cause.trigger) for s in timelines[("resolution", 1)]]
    assert resolution == [("running", CREATED, "created"), ("paused", hours(66), "status:on_hold")]


def test_a_clock_the_config_cannot_count_has_no_timeline() -> None:
    """An unknown calendar name or a metric the config does not define: no timeline, rather
    than one counted on another calendar or by other rules."""
    config = parse_config(config_text())
    rows = [clock_row("response", "gone_office"), clock_row("triage", "24x7")]
    assert clock_timelines(config, detail(rows, [history_row(CREATED, "open")]), NOW) == {}
