"""Validation of the optional fields of an event (activity, group, assignee, tags, attributes):
each bad one is named by its path, and an activity may leave the status unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.config.sla_config import parse_config
from internal.rpc.validation import Violation, validate_batch, validate_ingest
from internal.sla.model import Status
from internal.sla.ticket_sla import Event
from internal.store.event_details import Activity, EventDetails
from slawatch.v1 import ticket_service_pb2 as pb
from support.configs import config_text

CONFIG = parse_config(config_text())
NOW = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(hours=2)
UPDATED = NOW - timedelta(hours=1)


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
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


def validate(
    *events: pb.TicketEvent,
) -> tuple[list[Event], dict[int, EventDetails], list[Violation]]:
    return validate_ingest(pb.IngestTicketsRequest(events=events), CONFIG, NOW, 1000)


def test_an_activity_without_a_status_leaves_the_status_unchanged() -> None:
    """An event with an activity and no status is accepted with status None (unchanged) and its
    fields as details; the same event without an activity still requires a status."""
    reply = event(
        status=pb.TICKET_STATUS_UNSPECIFIED,
        activity=pb.TICKET_ACTIVITY_CUSTOMER_REPLY,
        group="billing",
        tags=["vip", "de"],
        attributes={"channel": "email"},
    )
    events, details, violations = validate(reply)
    assert violations == []
    assert events[0].status is None
    assert details == {
        0: EventDetails(
            Activity.CUSTOMER_REPLY, "billing", None, ["vip", "de"], {"channel": "email"}
        )
    }
    _, _, violations = validate(event(status=pb.TICKET_STATUS_UNSPECIFIED, group="billing"))
    assert [(v.field, v.description) for v in violations] == [
        ("events[0].status", "required: one of the TicketStatus values")
    ]


def test_an_event_may_carry_a_status_and_an_activity() -> None:
    """Both are kept: the status for the clocks, the activity for the history."""
    events, details, violations = validate(
        event(status=pb.TICKET_STATUS_RESOLVED, activity=pb.TICKET_ACTIVITY_AGENT_REPLY)
    )
    assert violations == []
    assert events[0].status is Status.RESOLVED
    assert details == {0: EventDetails(Activity.AGENT_REPLY)}


def test_a_plain_event_carries_no_details() -> None:
    """The common event (no optional field) builds no details; validate_batch, part one's
    function, returns the same events."""
    request = pb.IngestTicketsRequest(events=[event(), event(ticket_id="T-2", group="ops")])
    events, details, violations = validate_ingest(request, CONFIG, NOW, 1000)
    assert violations == [] and list(details) == [1]
    assert validate_batch(request, CONFIG, NOW, 1000) == (events, [])


LONG = "x" * 129
CASES: list[tuple[Callable[[], pb.TicketEvent], list[tuple[str, str]]]] = [
    (lambda: event(activity=99), [("activity", "unknown TicketActivity value")]),
    # An unknown activity is named as such, not as a missing status.
    (
        lambda: event(status=pb.TICKET_STATUS_UNSPECIFIED, activity=7),
        [("activity", "unknown TicketActivity value")],
    ),
    # An unknown status stays refused with an activity.
    (
        lambda: event(status=42, activity=pb.TICKET_ACTIVITY_AGENT_REPLY),
        [("status", "required: one of the TicketStatus values")],
    ),
    (lambda: event(group="g" * 128, assignee="a" * 128), []),
    (lambda: event(group=LONG), [("group", "longer than 128 characters")]),
    (lambda: event(group="a\nb"), [("group", "contains control characters")]),
    (lambda: event(assignee=LONG), [("assignee", "longer than 128 characters")]),
    (lambda: event(assignee="a\x00b"), [("assignee", "contains control characters")]),
    (lambda: event(tags=["t"] * 32), []),
    (lambda: event(tags=["t"] * 33), [("tags", "at most 32 tags")]),
    (
        lambda: event(tags=["ok", "", "y" * 65, "a\x7fb", "z" * 64]),
        [
            ("tags[1]", "required"),
            ("tags[2]", "longer than 64 characters"),
            ("tags[3]", "contains control characters"),
        ],
    ),
    (lambda: event(attributes={f"k{i}": "v" for i in range(32)}), []),
    (
        lambda: event(attributes={f"k{i}": "v" for i in range(33)}),
        [("attributes", "at most 32 attributes")],
    ),
    (lambda: event(attributes={"empty": "", "k" * 64: "v" * 256}), []),
    (lambda: event(attributes={"": "v"}), [("attributes", "a key is empty")]),
    (
        lambda: event(attributes={"k" * 65: "v"}),
        [("attributes", "a key is longer than 64 characters")],
    ),
    (
        lambda: event(attributes={"a\tb": "v"}),
        [("attributes", "a key contains control characters")],
    ),
    (
        lambda: event(attributes={"lang": "v" * 257}),
        [('attributes["lang"]', "longer than 256 characters")],
    ),
    (
        lambda: event(attributes={'say "hi"': "a\rb"}),
        [('attributes["say \\"hi\\""]', "contains control characters")],
    ),
    (
        lambda: event(
            status=0, activity=5, group=LONG, tags=["", "ok"], attributes={"k": "v" * 300}
        ),
        [
            ("activity", "unknown TicketActivity value"),
            ("group", "longer than 128 characters"),
            ("tags[0]", "required"),
            ('attributes["k"]', "longer than 256 characters"),
        ],
    ),
]


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_each_bad_optional_field_is_named_by_its_path(
    make: Callable[[], pb.TicketEvent], expected: list[tuple[str, str]]
) -> None:
    """Every refused optional field is one violation at its path under events[i]; a field at
    its limit is accepted."""
    good = event(ticket_id="T-0")
    events, _, violations = validate(good, make(), good)
    assert [(v.field, v.description) for v in violations] == [
        (f"events[1].{field}", description) for field, description in expected
    ]
    assert len(events) == (3 if not expected else 2)


def test_bad_fields_of_several_events_are_all_named() -> None:
    """One batch, bad fields in two events: both named, with their event's index."""
    _, _, violations = validate(
        event(ticket_id="T-0"),
        event(ticket_id="T-1", tags=["a", "b", "c" * 65]),
        event(ticket_id="T-2"),
        event(ticket_id="T-3", attributes={"x": "\x01"}, assignee=LONG),
    )
    assert [v.field for v in violations] == [
        "events[1].tags[2]",
        "events[3].assignee",
        'events[3].attributes["x"]',
    ]


