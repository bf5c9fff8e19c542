"""Clock timelines (internal/sla/timeline.py, DESIGN §10 "Explain"): explicit cases (a pause over
a weekend, a ticket created outside working hours, a reopen, a reply metric's cycles) and
properties for any history on the 24x7 calendar and on a business calendar with holidays and a
DST change: the segments are ordered, contiguous, non-empty, cover the clock from its start on,
agree with the clock's runs and mode, and their counted seconds add up to its elapsed time
exactly."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.sla.business_calendar import BusinessCalendar
from internal.sla.calendar import ALWAYS_OPEN, Calendar
from internal.sla.metric import Cycles, MetricDefinition, default_metrics
from internal.sla.metric_run import HistoryEvent, run_metric
from internal.sla.model import Activity, Mode, Status
from internal.sla.timeline import CALENDAR, CREATED, Segment, SegmentKind, metric_timelines
from support.metric_shapes import FIRST_REPLY, NEXT_REPLY, metric

RUNNING, PAUSED, STOPPED, OUTSIDE = (
    SegmentKind.RUNNING,
    SegmentKind.PAUSED,
    SegmentKind.STOPPED,
    SegmentKind.OUTSIDE_HOURS,
)
# Berlin office hours; Europe/Berlin falls back on Sunday 2026-10-25, and two holidays follow.
OFFICE = BusinessCalendar(
    "office",
    "Europe/Berlin",
    {d: "09:00-12:30,13:15-17:00" for d in ("mon", "tue", "wed", "thu", "fri")},
    ["2026-10-26", "2026-10-28"],
)
FRIDAY = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)  # 14:00 in Berlin (CEST)
RESPONSE, RESOLUTION = default_metrics(frozenset({Status.ON_HOLD}))


PERIODIC_UPDATE = metric(
    "periodic_update",
    ["agent_reply"],
    ["agent_reply", "status:resolved", "status:closed"],
    pause=["status:on_hold"],
    cycles=Cycles.EACH_START,
)
DEFINITIONS = (RESPONSE, RESOLUTION, FIRST_REPLY, NEXT_REPLY, PERIODIC_UPDATE)


def h(hours: float) -> datetime:
    return FRIDAY + timedelta(hours=hours)


def ev(
    hours: float, status: Status | None = None, activity: Activity = Activity.NONE
) -> HistoryEvent:
    return HistoryEvent(h(hours), status, activity)


def added_in_order(segments: Sequence[Segment]) -> float:
    """The counted seconds added up one after the other, as a client adds them."""
    total = 0.0
    for s in segments:
        total += s.counted
    return total


def brief(segments: Sequence[Segment]) -> list[tuple[SegmentKind, datetime, datetime | None, str]]:
    return [(s.kind, s.start, s.end, s.cause.trigger) for s in segments]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- explicit cases


def test_a_pause_over_a_weekend_counts_nothing_and_names_the_status_changes() -> None:
    """On hold from Friday afternoon to Monday: a PAUSED segment from the on_hold event to the
    change back to open, begun by status:on_hold and ended by status:open; the running time
    around it is split by the office hours, and the counted time is elapsed."""
    events = [ev(0, Status.OPEN), ev(1, Status.ON_HOLD), ev(71, Status.OPEN)]  # Mon 11:00 UTC
    now = h(74)  # Monday 14:00 UTC (15:00 in Berlin, CET)
    segments = metric_timelines(RESOLUTION, FRIDAY, events, 8 * 3600, OFFICE, now)[1]
    assert brief(segments) == [
        (RUNNING, h(0), h(1), CREATED),
        (PAUSED, h(1), h(71), "status:on_hold"),
        # Monday 2026-10-26 is a holiday: running, but nothing counts until Tuesday 09:00 CET.
        (OUTSIDE, h(71), None, "status:open"),
    ]
    assert segments[1].cause.at == h(1) and segments[1].cause.status is Status.ON_HOLD
    assert [s.counted for s in segments] == [3600.0, 0.0, 0.0]
    clock = run_metric(RESOLUTION, FRIDAY, events, 8 * 3600, OFFICE)[0].clock
    assert added_in_order(segments) == clock.elapsed(now) == 3600.0


def test_a_ticket_created_outside_hours_waits_for_the_calendar() -> None:
    """Created on Saturday: OUTSIDE_HOURS from creation (cause created) until Tuesday's opening
    (the Monday is a holiday), then RUNNING begun by the calendar; the lunch break is outside
    hours again."""
    saturday = utc(2026, 10, 24, 10, 0)
    now = utc(2026, 10, 27, 13, 0)  # Tuesday 14:00 in Berlin, after lunch
    segments = metric_timelines(RESPONSE, saturday, [], 3600, OFFICE, now)[1]
    assert brief(segments) == [
        (OUTSIDE, saturday, utc(2026, 10, 27, 8, 0), CREATED),
        (RUNNING, utc(2026, 10, 27, 8, 0), utc(2026, 10, 27, 11, 30), CALENDAR),
        (OUTSIDE, utc(2026, 10, 27, 11, 30), utc(2026, 10, 27, 12, 15), CALENDAR),
        (RUNNING, utc(2026, 10, 27, 12, 15), None, CALENDAR),
    ]
    assert segments[1].cause.at is None and segments[1].cause.status is None
    assert [s.counted for s in segments] == [0.0, 3.5 * 3600, 0.0, 45 * 60]
    assert added_in_order(segments) == 3.5 * 3600 + 45 * 60


def test_a_reopen_resumes_after_a_stopped_segment() -> None:
    """Resolved, then reopened: STOPPED between them (cause status:resolved), RUNNING again from
    the reopen (cause reopened, the elapsed time carried over); the response clock stopped at the
    first change and stays STOPPED."""
    events = [ev(2, Status.IN_PROGRESS), ev(5, Status.RESOLVED), ev(30, Status.OPEN)]
    now = h(40)
    resolution = metric_timelines(RESOLUTION, FRIDAY, events, 86400, ALWAYS_OPEN, now)[1]
    assert brief(resolution) == [
        (RUNNING, h(0), h(5), CREATED),
        (STOPPED, h(5), h(30), "status:resolved"),
        (RUNNING, h(30), None, "reopened"),
    ]
    assert [s.counted for s in resolution] == [5 * 3600.0, 0.0, 10 * 3600.0]
    response = metric_timelines(RESPONSE, FRIDAY, events, 3600, ALWAYS_OPEN, now)[1]
    assert brief(response) == [
        (RUNNING, h(0), h(2), CREATED),
        (STOPPED, h(2), None, "status:in_progress"),
    ]


def test_paused_then_resolved_then_reopened_into_a_pause() -> None:
    """On hold, resolved while on hold, reopened straight into on_hold: PAUSED, STOPPED, PAUSED,
    with no running time after the first hour."""
    events = [ev(1, Status.ON_HOLD), ev(3, Status.RESOLVED), ev(6, Status.ON_HOLD)]
    segments = metric_timelines(RESOLUTION, FRIDAY, events, 86400, ALWAYS_OPEN, h(9))[1]
    assert brief(segments) == [
        (RUNNING, h(0), h(1), CREATED),
        (PAUSED, h(1), h(3), "status:on_hold"),
        (STOPPED, h(3), h(6), "status:resolved"),
        (PAUSED, h(6), None, "reopened"),
    ]
    assert added_in_order(segments) == 3600.0


def test_reply_metrics_name_the_replies_that_start_and_stop_them() -> None:
    """first_reply stops at the agent's reply; each next_reply cycle starts at the customer's
    message and stops at the agent's answer, with its own timeline."""
    events = [
        ev(1, activity=Activity.AGENT_REPLY),
        ev(2, activity=Activity.CUSTOMER_REPLY),
        ev(4, Status.IN_PROGRESS, Activity.AGENT_REPLY),
        ev(6, activity=Activity.CUSTOMER_REPLY),
    ]
    now = h(7)
    first = metric_timelines(FIRST_REPLY, FRIDAY, events, 3600, ALWAYS_OPEN, now)
    assert brief(first[1]) == [(RUNNING, h(0), h(1), CREATED), (STOPPED, h(1), None, "agent_reply")]
    cycles = metric_timelines(NEXT_REPLY, FRIDAY, events, 3600, ALWAYS_OPEN, now)
    assert brief(cycles[1]) == [
        (RUNNING, h(2), h(4), "customer_reply"),
        (STOPPED, h(4), None, "agent_reply"),
    ]
    assert cycles[1][1].cause.status is Status.IN_PROGRESS
    assert cycles[1][1].cause.activity is Activity.AGENT_REPLY
    assert brief(cycles[2]) == [(RUNNING, h(6), None, "customer_reply")]
    assert [s.counted for s in cycles[2]] == [3600.0]


