"""What a policy decides for one ticket: its targets, and the rules shared by all tickets."""

from __future__ import annotations

from dataclasses import dataclass

from internal.sla.calendar import Calendar
from internal.sla.ladder import Ladder
from internal.sla.model import Status


@dataclass(frozen=True)
class Targets:
    response: float  # seconds of calendar time
    resolution: float
    calendar: Calendar


@dataclass(frozen=True)
class Rules:
    ladder: Ladder
    pause_statuses: frozenset[Status]
    version: str  # hash of the config that decided; recorded with every alert
