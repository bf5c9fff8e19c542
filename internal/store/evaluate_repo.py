"""One evaluation batch: due clocks in, alerts and their notification rows out, one transaction.

Only clocks with next_check_at <= now are touched (partial index), locked with SKIP LOCKED so that
several workers share the load and an ingest holding a ticket is simply passed over this time.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from internal.config.sla_config import SlaConfig
from internal.sla.stored_clock import StoredClock

log = logging.getLogger(__name__)

ALERTS_CHANNEL = "slawatch_alerts"
# Held from the first alert insert to commit by every writer of alerts, so that alert ids commit
# in increasing order and a reader that saw id N can never later see a smaller id appear.
ALERT_WRITE_LOCK = 0x51A_A1E7

_DUE = """
SELECT c.tenant_id, c.ticket_id, c.clock, c.target_s, c.calendar, c.mode, c.anchor_at,
       c.anchor_elapsed, c.due_at, c.warn_at, c.fired_level, t.priority, t.customer_tier,
       t.correlation_id
FROM sla_clocks c JOIN tickets t USING (tenant_id, ticket_id)
WHERE c.next_check_at <= %(now)s
ORDER BY c.next_check_at
LIMIT %(limit)s
FOR UPDATE OF c, t SKIP LOCKED
"""

_INSERT_ALERTS = """
INSERT INTO alerts (tenant_id, ticket_id, clock, kind, escalation_level, due_at, priority,
                    customer_tier, policy_version, clock_mode, clock_mode_since, created_at)