def test_a_clock_asked_before_its_run_starts_has_an_open_segment_counting_nothing() -> None:
    """`now` before the ticket's creation (an event stamped ahead of the clock asking): one open
    segment from the start, counting nothing, as elapsed does."""
    segments = metric_timelines(RESPONSE, FRIDAY, [], 3600, OFFICE, h(-1))[1]
    assert brief(segments) == [(RUNNING, h(0), None, CREATED)]
    assert segments[0].counted == 0.0


def test_sub_second_pieces_add_up_exactly() -> None:
    """Pieces of 0.1 s and 0.2 s around a closing time add up to the clock's own 0.3 s, which
    0.1 + 0.2 in floating point does not."""
    start = utc(2026, 10, 23, 14, 59, 59) + timedelta(microseconds=900_000)  # 16:59:59.9 CEST
    end = utc(2026, 10, 27, 8, 0, 0) + timedelta(microseconds=200_000)  # Tue 09:00:00.2 CET
    events = [HistoryEvent(end, Status.RESOLVED)]
    segments = metric_timelines(RESOLUTION, start, events, 3600, OFFICE, end + timedelta(hours=1))
    clock = run_metric(RESOLUTION, start, events, 3600, OFFICE)[0].clock
    assert clock.elapsed(end) != 0.1 + 0.2
    assert added_in_order(segments[1]) == clock.elapsed(end)
    assert [s.kind for s in segments[1]] == [RUNNING, OUTSIDE, RUNNING, STOPPED]


