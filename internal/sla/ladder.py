"""The escalation ladder: which level a clock has reached, and when it reaches the next one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from internal.sla.clocks import Clock
from internal.sla.model import AlertKind


@dataclass(frozen=True)
class Step:
    at_percent: float
    level: int
    kind: AlertKind
    notify: tuple[str, ...] = ()
    # An unacknowledged alert of this step is notified again every `repeat_every` seconds, at
    # most `repeat_max` times, while its clock has not stopped (DESIGN §11). None: never.
    repeat_every: float | None = None
    repeat_max: int | None = None

    def seconds(self, target: float) -> float:
        return target * self.at_percent / 100.0


@dataclass(frozen=True)
class Ladder:
    """Steps in ascending order of both `at_percent` and `level` (the config loader checks).

    What every ticket asks of the ladder is worked out once, in `__post_init__`, rather than with
    `cached_property`, whose lock (shared by every instance on Python 3.11) ingest threads queued
    on.
    """

    steps: tuple[Step, ...]
    # Where a clock turns WARNING: the lowest warning step, if any.
    warn_percent: float | None = field(init=False, repr=False, compare=False)
    # next_step's answers for the levels a clock can have fired: none yet (0), or a step's.
    _next_after: dict[int, Step | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        warnings = [s.at_percent for s in self.steps if s.kind is AlertKind.WARNING]
        object.__setattr__(self, "warn_percent", min(warnings) if warnings else None)
        levels = (0, *(s.level for s in self.steps))
        object.__setattr__(self, "_next_after", {lv: self._first_above(lv) for lv in levels})

    def highest_crossed(self, target: float, elapsed: float, fired_level: int) -> Step | None:
        """The highest step above `fired_level` that `elapsed` has reached: the only one to fire
        when an evaluation finds several crossed at once."""
        crossed = [s for s in self.steps if s.level > fired_level and elapsed >= s.seconds(target)]
        return crossed[-1] if crossed else None

    def next_step(self, fired_level: int) -> Step | None:
        known = self._next_after
        if fired_level in known:
            return known[fired_level]
        return self._first_above(fired_level)

    def _first_above(self, fired_level: int) -> Step | None:
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
