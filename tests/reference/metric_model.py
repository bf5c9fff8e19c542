"""Reference model of how a metric runs over a ticket's history (DESIGN §8 and the rule agreed to
make it precise, whose steps (a)-(d) `replay` restates).

A direct simulation, kept deliberately slow and explicit so that it is easy to check by eye:

1. the events are put in event-time order behind a virtual creation event, and each one is turned
   into the triggers it fires and the ticket's status after it;
2. for each metric, steps (a)-(d) of the rule are replayed event by event, recording every cycle
   as a list of open spans [from, to) (a `once` cycle gets one span per resume);
3. each span is cut by the ticket's status timeline into the pieces where the status is not one
   of the metric's pause statuses;
4. elapsed time is the calendar's working time of those pieces up to `now`, and the due and
   warning instants are found by walking the same pieces until the threshold is reached.

Nothing here is shared with `internal/`: the point of the model is to disagree with the engine
when the engine is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal

from reference.calendar_model import ZERO, Calendar, utc

STATUSES = ("open", "in_progress", "on_hold", "resolved", "closed")
ACTIVITIES = ("none", "agent_reply", "customer_reply", "internal_note")
FINISHED = frozenset({"resolved", "closed"})
PLAIN_TRIGGERS = frozenset(
    {"created", "agent_reply", "customer_reply", "internal_note", "reopened"}
)
STATUS_TRIGGERS = frozenset(f"status:{name}" for name in STATUSES)
TRIGGERS = PLAIN_TRIGGERS | STATUS_TRIGGERS

Mode = Literal["running", "paused", "stopped"]
State = Literal["ok", "warning", "breached", "met"]


@dataclass(frozen=True)
class Event:
    """One ticket event: its event time (`updated_at`), the status it sets (None = unchanged) and
    its activity."""

    at: datetime
    status: str | None
    activity: str = "none"

    def __post_init__(self) -> None:
        utc(self.at)  # refuses naive datetimes
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status {self.status!r}: one of {STATUSES} or None")
        if self.activity not in ACTIVITIES:
            raise ValueError(f"activity {self.activity!r}: one of {ACTIVITIES}")


@dataclass(frozen=True)
class Metric:
    """A clock definition (DESIGN §8). `resume` None means the rule's default: [reopened] for a
    `once` metric, nothing for an `each_start` one (which may not name `resume`)."""

    name: str
    start: tuple[str, ...]
    stop: tuple[str, ...]
    pause: tuple[str, ...] = ()
    cycles: str = "once"
    resume: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.cycles not in ("once", "each_start"):
            raise ValueError(f"{self.name}.cycles {self.cycles!r}: once or each_start")
        for key, triggers in (("start", self.start), ("stop", self.stop)):
            if not triggers:
                raise ValueError(f"{self.name}.{key}: needs at least one trigger")
        for key, triggers in (
            ("start", self.start),
            ("stop", self.stop),
            ("resume", self.resume or ()),
        ):
            for trigger in triggers:
                if trigger not in TRIGGERS:
                    raise ValueError(f"{self.name}.{key}: unknown trigger {trigger!r}")
        for trigger in self.pause:
            if trigger not in STATUS_TRIGGERS:
                raise ValueError(f"{self.name}.pause: {trigger!r} is not status:<name>")
        if self.cycles == "each_start" and self.resume is not None:
            raise ValueError(f"{self.name}.resume: each_start metrics cannot name resume")

    @property
    def resume_triggers(self) -> frozenset[str]:
        if self.resume is not None:
            return frozenset(self.resume)
        return frozenset({"reopened"}) if self.cycles == "once" else frozenset()

    @property
    def stop_statuses(self) -> frozenset[str]:
        """The statuses a cycle cannot run in: those the stop list names as status:<name>."""
        return frozenset(t.removeprefix("status:") for t in self.stop if t in STATUS_TRIGGERS)

    @property
    def pause_statuses(self) -> frozenset[str]:
        return frozenset(t.removeprefix("status:") for t in self.pause)


@dataclass(frozen=True)
class Step:
    """One rung of the escalation ladder: at `at_percent` of the target, `level` of `kind`."""

    at_percent: float
    level: int
    kind: Literal["warning", "breach"]


@dataclass(frozen=True)
class Ladder:
    steps: tuple[Step, ...]

    @property
    def first_warning(self) -> Step | None:
        """The warning step reached first: the lowest at_percent of kind warning."""
        warnings = [step for step in self.steps if step.kind == "warning"]
        return min(warnings, key=lambda step: step.at_percent) if warnings else None


DEFAULT_LADDER = Ladder(
    (
        Step(85, 1, "warning"),
        Step(95, 2, "warning"),
        Step(100, 3, "breach"),
        Step(150, 4, "breach"),
    )
)


@dataclass(frozen=True)
class Cycle:
    """One SLA instance of one metric on one ticket, as of `now`. Instants are UTC."""

    metric: str
    cycle: int
    started_at: datetime
    stopped_at: datetime | None
    elapsed_seconds: float
    mode: Mode
    due_at: datetime | None
    warning_at: datetime | None
    state: State


# -- the definitions of part one and of DESIGN §8 -----------------------------------------------


def response_metric() -> Metric:
    """Part one's response clock: stops at the first status that is not open, never resumes."""
    return Metric(
        "response",
        start=("created",),
        stop=("status:in_progress", "status:on_hold", "status:resolved", "status:closed"),
        resume=(),
    )