# --- properties


@st.composite
def histories(draw: st.DrawFn) -> list[HistoryEvent]:
    """Up to 12 events at distinct microsecond times over ten days from Friday (some before the
    ticket's creation), each with a status or none and an activity: status changes, pauses,
    resolutions and reopens, replies."""
    times = draw(st.lists(st.integers(-3600 * 10**6, 240 * 3600 * 10**6), unique=True, max_size=12))
    events = []
    for t in sorted(times):
        status = draw(st.none() | st.sampled_from(Status))
        activity = draw(st.sampled_from([Activity.NONE, *Activity]))
        events.append(HistoryEvent(FRIDAY + timedelta(microseconds=t), status, activity))
    return events


calendars = st.sampled_from([ALWAYS_OPEN, OFFICE])
nows = st.integers(-3600 * 10**6, 300 * 3600 * 10**6).map(
    lambda us: FRIDAY + timedelta(microseconds=us)
)


@settings(max_examples=400, deadline=None)
@given(histories(), calendars, nows, st.sampled_from(DEFINITIONS))
def test_segments_cover_the_clock_and_add_up_to_elapsed(
    events: list[HistoryEvent], calendar: Calendar, now: datetime, d: MetricDefinition
) -> None:
    """For every cycle: the segments start at the cycle's start, each where the one before
    ended, none empty, only the last open; their counted seconds, added in order, are the
    clock's elapsed time at `now` to the bit; only RUNNING counts, and a closed RUNNING segment
    counts its length, all of it working time, while OUTSIDE_HOURS holds none."""
    cycles = run_metric(d, FRIDAY, events, 3600, calendar)
    timelines = metric_timelines(d, FRIDAY, events, 3600, calendar, now)
    assert sorted(timelines) == [c.number for c in cycles]
    for cycle in cycles:
        segments = timelines[cycle.number]
        assert segments and segments[0].start == cycle.started_at
        for before, after in itertools.pairwise(segments):
            assert before.end is not None and before.start < before.end == after.start
        assert segments[-1].end is None
        assert added_in_order(segments) == cycle.clock.elapsed(now)
        for s in segments:
            assert s.counted >= 0.0
            if s.kind is not RUNNING:
                assert s.counted == 0.0
            if s.end is not None:
                length = (s.end - s.start).total_seconds()
                working = calendar.working_seconds(s.start, s.end)
                if s.kind is RUNNING:
                    assert abs(s.counted - length) < 1e-6 and working == length
                elif s.kind is OUTSIDE:
                    assert working == 0.0


