"""A stored clock (internal/sla/stored_clock.py) read back at any `now`: the same answers as the
clock it was stored from, and, on a calendar the config no longer defines, answers that are
never ahead of the true ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.sla.business_calendar import BusinessCalendar
from internal.sla.calendar import ALWAYS_OPEN, Calendar
from internal.sla.clock_definition import resolution_clock
from internal.sla.clocks import Change, Clock, sort_changes
from internal.sla.ladder import Ladder, Step, next_check_at, warn_at
from internal.sla.model import AlertKind, Mode, Status
from internal.sla.stored_clock import StoredClock

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LADDER = Ladder(
    (
        Step(85, 1, AlertKind.WARNING),
        Step(95, 2, AlertKind.WARNING),
        Step(100, 3, AlertKind.BREACH),
        Step(150, 4, AlertKind.BREACH),
    )
)
OFFICE_ZONE = ZoneInfo("Asia/Kolkata")
OFFICE = BusinessCalendar(
    "office", "Asia/Kolkata", {d: "09:00-12:30,13:15-17:00" for d in ("mon", "tue", "fri")}
)
CALENDARS: dict[str, Calendar] = {"24x7": ALWAYS_OPEN, "office": OFFICE}
STATUSES = [Status.OPEN, Status.IN_PROGRESS, Status.ON_HOLD, Status.RESOLVED]


def stored(clock: Clock, fired_level: int, calendars: dict[str, Calendar]) -> StoredClock:
    """What ingest writes of `clock`, read back through a row as the store returns it."""
    row = {
        "target_s": clock.target,
        "calendar": clock.calendar.name,
        "mode": clock.mode.value,
        "anchor_at": clock.anchor_at,
        "anchor_elapsed": clock.anchor_elapsed,
        "due_at": clock.due_at,
        "warn_at": warn_at(clock, LADDER),
        "fired_level": fired_level,
    }
    return StoredClock.from_row(row, calendars)


histories = st.lists(
    st.tuples(st.integers(0, 6 * 24 * 60), st.sampled_from(STATUSES)), min_size=0, max_size=5
)


def build(history: list[tuple[int, Status]], target_minutes: int, calendar: Calendar) -> Clock:
    changes = sort_changes(Change(T0 + timedelta(minutes=at), s) for at, s in history)
    return resolution_clock(
        T0, changes, target_minutes * 60.0, calendar, frozenset({Status.ON_HOLD})
    )


@settings(max_examples=200, deadline=None)
@given(
    histories,
    st.integers(1, 3000),
    st.sampled_from(["24x7", "office"]),
    st.integers(0, 4),
    st.integers(0, 10 * 24 * 60),
)
def test_a_stored_clock_answers_as_the_clock_it_was_stored_from(
    history: list[tuple[int, Status]], target: int, calendar: str, fired: int, at: int
) -> None:
    """Elapsed time, state and the next check of the stored form equal those of the clock
    worked out from the history, at any instant after its last change."""
    clock = build(history, target, CALENDARS[calendar])
    now = max(clock.anchor_at, T0 + timedelta(minutes=at))
    s = stored(clock, fired, CALENDARS)
    assert s.calendar is CALENDARS[calendar]
    assert abs(s.elapsed(now) - clock.elapsed(now)) < 1e-6
    assert s.remaining(now) == s.target - s.elapsed(now)
    outcome = s.evaluate(LADDER, now)
    if outcome.step is None:
        assert outcome.fired_level == fired
        if clock.mode is Mode.RUNNING:
            assert outcome.next_check_at == next_check_at(clock, LADDER, fired)
    else:
        assert outcome.step.level > fired
        assert clock.elapsed(now) >= outcome.step.seconds(clock.target)


@settings(max_examples=200, deadline=None)
@given(histories, st.integers(1, 3000), st.integers(0, 4), st.integers(0, 10 * 24 * 60))
def test_on_a_calendar_the_config_dropped_nothing_is_ahead_of_the_truth(
    history: list[tuple[int, Status]], target: int, fired: int, at: int
) -> None:
    """Without its calendar a clock's elapsed time is never more than the true one (so no step
    fires early), the breach comes at the stored due time, and its next check is never before
    the true crossing of the next step."""
    clock = build(history, target, OFFICE)
    now = max(clock.anchor_at, T0 + timedelta(minutes=at))
    s = stored(clock, fired, {"24x7": ALWAYS_OPEN})
    assert s.calendar is None and s.calendar_name == "office"
    assert s.elapsed(now) <= clock.elapsed(now) + 1e-6
    if clock.mode is Mode.RUNNING and clock.anchor_elapsed < clock.target:
        assert s.crossing_at(clock.target) == clock.due_at
    outcome = s.evaluate(LADDER, now)
    if outcome.step is not None:
        assert clock.elapsed(now) + 1e-6 >= outcome.step.seconds(clock.target)
    true_next = next_check_at(clock, LADDER, outcome.fired_level)
    if outcome.next_check_at is not None:
        assert true_next is not None and outcome.next_check_at >= true_next - timedelta(
            microseconds=1
        )


def test_without_its_calendar_a_clock_counts_back_from_its_due_time() -> None:
    """30 office minutes, 10 of them left at 16:50 on a Friday: Monday's due time holds, the 85%
    warning is 4.5 minutes before it, the 150% breach is not known."""
    friday = datetime(2026, 11, 6, 16, 50, tzinfo=OFFICE_ZONE)
    clock = resolution_clock(friday, [], 30 * 60.0, OFFICE, frozenset())
    due = clock.due_at
    assert due == datetime(2026, 11, 9, 9, 20, tzinfo=OFFICE_ZONE)
    s = stored(clock, 0, {})
    assert s.elapsed(friday + timedelta(hours=1)) == 0.0
    assert s.remaining(due - timedelta(minutes=10)) == 600.0
    assert s.crossing_at(0.85 * 30 * 60) == due - timedelta(minutes=4.5)
    assert s.crossing_at(1.5 * 30 * 60) is None
    assert s.evaluate(LADDER, due).step == LADDER.steps[2]
    assert s.evaluate(LADDER, due).next_check_at is None
