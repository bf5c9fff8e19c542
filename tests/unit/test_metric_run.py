"""Metrics run over a ticket's history (internal/sla/metric_run.py): the metric shapes of
DESIGN §8 on explicit histories, and properties that must hold for any history: arrival order
does not matter, elapsed time only grows, a paused clock stands still, next-reply cycles open and
close on replies by event time, and the two default definitions are part one's clocks exactly."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.sla.business_calendar import BusinessCalendar
from internal.sla.calendar import ALWAYS_OPEN, Calendar
from internal.sla.clock_definition import RESOLUTION, RESPONSE, ClockDefinition
from internal.sla.clocks import Change, Interval, sort_changes
from internal.sla.ladder import Ladder, Step, next_check_at, warn_at
from internal.sla.metric import (
    TRIGGERS,
    Cycles,
    MetricDefinition,
    Triggers,
    default_metrics,
)
from internal.sla.metric_run import (
    Cycle,
    HistoryEvent,
    current_cycle,
    run_metric,
    run_metrics,
    run_on_timeline,
    timeline,
)
from internal.sla.model import Activity, AlertKind, Mode, State, Status
from support.metric_shapes import FIRST_REPLY, NEXT_REPLY, metric

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
OFFICE = BusinessCalendar(
    "office", "Asia/Kolkata", {d: "09:00-12:30,13:15-17:00" for d in ("mon", "tue", "fri")}
)
LADDER = Ladder((Step(85, 1, AlertKind.WARNING), Step(100, 2, AlertKind.BREACH)))

AGENT, CUSTOMER, NOTE, NONE = (
    Activity.AGENT_REPLY,
    Activity.CUSTOMER_REPLY,
    Activity.INTERNAL_NOTE,
    Activity.NONE,
)


# The four shapes of DESIGN §8 and the example config (first_reply and next_reply are
# support/metric_shapes.py's).
PERIODIC_UPDATE = metric(
    "periodic_update",
    ["agent_reply"],
    ["agent_reply", "status:resolved", "status:closed"],
    cycles=Cycles.EACH_START,
)
RESOLUTION_METRIC = metric(
    "resolution",
    ["created"],
    ["status:resolved", "status:closed"],
    pause=["status:on_hold"],
    resume=["reopened"],
)
SHAPES = (FIRST_REPLY, NEXT_REPLY, PERIODIC_UPDATE, RESOLUTION_METRIC)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ev(minutes: float, status: Status | None = None, activity: Activity = NONE) -> HistoryEvent:
    return HistoryEvent(m(minutes), status, activity)


def spans(cycles: tuple[Cycle, ...]) -> list[tuple[int, list[tuple[float, float | None]]]]:
    """Each cycle's number and runs, in minutes after T0 (None: still running)."""

    def minutes(at: datetime | None) -> float | None:
        return None if at is None else (at - T0).total_seconds() / 60

    return [(c.number, [(minutes(r.start), minutes(r.end)) for r in c.clock.runs]) for c in cycles]


# --- the shapes, on explicit histories


def test_first_reply_runs_from_creation_to_the_first_agent_reply() -> None:
    """A status change or a customer message does not stop first reply; the agent's reply
    does, and a second reply changes nothing."""
    history = [ev(5, Status.IN_PROGRESS), ev(8, activity=CUSTOMER), ev(20, activity=AGENT)]
    cycles = run_metric(FIRST_REPLY, T0, [*history, ev(40, activity=AGENT)], 3600, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(0, 20)])]
    assert cycles[0].clock.mode is Mode.STOPPED
    assert cycles[0].state(LADDER, m(100)) is State.MET


def test_first_reply_pauses_on_hold_and_a_reopen_resumes_it() -> None:
    """On hold stands the clock still; once stopped, a reopen runs the same cycle again."""
    history = [
        ev(10, Status.ON_HOLD),
        ev(30, Status.OPEN),
        ev(40, activity=AGENT),
        ev(50, Status.RESOLVED),
        ev(70, Status.OPEN),
    ]
    cycles = run_metric(FIRST_REPLY, T0, history, 3600, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(0, 10), (30, 40), (70, None)])]
    assert cycles[0].clock.elapsed(m(80)) == (10 + 10 + 10) * 60


