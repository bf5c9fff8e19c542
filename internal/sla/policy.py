"""What a policy decides for one ticket: its targets, and the rules shared by all tickets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from internal.sla.calendar import Calendar
from internal.sla.ladder import Ladder
from internal.sla.metric import MetricDefinition, default_metrics
from internal.sla.model import Status


@dataclass(frozen=True)
class Targets:
    seconds: Mapping[str, float]  # metric -> target, seconds of calendar time
    calendar: Calendar


@dataclass(frozen=True)
class Rules:
    ladder: Ladder  # the config's ladder: that of every metric without its own
    pause_statuses: frozenset[Status]
    version: str  # hash of the config that decided; recorded with every alert
    # The metrics every ticket is measured by, in this order; a ticket has cycles of those its
    # Targets has a target for. Empty: part one's two (default_metrics of pause_statuses).
    metrics: tuple[MetricDefinition, ...] = ()
    # metric name -> the ladder its cycles escalate on (its own, else `ladder`). Derived.
    ladders: Mapping[str, Ladder] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        metrics = self.metrics
        if not metrics:
            metrics = default_metrics(self.pause_statuses)
            object.__setattr__(self, "metrics", metrics)
        object.__setattr__(
            self,
            "ladders",
            {d.name: self.ladder if d.ladder is None else d.ladder for d in metrics},
        )

    def ladder_for(self, metric: str) -> Ladder:
        """The ladder of `metric`'s cycles: its own, else the config's (also for a metric the
        rules no longer define, whose stored cycles are still evaluated)."""
        return self.ladders.get(metric, self.ladder)
