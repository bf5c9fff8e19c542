"""The statements of an evaluation batch (internal/usecase/evaluate.py): due clocks in, alerts,
notification rows and the clocks' new check times out, as typed rows.

Only clocks with next_check_at <= now are touched (partial index), locked with SKIP LOCKED so that
several workers share the load and an ingest holding a ticket is simply passed over this time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

ALERTS_CHANNEL = "slawatch_alerts"
# Held from the first alert insert to commit by every writer of alerts, so that alert ids commit
# in increasing order and a reader that saw id N can never later see a smaller id appear.
ALERT_WRITE_LOCK = 0x51A_A1E7

_DUE = """
SELECT c.tenant_id, c.ticket_id, c.clock, c.cycle, c.target_s, c.calendar, c.mode, c.anchor_at,
       c.anchor_elapsed, c.due_at, c.warn_at, c.fired_level, t.priority, t.customer_tier,
       t.correlation_id
FROM sla_clocks c JOIN tickets t USING (tenant_id, ticket_id)
WHERE c.next_check_at <= %(now)s
ORDER BY c.next_check_at
LIMIT %(limit)s
FOR UPDATE OF c, t SKIP LOCKED
"""

_INSERT_ALERTS = """
INSERT INTO alerts (tenant_id, ticket_id, clock, cycle, kind, escalation_level, due_at,
                    priority, customer_tier, policy_version, clock_mode, clock_mode_since,
                    created_at)
