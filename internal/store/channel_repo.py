"""The `delivery_channels` table: each channel's circuit breaker and send pacing, shared by every
worker. `lock` holds a channel's row for the rest of the caller's transaction, so that the
decision taken on it (internal/worker/breaker.py) and its write are one atomic step."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from internal.worker.breaker import BreakerState, ChannelState

_COLUMNS = (
    "state, consecutive_failures, opened_at, retry_at, cool_down_seconds, probe_id, probe_until,"
    " next_send_at, reserved_until, last_failure_at, last_failure"
)


def _state(row: dict[str, Any]) -> ChannelState:
    return ChannelState(
        state=BreakerState(row["state"]),
        failures=int(row["consecutive_failures"]),
        opened_at=row["opened_at"],
        retry_at=row["retry_at"],
        cool_down=float(row["cool_down_seconds"]),
        probe_id=row["probe_id"],
        probe_until=row["probe_until"],
        next_send_at=row["next_send_at"],
        reserved_until=row["reserved_until"],
        last_failure_at=row["last_failure_at"],
        last_failure=row["last_failure"],
    )


def lock(conn: psycopg.Connection[Any], channel: str) -> ChannelState:
    """The channel's state, its row created on first use and locked until the transaction ends.
    Must run inside a transaction."""
    conn.execute(
        "INSERT INTO delivery_channels (channel) VALUES (%s) ON CONFLICT (channel) DO NOTHING",
        (channel,),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM delivery_channels WHERE channel = %s FOR UPDATE", (channel,)
        ).fetchone()
    assert row is not None  # inserted above, and never deleted
    return _state(row)


def save(conn: psycopg.Connection[Any], channel: str, s: ChannelState) -> None:
    """Write the state decided on a row held by `lock` (same transaction)."""
    conn.execute(
        "UPDATE delivery_channels SET state = %s, consecutive_failures = %s, opened_at = %s,"
        " retry_at = %s, cool_down_seconds = %s, probe_id = %s, probe_until = %s,"
        " next_send_at = %s, reserved_until = %s,"
        " last_failure_at = %s, last_failure = %s"
        " WHERE channel = %s",
        (
            s.state.value,
            s.failures,
            s.opened_at,
            s.retry_at,
            s.cool_down,
            s.probe_id,
            s.probe_until,
            s.next_send_at,
            s.reserved_until,
            s.last_failure_at,
            s.last_failure,
            channel,
        ),
    )


def all_states(conn: psycopg.Connection[Any]) -> dict[str, ChannelState]:
    """Every channel's state, unlocked: for the metrics."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT channel, {_COLUMNS} FROM delivery_channels").fetchall()
    return {str(r["channel"]): _state(r) for r in rows}
