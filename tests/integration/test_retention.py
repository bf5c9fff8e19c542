"""Retention on real PostgreSQL (and, last, through the real scheduler, Redis and a Dramatiq
worker): only tickets done longer ago than the retention are erased, in bounded batches, each
ticket whole or not at all even when a batch dies half-way, and ingest goes on while a batch
holds its transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import psycopg_pool
import pytest
from prometheus_client import REGISTRY

from internal.config.sla_config import load_config
from internal.sla.model import Status
from internal.sla.ticket_sla import Event
from internal.store import erase_repo
from internal.usecase.erase import retention_batch
from internal.worker.retention import run_retention
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.erasure import bucket_drift, rows_of
from support.events import event
from support.fake_slack import FakeSlack
from support.ops import engine_env
from support.store import store_events
from support.workers import Processes, poll, rows

NOW = datetime.now(UTC).replace(microsecond=0)
DAYS = 30
CUTOFF = NOW - timedelta(days=DAYS)


def closed(
    ticket_id: str, days_ago: float, status: Status = Status.CLOSED, *, reopen_days_ago: float = 0
) -> list[Event]:
    """A high/gold ticket (15 min to respond, 4 h to resolve) answered after 5 minutes and
    closed an hour after it opened, `days_ago` days ago, within both targets (MET); reopened
    `reopen_days_ago` days ago when given."""
    done = NOW - timedelta(days=days_ago)
    created = done - timedelta(hours=1)
    events = [
        Event(ticket_id, "high", "gold", Status.OPEN, created, created),
        Event(
            ticket_id, "high", "gold", Status.IN_PROGRESS, created, created + timedelta(minutes=5)
        ),
        Event(ticket_id, "high", "gold", status, created, done),
    ]
    if reopen_days_ago:
        reopened = NOW - timedelta(days=reopen_days_ago)
        events.append(Event(ticket_id, "high", "gold", Status.OPEN, created, reopened))
    return events


def still_open(ticket_id: str, days_ago: float) -> list[Event]:
    created = NOW - timedelta(days=days_ago)
    return [Event(ticket_id, "high", "gold", Status.IN_PROGRESS, created, created)]


@pytest.fixture
def store(pool: psycopg_pool.ConnectionPool, config_path: Path) -> Iterator[None]:
    """Default tenant: OLD-0..4 closed 40 days ago, OLD-R resolved 35 days ago, RECENT closed 5
    days ago, OPEN-OLD in progress since 40 days, REOPENED closed 40 days ago and reopened 35
    days ago. Tenant globex: G-OLD closed 45 days ago."""
    config = load_config(config_path)
    events: list[Event] = []
    for i in range(5):
        events += closed(f"OLD-{i}", 40 + i / 10)
    events += closed("OLD-R", 35, Status.RESOLVED)
    events += closed("RECENT", 5)
    events += still_open("OPEN-OLD", 40)
    events += closed("REOPENED", 40, reopen_days_ago=35)
    store_events(pool, "default", config, events)
    store_events(pool, "globex", config, closed("G-OLD", 45))
    yield


OLD = [("default", f"OLD-{i}") for i in range(5)] + [("default", "OLD-R"), ("globex", "G-OLD")]
KEPT = [("default", t) for t in ("RECENT", "OPEN-OLD", "REOPENED")]


def snapshot(database_url: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    return {key: rows_of(database_url, *key) for key in keys}


def erased_counter() -> float:
    return REGISTRY.get_sample_value("slawatch_tickets_erased_total", {"reason": "retention"}) or 0


def test_retention_erases_only_tickets_done_before_the_cutoff_in_bounded_batches(
    store: None, pool: psycopg_pool.ConnectionPool, database_url: str
) -> None:
    """Batches of two: 2, 2, 2, 1 tickets, oldest first, across tenants; then nothing. Resolved
    and closed tickets done before the cutoff go with every row; a ticket closed recently, one
    open since long ago and one reopened after its close stay whole. The buckets equal the
    tickets counted one by one, and run_retention counts what it erased in the metric."""
    kept_before = snapshot(database_url, KEPT)
    assert all(v["tickets"] == 1 for v in snapshot(database_url, OLD).values())

    sizes = []
    with pool.connection() as conn:
        while True:
            batch = retention_batch(conn, CUTOFF, 2)
            sizes.append(batch.erased)
            if batch.candidates < 2:
                break
    assert sizes == [2, 2, 2, 1]
    for key, left in snapshot(database_url, OLD).items():
        assert left == dict.fromkeys(left, 0), key
    assert snapshot(database_url, KEPT) == kept_before
    assert bucket_drift(database_url) == []

    before = erased_counter()
    assert run_retention(pool, NOW, DAYS, batch_size=2) == 0  # nothing is left to erase
    assert run_retention(pool, NOW, 0) == 0  # 0 keeps everything
    assert run_retention(pool, NOW, 4, batch_size=2) == 1  # RECENT, with a shorter retention
    assert erased_counter() == before + 1
    assert rows_of(database_url, "default", "RECENT")["tickets"] == 0


def test_the_candidate_is_checked_again_under_its_lock(
    store: None, pool: psycopg_pool.ConnectionPool, database_url: str, config_path: Path
) -> None:
    """A ticket reopened after a batch read its candidates, and before it locked them, is not
    erased: the batch re-reads the condition with the ticket locked."""
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        candidates = erase_repo.retention_candidates(cur, CUTOFF, 100)
        assert ("default", "OLD-0") in candidates
        reopen = Event(
            "OLD-0", "high", "gold", Status.OPEN, NOW - timedelta(days=41), NOW - timedelta(days=1)
        )
        store_events(pool, "default", load_config(config_path), [reopen])
        locked = erase_repo.lock_done(cur, candidates, CUTOFF)
        assert ("default", "OLD-0") not in [t.key for t in locked]
        assert len(locked) == len(OLD) - 1
        conn.rollback()
    with pool.connection() as conn:
        assert retention_batch(conn, CUTOFF, 100).erased == len(OLD) - 1
    assert rows_of(database_url, "default", "OLD-0")["ticket_events"] == 4


class Pause:
    """A before_commit hook: tells the test the batch is inside its transaction, then waits for
    the test to let it commit (or raises, when the test says so)."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def __call__(self) -> None:
        self.inside.set()
        assert self.release.wait(120), "the test never released the batch"
        if self.fail:
            raise RuntimeError("batch aborted by the test")


