"""A clock's timeline: what it did from its start to `now`, and why (DESIGN §10, "Explain").

A timeline is a list of segments, each a stretch in which the clock did one thing: RUNNING
(counting, inside working hours), OUTSIDE_HOURS (running, but the calendar counts nothing then),
PAUSED, or STOPPED. Each segment names what began it: the ticket's creation, the event whose
trigger changed the clock's mode, or the calendar (working hours began or ended).

The segments are worked out from the engine's own answer rather than a second reading of the
rules: a clock's runs are its RUNNING time, and the same metric run with no pause statuses gives
the stretches in which the cycle was open (pausing never starts or stops a cycle), so the open
time outside the runs is PAUSED and the rest STOPPED. Runs are then split by the calendar.

Their counted seconds add up to the clock's elapsed time exactly, the float the API reports, when
added in order: the counted time of each run's last working piece is chosen so that the running
total lands on the total the clock itself counts at that run's end (`Clock.elapsed` adds its runs'
calendar seconds up in the same order). Each piece is within a few units in the last place of its
exact working time.

Pure: `now` is a parameter, nothing here reads the clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from internal.sla.calendar import Calendar
from internal.sla.clocks import Clock, Interval
from internal.sla.metric import STATUS_PREFIX, MetricDefinition
from internal.sla.metric_run import HistoryEvent, Moment, run_metric, timeline
from internal.sla.model import Activity, Mode, Status

CREATED = "created"  # the cause of a cycle begun by the ticket's creation
CALENDAR = "calendar"  # the cause of a segment begun by working hours beginning or ending
_ONE_US = timedelta(microseconds=1)
_US_PER_SECOND = 1_000_000


class SegmentKind(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    OUTSIDE_HOURS = "outside_hours"


@dataclass(frozen=True)
class Cause:
    """What began a segment: `trigger` is CREATED, CALENDAR or a trigger name as the config
    writes it (`status:on_hold`, `reopened`, `agent_reply`...); the event's time, the status the
    ticket had after it and its activity (None, None, NONE for the calendar)."""

    trigger: str
    at: datetime | None
    status: Status | None
    activity: Activity = Activity.NONE


CALENDAR_CAUSE = Cause(CALENDAR, None, None)


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    start: datetime
    end: datetime | None  # None: the last segment, still going at `now`
    counted: float  # seconds added to elapsed (up to `now` for the last segment)
    cause: Cause


def metric_timelines(
    definition: MetricDefinition,
    created_at: datetime,
    events: Iterable[HistoryEvent],
    target: float,
    calendar: Calendar,
    now: datetime,
) -> dict[int, tuple[Segment, ...]]:
    """The timeline of every cycle of `definition` over a ticket's history, by cycle number."""
    ordered = sorted(events, key=lambda e: e.at)
    cycles = run_metric(definition, created_at, ordered, target, calendar)
    unpaused = run_metric(
        dataclasses.replace(definition, pause=frozenset()), created_at, ordered, target, calendar
    )
    moments = timeline(created_at, ordered)
    return {
        c.number: clock_timeline(c.clock, u.clock, c.started_at, definition, moments, now)
        for c, u in zip(cycles, unpaused, strict=True)
    }


def clock_timeline(
    clock: Clock,
    unpaused: Clock,
    started_at: datetime,
    definition: MetricDefinition,
    moments: Sequence[Moment],
    now: datetime,
) -> tuple[Segment, ...]:
    """The segments of one cycle from `started_at` on: `clock` is the cycle's clock, `unpaused`
    the same cycle of the metric run with no pause statuses, `moments` the ticket's history as
    metric_run.timeline gives it (for the causes)."""
    at_instant: dict[datetime, list[Moment]] = {}
    for m in moments:
        at_instant.setdefault(m[0], []).append(m)
    segments: list[Segment] = []
    previous: Mode | None = None
    # The clock's own running totals: the calendar seconds of its finished runs added up as
    # Clock does, and its elapsed time at `now` after the open run, if any.
    finished = [run for run in clock.runs if run.end is not None]
    spans = clock.spans
    for mode, start, end in _mode_pieces(clock, unpaused, started_at):
        cause = _cause(at_instant.get(start, ()), mode, previous, definition)
        if mode is Mode.RUNNING:
            if end is None:
                target = clock.elapsed(now)
            else:
                target = float(sum(spans[: finished.index(Interval(start, end)) + 1]))
            _split_run(segments, clock.calendar, start, end, now, cause, target)
        else:
            kind = SegmentKind.PAUSED if mode is Mode.PAUSED else SegmentKind.STOPPED
            segments.append(Segment(kind, start, end, 0.0, cause))
        previous = mode
    return tuple(segments)


