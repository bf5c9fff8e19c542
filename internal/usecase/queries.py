"""The read use cases: one ticket in full, and a dashboard page with its counts.

Reads only, each statement in its own implicit transaction (read_only: no COMMIT round trip
when the pooled connection goes back). The statements are internal/store/query_repo's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
