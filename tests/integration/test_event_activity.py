"""Events with an activity, group, assignee, tags and attributes, through a real gRPC server into
a real PostgreSQL and back out of GetTicket (both views)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import grpc
import psycopg
import psycopg_pool
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from internal.config.sla_config import parse_config
from internal.usecase.recompute import recompute_open_tickets
from slawatch import SlawatchClient
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.alerts import write_alerts
from support.clocked import Clocked, clocked_service
from support.configs import config_text
from support.events import T0, event, minutes, ts

OPEN, IN_PROGRESS, ON_HOLD = (
    pb.TICKET_STATUS_OPEN,
    pb.TICKET_STATUS_IN_PROGRESS,
    pb.TICKET_STATUS_ON_HOLD,
)
UNSPECIFIED = pb.TICKET_STATUS_UNSPECIFIED
AGENT, CUSTOMER, NOTE = (
    pb.TICKET_ACTIVITY_AGENT_REPLY,
    pb.TICKET_ACTIVITY_CUSTOMER_REPLY,
    pb.TICKET_ACTIVITY_INTERNAL_NOTE,
)
CREATED, UPDATED, DUPLICATE, OUT_OF_ORDER = (
    pb.INGEST_OUTCOME_CREATED,
    pb.INGEST_OUTCOME_UPDATED,
    pb.INGEST_OUTCOME_DUPLICATE,
    pb.INGEST_OUTCOME_OUT_OF_ORDER,
)


@pytest.fixture
def clocked(database_url: str, config_path: Path) -> Iterator[Clocked]:
    with clocked_service(database_url, config_path, T0 + minutes(30)) as service:
        yield service


def activity(
    ticket_id: str,
    kind: int,
    at: datetime,
    status: int = UNSPECIFIED,
    **fields: object,
) -> pb.TicketEvent:
    e = event(ticket_id, status, updated=at)
    e.activity = kind  # type: ignore[assignment]
    for name, value in fields.items():
        target = getattr(e, name)
        if isinstance(value, str):
            setattr(e, name, value)
        elif isinstance(value, dict):
            target.update(value)
        else:
            target.extend(value)
    return e


def ingest(stub: pb_grpc.TicketServiceStub, *events: pb.TicketEvent) -> list[int]:
    return [r.outcome for r in stub.IngestTickets(pb.IngestTicketsRequest(events=events)).results]


def get(
    stub: pb_grpc.TicketServiceStub, ticket_id: str, view: int = pb.TICKET_VIEW_UNSPECIFIED
) -> pb.GetTicketResponse:
    return stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id, view=view))  # type: ignore[arg-type]


def test_replies_with_attributes_are_stored_and_shown(clocked: Clocked) -> None:
    """Activity and fields of every event come back in the history; the ticket's current group,
    assignee, tags and attributes are those of the latest event by event time that carries each
    (an event leaving one empty leaves it unchanged), also when that event arrived first; both
    views give the clocks by metric, each the same as its part-one field."""
    stub = clocked.stub
    assert ingest(
        stub,
        event("T-1"),
        activity(
            "T-1",
            CUSTOMER,
            T0 + minutes(1),
            group="billing",
            tags=["vip", "de"],
            attributes={"channel": "email", "lang": "de"},
        ),
    ) == [CREATED, UPDATED]
    # The agent's reply changes the status and the assignee and gives the whole attribute set.
    assert ingest(
        stub,
        activity(
            "T-1",
            AGENT,
            T0 + minutes(10),
            IN_PROGRESS,
            assignee="ana",
            attributes={"channel": "chat"},
        ),
    ) == [UPDATED]
    # A note stamped before the reply, arriving after it: the reply carries no group, so the
    # note's is the latest group by event time.
    assert ingest(stub, activity("T-1", NOTE, T0 + minutes(5), group="tier-2")) == [OUT_OF_ORDER]

    basic = get(stub, "T-1")
    t = basic.ticket
    assert t.status == IN_PROGRESS
    assert (t.group, t.assignee, list(t.tags)) == ("tier-2", "ana", ["vip", "de"])
    assert dict(t.attributes) == {"channel": "chat"}
    history = [
        (h.status, h.activity, h.group, h.assignee, list(h.tags), dict(h.attributes))
        for h in basic.history
    ]
    assert history == [
        (OPEN, pb.TICKET_ACTIVITY_UNSPECIFIED, "", "", [], {}),
        (UNSPECIFIED, CUSTOMER, "billing", "", ["vip", "de"], {"channel": "email", "lang": "de"}),
        (UNSPECIFIED, NOTE, "tier-2", "", [], {}),
        (IN_PROGRESS, AGENT, "", "ana", [], {"channel": "chat"}),
    ]
    assert [(c.metric, c.cycle, c.kind) for c in t.clocks] == [
        ("resolution", 1, pb.CLOCK_KIND_RESOLUTION),
        ("response", 1, pb.CLOCK_KIND_RESPONSE),
    ]
    assert t.clocks[0] == t.resolution and t.clocks[1] == t.response
    assert t.response.stopped and not t.resolution.stopped
    # Every metric has one cycle here: the full view is the basic view, with the timelines.
    full = get(stub, "T-1", pb.TICKET_VIEW_FULL)
    assert all(c.timeline for c in full.ticket.clocks)
    for clock in (*full.ticket.clocks, full.ticket.response, full.ticket.resolution):
        clock.ClearField("timeline")
    assert full == basic
    assert get(stub, "T-1", pb.TICKET_VIEW_BASIC) == basic


def test_a_duplicate_is_still_a_duplicate(clocked: Clocked, database_url: str) -> None:
    """The same (ticket_id, updated_at) with another activity, status and fields is DUPLICATE,
    in a later batch and within one, and changes nothing stored."""
    stub = clocked.stub
    first = activity("T-1", CUSTOMER, T0, OPEN, group="billing", attributes={"a": "1"})
    assert ingest(stub, first) == [CREATED]
    before = get(stub, "T-1")
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT * FROM ticket_events ORDER BY updated_at").fetchall()
    again = activity("T-1", AGENT, T0, IN_PROGRESS, group="ops", tags=["x"], attributes={"a": "2"})
    later = activity("T-1", NOTE, T0 + minutes(2), assignee="bo")
    assert ingest(stub, again) == [DUPLICATE]
    assert ingest(stub, later, later) == [UPDATED, DUPLICATE]
    after = get(stub, "T-1")
    assert after.ticket.group == "billing" and dict(after.ticket.attributes) == {"a": "1"}
    assert after.history[0] == before.history[0]
    assert after.ticket.clocks == before.ticket.clocks
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT * FROM ticket_events ORDER BY updated_at").fetchall()
    assert rows[0] == stored[0] and len(rows) == 2


def _clocks(stub: pb_grpc.TicketServiceStub, ticket_id: str) -> tuple[int, list[pb.SlaClock]]:
    t = get(stub, ticket_id).ticket
    return t.status, list(t.clocks)


def test_an_activity_without_status_leaves_status_and_clocks_unchanged(clocked: Clocked) -> None:
    """Replies and notes that name no status change neither the ticket's status nor any clock:
    in a new ticket's first batch, after the ticket exists, arriving out of order, and when a
    status change stamped before them arrives after them (they take that status)."""
    stub = clocked.stub
    # Reference tickets with the status events only.
    ingest(stub, event("R-open"))
    ingest(stub, event("R-hold"), event("R-hold", ON_HOLD, updated=T0 + minutes(4)))
    open_clocks = _clocks(stub, "R-open")
    hold_clocks = _clocks(stub, "R-hold")
    assert open_clocks[0] == OPEN and hold_clocks[0] == ON_HOLD
    assert hold_clocks[1][0].paused  # resolution

    # A new ticket whose first event is a customer message: open, clocks as if created.
    assert ingest(stub, activity("A-first", CUSTOMER, T0)) == [CREATED]
    assert _clocks(stub, "A-first") == open_clocks

    # A stored ticket: a note and an agent reply without status, in order.
    ingest(stub, event("A-open"))
    assert ingest(stub, activity("A-open", NOTE, T0 + minutes(2))) == [UPDATED]
    assert ingest(stub, activity("A-open", AGENT, T0 + minutes(3), assignee="ana")) == [UPDATED]
    assert _clocks(stub, "A-open") == open_clocks

    # In one new ticket's batch: the customer message after on_hold stays on hold.
    batch = [
        event("A-batch"),
        activity("A-batch", CUSTOMER, T0 + minutes(6)),
        event("A-batch", ON_HOLD, updated=T0 + minutes(4)),
    ]
    assert ingest(stub, *batch) == [CREATED, UPDATED, UPDATED]
    assert _clocks(stub, "A-batch") == hold_clocks

    # A reply stored first, the on_hold before it late: the reply's status follows.
    ingest(stub, event("A-late"))
    assert ingest(stub, activity("A-late", CUSTOMER, T0 + minutes(6))) == [UPDATED]
    assert ingest(stub, event("A-late", ON_HOLD, updated=T0 + minutes(4))) == [OUT_OF_ORDER]
    assert _clocks(stub, "A-late") == hold_clocks
    # And one stamped before the on_hold, arriving last, is open at its time: nothing moves.
    assert ingest(stub, activity("A-late", NOTE, T0 + minutes(1))) == [OUT_OF_ORDER]
    assert _clocks(stub, "A-late") == hold_clocks
    history = get(stub, "A-late").history
    assert [(h.status, h.activity) for h in history] == [
        (OPEN, pb.TICKET_ACTIVITY_UNSPECIFIED),
        (UNSPECIFIED, NOTE),
        (ON_HOLD, pb.TICKET_ACTIVITY_UNSPECIFIED),
        (UNSPECIFIED, CUSTOMER),
    ]


def _bad_fields(err: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    found: dict[str, str] = {}
    for detail in status.details:
        br = error_details_pb2.BadRequest()
        assert detail.Unpack(br)
        found.update({v.field: v.description for v in br.field_violations})
    return found


def test_bad_optional_fields_refuse_the_batch_naming_each(
    clocked: Clocked, database_url: str
) -> None:
    """A batch with bad optional fields is INVALID_ARGUMENT naming each by its path, and stores
    nothing, not even its good events; an unknown view is refused by name."""
    stub = clocked.stub
    batch = [
        event("T-0"),
        activity("T-1", CUSTOMER, T0, tags=["ok", "", "x" * 65]),
        activity("T-2", 42, T0),
        activity("T-3", AGENT, T0, OPEN, attributes={"lang": "v" * 257}, group="g" * 129),
    ]
    with pytest.raises(grpc.RpcError) as err:
        ingest(stub, *batch)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_fields(err.value) == {
        "events[1].tags[1]": "required",
        "events[1].tags[2]": "longer than 64 characters",
        "events[2].activity": "unknown TicketActivity value",
        "events[3].group": "longer than 128 characters",
        'events[3].attributes["lang"]': "longer than 256 characters",
    }
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM ticket_events").fetchone() == (0,)

    ingest(stub, event("T-0"))
    with pytest.raises(grpc.RpcError) as err:
        get(stub, "T-0", view=9)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_fields(err.value) == {"view": "unknown TicketView value"}


def test_stored_columns(clocked: Clocked, database_url: str) -> None:
    """The history keeps the activity as its name, the tags as an array, the attributes as a JSON
    object, and NULL for what an event did not carry (its status too, when left unchanged)."""
    ingest(
        clocked.stub,
        event("T-1"),
        activity("T-1", AGENT, T0 + minutes(1), tags=["a"], attributes={"k": "v"}),
    )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status, activity, group_name, assignee, tags, attributes FROM ticket_events"
            " ORDER BY updated_at"
        ).fetchall()
    assert rows == [
        ("open", None, None, None, None, None),
        (None, "agent_reply", None, None, ["a"], {"k": "v"}),
    ]
    assert ts(T0) == get(clocked.stub, "T-1").ticket.created_at


def test_the_typed_client_asks_for_a_view(clocked: Clocked) -> None:
    """SlawatchClient.get_ticket passes the view: the answer is the server's for that view, and
    an unknown view reaches the server (and is refused there), not dropped on the way."""
    ingest(clocked.stub, event("T-1"), activity("T-1", CUSTOMER, T0 + minutes(1), group="g"))
    with SlawatchClient(clocked.target) as client:
        full = client.get_ticket("T-1", view=pb.TICKET_VIEW_FULL)
        assert full == get(clocked.stub, "T-1", pb.TICKET_VIEW_FULL)
        assert full.ticket.group == "g" and len(full.ticket.clocks) == 2
        with pytest.raises(grpc.RpcError) as err:
            client.get_ticket("T-1", view=7)  # type: ignore[arg-type]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_alerts_name_their_metric_and_cycle(
    stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """An alert raised by the evaluator carries its metric and cycle (1) beside part one's clock
    kind, in WatchAlerts' replay and in GetTicket's alerts alike."""
    (alert_id,) = write_alerts(database_url, 1)  # a response warning
    call = stub.WatchAlerts(pb.WatchAlertsRequest(after_alert_id=alert_id - 1), timeout=10)
    try:
        streamed = next(iter(call)).alert
    finally:
        call.cancel()
    assert (streamed.alert_id, streamed.metric, streamed.cycle, streamed.clock) == (
        alert_id,
        "response",
        1,
        pb.CLOCK_KIND_RESPONSE,
    )
    (shown,) = get(stub, streamed.ticket_id).alerts
    assert (shown.metric, shown.cycle, shown.clock) == ("response", 1, pb.CLOCK_KIND_RESPONSE)


def test_a_recompute_resolves_unchanged_statuses_too(
    clocked: Clocked, pool: psycopg_pool.ConnectionPool
) -> None:
    """A new config recomputes a ticket whose stored reply left the status unchanged (NULL) from
    the status before it, as ingest did: the same clocks as the ticket without the reply."""
    stub = clocked.stub
    ingest(stub, event("R-hold"), event("R-hold", ON_HOLD, updated=T0 + minutes(4)))
    ingest(stub, event("A-hold"), event("A-hold", ON_HOLD, updated=T0 + minutes(4)))
    ingest(stub, activity("A-hold", CUSTOMER, T0 + minutes(6)))
    two_hours = {
        "high": {"gold": {"response": "15m", "resolution": "2h"}},
        "low": {"gold": {"response": "1h", "resolution": "12h"}},
    }
    assert recompute_open_tickets(pool, parse_config(config_text(policies=two_hours))) == 2
    status, clocks = _clocks(stub, "A-hold")
    assert status == ON_HOLD
    assert clocks[0].metric == "resolution" and clocks[0].target.seconds == 2 * 3600
    assert clocks[0].paused
    assert (status, clocks) == _clocks(stub, "R-hold")
