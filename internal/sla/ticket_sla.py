"""A ticket's SLA as its full, time-ordered history says: current fields, both clocks, and the
derived instants the store keeps so that states are exact at query time."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter

from internal.sla.calendar import Calendar
from internal.sla.clocks import Change, Clock, resolution_clock, response_clock, state_at
from internal.sla.ladder import next_check_at, warn_at
from internal.sla.model import DONE_STATUSES, ClockKind, Mode, State, Status
from internal.sla.policy import Rules, Targets

# Stored as a ticket's urgency when no clock is running: sorts after every real due time.
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True, init=False)
class Event:
    ticket_id: str
    priority: str
    customer_tier: str
    status: Status
    created_at: datetime
    updated_at: datetime

    def __init__(
        self,
        ticket_id: str,
        priority: str,
        customer_tier: str,
        status: Status,
        created_at: datetime,
        updated_at: datetime,
    ) -> None:
        # Filled directly rather than a call per field: see the note above Change in clocks.py.
        attrs = self.__dict__
        attrs["ticket_id"] = ticket_id
        attrs["priority"] = priority
        attrs["customer_tier"] = customer_tier
        attrs["status"] = status
        attrs["created_at"] = created_at
        attrs["updated_at"] = updated_at


@dataclass(frozen=True, init=False)
class ClockSla:
    kind: ClockKind
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
        kind: ClockKind,
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
        attrs["kind"] = kind
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


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of the two that are set, `a` on a tie: min() over them, without building a
    generator for two values (the ingest reads these for every ticket it writes)."""
    if a is None:
        return b
    if b is None or a <= b:
        return a
    return b


@dataclass(frozen=True, init=False)
class TicketSla:
    latest: Event  # the newest event: its fields are the ticket's current fields
    policy_version: str
    response: ClockSla
    resolution: ClockSla
    # What the store keeps of both clocks together, worked out once here: the ingest reads each
    # twice (the ticket row and its dashboard bucket). The earliest due time; the earliest
    # warning time of a clock not stopped; whether some clock is not stopped; the earliest due
    # time of a running clock (FAR_FUTURE if none runs).
    breach_at: datetime | None = field(init=False, repr=False, compare=False)
    warn_at: datetime | None = field(init=False, repr=False, compare=False)
    active: bool = field(init=False, repr=False, compare=False)
    urgent_at: datetime = field(init=False, repr=False, compare=False)

    def __init__(
        self, latest: Event, policy_version: str, response: ClockSla, resolution: ClockSla
    ) -> None:
        # Filled directly rather than a call per field: see the note above Change in clocks.py.
        attrs = self.__dict__
        attrs["latest"] = latest
        attrs["policy_version"] = policy_version
        attrs["response"] = response
        attrs["resolution"] = resolution
        response_mode, resolution_mode = response.mode, resolution.mode
        attrs["breach_at"] = _earlier(response.due_at, resolution.due_at)
        attrs["warn_at"] = _earlier(
            response.warn_at if response_mode is not Mode.STOPPED else None,
            resolution.warn_at if resolution_mode is not Mode.STOPPED else None,
        )
        attrs["active"] = response_mode is not Mode.STOPPED or resolution_mode is not Mode.STOPPED
        urgent = _earlier(
            response.due_at if response_mode is Mode.RUNNING else None,
            resolution.due_at if resolution_mode is Mode.RUNNING else None,
        )
        attrs["urgent_at"] = FAR_FUTURE if urgent is None else urgent

    @property
    def clocks(self) -> tuple[ClockSla, ClockSla]:
        return (self.response, self.resolution)

    def state(self, now: datetime) -> State:
        return max(c.state(now) for c in self.clocks)


def _clock_sla(clock: Clock, rules: Rules, fired_level: int) -> ClockSla:
    return ClockSla(
        clock.kind,
        clock.target,
        clock.calendar.name,
        clock.mode,
        clock.anchor_at,
        clock.anchor_elapsed,
        clock.due_at,
        warn_at(clock, rules.ladder),
        fired_level,
        next_check_at(clock, rules.ladder, fired_level),
    )


