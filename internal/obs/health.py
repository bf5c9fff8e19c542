"""Readiness check for Redis, shared by the worker and the scheduler (the database check is
`internal.store.db.ping`).

A fresh connection with a short timeout, outside the broker's pool, so that an outage is seen
even by an idle process.
"""

from __future__ import annotations

import redis

TIMEOUT_SECONDS = 2.0


def redis_reachable(redis_url: str, timeout: float = TIMEOUT_SECONDS) -> bool:
    client = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
