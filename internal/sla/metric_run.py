"""Running a metric over a ticket's history: its cycles, each a Clock, with `now` a parameter.

The rule (DESIGN §8, made precise in the team's metric semantics note):

- Events are taken in event-time order, whatever their arrival order; an event stamped before
  the ticket's creation counts as at its creation.
- A virtual creation event at `created_at` comes first: it fires `created` and `status:open`.
- At each event, with s the status before it and s' its status (s when it has none), these
  triggers fire: its activity (unless none); `status:<s'>` if s' != s; `reopened` if s is
  resolved or closed and s' is neither. Then, in this order:
  (a) an open cycle (running or paused) stops if a `stop` trigger fires;
  (b) if no cycle is open and a `start` trigger fires: each_start opens cycle n+1; once opens
      cycle 1 if the ticket has none yet;
  (c) once only: a stopped cycle 1 not stopped by (a) of this same event runs again, elapsed
      carried over, if a `resume` trigger fires;
  (d) a cycle open after (b)/(c) while s' is a status that `stop` names stops at once: a clock
      cannot run in a stopping status (one resumed into such a status gains a zero-length run:
      its elapsed time is unchanged, its last stop is now).
- An open cycle is paused while the status is one of the metric's `pause` statuses.

Each cycle is a Clock (clocks.py) whose runs are recorded exactly as part one's run_clock records
them, so that the two default definitions give part one's clocks to the bit, and the due,
warning and next-check arithmetic (ladder.py, stored_clock.py) applies to each cycle unchanged.
`run_on_timeline` is the rule itself; `run_metrics` hands a metric of part one's shape to
run_clock instead (the same answer, faster).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter

from internal.sla.calendar import Calendar
from internal.sla.clocks import Change, Clock, Interval, run_clock, state_at
from internal.sla.ladder import Ladder, warn_at
from internal.sla.metric import Cycles, MetricDefinition
from internal.sla.model import DONE_STATUSES, Activity, Mode, State, Status


@dataclass(frozen=True, init=False)
class HistoryEvent:
    """One event of a ticket's history as the metrics see it."""

    at: datetime  # event time (updated_at), unique per ticket
    status: Status | None  # None: the status is unchanged
    activity: Activity

    def __init__(
        self, at: datetime, status: Status | None, activity: Activity = Activity.NONE
    ) -> None:
        # Filled directly rather than a call per field: see the note above Change in clocks.py.
        attrs = self.__dict__
        attrs["at"] = at
        attrs["status"] = status
        attrs["activity"] = activity


@dataclass(frozen=True, init=False)
class Cycle:
    """One SLA instance of a metric: its 1-based number among the metric's cycles, the instant
    it opened (its clock's first run may start later, when it opened paused), and its clock."""

    number: int
    started_at: datetime
    clock: Clock

    def __init__(self, number: int, started_at: datetime, clock: Clock) -> None:
        attrs = self.__dict__  # as HistoryEvent
        attrs["number"] = number
        attrs["started_at"] = started_at
        attrs["clock"] = clock

    @property
    def metric(self) -> str:
        return self.clock.metric

    def state(self, ladder: Ladder, now: datetime) -> State:
        """Part one's rule: breached once due, else met if stopped, else warning from the first
        warning step, else ok."""
        clock = self.clock
        return state_at(clock.mode, clock.due_at, warn_at(clock, ladder), now)


# A moment of the timeline: (at, status after, status entered or None, reopened, activity,
# created). Plain tuples: one is built per event of every ticket recomputed.
Moment = tuple[datetime, Status, Status | None, bool, Activity, bool]

_AT = attrgetter("at")


def timeline(created_at: datetime, events: Iterable[HistoryEvent]) -> list[Moment]:
    """The history in event-time order, each event with what it fires, after the virtual
    creation event. Shared by every metric of the ticket."""
    moments: list[Moment] = [(created_at, Status.OPEN, Status.OPEN, False, Activity.NONE, True)]
    status = Status.OPEN
    for e in sorted(events, key=_AT):
        at = e.at if e.at > created_at else created_at
        new = e.status
        if new is None or new is status:
            moments.append((at, status, None, False, e.activity, False))
        else:
            reopened = status in DONE_STATUSES and new not in DONE_STATUSES
            moments.append((at, new, new, reopened, e.activity, False))
            status = new
    return moments


class _Cycle:
    """A cycle being worked out: its runs so far, its mode and since when."""

    __slots__ = ("mode", "number", "opened", "runs", "since")

    def __init__(self, number: int, at: datetime) -> None:
        self.number = number
        self.opened = at
        self.runs: list[Interval] = []
        self.mode: Mode | None = None  # None: opening, its first mode not set yet
        self.since = at

    def set_mode(self, mode: Mode, at: datetime) -> None:
        # As run_clock: a run ends when the clock leaves RUNNING; the anchor moves on a change.
        if mode is self.mode:
            return
        if self.mode is Mode.RUNNING:
            self.runs.append(Interval(self.since, at))
        self.mode, self.since = mode, at

    def clock(self, metric: str, target: float, calendar: Calendar) -> Clock:
        runs = self.runs
        mode = self.mode or Mode.STOPPED
        if mode is Mode.RUNNING:
            runs = [*runs, Interval(self.since, None)]
        elif not runs or runs[-1].end != self.since:
            # A zero-length run records where a paused or stopped clock was last anchored.
            runs = [*runs, Interval(self.since, self.since)]
        return Clock(metric, target, calendar, tuple(runs), mode)


