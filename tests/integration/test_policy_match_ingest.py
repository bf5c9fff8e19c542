"""Ordered policies (DESIGN §9) through the real gRPC server and PostgreSQL: the first policy whose
match holds for a ticket's current fields applies and `Ticket.policy` names it; an event no
policy can match refuses its batch whole, naming the event; a reload chooses again; and a
mid-ticket change of policy applies the new targets over the whole history of every metric of
examples/zendesk-like.yaml, the real evaluator firing each level at most once and, of levels
the new targets put in the past, only the highest."""

from __future__ import annotations

import copy
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import yaml
from google.rpc import error_details_pb2, status_pb2

from internal.config.sla_config import parse_config
from internal.usecase.evaluate import evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from support.clocked import clocked_service
from support.env import ROOT, StubFactory
from support.events import ts
from support.servers import wait_for

EXAMPLE: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "zendesk-like.yaml").read_text())
ALL = ("first_reply", "next_reply", "periodic_update", "resolution")


def ordered(policies: list[dict[str, Any]]) -> str:
    doc = copy.deepcopy(EXAMPLE)
    doc["policies"] = policies
    return yaml.safe_dump(doc)


VIP_BILLING = {
    "name": "vip-billing",
    "match": {"group": ["billing"], "tags_any": ["vip"], "attributes": {"region": "emea"}},
    "targets": {"first_reply": "15m", "next_reply": "1h", "resolution": "4h"},
}
BILLING = {"name": "billing", "match": {"group": ["billing"]}, "targets": {"resolution": "8h"}}
DEFAULT = {"name": "default", "targets": {"first_reply": "1h", "resolution": "24h"}}


def event(
    tid: str,
    at: datetime,
    created: datetime,
    status: int = pb.TICKET_STATUS_OPEN,
    activity: int = pb.TICKET_ACTIVITY_UNSPECIFIED,
    **fields: Any,
) -> pb.TicketEvent:
    return pb.TicketEvent(
        ticket_id=tid,
        priority=fields.pop("priority", "high"),
        customer_tier=fields.pop("customer_tier", "gold"),
        status=status,  # type: ignore[arg-type]
        activity=activity,  # type: ignore[arg-type]
        created_at=ts(created),
        updated_at=ts(at),
        **fields,
    )


def bad_request(err: grpc.RpcError) -> list[tuple[str, str]]:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            br = error_details_pb2.BadRequest()
            status.details[0].Unpack(br)
            return [(v.field, v.description) for v in br.field_violations]
    raise AssertionError("no BadRequest")


def test_the_first_matching_policy_applies_on_the_current_fields(
    stub_factory: StubFactory, tmp_path: Path
) -> None:
    """A VIP billing ticket gets vip-billing's targets and name (GetTicket and the dashboard);
    an event that leaves group and tags empty keeps them (the latest given values match); an
    event that moves it to another group falls through to `default`, whose targets then apply
    from created_at."""
    path = tmp_path / "sla.yaml"
    path.write_text(ordered([VIP_BILLING, BILLING, DEFAULT]))
    stub = stub_factory(path)
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    vip = {"group": "billing", "tags": ["vip", "x"], "attributes": {"region": "emea"}}
    stub.IngestTickets(pb.IngestTicketsRequest(events=[event("V-1", t0, t0, **vip)]))

    def ticket() -> pb.Ticket:
        return stub.GetTicket(pb.GetTicketRequest(ticket_id="V-1")).ticket

    got = ticket()
    assert got.policy == "vip-billing"
    assert {c.metric: c.target.seconds for c in got.clocks} == {
        "first_reply": 900,
        "resolution": 4 * 3600,
    }
    page = stub.GetDashboard(pb.GetDashboardRequest(page_size=10))
    assert [t.policy for t in page.tickets] == ["vip-billing"]

    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[event("V-1", t0 + timedelta(minutes=1), t0, pb.TICKET_STATUS_IN_PROGRESS)]
        )
    )
    assert ticket().policy == "vip-billing"  # group, tags and attributes as they were

    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[event("V-1", t0 + timedelta(minutes=2), t0, group="sales", tags=["vip"])]
        )
    )
    got = ticket()
    assert got.policy == "default"
    assert got.resolution.target.seconds == 24 * 3600
    assert got.resolution.due_at.ToDatetime(UTC) == t0 + timedelta(hours=24)

    # The part-one map names its policies priority/tier.
    path.write_text(yaml.safe_dump({**EXAMPLE}))
    map_stub = stub_factory(path)
    map_stub.IngestTickets(pb.IngestTicketsRequest(events=[event("M-1", t0, t0)]))
    assert map_stub.GetTicket(pb.GetTicketRequest(ticket_id="M-1")).ticket.policy == "high/gold"