def run_in_thread(pool: psycopg_pool.ConnectionPool, pause: Pause) -> tuple[threading.Thread, list]:
    outcome: list[object] = []

    def run() -> None:
        try:
            with pool.connection() as conn:
                outcome.append(retention_batch(conn, CUTOFF, 100, before_commit=pause))
        except Exception as err:  # the test looks at it
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert pause.inside.wait(60), "the batch never reached its commit"
    return thread, outcome


@pytest.mark.parametrize("how", ["aborted", "connection killed"])
def test_a_batch_that_dies_before_commit_leaves_every_ticket_whole(
    store: None, pool: psycopg_pool.ConnectionPool, database_url: str, how: str
) -> None:
    """A batch that has deleted every row of its tickets but dies before its commit (an
    exception in the transaction, or its server process terminated as when the worker is
    killed) leaves each ticket with all its rows and the buckets exact; the next batch erases
    them whole."""
    whole = snapshot(database_url, OLD + KEPT)
    pause = Pause()
    thread, outcome = run_in_thread(pool, pause)
    with psycopg.connect(database_url, autocommit=True) as admin:
        # The batch's deletes are done but not committed: from outside, nothing is gone yet.
        assert snapshot(database_url, OLD + KEPT) == whole
        if how == "connection killed":
            (killed,) = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                " GROUP BY pid"
            ).fetchall()
            assert killed == (True,)
        pause.fail = how == "aborted"
        pause.release.set()
        thread.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], Exception), outcome
    assert snapshot(database_url, OLD + KEPT) == whole
    assert bucket_drift(database_url) == []

    with pool.connection() as conn:
        assert retention_batch(conn, CUTOFF, 100).erased == len(OLD)
    for key, left in snapshot(database_url, OLD).items():
        assert left == dict.fromkeys(left, 0), key
    assert bucket_drift(database_url) == []


