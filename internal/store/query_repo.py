"""Read queries: one ticket in full, and the dashboard page with its counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from internal.sla.model import State
from internal.store import state_buckets

Row = dict[str, Any]


@dataclass
class TicketDetail:
    ticket: Row
    clocks: list[Row]
    history: list[Row]
    alerts: list[Row]
    notifications: dict[int, list[Row]] = field(default_factory=dict)


_TICKET_READS = (
    "SELECT * FROM tickets WHERE tenant_id = %(tenant)s AND ticket_id = %(id)s",
    "SELECT * FROM sla_clocks WHERE tenant_id = %(tenant)s AND ticket_id = %(id)s ORDER BY clock",
    "SELECT * FROM ticket_events WHERE tenant_id = %(tenant)s AND ticket_id = %(id)s"
    " ORDER BY updated_at",
    "SELECT * FROM alerts WHERE tenant_id = %(tenant)s AND ticket_id = %(id)s ORDER BY alert_id",
    "SELECT n.* FROM notifications n JOIN alerts a USING (alert_id)"
    " WHERE a.tenant_id = %(tenant)s AND a.ticket_id = %(id)s ORDER BY n.notification_id",
)


def get_ticket(conn: psycopg.Connection[Any], tenant: str, ticket_id: str) -> TicketDetail | None:
    """The ticket with its clocks, history, alerts and their notifications: five reads sent
    together (pipeline mode), so one round trip to the database instead of five."""
    args = {"tenant": tenant, "id": ticket_id}
    cursors = [conn.cursor(row_factory=dict_row) for _ in _TICKET_READS]
    with conn.pipeline():
        for cur, sql in zip(cursors, _TICKET_READS, strict=True):
            cur.execute(sql, args)
    ticket_cur, clocks_cur, history_cur, alerts_cur, notes_cur = cursors
    ticket = ticket_cur.fetchone()
    if ticket is None:
        return None
    notifications: dict[int, list[Row]] = {}
    for n in notes_cur.fetchall():
        notifications.setdefault(int(n["alert_id"]), []).append(n)
    return TicketDetail(
        ticket, clocks_cur.fetchall(), history_cur.fetchall(), alerts_cur.fetchall(), notifications
    )


# A ticket's state from its stored instants, exact at %(now)s: the Python rule (StoredClock.state,
# the worst of its clocks) in SQL, held equal to it by tests/integration/test_state_sql.py.
_STATE_SQL = f"""
CASE WHEN breach_at <= %(now)s THEN {State.BREACHED.value}
     WHEN NOT active THEN {State.MET.value}
     WHEN warn_at <= %(now)s THEN {State.WARNING.value}
     ELSE {State.OK.value} END
"""


@dataclass(frozen=True)
class DashboardFilter:
    states: Sequence[State] = ()
    priorities: Sequence[str] = ()
    tiers: Sequence[str] = ()
    statuses: Sequence[str] = ()


def _where(f: DashboardFilter) -> str:
    clauses = ["tenant_id = %(tenant)s"]
    if f.priorities:
        clauses.append("priority = ANY(%(priorities)s)")
    if f.tiers:
        clauses.append("customer_tier = ANY(%(tiers)s)")
    if f.statuses:
        clauses.append("status = ANY(%(statuses)s)")
    return " AND ".join(clauses)


def _params(tenant: str, f: DashboardFilter, now: datetime) -> dict[str, object]:
    return {
        "tenant": tenant,
        "now": now,
        "priorities": list(f.priorities),
        "tiers": list(f.tiers),
        "statuses": list(f.statuses),
        "states": [s.value for s in f.states],
    }


# A page's tickets with their two clocks, in one query: the clock columns come prefixed, one row
# per clock, in page order.
_CLOCK_COLUMNS = (
    "clock",
    "target_s",
    "calendar",
    "mode",
    "anchor_at",
    "anchor_elapsed",
    "due_at",
    "warn_at",
    "fired_level",
)
_CLOCKS_JOIN = ", ".join(f"c.{name} AS clock_{name}" for name in _CLOCK_COLUMNS)


@dataclass
class PageRow:
    ticket: Row
    clocks: list[Row]


def dashboard_page(
    conn: psycopg.Connection[Any],
    tenant: str,
    f: DashboardFilter,
    now: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PageRow]:
    """Tickets ordered by (urgent_at, ticket_id) strictly after the cursor `after`, each with
    its clocks."""
    params = _params(tenant, f, now)
    where = _where(f)
    if after is not None:
        where += " AND (urgent_at, ticket_id) > (%(after_at)s, %(after_id)s)"
        params.update(after_at=after[0], after_id=after[1])
    if f.states:
        where += f" AND ({_STATE_SQL}) = ANY(%(states)s)"
        if State.BREACHED not in f.states:
            # Implied (a ticket not breached has no running clock due yet), but sargable: the
            # index scan starts at now instead of walking every overdue ticket first.
            where += " AND urgent_at > %(now)s"
    params["limit"] = limit
    sql = f"""
    SELECT t.*, {_CLOCKS_JOIN} FROM (
        SELECT *, {_STATE_SQL} AS sla_state FROM tickets WHERE {where}
        ORDER BY urgent_at, ticket_id LIMIT %(limit)s
    ) AS t
    LEFT JOIN sla_clocks c ON c.tenant_id = t.tenant_id AND c.ticket_id = t.ticket_id
    ORDER BY t.urgent_at, t.ticket_id, c.clock
    """
    page: list[PageRow] = []
    with conn.cursor(row_factory=dict_row) as cur:
        for row in cur.execute(sql, params):
            clock = {name: row.pop(f"clock_{name}") for name in _CLOCK_COLUMNS}
            if not page or page[-1].ticket["ticket_id"] != row["ticket_id"]:
                page.append(PageRow(row, []))
            if clock["clock"] is not None:
                page[-1].clocks.append(clock)
    return page


def dashboard_counts(
    conn: psycopg.Connection[Any], tenant: str, f: DashboardFilter, now: datetime
) -> dict[State, int]:
    """Tickets per SLA state under the priority/tier/status part of the filter."""
    return state_buckets.count_states(conn, _where(f), _params(tenant, f, now), now)