_text = st.one_of(
    st.just(""),
    st.text(max_size=4),
    st.text(alphabet="ab\x00\n", min_size=1, max_size=3),
    st.integers(60, 260).map(lambda n: "x" * n),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    status=st.sampled_from([0, 1, 4, 42]),
    activity=st.sampled_from([0, 1, 2, 3, 9]),
    group=_text,
    assignee=_text,
    tags=st.lists(_text, max_size=34),
    attributes=st.dictionaries(_text, _text, max_size=34),
)
def test_the_fast_path_and_the_checks_agree(
    status: int,
    activity: int,
    group: str,
    assignee: str,
    tags: list[str],
    attributes: dict[str, str],
) -> None:
    """An event is accepted exactly when no violation is named for it, whichever of the two
    checks (the fast one for valid events, the naming one) decides, and an accepted event keeps
    the fields it was given."""
    e = event(
        status=status,
        activity=activity,
        group=group,
        assignee=assignee,
        tags=tags,
        attributes=attributes,
    )
    events, details, violations = validate(e)
    assert (events == []) == bool(violations)
    if events:
        d = details.get(0, EventDetails())
        assert (d.group or "", d.assignee or "") == (group, assignee)
        assert (d.tags or [], d.attributes or {}) == (tags, attributes)
        assert events[0].status is (None if status == 0 else events[0].status)
