"""Which scheduler ticks also enqueue the fold of old dashboard count buckets (pure arithmetic)."""

from __future__ import annotations

import itertools

from internal.worker.scheduler import FOLD_EVERY_SECONDS, fold_due


def test_the_fold_runs_once_per_ten_minutes_of_five_second_ticks() -> None:
    due = [tick for tick in range(1, 1 + 3 * 120) if fold_due(tick, 5)]
    assert due == [120, 240, 360]
    assert FOLD_EVERY_SECONDS == 600


def test_ticks_as_long_as_the_fold_period_fold_every_time() -> None:
    assert all(fold_due(tick, 600) for tick in range(10))
    assert all(fold_due(tick, 3600) for tick in range(10))


def test_odd_intervals_still_fold_about_every_ten_minutes() -> None:
    due = [tick for tick in range(1, 2000) if fold_due(tick, 7)]
    gaps = {b - a for a, b in itertools.pairwise(due)}
    assert gaps == {86}  # 86 ticks of 7 s: 602 s
