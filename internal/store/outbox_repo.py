"""The notification outbox: rows written with their alert, claimed one at a time for delivery.

A claim is a lease: it pushes next_attempt_at past the send timeout, so a second worker handed
the same row (a re-enqueued message, the sweeper) finds nothing to do, while a row whose worker
died mid-send becomes due again when the lease runs out. The claim also marks the attempt in
flight (sending_at) until its result is recorded; the claim after a lease that ran out with the
mark still set learns that the previous attempt's outcome is unknown.

A delivery message names a row, but sends the oldest due row of that row's channel (by alert):
after an outage the backlog drains in alert order whatever order the messages come back in.

A row held by its channel's quiet hours waits with next_attempt_at = quiet_until, the end of the
quiet period (held: quiet_until is in the future). No message waits for it: at quiet_until it is
due, and the sweeper hands it back at once (`take_released`) instead of after its grace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row


@dataclass(frozen=True)
class Lane:
    """The rows that share one channel state (breaker, pacing, quiet hours): the rows of one
    channel of one config. `scope` names the config: '' the file-wide one or a directory's
    default.yaml, whose lane holds the channel's rows of every tenant but `others` (the tenants
    with a file of their own); else the tenant whose own file it is, whose lane holds its rows
    only. Two tenants' `team` channels are two lanes, as their webhooks may differ; tenants on
    the default share its channels, webhooks and so their pacing."""

    channel: str
    scope: str = ""
    others: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """For logs and metric labels: `team`, or `acme/team` for tenant acme's own file (as
        bounded as the configs' channels)."""
        return self.channel if not self.scope else f"{self.scope}/{self.channel}"

    def params(self) -> dict[str, Any]:
        return {
            "lane_channel": self.channel,
            "lane_scope": self.scope,
            "lane_others": list(self.others),
        }


def _of_scope(alias: str) -> str:
    """SQL: the row `alias` is one of scope %(lane_scope)s's (see Lane)."""
    return (
        f"(%(lane_scope)s = '' AND {alias}.tenant_id <> ALL(%(lane_others)s)"
        f" OR {alias}.tenant_id = %(lane_scope)s)"
    )


def _in_lane(alias: str) -> str:
    return f"{alias}.channel = %(lane_channel)s AND {_of_scope(alias)}"


# SQL: the scope of row n's channel state, given %(own)s, the tenants with a file of their own.
_ROW_SCOPE = "CASE WHEN n.tenant_id = ANY(%(own)s) THEN n.tenant_id ELSE '' END"

# When a notification was made, which its delivery deadline counts from (or from the end of its
# quiet-hours hold): its alert's creation, or for a repeat its own.
_MADE_AT = "CASE WHEN n.repeat > 0 THEN n.created_at ELSE a.created_at END"

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
          n.quiet_until,
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
    # The end of the row's last quiet-hours hold, if it was held: its delivery deadline counts
    # from there, and its message says it was held.
    quiet_until: datetime | None = None

    @property
    def tenant(self) -> str:
        return str(self.alert["tenant_id"])

    @property
    def deadline_from(self) -> datetime:
        """Where the delivery deadline counts from: the alert, or the end of the row's hold."""
        alerted: datetime = self.alert["alerted_at"]
        return alerted if self.quiet_until is None else max(alerted, self.quiet_until)


