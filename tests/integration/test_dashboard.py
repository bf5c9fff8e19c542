"""GetDashboard: urgency order, keyset paging, filters and counts, on a real server and database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import config_text
from support.env import StubFactory
from support.events import event, ts

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


# Metrics with cycles (DESIGN §8): a reply metric with a cycle per customer wait, and resolution.
NEXT_REPLY_METRICS = {
    "next_reply": {
        "start": ["customer_reply"],
        "stop": ["agent_reply", "status:resolved", "status:closed"],
        "cycles": "each_start",
    },
    "resolution": {"start": ["created"], "stop": ["status:resolved", "status:closed"]},
}
CUSTOMER, AGENT = pb.TICKET_ACTIVITY_CUSTOMER_REPLY, pb.TICKET_ACTIVITY_AGENT_REPLY


@pytest.fixture
def cycles_stub(stub_factory: StubFactory, tmp_path: Path) -> pb_grpc.TicketServiceStub:
    """A server whose config measures next_reply (1h, a cycle per wait) and resolution (8h)."""
    policies = {
        "high": {"gold": {"next_reply": "1h", "resolution": "8h"}},
        "low": {"gold": {"resolution": "2d"}},
    }
    path = tmp_path / "metrics.yaml"
    path.write_text(config_text(metrics=NEXT_REPLY_METRICS, policies=policies))
    return stub_factory(path)


def _reply(ticket_id: str, who: int, at: datetime, created: datetime) -> pb.TicketEvent:
    return pb.TicketEvent(
        ticket_id=ticket_id,
        priority="high",
        customer_tier="gold",
        activity=who,  # type: ignore[arg-type]
        created_at=ts(created),
        updated_at=ts(at),
    )


def seed_cycles(stub: pb_grpc.TicketServiceStub, now: datetime) -> None:
    """Four tickets, most urgent first D, C, A, B:
    - A and D: a first wait answered long ago (cycle 1 met, its due time hours past), a second
      wait open now (cycle 2 due in 30 and 10 minutes), resolution due in 5 hours;
    - B and C: no customer message (no next_reply clock), resolution due in 45 and 15 minutes.
    Urgency by a stopped cycle would put A and D first; by resolution only, A and D last."""
    h = timedelta(hours=1)
    events = []
    for ticket_id, second_wait in (("A", timedelta(minutes=30)), ("D", timedelta(minutes=50))):
        created = now - 3 * h
        events += [
            _reply(ticket_id, CUSTOMER, created, created),  # cycle 1: due now - 2h
            _reply(ticket_id, AGENT, created + timedelta(minutes=10), created),
            _reply(ticket_id, CUSTOMER, now - second_wait, created),  # cycle 2
        ]
    events += [
        event("B", created=now - timedelta(hours=7, minutes=15)),
        event("C", created=now - timedelta(hours=7, minutes=45)),
    ]
    stub.IngestTickets(pb.IngestTicketsRequest(events=events))


def running_due(t: pb.Ticket) -> datetime:
    """The earliest due time over the ticket's running clocks, as the page shows them."""
    dues = [
        c.due_at.ToDatetime(UTC)
        for c in t.clocks
        if c.HasField("due_at") and not c.paused and not c.stopped
    ]
    return min(dues, default=datetime.max.replace(tzinfo=UTC))


def test_a_page_shows_the_current_cycle_of_each_metric_ordered_by_any_running_cycle(
    cycles_stub: pb_grpc.TicketServiceStub,
) -> None:
    """With a next_reply config, a ticket with two cycles is on the page with the current cycle
    of each metric (next_reply's second, resolution's first; not the stopped first wait), and
    the order is the earliest due time of any running cycle of any metric."""
    now = datetime.now(UTC).replace(microsecond=0)
    seed_cycles(cycles_stub, now)
    tickets = all_pages(cycles_stub, page_size=2)
    assert [t.ticket_id for t in tickets] == ["D", "C", "A", "B"]
    by_id = {t.ticket_id: t for t in tickets}
    for ticket_id, wait in (("A", 30), ("D", 50)):
        clocks = by_id[ticket_id].clocks
        assert [(c.metric, c.cycle) for c in clocks] == [("next_reply", 2), ("resolution", 1)]
        reply_clock = clocks[0]
        assert reply_clock.due_at.ToDatetime(UTC) == now - timedelta(minutes=wait) + timedelta(
            hours=1
        )
        assert not reply_clock.stopped
        # The answered first wait counts in the state (met), and hides nothing: OK overall.
        assert by_id[ticket_id].sla_state == pb.SLA_STATE_OK
    for ticket_id in ("B", "C"):
        assert [(c.metric, c.cycle) for c in by_id[ticket_id].clocks] == [("resolution", 1)]
    keys = [(running_due(t), t.ticket_id) for t in tickets]
    assert keys == sorted(keys)