SELECT *, %(now)s FROM unnest(
    %(tenants)s::text[], %(ids)s::text[], %(clocks)s::text[], %(kinds)s::text[], %(levels)s::int[],
    %(due)s::timestamptz[], %(priorities)s::text[], %(tiers)s::text[], %(versions)s::text[],
    %(modes)s::text[], %(mode_since)s::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING alert_id, tenant_id, ticket_id, clock, kind, escalation_level
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
FROM unnest(%(tenants)s::text[], %(ids)s::text[], %(clocks)s::text[], %(fired)s::int[],
            %(next_check)s::timestamptz[]) AS u(tenant, ticket, clock, fired, next_check)
WHERE c.tenant_id = u.tenant AND c.ticket_id = u.ticket AND c.clock = u.clock
"""

_UPDATE_LEVELS = """
UPDATE tickets t SET escalation_level = greatest(t.escalation_level, u.level)
FROM unnest(%(tenants)s::text[], %(ids)s::text[], %(levels)s::int[]) AS u(tenant, ticket, level)
WHERE t.tenant_id = u.tenant AND t.ticket_id = u.ticket
"""


@dataclass(frozen=True)
class RaisedAlert:
    alert_id: int
    ticket_id: str
    clock: str
    kind: str
    level: int
    correlation_id: str | None  # of the ingest call that last changed the ticket


@dataclass(frozen=True)
class BatchResult:
    clocks: int  # due clocks looked at
    alerts: list[int]  # ids of the alerts written
    notifications: list[int]  # ids of the notification rows written
    raised: list[RaisedAlert] = field(default_factory=list)  # the alerts written, in detail
    # notification id -> the correlation id it carries (that of its alert's ticket)
    correlations: dict[int, str | None] = field(default_factory=dict)


def evaluate_batch(
    conn: psycopg.Connection[Any], config: SlaConfig, now: datetime, limit: int = 1000
) -> BatchResult:
    ladder = config.ladder
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        due = cur.execute(_DUE, {"now": now, "limit": limit}).fetchall()
        if not due:
            return BatchResult(0, [], [])
        updates: list[tuple[str, str, str, int, datetime | None]] = []
        alerts: list[dict[str, Any]] = []
        unknown_calendars: Counter[str] = Counter()
        for row in due:
            clock = StoredClock.from_row(row, config.calendars)
            if clock.calendar is None:
                unknown_calendars[clock.calendar_name] += 1
            outcome = clock.evaluate(ladder, now)
            step = outcome.step
            if step is not None:
                alerts.append(
                    {**row, "kind": step.kind.value, "level": step.level, "notify": step.notify}
                )
            updates.append(
                (
                    str(row["tenant_id"]),
                    str(row["ticket_id"]),
                    str(row["clock"]),
                    outcome.fired_level,
                    outcome.next_check_at,
                )
            )
        for name, count in sorted(unknown_calendars.items()):
            log.warning(
                "%d due clock(s) count on calendar %r, which policy %s does not define: their"
                " steps are timed from their stored due time (late, never early), steps past"
                " the target do not fire; define the calendar again to count them exactly",
                count,
                name,
                config.version,
            )

        written: list[dict[str, Any]] = []
        raised: list[RaisedAlert] = []
        notification_ids: list[int] = []
        correlations: dict[int, str | None] = {}
        if alerts:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_WRITE_LOCK,))
            written = cur.execute(
                _INSERT_ALERTS,
                {
                    "now": now,
                    "tenants": [a["tenant_id"] for a in alerts],
                    "ids": [a["ticket_id"] for a in alerts],
                    "clocks": [a["clock"] for a in alerts],
                    "kinds": [a["kind"] for a in alerts],
                    "levels": [a["level"] for a in alerts],
                    "due": [a["due_at"] for a in alerts],
                    "priorities": [a["priority"] for a in alerts],
                    "tiers": [a["customer_tier"] for a in alerts],
                    "versions": [config.version] * len(alerts),
                    # A clock that stopped or paused past a step has no due time: delivery says
                    # when it stopped instead.
                    "modes": [a["mode"] for a in alerts],
                    "mode_since": [a["anchor_at"] for a in alerts],
                },
            ).fetchall()
            notify_by_key = {
                (a["tenant_id"], a["ticket_id"], a["clock"], a["level"]): a["notify"]
                for a in alerts
            }
            correlation_by_ticket = {
                (a["tenant_id"], a["ticket_id"]): a["correlation_id"] for a in alerts
            }
            raised = [
                RaisedAlert(
                    alert_id=int(w["alert_id"]),
                    ticket_id=str(w["ticket_id"]),
                    clock=str(w["clock"]),
                    kind=str(w["kind"]),
                    level=int(w["escalation_level"]),
                    correlation_id=correlation_by_ticket[(w["tenant_id"], w["ticket_id"])],
                )
                for w in written
            ]
            rows = [
                (w["tenant_id"], w["alert_id"], channel, r.correlation_id)
                for w, r in zip(written, raised, strict=True)
                for channel in notify_by_key[
                    (w["tenant_id"], w["ticket_id"], w["clock"], w["escalation_level"])
                ]
            ]
            if rows:
                for note in cur.execute(
                    _INSERT_NOTIFICATIONS,
                    {
                        "now": now,
                        "tenants": [r[0] for r in rows],
                        "alerts": [r[1] for r in rows],
                        "channels": [r[2] for r in rows],
                        "correlations": [r[3] for r in rows],
                    },
                ).fetchall():
                    notification_ids.append(int(note["notification_id"]))
                    correlations[int(note["notification_id"])] = note["correlation_id"]
            cur.execute(
                _UPDATE_LEVELS,
                {
                    "tenants": [a["tenant_id"] for a in alerts],
                    "ids": [a["ticket_id"] for a in alerts],
                    "levels": [a["level"] for a in alerts],
                },
            )
        cur.execute(
            _UPDATE_CLOCKS,
            {
                "tenants": [u[0] for u in updates],
                "ids": [u[1] for u in updates],
                "clocks": [u[2] for u in updates],
                "fired": [u[3] for u in updates],
                "next_check": [u[4] for u in updates],
            },
        )
        alert_ids = [int(w["alert_id"]) for w in written]
        if alert_ids:
            # Delivered on commit only; listeners then read alerts with id > their last.
            cur.execute("SELECT pg_notify(%s, %s)", (ALERTS_CHANNEL, str(max(alert_ids))))
    return BatchResult(len(due), alert_ids, notification_ids, raised, correlations)