def channel_of(conn: psycopg.Connection[Any], notification_id: int) -> tuple[str, str] | None:
    """(tenant, channel) of a row."""
    row = conn.execute(
        "SELECT tenant_id, channel FROM notifications WHERE notification_id = %s",
        (notification_id,),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def expire(conn: psycopg.Connection[Any], notification_id: int, reason: str) -> None:
    """Mark a row failed because its delivery deadline passed: `reason`, then its last error."""
    conn.execute(
        "UPDATE notifications SET state = 'failed', sending_at = NULL,"
        " last_error = left(%s || coalesce('; last error: ' || last_error, ''), 200)"
        " WHERE notification_id = %s AND state = 'pending'",
        (reason, notification_id),
    )


def hold_for_channel(conn: psycopg.Connection[Any], lane: Lane, until: datetime) -> None:
    """Bring the lane's pending rows whose backoff ends after `until` forward to it (the
    open breaker's next probe). Rows with an attempt in flight, or whose last outcome is
    unknown, keep theirs; so do rows held by quiet hours (they are not due before their end)."""
    conn.execute(
        "UPDATE notifications n SET next_attempt_at = %(until)s"
        f" WHERE {_in_lane('n')} AND state = 'pending' AND sending_at IS NULL"
        " AND next_attempt_at > %(until)s AND (quiet_until IS NULL OR quiet_until <= %(until)s)",
        {"until": until, **lane.params()},
    )


def hold_quiet(
    conn: psycopg.Connection[Any],
    lane: Lane,
    now: datetime,
    until: datetime,
    min_level: int | None,
    deadline: timedelta,
) -> int:
    """Hold the channel's due rows whose alert is below `min_level` (all of them when None)
    until `until`, the end of its quiet period; returns how many. No attempt is counted. Rows
    already past their delivery `deadline` are left due, for the delivery to fail them."""
    cur = conn.execute(
        "UPDATE notifications n SET next_attempt_at = %(until)s, quiet_until = %(until)s"
        f" FROM alerts a WHERE a.alert_id = n.alert_id AND {_in_lane('n')}"
        " AND n.state = 'pending' AND n.next_attempt_at <= %(now)s"
        " AND (%(min)s::integer IS NULL OR a.escalation_level < %(min)s::integer)"
        f" AND greatest({_MADE_AT}, n.quiet_until) + %(deadline)s > %(now)s",
        {"now": now, "until": until, "min": min_level, "deadline": deadline, **lane.params()},
    )
    return cur.rowcount


def rehold(
    conn: psycopg.Connection[Any],
    lane: Lane,
    now: datetime,
    until: datetime | None,
    min_level: int | None,
) -> int:
    """Apply the channel's current quiet hours to the rows it holds (after a config reload):
    `until` is the end of its quiet period now (None: not quiet), `min_level` the lowest level
    that passes. A row that passes now is released at once, one held past `until` is held until
    `until` instead; a hold that the new hours make longer is left to end as it was (the row is
    held again when it comes due). Returns how many rows changed."""
    cur = conn.execute(
        "UPDATE notifications n SET next_attempt_at = r.release, quiet_until = r.release"
        " FROM (SELECT n2.notification_id, CASE"
        "   WHEN %(until)s::timestamptz IS NULL OR a.escalation_level >= %(min)s::integer"
        "   THEN %(now)s::timestamptz ELSE %(until)s::timestamptz END AS release"
        "  FROM notifications n2 JOIN alerts a ON a.alert_id = n2.alert_id"
        f"  WHERE {_in_lane('n2')} AND n2.state = 'pending'"
        "  AND n2.quiet_until > %(now)s) r"
        " WHERE n.notification_id = r.notification_id AND n.quiet_until > r.release",
        {"now": now, "until": until, "min": min_level, **lane.params()},
    )
    return cur.rowcount


def release_unlisted(
    conn: psycopg.Connection[Any], scope: Lane, channels: list[str], now: datetime
) -> int:
    """Release the rows of `scope` (a Lane whose channel is not read) held for channels not in
    `channels` (a reload removed them or their quiet hours): due now, as any row of theirs."""
    cur = conn.execute(
        "UPDATE notifications n SET next_attempt_at = %(now)s, quiet_until = %(now)s"
        " WHERE state = 'pending' AND quiet_until > %(now)s AND channel <> ALL(%(channels)s)"
        f" AND {_of_scope('n')}",
        {"now": now, "channels": channels, **scope.params()},
    )
    return cur.rowcount


def held_counts(
    conn: psycopg.Connection[Any], now: datetime, own: tuple[str, ...] = ()
) -> dict[tuple[str, str], int]:
    """Rows held by quiet hours, per (scope, channel); `own`: the tenants with their own file."""
    rows = conn.execute(
        f"SELECT {_ROW_SCOPE}, channel, count(*) FROM notifications n"
        " WHERE state = 'pending' AND quiet_until > %(now)s GROUP BY 1, 2",
        {"now": now, "own": list(own)},
    ).fetchall()
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


def oldest_due(
    conn: psycopg.Connection[Any], lane: Lane, now: datetime
) -> tuple[int, datetime, bool] | None:
    """The lane's due pending row of the oldest alert, locked for the caller's transaction
    (rows other transactions hold are skipped), with the instant its delivery deadline counts
    from (its alert's creation, or the end of its quiet-hours hold) and whether it was held."""
    row = conn.execute(
        f"SELECT n.notification_id, greatest({_MADE_AT}, n.quiet_until),"
        " n.quiet_until IS NOT NULL FROM notifications n"
        " JOIN alerts a ON a.alert_id = n.alert_id"
        f" WHERE {_in_lane('n')} AND n.state = 'pending' AND n.next_attempt_at <= %(now)s"
        " ORDER BY n.alert_id, n.notification_id LIMIT 1 FOR UPDATE OF n SKIP LOCKED",
        {"now": now, **lane.params()},
    ).fetchone()
    return None if row is None else (int(row[0]), row[1], bool(row[2]))


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
        quiet_until=row["quiet_until"],
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
    conn: psycopg.Connection[Any],
    before: datetime,
    now: datetime,
    limit: int,
    own: tuple[str, ...] = (),
) -> list[tuple[int, str | None]]:
    """Pending rows due before `before`, with their correlation ids: what the sweeper hands back
    to the workers. Their next_attempt_at becomes `now`, the time their new message is sent, so
    that the grace runs again from there and a row whose new message waits in the queue is not
    taken a second time.

    Rows of a channel whose deliveries are parked on it (breaker open, a probe in flight, send
    slots handed out ahead) are left alone: their messages come back when the channel says.
    `own`: the tenants with a file of their own, whose channels have their own state (Lane)."""
    with conn.transaction():
        rows = conn.execute(
            "UPDATE notifications SET next_attempt_at = %(now)s WHERE notification_id IN ("
            " SELECT notification_id FROM notifications n"
            " WHERE state = 'pending' AND next_attempt_at <= %(before)s"
            " AND NOT EXISTS (SELECT 1 FROM delivery_channels c WHERE c.channel = n.channel"
            f"  AND c.scope = {_ROW_SCOPE}"
            "  AND greatest(c.retry_at, c.probe_until, c.reserved_until) > %(now)s)"
            " ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " RETURNING notification_id, correlation_id",
            {"now": now, "before": before, "limit": limit, "own": list(own)},
        ).fetchall()
    return [(int(r[0]), r[1]) for r in rows]


