"""A new SLA config version moves the deadlines of open tickets, through real servers on a real
database: recomputed once per version whichever process claims it first, in batches, leaving
closed tickets alone. (The watcher itself is tested in tests/unit/test_config_watcher.py.)"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import psycopg_pool
import pytest

from internal.config.sla_config import parse_config
from internal.sla.model import Status
from internal.sla.ticket_sla import Event
from internal.store import recompute_repo
from internal.usecase.recompute import (
    ABANDONED_AFTER_SECONDS,
    claim_version,
    recompute_open_tickets,
)
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import config_text
from support.env import StubFactory
from support.events import T0, event
from support.servers import serve, wait_for
from support.store import store_events

HOURS = 3600.0
GOLD_2H = {
    "high": {"gold": {"response": "15m", "resolution": "2h"}},
    "low": {"gold": {"response": "1h", "resolution": "12h"}},
}
RECOMPUTE_LOGGER = "internal.usecase.recompute"


def save(path: Path, text: str) -> str:
    """Save as an editor does (temporary file renamed over the old one); the new version."""
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text)
    os.replace(staged, path)
    return parse_config(text).version


def due_at(stub: pb_grpc.TicketServiceStub, ticket_id: str) -> datetime:
    ticket = stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id)).ticket
    return ticket.resolution.due_at.ToDatetime(UTC)


def stored(database_url: str, ticket_id: str, clock: str = "resolution") -> tuple[Any, ...]:
    """(target_s, due_at, next_check_at, policy_version) as the database has them."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT c.target_s, c.due_at, c.next_check_at, t.policy_version FROM sla_clocks c"
            " JOIN tickets t USING (tenant_id, ticket_id)"
            " WHERE ticket_id = %s AND clock = %s",
            (ticket_id, clock),
        ).fetchone()
    assert row is not None
    return tuple(row)


def recomputed(database_url: str, version: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT recomputed_at IS NOT NULL FROM policy_versions WHERE version = %s", (version,)
        ).fetchone()
    return row == (True,)


def recompute_logs(caplog: pytest.LogCaptureFixture, version: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == RECOMPUTE_LOGGER and r.getMessage().startswith(f"policy {version}: recomputed")
    ]


def opened(ticket_id: str, *, priority: str = "high", tier: str = "gold") -> Event:
    return Event(ticket_id, priority, tier, Status.OPEN, T0, T0)


def resolved(ticket_id: str, after: timedelta) -> Event:
    return Event(ticket_id, "high", "gold", Status.RESOLVED, T0, T0 + after)


def test_editing_the_config_moves_due_times_of_open_tickets(
    stub_factory: StubFactory, database_url: str, tmp_path: Path
) -> None:
    """The core promise: after a save that changes a policy's target, GetTicket shows the open
    ticket's new due time within seconds, and the database holds the new due_at, next_check_at
    (what the evaluator acts on) and policy version; the version is recorded as recomputed."""
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text())
    stub = stub_factory(path)
    stub.IngestTickets(pb.IngestTicketsRequest(events=[event("MOVE-1")]))
    assert due_at(stub, "MOVE-1") == T0 + timedelta(hours=4)

    new_version = save(path, config_text(policies=GOLD_2H))

    wait_for(lambda: due_at(stub, "MOVE-1") == T0 + timedelta(hours=2), 10, "due time moved")
    target, due, next_check, version = stored(database_url, "MOVE-1")
    assert target == 2 * HOURS
    assert due == T0 + timedelta(hours=2)
    assert next_check == T0 + timedelta(hours=2 * 0.85)  # the first warning step, 85 %
    assert version == new_version
    wait_for(lambda: recomputed(database_url, new_version), 10, "recompute recorded")


def test_a_version_saved_while_the_server_was_down_is_recomputed_at_start(
    database_url: str, tmp_path: Path
) -> None:
    """No process was running to see the save: the first to start with the new file claims the
    version and recomputes the open tickets."""
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text())
    first = serve(database_url, path)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{first.port}") as ch:
            pb_grpc.TicketServiceStub(ch).IngestTickets(
                pb.IngestTicketsRequest(events=[event("DOWN-1")])
            )
    finally:
        first.stop(grace=1)

    new_version = save(path, config_text(policies=GOLD_2H))
    second = serve(database_url, path)
    try:
        wait_for(
            lambda: stored(database_url, "DOWN-1")[3] == new_version, 10, "recomputed at start"
        )
        assert stored(database_url, "DOWN-1")[1] == T0 + timedelta(hours=2)
    finally:
        second.stop(grace=1)


