"""DeleteTicket on a real server and PostgreSQL: the ticket goes with every row of its own and its
dashboard count, nothing of other tickets moves, its pending notification is never sent, replays
of WatchAlerts leave its alerts out, and only a token with the admin role of its tenant may."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import grpc
import psycopg_pool
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from internal.config.sla_config import load_config
from internal.config.tokens import hash_token
from internal.notify.notifier import for_channel
from internal.rpc.server import RunningServer, start_server
from internal.usecase.evaluate import evaluate_batch
from internal.worker import actors, delivery
from slawatch.client import SlawatchClient
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.env import make_settings
from support.erasure import alert_ids_of, bucket_drift, rows_of
from support.events import event
from support.fake_slack import FakeSlack
from support.ops import engine_env
from support.workers import CHANNEL_PATHS, Processes, poll, rows

TOKENS = {
    "acme-admin": ("acme", ["admin"]),
    "acme-all": ("acme", ["ingest", "read", "watch"]),
    "globex-admin": ("globex", ["admin"]),
}


def secret(name: str) -> str:
    return f"s3cret-{name}-token"


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret(name)}"),)


ACME, ADMIN = bearer("acme-all"), bearer("acme-admin")


@pytest.fixture
def secure_server(database_url: str, config_path: Path) -> Iterator[RunningServer]:
    tokens = json.dumps(
        [
            {"name": n, "sha256": hash_token(secret(n)), "tenant": t, "roles": r}
            for n, (t, r) in TOKENS.items()
        ]
    )
    settings = make_settings(
        database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=tokens
    )
    running = start_server(settings, bind="127.0.0.1")
    yield running
    running.stop(grace=1)


@pytest.fixture
def stub(secure_server: RunningServer) -> Iterator[pb_grpc.TicketServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{secure_server.port}") as channel:
        yield pb_grpc.TicketServiceStub(channel)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def breached_pair(
    stub: pb_grpc.TicketServiceStub, pool: psycopg_pool.ConnectionPool, config_path: Path
) -> list[int]:
    """Acme tickets GONE-1 and KEPT-1, both 20 minutes old on a 15-minute response target, with
    a later event each, evaluated: each has a breach alert and a pending notification row (no
    worker runs). Returns the notification ids, GONE-1's first."""
    created = datetime.now(UTC) - timedelta(minutes=20)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[
                event("GONE-1", created=created),
                event("KEPT-1", created=created),
                event(
                    "GONE-1",
                    pb.TICKET_STATUS_ON_HOLD,
                    created=created,
                    updated=created + timedelta(minutes=18),
                ),
            ]
        ),
        metadata=ACME,
    )
    with pool.connection() as conn:
        batch = evaluate_batch(conn, load_config(config_path), datetime.now(UTC))
    assert len(batch.notifications) == 2
    return sorted(batch.notifications)


def test_delete_ticket_leaves_nothing_of_the_ticket_in_any_table(
    stub: pb_grpc.TicketServiceStub,
    pool: psycopg_pool.ConnectionPool,
    database_url: str,
    config_path: Path,
) -> None:
    """Every table with a ticket_id column (found in the schema, so a table added later is
    checked too) and notifications (through the ticket's alert ids) hold nothing of the deleted
    ticket; the response counts what went; the other ticket's rows are untouched; the count
    buckets equal the tickets counted one by one, and the dashboard counts one ticket."""
    breached_pair(stub, pool, config_path)
    gone_alerts = alert_ids_of(database_url, "acme", "GONE-1")
    before = rows_of(database_url, "acme", "GONE-1", gone_alerts)
    kept_before = rows_of(database_url, "acme", "KEPT-1")
    assert before["tickets"] == 1 and before["ticket_events"] == 2
    assert before["sla_clocks"] >= 2 and before["alerts"] >= 1 and before["notifications"] >= 1

    response = stub.DeleteTicket(pb.DeleteTicketRequest(ticket_id="GONE-1"), metadata=ADMIN)

    assert (
        response.events_deleted,
        response.alerts_deleted,
        response.notifications_deleted,
    ) == (before["ticket_events"], before["alerts"], before["notifications"])
    after = rows_of(database_url, "acme", "GONE-1", gone_alerts)
    assert set(after) >= {"tickets", "ticket_events", "sla_clocks", "alerts", "notifications"}
    assert after == dict.fromkeys(after, 0)
    assert rows_of(database_url, "acme", "KEPT-1") == kept_before
    assert bucket_drift(database_url) == []
    counts = stub.GetDashboard(pb.GetDashboardRequest(), metadata=ACME).counts
    assert {c.state: c.count for c in counts if c.count} == {pb.SLA_STATE_BREACHED: 1}
    with pytest.raises(grpc.RpcError) as info:
        stub.GetTicket(pb.GetTicketRequest(ticket_id="GONE-1"), metadata=ACME)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_alerts_replays_no_longer_include_the_deleted_tickets_alerts(
    stub: pb_grpc.TicketServiceStub, pool: psycopg_pool.ConnectionPool, config_path: Path
) -> None:
    """A replay from the start lists both tickets' alerts before the delete, only the kept
    ticket's after it."""
    breached_pair(stub, pool, config_path)

    def replayed() -> list[str]:
        got: list[str] = []
        try:
            for message in stub.WatchAlerts(
                pb.WatchAlertsRequest(after_alert_id=0), metadata=ACME, timeout=3
            ):
                got.append(message.alert.ticket_id)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        return got

    assert sorted(set(replayed())) == ["GONE-1", "KEPT-1"]
    stub.DeleteTicket(pb.DeleteTicketRequest(ticket_id="GONE-1"), metadata=ADMIN)
    assert set(replayed()) == {"KEPT-1"}


