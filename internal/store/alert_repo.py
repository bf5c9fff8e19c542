"""Reading alerts for WatchAlerts: the replay of stored alerts after an id, and the LISTEN
connection that learns when new ones are committed.

Alert ids commit in increasing order (every writer holds ALERT_WRITE_LOCK until commit), so
"every alert with id > N, in id order" is a complete, gapless continuation of a reader that has
seen everything up to N.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from internal.store.evaluate_repo import ALERTS_CHANNEL
from internal.store.rows import AlertRow, column_names, typed_rows

LISTENER_APPLICATION_NAME = "slawatch-alert-listener"

# AlertRow's fields, in order (alert_change_repo's statements return the same rows).
ALERT_COLUMNS = ", ".join(column_names(AlertRow))

_ALERT_ROWS = typed_rows(AlertRow)


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts a watcher wants; empty collections match everything.

    `matches` (for live alerts) and `where` (for the replay) must agree.
    """

    tenant: str
    kinds: frozenset[str] = frozenset()
    min_level: int = 0
    priorities: frozenset[str] = frozenset()
    tiers: frozenset[str] = frozenset()
    metrics: frozenset[str] = frozenset()  # metric names (alerts.clock)

    def matches(self, row: AlertRow) -> bool:
        return (
            row.tenant_id == self.tenant
            and (not self.kinds or row.kind in self.kinds)
            and row.escalation_level >= self.min_level
            and (not self.priorities or row.priority in self.priorities)
            and (not self.tiers or row.customer_tier in self.tiers)
            and (not self.metrics or row.clock in self.metrics)
        )

    def where(self) -> tuple[sql.Composable, dict[str, object]]:
        clauses = [sql.SQL("tenant_id = %(tenant)s")]
        params: dict[str, object] = {"tenant": self.tenant}
        if self.kinds:
            clauses.append(sql.SQL("kind = ANY(%(kinds)s)"))
            params["kinds"] = sorted(self.kinds)
        if self.min_level > 0:
            clauses.append(sql.SQL("escalation_level >= %(min_level)s"))
            params["min_level"] = self.min_level
        if self.priorities:
            clauses.append(sql.SQL("priority = ANY(%(priorities)s)"))
            params["priorities"] = sorted(self.priorities)
        if self.tiers:
            clauses.append(sql.SQL("customer_tier = ANY(%(tiers)s)"))
            params["tiers"] = sorted(self.tiers)
        if self.metrics:
            clauses.append(sql.SQL("clock = ANY(%(metrics)s)"))
            params["metrics"] = sorted(self.metrics)
        return sql.SQL(" AND ").join(clauses), params


def last_alert_id(conn: psycopg.Connection[Any], tenant: str | None = None) -> int:
    """The largest alert id committed so far, of `tenant` or of all tenants (0: none).

    Per tenant it walks the primary key backwards to the first row of that tenant, so the
    answer is an id the tenant's own replay will deliver (a resume point a bridge can wait for).
    """
    if tenant is None:
        row = conn.execute("SELECT coalesce(max(alert_id), 0) FROM alerts").fetchone()
    else:
        row = conn.execute(
            "SELECT alert_id FROM alerts WHERE tenant_id = %s ORDER BY alert_id DESC LIMIT 1",
            (tenant,),
        ).fetchone()
    return int(row[0]) if row else 0


def after_query(
    after_id: int, limit: int, where: AlertFilter | None = None
) -> tuple[sql.Composed, dict[str, object]]:
    """The statement of `alerts_after` and its parameters."""
    condition: sql.Composable = sql.SQL("TRUE")
    params: dict[str, object] = {}
    if where is not None:
        condition, params = where.where()
    query = sql.SQL(
        "SELECT {columns} FROM alerts WHERE alert_id > %(after)s AND {condition}"
        " ORDER BY alert_id LIMIT %(limit)s"
    ).format(columns=sql.SQL(ALERT_COLUMNS), condition=condition)
    return query, {**params, "after": after_id, "limit": limit}


def alerts_after(
    conn: psycopg.Connection[Any], after_id: int, limit: int, where: AlertFilter | None = None
) -> list[AlertRow]:
    """Up to `limit` alerts with id > after_id in id order, all tenants unless `where` is given.

    Walks the primary key in order, so a page costs what it returns (plus what the filter skips).
    """
    query, params = after_query(after_id, limit, where)
    with conn.cursor(row_factory=_ALERT_ROWS) as cur:
        return cur.execute(query, params).fetchall()


@contextmanager
def listening(database_url: str, connect_timeout: int = 5) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection that LISTENs on the alerts channel; notifications reach it only
    while it is open, so its owner reads the table after (re)connecting to catch up."""
    with psycopg.connect(
        database_url,
        autocommit=True,
        connect_timeout=connect_timeout,
        application_name=LISTENER_APPLICATION_NAME,
        # The kernel notices a vanished server within a minute even when no query is running.
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    ) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(ALERTS_CHANNEL)))
        yield conn


def wait_for_notification(conn: psycopg.Connection[Any], timeout: float) -> bool:
    """True when at least one notification arrived within `timeout` seconds.

    Notifications that arrive while a query runs are kept by psycopg and returned here at once.
    """
    return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))