def test_an_event_no_policy_matches_refuses_the_batch_naming_it(
    stub_factory: StubFactory, tmp_path: Path
) -> None:
    """Without a catch-all: an event whose own fields match no policy is INVALID_ARGUMENT at
    `events[1]` (the fields in the text); an event that leaves the group empty may match, but
    the ticket's stored group makes it match nothing: refused too, naming that event. Nothing of
    either batch is stored."""
    path = tmp_path / "sla.yaml"
    path.write_text(ordered([VIP_BILLING, BILLING]))
    stub = stub_factory(path)
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    with pytest.raises(grpc.RpcError) as info:
        stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[
                    event("OK-1", t0, t0, group="billing"),
                    event("NO-1", t0, t0, group="sales", priority="low"),
                ]
            )
        )
    assert bad_request(info.value) == [
        ("events[1]", "no policy matches (priority='low', customer_tier='gold', group='sales')")
    ]
    with pytest.raises(grpc.RpcError) as info:
        stub.GetTicket(pb.GetTicketRequest(ticket_id="OK-1"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    gold = {"name": "gold", "match": {"customer_tier": ["gold"], "group": ["billing"]}}
    silver = {"name": "silver", "match": {"customer_tier": ["silver"], "group": ["sales"]}}
    path.write_text(ordered([{**gold, "targets": {}}, {**silver, "targets": {}}]))
    stub = stub_factory(path)
    stub.IngestTickets(pb.IngestTicketsRequest(events=[event("S-1", t0, t0, group="billing")]))
    # Silver without a group may be a silver sales ticket; this one's group is billing.
    with pytest.raises(grpc.RpcError) as info:
        stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[
                    event("OK-2", t0, t0, group="billing"),
                    event("S-1", t0 + timedelta(minutes=2), t0, customer_tier="silver"),
                    event("S-1", t0 + timedelta(minutes=1), t0, customer_tier="silver"),
                ]
            )
        )
    assert bad_request(info.value) == [
        (
            "events[1]",
            "no policy matches (priority='high', customer_tier='silver', group='billing')",
        )
    ]
    history = stub.GetTicket(pb.GetTicketRequest(ticket_id="S-1")).history
    assert len(history) == 1
    with pytest.raises(grpc.RpcError):
        stub.GetTicket(pb.GetTicketRequest(ticket_id="OK-2"))


def test_a_reload_chooses_the_policy_again(
    stub_factory: StubFactory, tmp_path: Path, database_url: str
) -> None:
    """A save that puts a policy for the ticket's tag first rewrites the open ticket with that
    policy's name and targets, chosen on its stored fields."""
    path = tmp_path / "sla.yaml"
    path.write_text(ordered([BILLING, DEFAULT]))
    stub = stub_factory(path)
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    stub.IngestTickets(
        pb.IngestTicketsRequest(events=[event("R-1", t0, t0, group="billing", tags=["urgent"])])
    )
    assert stub.GetTicket(pb.GetTicketRequest(ticket_id="R-1")).ticket.policy == "billing"
    urgent = {"name": "urgent", "match": {"tags_all": ["urgent"]}, "targets": {"resolution": "2h"}}
    staged = path.with_name(".sla.yaml.tmp")
    staged.write_text(ordered([urgent, BILLING, DEFAULT]))
    os.replace(staged, path)

    def stored() -> tuple[Any, ...] | None:
        with psycopg.connect(database_url) as conn:
            return conn.execute(
                "SELECT t.policy, c.target_s FROM tickets t JOIN sla_clocks c USING"
                " (tenant_id, ticket_id) WHERE ticket_id = 'R-1' AND c.clock = 'resolution'"
            ).fetchone()

    wait_for(lambda: stored() == ("urgent", 7200.0), 15, "ticket recomputed")
    assert stub.GetTicket(pb.GetTicketRequest(ticket_id="R-1")).ticket.policy == "urgent"


