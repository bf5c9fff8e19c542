"""Clocks as a collection in the pure parts: any number of clock definitions give one clock
each, the ticket's instants cover all of them, and each clock is named in words by its metric."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.bridge import codec
from internal.notify.slack import AlertMessage, build_payload, metric_words
from internal.sla.calendar import ALWAYS_OPEN
from internal.sla.clock_definition import ClockDefinition
from internal.sla.ladder import Ladder, Step
from internal.sla.metric import default_metrics
from internal.sla.model import AlertKind, Mode, Status
from internal.sla.policy import Rules, Targets
from internal.sla.ticket_sla import Event, compute_ticket_sla, history_sla, single_event_sla
from slawatch.v1 import ticket_service_pb2 as pb

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LADDER = Ladder((Step(85, 1, AlertKind.WARNING), Step(100, 2, AlertKind.BREACH)))
TRIAGE = ClockDefinition("triage", frozenset({Status.IN_PROGRESS}), resumes=False, pauses=True)
PAUSE = frozenset({Status.ON_HOLD})
RULES = Rules(LADDER, PAUSE, "v1", (*default_metrics(PAUSE), TRIAGE.as_metric(PAUSE)))
TARGETS = Targets({"response": 900.0, "resolution": 14_400.0, "triage": 300.0}, ALWAYS_OPEN)


def test_every_definition_gives_a_clock_in_order() -> None:
    event = Event("T-1", "high", "gold", Status.ON_HOLD, T0, T0 + timedelta(minutes=2))
    sla = compute_ticket_sla([event], TARGETS, RULES, {("triage", 1): 1})
    assert [c.metric for c in sla.clocks] == ["response", "resolution", "triage"]
    assert sla.clock("triage").mode is Mode.PAUSED
    assert sla.clock("triage").fired_level == 1
    assert sla.clock("response").mode is Mode.STOPPED


def test_the_default_rules_have_the_two_part_one_clocks() -> None:
    rules = Rules(LADDER, frozenset(), "v1")
    assert [d.name for d in rules.metrics] == ["response", "resolution"]


histories = st.lists(
    st.tuples(st.integers(-5, 600), st.sampled_from(Status)), min_size=1, max_size=6
)


@settings(max_examples=300, deadline=None)
@given(histories)
def test_instants_and_fast_path_hold_for_three_clocks(pairs: list[tuple[int, Status]]) -> None:
    """The ticket's instants are those of all its clocks, and the single-event path still gives
    what the general one does when there are more than two."""
    events = [Event("T-1", "high", "gold", s, T0, T0 + timedelta(minutes=at)) for at, s in pairs]
    sla = compute_ticket_sla(events, TARGETS, RULES, {})
    clocks = sla.clocks
    assert len(clocks) == 3
    assert sla.breach_at == min((c.due_at for c in clocks if c.due_at is not None), default=None)
    assert sla.active == any(c.mode is not Mode.STOPPED for c in clocks)
    first = events[0]
    assert single_event_sla(first, TARGETS, RULES, {}) == history_sla([first], TARGETS, RULES, {})


def test_metric_names_in_words() -> None:
    assert metric_words("response") == "first response"
    assert metric_words("resolution") == "resolution"
    assert metric_words("next_reply") == "next reply"


def test_the_slack_title_names_a_third_clock_by_its_own_name() -> None:
    """A clock other than the two defaults is not called "resolution" in Slack."""
    due = T0 + timedelta(minutes=5)
    msg = AlertMessage(42, "T-1", "next_reply", "breach", 2, due, "high", "gold", "team")
    header = build_payload(msg, due + timedelta(minutes=1), None)["blocks"][0]["text"]["text"]
    assert "SLA breached: next reply" in header
    assert "resolution" not in str(build_payload(msg, due, None))


def test_the_bridge_lists_every_clock_of_a_ticket_with_its_metric() -> None:
    ticket = pb.Ticket(ticket_id="T-1")
    ticket.response.state = pb.SLA_STATE_MET
    ticket.resolution.state = pb.SLA_STATE_OK
    out = codec.ticket(ticket)
    assert [(c["metric"], c["state"]) for c in out["clocks"]] == [
        ("response", "met"),
        ("resolution", "ok"),
    ]
    assert out["response"]["state"] == "met" and out["resolution"]["state"] == "ok"


def test_the_bridge_lists_a_tickets_clocks_by_metric_with_their_cycle() -> None:
    """A ticket with Ticket.clocks (any metric) is listed from that list, each clock with its
    metric and cycle; an alert's JSON carries its metric and cycle, its `clock` the ClockKind."""
    ticket = pb.Ticket(ticket_id="T-1")
    ticket.clocks.add(metric="next_reply", cycle=3, state=pb.SLA_STATE_WARNING)
    ticket.clocks.add(metric="resolution", cycle=1, state=pb.SLA_STATE_OK)
    out = codec.ticket(ticket)
    assert [(c["metric"], c["cycle"], c["state"]) for c in out["clocks"]] == [
        ("next_reply", 3, "warning"),
        ("resolution", 1, "ok"),
    ]
    alert = codec.alert(pb.Alert(alert_id=7, metric="next_reply", cycle=2))
    assert (alert["metric"], alert["cycle"], alert["clock"]) == ("next_reply", 2, "unspecified")
