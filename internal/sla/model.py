"""The vocabulary of the SLA rules: statuses, clocks, states, alert kinds."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Status(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


DONE_STATUSES = frozenset({Status.RESOLVED, Status.CLOSED})


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
