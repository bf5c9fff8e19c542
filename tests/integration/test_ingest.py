"""IngestTickets through a real gRPC server on loopback into a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from internal.config.holder import ConfigHolder
from internal.config.sla_config import load_config
from internal.rpc.auth import AuthInterceptor
from internal.rpc.decoding import add_ticket_service
from internal.rpc.page_token import PageTokens
from internal.rpc.server import RunningServer, authenticator_for
from internal.rpc.ticket_service import TicketService
from internal.store.db import make_pool
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.env import make_settings
from support.events import T0, event, minutes

OPEN, IN_PROGRESS, ON_HOLD = (
    pb.TICKET_STATUS_OPEN,
    pb.TICKET_STATUS_IN_PROGRESS,
    pb.TICKET_STATUS_ON_HOLD,
)
RESOLVED = pb.TICKET_STATUS_RESOLVED


@dataclass
class Clock:
    """The servicer's `now`, set by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Clocked:
    stub: pb_grpc.TicketServiceStub
    clock: Clock


@pytest.fixture
def clocked(database_url: str, config_path: Path) -> Iterator[Clocked]:
    """The TicketService on a real gRPC server on loopback, as start_server builds it, with its
    `now` under the test's control instead of the wall clock's."""
    settings = make_settings(database_url, config_path)
    pool = make_pool(database_url)
    clock = Clock(T0)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[AuthInterceptor(authenticator_for(settings))],
    )
    add_ticket_service(
        TicketService(
            pool,
            ConfigHolder(load_config(config_path)),
            page_tokens=PageTokens.from_env(database_url),
            now=clock,
        ),
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Clocked(pb_grpc.TicketServiceStub(channel), clock)
    finally:
        server.stop(1).wait()
        pool.close()


def ingest(stub: pb_grpc.TicketServiceStub, *events: pb.TicketEvent) -> list[int]:
    response = stub.IngestTickets(pb.IngestTicketsRequest(events=events))
    return [r.outcome for r in response.results]


def table_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("tickets", "ticket_events", "sla_clocks")
        }


def table_contents(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(database_url) as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()
            for t in ("tickets", "ticket_events", "sla_clocks")
        }