_UPDATED_AT = attrgetter("updated_at")  # a sort key in C, not a Python call per event


def latest_event(history: Sequence[Event]) -> Event:
    """The newest event of a non-empty history: its priority and tier choose the targets."""
    return history[0] if len(history) == 1 else max(history, key=_UPDATED_AT)


def compute_ticket_sla(
    history: Iterable[Event],
    targets: Targets,
    rules: Rules,
    fired_levels: Mapping[ClockKind, int],
) -> TicketSla:
    """`history` in any order; `targets` are those of the newest event's priority and tier;
    `fired_levels` are the steps already alerted, which never fire again."""
    events = sorted(history, key=_UPDATED_AT)
    if len(events) == 1:
        return single_event_sla(events[0], targets, rules, fired_levels)
    return history_sla(events, targets, rules, fired_levels)


def history_sla(
    events: list[Event], targets: Targets, rules: Rules, fired_levels: Mapping[ClockKind, int]
) -> TicketSla:
    """The general case: clocks built from the runs of a time-sorted, non-empty history."""
    latest = events[-1]
    changes = [Change(e.updated_at, e.status) for e in events]
    created_at = latest.created_at
    response = response_clock(created_at, changes, targets.response, targets.calendar)
    resolution = resolution_clock(
        created_at, changes, targets.resolution, targets.calendar, rules.pause_statuses
    )
    return TicketSla(
        latest,
        rules.version,
        _clock_sla(response, rules, fired_levels.get(ClockKind.RESPONSE, 0)),
        _clock_sla(resolution, rules, fired_levels.get(ClockKind.RESOLUTION, 0)),
    )


# A ticket known by one event, what most new tickets are, gets the same answer as history_sla
# (a property test holds them equal) without building runs and clocks: with one event each clock
# has run once, from creation until that event's time or still, and every crossing time is the
# calendar counted from creation. It takes about half the time (8 against 16 us per new ticket
# of the ingest benchmark on its 2-core machine).


def single_event_sla(
    event: Event, targets: Targets, rules: Rules, fired_levels: Mapping[ClockKind, int]
) -> TicketSla:
    created_at = event.created_at
    # An event stamped before creation cannot rewind a clock past its start (_clamp in clocks).
    at = event.updated_at if event.updated_at > created_at else created_at
    status = event.status
    response_ran_to = None if status is Status.OPEN else at
    if status in DONE_STATUSES:
        resolution_mode = Mode.STOPPED
    elif status in rules.pause_statuses:
        resolution_mode = Mode.PAUSED
    else:
        resolution_mode = Mode.RUNNING
    return TicketSla(
        event,
        rules.version,
        _single_run_clock(
            ClockKind.RESPONSE,
            targets.response,
            targets.calendar,
            Mode.RUNNING if response_ran_to is None else Mode.STOPPED,
            created_at,
            response_ran_to,
            rules,
            fired_levels.get(ClockKind.RESPONSE, 0),
        ),
        _single_run_clock(
            ClockKind.RESOLUTION,
            targets.resolution,
            targets.calendar,
            resolution_mode,
            created_at,
            None if resolution_mode is Mode.RUNNING else at,
            rules,
            fired_levels.get(ClockKind.RESOLUTION, 0),
        ),
    )


def _single_run_clock(
    kind: ClockKind,
    target: float,
    calendar: Calendar,
    mode: Mode,
    start: datetime,
    end: datetime | None,  # None: still running
    rules: Rules,
    fired_level: int,
) -> ClockSla:
    """A clock that ran once, from `start` until `end`."""
    # A finished run only reaches what it counted; a running one reaches any amount.
    if end is None:
        anchor_at, elapsed, reach = start, 0.0, math.inf
    else:
        anchor_at = end
        elapsed = reach = calendar.working_seconds(start, end)
    add = calendar.add_working
    due = add(start, target) if target <= reach else None
    ladder = rules.ladder
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
        kind, target, calendar.name, mode, anchor_at, elapsed, due, warn, fired_level, next_check
    )
