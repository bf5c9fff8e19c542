"""A ticket's SLA as its full, time-ordered history says: current fields, its clocks (every cycle
of every metric of the rules that the ticket's policy has a target for), and the derived instants
the store keeps so that states are exact at query time."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter

from internal.sla.calendar import Calendar
from internal.sla.clocks import state_at
from internal.sla.ladder import Ladder, next_check_at, warn_at
from internal.sla.metric import MetricDefinition
from internal.sla.metric_run import Cycle, HistoryEvent, run_metrics, run_on_timeline, timeline
from internal.sla.model import Activity, Mode, State, Status
from internal.sla.policy import Rules, Targets

# Stored as a ticket's urgency when no clock is running: sorts after every real due time.
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)

# A cycle's fired level is kept under (metric, cycle number): each cycle has its own ladder run.
CycleKey = tuple[str, int]


@dataclass(frozen=True, init=False)
class Event:
    ticket_id: str
    priority: str
    customer_tier: str
    status: Status
    created_at: datetime
    updated_at: datetime
    activity: Activity  # a reply or note the event carried; NONE for a field update

    def __init__(
        self,
        ticket_id: str,
        priority: str,
        customer_tier: str,
        status: Status,
        created_at: datetime,
        updated_at: datetime,
        activity: Activity = Activity.NONE,
    ) -> None:
        # Filled directly rather than a call per field: see the note above Change in clocks.py.
        attrs = self.__dict__
        attrs["ticket_id"] = ticket_id
        attrs["priority"] = priority
        attrs["customer_tier"] = customer_tier
        attrs["status"] = status
        attrs["created_at"] = created_at
        attrs["updated_at"] = updated_at
        attrs["activity"] = activity


@dataclass(frozen=True, init=False)
class ClockSla:
    """One cycle of one metric: what the store keeps of it (a row of sla_clocks)."""

    metric: str
    cycle: int  # 1-based, among the metric's cycles on this ticket
    started_at: datetime  # when the cycle opened
    target: float
    calendar: str
    mode: Mode
    anchor_at: datetime
    anchor_elapsed: float
    due_at: datetime | None
    warn_at: datetime | None
    fired_level: int
    next_check_at: datetime | None

    def __init__(
        self,
        metric: str,
        cycle: int,
        started_at: datetime,
        target: float,
        calendar: str,
        mode: Mode,
        anchor_at: datetime,
        anchor_elapsed: float,
        due_at: datetime | None,
        warn_at: datetime | None,
        fired_level: int,
        next_check_at: datetime | None,
    ) -> None:
        # Filled directly rather than a call per field: see the note above Change in clocks.py.
        attrs = self.__dict__
        attrs["metric"] = metric
        attrs["cycle"] = cycle
        attrs["started_at"] = started_at
        attrs["target"] = target
        attrs["calendar"] = calendar
        attrs["mode"] = mode
        attrs["anchor_at"] = anchor_at
        attrs["anchor_elapsed"] = anchor_elapsed
        attrs["due_at"] = due_at
        attrs["warn_at"] = warn_at
        attrs["fired_level"] = fired_level
        attrs["next_check_at"] = next_check_at

    def state(self, now: datetime) -> State:
        return state_at(self.mode, self.due_at, self.warn_at, now)


@dataclass(frozen=True, init=False)
class TicketSla:
    latest: Event  # the newest event: its fields are the ticket's current fields
    policy_version: str
    # Every cycle of every metric with a target, in the rules' metric order, then by cycle.
    clocks: tuple[ClockSla, ...]
    # What the store keeps of the clocks together (all cycles of all metrics), worked out once
    # here: the ingest reads each twice (the ticket row and its dashboard bucket). The earliest
    # due time; the earliest warning time of a cycle not stopped; whether some cycle is not
    # stopped; the earliest due time of a running cycle (FAR_FUTURE if none runs).
    breach_at: datetime | None = field(init=False, repr=False, compare=False)
    warn_at: datetime | None = field(init=False, repr=False, compare=False)
    active: bool = field(init=False, repr=False, compare=False)
    urgent_at: datetime = field(init=False, repr=False, compare=False)
    policy: str = field(init=False, compare=False)  # the name of the policy that applies

    def __init__(
        self,
        latest: Event,
        policy_version: str,
        clocks: tuple[ClockSla, ...],
        policy: str = "",
    ) -> None:
        # Filled directly rather than a call per field: see the note above Change in clocks.py.
        attrs = self.__dict__
        attrs["latest"] = latest
        attrs["policy_version"] = policy_version
        attrs["clocks"] = clocks
        attrs["policy"] = policy
        # One pass, the earliest of each kept (the first one on a tie): min() over generators
        # would cost several calls per ticket, and the ingest builds one per ticket it writes.
        breach = warn = urgent = None
        active = False
        for c in clocks:
            due = c.due_at
            if due is not None and (breach is None or due < breach):
                breach = due
            mode = c.mode
            if mode is not Mode.STOPPED:
                active = True
                at = c.warn_at
                if at is not None and (warn is None or at < warn):
                    warn = at
                if mode is Mode.RUNNING and due is not None and (urgent is None or due < urgent):
                    urgent = due
        attrs["breach_at"] = breach
        attrs["warn_at"] = warn
        attrs["active"] = active
        attrs["urgent_at"] = FAR_FUTURE if urgent is None else urgent

    def clock(self, metric: str) -> ClockSla:
        """The current (latest) cycle of `metric`; KeyError if the ticket has none."""
        found = None
        for c in self.clocks:
            if c.metric == metric:
                found = c
        if found is None:
            raise KeyError(metric)
        return found

    def cycles(self, metric: str) -> tuple[ClockSla, ...]:
        """Every cycle of `metric`, by number (empty if the ticket has none)."""
        return tuple(c for c in self.clocks if c.metric == metric)

    def state(self, now: datetime) -> State:
        return max(c.state(now) for c in self.clocks)


def _clock_sla(cycle: Cycle, ladder: Ladder, fired_level: int) -> ClockSla:
    clock = cycle.clock
    return ClockSla(
        clock.metric,
        cycle.number,
        cycle.started_at,
        clock.target,
        clock.calendar.name,
        clock.mode,
        clock.anchor_at,
        clock.anchor_elapsed,
        clock.due_at,
        warn_at(clock, ladder),
        fired_level,
        next_check_at(clock, ladder, fired_level),
    )


_UPDATED_AT = attrgetter("updated_at")  # a sort key in C, not a Python call per event


def latest_event(history: Sequence[Event]) -> Event:
    """The newest event of a non-empty history: its priority and tier choose the targets."""
    return history[0] if len(history) == 1 else max(history, key=_UPDATED_AT)


def compute_ticket_sla(
    history: Iterable[Event],
    targets: Targets,
    rules: Rules,
    fired_levels: Mapping[CycleKey, int],
) -> TicketSla:
    """`history` in any order; `targets` are those of the newest event's priority and tier;
    `fired_levels` are the steps already alerted per (metric, cycle), which never fire again."""
    events = sorted(history, key=_UPDATED_AT)
    if len(events) == 1:
        return single_event_sla(events[0], targets, rules, fired_levels)
    return history_sla(events, targets, rules, fired_levels)


def _history_events(events: Iterable[Event]) -> list[HistoryEvent]:
    return [HistoryEvent(e.updated_at, e.status, e.activity) for e in events]


def history_sla(
    events: list[Event], targets: Targets, rules: Rules, fired_levels: Mapping[CycleKey, int]
) -> TicketSla:
    """The general case: every metric run over a time-sorted, non-empty history (metric_run)."""
    latest = events[-1]
    ladders = rules.ladders
    by_metric = run_metrics(
        rules.metrics, latest.created_at, _history_events(events), targets.seconds, targets.calendar
    )
    clocks = [
        _clock_sla(cycle, ladders[name], fired_levels.get((name, cycle.number), 0))
        for name, cycles in by_metric.items()
        for cycle in cycles
    ]
    return TicketSla(latest, rules.version, tuple(clocks), targets.policy)


# A ticket known by one event, what most new tickets are, gets the same answer as history_sla
# (a property test holds them equal) with less work. A metric of part one's shape
# (MetricDefinition.status_clock) has run once, from creation until that event's time or still,
# and every crossing time is the calendar counted from creation: worked out without building
# runs and clocks, about half the time (8 against 16 us per new ticket of the ingest benchmark
# on its 2-core machine). Any other metric runs by the general rule over the two moments of
# the ticket's timeline (its creation and the event), built once for all of them.


def single_event_sla(
    event: Event, targets: Targets, rules: Rules, fired_levels: Mapping[CycleKey, int]
) -> TicketSla:
    created_at = event.created_at
    # An event stamped before creation cannot rewind a clock past its start (_clamp in clocks).
    at = event.updated_at if event.updated_at > created_at else created_at
    status = event.status
    seconds, calendar, ladders = targets.seconds, targets.calendar, rules.ladders
    moments = None
    clocks: list[ClockSla] = []
    for d in rules.metrics:
        metric = d.name
        target = seconds.get(metric)
        if target is None:
            continue  # the policy has no target for it: no cycles
        ladder = ladders[metric]
        shape = d.status_clock
        if shape is None:
            if moments is None:
                moments = timeline(created_at, _history_events((event,)))
            clocks.extend(
                _clock_sla(cycle, ladder, fired_levels.get((metric, cycle.number), 0))
                for cycle in run_on_timeline(d, moments, target, calendar)
            )
            continue
        # clocks.run_clock's modes, inline: this runs for every clock of every new ticket.
        if status in shape[0]:
            mode = Mode.STOPPED
        elif status in d.pause:
            mode = Mode.PAUSED
        else:
            mode = Mode.RUNNING
        clocks.append(
            _single_run_clock(
                d,
                target,
                calendar,
                mode,
                created_at,
                None if mode is Mode.RUNNING else at,
                ladder,
                fired_levels.get((metric, 1), 0),
            )
        )
    return TicketSla(event, rules.version, tuple(clocks), targets.policy)


def _single_run_clock(
    definition: MetricDefinition,
    target: float,
    calendar: Calendar,
    mode: Mode,
    start: datetime,
    end: datetime | None,  # None: still running
    ladder: Ladder,
    fired_level: int,
) -> ClockSla:
    """Cycle 1 of a metric of part one's shape that ran once, from `start` until `end`."""
    # A finished run only reaches what it counted; a running one reaches any amount.
    if end is None:
        anchor_at, elapsed, reach = start, 0.0, math.inf
    else:
        anchor_at = end
        elapsed = reach = calendar.working_seconds(start, end)
    add = calendar.add_working
    due = add(start, target) if target <= reach else None
    percent = ladder.warn_percent
    warn_seconds = None if percent is None else target * percent / 100.0
    warn = None if warn_seconds is None or warn_seconds > reach else add(start, warn_seconds)
    step = ladder.next_step(fired_level)
    if step is None:
        next_check = None
    else:
        seconds = step.seconds(target)
        # The next step is usually the warning step or the target: asked once, as Clock caches.
        if seconds == warn_seconds:
            next_check = warn
        elif seconds == target:
            next_check = due
        else:
            next_check = add(start, seconds) if seconds <= reach else None
    return ClockSla(
        definition.name,
        1,
        start,
        target,
        calendar.name,
        mode,
        anchor_at,
        elapsed,
        due,
        warn,
        fired_level,
        next_check,
    )