def test_next_reply_opens_on_each_customer_message_and_closes_on_the_agent_reply() -> None:
    """Every wait of the customer is its own cycle; the wait starts at the customer's message."""
    history = [
        ev(5, activity=CUSTOMER),
        ev(15, activity=AGENT),
        ev(30, activity=CUSTOMER),
        ev(45, activity=AGENT),
        ev(60, activity=CUSTOMER),
    ]
    cycles = run_metric(NEXT_REPLY, T0, history, 1800, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(5, 15)]), (2, [(30, 45)]), (3, [(60, None)])]
    assert [c.clock.mode for c in cycles] == [Mode.STOPPED, Mode.STOPPED, Mode.RUNNING]
    assert current_cycle(cycles) == cycles[2]
    assert cycles[2].clock.due_at == m(90)


def test_three_customer_messages_before_an_answer_are_one_cycle() -> None:
    """A start while a cycle is open does not restart it: the wait is from the first message."""
    history = [
        ev(5, activity=CUSTOMER),
        ev(10, activity=CUSTOMER),
        ev(12, activity=CUSTOMER),
        ev(20, activity=AGENT),
    ]
    assert spans(run_metric(NEXT_REPLY, T0, history, 1800, ALWAYS_OPEN)) == [(1, [(5, 20)])]


def test_next_reply_has_no_cycle_before_the_customer_writes() -> None:
    """created does not start next reply, and an agent reply with no open wait stops nothing."""
    history = [ev(3, activity=AGENT), ev(5, Status.IN_PROGRESS), ev(9, activity=NOTE)]
    assert run_metric(NEXT_REPLY, T0, history, 1800, ALWAYS_OPEN) == ()


def test_a_reply_stamped_before_the_cycle_started_does_not_close_it() -> None:
    """The agent's reply at minute 5 was written before the customer's message at 10 (and
    arrived after it): it answers nothing, so the wait from 10 is still open."""
    history = [ev(10, activity=CUSTOMER), ev(5, activity=AGENT)]
    assert spans(run_metric(NEXT_REPLY, T0, history, 1800, ALWAYS_OPEN)) == [(1, [(10, None)])]


def test_a_late_agent_reply_is_placed_by_its_event_time() -> None:
    """Customer at 10 and 30 stored first, the agent's reply of 20 arriving last: it closes the
    first wait at 20, and the message of 30 opens a second one."""
    arrival = [ev(10, activity=CUSTOMER), ev(30, activity=CUSTOMER), ev(20, activity=AGENT)]
    cycles = run_metric(NEXT_REPLY, T0, arrival, 1800, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(10, 20)]), (2, [(30, None)])]


def test_next_reply_stops_when_the_ticket_is_resolved() -> None:
    """Resolving stops the open wait; a customer message on a resolved ticket opens a cycle
    that stops at once (a clock cannot run in a stopping status)."""
    history = [ev(5, activity=CUSTOMER), ev(15, Status.RESOLVED), ev(30, activity=CUSTOMER)]
    cycles = run_metric(NEXT_REPLY, T0, history, 1800, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(5, 15)]), (2, [(30, 30)])]
    assert [c.clock.mode for c in cycles] == [Mode.STOPPED, Mode.STOPPED]


def test_periodic_update_restarts_on_every_agent_reply() -> None:
    """start [agent_reply] and stop [agent_reply]: each reply stops the cycle and opens the
    next one at the same instant."""
    history = [ev(10, activity=AGENT), ev(70, activity=AGENT), ev(100, activity=CUSTOMER)]
    cycles = run_metric(PERIODIC_UPDATE, T0, history, 3600, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(10, 70)]), (2, [(70, None)])]
    assert cycles[1].state(LADDER, m(70 + 52)) is State.WARNING  # 85% of an hour: 51 minutes
    assert cycles[1].state(LADDER, m(70 + 60)) is State.BREACHED


def test_the_ladder_arithmetic_applies_to_each_cycle() -> None:
    """Each cycle is a clock of its own: the warning and next check of the second wait are
    timed from that wait's start, whatever the first one did."""
    history = [ev(0, activity=CUSTOMER), ev(100, activity=AGENT), ev(200, activity=CUSTOMER)]
    first, second = run_metric(NEXT_REPLY, T0, history, 3600, ALWAYS_OPEN)
    assert first.clock.due_at == m(60) and first.state(LADDER, m(300)) is State.BREACHED
    assert warn_at(second.clock, LADDER) == m(200 + 51)
    assert next_check_at(second.clock, LADDER, 0) == m(200 + 51)
    assert next_check_at(second.clock, LADDER, 1) == m(200 + 60)
    assert second.state(LADDER, m(250)) is State.OK


