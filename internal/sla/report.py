"""What an SLA instance (one cycle of one metric on one ticket) adds to the attainment report
(DESIGN §10), and how a report's intervals in a time zone are cut into the rollup's UTC blocks.
Pure arithmetic: `now` and the zone are parameters.

An instance is decided at the earlier of its stop and its breach and counts in the interval of
that instant: achieved if it stopped first, breached if it reached its target first (while it
runs or is paused, at its due time, which a running clock's row knows ahead of time). A paused
clock below its target has no due time: it is not decided. The elapsed times of instances that
stopped are kept as a histogram on a fixed log scale, from which the percentiles are read.

The rollup keeps each decided instant's quarter of an hour (UTC) at four sizes of block aligned
in UTC: 15 minutes, 1 hour, 6 hours and 1 day. Every real time zone's offset is a whole number of
quarters of an hour, so each local hour, day, week or month, DST days included, is a union of
whole quarters; a report reads the fewest aligned blocks that make it up (a UTC day: one block;
a day in Europe/Berlin: 9; in Asia/Kolkata: 12).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo

from internal.sla.model import Mode

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUARTER = 900  # seconds: the finest block, the resolution of every instant the report counts
SPANS = (86_400, 21_600, 3_600, QUARTER)  # the block sizes kept, largest first (each divides
# the one before it, so blocks of one size never straddle a block of a larger size)

# The elapsed-time histogram: bin 0 holds < HIST_BASE seconds; bin k (1..HIST_BINS-2) holds
# [HIST_BASE * 2^((k-1)/4), HIST_BASE * 2^(k/4)); the last bin everything above (> ~257 days).
# A percentile is read as the geometric middle of its bin: within 9% of the true value.
HIST_BASE = 30.0
HIST_STEPS_PER_DOUBLING = 4
HIST_BINS = 80


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"  # ISO weeks: from Monday 00:00 local time
    MONTH = "month"


class Contribution(NamedTuple):
    """Where one instance counts: the quarter (whole quarters since the Unix epoch, UTC) of its
    decided instant, whether it breached, whether it has stopped, and the histogram bin of its
    elapsed time (stopped instances only; -1 otherwise)."""

    quarter: int
    breached: bool
    stopped: bool
    elapsed_bin: int


def quarter_index(at: datetime) -> int:
    """Whole quarters of an hour from the Unix epoch to the one holding `at`."""
    return int((at - _EPOCH) // timedelta(seconds=QUARTER))


def quarter_start(index: int) -> datetime:
    return _EPOCH + timedelta(seconds=index * QUARTER)


def elapsed_bin(seconds: float) -> int:
    if seconds < HIST_BASE:
        return 0
    k = 1 + math.floor(math.log2(seconds / HIST_BASE) * HIST_STEPS_PER_DOUBLING)
    return min(k, HIST_BINS - 1)


def bin_value(k: int) -> float:
    """The value a percentile in bin `k` is reported as: the bin's geometric middle (half the
    base for bin 0)."""
    if k == 0:
        return HIST_BASE / 2
    return HIST_BASE * 2 ** ((k - 0.5) / HIST_STEPS_PER_DOUBLING)


def contribution(
    mode: Mode, anchor_at: datetime, anchor_elapsed: float, due_at: datetime | None
) -> Contribution | None:
    """Where a stored clock row counts; None when it is not decided (paused or on a calendar
    the config no longer defines, below its target). A stopped row's anchor is its stop; its
    due time, when set, is where it reached the target (no later than the stop)."""
    stopped = mode is Mode.STOPPED
    if due_at is not None and (not stopped or due_at <= anchor_at):
        return Contribution(
            quarter_index(due_at), True, stopped, elapsed_bin(anchor_elapsed) if stopped else -1
        )
    if stopped:
        return Contribution(quarter_index(anchor_at), False, True, elapsed_bin(anchor_elapsed))
    return None


def percentile(hist: list[int], fraction: float) -> float | None:
    """The value at `fraction` (0..1) of the instances counted in `hist` (nearest rank); None
    for an empty histogram."""
    total = sum(hist)
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for k, n in enumerate(hist):
        seen += n
        if seen >= rank:
            return bin_value(k)
    return bin_value(len(hist) - 1)  # pragma: no cover - the ranks add up to total


def interval_start(at: datetime, interval: Interval, zone: ZoneInfo) -> datetime:
    """The start (UTC) of the local interval holding `at`."""
    local = at.astimezone(zone)
    if interval is Interval.HOUR:
        # Local hours: a zone's offset is whole quarters, so the local hour starts a whole
        # number of minutes before `at`.
        start = local.replace(minute=0, second=0, microsecond=0)
        return start.astimezone(UTC)
    day = local.date()
    if interval is Interval.WEEK:
        day = day - timedelta(days=day.weekday())
    elif interval is Interval.MONTH:
        day = day.replace(day=1)
    return _local_midnight(day.year, day.month, day.day, zone)


def _local_midnight(year: int, month: int, day: int, zone: ZoneInfo) -> datetime:
    # Midnight local time. Where a DST change skips midnight, zoneinfo's fold=0 reading of the
    # skipped time lands on the first instant after the gap, which is where that day starts;
    # where midnight happens twice, on the first of the two.
    return datetime(year, month, day, tzinfo=zone).astimezone(UTC)


def next_interval(start: datetime, interval: Interval, zone: ZoneInfo) -> datetime:
    """The start (UTC) of the local interval after the one starting at `start`."""
    if interval is Interval.HOUR:
        # The local hour an hour of real time later; in the zones whose offset changes by half
        # an hour (Lord Howe), the fall-back hour is cut there instead of lasting 90 minutes.
        nxt_hour = interval_start(start + timedelta(hours=1), interval, zone)
        return nxt_hour if nxt_hour > start else start + timedelta(hours=1)
    local = start.astimezone(zone).date()
    if interval is Interval.DAY:
        nxt = local + timedelta(days=1)
    elif interval is Interval.WEEK:
        nxt = local + timedelta(days=7)
    else:
        nxt = (local.replace(day=28) + timedelta(days=4)).replace(day=1)
    return _local_midnight(nxt.year, nxt.month, nxt.day, zone)


@dataclass(frozen=True)
class Window:
    """One interval of a report: its edges (UTC) and the part of it counted (up to `counted_end`,
    which is `end` unless `now` falls inside)."""

    start: datetime
    end: datetime
    counted_end: datetime


def windows(
    start: datetime, end: datetime, interval: Interval, zone: ZoneInfo, now: datetime
) -> list[Window]:
    """The local intervals covering [start, end): from the one holding `start` to the one
    holding the instant before `end`, whole. Each counts the decided instants in whole quarters
    before `now` (the quarter holding `now` is not counted yet: its breaches may still be
    ahead); intervals wholly after that are left out."""
    cut = quarter_start(quarter_index(now))
    out = []
    at = interval_start(start, interval, zone)
    while at < end and at < cut:
        nxt = next_interval(at, interval, zone)
        out.append(Window(at, nxt, min(nxt, cut)))
        at = nxt
    return out


def count_windows(
    start: datetime, end: datetime, interval: Interval, zone: ZoneInfo, cap: int
) -> int:
    """How many intervals [start, end) spans, counting no further than cap + 1."""
    n = 0
    at = interval_start(start, interval, zone)
    while at < end and n <= cap:
        at = next_interval(at, interval, zone)
        n += 1
    return n


def blocks(start: datetime, end: datetime) -> Iterator[tuple[int, int]]:
    """The aligned blocks making up [start, end) (whole quarters): (span seconds, index of the
    block among blocks of that span since the epoch), largest that fit first."""
    p = int((start - _EPOCH).total_seconds())
    stop = int((end - _EPOCH).total_seconds())
    if p % QUARTER or stop % QUARTER:
        raise ValueError("blocks: edges must be whole quarters of an hour")
    while p < stop:
        for span in SPANS:
            if p % span == 0 and p + span <= stop:
                yield span, p // span
                p += span
                break
