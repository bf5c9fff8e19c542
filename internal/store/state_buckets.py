"""Tickets counted per dashboard group and per hour of their warning and breach instants
(table ticket_state_buckets, migration 0005), so that the dashboard's counts per SLA state cost
O(groups x hours) plus the tickets of the current hour, not O(tickets).

Every write of tickets' state columns goes through `record_changes` in the same transaction:
the counts are exactly those of the committed tickets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from internal.sla.model import State

_KEY = "priority, customer_tier, status, active, warn_hour, breach_hour"

# The bucket of a ticket: its group, and the hours of its warning (only while active) and breach
# instants, as whole hours since the Unix epoch (UTC), None for never ('infinity' in the table).
# Hours are ints until they reach SQL: a datetime per hour costs ~1 us each on the ingest path.
BucketKey = tuple[str, str, str, bool, int | None, int | None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)

# Staging for the moves of one transaction (created with the ingest temp tables; emptied at
# commit). COPY, not arrays: psycopg encodes arrays in Python, element by element.
TEMP_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS in_bucket_moves (
    priority text, customer_tier text, status text, active boolean, warn_hour int8,
    breach_hour int8, tickets int8) ON COMMIT DELETE ROWS;
"""
_MOVE_TYPES = ["text", "text", "text", "bool", "int8", "int8", "int8"]

# One statement, its keys in sorted order: two transactions upserting overlapping buckets wait
# for each other, never deadlock.
_RECORD = f"""
INSERT INTO ticket_state_buckets AS b (tenant_id, {_KEY}, tickets)
SELECT %(tenant)s, priority, customer_tier, status, active,
       coalesce(to_timestamp(warn_hour * 3600), 'infinity'),
       coalesce(to_timestamp(breach_hour * 3600), 'infinity'), tickets
FROM in_bucket_moves
ORDER BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (tenant_id, {_KEY}) DO UPDATE SET tickets = b.tickets + EXCLUDED.tickets
"""


def bucket_key(
    priority: str,
    customer_tier: str,
    status: str,
    active: bool,
    warn_at: datetime | None,
    breach_at: datetime | None,
) -> BucketKey:
    """The bucket of a ticket with these stored fields (what migration 0005's SQL computes)."""
    return (
        priority,
        customer_tier,
        status,
        active,
        hour_index(warn_at) if active and warn_at is not None else None,
        None if breach_at is None else hour_index(breach_at),
    )


