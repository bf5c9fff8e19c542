"""Business-hours calendars: weekly wall-clock opening hours in a time zone, minus holidays.

A business calendar counts the instants that fall inside the opening hours of a local, non-holiday
date. Opening hours are wall-clock ranges, so they are turned into instants with zoneinfo date by
date, and a day on which the clock changes is as long as it really is: `00:00-24:00` on the
spring-forward day in Europe/Berlin counts 23 hours, on the fall-back day 25.

Wall times that do not name exactly one instant are resolved like this:

- an ambiguous wall time (in the hour repeated when clocks go back) is read with `fold=0`, as its
  first occurrence;
- a nonexistent wall time (in the hour skipped when clocks go forward) is normalized to the
  instant the clock jumps, so a range that starts or ends inside the gap keeps only the part that
  exists (`02:30-04:00` on the Berlin spring-forward day counts 03:00-04:00 CEST, one hour).

Both rules map wall times to instants monotonically, so ranges that do not overlap on the wall
clock never overlap as instants and no instant is ever counted twice.

All arithmetic is done on integer microseconds since the Unix epoch (the resolution of
`datetime`), so sums over any split of a span are exact; seconds are returned as floats.

Spans are walked a local week at a time, and each week's intervals are worked out once per
calendar and cached, so years of calendar time cost milliseconds.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["WEEKDAYS", "BusinessCalendar", "CalendarError"]

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_US_PER_SECOND = 1_000_000
_DAY_US = 86_400 * _US_PER_SECOND
_ONE_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_RANGE = re.compile(r"^([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# The last Monday whose week (and the midnight after it) `date` can still represent.
_LAST_MONDAY = date.max.toordinal() - 7 - (date.max.toordinal() - 1) % 7


class CalendarError(ValueError):
    """A business calendar's definition is invalid; the message names the offending key."""


Interval = tuple[int, int]  # [start, end) in microseconds since the epoch


@dataclass(frozen=True)
class _Week:
    """The working intervals of one local Monday-to-Sunday week, in chronological order."""

    intervals: tuple[Interval, ...]
    total: int


