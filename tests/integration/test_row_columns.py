"""The read rows' fields are exactly the columns their queries select, in order, on the real schema.

The rows are built from their values by position (internal/store/rows.py), so a column added to a
query and not to its row, or a field added to a row and not to its query, must fail here, at test
time, rather than in production.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
import pytest

from internal.sla.model import State
from internal.store import alert_repo, query_repo
from internal.store.alert_repo import AlertFilter
from internal.store.query_repo import DashboardFilter
from internal.store.rows import AlertRow, ClockRow, DashboardTicket, typed_rows

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def selected(conn: psycopg.Connection[Any], query: Any, params: dict[str, object]) -> list[str]:
    """The names of the columns `query` returns (on an empty database too)."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        return [d.name for d in cur.description or ()]


def names(cls: type[Any], prefix: str = "") -> list[str]:
    return [prefix + f.name for f in fields(cls)]


def test_each_get_ticket_read_selects_its_rows_fields(pool: psycopg_pool.ConnectionPool) -> None:
    """The five GetTicket reads: ticket, clocks, history, alerts, notifications."""
    with pool.connection() as conn:
        for sql, row in query_repo.TICKET_READS:
            assert selected(conn, sql, {"tenant": "default", "id": "T-1"}) == names(row), sql


@pytest.mark.parametrize(
    ("f", "after"),
    [
        (DashboardFilter(), None),
        (DashboardFilter(states=[State.WARNING], priorities=["high"]), (NOW, "T-1")),
        (DashboardFilter(states=[State.BREACHED], tiers=["gold"], statuses=["open"]), None),
        (DashboardFilter(metrics=["next_reply", "resolution"]), (NOW, "T-1")),
    ],
)
def test_the_dashboard_page_selects_the_ticket_then_the_clock_fields(
    pool: psycopg_pool.ConnectionPool, f: DashboardFilter, after: tuple[datetime, str] | None
) -> None:
    """One row per clock: DashboardTicket's fields, then ClockRow's prefixed, under any filter."""
    sql, params = query_repo.page_query("default", f, NOW, after, 10)
    with pool.connection() as conn:
        assert selected(conn, sql, params) == names(DashboardTicket) + names(ClockRow, "clock_")


@pytest.mark.parametrize(
    "where",
    [
        None,
        AlertFilter("default", frozenset({"breach"}), 1, frozenset({"high"})),
        AlertFilter("default", metrics=frozenset({"next_reply"})),
    ],
)
def test_the_alert_replay_selects_the_alert_rows_fields(
    pool: psycopg_pool.ConnectionPool, where: AlertFilter | None
) -> None:
    """WatchAlerts' replay and the hub's feed read (all tenants, or one stream's filter)."""
    query, params = alert_repo.after_query(0, 10, where)
    with pool.connection() as conn:
        assert selected(conn, query, params) == names(AlertRow)


def test_a_row_that_does_not_match_its_query_is_refused_naming_both(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """The factory checks the columns before making any row: a query with a column more than
    its row (or in another order) raises with both lists instead of filling the wrong fields."""

    @dataclass(frozen=True)
    class Pair:
        a: int
        b: int

    with pool.connection() as conn:
        cur = conn.cursor(row_factory=typed_rows(Pair))
        assert cur.execute("SELECT 1 AS a, 2 AS b").fetchall() == [Pair(1, 2)]
        with pytest.raises(TypeError, match=r"Pair: the query selects \('b', 'a'\)"):
            cur.execute("SELECT 2 AS b, 1 AS a")
        with pytest.raises(TypeError, match=r"\('a', 'b', 'c'\), the row has \('a', 'b'\)"):
            cur.execute("SELECT 1 AS a, 2 AS b, 3 AS c")
