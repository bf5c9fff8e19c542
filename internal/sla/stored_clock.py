"""A clock as the store keeps it, and what is derived from it at a given `now`.

Ingest works a clock out from the ticket's history (clocks.py, ticket_sla.py) and stores its
anchor (the elapsed seconds up to its last change of mode) with the instants that follow from it.
Everything read later, the elapsed time, the state, the step to alert and the next check, is
derived here from that stored form, by the evaluator and by the API alike.

A clock's calendar is stored by name. When the config in force no longer defines that name (the
ticket's policy left the config, calendar and all), the clock is not counted on any other
calendar: its stored due time, worked out on its own calendar, stays the truth. Calendar time never
runs faster than wall time, so `target - (due_at - now)` is a lower bound of the elapsed time: the
steps before the target are timed from it, which makes them late at worst, never early; the breach
at 100% is exact; steps past the target are not known, and do not fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from internal.sla.calendar import Calendar
from internal.sla.clocks import state_at
from internal.sla.ladder import Ladder, Step
from internal.sla.model import Mode, State

_MODES = {mode.value: mode for mode in Mode}


class Evaluation(NamedTuple):  # a tuple: built for every due clock the evaluator reads
    step: Step | None  # the step to alert now, if any: the highest crossed, never an earlier one
    fired_level: int  # the clock's fired level after this evaluation
    next_check_at: datetime | None  # when the next unfired step is crossed; None: never


@dataclass(frozen=True, init=False)
class StoredClock:
    target: float  # seconds of calendar time
    calendar_name: str
    calendar: Calendar | None  # None: the config in force does not define `calendar_name`
    mode: Mode
    anchor_at: datetime  # the last change of mode
    anchor_elapsed: float  # seconds counted up to anchor_at
    due_at: datetime | None  # when elapsed reaches the target (past or future)
    warn_at: datetime | None  # when elapsed reaches the first warning step
    fired_level: int

    def __init__(
        self,
        target: float,
        calendar_name: str,
        calendar: Calendar | None,
        mode: Mode,
        anchor_at: datetime,
        anchor_elapsed: float,
        due_at: datetime | None,
        warn_at: datetime | None,
        fired_level: int,
    ) -> None:
        # Filled directly rather than a call per field (see the note above Change in clocks.py):
        # the API builds one for every clock of a dashboard page.
        attrs = self.__dict__
        attrs["target"] = target
        attrs["calendar_name"] = calendar_name
        attrs["calendar"] = calendar
        attrs["mode"] = mode
        attrs["anchor_at"] = anchor_at
        attrs["anchor_elapsed"] = anchor_elapsed
        attrs["due_at"] = due_at
        attrs["warn_at"] = warn_at
        attrs["fired_level"] = fired_level

    @classmethod
    def from_row(cls, row: Mapping[str, Any], calendars: Mapping[str, Calendar]) -> StoredClock:
        """From a row of sla_clocks (the columns by name, as the store returns them), with the
        calendars of the config in force."""
        name = row["calendar"]
        return cls(
            float(row["target_s"]),
            name,
            calendars.get(name),
            _MODES[row["mode"]],  # a dict lookup: a third of Mode()'s cost, once per clock read
            row["anchor_at"],
            float(row["anchor_elapsed"]),
            row["due_at"],
            row["warn_at"],
            int(row["fired_level"]),
        )

    def elapsed(self, now: datetime) -> float:
        """Seconds counted at `now`; on a calendar the config no longer defines, the lower bound
        the stored due time gives (see the module docstring)."""
        elapsed = self.anchor_elapsed
        if self.mode is not Mode.RUNNING:
            return elapsed
        calendar = self.calendar
        if calendar is not None:
            return elapsed + calendar.working_seconds(self.anchor_at, now)
        due_at = self.due_at
        if due_at is None:
            return elapsed
        bound = self.target - (due_at - now).total_seconds() if now < due_at else self.target
        return bound if bound > elapsed else elapsed

    def remaining(self, now: datetime) -> float:
        """Seconds left to the target at `now`; negative once it is passed."""
        return self.target - self.elapsed(now)

    def state(self, now: datetime) -> State:
        return state_at(self.mode, self.due_at, self.warn_at, now)

    def crossing_at(self, seconds: float) -> datetime | None:
        """When a running clock's elapsed time reaches `seconds` (the anchor for an amount
        counted by then); None if the clock is not running, or, on a calendar the config no
        longer defines, for an amount past the target."""
        if self.mode is not Mode.RUNNING:
            return None
        calendar = self.calendar
        if calendar is not None:
            return calendar.add_working(self.anchor_at, seconds - self.anchor_elapsed)
        due_at = self.due_at
        if due_at is None or seconds > self.target:
            return None
        if seconds <= self.anchor_elapsed:
            return self.anchor_at
        # Where the lower bound of `elapsed` reaches `seconds`: no earlier than the true instant.
        return due_at - timedelta(seconds=self.target - seconds)

    def evaluate(self, ladder: Ladder, now: datetime) -> Evaluation:
        """The step to alert at `now` (the highest crossed above the fired level; the ones below
        it are skipped, not sent late), the fired level after it and the next check."""
        fired = self.fired_level
        step = ladder.highest_crossed(self.target, self.elapsed(now), fired)
        if step is not None:
            fired = step.level
        following = ladder.next_step(fired)
        next_check = None if following is None else self.crossing_at(following.seconds(self.target))
        return Evaluation(step, fired, next_check)
