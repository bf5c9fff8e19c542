"""Building TicketEvent messages with explicit timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from slawatch.v1 import ticket_service_pb2 as pb

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def event(
    ticket_id: str,
    status: int = pb.TICKET_STATUS_OPEN,
    *,
    created: datetime = T0,
    updated: datetime | None = None,
    priority: str = "high",
    tier: str = "gold",
) -> pb.TicketEvent:
    return pb.TicketEvent(
        ticket_id=ticket_id,
        priority=priority,
        customer_tier=tier,
        status=status,  # type: ignore[arg-type]
        created_at=ts(created),
        updated_at=ts(updated or created),
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