def resolution_metric(pause_statuses: Iterable[str]) -> Metric:
    """Part one's resolution clock: paused in the config's pause_statuses, resumed on reopen."""
    return Metric(
        "resolution",
        start=("created",),
        stop=("status:resolved", "status:closed"),
        pause=tuple(f"status:{name}" for name in pause_statuses),
        resume=("reopened",),
    )


def first_reply_metric() -> Metric:
    return Metric(
        "first_reply", start=("created",), stop=("agent_reply",), pause=("status:on_hold",)
    )


def next_reply_metric() -> Metric:
    return Metric(
        "next_reply",
        start=("customer_reply",),
        stop=("agent_reply", "status:resolved", "status:closed"),
        cycles="each_start",
    )


def periodic_update_metric() -> Metric:
    return Metric(
        "periodic_update", start=("agent_reply",), stop=("agent_reply",), cycles="each_start"
    )


def design_metrics() -> tuple[Metric, ...]:
    """The four metrics of DESIGN §8's example (resolution paused on on_hold)."""
    return (
        first_reply_metric(),
        next_reply_metric(),
        periodic_update_metric(),
        Metric(
            "resolution",
            start=("created",),
            stop=("status:resolved", "status:closed"),
            pause=("status:on_hold",),
        ),
    )


# -- step 1: the ordered history and its triggers ------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """One event as the rule sees it: its (clamped) time, the status before and after it, and the
    triggers it fires. The virtual creation event has `before` None."""

    at: datetime
    before: str | None
    after: str
    triggers: frozenset[str]


def distinct_events(events: Iterable[Event]) -> list[Event]:
    """The events in event-time order, exact repeats dropped. (ticket_id, updated_at) is the
    idempotency key, so two different events at one instant are a broken history: refused."""
    by_instant: dict[datetime, Event] = {}
    for event in events:
        key = utc(event.at)
        seen = by_instant.get(key)
        if seen is not None and (seen.status, seen.activity) != (event.status, event.activity):
            raise ValueError(f"two different events at {key.isoformat()}")
        by_instant.setdefault(key, event)
    return [by_instant[key] for key in sorted(by_instant)]


def moments(created_at: datetime, events: Iterable[Event]) -> list[Moment]:
    """The virtual creation event, then every event in event-time order. An event stamped before
    created_at keeps its place in that order and takes created_at as its time."""
    created_at = utc(created_at)
    out = [Moment(created_at, None, "open", frozenset({"created", "status:open"}))]
    status = "open"
    for event in distinct_events(events):
        after = event.status if event.status is not None else status
        triggers: set[str] = set()
        if event.activity != "none":
            triggers.add(event.activity)
        if after != status:
            triggers.add(f"status:{after}")
        if status in FINISHED and after not in FINISHED:
            triggers.add("reopened")
        out.append(Moment(max(utc(event.at), created_at), status, after, frozenset(triggers)))
        status = after
    return out


# -- step 2: cycles as open spans ----------------------------------------------------------------


@dataclass
class _Run:
    """A cycle being replayed: its number and its open spans, the last one possibly unended."""

    number: int
    spans: list[tuple[datetime, datetime | None]] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.spans[-1][1] is None

    def open_at(self, at: datetime) -> None:
        self.spans.append((at, None))

    def close_at(self, at: datetime) -> None:
        start, _ = self.spans[-1]
        self.spans[-1] = (start, at)


def replay(metric: Metric, history: Sequence[Moment]) -> list[_Run]:
    """Steps (a)-(d) of the rule at every moment, in order:

    (a) stop: an open (running or paused) cycle stops if a `stop` trigger fires;
    (b) start: if no cycle is open now and a `start` trigger fires, each_start opens cycle n+1,
        once opens cycle 1 if the metric has no cycle yet;
    (c) resume (once only): a stopped cycle 1 not stopped by (a) at this event runs again if a
        `resume` trigger fires, its elapsed time carried over;
    (d) a cycle open after (b)/(c) while the status is one the metric's `stop` names as
        status:<name> stops at once (a clock cannot run in a stopping status).
    """
    start, stop = frozenset(metric.start), frozenset(metric.stop)
    resume, stop_statuses = metric.resume_triggers, metric.stop_statuses
    runs: list[_Run] = []
    for moment in history:
        fired = moment.triggers
        # (a) stop an open cycle.
        stopped_here = False
        if runs and runs[-1].is_open and fired & stop:
            runs[-1].close_at(moment.at)
            stopped_here = True
        # (b) start, when no cycle is open now.
        if not (runs and runs[-1].is_open) and fired & start:
            if metric.cycles == "each_start":
                runs.append(_Run(len(runs) + 1))
                runs[-1].open_at(moment.at)
            elif not runs:
                runs.append(_Run(1))
                runs[-1].open_at(moment.at)
        # (c) resume a stopped once-cycle, unless (a) stopped it at this very event.
        if (
            metric.cycles == "once"
            and runs
            and not runs[0].is_open
            and not stopped_here
            and fired & resume
        ):
            runs[0].open_at(moment.at)
        # (d) a clock cannot run in a stopping status.
        if runs and runs[-1].is_open and moment.after in stop_statuses:
            runs[-1].close_at(moment.at)
    return runs


# -- step 3: pauses ------------------------------------------------------------------------------


def status_timeline(history: Sequence[Moment]) -> list[tuple[datetime, datetime | None, str]]:
    """The ticket's status as pieces [from, to) (the last one unended)."""
    pieces: list[tuple[datetime, datetime | None, str]] = []
    for index, moment in enumerate(history):
        to = history[index + 1].at if index + 1 < len(history) else None
        pieces.append((moment.at, to, moment.after))
    return pieces


