"""The alert reads of WatchAlerts: a stream's starting point and replay (through the pool), and
the process's alert feed (one LISTEN connection: internal/rpc/alert_hub.py). The statements and
the gapless-order argument are internal/store/alert_repo's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import psycopg
import psycopg_pool

from internal.store import alert_change_repo, alert_repo
from internal.store.alert_change_repo import AlertUpdate
from internal.store.alert_repo import AlertFilter as AlertFilter
from internal.store.rows import AlertRow as AlertRow

Conn = psycopg.Connection[Any]


def last_alert_id(pool: psycopg_pool.ConnectionPool, tenant: str) -> int:
    """The tenant's largest committed alert id (0: none): where a live-only stream starts."""
    with pool.connection() as conn:
        return alert_repo.last_alert_id(conn, tenant)


def replay(
    pool: psycopg_pool.ConnectionPool, wanted: AlertFilter, after: int, page: int
) -> Iterator[AlertRow]:
    """Stored alerts matching `wanted` after `after`, in id order, until the table has no more;
    a connection is held per page only, never while a slow client is being sent to."""
    while True:
        with pool.connection() as conn:
            rows = alert_repo.alerts_after(conn, after, page, wanted)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].alert_id


# The feed: its own connection, outside the pool (it stays open, LISTENing).


def listening(database_url: str) -> AbstractContextManager[Conn]:
    """A connection that learns when alerts are committed (see alert_repo.listening)."""
    return alert_repo.listening(database_url)


def latest_alert_id(conn: Conn) -> int:
    """The largest alert id committed so far, of all tenants (0: none)."""
    return alert_repo.last_alert_id(conn)


def wait_for_alerts(conn: Conn, timeout: float) -> bool:
    """True when alerts were committed (a notification arrived) within `timeout` seconds."""
    return alert_repo.wait_for_notification(conn, timeout)


def alerts_after(conn: Conn, after: int, limit: int) -> list[AlertRow]:
    """Up to `limit` alerts of every tenant with id > `after`, in id order."""
    return alert_repo.alerts_after(conn, after, limit)


def latest_update_id(conn: Conn) -> int:
    """The largest alert_updates id committed so far (0: none)."""
    return alert_change_repo.last_update_id(conn)


def updates_after(conn: Conn, after: int, limit: int) -> list[AlertUpdate]:
    """Up to `limit` changes of alerts (repeats, acknowledgements) with id > `after`."""
    return alert_change_repo.updates_after(conn, after, limit)
