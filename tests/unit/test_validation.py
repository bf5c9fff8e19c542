"""Validation of IngestTickets batches: accepted events, every violation by path, and timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.config.sla_config import parse_config
from internal.rpc.validation import Violation, to_datetime, validate_batch
from internal.sla.model import Status
from internal.sla.ticket_sla import Event
from slawatch.v1 import ticket_service_pb2 as pb
from support.configs import config_text

CONFIG = parse_config(config_text())
NOW = datetime(2026, 11, 4, 12, 0, 0, 250_000, tzinfo=UTC)
CREATED = NOW - timedelta(hours=2)
UPDATED = NOW - timedelta(hours=1)
LATEST = NOW + timedelta(minutes=5)


def ts(value: datetime, extra_nanos: int = 0) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    out.nanos += extra_nanos
    return out


def event(**fields: object) -> pb.TicketEvent:
    values: dict[str, object] = {
        "ticket_id": "T-1",
        "priority": "high",
        "customer_tier": "silver",
        "status": pb.TICKET_STATUS_IN_PROGRESS,
        "created_at": ts(CREATED),
        "updated_at": ts(UPDATED),
    }
    values.update(fields)
    return pb.TicketEvent(**values)  # type: ignore[arg-type]


def validate(*events: pb.TicketEvent) -> tuple[list[Event], list[Violation]]:
    return validate_batch(pb.IngestTicketsRequest(events=events), CONFIG, NOW, 1000)


def test_a_valid_event_becomes_an_event_in_utc() -> None:
    events, violations = validate(event(updated_at=ts(UPDATED, extra_nanos=999)))
    assert violations == []
    assert events == [Event("T-1", "high", "silver", Status.IN_PROGRESS, CREATED, UPDATED)]
    assert events[0].created_at.tzinfo is UTC and events[0].updated_at.tzinfo is UTC


def _without(name: str) -> pb.TicketEvent:
    e = event()
    e.ClearField(name)  # type: ignore[arg-type]
    return e


def _seconds(name: str, seconds: int, nanos: int = 0) -> pb.TicketEvent:
    e = event()
    getattr(e, name).seconds = seconds
    getattr(e, name).nanos = nanos
    return e


MIN_SECONDS = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
MAX_SECONDS = int(datetime(9999, 1, 1, tzinfo=UTC).timestamp())
RANGE = "out of range (2000-01-01 or later)"
FUTURE = "more than 5 minutes in the future"

CASES: list[tuple[Callable[[], pb.TicketEvent], list[tuple[str, str]]]] = [
    (lambda: event(ticket_id=""), [("ticket_id", "required")]),
    (lambda: event(ticket_id="x" * 128), []),
    (lambda: event(ticket_id="x" * 129), [("ticket_id", "longer than 128 characters")]),
    (lambda: event(ticket_id="a\tb"), [("ticket_id", "contains control characters")]),
    (
        lambda: event(priority="nope"),
        [("priority", "unknown priority (known: high, low)")],
    ),
    (
        lambda: event(customer_tier="bronze"),
        [("customer_tier", "no policy for tier under priority 'high' (known: gold, silver)")],
    ),
    (lambda: event(status=0), [("status", "required: one of the TicketStatus values")]),
    (lambda: event(status=42), [("status", "required: one of the TicketStatus values")]),
    (lambda: _without("created_at"), [("created_at", "required")]),
    (lambda: _without("updated_at"), [("updated_at", "required")]),
    (lambda: _seconds("created_at", MIN_SECONDS - 1), [("created_at", RANGE)]),
    (lambda: _seconds("created_at", MIN_SECONDS), []),
    (lambda: _seconds("updated_at", MAX_SECONDS + 1), [("updated_at", RANGE)]),
    (lambda: _seconds("updated_at", MAX_SECONDS), [("updated_at", FUTURE)]),
    (lambda: _seconds("created_at", MIN_SECONDS, nanos=-1), [("created_at", RANGE)]),
    (lambda: _seconds("created_at", MIN_SECONDS, nanos=10**9), [("created_at", RANGE)]),
    (lambda: event(updated_at=ts(CREATED)), []),
    (
        lambda: event(updated_at=ts(CREATED - timedelta(microseconds=1))),
        [("updated_at", "earlier than created_at")],
    ),
    # Nanoseconds below a microsecond are dropped before comparing.
    (lambda: event(created_at=ts(UPDATED, extra_nanos=999)), []),
    (lambda: event(updated_at=ts(LATEST, extra_nanos=999)), []),
    (
        lambda: event(updated_at=ts(LATEST + timedelta(microseconds=1))),
        [("updated_at", FUTURE)],
    ),
    (
        lambda: event(
            created_at=ts(LATEST + timedelta(seconds=1)),
            updated_at=ts(LATEST + timedelta(seconds=2)),
        ),
        [("updated_at", FUTURE), ("created_at", FUTURE)],
    ),
    (
        lambda: event(
            ticket_id="", priority="nope", status=0, updated_at=ts(LATEST + timedelta(seconds=1))
        ),
        [
            ("ticket_id", "required"),
            ("priority", "unknown priority (known: high, low)"),
            ("status", "required: one of the TicketStatus values"),
            ("updated_at", FUTURE),
        ],
    ),
]


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_each_violation_is_named_by_its_path(
    make: Callable[[], pb.TicketEvent], expected: list[tuple[str, str]]
) -> None:
    good = event(ticket_id="T-0")
    events, violations = validate(good, make(), good)
    assert [(v.field, v.description) for v in violations] == [
        (f"events[1].{field}", description) for field, description in expected
    ]
    # The valid events are returned either way; the caller refuses a batch with any violation.
    assert len(events) == (3 if not expected else 2)


def test_empty_and_oversized_batches() -> None:
    assert validate() == ([], [Violation("events", "at least one event is required")])
    request = pb.IngestTicketsRequest(events=[event(), event()])
    assert validate_batch(request, CONFIG, NOW, 1) == (
        [],
        [Violation("events", "at most 1 events per batch")],
    )


@settings(max_examples=500, deadline=None)
@given(st.integers(MIN_SECONDS, MAX_SECONDS), st.integers(0, 999_999_999))
def test_timestamps_become_the_utc_instant_to_the_microsecond(seconds: int, nanos: int) -> None:
    value = to_datetime(Timestamp(seconds=seconds, nanos=nanos))
    expected = datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=nanos // 1000)
    assert value == expected and value.tzinfo is UTC
    assert value.utcoffset() == timedelta(0)