def bad_fields(err: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "INVALID_ARGUMENT must carry a google.rpc.Status"
    found = {}
    for detail in status.details:
        br = error_details_pb2.BadRequest()
        assert detail.Unpack(br)
        found.update({v.field: v.description for v in br.field_violations})
    return found


def test_outcomes_created_updated_duplicate(stub: pb_grpc.TicketServiceStub) -> None:
    """A new ticket is CREATED, a newer event UPDATED, the same (id, updated_at) DUPLICATE."""
    assert ingest(stub, event("T-1")) == [pb.INGEST_OUTCOME_CREATED]
    assert ingest(stub, event("T-1", IN_PROGRESS, updated=T0 + minutes(5))) == [
        pb.INGEST_OUTCOME_UPDATED
    ]
    assert ingest(stub, event("T-1")) == [pb.INGEST_OUTCOME_DUPLICATE]


def test_same_batch_twice_changes_nothing(
    stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """Ingest is idempotent: replaying a batch stores nothing new and reports DUPLICATE."""
    batch = [event(f"T-{i}", updated=T0 + minutes(i)) for i in range(20)]
    first = ingest(stub, *batch)
    assert first == [pb.INGEST_OUTCOME_CREATED] * 20
    before = table_contents(database_url)
    assert ingest(stub, *batch) == [pb.INGEST_OUTCOME_DUPLICATE] * 20
    assert table_contents(database_url) == before


def test_out_of_order_event_kept_in_history_current_fields_unchanged(
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """An older event is OUT_OF_ORDER: history and clocks take it, current fields do not."""
    ingest(stub, event("T-1", IN_PROGRESS, updated=T0 + minutes(30)))
    assert ingest(stub, event("T-1", OPEN, updated=T0 + minutes(10), priority="low")) == [
        pb.INGEST_OUTCOME_OUT_OF_ORDER
    ]
    got = stub.GetTicket(pb.GetTicketRequest(ticket_id="T-1"))
    assert got.ticket.status == IN_PROGRESS
    assert got.ticket.priority == "high"
    assert [h.updated_at.ToDatetime(UTC) for h in got.history] == [
        T0 + minutes(10),
        T0 + minutes(30),
    ]
    # Response stopped at the first non-OPEN status, at +30m: 30 minutes elapsed.
    assert got.ticket.response.stopped
    assert got.ticket.response.elapsed.seconds == 30 * 60


def test_events_of_one_ticket_in_a_batch_apply_in_time_order(
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """Several events of one new ticket in one batch: the earliest creates it, whatever the
    request order, and the results stay in request order."""
    outcomes = ingest(
        stub,
        event("T-1", IN_PROGRESS, updated=T0 + minutes(20)),
        event("T-1", OPEN, updated=T0),
        event("T-1", IN_PROGRESS, updated=T0 + minutes(20)),
    )
    assert outcomes == [
        pb.INGEST_OUTCOME_UPDATED,
        pb.INGEST_OUTCOME_CREATED,
        pb.INGEST_OUTCOME_DUPLICATE,
    ]
    got = stub.GetTicket(pb.GetTicketRequest(ticket_id="T-1"))
    assert got.ticket.status == IN_PROGRESS
    assert len(got.history) == 2


def test_any_arrival_order_gives_the_same_clocks(
    server: RunningServer, stub: pb_grpc.TicketServiceStub
) -> None:
    """Late and out-of-order delivery: the clocks are what the time-ordered history says."""
    timeline = [
        (OPEN, 0),
        (IN_PROGRESS, 10),
        (ON_HOLD, 40),
        (IN_PROGRESS, 100),
        (RESOLVED, 130),
    ]
    for order, name in ((timeline, "A"), (list(reversed(timeline)), "B")):
        for status, at in order:
            ingest(stub, event(name, status, updated=T0 + minutes(at)))
    a = stub.GetTicket(pb.GetTicketRequest(ticket_id="A")).ticket
    b = stub.GetTicket(pb.GetTicketRequest(ticket_id="B")).ticket
    assert a.response == b.response and a.resolution == b.resolution
    # 40 running minutes, 60 on hold (not counted), 30 running, then resolved.
    assert a.resolution.elapsed.seconds == 70 * 60
    assert a.resolution.stopped and a.resolution.state == pb.SLA_STATE_MET
    assert a.response.elapsed.seconds == 10 * 60


def test_reopen_carries_elapsed_time_over(clocked: Clocked) -> None:
    """A resolved ticket that reopens resumes its resolution clock where it stopped."""
    stub, now = clocked.stub, T0 + timedelta(hours=3)
    clocked.clock.now = now
    created = T0
    ingest(
        stub,
        event("R", OPEN, created=created),
        event("R", RESOLVED, created=created, updated=created + timedelta(hours=1)),
        event("R", OPEN, created=created, updated=now - timedelta(hours=1)),
    )
    clock = stub.GetTicket(pb.GetTicketRequest(ticket_id="R")).ticket.resolution
    assert not clock.stopped and not clock.paused
    # 1h before resolution + 1h since reopening.
    assert clock.elapsed.ToTimedelta() == timedelta(hours=2)
    assert clock.state == pb.SLA_STATE_OK
    assert clock.due_at.ToDatetime(UTC) == now + timedelta(hours=2)


def test_paused_clock_reports_paused_and_has_no_due_time(clocked: Clocked) -> None:
    """On hold: the resolution clock is paused, shows no due time, and does not move."""
    stub, created = clocked.stub, T0
    clocked.clock.now = created + timedelta(hours=2)
    ingest(
        stub,
        event("P", OPEN, created=created),
        event("P", ON_HOLD, created=created, updated=created + timedelta(minutes=30)),
    )
    first = stub.GetTicket(pb.GetTicketRequest(ticket_id="P")).ticket.resolution
    assert first.paused and not first.HasField("due_at")
    assert first.elapsed.seconds == 30 * 60
    clocked.clock.now += timedelta(hours=5)
    second = stub.GetTicket(pb.GetTicketRequest(ticket_id="P")).ticket.resolution
    assert second.elapsed == first.elapsed


def test_priority_change_recomputes_targets(stub: pb_grpc.TicketServiceStub) -> None:
    """Targets follow the ticket's current priority and tier."""
    ingest(stub, event("T-1"))
    assert (
        stub.GetTicket(pb.GetTicketRequest(ticket_id="T-1")).ticket.resolution.target.seconds
        == 4 * 3600
    )
    ingest(stub, event("T-1", updated=T0 + minutes(1), priority="low"))
    ticket = stub.GetTicket(pb.GetTicketRequest(ticket_id="T-1")).ticket
    assert ticket.resolution.target.seconds == 12 * 3600
    assert ticket.response.target.seconds == 3600
    assert ticket.resolution.due_at.ToDatetime(UTC) == T0 + timedelta(hours=12)


VALIDATION_CASES = [
    ("ticket_id", event(""), "required"),
    ("ticket_id", event("x" * 129), "longer than 128"),
    ("ticket_id", event("bad\x00id"), "control characters"),
    ("priority", event("T", priority="nope"), "unknown priority"),
    ("customer_tier", event("T", tier="bronze"), "no policy for tier"),
    ("status", event("T", pb.TICKET_STATUS_UNSPECIFIED), "required"),
    ("updated_at", event("T", updated=T0 - minutes(1)), "earlier than created_at"),
    (
        "updated_at",
        # A day ahead, not minutes: the case is built at import, and a long session may run it
        # many minutes later.
        event("T", created=T0, updated=datetime.now(UTC) + timedelta(days=1)),
        "more than 5 minutes in the future",
    ),
    ("created_at", event("T", created=datetime(1990, 1, 1, tzinfo=UTC)), "out of range"),
]


@pytest.mark.parametrize(
    ("field", "bad", "message"), VALIDATION_CASES, ids=[c[0] + "-" + c[2] for c in VALIDATION_CASES]
)
def test_each_validation_rule_names_its_field(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    field: str,
    bad: pb.TicketEvent,
    message: str,
) -> None:
    """A bad event refuses the batch with INVALID_ARGUMENT and events[i].field; nothing stored."""
    with pytest.raises(grpc.RpcError) as info:
        ingest(stub, event("good-1"), bad)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = bad_fields(info.value)
    assert f"events[1].{field}" in fields
    assert message in fields[f"events[1].{field}"]
    assert table_counts(database_url) == {"tickets": 0, "ticket_events": 0, "sla_clocks": 0}


def test_missing_timestamps_are_required(stub: pb_grpc.TicketServiceStub) -> None:
    bare = pb.TicketEvent(ticket_id="T", priority="high", customer_tier="gold", status=OPEN)
    with pytest.raises(grpc.RpcError) as info:
        ingest(stub, bare)
    assert bad_fields(info.value) == {
        "events[0].created_at": "required",
        "events[0].updated_at": "required",
    }


def test_every_bad_field_of_a_batch_is_reported(
    stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """All violations come back at once, by path, and the good events are not stored either."""
    with pytest.raises(grpc.RpcError) as info:
        ingest(
            stub,
            event("ok"),
            event("", priority="nope"),
            event("ok2"),
            event("T", pb.TICKET_STATUS_UNSPECIFIED, tier="bronze"),
        )
    assert set(bad_fields(info.value)) == {
        "events[1].ticket_id",
        "events[1].priority",
        "events[3].status",
        "events[3].customer_tier",
    }
    assert table_counts(database_url)["tickets"] == 0


def test_empty_and_oversized_batches_are_refused(stub: pb_grpc.TicketServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.IngestTickets(pb.IngestTicketsRequest())
    assert bad_fields(info.value) == {"events": "at least one event is required"}
    with pytest.raises(grpc.RpcError) as info:
        ingest(stub, *[event(f"T-{i}") for i in range(1001)])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000" in bad_fields(info.value)["events"]


def test_get_unknown_ticket_is_not_found(stub: pb_grpc.TicketServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetTicket(pb.GetTicketRequest(ticket_id="missing"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "missing" in (info.value.details() or "")


def test_get_ticket_without_id_is_invalid(stub: pb_grpc.TicketServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetTicket(pb.GetTicketRequest())
    assert bad_fields(info.value) == {"ticket_id": "required"}


def test_breached_ticket_reads_breached_at_query_time(clocked: Clocked) -> None:
    """States are exact when asked, not stale by an evaluation interval."""
    stub, created = clocked.stub, T0
    clocked.clock.now = created + timedelta(minutes=14, seconds=58)
    ingest(stub, event("B", created=created))
    ticket = stub.GetTicket(pb.GetTicketRequest(ticket_id="B")).ticket
    assert ticket.response.state == pb.SLA_STATE_WARNING  # 99.8% of 15 minutes
    clocked.clock.now = created + timedelta(minutes=15)  # the instant of the breach
    ticket = stub.GetTicket(pb.GetTicketRequest(ticket_id="B")).ticket
    assert ticket.response.state == pb.SLA_STATE_BREACHED
    assert ticket.sla_state == pb.SLA_STATE_BREACHED
    assert ticket.response.remaining.ToTimedelta() == timedelta(0)
    clocked.clock.now += timedelta(seconds=2)
    ticket = stub.GetTicket(pb.GetTicketRequest(ticket_id="B")).ticket
    assert ticket.response.remaining.seconds < 0 or ticket.response.remaining.nanos < 0
