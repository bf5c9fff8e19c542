"""What is left of a ticket in the store, table by table, and whether the dashboard's count
buckets still match the tickets: for the DeleteTicket and retention tests."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

# Hours as text: 'infinity' has no Python datetime.
# Migration 0005's definition of a ticket's bucket, counted over the tickets table.
_BUCKETS_FROM_TICKETS = """
SELECT tenant_id, priority, customer_tier, status, active,
       (CASE WHEN active AND warn_at IS NOT NULL
             THEN date_bin('1 hour', warn_at, timestamptz '2000-01-01 00:00:00+00')
             ELSE 'infinity' END)::text,
       coalesce(date_bin('1 hour', breach_at, timestamptz '2000-01-01 00:00:00+00'),
                'infinity')::text,
       count(*)
FROM tickets GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
_BUCKETS_KEPT = """
SELECT tenant_id, priority, customer_tier, status, active, warn_hour::text, breach_hour::text,
       sum(tickets)::bigint
FROM ticket_state_buckets GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(tickets) <> 0
"""


def per_ticket_tables(database_url: str) -> list[str]:
    """Every table of the schema with a ticket_id column: whatever a migration adds later is
    looked at too."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'ticket_id'"
            " AND table_name IN (SELECT table_name FROM information_schema.tables"
            "                    WHERE table_schema = 'public' AND table_type = 'BASE TABLE')"
            " ORDER BY 1"
        ).fetchall()
    return [str(r[0]) for r in rows]


def rows_of(
    database_url: str, tenant: str, ticket_id: str, alert_ids: Iterable[int] = ()
) -> dict[str, int]:
    """Rows of the ticket in each per-ticket table, by name, and in notifications: those of its
    alerts `alert_ids` (read before an erasure: notifications have no ticket_id) and those
    reached through its alerts still stored."""
    counts: dict[str, int] = {}
    with psycopg.connect(database_url) as conn:
        for table in per_ticket_tables(database_url):
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s AND ticket_id = %s").format(
                    sql.Identifier(table)
                ),
                (tenant, ticket_id),
            ).fetchone()
            counts[table] = int(row[0]) if row else 0
        row = conn.execute(
            "SELECT count(*) FROM notifications n WHERE n.alert_id = ANY(%s)"
            " OR n.alert_id IN (SELECT alert_id FROM alerts WHERE tenant_id = %s"
            "                   AND ticket_id = %s)",
            (list(alert_ids), tenant, ticket_id),
        ).fetchone()
        counts["notifications"] = int(row[0]) if row else 0
    return counts


def alert_ids_of(database_url: str, tenant: str, ticket_id: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT alert_id FROM alerts WHERE tenant_id = %s AND ticket_id = %s ORDER BY 1",
            (tenant, ticket_id),
        ).fetchall()
    return [int(r[0]) for r in rows]


def bucket_drift(database_url: str) -> list[tuple[object, ...]]:
    """Bucket rows that differ from the tickets counted one by one (empty when exact), each
    marked 'kept' (in ticket_state_buckets) or 'truth' (counted from tickets). Valid while no
    fold of past hours has run."""
    with psycopg.connect(database_url) as conn:
        kept = set(conn.execute(_BUCKETS_KEPT).fetchall())
        truth = set(conn.execute(_BUCKETS_FROM_TICKETS).fetchall())
    return sorted((("kept", *r) for r in kept - truth), key=str) + sorted(
        (("truth", *r) for r in truth - kept), key=str
    )