def run_on_timeline(
    definition: MetricDefinition, moments: Sequence[Moment], target: float, calendar: Calendar
) -> tuple[Cycle, ...]:
    """The metric's cycles over a timeline (see `timeline`), in order of their numbers."""
    start, stop, resume = definition.start, definition.stop, definition.resume
    # The trigger sets taken apart once: the loop below runs for every event of every ticket
    # recomputed, so it matches with set lookups inline rather than a call per trigger set.
    stop_acts, stop_statuses, stop_reopened = stop.activities, stop.statuses, stop.reopened
    start_acts, start_statuses = start.activities, start.statuses
    start_reopened, start_created = start.reopened, start.created
    resume_acts, resume_statuses, resume_reopened = (
        resume.activities,
        resume.statuses,
        resume.reopened,
    )
    pause = definition.pause
    each = definition.cycles is Cycles.EACH_START
    cycles: list[_Cycle] = []
    current: _Cycle | None = None  # the open cycle, if any: only the last one can be open
    running, paused, stopped = Mode.RUNNING, Mode.PAUSED, Mode.STOPPED
    for at, status, entered, reopened, activity, created in moments:
        stopped_here = False
        # (a) stop (`created` never stops: no cycle is open before the creation event)
        if current is not None and (
            activity in stop_acts or entered in stop_statuses or (reopened and stop_reopened)
        ):
            current.set_mode(stopped, at)
            current = None
            stopped_here = True
        resumed = False
        if current is None:
            if (each or not cycles) and (
                activity in start_acts
                or entered in start_statuses
                or (reopened and start_reopened)
                or (created and start_created)
            ):
                # (b) start
                current = _Cycle(len(cycles) + 1, at)
                cycles.append(current)
            elif (
                cycles
                and not each
                and not stopped_here
                and (
                    activity in resume_acts
                    or entered in resume_statuses
                    or (reopened and resume_reopened)
                )
            ):
                # (c) resume (`created` fires before any cycle exists)
                current = cycles[0]
                resumed = True
            else:
                continue
        # (d) no running in a stopping status; paused in a pause status.
        if status in stop_statuses:
            if resumed:
                # Resumed and stopped at this instant: a zero-length run, the anchor moved here.
                current.set_mode(running, at)
            current.set_mode(stopped, at)
            current = None
        else:
            current.set_mode(paused if status in pause else running, at)
    name = definition.name
    return tuple(Cycle(c.number, c.opened, c.clock(name, target, calendar)) for c in cycles)


def _status_changes(ordered: Sequence[HistoryEvent]) -> list[Change]:
    # An event with no status changes no status: run_clock would find its mode unchanged.
    return [Change(e.at, e.status) for e in ordered if e.status is not None]


def _run_status_clock(
    d: MetricDefinition,
    shape: tuple[frozenset[Status], bool],
    created_at: datetime,
    changes: Sequence[Change],
    target: float,
    calendar: Calendar,
) -> tuple[Cycle, ...]:
    stops_in, resumes = shape
    clock = run_clock(d.name, created_at, changes, target, calendar, stops_in, resumes, d.pause)
    return (Cycle(1, created_at, clock),)


def run_metric(
    definition: MetricDefinition,
    created_at: datetime,
    events: Iterable[HistoryEvent],
    target: float,
    calendar: Calendar,
) -> tuple[Cycle, ...]:
    """The cycles of one metric over a ticket's history (`events` in any order)."""
    return run_metrics((definition,), created_at, events, {definition.name: target}, calendar)[
        definition.name
    ]


def run_metrics(
    definitions: Iterable[MetricDefinition],
    created_at: datetime,
    events: Iterable[HistoryEvent],
    targets: Mapping[str, float],
    calendar: Calendar,
) -> dict[str, tuple[Cycle, ...]]:
    """Every metric's cycles, by name, in the order of `definitions`. A metric without a target
    in `targets` (the ticket's policy has none for it) gives the ticket no cycles and no entry.

    A metric of part one's shape (MetricDefinition.status_clock) is run by clocks.run_clock on
    the status changes, as part one's clocks are: the same cycle as the general rule gives (a
    property test holds them equal) at about half the cost, which ingest pays for every event.
    """
    ordered = sorted(events, key=_AT)
    moments: list[Moment] | None = None
    changes: list[Change] | None = None
    out: dict[str, tuple[Cycle, ...]] = {}
    for d in definitions:
        name = d.name
        if name not in targets:
            continue
        shape = d.status_clock
        if shape is not None:
            if changes is None:
                changes = _status_changes(ordered)
            out[name] = _run_status_clock(d, shape, created_at, changes, targets[name], calendar)
        else:
            if moments is None:
                moments = timeline(created_at, ordered)
            out[name] = run_on_timeline(d, moments, targets[name], calendar)
    return out


def current_cycle(cycles: Sequence[Cycle]) -> Cycle | None:
    """The metric's latest cycle (the open one if any, since only the last can be open)."""
    return cycles[-1] if cycles else None