def unpaused_pieces(
    spans: Sequence[tuple[datetime, datetime | None]],
    timeline: Sequence[tuple[datetime, datetime | None, str]],
    pause_statuses: frozenset[str],
) -> list[tuple[datetime, datetime | None]]:
    """The parts of the open spans during which the status is not a pause status, in time order
    (None as an end = still going)."""
    out: list[tuple[datetime, datetime | None]] = []
    for span_from, span_to in spans:
        for piece_from, piece_to, status in timeline:
            if status in pause_statuses:
                continue
            low = max(span_from, piece_from)
            high = _earlier(span_to, piece_to)
            if high is None or high > low:
                out.append((low, high))
    return out


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two ends, None meaning 'never'."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


# -- step 4: elapsed, due, warning, state --------------------------------------------------------


def elapsed(
    pieces: Sequence[tuple[datetime, datetime | None]], calendar: Calendar, now: datetime
) -> timedelta:
    total = ZERO
    for low, high in pieces:
        end = now if high is None else min(high, now)
        total += calendar.working_time(low, end)
    return total


def reached_at(
    pieces: Sequence[tuple[datetime, datetime | None]], calendar: Calendar, amount: timedelta
) -> datetime | None:
    """The instant the pieces' working time reaches `amount`, None if they end before it does.
    Reaching it exactly at a piece's end counts as reaching it."""
    so_far = ZERO
    for low, high in pieces:
        if high is not None:
            here = calendar.working_time(low, high)
            if so_far + here < amount:
                so_far += here
                continue
        return calendar.reach(low, amount - so_far)
    return None


