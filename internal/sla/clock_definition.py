"""What a clock measures: when it runs, pauses and stops, as a value rather than code.

Part one's way of naming a clock: it starts at the ticket's creation and is worked out from the
status history alone. A ticket's clocks are now the metrics of the rules (policy.Rules), and each
such definition is a special case of a metric (metric.py): `as_metric` says which, and the metric
engine (metric_run.py) gives exactly the clock `clock` gives. Kept as a helper for clocks of that
shape (tests, and the two part-one clock functions below).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from internal.sla.calendar import Calendar
from internal.sla.clocks import Change, Clock, run_clock
from internal.sla.metric import MetricDefinition, Triggers
from internal.sla.model import DONE_STATUSES, ClockKind, Mode, Status

_NO_PAUSE: frozenset[Status] = frozenset()


@dataclass(frozen=True)
class ClockDefinition:
    metric: str  # the clock's name: its key in targets, rows and alerts
    stops_in: frozenset[Status]  # entering one of these stops the clock
    resumes: bool  # leaving them starts it again, the elapsed time carried over
    pauses: bool  # paused while the status is one of the rules' pause_statuses

    def mode_in(self, status: Status, pause_statuses: frozenset[Status]) -> Mode:
        """The mode a ticket entering `status` puts a running clock in."""
        if status in self.stops_in:
            return Mode.STOPPED
        if self.pauses and status in pause_statuses:
            return Mode.PAUSED
        return Mode.RUNNING

    def as_metric(self, pause_statuses: frozenset[Status]) -> MetricDefinition:
        """The same clock as a metric: started at creation, stopped on entering a status of
        `stops_in`, and if it resumes, run again on entering any other status."""
        return MetricDefinition(
            self.metric,
            start=Triggers(created=True),
            stop=Triggers(statuses=self.stops_in),
            pause=pause_statuses if self.pauses else _NO_PAUSE,
            resume=Triggers(statuses=frozenset(Status) - self.stops_in)
            if self.resumes
            else Triggers(),
        )

    def clock(
        self,
        created_at: datetime,
        changes: Sequence[Change],
        target: float,
        calendar: Calendar,
        pause_statuses: frozenset[Status],
    ) -> Clock:
        """The clock's runs over time-sorted `changes`."""
        return run_clock(
            self.metric,
            created_at,
            changes,
            target,
            calendar,
            self.stops_in,
            self.resumes,
            pause_statuses if self.pauses else _NO_PAUSE,
        )


# First response: runs until the first status other than OPEN, whatever it is, and never again.
RESPONSE = ClockDefinition(
    ClockKind.RESPONSE.value, frozenset(Status) - {Status.OPEN}, resumes=False, pauses=False
)
# Resolution: stops when resolved or closed, resumes on reopen, pauses in the pause statuses.
RESOLUTION = ClockDefinition(ClockKind.RESOLUTION.value, DONE_STATUSES, resumes=True, pauses=True)
DEFAULT_CLOCKS: tuple[ClockDefinition, ...] = (RESPONSE, RESOLUTION)


def response_clock(
    created_at: datetime, changes: Sequence[Change], target: float, calendar: Calendar
) -> Clock:
    """Runs from creation until the first status other than OPEN. `changes` are time-sorted."""
    return RESPONSE.clock(created_at, changes, target, calendar, _NO_PAUSE)


def resolution_clock(
    created_at: datetime,
    changes: Sequence[Change],
    target: float,
    calendar: Calendar,
    pause_statuses: frozenset[Status],
) -> Clock:
    """Runs from creation, pauses in `pause_statuses`, stops when resolved or closed, and resumes
    on reopen with the elapsed time carried over. `changes` are time-sorted."""
    return RESOLUTION.clock(created_at, changes, target, calendar, pause_statuses)
