"""Metrics with cycles through the real parts: a config with a `metrics:` section served by the
real gRPC server, stored in PostgreSQL, evaluated by the Dramatiq worker on the scheduler's
ticks, delivered to a loopback Slack; and GetTicket's clocks against the reference model."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from internal.config.sla_config import SlaConfig, parse_config
from internal.sla.metric import Cycles
from reference import metric_model as ref
from reference.calendar_model import TWENTY_FOUR_SEVEN, emea_office
from reference.histories import History, random_history
from slawatch.v1 import ticket_service_pb2 as pb
from support.clocked import clocked_service
from support.configs import config_text
from support.env import ROOT, StubFactory
from support.events import ts
from support.fake_slack import FakeSlack
from support.ops import engine_env
from support.servers import wait_for
from support.workers import Processes, rows

NEXT_REPLY = {
    "start": ["customer_reply"],
    "stop": ["agent_reply", "status:resolved", "status:closed"],
    "cycles": "each_start",
    # Its own ladder: the warning to the team, the breach to the lead.
    "escalation": [
        {"at_percent": 50, "level": 1, "kind": "warning", "notify": ["team"]},
        {"at_percent": 100, "level": 2, "kind": "breach", "notify": ["lead"]},
    ],
}
RESOLUTION = {
    "start": ["created"],
    "stop": ["status:resolved", "status:closed"],
    "pause": ["status:on_hold"],
}


def metrics_config(next_reply: str = "1h", **extra: object) -> str:
    policies = {
        "high": {"gold": {"next_reply": next_reply, "resolution": "8h"}},
        # No next_reply promised: a ticket moved here has no cycles of it.
        "low": {"gold": {"resolution": "2d"}},
    }
    return config_text(
        metrics={"next_reply": NEXT_REPLY, "resolution": RESOLUTION}, policies=policies, **extra
    )


def reply(
    ticket_id: str,
    who: int,
    at: datetime,
    created: datetime,
    status: int = pb.TICKET_STATUS_UNSPECIFIED,
    priority: str = "high",
) -> pb.TicketEvent:
    return pb.TicketEvent(
        ticket_id=ticket_id,
        priority=priority,
        customer_tier="gold",
        status=status,  # type: ignore[arg-type]
        activity=who,  # type: ignore[arg-type]
        created_at=ts(created),
        updated_at=ts(at),
    )


CUSTOMER, AGENT = pb.TICKET_ACTIVITY_CUSTOMER_REPLY, pb.TICKET_ACTIVITY_AGENT_REPLY


def stored_cycles(database_url: str, ticket_id: str) -> list[tuple[Any, ...]]:
    """Every stored cycle of the ticket, without its id: what ingest computed."""
    return rows(
        database_url,
        "SELECT clock, cycle, target_s, calendar, mode, anchor_at, anchor_elapsed, due_at,"
        " warn_at, next_check_at FROM sla_clocks WHERE ticket_id = %s ORDER BY clock, cycle",
        ticket_id,
    )


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_each_cycle_warns_and_breaches_once_to_its_steps_channels(
    database_url: str, redis_url: str, slack: FakeSlack, tmp_path: Path, stub_factory: StubFactory
) -> None:
    """Two customer waits with a 6-second next_reply target: each cycle gets its warning (to
    the team) and its breach (to the lead) exactly once, each alert naming the metric and the
    cycle, and the Slack text names the metric in words and the second cycle."""
    path = tmp_path / "sla.yaml"
    path.write_text(metrics_config(next_reply="6s"))
    procs = Processes(engine_env(database_url, redis_url, path, slack), tmp_path)
    try:
        stub = stub_factory(path)
        procs.worker()
        procs.scheduler()
        created = datetime.now(UTC)
        stub.IngestTickets(
            pb.IngestTicketsRequest(events=[reply("NR-1", CUSTOMER, created, created)])
        )
        slack.wait_for(1, "/hooks/lead", timeout=60)  # cycle 1 breached
        now = datetime.now(UTC)
        stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[
                    reply("NR-1", AGENT, now, created),
                    reply("NR-1", CUSTOMER, now + timedelta(milliseconds=10), created),
                ]
            )
        )
        slack.wait_for(2, "/hooks/lead", timeout=60)  # cycle 2 breached
        time.sleep(3)  # a few more ticks: nothing fires again
        got = stub.GetTicket(pb.GetTicketRequest(ticket_id="NR-1"))
    finally:
        procs.stop_all()
        print(procs.logs())
    assert [(a.metric, a.cycle, a.kind, a.escalation_level) for a in got.alerts] == [
        ("next_reply", 1, pb.ALERT_KIND_WARNING, 1),
        ("next_reply", 1, pb.ALERT_KIND_BREACH, 2),
        ("next_reply", 2, pb.ALERT_KIND_WARNING, 1),
        ("next_reply", 2, pb.ALERT_KIND_BREACH, 2),
    ]
    assert all(a.clock == pb.CLOCK_KIND_UNSPECIFIED for a in got.alerts)
    team, lead = slack.requests("/hooks/team"), slack.requests("/hooks/lead")
    assert len(team) == 2 and len(lead) == 2
    assert all("SLA at risk: next reply" in str(r.body) for r in team)
    assert "SLA breached: next reply" in str(lead[0].body) and "cycle" not in str(lead[0].body)
    assert "SLA breached: next reply (cycle 2)" in str(lead[1].body)
    assert slack.requests("/hooks/manager") == []


def test_a_late_agent_reply_gives_the_cycles_in_order_ingest_gives(
    stub_factory: StubFactory, tmp_path: Path, database_url: str
) -> None:
    """The later customer reply ingested first joins the open wait (one cycle); the earlier
    agent reply, arriving last, is placed by its event time: it ends the first wait and the
    later message opens a second, exactly the rows of the same events ingested in order. The
    full view lists every cycle, the basic view the current one of each metric."""
    path = tmp_path / "sla.yaml"
    path.write_text(metrics_config())
    stub = stub_factory(path)
    t0 = datetime.now(UTC) - timedelta(hours=3)

    def events(tid: str) -> list[pb.TicketEvent]:
        return [
            reply(tid, CUSTOMER, t0 + timedelta(minutes=1), t0, pb.TICKET_STATUS_OPEN),
            reply(tid, AGENT, t0 + timedelta(minutes=20), t0),
            reply(tid, CUSTOMER, t0 + timedelta(minutes=30), t0),
        ]

    stub.IngestTickets(pb.IngestTicketsRequest(events=events("IN-ORDER")))
    first, agent, later = events("LATE")
    stub.IngestTickets(pb.IngestTicketsRequest(events=[first]))
    stub.IngestTickets(pb.IngestTicketsRequest(events=[later]))
    assert [r[:2] for r in stored_cycles(database_url, "LATE")] == [
        ("next_reply", 1),
        ("resolution", 1),
    ]
    (result,) = stub.IngestTickets(pb.IngestTicketsRequest(events=[agent])).results
    assert result.outcome == pb.INGEST_OUTCOME_OUT_OF_ORDER
    assert stored_cycles(database_url, "LATE") == stored_cycles(database_url, "IN-ORDER")
    assert [r[:2] for r in stored_cycles(database_url, "LATE")] == [
        ("next_reply", 1),
        ("next_reply", 2),
        ("resolution", 1),
    ]

    full = stub.GetTicket(pb.GetTicketRequest(ticket_id="LATE", view=pb.TICKET_VIEW_FULL)).ticket
    assert [(c.metric, c.cycle, c.stopped) for c in full.clocks] == [
        ("next_reply", 1, True),
        ("next_reply", 2, False),
        ("resolution", 1, False),
    ]
    assert full.clocks[0].state == pb.SLA_STATE_MET  # answered 19 minutes into a 1-hour target
    assert full.clocks[1].state == pb.SLA_STATE_BREACHED  # waiting since 2.5 hours
    basic = stub.GetTicket(pb.GetTicketRequest(ticket_id="LATE")).ticket
    assert [(c.metric, c.cycle) for c in basic.clocks] == [("next_reply", 2), ("resolution", 1)]
    assert basic.resolution.metric == "resolution" and basic.resolution.target.seconds == 8 * 3600
    assert not basic.HasField("response")
    assert basic.sla_state == full.sla_state == pb.SLA_STATE_BREACHED


def test_cycles_the_history_no_longer_gives_are_deleted(
    stub_factory: StubFactory, tmp_path: Path, database_url: str
) -> None:
    """A priority change to a policy without a next_reply target leaves the ticket with no
    cycles of it: the stored ones are deleted, the ticket's state is its resolution's."""
    path = tmp_path / "sla.yaml"
    path.write_text(metrics_config())
    stub = stub_factory(path)
    t0 = datetime.now(UTC) - timedelta(hours=3)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[
                reply("MOVE", CUSTOMER, t0 + timedelta(minutes=1), t0, pb.TICKET_STATUS_OPEN),
                reply("MOVE", AGENT, t0 + timedelta(minutes=20), t0),
                reply("MOVE", CUSTOMER, t0 + timedelta(minutes=30), t0),
            ]
        )
    )
    assert len(stored_cycles(database_url, "MOVE")) == 3
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[reply("MOVE", AGENT, t0 + timedelta(minutes=40), t0, priority="low")]
        )
    )
    assert [r[:2] for r in stored_cycles(database_url, "MOVE")] == [("resolution", 1)]
    ticket = stub.GetTicket(pb.GetTicketRequest(ticket_id="MOVE")).ticket
    assert [c.metric for c in ticket.clocks] == ["resolution"]
    assert ticket.sla_state == pb.SLA_STATE_OK


def test_a_reload_recomputes_every_cycle(
    stub_factory: StubFactory, tmp_path: Path, database_url: str
) -> None:
    """A save that changes next_reply's target rewrites every stored cycle of the open ticket
    with the new target and due time, by the same rule as ingest."""
    path = tmp_path / "sla.yaml"
    path.write_text(metrics_config(next_reply="1h"))
    stub = stub_factory(path)
    t0 = datetime.now(UTC) - timedelta(hours=3)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[
                reply("RE", CUSTOMER, t0 + timedelta(minutes=1), t0, pb.TICKET_STATUS_OPEN),
                reply("RE", AGENT, t0 + timedelta(minutes=20), t0),
                reply("RE", CUSTOMER, t0 + timedelta(minutes=30), t0),
            ]
        )
    )
    staged = path.with_name(".sla.yaml.tmp")
    staged.write_text(metrics_config(next_reply="2h"))
    os.replace(staged, path)

    def targets() -> list[tuple[Any, ...]]:
        return [(r[1], r[2]) for r in stored_cycles(database_url, "RE") if r[0] == "next_reply"]

    wait_for(lambda: targets() == [(1, 7200.0), (2, 7200.0)], 15, "cycles recomputed")
    full = stub.GetTicket(pb.GetTicketRequest(ticket_id="RE", view=pb.TICKET_VIEW_FULL)).ticket
    second = full.clocks[1]
    assert (second.metric, second.cycle) == ("next_reply", 2)
    assert second.due_at.ToDatetime(UTC) == t0 + timedelta(minutes=30, hours=2)


# -- against the reference model ----------------------------------------------------------------

EXAMPLE_TEXT = (ROOT / "examples" / "zendesk-like.yaml").read_text()
EXAMPLE: SlaConfig = parse_config(EXAMPLE_TEXT)
MODEL_CALENDARS = {"gold": TWENTY_FOUR_SEVEN, "silver": emea_office()}
STATUS_TO_PB = {
    "open": pb.TICKET_STATUS_OPEN,
    "in_progress": pb.TICKET_STATUS_IN_PROGRESS,
    "on_hold": pb.TICKET_STATUS_ON_HOLD,
    "resolved": pb.TICKET_STATUS_RESOLVED,
    "closed": pb.TICKET_STATUS_CLOSED,
}
ACTIVITY_TO_PB = {
    "none": pb.TICKET_ACTIVITY_UNSPECIFIED,
    "agent_reply": pb.TICKET_ACTIVITY_AGENT_REPLY,
    "customer_reply": pb.TICKET_ACTIVITY_CUSTOMER_REPLY,
    "internal_note": pb.TICKET_ACTIVITY_INTERNAL_NOTE,
}


def _model_metric(name: str) -> tuple[ref.Metric, ref.Ladder]:
    d = EXAMPLE.metric(name)
    metric = ref.Metric(
        d.name,
        d.start.names,
        d.stop.names,
        tuple(f"status:{s.value}" for s in sorted(d.pause)),
        d.cycles.value,
        None if d.cycles is Cycles.EACH_START else d.resume.names,
    )
    ladder = EXAMPLE.ladder_for(name)
    steps = tuple(ref.Step(s.at_percent, s.level, s.kind.value) for s in ladder.steps)  # type: ignore[arg-type]
    return metric, ref.Ladder(steps)


def _pb_events(tid: str, tier: str, history: History) -> list[list[pb.TicketEvent]]:
    """The history's batches as the API takes them: an event with neither status nor activity
    (a field update) names the status in force before it, as a client would send it."""
    status_at: dict[datetime, str] = {}
    status = "open"
    for e in history.events:
        if e.status is not None:
            status = e.status
        status_at[e.at] = status
    batches = []
    for batch in history.batches:
        out = []
        for e in batch:
            given = e.status
            if given is None and e.activity == "none":
                given = status_at[e.at]
            out.append(
                pb.TicketEvent(
                    ticket_id=tid,
                    priority="high",
                    customer_tier=tier,
                    status=pb.TICKET_STATUS_UNSPECIFIED if given is None else STATUS_TO_PB[given],
                    activity=ACTIVITY_TO_PB[e.activity],  # type: ignore[arg-type]
                    created_at=ts(history.created_at),
                    updated_at=ts(e.at),
                )
            )
        batches.append(out)
    return batches


def _expected(history: History, tier: str, now: datetime) -> list[ref.Cycle]:
    targets = EXAMPLE.targets("high", tier)
    assert targets is not None
    out: list[ref.Cycle] = []
    for d in EXAMPLE.metrics:
        metric, ladder = _model_metric(d.name)
        out += ref.clocks(
            history.created_at,
            history.events,
            [metric],
            dict(targets.seconds),
            MODEL_CALENDARS[tier],
            now,
            ladder,
        )
    return out


_STATE = {
    "ok": pb.SLA_STATE_OK,
    "warning": pb.SLA_STATE_WARNING,
    "breached": pb.SLA_STATE_BREACHED,
    "met": pb.SLA_STATE_MET,
}


def test_get_ticket_clocks_agree_with_the_reference_model(
    database_url: str, tmp_path: Path
) -> None:
    """36 random histories with replies, holds, reopens and repeats, on the example config
    (24x7 gold, business-hours silver), their batches interleaved across IngestTickets calls:
    GetTicket's full view gives each ticket every cycle the model gives, with its state, mode,
    elapsed time and due time, and the basic view the model's current cycles."""
    path = tmp_path / "sla.yaml"
    path.write_text(EXAMPLE_TEXT)
    rng = random.Random(20261204)
    cases = []
    for i in range(36):
        history = random_history(rng, max_events=14)
        if history.events:
            cases.append((f"REF-{i}", rng.choice(["gold", "silver"]), history))
    now = max(h.now for _, _, h in cases)
    with clocked_service(database_url, path, now) as svc:
        pending = [_pb_events(tid, tier, h) for tid, tier, h in cases]
        while any(pending):  # one batch of each history per call, in turn
            call = [e for batches in pending if batches for e in batches.pop(0)]
            svc.stub.IngestTickets(pb.IngestTicketsRequest(events=call))
        for tid, tier, history in cases:
            want = _expected(history, tier, now)
            full = svc.stub.GetTicket(pb.GetTicketRequest(ticket_id=tid, view=pb.TICKET_VIEW_FULL))
            got = sorted(full.ticket.clocks, key=lambda c: (c.metric, c.cycle))
            want.sort(key=lambda c: (c.metric, c.cycle))
            where = f"{tid} ({tier}) {history}"
            assert [(c.metric, c.cycle) for c in got] == [(c.metric, c.cycle) for c in want], where
            for g, w in zip(got, want, strict=True):
                at = f"{w.metric}#{w.cycle} of {where}"
                assert g.state == _STATE[w.state], at
                assert g.stopped == (w.mode == "stopped") and g.paused == (w.mode == "paused"), at
                elapsed = g.elapsed.seconds + g.elapsed.nanos / 1e9
                assert abs(elapsed - w.elapsed_seconds) < 1e-3, at
                if w.mode == "running":
                    assert g.due_at.ToDatetime(UTC) == w.due_at, at
                else:
                    assert not g.HasField("due_at"), at
            basic = svc.stub.GetTicket(pb.GetTicketRequest(ticket_id=tid)).ticket
            assert sorted((c.metric, c.cycle) for c in basic.clocks) == sorted(
                (c.metric, c.cycle) for c in ref.current_cycles(want)
            ), where
