"""The notification outbox: rows written with their alert, claimed one at a time for delivery.

A claim is a lease: it pushes next_attempt_at past the send timeout, so a second worker handed
the same row (a re-enqueued message, the sweeper) finds nothing to do, while a row whose worker
died mid-send becomes due again when the lease runs out. The claim also marks the attempt in
flight (sending_at) until its result is recorded; the claim after a lease that ran out with the
mark still set learns that the previous attempt's outcome is unknown.

A delivery message names a row, but sends the oldest due row of that row's channel (by alert):
after an outage the backlog drains in alert order whatever order the messages come back in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

_CLAIM = """
WITH due AS (
    SELECT notification_id, sending_at FROM notifications
    WHERE notification_id = %(id)s AND state = 'pending' AND next_attempt_at <= %(now)s
    FOR UPDATE
)
UPDATE notifications n
SET attempts = n.attempts + 1, next_attempt_at = %(lease_until)s, sending_at = %(now)s
FROM due, alerts a
WHERE n.notification_id = due.notification_id AND a.alert_id = n.alert_id
RETURNING n.notification_id, n.tenant_id, n.channel, n.attempts, n.crashes, n.correlation_id,
          n.last_error AS previous_error, due.sending_at AS interrupted_at,
          -- A repeat is on time when it goes out as it is made, not when its alert was.
          CASE WHEN n.repeat > 0 THEN n.created_at ELSE a.created_at END AS alerted_at,
          a.alert_id, a.ticket_id, a.clock, a.kind, a.escalation_level, a.due_at,
          a.priority, a.customer_tier, a.clock_mode, a.clock_mode_since, a.cycle,
          n.repeat, a.repeat_max
"""


@dataclass(frozen=True)
class Claimed:
    notification_id: int
    channel: str
    attempts: int  # including this one
    alert: dict[str, Any]
    correlation_id: str | None
    # When the previous attempt started, if its outcome is unknown (its worker died before
    # recording a result, or it timed out): the channel may have that message already.
    interrupted_at: datetime | None = None
    crashes: int = 0  # earlier attempts that raised inside slawatch
    # The last attempt's error, if there was one: a message sent late says why.
    previous_error: str | None = None


def channel_of(conn: psycopg.Connection[Any], notification_id: int) -> str | None:
    row = conn.execute(
        "SELECT channel FROM notifications WHERE notification_id = %s", (notification_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def expire(conn: psycopg.Connection[Any], notification_id: int, reason: str) -> None:
    """Mark a row failed because its delivery deadline passed: `reason`, then its last error."""
    conn.execute(
        "UPDATE notifications SET state = 'failed', sending_at = NULL,"
        " last_error = left(%s || coalesce('; last error: ' || last_error, ''), 200)"
        " WHERE notification_id = %s AND state = 'pending'",
        (reason, notification_id),
    )


def hold_for_channel(conn: psycopg.Connection[Any], channel: str, until: datetime) -> None:
    """Bring the channel's pending rows whose backoff ends after `until` forward to it (the
    open breaker's next probe). Rows with an attempt in flight, or whose last outcome is
    unknown, keep theirs."""
    conn.execute(
        "UPDATE notifications SET next_attempt_at = %s"
        " WHERE channel = %s AND state = 'pending' AND sending_at IS NULL"
        " AND next_attempt_at > %s",
        (until, channel, until),
    )


def oldest_due(
    conn: psycopg.Connection[Any], channel: str, now: datetime
) -> tuple[int, datetime] | None:
    """The channel's due pending row of the oldest alert, with its alert's creation time,
    locked for the caller's transaction (rows other transactions hold are skipped)."""
    row = conn.execute(
        "SELECT n.notification_id, a.created_at FROM notifications n"
        " JOIN alerts a ON a.alert_id = n.alert_id"
        " WHERE n.channel = %s AND n.state = 'pending' AND n.next_attempt_at <= %s"
        " ORDER BY n.alert_id, n.notification_id LIMIT 1 FOR UPDATE OF n SKIP LOCKED",
        (channel, now),
    ).fetchone()
    return None if row is None else (int(row[0]), row[1])


def claim(
    conn: psycopg.Connection[Any], notification_id: int, now: datetime, lease: timedelta
) -> Claimed | None:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _CLAIM, {"id": notification_id, "now": now, "lease_until": now + lease}
        ).fetchone()
    if row is None:
        return None
    return Claimed(
        notification_id=int(row["notification_id"]),
        channel=str(row["channel"]),
        attempts=int(row["attempts"]),
        alert=row,
        correlation_id=row["correlation_id"],
        interrupted_at=row["interrupted_at"],
        crashes=int(row["crashes"]),
        previous_error=row["previous_error"],
    )


def mark_sent(conn: psycopg.Connection[Any], notification_id: int, now: datetime) -> None:
    with conn.transaction():
        conn.execute(
            "UPDATE notifications SET state = 'sent', sent_at = %s, last_error = NULL,"
            " sending_at = NULL"
            " WHERE notification_id = %s",
            (now, notification_id),
        )


def mark_retry(
    conn: psycopg.Connection[Any],
    notification_id: int,
    retry_at: datetime,
    error: str,
    *,
    outcome_unknown: bool = False,
    crashed: bool = False,
) -> None:
    """`outcome_unknown`: the attempt may have been delivered (a timeout); its sending_at stays,
    so that the next claim reports it as interrupted. `crashed`: the attempt raised inside
    slawatch; such attempts are counted apart."""
    with conn.transaction():
        conn.execute(
            "UPDATE notifications SET next_attempt_at = %s, last_error = %s,"
            " sending_at = CASE WHEN %s THEN sending_at END,"
            " crashes = crashes + CASE WHEN %s THEN 1 ELSE 0 END"
            " WHERE notification_id = %s AND state = 'pending'",
            (retry_at, error, outcome_unknown, crashed, notification_id),
        )


def mark_failed(conn: psycopg.Connection[Any], notification_id: int, error: str) -> None:
    with conn.transaction():
        conn.execute(
            "UPDATE notifications SET state = 'failed', last_error = %s, sending_at = NULL"
            " WHERE notification_id = %s AND state = 'pending'",
            (error, notification_id),
        )


def take_lost(
    conn: psycopg.Connection[Any], before: datetime, now: datetime, limit: int
) -> list[tuple[int, str | None]]:
    """Pending rows due before `before`, with their correlation ids: what the sweeper hands back
    to the workers. Their next_attempt_at becomes `now`, the time their new message is sent, so
    that the grace runs again from there and a row whose new message waits in the queue is not
    taken a second time.

    Rows of a channel whose deliveries are parked on it (breaker open, a probe in flight, send
    slots handed out ahead) are left alone: their messages come back when the channel says."""
    with conn.transaction():
        rows = conn.execute(
            "UPDATE notifications SET next_attempt_at = %(now)s WHERE notification_id IN ("
            " SELECT notification_id FROM notifications n"
            " WHERE state = 'pending' AND next_attempt_at <= %(before)s"
            " AND NOT EXISTS (SELECT 1 FROM delivery_channels c WHERE c.channel = n.channel"
            "  AND greatest(c.retry_at, c.probe_until, c.reserved_until) > %(now)s)"
            " ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " RETURNING notification_id, correlation_id",
            {"now": now, "before": before, "limit": limit},
        ).fetchall()
    return [(int(r[0]), r[1]) for r in rows]
