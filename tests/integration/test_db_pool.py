"""The database pool: a connection that broke while it sat in the pool is replaced before a caller
gets it, even though recently returned connections skip the check (a round trip per call)."""

from __future__ import annotations

import time

import psycopg
import pytest

from internal.store import db


def test_a_connection_broken_while_idle_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "RECHECK_AFTER_SECONDS", 0.2)
    pool = db.make_pool(database_url, min_size=1, max_size=1)
    try:
        pool.wait(timeout=30)
        with pool.connection() as conn:
            first = conn.info.backend_pid
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        time.sleep(0.3)  # idle longer than the recheck age
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != first
    finally:
        pool.close()


def test_read_only_restores_the_connection_mode(database_url: str) -> None:
    """Reads run in autocommit, and the pooled connection goes back as it came: the next caller
    still gets transactions of its own statements."""
    pool = db.make_pool(database_url, min_size=1, max_size=1)
    try:
        with pool.connection() as conn, db.read_only(conn):
            assert conn.autocommit
        with pool.connection() as conn:
            assert not conn.autocommit
    finally:
        pool.close()