class BusinessCalendar:
    """Working time is the weekly opening `hours` of each local date in `timezone`, except on
    `holidays`.

    `hours` maps weekday keys (`mon` … `sun`) to comma-separated wall-clock ranges such as
    `"09:00-17:00"` or `"09:00-12:00,13:00-17:00"`; `24:00` ends a range at midnight. Days without
    a key are closed. `holidays` are local dates, ISO strings or `date` objects, on which nothing
    counts. See the module docstring for how DST changes are handled.
    """

    def __init__(
        self,
        name: str,
        timezone: str,
        hours: Mapping[str, str],
        holidays: Iterable[str | date] = (),
    ) -> None:
        self._name = name
        self._tz_key = timezone
        self._tz = _parse_timezone(timezone)
        self._ranges = _parse_hours(hours)
        self._holidays = frozenset(_parse_holidays(holidays))
        # Evaluations revisit the same few weeks over and over; converting their wall times once
        # keeps the common short spans cheap. The cache is per instance so a reloaded config
        # never sees stale weeks.
        self._week: Callable[[int], _Week] = functools.lru_cache(maxsize=1024)(self._build_week)

    @property
    def name(self) -> str:
        return self._name

    @property
    def timezone(self) -> str:
        """The IANA key the calendar's wall-clock hours are read in."""
        return self._tz_key

    @property
    def holidays(self) -> frozenset[date]:
        return frozenset(date.fromordinal(o) for o in self._holidays)

    def __repr__(self) -> str:
        return f"BusinessCalendar(name={self._name!r}, timezone={self._tz_key!r})"

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds in [start, end); 0 when end <= start."""
        a = _to_us(start, "start")
        b = _to_us(end, "end")
        if b <= a:
            return 0.0
        total = 0
        monday = _monday(self._local_ordinal(start, a))
        # The day after `end`'s local date is included because, around a fall-back at midnight,
        # the first occurrence of the next midnight can precede `end`.
        last = self._local_ordinal(end, b) + 1
        while monday <= last:
            week = self._week(monday)
            if week.intervals:
                first_start, last_end = week.intervals[0][0], week.intervals[-1][1]
                if first_start >= b:
                    break
                if a <= first_start and last_end <= b:
                    total += week.total
                else:
                    for s, e in week.intervals:
                        lo, hi = max(s, a), min(e, b)
                        if hi > lo:
                            total += hi - lo
            monday += 7
        return total / _US_PER_SECOND

    def working_intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The working time in [start, end) as its maximal intervals, in order, in UTC; their
        microseconds add up to exactly what `working_seconds` counts over the same span."""
        a = _to_us(start, "start")
        b = _to_us(end, "end")
        pieces: list[tuple[datetime, datetime]] = []
        if b <= a:
            return pieces
        monday = _monday(self._local_ordinal(start, a))
        last = self._local_ordinal(end, b) + 1  # as in working_seconds
        lo_prev = hi_prev = None
        while monday <= last:
            for s, e in self._week(monday).intervals:
                lo, hi = max(s, a), min(e, b)
                if hi <= lo:
                    continue
                if hi_prev is not None and lo == hi_prev:
                    hi_prev = hi  # ranges that meet (24:00 then 00:00) are one interval
                    continue
                if lo_prev is not None and hi_prev is not None:
                    pieces.append((_from_us(lo_prev), _from_us(hi_prev)))
                lo_prev, hi_prev = lo, hi
            monday += 7
        if lo_prev is not None and hi_prev is not None:
            pieces.append((_from_us(lo_prev), _from_us(hi_prev)))
        return pieces

    def add_working(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant t >= start with working_seconds(start, t) >= seconds, in UTC.

        The answer has microsecond resolution: `seconds` is rounded up to whole microseconds, so
        the working time up to the result is never less than asked for.
        """
        a = _to_us(start, "start")
        if math.isnan(seconds):
            raise ValueError("seconds must be a number, got NaN")
        if seconds <= 0:
            return _from_us(a)
        if math.isinf(seconds):
            raise OverflowError("an infinite amount of working time never runs out")
        # The fewest whole microseconds that `working_seconds` (which divides by a million) reports
        # as at least `seconds`: rounding the product may land one short, never one over.
        remaining = max(round(seconds * _US_PER_SECOND), 1)
        while remaining / _US_PER_SECOND < seconds:
            remaining += 1
        monday = _monday(self._local_ordinal(start, a))
        while True:
            week = self._week(monday)
            if week.intervals and week.intervals[0][0] >= a and week.total < remaining:
                remaining -= week.total
            else:
                for s, e in week.intervals:
                    if e <= a:
                        continue
                    s = max(s, a)
                    if e - s >= remaining:
                        return _from_us(s + remaining)
                    remaining -= e - s
            monday += 7

    def _local_ordinal(self, moment: datetime, us: int) -> int:
        """The local date of `moment`, which is `us` microseconds since the epoch."""
        # A UTC datetime (what the SLA code passes) converts as it is; any other is first taken to
        # UTC through `us`, so that a wall time its zone skips or repeats is read as the instant it
        # names.
        utc = moment if moment.tzinfo is UTC else _from_us(us)
        return utc.astimezone(self._tz).toordinal()

    def _build_week(self, monday: int) -> _Week:
        if monday > _LAST_MONDAY:
            raise OverflowError(f"{self._name}: working time beyond the year 9999 is not counted")
        # Wall-clock midnights read with fold=0: a day whose midnight and next midnight have the
        # same offset, the next one being a plain wall time, has that offset all day, because
        # tzdata never changes a zone's offset twice within one day.
        offsets = [self._offset(datetime.fromordinal(monday + k)) for k in range(8)]
        intervals: list[Interval] = []
        for k in range(7):
            ordinal = monday + k
            ranges = self._ranges[k]
            if not ranges or ordinal in self._holidays:
                continue
            if offsets[k] == offsets[k + 1] and self._plain_midnight(monday, k + 1, offsets):
                midnight = (ordinal - _EPOCH_ORDINAL) * _DAY_US - offsets[k]
                intervals.extend((midnight + s, midnight + e) for s, e in ranges)
                continue
            for s, e in ranges:
                start, end = self._instant(ordinal, s), self._instant(ordinal, e)
                if end > start:
                    intervals.append((start, end))
        return _Week(tuple(intervals), sum(e - s for s, e in intervals))

    def _plain_midnight(self, monday: int, k: int, offsets: list[int]) -> bool:
        """Whether midnight `k` days after `monday` names exactly one instant."""
        if k + 1 < len(offsets) and offsets[k] == offsets[k + 1]:
            # A midnight in a gap or overlap is read with the offset before a change that is in
            # force by the next midnight, so the two would differ.
            return True
        naive = datetime.fromordinal(monday + k)
        return self._offset(naive.replace(fold=1)) == offsets[k]

    def _instant(self, ordinal: int, offset_us: int) -> int:
        """The instant of wall time `offset_us` after the start of local date `ordinal`, resolved
        as the module docstring describes."""
        days, rest = divmod(offset_us, _DAY_US)
        naive = datetime.fromordinal(ordinal + days) + timedelta(microseconds=rest)
        wall = (ordinal + days - _EPOCH_ORDINAL) * _DAY_US + rest
        earlier = wall - self._offset(naive)  # fold=0
        later = wall - self._offset(naive.replace(fold=1))
        if later >= earlier:
            # A plain wall time (both equal) or an ambiguous one, whose first occurrence is fold=0.
            return earlier
        # A nonexistent wall time: fold=1 reads it with the offset after the jump and lands before
        # the jump, fold=0 with the offset before it and lands after; the jump lies in between.
        return self._transition(later, earlier)

    def _offset(self, naive: datetime) -> int:
        """The zone's UTC offset, in microseconds, for a wall time (its fold included)."""
        offset = self._tz.utcoffset(naive)
        assert offset is not None  # a ZoneInfo always knows its offsets
        return offset // _ONE_US

    def _transition(self, before: int, after: int) -> int:
        """The first instant in (before, after] whose UTC offset differs from that at `before`."""
        offset = _from_us(before).astimezone(self._tz).utcoffset()
        lo, hi = before, after
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _from_us(mid).astimezone(self._tz).utcoffset() == offset:
                lo = mid
            else:
                hi = mid
        return hi


def _to_us(moment: datetime, what: str) -> int:
    # UTC, nearly always, is checked first: it is aware without asking it for its offset.
    if moment.tzinfo is not UTC and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")
    return (moment - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(0, 0, us)  # positional: keyword arguments cost more than the sum


def _monday(ordinal: int) -> int:
    # Ordinal 1 (0001-01-01) is a Monday.
    return ordinal - (ordinal - 1) % 7


def _parse_timezone(timezone: object) -> ZoneInfo:
    if not isinstance(timezone, str) or not timezone:
        raise CalendarError(f"timezone: expected an IANA time zone name, got {timezone!r}")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CalendarError(f'timezone: unknown time zone "{timezone}"') from None


def _parse_hours(hours: Mapping[str, str]) -> tuple[tuple[Interval, ...], ...]:
    """Per weekday (Monday first), the sorted ranges as microsecond offsets from local midnight."""
    if not isinstance(hours, Mapping):
        raise CalendarError(f"hours: expected a mapping of weekdays to ranges, got {hours!r}")
    week: list[tuple[Interval, ...]] = [() for _ in WEEKDAYS]
    for key, value in hours.items():
        if key not in WEEKDAYS:
            raise CalendarError(
                f"hours.{key}: unknown weekday (expected one of {', '.join(WEEKDAYS)})"
            )
        week[WEEKDAYS.index(key)] = _parse_day(f"hours.{key}", value)
    if not any(week):
        raise CalendarError("hours: no working hours on any day of the week")
    return tuple(week)


def _parse_day(key: str, value: object) -> tuple[Interval, ...]:
    if not isinstance(value, str):
        raise CalendarError(f'{key}: expected ranges like "09:00-17:00", got {value!r}')
    parsed: list[tuple[Interval, str]] = []
    for part in value.split(","):
        text = part.strip()
        match = _RANGE.match(text)
        if match is None:
            raise CalendarError(f'{key}: "{text}" is not a time range like "09:00-17:00"')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise CalendarError(
                f'{key}: "{text}" has a time outside 00:00-24:00 (24:00 may only end a range)'
            )
        start = (h1 * 60 + m1) * 60 * _US_PER_SECOND
        end = (h2 * 60 + m2) * 60 * _US_PER_SECOND
        if end == start:
            raise CalendarError(f'{key}: "{text}" is empty')
        if end < start:
            raise CalendarError(f'{key}: "{text}" is inverted')
        parsed.append(((start, end), text))
    parsed.sort()
    for (prev, prev_text), (cur, cur_text) in itertools.pairwise(parsed):
        if cur[0] < prev[1]:
            raise CalendarError(f'{key}: "{prev_text}" overlaps "{cur_text}"')
    return tuple(interval for interval, _ in parsed)


def _parse_holidays(holidays: Iterable[str | date]) -> list[int]:
    ordinals: list[int] = []
    for i, item in enumerate(holidays):
        key = f"holidays[{i}]"
        # A datetime is a date too, but which local date it means depends on its zone.
        if isinstance(item, datetime):
            raise CalendarError(f"{key}: {item.isoformat()} is a datetime, not a date")
        if isinstance(item, date):
            ordinals.append(item.toordinal())
            continue
        if isinstance(item, str) and _ISO_DATE.match(item):
            try:
                ordinals.append(date.fromisoformat(item).toordinal())
                continue
            except ValueError:
                pass
        raise CalendarError(f'{key}: "{item}" is not a date like "2026-12-25"')
    return ordinals