def _mode_pieces(
    clock: Clock, unpaused: Clock, started_at: datetime
) -> list[tuple[Mode, datetime, datetime | None]]:
    """(mode, start, end) from `started_at` on: RUNNING in the clock's runs, PAUSED elsewhere in
    the unpaused clock's runs (the cycle was open), STOPPED in the rest; the last has no end."""
    runs = [r for r in clock.runs if r.end is None or r.end > r.start]
    pieces: list[tuple[Mode, datetime, datetime | None]] = []
    t: datetime | None = started_at

    def add(mode: Mode, start: datetime, end: datetime | None) -> None:
        if end is None or end > start:
            pieces.append((mode, start, end))

    i = 0
    for open_run in unpaused.runs:
        if t is None:
            break
        o_start, o_end = open_run.start, open_run.end
        if o_end is not None and o_end <= o_start:
            continue  # a zero-length anchor: the cycle was never open there
        add(Mode.STOPPED, t, o_start)
        t = max(t, o_start)
        while i < len(runs) and (o_end is None or runs[i].start < o_end):
            run = runs[i]
            add(Mode.PAUSED, t, run.start)
            add(Mode.RUNNING, run.start, run.end)
            t = run.end
            i += 1
            if t is None:
                break
        if t is not None:
            add(Mode.PAUSED, t, o_end)
            t = o_end
    if t is not None:
        add(Mode.STOPPED, t, None)
    return pieces


def _split_run(
    out: list[Segment],
    calendar: Calendar,
    start: datetime,
    end: datetime | None,
    now: datetime,
    cause: Cause,
    target: float,
) -> None:
    """A run's RUNNING and OUTSIDE_HOURS segments, counted so that the running total of all the
    segments so far ends on `target` (the clock's own total at the run's end)."""
    before = 0.0
    for s in out:
        before += s.counted
    stop = end if end is not None else (now if now > start else start)
    pieces: list[Segment] = []
    cursor = start
    for a, b in calendar.working_intervals(start, stop):
        if a > cursor:
            pieces.append(Segment(SegmentKind.OUTSIDE_HOURS, cursor, a, 0.0, cause))
        counted = ((b - a) // _ONE_US) / _US_PER_SECOND
        pieces.append(Segment(SegmentKind.RUNNING, a, b, counted, cause))
        cursor = b
    if cursor < stop:
        pieces.append(Segment(SegmentKind.OUTSIDE_HOURS, cursor, stop, 0.0, cause))
    if end is None:
        if pieces and pieces[-1].end == stop:
            pieces[-1] = dataclasses.replace(pieces[-1], end=None)
        else:  # `now` is not after the run's start
            working = bool(calendar.working_intervals(start, start + _ONE_US))
            kind = SegmentKind.RUNNING if working else SegmentKind.OUTSIDE_HOURS
            pieces.append(Segment(kind, start, None, 0.0, cause))
    # Only the first piece was begun by the run's cause; the others by the calendar.
    pieces[1:] = [dataclasses.replace(p, cause=CALENDAR_CAUSE) for p in pieces[1:]]
    # The last counting piece takes up what rounding left over, so the total lands on `target`.
    last = max((k for k, p in enumerate(pieces) if p.kind is SegmentKind.RUNNING), default=None)
    total = before
    for k, p in enumerate(pieces):
        if k == last:
            pieces[k] = dataclasses.replace(p, counted=_landing(total, target, p.counted))
        total += pieces[k].counted
    out.extend(pieces)


def _landing(total: float, target: float, exact: float) -> float:
    """The float c nearest `exact` with total + c == target in floating point: a run's last
    piece, so that the sum of the segments lands on the clock's own sum of its runs."""
    if total == target:
        return 0.0  # nothing counted (the calendar had no working time in the run)
    c = target - total
    for _ in range(64):
        landed = total + c
        if landed == target:
            return c
        c = math.nextafter(c, math.inf if landed < target else -math.inf)
    return exact  # not reached for non-negative totals and targets; the exact piece then


def _fired(moments: Sequence[Moment]) -> list[str]:
    """The triggers the events at one instant fired, in event order."""
    names: list[str] = []
    for _at, _status, entered, reopened, activity, created in moments:
        if created:
            names.append(CREATED)
        if activity is not Activity.NONE:
            names.append(activity.value)
        if entered is not None:
            names.append(STATUS_PREFIX + entered.value)
        if reopened:
            names.append("reopened")
    return names


def _cause(
    moments: Sequence[Moment], mode: Mode, previous: Mode | None, d: MetricDefinition
) -> Cause:
    """The cause of a change into `mode` at the instant of `moments`: the trigger that made it,
    among those the events there fired."""
    fired = _fired(moments)
    if mode is Mode.STOPPED:  # also a cycle stopped at the instant it started
        wanted = d.stop.names
    elif previous is None:
        wanted = d.start.names
    elif previous is Mode.STOPPED:  # resumed, running or straight into a pause
        wanted = (*d.resume.names, *d.start.names)
    else:  # into or out of a pause: a status change
        wanted = tuple(n for n in fired if n.startswith(STATUS_PREFIX))
    trigger = next(
        (n for n in fired if n in wanted),
        next((n for n in fired if n.startswith(STATUS_PREFIX)), fired[0] if fired else "event"),
    )
    if not moments:
        return Cause(trigger, None, None)
    at, status, _entered, _reopened, activity, _created = moments[-1]
    return Cause(trigger, at, status, activity)
