"""Clock arithmetic on explicit timestamps, and properties that must hold for any history."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.sla.business_calendar import BusinessCalendar
from internal.sla.calendar import ALWAYS_OPEN, Calendar
from internal.sla.clock_definition import resolution_clock, response_clock
from internal.sla.clocks import (
    Change,
    Clock,
    Interval,
    sort_changes,
    state_at,
)
from internal.sla.ladder import Ladder, Step, next_check_at, warn_at
from internal.sla.model import AlertKind, ClockKind, Mode, State, Status
from internal.sla.policy import Rules, Targets
from internal.sla.ticket_sla import FAR_FUTURE, ClockSla, Event, TicketSla, compute_ticket_sla

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PAUSE = frozenset({Status.ON_HOLD})
LADDER = Ladder(
    (
        Step(85, 1, AlertKind.WARNING),
        Step(95, 2, AlertKind.WARNING),
        Step(100, 3, AlertKind.BREACH),
        Step(150, 4, AlertKind.BREACH),
    )
)
RULES = Rules(LADDER, PAUSE, "v1")
TARGETS = Targets({"response": 900, "resolution": 4 * 3600}, calendar=ALWAYS_OPEN)
# Office hours with a lunch break, in a zone whose offset is not whole hours.
OFFICE = BusinessCalendar(
    "office", "Asia/Kolkata", {d: "09:00-12:30,13:15-17:00" for d in ("mon", "tue", "fri")}
)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def changes(*pairs: tuple[float, Status]) -> list[Change]:
    return sort_changes(Change(m(at), status) for at, status in pairs)


def test_response_clock_stops_at_first_status_other_than_open() -> None:
    clock = response_clock(
        T0,
        changes((0, Status.OPEN), (12, Status.ON_HOLD), (20, Status.IN_PROGRESS)),
        900,
        ALWAYS_OPEN,
    )
    assert clock.mode is Mode.STOPPED
    assert clock.elapsed(m(500)) == 12 * 60
    assert clock.due_at is None  # stopped before the target


def test_response_clock_runs_while_open() -> None:
    clock = response_clock(T0, changes((0, Status.OPEN), (5, Status.OPEN)), 900, ALWAYS_OPEN)
    assert clock.mode is Mode.RUNNING
    assert clock.elapsed(m(10)) == 600
    assert clock.due_at == m(15)


def test_resolution_pauses_on_hold_and_resumes() -> None:
    clock = resolution_clock(
        T0,
        changes((0, Status.OPEN), (30, Status.ON_HOLD), (90, Status.IN_PROGRESS)),
        4 * 3600,
        ALWAYS_OPEN,
        PAUSE,
    )
    assert clock.mode is Mode.RUNNING
    assert clock.elapsed(m(100)) == 40 * 60
    assert clock.due_at == m(240 + 60)  # the hour on hold pushes the due time back


def test_paused_clock_does_not_move_and_has_no_future_due() -> None:
    clock = resolution_clock(
        T0, changes((0, Status.OPEN), (30, Status.ON_HOLD)), 4 * 3600, ALWAYS_OPEN, PAUSE
    )
    assert clock.mode is Mode.PAUSED
    assert clock.elapsed(m(31)) == clock.elapsed(m(10_000)) == 30 * 60
    assert clock.due_at is None
    assert clock.anchor_at == m(30)


def test_reopen_carries_elapsed_over() -> None:
    clock = resolution_clock(
        T0,
        changes((0, Status.OPEN), (60, Status.RESOLVED), (180, Status.OPEN)),
        4 * 3600,
        ALWAYS_OPEN,
        PAUSE,
    )
    assert clock.mode is Mode.RUNNING
    assert clock.elapsed(m(240)) == 120 * 60
    assert clock.due_at == m(180 + 180)


def test_breach_time_of_a_clock_that_breached_before_pausing_stays_in_the_past() -> None:
    clock = resolution_clock(
        T0, changes((0, Status.OPEN), (300, Status.ON_HOLD)), 4 * 3600, ALWAYS_OPEN, PAUSE
    )
    assert clock.due_at == m(240)
    assert state_at(clock.mode, clock.due_at, None, m(1000)) is State.BREACHED


def test_event_before_creation_cannot_rewind_the_clock() -> None:
    clock = response_clock(T0, changes((-10, Status.IN_PROGRESS)), 900, ALWAYS_OPEN)
    assert clock.elapsed(m(5)) == 0


def test_states_from_stored_instants() -> None:
    due, warn = m(15), m(12.75)
    assert state_at(Mode.RUNNING, due, warn, m(1)) is State.OK
    assert state_at(Mode.RUNNING, due, warn, m(13)) is State.WARNING
    assert state_at(Mode.RUNNING, due, warn, m(15)) is State.BREACHED
    assert state_at(Mode.STOPPED, None, m(5), m(20)) is State.MET
    assert state_at(Mode.STOPPED, m(10), m(5), m(20)) is State.BREACHED
    assert state_at(Mode.PAUSED, None, m(5), m(20)) is State.WARNING


def test_ladder_fires_only_the_highest_crossed_step() -> None:
    step = LADDER.highest_crossed(target=100, elapsed=120, fired_level=0)
    assert step is not None and step.level == 3
    assert LADDER.highest_crossed(target=100, elapsed=120, fired_level=3) is None
    assert LADDER.highest_crossed(target=100, elapsed=80, fired_level=0) is None


def test_next_check_is_the_next_unfired_step() -> None:
    clock = response_clock(T0, changes((0, Status.OPEN)), 1000, ALWAYS_OPEN)
    assert next_check_at(clock, LADDER, 0) == T0 + timedelta(seconds=850)
    assert next_check_at(clock, LADDER, 2) == T0 + timedelta(seconds=1000)
    assert next_check_at(clock, LADDER, 4) is None


def test_stopped_clock_past_an_unfired_step_is_still_checked() -> None:
    """A ticket resolved late, before any evaluation ran, still gets its breach alert."""
    clock = response_clock(T0, changes((30, Status.IN_PROGRESS)), 900, ALWAYS_OPEN)
    assert next_check_at(clock, LADDER, 0) == T0 + timedelta(seconds=765)
    assert next_check_at(clock, LADDER, 4) is None


def test_ticket_sla_uses_latest_event_fields() -> None:
    history = [
        Event("T", "high", "gold", Status.OPEN, T0, m(0)),
        Event("T", "low", "gold", Status.IN_PROGRESS, T0, m(5)),
    ]
    sla = compute_ticket_sla(history, TARGETS, RULES, {(ClockKind.RESPONSE.value, 1): 1})
    assert sla.latest.priority == "low"
    assert sla.clock("response").fired_level == 1
    assert sla.clock("resolution").fired_level == 0
    assert sla.urgent_at == m(240)
    assert sla.clock("response").state(m(10)) is State.MET
    assert sla.state(m(10)) is State.OK  # the worst clock: resolution is running


# --- properties ---------------------------------------------------------------------------

statuses = st.sampled_from(list(Status))
histories = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10_000), statuses),
    min_size=1,
    max_size=12,
    unique_by=lambda p: p[0],
)


def _events(pairs: list[tuple[int, Status]]) -> list[Event]:
    return [Event("T", "high", "gold", s, T0, m(at)) for at, s in pairs]


@settings(max_examples=200, deadline=None)
@given(histories, st.randoms())
def test_any_arrival_order_gives_the_same_clocks(
    pairs: list[tuple[int, Status]], rnd: object
) -> None:
    events = _events(pairs)
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert compute_ticket_sla(events, TARGETS, RULES, {}) == compute_ticket_sla(
        shuffled, TARGETS, RULES, {}
    )


@settings(max_examples=200, deadline=None)
@given(histories, st.integers(0, 20_000), st.integers(0, 20_000))
def test_elapsed_never_decreases_as_now_grows(
    pairs: list[tuple[int, Status]], a: int, b: int
) -> None:
    early, late = sorted((a, b))
    for clock in (
        response_clock(T0, sort_changes(Change(m(at), s) for at, s in pairs), 900, ALWAYS_OPEN),
        resolution_clock(
            T0, sort_changes(Change(m(at), s) for at, s in pairs), 14_400, ALWAYS_OPEN, PAUSE
        ),
    ):
        assert clock.elapsed(m(early)) <= clock.elapsed(m(late))


@settings(max_examples=200, deadline=None)
@given(histories, st.integers(0, 20_000))
def test_a_clock_not_running_does_not_move(pairs: list[tuple[int, Status]], later: int) -> None:
    changes_ = sort_changes(Change(m(at), s) for at, s in pairs)
    clock = resolution_clock(T0, changes_, 14_400, ALWAYS_OPEN, PAUSE)
    if clock.mode is not Mode.RUNNING:
        start = clock.anchor_at
        assert clock.elapsed(start) == clock.elapsed(start + timedelta(minutes=later))


@settings(max_examples=200, deadline=None)
@given(histories)
def test_due_time_is_where_elapsed_reaches_the_target(pairs: list[tuple[int, Status]]) -> None:
    changes_ = sort_changes(Change(m(at), s) for at, s in pairs)
    clock = resolution_clock(T0, changes_, 14_400, ALWAYS_OPEN, PAUSE)
    # A running clock reaches its target exactly at due_at (if that lies after the last resume).
    if clock.mode is Mode.RUNNING and clock.due_at is not None and clock.due_at >= clock.anchor_at:
        assert abs(clock.elapsed(clock.due_at) - 14_400) < 1e-6


def _walk(clock: Clock, seconds: float) -> datetime | None:
    """crossing_at by its definition: count the runs in order until one reaches `seconds`."""
    counted = 0.0
    for run in clock.runs:
        if run.end is None:
            return clock.calendar.add_working(run.start, seconds - counted)
        span = clock.calendar.working_seconds(run.start, run.end)
        if counted + span >= seconds:
            return clock.calendar.add_working(run.start, seconds - counted)
        counted += span
    return None


@settings(max_examples=300, deadline=None)
@given(
    histories,
    st.sampled_from([ALWAYS_OPEN, OFFICE]),
    st.lists(st.floats(min_value=-10.0, max_value=40_000.0), max_size=4),
)
def test_crossing_times_are_those_of_a_walk_over_the_runs(
    pairs: list[tuple[int, Status]], calendar: Calendar, extra: list[float]
) -> None:
    changes_ = sort_changes(Change(m(at), s) for at, s in pairs)
    for clock in (
        response_clock(T0, changes_, 900, calendar),
        resolution_clock(T0, changes_, 14_400, calendar, PAUSE),
    ):
        assert clock.spans == tuple(
            calendar.working_seconds(r.start, r.end) for r in clock.runs if r.end is not None
        )
        assert clock.anchor_elapsed == sum(clock.spans)
        # The thresholds a ticket asks for, the edges of each run, and arbitrary ones; each asked
        # twice, since answers are remembered.
        thresholds = [clock.target * p / 100.0 for p in (0, 85, 95, 100, 150)] + extra
        counted = 0.0
        for span in clock.spans:
            counted += span
            thresholds += [counted, counted - 1e-6, counted + 1e-6]
        for seconds in thresholds + thresholds:
            assert clock.crossing_at(seconds) == _walk(clock, seconds)
        assert clock.due_at == _walk(clock, clock.target)
        assert warn_at(clock, LADDER) == _walk(clock, clock.target * 0.85)
        for fired in range(6):
            step = next((s for s in LADDER.steps if s.level > fired), None)
            expected = None if step is None else _walk(clock, step.seconds(clock.target))
            assert next_check_at(clock, LADDER, fired) == expected


def test_a_clock_runs_are_counted_at_construction_and_left_out_of_equality() -> None:
    changes_ = changes((0, Status.OPEN), (30, Status.ON_HOLD), (90, Status.RESOLVED))
    clock = resolution_clock(T0, changes_, 14_400, ALWAYS_OPEN, PAUSE)
    assert clock.spans == (1800.0, 0.0) and clock.anchor_elapsed == 1800.0
    assert clock.anchor_at == m(90)
    clock.crossing_at(100.0)  # remembered answers change neither equality nor hash
    again = resolution_clock(T0, changes_, 14_400, ALWAYS_OPEN, PAUSE)
    assert clock == again and hash(clock) == hash(again)
    assert "spans" not in repr(clock)


def test_ladder_next_step_for_any_fired_level() -> None:
    assert LADDER.warn_percent == 85
    for fired in range(-2, 7):
        expected = next((s for s in LADDER.steps if s.level > fired), None)
        assert LADDER.next_step(fired) == expected
    assert Ladder((Step(100, 1, AlertKind.BREACH),)).warn_percent is None


@settings(max_examples=200, deadline=None)
@given(histories, st.sampled_from([ALWAYS_OPEN, OFFICE]))
def test_ticket_instants_are_those_of_its_clocks(
    pairs: list[tuple[int, Status]], calendar: Calendar
) -> None:
    sla = compute_ticket_sla(
        _events(pairs), Targets({"response": 900, "resolution": 14_400}, calendar), RULES, {}
    )
    clocks = sla.clocks
    assert sla.breach_at == min((c.due_at for c in clocks if c.due_at is not None), default=None)
    assert sla.warn_at == min(
        (c.warn_at for c in clocks if c.warn_at is not None and c.mode is not Mode.STOPPED),
        default=None,
    )
    assert sla.active == any(c.mode is not Mode.STOPPED for c in clocks)
    assert sla.urgent_at == min(
        (c.due_at for c in clocks if c.mode is Mode.RUNNING and c.due_at is not None),
        default=FAR_FUTURE,
    )


def test_value_classes_are_frozen_and_compare_by_value() -> None:
    history = [Event("T", "high", "gold", Status.OPEN, T0, m(0))]
    makers = {
        Change: lambda: Change(m(1), Status.OPEN),
        Interval: lambda: Interval(T0, None),
        ClockSla: lambda: compute_ticket_sla(history, TARGETS, RULES, {}).clock("response"),
        TicketSla: lambda: compute_ticket_sla(history, TARGETS, RULES, {}),
    }
    for cls, make in makers.items():
        a, b = make(), make()
        assert type(a) is cls and a == b and hash(a) == hash(b)
        first = dataclasses.fields(cls)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(a, first, None)
        assert dataclasses.replace(a) == a
        assert repr(a).startswith(f"{cls.__name__}({first}=")
    assert repr(Interval(T0, None)) == f"Interval(start={T0!r}, end=None)"
    assert dataclasses.replace(Interval(T0, None), end=m(5)) == Interval(T0, m(5))
    assert Change(m(1), Status.OPEN) != Change(m(1), Status.ON_HOLD)
