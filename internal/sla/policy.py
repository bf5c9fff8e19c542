"""What a policy decides for one ticket: its targets, and the rules shared by all tickets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from internal.sla.calendar import Calendar
from internal.sla.clock_definition import DEFAULT_CLOCKS, ClockDefinition
from internal.sla.ladder import Ladder
from internal.sla.model import Status


@dataclass(frozen=True)
class Targets:
    seconds: Mapping[str, float]  # metric -> target, seconds of calendar time
    calendar: Calendar


@dataclass(frozen=True)
class Rules:
    ladder: Ladder
    pause_statuses: frozenset[Status]
    version: str  # hash of the config that decided; recorded with every alert
    # The clocks every ticket has, in this order; each needs a target in the ticket's Targets.
    clocks: tuple[ClockDefinition, ...] = field(default=DEFAULT_CLOCKS)
