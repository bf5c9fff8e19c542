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

log = logging.getLogger(__name__)

TICK_KEY = "slawatch:tick:{}"


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
        self.enqueued = 0

    def tick_once(self) -> bool:
        """Claim the current tick; True when this scheduler enqueued it."""
        tick = int(self._clock() // self._interval)
        ttl = max(int(self._interval * 10), 10)
        if not self._redis.set(TICK_KEY.format(tick), self._owner, nx=True, ex=ttl):
            return False
        self._enqueue(tick)
        self.enqueued += 1
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick_once()
            except redis.RedisError as err:
                # Nothing is lost while Redis is away: due clocks stay due until a tick runs.
                log.warning("scheduler cannot reach Redis: %s", err)
            now = self._clock()
            next_tick = (now // self._interval + 1) * self._interval
            stop.wait(max(next_tick - now, 0.01))