def threshold(target_seconds: float, percent: float) -> timedelta:
    """percent of the target, rounded up to the microsecond (exact arithmetic, no float drift)."""
    micros = Fraction(target_seconds) * Fraction(percent) / 100 * 1_000_000
    return timedelta(microseconds=math.ceil(micros))


def clocks(
    created_at: datetime,
    events: Iterable[Event],
    metrics: Sequence[Metric],
    targets: dict[str, float],
    calendar: Calendar,
    now: datetime,
    ladder: Ladder = DEFAULT_LADDER,
) -> list[Cycle]:
    """Every cycle of every metric that has a target, in metric order then cycle number.

    `now` must not come before created_at or any event: the model answers for a history that is
    complete as of `now` (a later event would be a future the engine cannot know about yet).
    """
    now = utc(now)
    names = [metric.name for metric in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics: duplicate names in {names}")
    history = moments(created_at, events)
    if history[0].at > now or any(at > now for at in events_of(history)):
        raise ValueError("now: before created_at or before an event of the history")
    timeline = status_timeline(history)
    final_status = history[-1].after
    warning_step = ladder.first_warning
    out: list[Cycle] = []
    for metric in metrics:
        if metric.name not in targets:
            continue  # the policy has no target: no cycles of this metric
        target = targets[metric.name]
        if target <= 0:
            raise ValueError(f"targets.{metric.name}: must be positive")
        for run in replay(metric, history):
            pieces = unpaused_pieces(run.spans, timeline, metric.pause_statuses)
            due_at = reached_at(pieces, calendar, threshold(target, 100))
            warning_at = (
                None
                if warning_step is None
                else reached_at(pieces, calendar, threshold(target, warning_step.at_percent))
            )
            mode: Mode
            if not run.is_open:
                mode = "stopped"
            elif final_status in metric.pause_statuses:
                mode = "paused"
            else:
                mode = "running"
            state: State
            if due_at is not None and due_at <= now:
                state = "breached"
            elif mode == "stopped":
                state = "met"
            elif warning_at is not None and warning_at <= now:
                state = "warning"
            else:
                state = "ok"
            out.append(
                Cycle(
                    metric=metric.name,
                    cycle=run.number,
                    started_at=run.spans[0][0],
                    stopped_at=run.spans[-1][1],
                    elapsed_seconds=elapsed(pieces, calendar, now).total_seconds(),
                    mode=mode,
                    due_at=due_at,
                    warning_at=warning_at,
                    state=state,
                )
            )
    return out


def events_of(history: Sequence[Moment]) -> list[datetime]:
    """The (clamped) times of the real events of a history."""
    return [moment.at for moment in history[1:]]


def current_cycles(cycles: Sequence[Cycle]) -> list[Cycle]:
    """The current cycle of each metric (the one with the highest number), as GetTicket's default
    view lists them, in the order the metrics first appear."""
    latest: dict[str, Cycle] = {}
    for cycle in cycles:
        if cycle.metric not in latest or cycle.cycle > latest[cycle.metric].cycle:
            latest[cycle.metric] = cycle
    return list(latest.values())


def ladder_instants(
    created_at: datetime,
    events: Iterable[Event],
    metric: Metric,
    target: float,
    calendar: Calendar,
    ladder: Ladder = DEFAULT_LADDER,
) -> dict[int, list[tuple[Step, datetime | None]]]:
    """For each cycle of `metric` (by number), the instant each step of the ladder is reached
    under the known history, None for a step it never reaches: what the alerts of that cycle
    should be stamped with, each level once."""
    history = moments(created_at, events)
    timeline = status_timeline(history)
    out: dict[int, list[tuple[Step, datetime | None]]] = {}
    for run in replay(metric, history):
        pieces = unpaused_pieces(run.spans, timeline, metric.pause_statuses)
        out[run.number] = [
            (step, reached_at(pieces, calendar, threshold(target, step.at_percent)))
            for step in ladder.steps
        ]
    return out