def take_released(
    conn: psycopg.Connection[Any], now: datetime, limit: int, own: tuple[str, ...] = ()
) -> list[tuple[int, str | None]]:
    """Rows whose quiet-hours hold has ended and that no message has been sent for yet, as
    `take_lost` takes them (their next_attempt_at becomes `now`, so they are taken once; rows
    of a parked channel are left to it). No grace: nothing else is on its way for them."""
    with conn.transaction():
        rows = conn.execute(
            # Strictly after quiet_until, so that the row is not taken again (a reload's
            # release sets quiet_until to the sweep's own instant).
            "UPDATE notifications"
            " SET next_attempt_at = greatest(%(now)s, quiet_until + interval '1 microsecond')"
            " WHERE notification_id IN ("
            " SELECT notification_id FROM notifications n"
            " WHERE state = 'pending' AND next_attempt_at <= %(now)s"
            " AND next_attempt_at = quiet_until"
            " AND NOT EXISTS (SELECT 1 FROM delivery_channels c WHERE c.channel = n.channel"
            f"  AND c.scope = {_ROW_SCOPE}"
            "  AND greatest(c.retry_at, c.probe_until, c.reserved_until) > %(now)s)"
            " ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " RETURNING notification_id, correlation_id",
            {"now": now, "limit": limit, "own": list(own)},
        ).fetchall()
    return [(int(r[0]), r[1]) for r in rows]