SELECT *, %(now)s FROM unnest(
    %(tenants)s::text[], %(ids)s::text[], %(clocks)s::text[], %(cycles)s::int[],
    %(kinds)s::text[], %(levels)s::int[],
    %(due)s::timestamptz[], %(priorities)s::text[], %(tiers)s::text[], %(versions)s::text[],
    %(modes)s::text[], %(mode_since)s::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING alert_id, tenant_id, ticket_id, clock, cycle, kind, escalation_level
"""

_INSERT_NOTIFICATIONS = """
INSERT INTO notifications (tenant_id, alert_id, channel, next_attempt_at, correlation_id)
SELECT tenant, alert, channel, %(now)s, correlation
FROM unnest(%(tenants)s::text[], %(alerts)s::bigint[], %(channels)s::text[],
            %(correlations)s::text[]) AS n(tenant, alert, channel, correlation)
ON CONFLICT DO NOTHING
RETURNING notification_id, correlation_id
"""

_UPDATE_CLOCKS = """
UPDATE sla_clocks c SET fired_level = u.fired, next_check_at = u.next_check
FROM unnest(%(tenants)s::text[], %(ids)s::text[], %(clocks)s::text[], %(cycles)s::int[],
            %(fired)s::int[], %(next_check)s::timestamptz[])
     AS u(tenant, ticket, clock, cycle, fired, next_check)
WHERE c.tenant_id = u.tenant AND c.ticket_id = u.ticket AND c.clock = u.clock
  AND c.cycle = u.cycle
"""

_UPDATE_LEVELS = """
UPDATE tickets t SET escalation_level = greatest(t.escalation_level, u.level)
FROM unnest(%(tenants)s::text[], %(ids)s::text[], %(levels)s::int[]) AS u(tenant, ticket, level)
WHERE t.tenant_id = u.tenant AND t.ticket_id = u.ticket
"""


@dataclass(frozen=True)
class DueClock:
    """A clock (one cycle of a metric) whose next check is due, with what its alerts record of
    the ticket."""

    tenant_id: str
    ticket_id: str
    clock: str
    cycle: int
    target_s: float
    calendar: str
    mode: str
    anchor_at: datetime
    anchor_elapsed: float
    due_at: datetime | None
    warn_at: datetime | None
    fired_level: int
    priority: str
    customer_tier: str
    correlation_id: str | None


@dataclass(frozen=True)
class NewAlert:
    tenant_id: str
    ticket_id: str
    clock: str
    cycle: int
    kind: str
    level: int
    due_at: datetime | None
    priority: str
    customer_tier: str
    # A clock that stopped or paused past a step has no due time: delivery says when it
    # stopped instead.
    clock_mode: str
    clock_mode_since: datetime
    policy_version: str  # of the tenant's policy that decided it


@dataclass(frozen=True)
class WrittenAlert:
    alert_id: int
    tenant_id: str
    ticket_id: str
    clock: str
    cycle: int
    kind: str
    escalation_level: int


@dataclass(frozen=True)
class NewNotification:
    tenant_id: str
    alert_id: int
    channel: str
    correlation_id: str | None


@dataclass(frozen=True)
class WrittenNotification:
    notification_id: int
    correlation_id: str | None


@dataclass(frozen=True)
class ClockCheck:
    """A due clock after its evaluation: its fired level and next check (None: never)."""

    tenant_id: str
    ticket_id: str
    clock: str
    cycle: int
    fired_level: int
    next_check_at: datetime | None


Conn = psycopg.Connection[Any]


def due_clocks(conn: Conn, now: datetime, limit: int) -> list[DueClock]:
    """Up to `limit` due clocks, earliest check first, locked with their tickets (SKIP LOCKED)."""
    with conn.cursor(row_factory=class_row(DueClock)) as rows:
        return rows.execute(_DUE, {"now": now, "limit": limit}).fetchall()


def insert_alerts(conn: Conn, alerts: Sequence[NewAlert], now: datetime) -> list[WrittenAlert]:
    """Write `alerts` under the alert write lock (held to commit); those already written for
    their ticket, clock, cycle and level are left out of the answer."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_WRITE_LOCK,))
    with conn.cursor(row_factory=class_row(WrittenAlert)) as rows:
        return rows.execute(
            _INSERT_ALERTS,
            {
                "now": now,
                "tenants": [a.tenant_id for a in alerts],
                "ids": [a.ticket_id for a in alerts],
                "clocks": [a.clock for a in alerts],
                "cycles": [a.cycle for a in alerts],
                "kinds": [a.kind for a in alerts],
                "levels": [a.level for a in alerts],
                "due": [a.due_at for a in alerts],
                "priorities": [a.priority for a in alerts],
                "tiers": [a.customer_tier for a in alerts],
                "versions": [a.policy_version for a in alerts],
                "modes": [a.clock_mode for a in alerts],
                "mode_since": [a.clock_mode_since for a in alerts],
            },
        ).fetchall()


def insert_notifications(
    conn: Conn, notifications: Sequence[NewNotification], now: datetime
) -> list[WrittenNotification]:
    with conn.cursor(row_factory=class_row(WrittenNotification)) as rows:
        return rows.execute(
            _INSERT_NOTIFICATIONS,
            {
                "now": now,
                "tenants": [n.tenant_id for n in notifications],
                "alerts": [n.alert_id for n in notifications],
                "channels": [n.channel for n in notifications],
                "correlations": [n.correlation_id for n in notifications],
            },
        ).fetchall()


def raise_levels(conn: Conn, alerts: Sequence[NewAlert]) -> None:
    """Each alert's ticket has at least its level as escalation level."""
    conn.execute(
        _UPDATE_LEVELS,
        {
            "tenants": [a.tenant_id for a in alerts],
            "ids": [a.ticket_id for a in alerts],
            "levels": [a.level for a in alerts],
        },
    )


def record_checks(conn: Conn, checks: Sequence[ClockCheck]) -> None:
    conn.execute(
        _UPDATE_CLOCKS,
        {
            "tenants": [c.tenant_id for c in checks],
            "ids": [c.ticket_id for c in checks],
            "clocks": [c.clock for c in checks],
            "cycles": [c.cycle for c in checks],
            "fired": [c.fired_level for c in checks],
            "next_check": [c.next_check_at for c in checks],
        },
    )


def notify_alerts(conn: Conn, last_alert_id: int) -> None:
    """Tell listeners (delivered on commit only) that alerts up to this id were written."""
    conn.execute("SELECT pg_notify(%s, %s)", (ALERTS_CHANNEL, str(last_alert_id)))
