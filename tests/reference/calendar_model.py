"""Reference calendars: how much working time lies between two instants, and when a given amount
of working time after a start is reached.

Two kinds, as DESIGN §5 names them: `24x7` (every second counts) and business hours in a time
zone (hours per weekday, holidays as local dates). The business calendar walks the zone's local
days one by one and turns each day's hours into a window of real instants through zoneinfo, so a
day on which the clocks change is as long as it really is (23 or 25 hours in Europe/Berlin).

All arithmetic happens on UTC instants: Python subtracts and compares two datetimes that share a
tzinfo by their wall times, which would count a DST day as 24 hours.

Written for obviousness, not speed: a span of a year walks 366 days.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ZERO = timedelta(0)
DAY = timedelta(days=1)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
_HOURS = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
# reach() gives up after this many local days without finding the working time it needs (only a
# calendar whose every working day is a holiday gets there).
_MAX_DAYS = 366 * 50


def utc(at: datetime) -> datetime:
    """The same instant in UTC; refuses naive datetimes (time is always aware here)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: aware datetimes only")
    return at.astimezone(UTC)


def seconds(amount: timedelta) -> float:
    return amount.total_seconds()


class Calendar:
    """What both calendars offer. `working_time` and `reach` are the two primitives."""

    name: str = "calendar"

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """Working time in [start, end); zero when end <= start."""
        raise NotImplementedError

    def reach(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant t >= start with working_time(start, t) >= amount (UTC)."""
        raise NotImplementedError

    def working_seconds(self, start: datetime, end: datetime) -> float:
        return seconds(self.working_time(start, end))

    def reach_seconds(self, start: datetime, amount_seconds: float) -> datetime:
        return self.reach(start, timedelta(seconds=amount_seconds))


class TwentyFourSeven(Calendar):
    """The built-in `24x7` calendar: working time is real elapsed time."""

    name = "24x7"

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        return max(utc(end) - utc(start), ZERO)

    def reach(self, start: datetime, amount: timedelta) -> datetime:
        return utc(start) + max(amount, ZERO)


@dataclass(frozen=True)
class Hours:
    """One weekday's working hours in local wall time; `end` None means midnight at the day's end
    ("24:00")."""

    start: time
    end: time | None

    @classmethod
    def parse(cls, text: str) -> Hours:
        match = _HOURS.match(text.strip())
        if match is None:
            raise ValueError(f"hours {text!r}: expected HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise ValueError(f"hours {text!r}: not a time of day")
        start = time(h1, m1)
        end = None if h2 == 24 else time(h2, m2)
        if end is not None and end <= start:
            raise ValueError(f"hours {text!r}: the end must come after the start")
        return cls(start, end)


class BusinessCalendar(Calendar):
    """Business hours in a time zone: at most one window of hours per weekday, holidays as dates
    in that zone (a holiday has no working time at all).

    A day's window is [start, end) in local wall time, each end turned into an instant by zoneinfo
    with fold=0: a wall time that occurs twice (the autumn change) means its first occurrence, one
    that does not exist (the spring gap) is read with the offset in force before the gap (PEP 495),
    i.e. it lands as many minutes after the gap as it named inside it. Hours that avoid 02:00-03:00
    on the change days, as office hours do, never meet either case.
    """

    def __init__(
        self,
        timezone: str,
        hours: Mapping[str, str],
        holidays: Iterable[str | date] = (),
        name: str = "business",
    ) -> None:
        self.name = name
        self.zone = ZoneInfo(timezone)
        unknown = sorted(set(hours) - set(WEEKDAYS))
        if unknown:
            raise ValueError(f"hours: unknown weekday {unknown[0]!r}")
        self.hours: dict[int, Hours] = {
            WEEKDAYS.index(day): Hours.parse(text) for day, text in hours.items()
        }
        if not self.hours:
            raise ValueError("hours: a business calendar needs at least one working day")
        self.holidays = frozenset(
            day if isinstance(day, date) else date.fromisoformat(day) for day in holidays
        )

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working window of one local day as UTC instants, or None (weekend, holiday)."""
        hours = self.hours.get(day.weekday())
        if hours is None or day in self.holidays:
            return None
        start = datetime.combine(day, hours.start, tzinfo=self.zone)
        if hours.end is None:
            end = datetime.combine(day + DAY, time(0), tzinfo=self.zone)
        else:
            end = datetime.combine(day, hours.end, tzinfo=self.zone)
        start_utc, end_utc = utc(start), utc(end)
        if end_utc <= start_utc:  # only a window squeezed by the spring gap could get here
            return None
        return start_utc, end_utc

    def _local_day(self, at: datetime) -> date:
        return utc(at).astimezone(self.zone).date()

    def _windows_from(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        for offset in range(_MAX_DAYS):
            window = self.window(day + offset * DAY)
            if window is not None:
                yield window

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        start, end = utc(start), utc(end)
        if end <= start:
            return ZERO
        total = ZERO
        # The day before start's local day too: it costs nothing and spares reasoning about
        # windows that might reach past a local midnight.
        day = self._local_day(start) - DAY
        last = self._local_day(end)
        while day <= last:
            window = self.window(day)
            if window is not None:
                low, high = max(window[0], start), min(window[1], end)
                if high > low:
                    total += high - low
            day += DAY
        return total

    def reach(self, start: datetime, amount: timedelta) -> datetime:
        start = utc(start)
        if amount <= ZERO:
            return start
        remaining = amount
        for window_start, window_end in self._windows_from(self._local_day(start) - DAY):
            if window_end <= start:
                continue
            low = max(window_start, start)
            available = window_end - low
            if remaining <= available:
                return low + remaining
            remaining -= available
        raise ValueError(f"calendar {self.name!r}: no working time found after {start}")


TWENTY_FOUR_SEVEN = TwentyFourSeven()


def emea_office() -> BusinessCalendar:
    """DESIGN §5's example calendar: Europe/Berlin, Monday-Friday 09:00-17:00, Christmas off."""
    return BusinessCalendar(
        "Europe/Berlin",
        {day: "09:00-17:00" for day in WEEKDAYS[:5]},
        ["2026-12-25", "2026-12-26"],
        name="emea_office",
    )
