"""A ticket's SLA as its full, time-ordered history says: current fields, both clocks, and the
derived instants the store keeps so that states are exact at query time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter

from internal.sla.clocks import Change, Clock, resolution_clock, response_clock, state_at
from internal.sla.ladder import next_check_at, warn_at
from internal.sla.model import ClockKind, Mode, State, Status
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

    def __init__(
        self, latest: Event, policy_version: str, response: ClockSla, resolution: ClockSla
    ) -> None:
        # Filled directly rather than a call per field: see the note above Change in clocks.py.
        attrs = self.__dict__
        attrs["latest"] = latest
        attrs["policy_version"] = policy_version
        attrs["response"] = response
        attrs["resolution"] = resolution

    @property
    def clocks(self) -> tuple[ClockSla, ClockSla]:
        return (self.response, self.resolution)

    @property
    def breach_at(self) -> datetime | None:
        return _earlier(self.response.due_at, self.resolution.due_at)

    @property
    def warn_at(self) -> datetime | None:
        """The earliest warning time of a clock not stopped."""
        response, resolution = self.response, self.resolution
        return _earlier(
            response.warn_at if response.mode is not Mode.STOPPED else None,
            resolution.warn_at if resolution.mode is not Mode.STOPPED else None,
        )

    @property
    def active(self) -> bool:
        return self.response.mode is not Mode.STOPPED or self.resolution.mode is not Mode.STOPPED

    @property
    def urgent_at(self) -> datetime:
        """The earliest due time of a running clock."""
        response, resolution = self.response, self.resolution
        earliest = _earlier(
            response.due_at if response.mode is Mode.RUNNING else None,
            resolution.due_at if resolution.mode is Mode.RUNNING else None,
        )
        return FAR_FUTURE if earliest is None else earliest

    def state(self, now: datetime) -> State:
        return max(c.state(now) for c in self.clocks)


def _clock_sla(clock: Clock, rules: Rules, fired_level: int) -> ClockSla:
    return ClockSla(
        kind=clock.kind,
        target=clock.target,
        calendar=clock.calendar.name,
        mode=clock.mode,
        anchor_at=clock.anchor_at,
        anchor_elapsed=clock.anchor_elapsed,
        due_at=clock.due_at,
        warn_at=warn_at(clock, rules.ladder),
        fired_level=fired_level,
        next_check_at=next_check_at(clock, rules.ladder, fired_level),
    )


_UPDATED_AT = attrgetter("updated_at")  # a sort key in C, not a Python call per event


def compute_ticket_sla(
    history: Iterable[Event],
    targets: Targets,
    rules: Rules,
    fired_levels: Mapping[ClockKind, int],
) -> TicketSla:
    """`history` in any order; `targets` are those of the newest event's priority and tier;
    `fired_levels` are the steps already alerted, which never fire again."""
    events = sorted(history, key=_UPDATED_AT)
    latest = events[-1]
    changes = [Change(e.updated_at, e.status) for e in events]
    created_at = latest.created_at
    response = response_clock(created_at, changes, targets.response, targets.calendar)
    resolution = resolution_clock(
        created_at, changes, targets.resolution, targets.calendar, rules.pause_statuses
    )
    return TicketSla(
        latest=latest,
        policy_version=rules.version,
        response=_clock_sla(response, rules, fired_levels.get(ClockKind.RESPONSE, 0)),
        resolution=_clock_sla(resolution, rules, fired_levels.get(ClockKind.RESOLUTION, 0)),
    )
