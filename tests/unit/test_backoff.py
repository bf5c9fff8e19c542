"""The one backoff formula: doubling from a base up to a cap, with a chosen share of jitter."""

from __future__ import annotations

import pytest

from internal.backoff import backoff


def test_doubles_from_the_base_up_to_the_cap_without_jitter() -> None:
    assert [backoff(n, 0.5, 8.0, jitter=0.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert backoff(3, 1.0, 60.0, rand=lambda: 0.0) == 0.0
    assert backoff(3, 1.0, 60.0, rand=lambda: 0.5) == 4.0


def test_equal_jitter_keeps_at_least_half_of_the_ceiling() -> None:
    assert backoff(2, 1.0, 60.0, jitter=0.5, rand=lambda: 0.0) == 2.0
    assert backoff(2, 1.0, 60.0, jitter=0.5, rand=lambda: 0.999) == pytest.approx(3.998)


def test_a_huge_retry_count_stays_at_the_cap_instead_of_overflowing() -> None:
    assert backoff(10_000, 1.0, 300.0, jitter=0.0) == 300.0


def test_jitter_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        backoff(1, 1.0, 2.0, jitter=1.5)
