"""The scheduler: enqueue one evaluation (and one outbox sweep) per tick.

Ticks are numbered floor(unix time / interval). Any number of schedulers may run: the first to
`SET NX` a tick's key in Redis enqueues it, the others see the key and do nothing.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import redis

from internal.obs import metrics
from internal.obs.correlation import correlation

log = logging.getLogger(__name__)

TICK_KEY = "slawatch:tick:{}"

# Past hours of the dashboard's count buckets are folded about this often: each hour adds at most
# one bucket per group, and folding only ever concerns hours a day old.
FOLD_EVERY_SECONDS = 600.0


def fold_due(tick: int, interval: float) -> bool:
    """Whether tick number `tick` (of `interval` seconds) also enqueues the bucket fold: one tick
    in every FOLD_EVERY_SECONDS, and every tick when ticks are that long or longer."""
    return tick % max(1, round(FOLD_EVERY_SECONDS / interval)) == 0


class Scheduler:
    def __init__(
        self,
        client: redis.Redis,
        interval: float,
        enqueue: Callable[[int], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._interval = interval
        self._enqueue = enqueue
        self._clock = clock
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

    def alive(self, now: float | None = None) -> bool:
        """The loop still turns: a turn takes one interval plus Redis' socket timeout at most."""
        now = time.monotonic() if now is None else now
        return now - self.last_turn < max(3 * self._interval, 30.0)

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set; a tick in progress is finished first (the stop is only
        looked at between ticks)."""
        while not stop.is_set():
            try:
                self.tick_once()
            except redis.RedisError as err:
                # Nothing is lost while Redis is away: due clocks stay due until a tick runs.
                metrics.SCHEDULER_TICKS.labels("error").inc()
                log.warning("scheduler cannot reach Redis: %s", err)
            self.last_turn = time.monotonic()
            now = self._clock()
            next_tick = (now // self._interval + 1) * self._interval
            stop.wait(max(next_tick - now, 0.01))