def test_resolution_pauses_stops_and_resumes_with_elapsed_carried_over() -> None:
    """The resolution metric written as data gives part one's resolution clock."""
    history = [ev(10, Status.ON_HOLD), ev(20, Status.IN_PROGRESS), ev(30, Status.RESOLVED)]
    history.append(ev(50, Status.OPEN))
    cycles = run_metric(RESOLUTION_METRIC, T0, history, 3600, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(0, 10), (20, 30), (50, None)])]
    assert cycles[0].clock.due_at == m(50 + 40)


def test_an_event_before_creation_counts_at_creation() -> None:
    """An agent reply stamped before the ticket was created answers at once, not before."""
    cycles = run_metric(FIRST_REPLY, T0, [ev(-5, activity=AGENT)], 3600, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(0, 0)])]


def test_a_metric_without_a_target_gives_no_cycles() -> None:
    """run_metrics leaves out a metric the ticket's policy has no target for."""
    out = run_metrics(SHAPES, T0, [ev(5, activity=CUSTOMER)], {"next_reply": 60.0}, ALWAYS_OPEN)
    assert list(out) == ["next_reply"]
    assert spans(out["next_reply"]) == [(1, [(5, None)])]


def test_a_resume_into_a_stopping_status_stops_at_once() -> None:
    """resume [customer_reply] while the ticket stays resolved: the cycle runs again and stops
    at the same instant (step d), so its elapsed time is unchanged and its last stop is then."""
    definition = metric("m", ["created"], ["status:resolved"], resume=["customer_reply"])
    cycles = run_metric(
        definition, T0, [ev(10, Status.RESOLVED), ev(20, activity=CUSTOMER)], 60, ALWAYS_OPEN
    )
    assert spans(cycles) == [(1, [(0, 10), (20, 20)])]
    assert cycles[0].clock.anchor_at == m(20)
    assert cycles[0].clock.elapsed(m(30)) == 600


def test_a_stop_and_a_resume_in_one_event_leave_the_cycle_stopped() -> None:
    """First reply does not stop on resolve; an agent's reply that also reopens the ticket
    stops the cycle, and the reopen of that same event does not run it again."""
    history = [ev(10, Status.RESOLVED), ev(20, Status.OPEN, AGENT), ev(30, Status.RESOLVED)]
    history.append(ev(40, Status.OPEN))
    cycles = run_metric(FIRST_REPLY, T0, history, 3600, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(0, 20), (40, None)])]


def test_an_event_that_stops_a_cycle_by_status_may_open_the_next_stopped() -> None:
    """A customer's message that also resolves the ticket: the open wait stops (step a), the
    message opens the next cycle (b), which stops at once in the resolved status (d)."""
    history = [ev(5, activity=CUSTOMER), ev(15, Status.RESOLVED, CUSTOMER)]
    cycles = run_metric(NEXT_REPLY, T0, history, 1800, ALWAYS_OPEN)
    assert spans(cycles) == [(1, [(5, 15)]), (2, [(15, 15)])]


# --- properties over random histories

ACTIVITIES = [NONE, NONE, AGENT, CUSTOMER, NOTE]


@st.composite
def histories(draw: st.DrawFn, max_size: int = 10) -> list[HistoryEvent]:
    """Events at distinct times (some before creation), each with a status or none and an
    activity, in event-time order."""
    times = draw(st.lists(st.integers(-5, 600), unique=True, max_size=max_size))
    events = []
    for t in sorted(times):
        status = draw(st.none() | st.sampled_from(Status))
        events.append(HistoryEvent(m(t), status, draw(st.sampled_from(ACTIVITIES))))
    return events


calendars = st.sampled_from([ALWAYS_OPEN, OFFICE])
ALL = (*SHAPES, *default_metrics(frozenset({Status.ON_HOLD})))


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False), calendars)
def test_any_arrival_order_gives_the_same_cycles(
    events: list[HistoryEvent], rnd: random.Random, calendar: Calendar
) -> None:
    """Whatever order the same events arrive in, every metric has the same cycles."""
    shuffled = list(events)
    rnd.shuffle(shuffled)
    for d in ALL:
        assert run_metric(d, T0, shuffled, 3600, calendar) == run_metric(
            d, T0, events, 3600, calendar
        )


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(0, 40_000), st.integers(0, 40_000), calendars)
def test_elapsed_never_decreases_as_now_grows(
    events: list[HistoryEvent], a: int, b: int, calendar: Calendar
) -> None:
    early, late = sorted((a, b))
    for d in ALL:
        for cycle in run_metric(d, T0, events, 3600, calendar):
            assert cycle.clock.elapsed(m(early)) <= cycle.clock.elapsed(m(late))


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(0, 40_000))
def test_a_paused_or_stopped_cycle_does_not_move(events: list[HistoryEvent], later: int) -> None:
    """After its last change of mode, a cycle that is not running accrues nothing."""
    for d in ALL:
        for cycle in run_metric(d, T0, events, 3600, ALWAYS_OPEN):
            clock = cycle.clock
            if clock.mode is not Mode.RUNNING:
                start = clock.anchor_at
                assert clock.elapsed(start) == clock.elapsed(start + timedelta(minutes=later))


