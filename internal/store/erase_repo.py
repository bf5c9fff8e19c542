"""Erasing tickets with everything of theirs: the statements DeleteTicket and retention
(internal/usecase/erase.py) run inside the transactions they own.

A ticket's rows are in tickets, ticket_events, sla_clocks and alerts (keyed by tenant and
ticket), in notifications (reached through their alert), and one count in ticket_state_buckets
(which the caller takes out with state_buckets.record_changes, as ingest moves it). Notifications
go before their alerts (the foreign key), the ticket row last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from internal.store import state_buckets

Cursor = psycopg.Cursor[tuple[Any, ...]]
TicketKey = tuple[str, str]  # (tenant_id, ticket_id)

# The tickets of one statement, as two parallel arrays joined back into pairs.
_PAIRS = "unnest(%(tenants)s::text[], %(ids)s::text[]) AS k(tenant_id, ticket_id)"

_DELETE_NOTIFICATIONS = f"""
DELETE FROM notifications n USING alerts a, {_PAIRS}
WHERE a.tenant_id = k.tenant_id AND a.ticket_id = k.ticket_id AND n.alert_id = a.alert_id
"""
_DELETE_BY_TICKET = """
DELETE FROM {table} t USING {pairs}
WHERE t.tenant_id = k.tenant_id AND t.ticket_id = k.ticket_id
"""
# Children first, the ticket row last.
_TICKET_TABLES = ("alerts", "sla_clocks", "ticket_events", "tickets")

# A done ticket: resolved or closed with no clock running (the predicate of the partial index
# tickets_retention, migration 0012, which these statements are planned on).
_DONE = "NOT active AND status IN ('resolved', 'closed')"

_CANDIDATES = f"""
SELECT tenant_id, ticket_id FROM tickets
WHERE {_DONE} AND updated_at < %(cutoff)s
ORDER BY updated_at
LIMIT %(limit)s
"""

# The same advisory key as ticket_repo.lock_tickets takes, but tried, never waited for: a ticket
# an ingest (or a DeleteTicket) holds is left for the next batch, so retention never waits for
# a writer, and a writer waits for retention only on the few tickets of its batch.
_TRY_LOCK = f"""
SELECT k.tenant_id, k.ticket_id FROM {_PAIRS}
WHERE pg_try_advisory_xact_lock(hashtextextended(k.tenant_id || chr(31) || k.ticket_id, 0))
"""

# _DONE again, re-checked under the row lock: a ticket reopened (or given a newer event) since
# the candidates were read no longer matches and stays. SKIP LOCKED passes over a ticket an
# evaluation holds. One primary-key lookup per ticket (a lateral sub-select with FOR UPDATE is
# never flattened): joined plainly, the planner hashed every old done ticket of the partial index
# (38 ms for a batch of 500 among 20,000; 3 ms this way).
_LOCK_DONE = f"""
SELECT t.tenant_id, t.ticket_id, t.priority, t.customer_tier, t.status, t.active, t.warn_at,
       t.breach_at
FROM (SELECT DISTINCT * FROM {_PAIRS} ORDER BY 1, 2) AS k
CROSS JOIN LATERAL (
    SELECT * FROM tickets
    WHERE tenant_id = k.tenant_id AND ticket_id = k.ticket_id
      AND NOT active AND status IN ('resolved', 'closed') AND updated_at < %(cutoff)s
    FOR UPDATE SKIP LOCKED
) AS t
"""


@dataclass(frozen=True)
class Erased:
    """Rows removed, per table."""

    tickets: int = 0
    events: int = 0
    clocks: int = 0
    alerts: int = 0
    notifications: int = 0


@dataclass(frozen=True)
class Locked:
    """A ticket locked for erasure, with the dashboard bucket it is counted in."""

    key: TicketKey
    bucket: state_buckets.BucketKey


def _pairs(keys: Sequence[TicketKey]) -> dict[str, list[str]]:
    return {"tenants": [t for t, _ in keys], "ids": [i for _, i in keys]}


def erase(cur: Cursor, keys: Sequence[TicketKey]) -> Erased:
    """Delete every row of the tickets `keys` but their bucket counts. The caller holds their
    advisory and row locks, so no writer adds a row of theirs meanwhile."""
    if not keys:
        return Erased()
    params = _pairs(keys)
    counts: dict[str, int] = {}
    cur.execute(_DELETE_NOTIFICATIONS, params)
    counts["notifications"] = cur.rowcount
    for table in _TICKET_TABLES:
        cur.execute(_DELETE_BY_TICKET.format(table=table, pairs=_PAIRS), params)
        counts[table] = cur.rowcount
    return Erased(
        tickets=counts["tickets"],
        events=counts["ticket_events"],
        clocks=counts["sla_clocks"],
        alerts=counts["alerts"],
        notifications=counts["notifications"],
    )


def retention_candidates(cur: Cursor, cutoff: datetime, limit: int) -> list[TicketKey]:
    """Up to `limit` done tickets whose latest event is before `cutoff`, oldest first (no lock)."""
    rows = cur.execute(_CANDIDATES, {"cutoff": cutoff, "limit": limit}).fetchall()
    return [(str(t), str(i)) for t, i in rows]


def lock_done(cur: Cursor, keys: Sequence[TicketKey], cutoff: datetime) -> list[Locked]:
    """Of `keys`, those whose advisory lock is free and which are still done before `cutoff`,
    locked (advisory and row) until the transaction ends; the others are skipped, not waited
    for."""
    if not keys:
        return []
    held = [(str(t), str(i)) for t, i in cur.execute(_TRY_LOCK, _pairs(keys)).fetchall()]
    if not held:
        return []
    rows = cur.execute(_LOCK_DONE, {**_pairs(held), "cutoff": cutoff}).fetchall()
    return [
        Locked((str(tenant), str(tid)), state_buckets.bucket_key(*bucket))
        for tenant, tid, *bucket in rows
    ]
