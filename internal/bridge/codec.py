"""The bridge's JSON: protobuf messages to the documented WebSocket and /api shapes.

Enums become their lower-case short names ("breach", "response", "warning"), timestamps RFC 3339
strings in UTC, durations seconds (float). docs/realtime.md documents every message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from slawatch.v1 import ticket_service_pb2 as pb

Json = dict[str, Any]


def _enum(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower()


def _time(ts: Timestamp) -> str:
    return ts.ToJsonString()


def _seconds(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def alert(msg: pb.Alert) -> Json:
    return {
        "alert_id": msg.alert_id,
        "ticket_id": msg.ticket_id,
        "clock": _enum(pb.ClockKind.Name(msg.clock), "CLOCK_KIND_"),
        "kind": _enum(pb.AlertKind.Name(msg.kind), "ALERT_KIND_"),
        "escalation_level": msg.escalation_level,
        "due_at": _time(msg.due_at) if msg.HasField("due_at") else None,
        "created_at": _time(msg.created_at),
        "priority": msg.priority,
        "customer_tier": msg.customer_tier,
        "policy_version": msg.policy_version,
        # The metric's name ("next_reply") and its 1-based cycle; `clock` above is the contract's
        # ClockKind, "unspecified" for a metric other than response and resolution.
        "metric": msg.metric,
        "cycle": msg.cycle,
        "repeat": msg.repeat,
        "acknowledged_at": _time(msg.acknowledged_at) if msg.HasField("acknowledged_at") else None,
        "acknowledged_by": msg.acknowledged_by or None,
        "ack_note": msg.ack_note or None,
    }


def _clock(msg: pb.SlaClock) -> Json:
    return {
        "state": _enum(pb.SlaState.Name(msg.state), "SLA_STATE_"),
        "target_seconds": _seconds(msg.target),
        "elapsed_seconds": _seconds(msg.elapsed),
        "remaining_seconds": _seconds(msg.remaining),
        "due_at": _time(msg.due_at) if msg.HasField("due_at") else None,
        "paused": msg.paused,
        "stopped": msg.stopped,
    }


# The Ticket fields that hold a clock, as in part one. Every clock of every metric is in the
# "clocks" list, with its metric and cycle, so that the page reads them without knowing names.
_CLOCK_FIELDS = ("response", "resolution")


def ticket(msg: pb.Ticket) -> Json:
    clocks = {name: _clock(getattr(msg, name)) for name in _CLOCK_FIELDS}
    return {
        "ticket_id": msg.ticket_id,
        "priority": msg.priority,
        "customer_tier": msg.customer_tier,
        "status": _enum(pb.TicketStatus.Name(msg.status), "TICKET_STATUS_"),
        "sla_state": _enum(pb.SlaState.Name(msg.sla_state), "SLA_STATE_"),
        "escalation_level": msg.escalation_level,
        **clocks,
        "clocks": _clocks(msg, clocks),
    }


def _clocks(msg: pb.Ticket, fields: dict[str, Json]) -> list[Json]:
    """Ticket.clocks (on the dashboard, the current cycle of each metric), each with its metric
    and cycle; a Ticket without that list (from a server before metrics) by its two fields."""
    if msg.clocks:
        return [{"metric": c.metric, "cycle": c.cycle, **_clock(c)} for c in msg.clocks]
    return [
        {"metric": name, "cycle": getattr(msg, name).cycle or 1, **clock}
        for name, clock in fields.items()
        if msg.HasField(name)  # type: ignore[arg-type]
    ]


def dashboard(msg: pb.GetDashboardResponse) -> Json:
    counts = {"ok": 0, "warning": 0, "breached": 0, "met": 0}
    for c in msg.counts:
        counts[_enum(pb.SlaState.Name(c.state), "SLA_STATE_")] = c.count
    return {
        "counts": counts,
        "tickets": [ticket(t) for t in msg.tickets],
        "next_page_token": msg.next_page_token,
    }


def state_from_name(name: str) -> pb.SlaState.ValueType:
    """ "breached" -> SLA_STATE_BREACHED; ValueError for an unknown name."""
    return pb.SlaState.Value("SLA_STATE_" + name.upper())


def status_from_name(name: str) -> pb.TicketStatus.ValueType:
    return pb.TicketStatus.Value("TICKET_STATUS_" + name.upper())


def frame(message: Json) -> bytes:
    """One WebSocket text frame's payload, encoded once and shared by every client."""
    return json.dumps(message, separators=(",", ":")).encode()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