@settings(max_examples=300, deadline=None)
@given(histories())
def test_time_on_hold_is_not_counted(events: list[HistoryEvent]) -> None:
    """No run of a metric pausing on hold overlaps a stretch the ticket spent on hold."""
    status, holds, since = Status.OPEN, [], T0
    for e in events:
        at = max(e.at, T0)
        if e.status is not None and e.status is not status:
            if status is Status.ON_HOLD:
                holds.append((since, at))
            status, since = e.status, at
    if status is Status.ON_HOLD:
        holds.append((since, m(10_000)))
    for d in (FIRST_REPLY, RESOLUTION_METRIC):
        for cycle in run_metric(d, T0, events, 3600, ALWAYS_OPEN):
            for run in cycle.clock.runs:
                end = run.end or m(10_000)
                if end == run.start:
                    continue  # a zero-length run only anchors a clock that is not running
                assert all(end <= h0 or run.start >= h1 for h0, h1 in holds), (run, holds)


def _replies_only(events: list[HistoryEvent]) -> list[HistoryEvent]:
    # Statuses left out, so that only replies decide next reply.
    return [HistoryEvent(e.at, None, e.activity) for e in events]


@settings(max_examples=300, deadline=None)
@given(histories(max_size=14))
def test_next_reply_cycles_follow_the_replies(events: list[HistoryEvent]) -> None:
    """A cycle opens at each customer reply while none is open and closes at the next agent
    reply by event time: cycle k runs from the k-th such customer reply to the agent reply
    after it, and replies stamped before a cycle's start do not close it."""
    events = _replies_only(events)
    expected: list[tuple[datetime, datetime | None]] = []
    open_since: datetime | None = None
    for e in sorted(events, key=lambda e: e.at):
        at = max(e.at, T0)
        if e.activity is AGENT and open_since is not None:
            expected.append((open_since, at))
            open_since = None
        elif e.activity is CUSTOMER and open_since is None:
            open_since = at
    if open_since is not None:
        expected.append((open_since, None))
    cycles = run_metric(NEXT_REPLY, T0, events, 1800, ALWAYS_OPEN)
    assert [c.number for c in cycles] == list(range(1, len(expected) + 1))
    assert [c.clock.runs for c in cycles] == [(Interval(s, e),) for s, e in expected]


@settings(max_examples=300, deadline=None)
@given(histories(max_size=12), st.randoms(use_true_random=False))
def test_a_reply_arriving_late_is_placed_by_event_time(
    events: list[HistoryEvent], rnd: random.Random
) -> None:
    """Storing the history in any order and adding an agent reply last, at a random earlier
    instant, gives the cycles of the history with that reply in its time-ordered place."""
    taken = {e.at for e in events}
    free = [t for t in range(-5, 600) if m(t) not in taken]
    late = HistoryEvent(m(rnd.choice(free)), None, AGENT)
    arrival = list(events)
    rnd.shuffle(arrival)
    in_order = sorted([*events, late], key=lambda e: e.at)
    for d in ALL:
        assert run_metric(d, T0, [*arrival, late], 1800, ALWAYS_OPEN) == run_metric(
            d, T0, in_order, 1800, ALWAYS_OPEN
        )


status_histories = st.lists(
    st.tuples(st.integers(-5, 600), st.sampled_from(Status)),
    max_size=8,
    unique_by=lambda p: p[0],
)
pause_sets = st.sampled_from(
    [frozenset(), frozenset({Status.ON_HOLD}), frozenset({Status.ON_HOLD, Status.IN_PROGRESS})]
)