def test_two_servers_seeing_the_same_save_recompute_it_once(
    stub_factory: StubFactory,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every process watches the file and notices the save at about the same time; only the
    one that claims the version walks the tickets, and both then serve the new due time."""
    caplog.set_level(logging.INFO, logger=RECOMPUTE_LOGGER)
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text())
    one, two = stub_factory(path), stub_factory(path)
    one.IngestTickets(pb.IngestTicketsRequest(events=[event(f"TWO-{i}") for i in range(20)]))

    new_version = save(path, config_text(policies=GOLD_2H))

    wait_for(lambda: recomputed(database_url, new_version), 10, "recompute recorded")
    for stub in (one, two):
        assert due_at(stub, "TWO-7") == T0 + timedelta(hours=2)
    assert recompute_logs(caplog, new_version) == [
        f"policy {new_version}: recomputed 20 open tickets"
    ]


def test_concurrent_claims_of_a_version_have_exactly_one_winner(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """Processes race to claim a version they noticed at the same instant: one wins, and asking
    again later (a restart, another process starting) does not win a second time."""
    barrier = threading.Barrier(6)
    wins: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        with pool.connection() as conn:
            barrier.wait()
            won = claim_version(conn, "v-race")
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]
    with pool.connection() as conn:
        assert claim_version(conn, "v-race") is False


def test_rolling_back_to_an_earlier_version_recomputes_again(
    stub_factory: StubFactory, database_url: str, tmp_path: Path
) -> None:
    """A bad change rolled back (A, then B, then A again): A was recomputed once already, but
    the tickets now carry B's deadlines, so the return to A is recomputed too."""
    path = tmp_path / "sla_config.yaml"
    original = config_text()
    path.write_text(original)
    stub = stub_factory(path)
    stub.IngestTickets(pb.IngestTicketsRequest(events=[event("BACK-1")]))
    first_version = parse_config(original).version

    changed = save(path, config_text(policies=GOLD_2H))
    wait_for(lambda: recomputed(database_url, changed), 10, "change recomputed")
    assert due_at(stub, "BACK-1") == T0 + timedelta(hours=2)

    assert save(path, original) == first_version
    wait_for(lambda: due_at(stub, "BACK-1") == T0 + timedelta(hours=4), 10, "rollback applied")
    assert stored(database_url, "BACK-1")[3] == first_version


def test_tickets_whose_policy_left_the_config_keep_their_clocks(
    pool: psycopg_pool.ConnectionPool, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A new config that drops a priority/tier still stored on open tickets cannot decide their
    deadlines: those tickets keep the clocks they have, one warning gives their number, and the
    other tickets are recomputed."""
    old = parse_config(config_text())
    store_events(
        pool,
        "default",
        old,
        [opened("GONE-1", tier="silver"), opened("GONE-2", tier="silver"), opened("STAY-1")],
    )
    new = parse_config(config_text(policies=GOLD_2H))  # high/silver is gone
    caplog.set_level(logging.WARNING, logger=RECOMPUTE_LOGGER)

    assert recompute_open_tickets(pool, new) == 1

    assert stored(database_url, "STAY-1")[3] == new.version
    assert stored(database_url, "GONE-1")[0] == 8 * HOURS
    assert stored(database_url, "GONE-1")[3] == old.version
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"2 open tickets have a priority/tier that policy {new.version}")


def test_closed_tickets_keep_their_verdict_unless_an_alert_is_still_pending(
    pool: psycopg_pool.ConnectionPool, database_url: str
) -> None:
    """A ticket closed in time keeps the policy it closed under. A ticket that closed after a
    threshold the evaluator has not alerted on yet (workers down) is recomputed: that alert
    will record the new version, so it must be decided on the new version's targets."""
    old = parse_config(config_text())
    store_events(
        pool,
        "default",
        old,
        [
            opened("INTIME-1"),
            resolved("INTIME-1", timedelta(minutes=1)),
            opened("LATE-1"),
            resolved("LATE-1", timedelta(hours=5)),  # past the 4 h target, no alert yet
        ],
    )
    assert stored(database_url, "LATE-1")[2] is not None  # a check is pending
    new = parse_config(config_text(policies=GOLD_2H))

    assert recompute_open_tickets(pool, new) == 1

    target, due, next_check, version = stored(database_url, "LATE-1")
    assert (target, version) == (2 * HOURS, new.version)
    assert due == T0 + timedelta(hours=2)
    assert next_check == T0 + timedelta(hours=2 * 0.85)
    assert stored(database_url, "INTIME-1")[0] == 4 * HOURS
    assert stored(database_url, "INTIME-1")[3] == old.version


def test_the_walk_goes_in_batches_across_tenants_or_for_one(
    pool: psycopg_pool.ConnectionPool, database_url: str
) -> None:
    """Batches smaller than the number of tickets, and tickets of several tenants, are all
    walked; a run for one tenant touches only that tenant and does not mark the version done."""
    old = parse_config(config_text())
    store_events(pool, "acme", old, [opened(f"A-{i}") for i in range(5)])
    store_events(pool, "globex", old, [opened(f"G-{i}") for i in range(3)])
    new = parse_config(config_text(policies=GOLD_2H))
    with pool.connection() as conn:
        assert claim_version(conn, new.version)

    assert recompute_open_tickets(pool, new, tenant="globex", batch_size=2) == 3
    assert not recomputed(database_url, new.version)
    assert recompute_open_tickets(pool, new, batch_size=2) == 5  # the rest: acme's
    assert recomputed(database_url, new.version)
    with psycopg.connect(database_url) as conn:
        versions = conn.execute("SELECT DISTINCT policy_version FROM tickets").fetchall()
    assert versions == [(new.version,)]


def test_a_recompute_stopped_half_way_hands_its_claim_back(
    pool: psycopg_pool.ConnectionPool, database_url: str
) -> None:
    """A process shutting down mid-recompute gives the version back, so the next process to
    see it (a restart) takes it on at once rather than after the abandonment delay."""
    old = parse_config(config_text())
    store_events(pool, "default", old, [opened("HALF-1")])
    new = parse_config(config_text(policies=GOLD_2H))
    with pool.connection() as conn:
        assert claim_version(conn, new.version)

    assert recompute_open_tickets(pool, new, stop=lambda: True) == 0

    assert not recomputed(database_url, new.version)
    with pool.connection() as conn:
        assert claim_version(conn, new.version)


def test_a_claim_abandoned_by_a_dead_process_is_taken_over(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """A process that died after claiming never finishes; once its claim is old enough another
    process takes the version on, while a fresh unfinished claim is left to its owner."""
    with pool.connection() as conn:
        assert claim_version(conn, "v-dead")
        assert not claim_version(conn, "v-dead")
        conn.execute(
            "UPDATE policy_versions SET claimed_at = now() - %s * interval '1 second'"
            " WHERE version = 'v-dead'",
            (ABANDONED_AFTER_SECONDS + 60,),
        )
        conn.commit()
        assert claim_version(conn, "v-dead")


def test_a_newer_version_stops_the_walk_of_an_older_one(
    pool: psycopg_pool.ConnectionPool, database_url: str
) -> None:
    """Once another version is claimed, a walk still going for the older one stops rather than
    overwrite deadlines the newer walk may already have written."""
    old = parse_config(config_text())
    store_events(pool, "default", old, [opened("RACE-1")])
    older = parse_config(config_text(policies=GOLD_2H))
    with pool.connection() as conn:
        assert claim_version(conn, older.version)
        conn.execute(
            "UPDATE policy_versions SET claimed_at = now() - interval '1 minute'"
            " WHERE version = %s",
            (older.version,),
        )
        conn.commit()
        assert claim_version(conn, "v-newer")

    assert recompute_open_tickets(pool, older) == 0
    assert stored(database_url, "RACE-1")[3] == old.version


def test_a_version_is_claimed_once_per_config_scope(pool: psycopg_pool.ConnectionPool) -> None:
    """policy_versions is keyed by (tenant, version): the same file content claimed for two
    tenants' configs is two claims, each won once, and a newer version of one tenant's config
    supersedes that tenant's walk only."""
    with pool.connection() as conn:
        assert claim_version(conn, "v-same", scope="acme")
        assert claim_version(conn, "v-same", scope="globex")
        assert not claim_version(conn, "v-same", scope="acme")
        assert claim_version(conn, "v-same")  # the file-wide config's scope
    with pool.connection() as conn:
        acme_since = recompute_repo.claimed_at(conn, "acme", "v-same")
        globex_since = recompute_repo.claimed_at(conn, "globex", "v-same")
    with pool.connection() as conn:
        assert claim_version(conn, "v-newer", scope="acme")
    with pool.connection() as conn:
        assert recompute_repo.superseded(conn, "acme", "v-same", acme_since)
        assert not recompute_repo.superseded(conn, "globex", "v-same", globex_since)
