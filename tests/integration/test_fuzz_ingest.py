"""Hostile input never crashes or corrupts: IngestTickets fuzzed over every field, through the
real server into the real database. Every answer is a clean status (never INTERNAL or UNKNOWN)
and the database holds exactly what was accepted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

CLEAN_CODES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
NOW = int(datetime.now(UTC).timestamp())

hostile_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=120, max_size=140),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\u202e\u0000",
            "🙂" * 40,
            "x" * 129,
            "high",
            "gold",
            "low",
            "silver",
            "T-1",
            "Robert'); DROP TABLE tickets;--",
            "%s",
            "%(x)s",
        ]
    ),
)
seconds = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.integers(min_value=NOW - 86400 * 30, max_value=NOW + 600),
    st.sampled_from([0, -62135596800, 253402300799, 253402300800, NOW, NOW - 3600]),
)
nanos = st.one_of(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.just(0))


@st.composite
def timestamps(draw: st.DrawFn) -> Timestamp | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    return Timestamp(seconds=draw(seconds), nanos=draw(nanos))


@st.composite
def events(draw: st.DrawFn) -> pb.TicketEvent:
    event = pb.TicketEvent(
        ticket_id=draw(st.one_of(hostile_text, st.sampled_from(["T-1", "T-2", "T-3"]))),
        priority=draw(st.one_of(hostile_text, st.sampled_from(["high", "low"]))),
        customer_tier=draw(st.one_of(hostile_text, st.sampled_from(["gold", "silver"]))),
        status=draw(st.integers(min_value=-3, max_value=8)),  # type: ignore[arg-type]
    )
    created, updated = draw(timestamps()), draw(timestamps())
    if created is not None:
        event.created_at.CopyFrom(created)
    if updated is not None:
        event.updated_at.CopyFrom(updated)
    return event


def stored(database_url: str) -> set[tuple[str, datetime]]:
    with psycopg.connect(database_url) as conn:
        return set(conn.execute("SELECT ticket_id, updated_at FROM ticket_events").fetchall())


@pytest.fixture
def fuzz_target(
    stub: pb_grpc.TicketServiceStub, database_url: str
) -> Iterator[tuple[pb_grpc.TicketServiceStub, str]]:
    yield stub, database_url


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(events(), min_size=0, max_size=12))
def test_fuzzed_batches_get_clean_answers_and_store_exactly_what_was_accepted(
    fuzz_target: tuple[pb_grpc.TicketServiceStub, str], batch: list[pb.TicketEvent]
) -> None:
    stub, database_url = fuzz_target
    before = stored(database_url)
    try:
        response = stub.IngestTickets(pb.IngestTicketsRequest(events=batch), timeout=30)
    except grpc.RpcError as err:
        assert err.code() in CLEAN_CODES, (err.code(), err.details())
        assert stored(database_url) == before, "a refused batch stored something"
        return
    assert len(response.results) == len(batch)
    accepted = {
        (e.ticket_id, e.updated_at.ToDatetime(UTC).replace(microsecond=e.updated_at.nanos // 1000))
        for e in batch
    }
    after = stored(database_url)
    assert after - before <= accepted
    assert accepted <= after
    for e in batch:
        got = stub.GetTicket(pb.GetTicketRequest(ticket_id=e.ticket_id), timeout=30)
        assert got.ticket.ticket_id == e.ticket_id


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ticket_id=hostile_text, page_token=hostile_text, page_size=st.integers(-(2**31), 2**31 - 1))
def test_fuzzed_reads_get_clean_answers(
    fuzz_target: tuple[pb_grpc.TicketServiceStub, str],
    ticket_id: str,
    page_token: str,
    page_size: int,
) -> None:
    stub, _ = fuzz_target
    for call in (
        lambda: stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id), timeout=30),
        lambda: stub.GetDashboard(
            pb.GetDashboardRequest(
                page_token=page_token, page_size=page_size, priorities=[ticket_id]
            ),
            timeout=30,
        ),
    ):
        try:
            call()
        except grpc.RpcError as err:
            assert err.code() in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}, (
                err.code(),
                err.details(),
            )
