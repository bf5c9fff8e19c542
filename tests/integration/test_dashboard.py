"""GetDashboard: urgency order, keyset paging, filters and counts, on a real server and database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.events import event

NOW = datetime.now(UTC).replace(microsecond=0)


def all_pages(stub: pb_grpc.TicketServiceStub, **kwargs: object) -> list[pb.Ticket]:
    tickets: list[pb.Ticket] = []
    token = ""
    while True:
        page = stub.GetDashboard(pb.GetDashboardRequest(page_token=token, **kwargs))  # type: ignore[arg-type]
        tickets.extend(page.tickets)
        token = page.next_page_token
        if not token:
            return tickets


def urgency(t: pb.Ticket) -> datetime:
    dues = [
        c.due_at.ToDatetime(UTC)
        for c in (t.response, t.resolution)
        if c.HasField("due_at") and not c.paused and not c.stopped
    ]
    return min(dues, default=datetime.max.replace(tzinfo=UTC))


def seed(stub: pb_grpc.TicketServiceStub, count: int, prefix: str = "T") -> None:
    events = [
        # Spread creation times so that due times differ; a few share one to test the tie-break.
        event(f"{prefix}-{i:04d}", created=NOW - timedelta(minutes=(i * 7) % 300))
        for i in range(count)
    ]
    for start in range(0, count, 500):
        stub.IngestTickets(pb.IngestTicketsRequest(events=events[start : start + 500]))


def test_most_urgent_first_then_ticket_id(stub: pb_grpc.TicketServiceStub) -> None:
    """Order: the earliest running due time first (overdue first), then ticket_id."""
    seed(stub, 60)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[
                event("done", pb.TICKET_STATUS_OPEN, created=NOW - timedelta(hours=1)),
                event(
                    "done", pb.TICKET_STATUS_CLOSED, created=NOW - timedelta(hours=1), updated=NOW
                ),
            ]
        )
    )
    tickets = all_pages(stub, page_size=7)
    keys = [(urgency(t), t.ticket_id) for t in tickets]
    assert keys == sorted(keys)
    assert len(tickets) == 61
    assert tickets[-1].ticket_id == "done"  # nothing running: after every running ticket
    assert tickets[0].sla_state == pb.SLA_STATE_BREACHED


def test_paging_covers_every_ticket_once_under_concurrent_ingest(
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """Keyset paging: every ticket stored before paging began appears exactly once, in order,
    while other tickets are being ingested."""
    seed(stub, 1200)
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            stub.IngestTickets(
                pb.IngestTicketsRequest(
                    events=[
                        event(f"new-{n}-{j}", created=NOW - timedelta(minutes=j % 240))
                        for j in range(50)
                    ]
                )
            )
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        tickets = all_pages(stub, page_size=100)
    finally:
        stop.set()
        thread.join()
    seen = [t.ticket_id for t in tickets if t.ticket_id.startswith("T-")]
    assert len(seen) == len(set(seen)) == 1200
    keys = [(urgency(t), t.ticket_id) for t in tickets]
    assert keys == sorted(keys)


def test_state_filter_and_counts(stub: pb_grpc.TicketServiceStub) -> None:
    """Counts per state cover the whole filter; the state filter picks exactly those tickets."""
    # Read now, not at import: the states below hold for minutes, and a long session would
    # have the warning ticket breach before this test runs.
    now = datetime.now(UTC).replace(microsecond=0)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[
                event("ok", created=now),  # 15m response target: fresh
                event("warn", created=now - timedelta(minutes=13)),  # 86%
                event("late", created=now - timedelta(minutes=20)),  # breached
                event("met", created=now - timedelta(minutes=5)),
                event(
                    "met",
                    pb.TICKET_STATUS_RESOLVED,
                    created=now - timedelta(minutes=5),
                    updated=now - timedelta(minutes=4),
                ),
                event("low-late", created=now - timedelta(hours=2), priority="low"),
            ]
        )
    )
    page = stub.GetDashboard(pb.GetDashboardRequest())
    counts = {c.state: c.count for c in page.counts}
    assert counts == {
        pb.SLA_STATE_OK: 1,
        pb.SLA_STATE_WARNING: 1,
        pb.SLA_STATE_BREACHED: 2,
        pb.SLA_STATE_MET: 1,
    }
    breached = stub.GetDashboard(pb.GetDashboardRequest(states=[pb.SLA_STATE_BREACHED]))
    assert {t.ticket_id for t in breached.tickets} == {"late", "low-late"}
    assert all(t.sla_state == pb.SLA_STATE_BREACHED for t in breached.tickets)
    high_breached = stub.GetDashboard(
        pb.GetDashboardRequest(states=[pb.SLA_STATE_BREACHED], priorities=["high"])
    )
    assert [t.ticket_id for t in high_breached.tickets] == ["late"]
    assert {c.state: c.count for c in high_breached.counts}[pb.SLA_STATE_BREACHED] == 1
    resolved = stub.GetDashboard(pb.GetDashboardRequest(statuses=[pb.TICKET_STATUS_RESOLVED]))
    assert [t.ticket_id for t in resolved.tickets] == ["met"]


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"page_token": "not-a-token!"}, "page_token"),
        ({"page_token": "eyJ1IjogMX0"}, "page_token"),
        ({"page_size": 501}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"states": [99]}, "states[0]"),
    ],
)
def test_bad_dashboard_requests_are_invalid_argument(
    stub: pb_grpc.TicketServiceStub, request_kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetDashboard(pb.GetDashboardRequest(**request_kwargs))  # type: ignore[arg-type]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (info.value.details() or "")


def test_page_token_is_bound_to_its_filter(stub: pb_grpc.TicketServiceStub) -> None:
    """A token from one filter used with another is refused instead of silently skipping rows."""
    seed(stub, 5)
    token = stub.GetDashboard(pb.GetDashboardRequest(page_size=2)).next_page_token
    assert token
    with pytest.raises(grpc.RpcError) as info:
        stub.GetDashboard(pb.GetDashboardRequest(page_size=2, page_token=token, priorities=["low"]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_default_and_maximum_page_size(stub: pb_grpc.TicketServiceStub) -> None:
    seed(stub, 520)
    assert len(stub.GetDashboard(pb.GetDashboardRequest()).tickets) == 50
    assert len(stub.GetDashboard(pb.GetDashboardRequest(page_size=500)).tickets) == 500
