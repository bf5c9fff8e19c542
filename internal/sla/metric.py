"""A metric: a clock definition as data (DESIGN §8), made precise by the rule in metric_run.

A metric names the triggers that start, stop and resume its cycles, the statuses that pause
them, whether a ticket has one cycle of it (`once`) or a new one per start (`each_start`), and
optionally its own escalation ladder. Part one's two clocks, `response` and `resolution`, are two
such definitions (`default_metrics`).

Triggers are written as in the config: `created`, `agent_reply`, `customer_reply`,
`internal_note`, `reopened` and `status:<name>` (the ticket entered that status). A trigger set
is kept in the form an event is matched against, so that running a metric over a history does
set lookups rather than string work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from internal.sla.ladder import Ladder
from internal.sla.model import DONE_STATUSES, Activity, ClockKind, Status

CREATED = "created"
REOPENED = "reopened"
STATUS_PREFIX = "status:"
# The activity triggers: every activity but NONE, by its own name.
ACTIVITY_TRIGGERS = tuple(a.value for a in Activity if a is not Activity.NONE)
# Every trigger there is, in the order the README and the schema list them.
TRIGGERS = (
    CREATED,
    *ACTIVITY_TRIGGERS,
    REOPENED,
    *(STATUS_PREFIX + s.value for s in Status),
)


class Cycles(StrEnum):
    ONCE = "once"  # one cycle per ticket; a `resume` trigger runs it again, elapsed carried over
    EACH_START = "each_start"  # a new cycle at each start while none is open


class TriggerError(ValueError):
    """A trigger name that does not exist; the message quotes it (the caller names the key)."""


@dataclass(frozen=True)
class Triggers:
    """A set of triggers. `created` fires once, at the ticket's creation; `reopened` when a
    resolved or closed ticket enters any other status; an activity on an event of it; a status
    when the ticket enters it (a change to it, not an event repeating it)."""

    created: bool = False
    reopened: bool = False
    activities: frozenset[Activity] = frozenset()
    statuses: frozenset[Status] = frozenset()

    @classmethod
    def parse(cls, names: Iterable[str]) -> Triggers:
        """From trigger names as the config writes them; TriggerError on the first unknown."""
        created = reopened = False
        activities: set[Activity] = set()
        statuses: set[Status] = set()
        for name in names:
            if name == CREATED:
                created = True
            elif name == REOPENED:
                reopened = True
            elif name in ACTIVITY_TRIGGERS:
                activities.add(Activity(name))
            elif name.startswith(STATUS_PREFIX):
                statuses.add(parse_status(name))
            else:
                raise TriggerError(f"unknown trigger {name!r}")
        return cls(created, reopened, frozenset(activities), frozenset(statuses))

    @property
    def names(self) -> tuple[str, ...]:
        """The trigger names, in the order of TRIGGERS."""
        present = {STATUS_PREFIX + s.value for s in self.statuses}
        present.update(a.value for a in self.activities)
        if self.created:
            present.add(CREATED)
        if self.reopened:
            present.add(REOPENED)
        return tuple(t for t in TRIGGERS if t in present)

    def __bool__(self) -> bool:
        return self.created or self.reopened or bool(self.activities) or bool(self.statuses)


def parse_status(trigger: str) -> Status:
    """The status of a `status:<name>` trigger; TriggerError if there is no such status."""
    name = trigger[len(STATUS_PREFIX) :]
    try:
        return Status(name)
    except ValueError:
        raise TriggerError(
            f"unknown status {name!r} (statuses: {', '.join(s.value for s in Status)})"
        ) from None


NO_TRIGGERS = Triggers()


@dataclass(frozen=True)
class MetricDefinition:
    name: str  # the clock's metric: its key in policies' targets, clock rows and alerts
    start: Triggers
    stop: Triggers
    pause: frozenset[Status] = frozenset()  # an open cycle accrues nothing in these statuses
    resume: Triggers = NO_TRIGGERS  # once-metrics only: runs a stopped cycle again
    cycles: Cycles = Cycles.ONCE
    ladder: Ladder | None = None  # None: the config's ladder
    # (stops_in, resumes) when the metric is a clock of part one's kind (see status_clock), so
    # that it can be run by clocks.run_clock; None otherwise. Derived, not compared.
    status_clock: tuple[frozenset[Status], bool] | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "status_clock", status_clock(self))

    def problems(self) -> list[tuple[str, str]]:
        """What makes the definition unusable, as (key, message); empty when it is sound."""
        found: list[tuple[str, str]] = []
        if not self.start:
            found.append(("start", "at least one trigger is required"))
        # `created` fires before any cycle can be open, so it never stops one.
        if not (self.stop.reopened or self.stop.activities or self.stop.statuses):
            found.append(("stop", "the metric can never stop: name a trigger other than created"))
        if self.cycles is Cycles.EACH_START and self.resume:
            found.append(("resume", "an each_start metric cannot resume: each start is a cycle"))
        return found


def status_clock(d: MetricDefinition) -> tuple[frozenset[Status], bool] | None:
    """(stops_in, resumes) if the metric has the shape of part one's clocks, whose runs
    clocks.run_clock works out from the status changes alone (faster, and held equal to the
    general rule by a property test); None if it needs the general rule.

    That shape: once, started at creation, stopped only by entering statuses other than open,
    never paused in open (run_clock starts a clock running whatever its pause set), and resumed
    either on entering any status the stop does not name, or never."""
    stop, resume = d.stop, d.resume
    if (
        d.cycles is not Cycles.ONCE
        or not d.start.created  # a once-metric's only start is at creation
        or stop.activities
        or stop.reopened
        or not stop.statuses
        or Status.OPEN in stop.statuses
        or Status.OPEN in d.pause
        or resume.activities
    ):
        return None

    # run_clock's `resumes`. True: `resume` fires on every way out of a stopping status into
    # another status, and on none into a stopping one (which would resume and stop the cycle at
    # once, moving its anchor). False: it fires on no change of status at all (a stopped cycle's
    # status may wander on before some later change would fire it).
    def fires(old: Status, new: Status) -> bool:
        return new in resume.statuses or (
            resume.reopened and old in DONE_STATUSES and new not in DONE_STATUSES
        )

    stops = stop.statuses
    if all(fires(old, new) != (new in stops) for old in stops for new in Status if new != old):
        return stops, True
    if not any(fires(old, new) for old in Status for new in Status if new != old):
        return stops, False
    return None


def once_resume_default() -> Triggers:
    """`resume` of a once-metric that does not name it: a reopen runs the cycle again."""
    return Triggers(reopened=True)


def _statuses(*statuses: Status) -> Triggers:
    return Triggers(statuses=frozenset(statuses))


# Part one's first response: from creation until the first status other than OPEN, never again.
RESPONSE_METRIC = MetricDefinition(
    ClockKind.RESPONSE.value,
    start=Triggers(created=True),
    stop=_statuses(Status.IN_PROGRESS, Status.ON_HOLD, Status.RESOLVED, Status.CLOSED),
    resume=NO_TRIGGERS,
)


def resolution_metric(pause_statuses: Iterable[Status]) -> MetricDefinition:
    """Part one's resolution: stops when resolved or closed, resumes on reopen, paused in the
    config's pause statuses."""
    return MetricDefinition(
        ClockKind.RESOLUTION.value,
        start=Triggers(created=True),
        stop=_statuses(*sorted(DONE_STATUSES)),
        pause=frozenset(pause_statuses),
        resume=Triggers(reopened=True),
    )


def default_metrics(pause_statuses: Iterable[Status]) -> tuple[MetricDefinition, ...]:
    """What a config without a `metrics:` section means: part one's two clocks."""
    return (RESPONSE_METRIC, resolution_metric(pause_statuses))
