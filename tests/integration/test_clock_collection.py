"""A ticket's clocks are a collection: a third clock definition is stored, evaluated and shown
under its own name, and never taken for one of the two clocks the contract has fields for."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import psycopg
import psycopg_pool

from internal.config.sla_config import parse_config
from internal.rpc import convert
from internal.sla.calendar import ALWAYS_OPEN
from internal.sla.clock_definition import ClockDefinition
from internal.sla.model import Status
from internal.sla.policy import Targets
from internal.sla.ticket_sla import Event
from internal.store import query_repo
from internal.usecase import ingest
from internal.usecase.evaluate import evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from support.configs import config_text

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(hours=2)
# Stops when someone picks the ticket up; a 1-hour target, so it is the one breached at NOW.
TRIAGE = ClockDefinition("triage", frozenset({Status.IN_PROGRESS}), resumes=False, pauses=False)


def _store_with_triage(pool: psycopg_pool.ConnectionPool) -> None:
    config = parse_config(config_text())
    rules = dataclasses.replace(
        config.rules, metrics=(*config.metrics, TRIAGE.as_metric(config.pause_statuses))
    )
    seconds = {"response": 4 * 3600.0, "resolution": 8 * 3600.0, "triage": 3600.0}
    three = Targets(seconds, ALWAYS_OPEN)
    with pool.connection() as conn:
        ingest.ingest(
            conn,
            "default",
            [Event("T-3", "high", "gold", Status.OPEN, CREATED, CREATED)],
            lambda _p, _t: three,
            rules,
        )


def test_a_third_clock_is_stored_under_its_name(
    pool: psycopg_pool.ConnectionPool, database_url: str
) -> None:
    """Each definition of the rules gives its own clock row, whatever its name."""
    _store_with_triage(pool)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT clock, target_s FROM sla_clocks WHERE ticket_id = 'T-3' ORDER BY clock"
        ).fetchall()
    assert rows == [("resolution", 8 * 3600.0), ("response", 4 * 3600.0), ("triage", 3600.0)]


def test_get_ticket_fills_response_and_resolution_from_their_own_clocks_only(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """The third clock is not written into `resolution` (nor `response`); it still counts in
    the ticket's sla_state, the worst of all its clocks."""
    _store_with_triage(pool)
    config = parse_config(config_text())
    with pool.connection() as conn:
        detail = query_repo.get_ticket(conn, "default", "T-3")
    assert detail is not None
    ticket = convert.ticket_to_pb(detail.ticket, detail.clocks, config, NOW)
    assert ticket.response.kind == pb.CLOCK_KIND_RESPONSE
    assert ticket.response.target.seconds == 4 * 3600
    assert ticket.resolution.kind == pb.CLOCK_KIND_RESOLUTION
    assert ticket.resolution.target.seconds == 8 * 3600
    assert ticket.resolution.state == pb.SLA_STATE_OK
    assert ticket.sla_state == pb.SLA_STATE_BREACHED  # the triage clock, 2h into its 1h


def test_a_third_clock_alerts_under_its_own_name(
    pool: psycopg_pool.ConnectionPool, database_url: str
) -> None:
    """The evaluator fires the third clock's steps as its own alerts; the contract, which has
    no kind for it yet, shows CLOCK_KIND_UNSPECIFIED rather than another clock's kind."""
    _store_with_triage(pool)
    with psycopg.connect(database_url) as conn:
        evaluate_batch(conn, parse_config(config_text()), NOW)
    with pool.connection() as conn:
        detail = query_repo.get_ticket(conn, "default", "T-3")
    assert detail is not None
    assert [(a["clock"], a["kind"], a["escalation_level"]) for a in detail.alerts] == [
        ("triage", "breach", 4)
    ]
    assert convert.alert_to_pb(detail.alerts[0]).clock == pb.CLOCK_KIND_UNSPECIFIED
