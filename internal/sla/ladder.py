"""The escalation ladder: which level a clock has reached, and when it reaches the next one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from internal.sla.clocks import Clock
from internal.sla.model import AlertKind


@dataclass(frozen=True)
class Step:
    at_percent: float
    level: int
    kind: AlertKind
    notify: tuple[str, ...] = ()

    def seconds(self, target: float) -> float:
        return target * self.at_percent / 100.0


@dataclass(frozen=True)
class Ladder:
    """Steps in ascending order of both `at_percent` and `level` (the config loader checks)."""

    steps: tuple[Step, ...]

    @cached_property
    def warn_percent(self) -> float | None:
        """Where a clock turns WARNING: the lowest warning step, if any."""
        warnings = [s.at_percent for s in self.steps if s.kind is AlertKind.WARNING]
        return min(warnings) if warnings else None

    def step(self, level: int) -> Step | None:
        return next((s for s in self.steps if s.level == level), None)

    def highest_crossed(self, target: float, elapsed: float, fired_level: int) -> Step | None:
        """The highest step above `fired_level` that `elapsed` has reached: the only one to fire
        when an evaluation finds several crossed at once."""
        crossed = [s for s in self.steps if s.level > fired_level and elapsed >= s.seconds(target)]
        return crossed[-1] if crossed else None

    def next_step(self, fired_level: int) -> Step | None:
        return next((s for s in self.steps if s.level > fired_level), None)


def next_check_at(clock: Clock, ladder: Ladder, fired_level: int) -> datetime | None:
    """When the next unfired step is (or was) crossed; None when no step is left to fire or the
    clock is not running towards one."""
    step = ladder.next_step(fired_level)
    if step is None:
        return None
    return clock.crossing_at(step.seconds(clock.target))


def warn_at(clock: Clock, ladder: Ladder) -> datetime | None:
    percent = ladder.warn_percent
    return None if percent is None else clock.crossing_at(clock.target * percent / 100.0)