# -- a mid-ticket change of policy, every metric, through the evaluator --------------------------

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STANDARD = {"name": "standard", "targets": dict.fromkeys(ALL, "10h") | {"resolution": "20h"}}
VIP = {
    "name": "vip",
    "match": {"tags_any": ["vip"]},
    "targets": dict.fromkeys(ALL, "50m") | {"resolution": "2h"},
}


def alerts(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT clock, cycle, escalation_level FROM alerts WHERE ticket_id = 'MID'"
            " ORDER BY clock, cycle, escalation_level"
        ).fetchall()


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_a_policy_change_applies_over_the_whole_history_and_fires_each_level_once(
    database_url: str, tmp_path: Path
) -> None:
    """Under `standard` (10h, resolution 20h), evaluated at 16h: next_reply's second wait
    (since 2h) has its breach (level 2, the warning below it skipped) and periodic_update its
    one breach. Then a tag moves the ticket to `vip` (50m, resolution 2h) and every metric's
    clocks are recomputed from created_at with elapsed time carried over: first_reply and the
    first wait, stopped at 1h (120%), get their level 2 breach now (not the warning below it),
    the second wait its level 3 (level 2 not again), resolution (800%) only level 3,
    periodic_update nothing again. A later evaluation fires nothing more."""
    path = tmp_path / "sla.yaml"
    text = ordered([VIP, STANDARD])
    path.write_text(text)
    config = parse_config(text)
    customer, agent = pb.TICKET_ACTIVITY_CUSTOMER_REPLY, pb.TICKET_ACTIVITY_AGENT_REPLY
    with clocked_service(database_url, path, h(16)) as svc:
        svc.stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[
                    event("MID", T0, T0, activity=customer),
                    event("MID", h(1), T0, pb.TICKET_STATUS_UNSPECIFIED, agent),
                    event("MID", h(2), T0, pb.TICKET_STATUS_UNSPECIFIED, customer),
                ]
            )
        )
        with psycopg.connect(database_url) as conn:
            evaluate_batch(conn, config, h(16))
        assert alerts(database_url) == [("next_reply", 2, 2), ("periodic_update", 1, 1)]
        before = svc.stub.GetTicket(pb.GetTicketRequest(ticket_id="MID")).ticket
        assert before.policy == "standard"

        svc.clock.now = h(16.5)
        svc.stub.IngestTickets(
            pb.IngestTicketsRequest(events=[event("MID", h(16.25), T0, tags=["vip"])])
        )
        full = svc.stub.GetTicket(
            pb.GetTicketRequest(ticket_id="MID", view=pb.TICKET_VIEW_FULL)
        ).ticket
        assert full.policy == "vip"
        clocks = {(c.metric, c.cycle): c for c in full.clocks}
        assert sorted(clocks) == [
            ("first_reply", 1),
            ("next_reply", 1),
            ("next_reply", 2),
            ("periodic_update", 1),
            ("resolution", 1),
        ]
        assert all(
            c.target.seconds == (7200 if m == "resolution" else 3000)
            for (m, _), c in clocks.items()
        )
        # Elapsed time carries over: stopped clocks keep theirs, running ones count from start.
        assert clocks[("first_reply", 1)].elapsed.seconds == 3600
        assert clocks[("next_reply", 1)].elapsed.seconds == 3600
        assert clocks[("next_reply", 2)].due_at.ToDatetime(UTC) == h(2) + timedelta(minutes=50)
        assert clocks[("periodic_update", 1)].due_at.ToDatetime(UTC) == h(1) + timedelta(minutes=50)
        assert clocks[("resolution", 1)].due_at.ToDatetime(UTC) == h(2)

        with psycopg.connect(database_url) as conn:
            evaluate_batch(conn, config, h(16.5))
        assert alerts(database_url) == [
            ("first_reply", 1, 2),
            ("next_reply", 1, 2),
            ("next_reply", 2, 2),
            ("next_reply", 2, 3),
            ("periodic_update", 1, 1),
            ("resolution", 1, 3),
        ]
        with psycopg.connect(database_url) as conn:
            evaluate_batch(conn, config, h(40))
        assert len(alerts(database_url)) == 6
        assert svc.stub.GetTicket(pb.GetTicketRequest(ticket_id="MID")).ticket.escalation_level == 3
