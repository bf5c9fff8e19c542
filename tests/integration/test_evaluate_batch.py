"""One evaluation batch (internal/usecase/evaluate.evaluate_batch) on a real database, at
explicit instants: which steps fire, and when the next check is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
import pytest

from internal.config.sla_config import parse_config
from internal.rpc import convert
from internal.sla.model import Status
from internal.sla.ticket_sla import Event
from internal.store import query_repo
from internal.store.evaluate_repo import ALERTS_CHANNEL
from internal.usecase.evaluate import evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from support.alerts import write_alerts
from support.configs import config_text
from support.store import store_events

EVALUATE_LOGGER = "internal.usecase.evaluate"
# Friday 16:50 in Berlin: ten minutes of emea_office's working day left (09:00-17:00).
FRIDAY = datetime(2026, 11, 6, 15, 50, tzinfo=UTC)
# The 30-minute response target of high/silver on emea_office: 10 minutes on Friday, 20 on
# Monday from 09:00 Berlin (08:00 UTC).
RESPONSE_DUE = datetime(2026, 11, 9, 8, 20, tzinfo=UTC)
# Every policy but high/silver, and no calendar but the built-in 24x7.
WITHOUT_EMEA = {
    "high": {"gold": {"response": "15m", "resolution": "4h"}},
    "low": {"gold": {"response": "1h", "resolution": "12h"}},
}


def fired(database_url: str, ticket_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT clock, kind, escalation_level FROM alerts WHERE ticket_id = %s"
            " ORDER BY alert_id",
            (ticket_id,),
        ).fetchall()


def next_check(database_url: str, ticket_id: str, clock: str) -> datetime | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT next_check_at FROM sla_clocks WHERE ticket_id = %s AND clock = %s",
            (ticket_id, clock),
        ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_a_clock_whose_calendar_left_the_config_is_not_counted_as_24x7(
    pool: psycopg_pool.ConnectionPool, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A ticket whose policy left the config, calendar and all, keeps the due time worked out on
    its calendar: its warnings and breach fire from that due time (not from the weekend counted
    on 24x7 time), steps past the target are not fired, and each batch names the calendar and
    the clocks in one WARNING line."""
    old = parse_config(config_text())
    store_events(
        pool, "default", old, [Event("EMEA-1", "high", "silver", Status.OPEN, FRIDAY, FRIDAY)]
    )
    new = parse_config(config_text(policies=WITHOUT_EMEA, calendars={}))
    assert "emea_office" not in new.calendars
    caplog.set_level(logging.WARNING, logger=EVALUATE_LOGGER)
    first_check = RESPONSE_DUE - timedelta(minutes=30 * 0.15)  # 85%, as stored at ingest
    assert next_check(database_url, "EMEA-1", "response") == first_check

    with psycopg.connect(database_url) as conn:
        evaluate_batch(conn, new, first_check)
        # On 24x7 time the weekend alone is 2.7 days: this used to fire the 150% breach.
        assert fired(database_url, "EMEA-1") == [("response", "warning", 1)]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "'emea_office'" in warnings[0] and warnings[0].startswith("1 due clock")
        assert next_check(database_url, "EMEA-1", "response") == RESPONSE_DUE - timedelta(
            minutes=1.5
        )

        evaluate_batch(conn, new, RESPONSE_DUE - timedelta(minutes=1.5))
        evaluate_batch(conn, new, RESPONSE_DUE)
        assert fired(database_url, "EMEA-1") == [
            ("response", "warning", 1),
            ("response", "warning", 2),
            ("response", "breach", 3),
        ]
        # 150% of the target lies past the due time: not known without the calendar.
        assert next_check(database_url, "EMEA-1", "response") is None
        evaluate_batch(conn, new, RESPONSE_DUE + timedelta(days=30))
        response = [a for a in fired(database_url, "EMEA-1") if a[0] == "response"]
        assert response[-1] == ("response", "breach", 3)


def test_get_ticket_counts_a_clock_whose_calendar_left_the_config_from_its_due_time(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """GetTicket's clock keeps its calendar's name, and its remaining time is what is left to
    the stored due time, not the weekend counted on 24x7 time."""
    old = parse_config(config_text())
    store_events(
        pool, "default", old, [Event("EMEA-2", "high", "silver", Status.OPEN, FRIDAY, FRIDAY)]
    )
    new = parse_config(config_text(policies=WITHOUT_EMEA, calendars={}))
    now = RESPONSE_DUE - timedelta(minutes=10)
    with pool.connection() as conn:
        detail = query_repo.get_ticket(conn, "default", "EMEA-2")
    assert detail is not None
    ticket = convert.ticket_to_pb(detail.ticket, detail.clocks, new, now)
    assert ticket.response.calendar == "emea_office"
    assert ticket.response.remaining.ToTimedelta() == timedelta(minutes=10)
    assert ticket.response.elapsed.ToTimedelta() == timedelta(minutes=20)
    assert ticket.response.state == pb.SLA_STATE_OK
    assert ticket.response.due_at.ToDatetime(UTC) == RESPONSE_DUE


def test_alerts_are_notified_on_commit_and_the_support_can_lose_the_notify(
    database_url: str,
) -> None:
    """A batch that writes alerts sends one NOTIFY with the largest id, on commit; the streaming
    tests' `write_alerts(notify=False)` really loses it (their safety-poll test relies on it)."""
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {ALERTS_CHANNEL}")
        heard = write_alerts(database_url, 3)
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
        assert got == [str(heard[-1])]
        write_alerts(database_url, 2, notify=False)
        assert list(listener.notifies(timeout=1)) == []


class PolicyByTenant:
    """Two tenants with configs of their own, as per-tenant files will give them."""

    def __init__(self, configs: dict[str, Any]) -> None:
        self._configs = configs

    def for_tenant(self, tenant: str) -> Any:
        return self._configs[tenant]


def test_each_tenant_is_evaluated_against_its_own_policy(
    pool: psycopg_pool.ConnectionPool, database_url: str
) -> None:
    """One batch holding two tenants' due clocks evaluates each against the config its tenant
    looks up: the tenant whose ladder warns at 50% gets that warning, recorded with its policy's
    version, while the same elapsed time is below the first step of the other tenant's ladder."""
    standard = parse_config(config_text())
    early = parse_config(
        config_text(
            escalation=[
                {"at_percent": 50, "level": 1, "kind": "warning", "notify": ["team"]},
                {"at_percent": 100, "level": 2, "kind": "breach", "notify": ["lead"]},
            ]
        )
    )
    assert early.version != standard.version
    opened = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    for tenant, config in (("acme", standard), ("globex", early)):
        store_events(
            pool, tenant, config, [Event("T-1", "high", "gold", Status.OPEN, opened, opened)]
        )
    # 60% of high/gold's 15-minute response target.
    at = opened + timedelta(minutes=9)
    policies = PolicyByTenant({"acme": standard, "globex": early})
    with psycopg.connect(database_url) as conn:
        # globex's response clock is due at 50% (stored at ingest under its own ladder).
        written = evaluate_batch(conn, policies, at)
        rows = conn.execute(
            "SELECT tenant_id, clock, kind, escalation_level, policy_version FROM alerts"
            " ORDER BY tenant_id, clock"
        ).fetchall()
    assert len(written.alerts) == 1
    assert rows == [("globex", "response", "warning", 1, early.version)]
