"""The statements of what happens to an alert after it is written (internal/usecase/
alert_changes.py): its repeat schedule, the repeats that come due, its acknowledgement, and the
alert_updates log that every server's alert feed reads to stream those changes.

Rows of alert_updates are written under the alert write lock, as alerts are, so that their ids
commit in increasing order and a feed that read up to id N never later finds a smaller one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from internal.store.alert_repo import ALERT_COLUMNS
from internal.store.evaluate_repo import ALERT_WRITE_LOCK, ALERTS_CHANNEL
from internal.store.rows import AlertRow, column_names, typed_rows

Conn = psycopg.Connection[Any]

_ALERT_ROWS = typed_rows(AlertRow)

_SCHEDULE = """
UPDATE alerts a SET repeat_every_s = s.every, repeat_max = s.most,
                    next_repeat_at = a.created_at + make_interval(secs => s.every)
FROM unnest(%(ids)s::bigint[], %(every)s::float8[], %(most)s::int[]) AS s(id, every, most)
WHERE a.alert_id = s.id
"""

# Due repeats, earliest first, locked (SKIP LOCKED: several workers share them), with whether
# the alert's clock is still counting: a stopped clock (or one gone with a recompute) repeats
# no more.
_DUE = """
SELECT a.alert_id, a.tenant_id, a.repeat, a.repeat_max, a.repeat_every_s, a.next_repeat_at,
       coalesce(c.mode <> 'stopped', false) AS clock_counting
FROM alerts a
LEFT JOIN sla_clocks c ON c.tenant_id = a.tenant_id AND c.ticket_id = a.ticket_id
                      AND c.clock = a.clock AND c.cycle = a.cycle
WHERE a.next_repeat_at <= %(now)s
ORDER BY a.next_repeat_at
LIMIT %(limit)s
FOR UPDATE OF a SKIP LOCKED
"""

_SET_REPEATS = """
UPDATE alerts a SET repeat = u.repeat, next_repeat_at = u.next_at
FROM unnest(%(ids)s::bigint[], %(repeats)s::int[], %(next)s::timestamptz[])
     AS u(id, repeat, next_at)
WHERE a.alert_id = u.id
"""

# A repeat goes to the channels the alert was first notified on.
_INSERT_REPEAT_NOTIFICATIONS = """
INSERT INTO notifications (tenant_id, alert_id, channel, next_attempt_at, correlation_id, repeat,
                           created_at)
SELECT n.tenant_id, n.alert_id, n.channel, %(now)s, n.correlation_id, r.repeat, %(now)s
FROM unnest(%(ids)s::bigint[], %(repeats)s::int[]) AS r(id, repeat)
JOIN notifications n ON n.alert_id = r.id AND n.repeat = 0
ON CONFLICT DO NOTHING
RETURNING notification_id, correlation_id
"""

_INSERT_UPDATES = """
INSERT INTO alert_updates (tenant_id, alert_id, kind, created_at)
SELECT tenant, id, %(kind)s, %(now)s FROM unnest(%(tenants)s::text[], %(ids)s::bigint[])
    AS u(tenant, id)
"""

_ACKNOWLEDGE = f"""
UPDATE alerts SET acknowledged_at = %(now)s, acknowledged_by = %(by)s, ack_note = %(note)s,
                  next_repeat_at = NULL
WHERE tenant_id = %(tenant)s AND alert_id = %(id)s AND acknowledged_at IS NULL
RETURNING {ALERT_COLUMNS}
"""

_ALERT = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = %(tenant)s AND alert_id = %(id)s"


@dataclass(frozen=True)
class DueRepeat:
    alert_id: int
    tenant_id: str
    repeat: int
    repeat_max: int
    repeat_every_s: float
    next_repeat_at: datetime
    clock_counting: bool


@dataclass(frozen=True)
class RepeatNotification:
    notification_id: int
    correlation_id: str | None


@dataclass(frozen=True)
class AlertUpdate:
    """One change of an alert, as the feed reads it: the log row and the alert as it is now."""

    update_id: int
    kind: str  # 'repeat' | 'acknowledged'
    alert: AlertRow


def schedule_repeats(conn: Conn, repeats: Sequence[tuple[int, float, int]]) -> None:
    """(alert id, every seconds, at most): the first repeat is due `every` after the alert."""
    conn.execute(
        _SCHEDULE,
        {
            "ids": [r[0] for r in repeats],
            "every": [r[1] for r in repeats],
            "most": [r[2] for r in repeats],
        },
    )


def due_repeats(conn: Conn, now: datetime, limit: int) -> list[DueRepeat]:
    with conn.cursor(row_factory=class_row(DueRepeat)) as rows:
        return rows.execute(_DUE, {"now": now, "limit": limit}).fetchall()


def set_repeats(conn: Conn, changes: Sequence[tuple[int, int, datetime | None]]) -> None:
    """(alert id, repeats so far, next repeat or None)."""
    conn.execute(
        _SET_REPEATS,
        {
            "ids": [c[0] for c in changes],
            "repeats": [c[1] for c in changes],
            "next": [c[2] for c in changes],
        },
    )


def insert_repeat_notifications(
    conn: Conn, repeats: Sequence[tuple[int, int]], now: datetime
) -> list[RepeatNotification]:
    """(alert id, repeat number): one notification per channel of the alert's first one."""
    with conn.cursor(row_factory=class_row(RepeatNotification)) as rows:
        return rows.execute(
            _INSERT_REPEAT_NOTIFICATIONS,
            {"now": now, "ids": [r[0] for r in repeats], "repeats": [r[1] for r in repeats]},
        ).fetchall()


def record_updates(conn: Conn, kind: str, alerts: Sequence[tuple[str, int]], now: datetime) -> None:
    """Log (tenant, alert id) changes of `kind` under the alert write lock (held to commit), and
    tell the feeds at commit."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_WRITE_LOCK,))
    conn.execute(
        _INSERT_UPDATES,
        {
            "kind": kind,
            "now": now,
            "tenants": [a[0] for a in alerts],
            "ids": [a[1] for a in alerts],
        },
    )
    conn.execute("SELECT pg_notify(%s, 'update')", (ALERTS_CHANNEL,))


def acknowledge(
    conn: Conn, tenant: str, alert_id: int, by: str, note: str | None, now: datetime
) -> tuple[AlertRow | None, bool]:
    """(the alert, whether this call acknowledged it); (None, False) when the tenant has no
    such alert. An alert acknowledged before is answered as it is."""
    params = {"tenant": tenant, "id": alert_id, "by": by, "note": note, "now": now}
    with conn.cursor(row_factory=_ALERT_ROWS) as cur:
        row = cur.execute(_ACKNOWLEDGE, params).fetchone()
        if row is not None:
            return row, True
        return cur.execute(_ALERT, params).fetchone(), False


def last_update_id(conn: Conn) -> int:
    row = conn.execute("SELECT coalesce(max(update_id), 0) FROM alert_updates").fetchone()
    return int(row[0]) if row else 0


_UPDATES_AFTER = f"""
SELECT u.update_id, u.kind, {", ".join(column_names(AlertRow, "a."))}
FROM alert_updates u JOIN alerts a USING (alert_id)
WHERE u.update_id > %(after)s
ORDER BY u.update_id
LIMIT %(limit)s
"""


def updates_after(conn: Conn, after: int, limit: int) -> list[AlertUpdate]:
    """Up to `limit` changes with id > `after`, in id order, of every tenant."""
    rows = conn.execute(_UPDATES_AFTER, {"after": after, "limit": limit}).fetchall()
    return [AlertUpdate(r[0], r[1], AlertRow(*r[2:])) for r in rows]
