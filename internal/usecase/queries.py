"""The read use cases: one ticket in full, and a dashboard page with its counts.

Reads only, each statement in its own implicit transaction (read_only: no COMMIT round trip
when the pooled connection goes back). The statements are internal/store/query_repo's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg_pool

from internal.sla.model import State
from internal.store import query_repo
from internal.store.db import read_only
from internal.store.query_repo import DashboardFilter, PageRow, TicketDetail


def get_ticket(
    pool: psycopg_pool.ConnectionPool, tenant: str, ticket_id: str
) -> TicketDetail | None:
    """The ticket with its clocks, history, alerts and their notifications; None if unknown."""
    with pool.connection() as conn, read_only(conn):
        return query_repo.get_ticket(conn, tenant, ticket_id)


@dataclass
class TicketFields:
    """A ticket's current group, assignee, tags and attributes ("" or empty: never given)."""

    group: str = ""
    assignee: str = ""
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)


def ticket_fields(history: Iterable[Mapping[str, Any]]) -> TicketFields:
    """Each field from the latest event by event time that carries it (stored, not NULL: a
    non-empty value), whatever the order the events arrived in. Tags and attributes are taken
    whole from that event, not merged with earlier ones. `history` in event-time order (the
    store's order for GetTicket)."""
    out = TicketFields()
    for row in history:
        if row.get("group_name"):
            out.group = str(row["group_name"])
        if row.get("assignee"):
            out.assignee = str(row["assignee"])
        if row.get("tags"):
            out.tags = list(row["tags"])
        if row.get("attributes"):
            out.attributes = dict(row["attributes"])
    return out


@dataclass(frozen=True)
class Dashboard:
    rows: list[PageRow]  # up to the limit asked for, most urgent first
    counts: dict[State, int]  # tickets per state under the filter's priority/tier/status part


def dashboard(
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
    f: DashboardFilter,
    now: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Dashboard:
    """Tickets after the cursor `after` in (urgent_at, ticket_id) order, with the counts."""
    with pool.connection() as conn, read_only(conn):
        rows = query_repo.dashboard_page(conn, tenant, f, now, after, limit)
        counts = query_repo.dashboard_counts(conn, tenant, f, now)
    return Dashboard(rows, counts)