@settings(max_examples=400, deadline=None)
@given(histories(), calendars, nows, st.sampled_from(DEFINITIONS))
def test_segment_kinds_agree_with_the_clock(
    events: list[HistoryEvent], calendar: Calendar, now: datetime, d: MetricDefinition
) -> None:
    """RUNNING and OUTSIDE_HOURS together are exactly the clock's runs; the last segment's kind
    is the clock's mode; a PAUSED segment begins in one of the metric's pause statuses, a
    STOPPED one at a stop of the metric; every segment but a calendar one names the event at its
    start."""
    at = {e.at: e for e in events}
    for cycle in run_metric(d, FRIDAY, events, 3600, calendar):
        segments = metric_timelines(d, FRIDAY, events, 3600, calendar, now)[cycle.number]
        stretches: list[tuple[datetime, datetime | None]] = []
        for s in segments:
            if s.kind in (RUNNING, OUTSIDE):
                if stretches and stretches[-1][1] == s.start and s.cause.trigger == CALENDAR:
                    stretches[-1] = (stretches[-1][0], s.end)
                else:
                    stretches.append((s.start, s.end))
        runs = [(r.start, r.end) for r in cycle.clock.runs if r.end is None or r.end > r.start]
        assert stretches == runs
        last = {Mode.RUNNING: (RUNNING, OUTSIDE), Mode.PAUSED: (PAUSED,), Mode.STOPPED: (STOPPED,)}
        assert segments[-1].kind in last[cycle.clock.mode]
        for s in segments:
            if s.kind is PAUSED:
                assert s.cause.status in d.pause
            if s.kind is STOPPED:
                assert s.cause.trigger in d.stop.names or s.cause.status in d.stop.statuses
            if s.cause.trigger == CALENDAR:
                assert s.cause.at is None
            else:
                assert s.cause.at == s.start
                event = at.get(s.start)
                if event is not None and event.activity is not Activity.NONE:
                    assert s.cause.activity is event.activity


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 20 * 86400 * 10**6),
    st.integers(0, 5 * 86400 * 10**6),
)
def test_working_intervals_are_the_working_seconds(start_us: int, length_us: int) -> None:
    """The business calendar's working intervals over a span (across the DST change and the
    holidays) are ordered, disjoint, inside the span, each all working time, and add up to
    working_seconds to the microsecond."""
    start = FRIDAY - timedelta(days=3) + timedelta(microseconds=start_us)
    end = start + timedelta(microseconds=length_us)
    pieces = OFFICE.working_intervals(start, end)
    total = 0
    for a, b in pieces:
        assert start <= a < b <= end
        assert OFFICE.working_seconds(a, b) == (b - a).total_seconds()
        total += (b - a) // timedelta(microseconds=1)
    for (_, b), (a, _) in itertools.pairwise(pieces):
        assert b < a and OFFICE.working_seconds(b, a) == 0.0
    assert total / 1e6 == OFFICE.working_seconds(start, end)
