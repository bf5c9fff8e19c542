"""The vocabulary of the SLA rules: statuses, activities, clocks, states, alert kinds."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Status(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


DONE_STATUSES = frozenset({Status.RESOLVED, Status.CLOSED})


class Activity(StrEnum):
    """What an event did besides (or instead of) changing fields; a metric may start or stop on
    it (DESIGN §8). Each value is also the name of the trigger it fires."""

    NONE = "none"  # a field update only
    AGENT_REPLY = "agent_reply"  # a public reply by an agent
    CUSTOMER_REPLY = "customer_reply"  # the requester wrote
    INTERNAL_NOTE = "internal_note"  # no SLA effect unless a metric names it


class ClockKind(StrEnum):
    RESPONSE = "response"
    RESOLUTION = "resolution"


class Mode(StrEnum):
    """Whether a clock counts right now."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class State(IntEnum):
    """SLA state; the numeric order is severity, so a ticket's state is the max of its clocks'."""

    MET = 0
    OK = 1
    WARNING = 2
    BREACHED = 3


class AlertKind(StrEnum):
    WARNING = "warning"
    BREACH = "breach"
