"""Calendars on which SLA time is counted.

A calendar answers two questions about working time, and every SLA computation is built on them:
how much working time lies between two instants, and when a given amount of working time, counted
from an instant, runs out. All instants are timezone-aware datetimes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

TWENTY_FOUR_SEVEN = "24x7"


class Calendar(Protocol):
    @property
    def name(self) -> str: ...

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds in [start, end); 0 when end <= start."""
        ...

    def add_working(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant t >= start with working_seconds(start, t) >= seconds."""
        ...


class AlwaysOpen:
    """The built-in 24x7 calendar: every second counts."""

    name = TWENTY_FOUR_SEVEN

    def working_seconds(self, start: datetime, end: datetime) -> float:
        return max((end - start).total_seconds(), 0.0)

    def add_working(self, start: datetime, seconds: float) -> datetime:
        return start + timedelta(seconds=max(seconds, 0.0))


ALWAYS_OPEN = AlwaysOpen()
