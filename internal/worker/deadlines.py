"""The scheduler's view of the next due instant in PostgreSQL: one LISTEN connection for the
announcements of ingest and recompute (internal.store.deadline_repo), and one index probe for
the earliest next_check_at after a given instant."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import psycopg

from internal.store import deadline_repo

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 5.0


class PgDeadlines:
    """Not thread-safe: the scheduler loop is its only user. Every method swallows database
    errors (logged once per outage) and reconnects later: the interval ticks go on meanwhile."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.Connection[Any] | None = None
        self._retry_at = 0.0
        self._failing = False

    def _connection(self) -> psycopg.Connection[Any] | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if time.monotonic() < self._retry_at:
            return None
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {deadline_repo.DEADLINE_CHANNEL}")
        except psycopg.Error as err:
            self._lost(err)
            return None
        if self._failing:
            log.info("scheduler: PostgreSQL back, deadlines followed again")
        self._failing = False
        self._conn = conn
        return conn

    def _lost(self, err: Exception) -> None:
        if not self._failing:
            log.warning(
                "scheduler cannot follow deadlines in PostgreSQL (%s); interval ticks only"
                " until it answers",
                " ".join(str(err).split())[:200],
            )
        self._failing = True
        self._retry_at = time.monotonic() + RECONNECT_SECONDS
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def next_after(self, after: datetime) -> datetime | None:
        conn = self._connection()
        if conn is None:
            return None
        try:
            return deadline_repo.next_check_after(conn, after)
        except psycopg.Error as err:
            self._lost(err)
            return None

    def wait(self, timeout: float) -> list[datetime] | None:
        """Instants announced within `timeout` seconds (the first one ends the wait); None when
        the connection was (re)made or lost, so announcements may have been missed: the caller
        reads the next instant afresh."""
        was_connected = self._conn is not None
        conn = self._connection()
        if conn is None:
            time.sleep(timeout)
            return None
        if not was_connected:
            return None
        try:
            got = [n.payload for n in conn.notifies(timeout=timeout, stop_after=1)]
        except psycopg.Error as err:
            self._lost(err)
            return None
        return [w for w in map(deadline_repo.parse_announcement, got) if w is not None]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
