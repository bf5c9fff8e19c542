"""Exponential backoff: the one formula behind every retry and reconnect delay."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff(
    retry: int,
    base: float,
    cap: float,
    *,
    jitter: float = 1.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """The delay before retry number `retry` (0 for the first): base * 2**retry, at most `cap`,
    of which the last `jitter` fraction is random — 1.0 is full jitter (anything from 0 up),
    0.5 equal jitter (at least half), 0.0 none. `rand` returns a number in [0, 1).

    Jitter spreads the retries of many clients that failed together over the interval, so that
    they do not all come back at the same instant."""
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be between 0 and 1")
    ceiling = min(cap, base * 2.0 ** min(max(retry, 0), 64))  # no float overflow
    return ceiling * (1.0 - jitter) + ceiling * jitter * rand()


def next_delay(
    attempt: int, retry_after: float | None, base: float, cap: float, rand: Callable[[], float]
) -> float:
    """The wait before a notification's next attempt: full-jitter backoff, never shorter than
    the channel's Retry-After (which may exceed the cap: the channel knows best).

    `attempt` counts the attempts made so far, from 1; `rand` returns a number in [0, 1).
    """
    delay = backoff(attempt - 1, base, cap, jitter=1.0, rand=rand)
    return max(delay, retry_after) if retry_after is not None else delay