def test_a_deleted_tickets_pending_notification_is_not_sent(
    stub: pb_grpc.TicketServiceStub,
    pool: psycopg_pool.ConnectionPool,
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """The delivery messages of both tickets' notifications are queued, and a real worker takes
    and acknowledges both (Redis holds neither any more): only the kept ticket's alert reaches
    the Slack stand-in, and the deleted one's message ends quietly. The worker's own delivery
    code, called again with that id, finds nothing to claim."""
    gone_id, kept_id = breached_pair(stub, pool, config_path)
    stub.DeleteTicket(pb.DeleteTicketRequest(ticket_id="GONE-1"), metadata=ADMIN)

    broker = RedisBroker(url=redis_url)
    try:
        for notification_id in (gone_id, kept_id):
            broker.enqueue(
                dramatiq.Message(
                    queue_name=actors.NOTIFY_QUEUE,
                    actor_name="deliver",
                    args=(notification_id,),
                    kwargs={},
                    options={},
                )
            )
    finally:
        broker.close()
    procs = Processes(engine_env(database_url, redis_url, config_path, slack), tmp_path)
    try:
        procs.worker(threads=1)
        (posted,) = slack.wait_for(1, "/hooks/lead", timeout=60)
        poll(
            lambda: (
                rows(
                    database_url,
                    "SELECT state FROM notifications WHERE notification_id = %s",
                    kept_id,
                )
                == [("sent",)]
            ),
            what="the kept ticket's notification sent",
        )
        # A message leaves this hash when the worker acknowledges it, after its actor returned.
        queued = redis.Redis.from_url(redis_url)
        try:
            poll(
                lambda: queued.hlen(f"{actors.REDIS_NAMESPACE}:{actors.NOTIFY_QUEUE}.msgs") == 0,
                what="both delivery messages processed",
            )
        finally:
            queued.close()
    finally:
        procs.stop_all()
    logs = procs.logs()
    assert "KEPT-1" in str(posted.body) and "GONE-1" not in str(posted.body)
    assert [r.path for r in slack.requests()] == ["/hooks/lead"], logs
    assert "Traceback" not in logs, logs

    env = {var: slack.url(path) for var, path in CHANNEL_PATHS.items()}
    outcome = delivery.deliver(
        pool,
        load_config(config_path),
        gone_id,
        datetime.now(UTC) + timedelta(hours=1),
        notifier_for=lambda channel: for_channel(channel, env, timeout=5),
        lease=timedelta(seconds=30),
    )
    assert outcome.result is delivery.Result.SKIPPED
    assert len(slack.requests()) == 1


def test_delete_ticket_needs_the_admin_role_of_the_tickets_tenant(
    stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """A token with every other role is PERMISSION_DENIED, no token UNAUTHENTICATED, another
    tenant's admin NOT_FOUND (the tenant is the token's); the ticket stays whole through all
    three."""
    stub.IngestTickets(pb.IngestTicketsRequest(events=[event("ROLE-1")]), metadata=ACME)
    whole = rows_of(database_url, "acme", "ROLE-1")
    for metadata, code in (
        (ACME, grpc.StatusCode.PERMISSION_DENIED),
        ((), grpc.StatusCode.UNAUTHENTICATED),
        (bearer("globex-admin"), grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.DeleteTicket(pb.DeleteTicketRequest(ticket_id="ROLE-1"), metadata=metadata)
        assert info.value.code() == code
    assert rows_of(database_url, "acme", "ROLE-1") == whole
    assert whole["tickets"] == 1


@pytest.mark.parametrize("ticket_id", ["", "x" * 129, "bad\nid"])
def test_a_bad_ticket_id_is_invalid_argument_naming_the_field(
    stub: pb_grpc.TicketServiceStub, ticket_id: str
) -> None:
    """Empty, too long or with control characters: INVALID_ARGUMENT with a BadRequest whose one
    violation is field `ticket_id`."""
    with pytest.raises(grpc.RpcError) as info:
        stub.DeleteTicket(pb.DeleteTicketRequest(ticket_id=ticket_id), metadata=ADMIN)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["ticket_id"]


def test_an_unknown_or_already_deleted_ticket_is_not_found_through_the_client(
    secure_server: RunningServer,
) -> None:
    """The typed client's delete_ticket: the first call erases the ticket, a repeat (or any
    unknown id) is NOT_FOUND; a ticket ingested again after its delete is a new ticket."""
    target = f"127.0.0.1:{secure_server.port}"
    with (
        SlawatchClient(target, token=secret("acme-all")) as client,
        SlawatchClient(target, token=secret("acme-admin")) as admin,
    ):
        client.ingest([event("AGAIN-1")])
        assert admin.delete_ticket("AGAIN-1").events_deleted == 1
        for ticket_id in ("AGAIN-1", "NEVER-1"):
            with pytest.raises(grpc.RpcError) as info:
                admin.delete_ticket(ticket_id)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
        (result,) = client.ingest([event("AGAIN-1")])
        assert result.outcome == pb.INGEST_OUTCOME_CREATED
