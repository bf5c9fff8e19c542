"""Connection pool construction and the errors that mean "the database is unreachable"."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool


class DatabaseDown(psycopg_pool.PoolTimeout):
    """Refused without waiting: the health probe last found the database unreachable. A kind of
    PoolTimeout, so every caller already handles it as one."""


# Raised by the pool or a connection when PostgreSQL cannot be reached; callers answer
# UNAVAILABLE (safe to retry) rather than INTERNAL.
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
)


class FailFastPool(psycopg_pool.ConnectionPool):
    """A pool that refuses at once while the database is known to be down.

    During an outage every checkout would otherwise wait the whole pool timeout before failing,
    and under load the server's threads pile up behind it. Whoever probes the database (the
    server's health loop, once a second with a fresh connection) calls `mark_reachable`; no one
    else does, so a process without a probe (the worker) never fails fast. The probe that finds
    the database back clears the flag, so recovery is noticed within one probe interval.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._down = threading.Event()

    def mark_reachable(self, up: bool) -> None:
        if up:
            self._down.clear()
        else:
            self._down.set()

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        if self._down.is_set():
            raise DatabaseDown(f"database unreachable (pool {self.name!r}); not waiting")
        return super().getconn(timeout)


# A connection handed back less than this long ago is not checked again on checkout: the check is
# a round trip to the database, a good share of a short call such as GetTicket.
RECHECK_AFTER_SECONDS = 1.0
_returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
    weakref.WeakKeyDictionary()
)


def _note_return(conn: psycopg.Connection[Any]) -> None:
    _returned_at[conn] = time.monotonic()


def _check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """Check a connection that has sat in the pool a while (the database may have restarted
    meanwhile); a broken one is replaced by the pool before the caller gets it."""
    returned = _returned_at.get(conn)
    if returned is None or time.monotonic() - returned >= RECHECK_AFTER_SECONDS:
        psycopg_pool.ConnectionPool.check_connection(conn)


def make_pool(
    database_url: str, *, min_size: int = 2, max_size: int = 16, timeout: float = 5.0
) -> FailFastPool:
    """A pool whose connections are checked on checkout when they have been idle, so that a
    restarted database is picked up again without restarting the process; each thread takes its
    own connection."""
    pool = FailFastPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        check=_check_if_idle,
        reset=_note_return,
        kwargs={"connect_timeout": 3, "application_name": "slawatch"},
        reconnect_timeout=0,  # keep retrying in the background while the database is away
    )
    pool.open(wait=False)
    return pool


@contextlib.contextmanager
def read_only(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Statements that only read, each in its own implicit transaction: no COMMIT round trip
    when the pooled connection is handed back. The connection's usual mode is restored."""
    conn.autocommit = True
    try:
        yield
    finally:
        if not conn.closed:
            conn.autocommit = False


def ping(database_url: str, timeout: float = 2.0) -> bool:
    """True when a fresh connection answers; used by health checks, outside the pool so that a
    pool exhausted by slow queries does not read as an outage."""
    try:
        with psycopg.connect(database_url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False
