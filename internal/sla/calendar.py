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

    def working_intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The working time in [start, end) as its maximal intervals, in order: what a clock's
        timeline splits a run by. Their lengths add up to `working_seconds(start, end)`."""
        ...


class AlwaysOpen:
    """The built-in 24x7 calendar: every second counts."""

    name = TWENTY_FOUR_SEVEN

    # Both run for nearly every ticket ingested, so they avoid max() and keyword arguments, which
    # cost more than the arithmetic. `0.0 if x < 0.0 else x` is max(x, 0.0) exactly, NaN and -0.0
    # included.

    def working_seconds(self, start: datetime, end: datetime) -> float:
        seconds = (end - start).total_seconds()
        return 0.0 if seconds < 0.0 else seconds

    def add_working(self, start: datetime, seconds: float) -> datetime:
        return start + timedelta(0, 0.0 if seconds < 0.0 else seconds)

    def working_intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        return [(start, end)] if end > start else []


ALWAYS_OPEN = AlwaysOpen()