def test_ingest_goes_on_while_a_retention_batch_holds_its_transaction(
    store: None,
    pool: psycopg_pool.ConnectionPool,
    database_url: str,
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """With a batch paused inside its transaction (its old tickets deleted, locks held), ingest
    calls for a new ticket and for a stored open ticket complete, and the batch has still not
    committed when they return (its tickets are still there for everyone else). Then the batch
    commits."""
    pause = Pause()
    thread, outcome = run_in_thread(pool, pause)
    try:
        results = stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[
                    event("NEW-DURING", created=NOW - timedelta(minutes=1)),
                    event(
                        "OPEN-OLD",
                        pb.TICKET_STATUS_ON_HOLD,
                        created=NOW - timedelta(days=40),
                        updated=NOW - timedelta(minutes=1),
                    ),
                ]
            ),
            timeout=60,
        ).results
        assert [r.outcome for r in results] == [
            pb.INGEST_OUTCOME_CREATED,
            pb.INGEST_OUTCOME_UPDATED,
        ]
        assert thread.is_alive() and not outcome
        assert rows(database_url, "SELECT count(*) FROM tickets WHERE ticket_id LIKE 'OLD-%%'") == [
            (6,)
        ]
    finally:
        pause.release.set()
        thread.join(60)
    assert [getattr(o, "erased", o) for o in outcome] == [len(OLD)]
    assert rows(database_url, "SELECT count(*) FROM tickets WHERE ticket_id LIKE 'OLD-%%'") == [
        (0,)
    ]
    assert rows_of(database_url, "default", "NEW-DURING")["tickets"] == 1
    assert bucket_drift(database_url) == []


def test_an_ingest_of_a_ticket_in_the_batch_waits_for_it_and_creates_the_ticket_anew(
    store: None,
    pool: psycopg_pool.ConnectionPool,
    database_url: str,
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """An event of a ticket the paused batch is erasing waits on the ticket's lock (seen in
    pg_locks, not timed), then, once the batch commits, creates the ticket from that event alone:
    never a ticket half erased and half updated."""
    pause = Pause()
    thread, outcome = run_in_thread(pool, pause)
    answer: list[object] = []

    def ingest() -> None:
        try:
            answer.append(
                stub.IngestTickets(
                    pb.IngestTicketsRequest(
                        events=[
                            event(
                                "OLD-0",
                                pb.TICKET_STATUS_OPEN,
                                created=NOW - timedelta(days=41),
                                updated=NOW - timedelta(minutes=1),
                            )
                        ]
                    ),
                    timeout=60,
                )
            )
        except grpc.RpcError as err:
            answer.append(err)

    ingester = threading.Thread(target=ingest, daemon=True)
    try:
        ingester.start()
        poll(
            lambda: (
                rows(
                    database_url,
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                )
                == [(1,)]
            ),
            what="the ingest waiting on the ticket's advisory lock",
        )
        assert not answer
    finally:
        pause.release.set()
        thread.join(60)
        ingester.join(60)
    assert [getattr(o, "erased", o) for o in outcome] == [len(OLD)]
    (response,) = answer
    assert isinstance(response, pb.IngestTicketsResponse), response
    assert [r.outcome for r in response.results] == [pb.INGEST_OUTCOME_CREATED]
    assert rows_of(database_url, "default", "OLD-0")["ticket_events"] == 1
    assert bucket_drift(database_url) == []


def test_the_scheduler_has_a_worker_erase_old_done_tickets(
    store: None,
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    redis_url: str,
    config_path: Path,
    tmp_path: Path,
) -> None:
    """Through the real scheduler, Redis and a Dramatiq worker with SLAWATCH_RETENTION_DAYS=30
    (ticks of 600 s make the first tick a retention tick): the old done tickets of both tenants
    go, the others stay, and the dashboard counts only the tickets left."""
    before = stub.GetDashboard(pb.GetDashboardRequest()).counts
    with FakeSlack() as slack:
        procs = Processes(
            engine_env(
                database_url,
                redis_url,
                config_path,
                slack,
                SLAWATCH_EVAL_INTERVAL_SECONDS="600",
                SLAWATCH_RETENTION_DAYS=str(DAYS),
            ),
            tmp_path,
        )
        try:
            procs.worker()
            procs.scheduler()
            poll(
                lambda: rows(database_url, "SELECT count(*) FROM tickets") == [(len(KEPT),)],
                what="old done tickets erased",
            )
        finally:
            procs.stop_all()
            print(procs.logs())
    assert sorted(rows(database_url, "SELECT tenant_id, ticket_id FROM tickets")) == sorted(KEPT)
    for key, left in snapshot(database_url, OLD).items():
        assert left == dict.fromkeys(left, 0), key
    after = {c.state: c.count for c in stub.GetDashboard(pb.GetDashboardRequest()).counts}
    # Every default-tenant ticket erased was closed within its targets: MET.
    expected = {c.state: c.count for c in before}
    expected[pb.SLA_STATE_MET] -= len([k for k in OLD if k[0] == "default"])
    assert after == expected
