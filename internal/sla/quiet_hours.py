"""Quiet hours of a notification channel (DESIGN §11): when the channel holds its notifications.

A channel's `quiet_hours` names a calendar of the config, read as the channel's speaking hours:
the channel is quiet whenever that calendar is closed, outside its opening hours and all day on
its holidays. (A calendar day may have several ranges, but none crosses midnight; speaking hours
such as "09:00-18:00" on weekdays say "quiet at night and at weekends" without one.) `24x7` is
never closed, so a channel on it is never quiet.

During quiet time a notification whose escalation level is at least `min_level` goes out as
usual; any other waits until the quiet period ends, which is the calendar's next opening
instant. Without `min_level` nothing passes.

Pure: `now` is always a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from internal.sla.calendar import Calendar

_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class QuietHours:
    calendar: Calendar  # the channel's speaking hours: quiet while it is closed
    min_level: int | None = None  # levels at or above it pass during quiet time; None: none

    def passes(self, level: int) -> bool:
        """Whether a notification of escalation `level` goes out during quiet time."""
        return self.min_level is not None and level >= self.min_level


def next_opening(calendar: Calendar, at: datetime) -> datetime:
    """The first working instant of `calendar` at or after `at` (`at` itself when it is open).

    Built on the calendar's own arithmetic, which is exact to the microsecond: the earliest
    instant by which one microsecond of working time has passed is one microsecond after the
    first working one."""
    return calendar.add_working(at, 1e-6) - _ONE_US


def quiet_until(quiet: QuietHours | None, now: datetime) -> datetime | None:
    """When the channel's current quiet period ends; None when it is not quiet at `now`."""
    if quiet is None:
        return None
    opening = next_opening(quiet.calendar, now)
    return None if opening <= now else opening


def held_until(quiet: QuietHours | None, level: int, now: datetime) -> datetime | None:
    """Until when a notification of escalation `level` is held at `now`; None: it may go now."""
    until = quiet_until(quiet, now)
    if until is None or quiet is None or quiet.passes(level):
        return None
    return until