def test_the_metrics_filter_narrows_the_page_not_the_counts(
    cycles_stub: pb_grpc.TicketServiceStub,
) -> None:
    """`metrics` keeps the tickets with a clock (any cycle) of one of the metrics, in the same
    urgency order, paged by tokens bound to that filter; the counts are those of the
    priority/tier/status filter, as with `states`."""
    now = datetime.now(UTC).replace(microsecond=0)
    seed_cycles(cycles_stub, now)
    everything = cycles_stub.GetDashboard(pb.GetDashboardRequest())
    assert [t.ticket_id for t in all_pages(cycles_stub, page_size=1, metrics=["next_reply"])] == [
        "D",
        "A",
    ]
    assert [t.ticket_id for t in all_pages(cycles_stub, page_size=3, metrics=["resolution"])] == [
        "D",
        "C",
        "A",
        "B",
    ]
    both = all_pages(cycles_stub, metrics=["next_reply", "resolution", "next_reply"])
    assert [t.ticket_id for t in both] == ["D", "C", "A", "B"]
    unknown = cycles_stub.GetDashboard(pb.GetDashboardRequest(metrics=["periodic_update"]))
    assert list(unknown.tickets) == [] and not unknown.next_page_token
    assert list(unknown.counts) == list(everything.counts)
    assert sum(c.count for c in everything.counts) == 4
    narrowed = cycles_stub.GetDashboard(pb.GetDashboardRequest(metrics=["next_reply"]))
    assert list(narrowed.counts) == list(everything.counts)
    # With the other filters too: next_reply and high priority; none of the low ones.
    assert [
        t.ticket_id for t in all_pages(cycles_stub, metrics=["next_reply"], priorities=["high"])
    ] == ["D", "A"]
    assert not all_pages(cycles_stub, metrics=["next_reply"], priorities=["low"])


def test_a_page_token_is_bound_to_its_metrics_filter(
    cycles_stub: pb_grpc.TicketServiceStub,
) -> None:
    """A token from a metrics-filtered page is refused with another or no metrics filter, and
    one from an unfiltered page is refused under a metrics filter: no row silently skipped."""
    seed_cycles(cycles_stub, datetime.now(UTC).replace(microsecond=0))
    filtered = cycles_stub.GetDashboard(pb.GetDashboardRequest(page_size=1, metrics=["next_reply"]))
    plain = cycles_stub.GetDashboard(pb.GetDashboardRequest(page_size=1))
    assert filtered.next_page_token and plain.next_page_token
    for token, metrics in (
        (filtered.next_page_token, []),
        (filtered.next_page_token, ["resolution"]),
        (plain.next_page_token, ["next_reply"]),
    ):
        with pytest.raises(grpc.RpcError) as info:
            cycles_stub.GetDashboard(
                pb.GetDashboardRequest(page_size=1, page_token=token, metrics=metrics)
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in (info.value.details() or "")
    # The same filter in another order and with a repeat is the same filter.
    again = cycles_stub.GetDashboard(
        pb.GetDashboardRequest(
            page_size=1, page_token=filtered.next_page_token, metrics=["next_reply", "next_reply"]
        )
    )
    assert [t.ticket_id for t in again.tickets] == ["A"]


@pytest.mark.parametrize(
    ("metrics", "field"),
    [
        ([""], "metrics[0]"),
        (["next_reply", "bad\x00name"], "metrics[1]"),
        (["x" * 129], "metrics[0]"),
        ([f"m{i}" for i in range(101)], "metrics"),
    ],
)
def test_bad_metrics_filters_are_invalid_argument(
    stub: pb_grpc.TicketServiceStub, metrics: list[str], field: str
) -> None:
    """A metrics filter is checked like the priority and tier filters: a BadRequest naming it."""
    with pytest.raises(grpc.RpcError) as info:
        stub.GetDashboard(pb.GetDashboardRequest(metrics=metrics))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(info.value) == [field]


def bad_request_fields(err: grpc.RpcError) -> list[str]:
    """The fields the error's google.rpc.BadRequest names, in its order."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "INVALID_ARGUMENT must carry a google.rpc.Status"
    fields = []
    for detail in status.details:
        br = error_details_pb2.BadRequest()
        assert detail.Unpack(br)
        fields += [v.field for v in br.field_violations]
    return fields