def record_changes(cur: psycopg.Cursor[Any], tenant: str, moves: Mapping[BucketKey, int]) -> None:
    """Add `moves` (tickets in, out when negative) to the tenant's buckets. Every write of
    tickets calls it in its transaction, after the ticket rows: +1 for each ticket's new bucket,
    -1 for its old one. The session must have created TEMP_TABLE."""
    changed = [(*key, n) for key, n in moves.items() if n]
    if not changed:
        return
    with cur.copy("COPY in_bucket_moves FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_MOVE_TYPES)
        for row in changed:
            copy.write_row(row)
    cur.execute(_RECORD, {"tenant": tenant})


def record_changes_of_tenants(
    cur: psycopg.Cursor[Any], moves: Mapping[str, Mapping[BucketKey, int]]
) -> None:
    """`record_changes` for several tenants in one transaction (retention batches span tenants):
    tenants in order, so bucket rows are locked in one order by every writer, and the staging
    table emptied after each (it is otherwise emptied only at commit)."""
    for tenant in sorted(moves):
        record_changes(cur, tenant, moves[tenant])
        cur.execute("DELETE FROM in_bucket_moves")


def hour_index(at: datetime) -> int:
    """Whole UTC hours from the Unix epoch to the hour holding `at` (any time zone): the hour
    migration 0005's backfill computes with date_bin('1 hour', at, '2000-01-01 00:00:00+00')."""
    return (at - _EPOCH) // _HOUR


def hour_of(at: datetime) -> datetime:
    """The start of the hour holding `at`, in UTC."""
    return _EPOCH + hour_index(at) * _HOUR


def count_states(
    conn: psycopg.Connection[Any], where: str, params: dict[str, Any], now: datetime
) -> dict[State, int]:
    """Tickets per SLA state at `now`, for `where` (a condition on tenant_id, priority,
    customer_tier and status, with its `params`). The rules are those of a ticket's state:
    breached once breach_at <= now; else met once no clock runs; else warning once warn_at <= now;
    else ok (StoredClock.state's rule; tests/integration/test_state_sql.py holds them equal)."""
    sql = f"""
    WITH settled AS (
        SELECT sum(tickets) FILTER (WHERE breach_hour < %(hour)s) AS breached,
               sum(tickets) FILTER (WHERE breach_hour > %(hour)s AND NOT active) AS met,
               sum(tickets) FILTER (
                   WHERE breach_hour > %(hour)s AND active AND warn_hour < %(hour)s) AS warning,
               sum(tickets) AS total
        FROM ticket_state_buckets
        WHERE {where} AND warn_hour <> %(hour)s AND breach_hour <> %(hour)s
    ),
    current AS (
        -- Two disjoint parts, each an index-only scan (once the pages are all-visible) of the
        -- index that covers it: tickets whose breach falls in this hour, then tickets whose
        -- warning alone does.
        SELECT count(*) FILTER (WHERE breach_at <= %(now)s) AS breached,
               count(*) FILTER (WHERE NOT active AND NOT coalesce(breach_at <= %(now)s, false))
                   AS met,
               count(*) FILTER (WHERE active AND warn_at <= %(now)s
                                AND NOT coalesce(breach_at <= %(now)s, false)) AS warning,
               count(*) AS total
        FROM (
            SELECT active, warn_at, breach_at FROM tickets
            WHERE {where} AND breach_at >= %(hour)s AND breach_at < %(hour_end)s
            UNION ALL
            SELECT true, warn_at, breach_at FROM tickets
            WHERE {where} AND active AND warn_at >= %(hour)s AND warn_at < %(hour_end)s
              AND NOT coalesce(breach_at >= %(hour)s AND breach_at < %(hour_end)s, false)
        ) AS t
    )
    SELECT coalesce(s.breached, 0) + c.breached, coalesce(s.met, 0) + c.met,
           coalesce(s.warning, 0) + c.warning, coalesce(s.total, 0) + c.total
    FROM settled s, current c
    """
    hour = hour_of(now)
    args = {**params, "now": now, "hour": hour, "hour_end": hour + timedelta(hours=1)}
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    breached, met, warning, total = (int(v) for v in row)
    return {
        State.BREACHED: breached,
        State.MET: met,
        State.WARNING: warning,
        State.OK: total - breached - met - warning,
    }


# Hours this far behind are wholly in the past for any `now` a caller can still pass, even with
# clocks a little apart between machines: they all count the same and are folded into one.
FOLD_MARGIN = timedelta(days=1)

_FOLD = f"""
WITH old AS (
    DELETE FROM ticket_state_buckets WHERE ctid IN (
        SELECT ctid FROM ticket_state_buckets
        WHERE (warn_hour < %(before)s AND warn_hour <> '-infinity')
           OR (breach_hour < %(before)s AND breach_hour <> '-infinity')
           OR tickets = 0
        FOR UPDATE SKIP LOCKED)
    RETURNING *
),
folded AS (
    INSERT INTO ticket_state_buckets AS b (tenant_id, {_KEY}, tickets)
    SELECT tenant_id, priority, customer_tier, status, active,
           CASE WHEN warn_hour < %(before)s THEN '-infinity' ELSE warn_hour END,
           CASE WHEN breach_hour < %(before)s THEN '-infinity' ELSE breach_hour END,
           sum(tickets)
    FROM old
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING sum(tickets) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (tenant_id, {_KEY}) DO UPDATE SET tickets = b.tickets + EXCLUDED.tickets
)
SELECT count(*) FROM old
"""


def fold_past_hours(conn: psycopg.Connection[Any], now: datetime) -> int:
    """Fold the buckets of hours long past into '-infinity', and drop emptied buckets, so that
    the table stays about as small as the hours still ahead. Returns the buckets taken out.
    Rows a concurrent ingest holds are skipped and folded next time."""
    with conn.transaction():
        row = conn.execute(_FOLD, {"before": now - FOLD_MARGIN}).fetchone()
    return int(row[0]) if row else 0
