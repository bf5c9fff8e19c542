"""The scheduler: enqueue an evaluation when the earliest clock comes due, and one evaluation
(and one outbox sweep) per interval tick as a safety net.

Interval ticks are numbered floor(unix time / interval). Deadline ticks are the instants of the
earliest next_check_at (`Deadlines`: PostgreSQL, woken early by what ingest announces). Any
number of schedulers may run: the first to `SET NX` a tick's key in Redis enqueues it, the
others see the key and do nothing; both kinds of tick are keyed by what every scheduler computes
alike (the tick number, the instant).
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import redis

from internal.obs import metrics
from internal.obs.correlation import correlation

log = logging.getLogger(__name__)

TICK_KEY = "slawatch:tick:{}"
DUE_KEY = "slawatch:due:{}"  # a deadline tick: the due instant in unix milliseconds
DUE_KEY_TTL_SECONDS = 60
# A deadline tick is enqueued this long after its instant, so that a worker whose clock is a
# little behind still finds the clock due.
DUE_MARGIN_SECONDS = 0.02
# The loop looks at `stop` at least this often, whatever it waits for.
TURN_SECONDS = 0.5

# Past hours of the dashboard's count buckets are folded about this often: each hour adds at most
# one bucket per group, and folding only ever concerns hours a day old.
FOLD_EVERY_SECONDS = 600.0


def fold_due(tick: int, interval: float) -> bool:
    """Whether tick number `tick` (of `interval` seconds) also enqueues the bucket fold: one tick
    in every FOLD_EVERY_SECONDS, and every tick when ticks are that long or longer."""
    return tick % max(1, round(FOLD_EVERY_SECONDS / interval)) == 0


# Retention (SLAWATCH_RETENTION_DAYS) runs about this often: it erases tickets done for days, so
# a few minutes more make no difference, and each run works through what is due in batches.
RETENTION_EVERY_SECONDS = 600.0


def retention_due(tick: int, interval: float) -> bool:
    """Whether tick number `tick` also enqueues a retention run: one tick in every
    RETENTION_EVERY_SECONDS, and every tick when ticks are that long or longer."""
    return tick % max(1, round(RETENTION_EVERY_SECONDS / interval)) == 0


class Deadlines(Protocol):
    """Where the due instants come from (internal.worker.deadlines.PgDeadlines)."""

    def next_after(self, after: datetime) -> datetime | None:
        """The earliest due instant strictly after `after`; None when none (or unknown)."""
        ...

    def wait(self, timeout: float) -> list[datetime] | None:
        """Instants announced within `timeout` seconds; None: some may have been missed."""
        ...


class Scheduler:
    def __init__(
        self,
        client: redis.Redis,
        interval: float,
        enqueue: Callable[[int], None],
        *,
        clock: Callable[[], float] = time.time,
        deadlines: Deadlines | None = None,
        enqueue_due: Callable[[datetime], None] | None = None,
        evaluation_waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        """`enqueue_due` enqueues the evaluation of a deadline tick; `evaluation_waiting` says
        whether an evaluation message is still queued (it will see every clock due by the time
        it runs, so a deadline tick meanwhile would only repeat it)."""
        self._redis = client
        self._interval = interval
        self._enqueue = enqueue
        self._clock = clock
        self._deadlines = deadlines
        self._enqueue_due = enqueue_due
        self._evaluation_waiting = evaluation_waiting
        # The latest instant a deadline tick was handled for, and the next one after it.
        self._handled = datetime.fromtimestamp(clock(), UTC)
        self._due: datetime | None = None
        self._owner = f"{socket.gethostname()}:{id(self)}"
        # time.monotonic() of the last loop turn, whatever its result: liveness looks at it.
        self.last_turn = time.monotonic()

    def tick_once(self) -> bool:
        """Claim the current tick; True when this scheduler enqueued it."""
        tick = int(self._clock() // self._interval)
        ttl = max(int(self._interval * 10), 10)
        if not self._redis.set(TICK_KEY.format(tick), self._owner, nx=True, ex=ttl):
            metrics.SCHEDULER_TICKS.labels("skipped").inc()
            return False
        # Everything this tick causes (the evaluation run, its log lines) carries one id.
        with correlation(f"tick-{tick}"):
            self._enqueue(tick)
        metrics.SCHEDULER_TICKS.labels("enqueued").inc()
        return True

    def due_once(self, instant: datetime) -> bool:
        """Claim the deadline tick of `instant`; True when this scheduler enqueued it."""
        if self._enqueue_due is None:
            return False
        if self._evaluation_waiting():
            metrics.SCHEDULER_TICKS.labels("coalesced").inc()
            return False
        millis = round(instant.timestamp() * 1000)
        if not self._redis.set(
            DUE_KEY.format(millis), self._owner, nx=True, ex=DUE_KEY_TTL_SECONDS
        ):
            metrics.SCHEDULER_TICKS.labels("skipped").inc()
            return False
        with correlation(f"due-{millis}"):
            self._enqueue_due(instant)
        metrics.SCHEDULER_TICKS.labels("deadline").inc()
        return True

    def _refresh(self) -> None:
        if self._deadlines is not None:
            self._due = self._deadlines.next_after(self._handled)

    def _heard(self, instants: list[datetime] | None) -> None:
        if instants is None:
            self._refresh()
            return
        for instant in instants:
            # Earlier than what we sleep for, or already past (a ticket created overdue).
            if self._due is None or instant < self._due:
                self._due = instant

    def alive(self, now: float | None = None) -> bool:
        """The loop still turns: a turn takes one interval plus Redis' socket timeout at most."""
        now = time.monotonic() if now is None else now
        return now - self.last_turn < max(3 * self._interval, 30.0)

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set; a tick in progress is finished first (the stop is looked at
        between ticks, at least every TURN_SECONDS)."""
        next_tick = 0.0  # the first interval tick is at once
        while not stop.is_set():
            now = self._clock()
            if now >= next_tick:
                self._safely(self.tick_once)
                next_tick = (now // self._interval + 1) * self._interval
                self._refresh()  # also catches anything an announcement missed
            elif self._due is not None and now >= self._due.timestamp() + DUE_MARGIN_SECONDS:
                due = self._due
                self._safely(functools.partial(self.due_once, due))
                self._handled = max(self._handled, due)
                self._refresh()
            self.last_turn = time.monotonic()
            now = self._clock()
            wake = next_tick
            if self._due is not None:
                wake = min(wake, self._due.timestamp() + DUE_MARGIN_SECONDS)
            timeout = min(max(wake - now, 0.0), TURN_SECONDS)
            if self._deadlines is None:
                stop.wait(max(timeout, 0.01))
            elif timeout > 0:
                self._heard(self._deadlines.wait(timeout))

    def _safely(self, turn: Callable[[], bool]) -> None:
        try:
            turn()
        except redis.RedisError as err:
            # Nothing is lost while Redis is away: due clocks stay due until a tick runs.
            metrics.SCHEDULER_TICKS.labels("error").inc()
            log.warning("scheduler cannot reach Redis: %s", err)
