"""The `delivery_channels` table: each channel's circuit breaker and send pacing, shared by every
worker, keyed by (scope, channel): a channel of one config (outbox_repo.Lane). `lock` holds a
channel's row for the rest of the caller's transaction, so that the decision taken on it
(internal/worker/breaker.py, which reads and writes these rows as its ChannelState) and its write
are one atomic step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from internal.store.outbox_repo import Lane

# The row, named as the breaker's state names its fields.
_COLUMNS = (
    "state, consecutive_failures AS failures, opened_at, retry_at, cool_down_seconds AS cool_down,"
    " probe_id, probe_until, next_send_at, reserved_until, last_failure_at, last_failure"
)


def lock(conn: psycopg.Connection[Any], lane: Lane) -> dict[str, Any]:
    """The lane's row, created on first use and locked until the transaction ends. Must run
    inside a transaction."""
    key = (lane.scope, lane.channel)
    conn.execute(
        "INSERT INTO delivery_channels (scope, channel) VALUES (%s, %s)"
        " ON CONFLICT (scope, channel) DO NOTHING",
        key,
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM delivery_channels WHERE scope = %s AND channel = %s"
            " FOR UPDATE",
            key,
        ).fetchone()
    assert row is not None  # inserted above, and never deleted
    return row


def save(conn: psycopg.Connection[Any], lane: Lane, row: Mapping[str, Any]) -> None:
    """Write a row held by `lock` (same transaction), with the fields `lock` returned."""
    conn.execute(
        "UPDATE delivery_channels SET state = %(state)s, consecutive_failures = %(failures)s,"
        " opened_at = %(opened_at)s, retry_at = %(retry_at)s,"
        " cool_down_seconds = %(cool_down)s, probe_id = %(probe_id)s,"
        " probe_until = %(probe_until)s, next_send_at = %(next_send_at)s,"
        " reserved_until = %(reserved_until)s, last_failure_at = %(last_failure_at)s,"
        " last_failure = %(last_failure)s"
        " WHERE scope = %(scope)s AND channel = %(channel)s",
        {**row, "scope": lane.scope, "channel": lane.channel},
    )


def all_rows(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every lane's row by (scope, channel), unlocked: for the metrics."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT scope, channel, {_COLUMNS} FROM delivery_channels").fetchall()
    return {(str(r.pop("scope")), str(r.pop("channel"))): r for r in rows}
