"""Read queries: one ticket in full, and the dashboard page with its counts, as typed rows
(internal/store/rows.py). Each query names its columns: those of its row, in the row's order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from internal.sla.model import State
from internal.store import state_buckets
from internal.store.rows import (
    AlertRow,
    ClockRow,
    DashboardTicket,
    HistoryRow,
    NotificationRow,
    TicketRow,
    check_columns,
    column_names,
    typed_rows,
)


@dataclass(frozen=True)
class TicketDetail:
    ticket: TicketRow
    clocks: list[ClockRow]  # every cycle, by metric name then cycle number
    history: list[HistoryRow]  # in event-time order
    alerts: list[AlertRow]  # in id order
    notifications: dict[int, list[NotificationRow]] = field(default_factory=dict)  # by alert id


_TICKET = "tenant_id = %(tenant)s AND ticket_id = %(id)s"
# The five reads of GetTicket, in the order they are sent, each with the row it returns (the
# columns are that row's fields, in order).
TICKET_READS: tuple[tuple[str, type[Any]], ...] = (
    (
        "SELECT ticket_id, priority, customer_tier, status, created_at, updated_at,"
        f" escalation_level, policy_version, policy FROM tickets WHERE {_TICKET}",
        TicketRow,
    ),
    (
        "SELECT clock, cycle, target_s, calendar, mode, anchor_at, anchor_elapsed, due_at,"
        f" warn_at, fired_level FROM sla_clocks WHERE {_TICKET} ORDER BY clock, cycle",
        ClockRow,
    ),
    (
        "SELECT status, priority, customer_tier, updated_at, received_at, activity, group_name,"
        f" assignee, tags, attributes FROM ticket_events WHERE {_TICKET} ORDER BY updated_at",
        HistoryRow,
    ),
    (
        "SELECT alert_id, tenant_id, ticket_id, clock, cycle, kind, escalation_level, due_at,"
        " created_at, priority, customer_tier, policy_version, repeat, acknowledged_at,"
        f" acknowledged_by, ack_note FROM alerts WHERE {_TICKET} ORDER BY alert_id",
        AlertRow,
    ),
    (
        "SELECT n.alert_id, n.channel, n.state, n.attempts, n.last_error, n.sent_at, n.repeat"
        " FROM notifications n JOIN alerts a USING (alert_id)"
        " WHERE a.tenant_id = %(tenant)s AND a.ticket_id = %(id)s ORDER BY n.notification_id",
        NotificationRow,
    ),
)
_TICKET_ROWS = [typed_rows(row) for _, row in TICKET_READS]  # made once: each reads fields()


def get_ticket(conn: psycopg.Connection[Any], tenant: str, ticket_id: str) -> TicketDetail | None:
    """The ticket with its clocks, history, alerts and their notifications: five reads sent
    together (pipeline mode), so one round trip to the database instead of five."""
    args = {"tenant": tenant, "id": ticket_id}
    cursors = [conn.cursor(row_factory=rows) for rows in _TICKET_ROWS]
    with conn.pipeline():
        for cur, (sql, _) in zip(cursors, TICKET_READS, strict=True):
            cur.execute(sql, args)
    ticket_cur, clocks_cur, history_cur, alerts_cur, notes_cur = cursors
    ticket = ticket_cur.fetchone()
    if ticket is None:
        return None
    notifications: dict[int, list[NotificationRow]] = {}
    for n in notes_cur.fetchall():
        notifications.setdefault(n.alert_id, []).append(n)
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
    # Metric names: a ticket matches when it has a clock (any cycle) of one of them. Like
    # `states`, the page only: the counts stay those of the priority/tier/status part.
    metrics: Sequence[str] = ()


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
        "metrics": list(f.metrics),
    }


# A page's tickets with their clocks, in one query, one row per clock in page order: the ticket's
# columns first (DashboardTicket's fields), then the clock's (ClockRow's, prefixed).
_PAGE_SQL = """
SELECT t.ticket_id, t.priority, t.customer_tier, t.status, t.created_at, t.updated_at,
       t.escalation_level, t.policy_version, t.policy, t.urgent_at, t.sla_state,
       c.clock AS clock_clock, c.cycle AS clock_cycle, c.target_s AS clock_target_s,
       c.calendar AS clock_calendar,
       c.mode AS clock_mode, c.anchor_at AS clock_anchor_at,
       c.anchor_elapsed AS clock_anchor_elapsed, c.due_at AS clock_due_at,
       c.warn_at AS clock_warn_at, c.fired_level AS clock_fired_level
FROM (
    SELECT tenant_id, ticket_id, priority, customer_tier, status, created_at, updated_at,
           escalation_level, policy_version, policy, urgent_at, {state} AS sla_state
    FROM tickets WHERE {where}
    ORDER BY urgent_at, ticket_id LIMIT %(limit)s
) AS t
LEFT JOIN sla_clocks c ON c.tenant_id = t.tenant_id AND c.ticket_id = t.ticket_id
ORDER BY t.urgent_at, t.ticket_id, c.clock, c.cycle
"""
PAGE_TICKET_COLUMNS = column_names(DashboardTicket)
PAGE_COLUMNS = (*PAGE_TICKET_COLUMNS, *column_names(ClockRow, "clock_"))


@dataclass(frozen=True)
class PageRow:
    ticket: DashboardTicket
    clocks: list[ClockRow]  # every cycle, by metric name then cycle number


def page_query(
    tenant: str, f: DashboardFilter, now: datetime, after: tuple[datetime, str] | None, limit: int
) -> tuple[str, dict[str, object]]:
    """The page's statement and its parameters: tickets ordered by (urgent_at, ticket_id)
    strictly after the cursor `after`, joined with their clocks."""
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
    if f.metrics:
        # Either a probe of sla_clocks' primary key per ticket the urgency index walks (a page
        # costs its size divided by the share of tickets with the metrics), or, for metrics few
        # tickets have, their clock rows read through sla_clocks_by_metric and their tickets
        # sorted: the planner takes the cheaper (migration 0016; README, "SLA rules").
        where += (
            " AND EXISTS (SELECT 1 FROM sla_clocks m WHERE m.tenant_id = tickets.tenant_id"
            " AND m.ticket_id = tickets.ticket_id AND m.clock = ANY(%(metrics)s))"
        )
    params["limit"] = limit
    return _PAGE_SQL.format(state=_STATE_SQL, where=where), params


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
    sql, params = page_query(tenant, f, now, after, limit)
    # Tuple rows, split by position: a ticket's columns repeat on each of its clock rows and
    # are made into its DashboardTicket once, from the first.
    split = len(PAGE_TICKET_COLUMNS)
    page: list[PageRow] = []
    with conn.cursor() as cur:
        cur.execute(sql, params)
        check_columns(cur, PAGE_COLUMNS, "dashboard page")
        for values in cur:
            if not page or page[-1].ticket.ticket_id != values[0]:
                page.append(PageRow(DashboardTicket(*values[:split]), []))
            if values[split] is not None:  # a ticket without clocks has one row, all NULL
                page[-1].clocks.append(ClockRow(*values[split:]))
    return page


def dashboard_counts(
    conn: psycopg.Connection[Any], tenant: str, f: DashboardFilter, now: datetime
) -> dict[State, int]:
    """Tickets per SLA state under the priority/tier/status part of the filter."""
    return state_buckets.count_states(conn, _where(f), _params(tenant, f, now), now)
