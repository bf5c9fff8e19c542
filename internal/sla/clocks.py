"""SLA clock arithmetic: from a ticket's status history to its clocks, with `now` as a parameter.

A clock is the list of intervals during which it ran. Everything else (elapsed time, the instant
a threshold is crossed, the state) is derived from those intervals on the policy's calendar, so a
late or out-of-order event only ever means recomputing the intervals from the sorted history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from internal.sla.calendar import Calendar
from internal.sla.model import Mode, State, Status

# The value classes below are frozen dataclasses, whose generated __init__ stores each field with
# a call to object.__setattr__. Several are built for every ingested event, so their __init__
# fills the instance dict directly instead: the same end state (equality, hash, repr and
# immutability all come from the dataclass as before), without a call per field.


@dataclass(frozen=True, init=False)
class Change:
    """The ticket entered `status` at `at` (event time)."""

    at: datetime
    status: Status

    def __init__(self, at: datetime, status: Status) -> None:
        attrs = self.__dict__
        attrs["at"] = at
        attrs["status"] = status


@dataclass(frozen=True, init=False)
class Interval:
    start: datetime
    end: datetime | None  # None: still running

    def __init__(self, start: datetime, end: datetime | None) -> None:
        attrs = self.__dict__
        attrs["start"] = start
        attrs["end"] = end


@dataclass(frozen=True, init=False)
class Clock:
    """A clock's runs, with what every evaluation reads from them worked out at construction.

    The derived values are plain attributes set by `__init__`, not `cached_property`: on Python
    3.11 `cached_property` takes one lock shared by every instance, so concurrent ingest threads
    queued on it, and every clock built is read anyway.
    """

    metric: str  # the name of the clock's definition ("response", "resolution", ...)
    target: float  # seconds of calendar time
    calendar: Calendar
    runs: tuple[Interval, ...]
    mode: Mode
    # Calendar seconds of each finished run (counted once: calendars are not free).
    spans: tuple[float, ...] = field(init=False, repr=False, compare=False)
    # Elapsed seconds up to `anchor_at`; a running clock adds calendar time from there.
    anchor_elapsed: float = field(init=False, repr=False, compare=False)
    # The spans added up in order, as `crossing_at` walks them; None if the runs are not shaped as
    # the builders below make them (every run finished but perhaps the last).
    _finished: float | None = field(init=False, repr=False, compare=False)
    # crossing_at's answers by threshold: the due, warning and next-check times of a clock often
    # ask for the same one. A plain dict: reads and writes need no lock under the GIL, and a race
    # only computes the same answer twice.
    _crossings: dict[float, datetime | None] = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        metric: str,
        target: float,
        calendar: Calendar,
        runs: tuple[Interval, ...],
        mode: Mode,
    ) -> None:
        spans: list[float] = []
        total = 0.0
        for run in runs:
            if run.end is not None:
                span = calendar.working_seconds(run.start, run.end)
                spans.append(span)
                total += span
        # Every run finished, or all but the last: how the builders below shape them.
        shaped = len(spans) == len(runs) or (len(spans) == len(runs) - 1 and runs[-1].end is None)
        # Filled directly, as for Change above.
        attrs = self.__dict__
        attrs["metric"] = metric
        attrs["target"] = target
        attrs["calendar"] = calendar
        attrs["runs"] = runs
        attrs["mode"] = mode
        attrs["spans"] = tuple(spans)
        attrs["anchor_elapsed"] = float(sum(spans))
        attrs["_finished"] = total if runs and shaped else None
        attrs["_crossings"] = {}

    @property
    def anchor_at(self) -> datetime:
        """The instant up to which `anchor_elapsed` is counted: the last change of mode."""
        last = self.runs[-1]
        return last.start if last.end is None else last.end

    def elapsed(self, now: datetime) -> float:
        total = self.anchor_elapsed
        last = self.runs[-1]
        if last.end is None:
            total += self.calendar.working_seconds(last.start, now)
        return total

    def crossing_at(self, seconds: float) -> datetime | None:
        """When elapsed time reaches `seconds`: possibly in the past, None if it never will
        (the clock is paused or stopped below it)."""
        crossings = self._crossings
        if seconds in crossings:
            return crossings[seconds]
        finished = self._finished
        if finished is not None and seconds > finished:
            # Beyond every finished run, the common case. Spans are never negative, so no earlier
            # run reaches `seconds` and the walk below would end on the last run having counted
            # exactly `finished`: skip to it.
            last = self.runs[-1]
            at = (
                None
                if last.end is not None
                else self.calendar.add_working(last.start, seconds - finished)
            )
        else:
            at = self._walk_to(seconds)
        crossings[seconds] = at
        return at

    def _walk_to(self, seconds: float) -> datetime | None:
        counted = 0.0
        for run, span in zip(self.runs, (*self.spans, None), strict=False):
            if span is None or counted + span >= seconds:
                return self.calendar.add_working(run.start, seconds - counted)
            counted += span
        return None

    @property
    def due_at(self) -> datetime | None:
        return self.crossing_at(self.target)


def state_at(mode: Mode, due_at: datetime | None, warn_at: datetime | None, now: datetime) -> State:
    """A clock's state from its stored crossing times. The SQL of the dashboard says the same."""
    if due_at is not None and due_at <= now:
        return State.BREACHED
    if mode is Mode.STOPPED:
        return State.MET
    if warn_at is not None and warn_at <= now:
        return State.WARNING
    return State.OK


def _clamp(at: datetime, created_at: datetime) -> datetime:
    # An event stamped before the ticket's creation cannot rewind a clock past its start.
    return at if at > created_at else created_at


def sort_changes(changes: Iterable[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: c.at)


def run_clock(
    metric: str,
    created_at: datetime,
    changes: Sequence[Change],
    target: float,
    calendar: Calendar,
    stops_in: frozenset[Status],
    resumes: bool,
    pause_statuses: frozenset[Status],
) -> Clock:
    """A clock that runs from creation, is paused in `pause_statuses` (empty: never paused),
    stops on entering a status of `stops_in` and, if it `resumes`, runs again on leaving it with
    the elapsed time carried over. `changes` are time-sorted. A ClockDefinition names these."""
    runs: list[Interval] = []
    mode = Mode.RUNNING
    since = created_at
    for change in changes:
        # The mode each status puts the clock in (inline: this runs for every event of a ticket).
        status = change.status
        if status in stops_in:
            new_mode = Mode.STOPPED
        elif status in pause_statuses:
            new_mode = Mode.PAUSED
        else:
            new_mode = Mode.RUNNING
        if new_mode is mode:
            continue
        at = _clamp(change.at, created_at)
        if mode is Mode.RUNNING:
            runs.append(Interval(since, at))
        mode, since = new_mode, at
        if mode is Mode.STOPPED and not resumes:
            break
    if mode is Mode.RUNNING:
        runs.append(Interval(since, None))
    elif not runs or runs[-1].end != since:
        # A zero-length run records where a paused or stopped clock was last anchored.
        runs.append(Interval(since, since))
    return Clock(metric, target, calendar, tuple(runs), mode)