@settings(max_examples=500, deadline=None)
@given(status_histories, calendars, pause_sets, st.sampled_from(ACTIVITIES))
def test_the_default_definitions_give_part_ones_clocks(
    pairs: list[tuple[int, Status]],
    calendar: Calendar,
    pause: frozenset[Status],
    activity: Activity,
) -> None:
    """response and resolution as metrics, run by the general rule, give exactly the clock part
    one's run_clock gives (runs, mode and every derived instant), whatever the calendar and
    pause statuses, and replies do not change them."""
    events = [HistoryEvent(m(t), s, activity) for t, s in pairs]
    changes = sort_changes(Change(m(t), s) for t, s in pairs)
    response, resolution = default_metrics(pause)
    for part_one, definition in ((RESPONSE, response), (RESOLUTION, resolution)):
        expected = part_one.clock(T0, changes, 900, calendar, pause)
        (cycle,) = run_on_timeline(definition, timeline(T0, events), 900, calendar)
        assert cycle.number == 1
        assert cycle.clock == expected
        assert cycle.clock.due_at == expected.due_at
        assert cycle.clock.anchor_elapsed == expected.anchor_elapsed


triage_definitions = st.builds(
    ClockDefinition,
    st.just("triage"),
    st.frozensets(st.sampled_from(Status), min_size=1).filter(lambda s: Status.OPEN not in s),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(status_histories, triage_definitions, calendars, pause_sets)
def test_any_part_one_clock_definition_as_a_metric_gives_its_clock(
    pairs: list[tuple[int, Status]],
    definition: ClockDefinition,
    calendar: Calendar,
    pause: frozenset[Status],
) -> None:
    """ClockDefinition.as_metric is the same clock: any stop set, resuming or not, pausing or
    not."""
    events = [HistoryEvent(m(t), s) for t, s in pairs]
    changes = sort_changes(Change(m(t), s) for t, s in pairs)
    expected = definition.clock(T0, changes, 600, calendar, pause)
    (cycle,) = run_on_timeline(definition.as_metric(pause), timeline(T0, events), 600, calendar)
    assert cycle.clock == expected


def test_the_default_metrics_are_the_semantics_note_definitions() -> None:
    """The built-in pair, named as the config would write them."""
    response, resolution = default_metrics(frozenset({Status.ON_HOLD}))
    assert (response.name, response.start.names, response.stop.names) == (
        "response",
        ("created",),
        ("status:in_progress", "status:on_hold", "status:resolved", "status:closed"),
    )
    assert response.resume.names == () and response.pause == frozenset()
    assert (resolution.name, resolution.stop.names, resolution.resume.names) == (
        "resolution",
        ("status:resolved", "status:closed"),
        ("reopened",),
    )
    assert resolution.pause == {Status.ON_HOLD}
    assert response.cycles is resolution.cycles is Cycles.ONCE


trigger_sets = st.lists(st.sampled_from(TRIGGERS), max_size=4).map(Triggers.parse)
status_sets = st.frozensets(st.sampled_from(Status), max_size=3)
# Definitions of any shape, and many of part one's (status triggers only, once).
definitions = st.one_of(
    st.builds(
        MetricDefinition,
        st.just("m"),
        trigger_sets,
        trigger_sets,
        status_sets,
        trigger_sets,
        st.sampled_from(Cycles),
    ),
    st.builds(
        MetricDefinition,
        st.just("m"),
        st.just(Triggers(created=True)),
        status_sets.map(lambda s: Triggers(statuses=s)),
        status_sets,
        st.one_of(
            st.just(Triggers()),
            st.just(Triggers(reopened=True)),
            status_sets.map(lambda s: Triggers(statuses=s)),
        ),
    ),
)


@settings(max_examples=500, deadline=None)
@given(definitions, histories(), calendars)
def test_the_fast_path_for_status_clocks_gives_the_general_rules_cycles(
    definition: MetricDefinition, events: list[HistoryEvent], calendar: Calendar
) -> None:
    """run_metrics hands a metric of part one's shape to run_clock: for any definition, it gives
    what the rule itself (run_on_timeline) gives."""
    general = run_on_timeline(definition, timeline(T0, events), 900, calendar)
    assert run_metric(definition, T0, events, 900, calendar) == general


def test_the_fast_path_is_taken_for_part_ones_shapes_only() -> None:
    """The defaults and resolution written as data take it; reply metrics, and a metric whose
    resume fires on some ways out of its stopping statuses only, do not."""
    response, resolution = default_metrics(frozenset({Status.ON_HOLD}))
    assert response.status_clock == (response.stop.statuses, False)
    assert resolution.status_clock == (resolution.stop.statuses, True)
    assert RESOLUTION_METRIC.status_clock is not None
    assert FIRST_REPLY.status_clock is None and NEXT_REPLY.status_clock is None
    partial = metric("p", ["created"], ["status:resolved"], resume=["status:in_progress"])
    assert partial.status_clock is None
