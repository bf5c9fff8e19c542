"""Validation of an IngestTickets batch as a whole: every bad field is reported, by path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf.timestamp_pb2 import Timestamp

from internal.config.sla_config import SlaConfig
from internal.sla.model import Activity as SlaActivity
from internal.sla.model import Status
from internal.sla.policy import Facts
from internal.sla.report import Interval, count_windows
from internal.sla.ticket_sla import Event
from internal.usecase.ingest import Activity, EventDetails, describe
from slawatch.v1 import ticket_service_pb2 as pb

MAX_TICKET_ID = 128
MAX_FUTURE = timedelta(minutes=5)
# Timestamps before 2000 are refused: no real ticket is that old, and calendar arithmetic over
# centuries would let one event cost seconds of CPU.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_MIN_SECONDS = int(EARLIEST.timestamp())
_MAX_SECONDS = int(datetime(9999, 1, 1, tzinfo=UTC).timestamp())

STATUS_FROM_PB = {
    pb.TICKET_STATUS_OPEN: Status.OPEN,
    pb.TICKET_STATUS_IN_PROGRESS: Status.IN_PROGRESS,
    pb.TICKET_STATUS_ON_HOLD: Status.ON_HOLD,
    pb.TICKET_STATUS_RESOLVED: Status.RESOLVED,
    pb.TICKET_STATUS_CLOSED: Status.CLOSED,
}

ACTIVITY_FROM_PB: dict[int, Activity | None] = {
    pb.TICKET_ACTIVITY_UNSPECIFIED: None,
    pb.TICKET_ACTIVITY_AGENT_REPLY: Activity.AGENT_REPLY,
    pb.TICKET_ACTIVITY_CUSTOMER_REPLY: Activity.CUSTOMER_REPLY,
    pb.TICKET_ACTIVITY_INTERNAL_NOTE: Activity.INTERNAL_NOTE,
}
# Limits of the optional fields of an event (README, "Ingest validation").
MAX_GROUP = 128  # group and assignee
MAX_TAGS = 32
MAX_TAG = 64
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 256
# The status of an event that leaves it unchanged (an event with an activity and no status):
# the ingest takes it from the ticket's event before it in event time.
UNCHANGED = cast(Status, None)


def _activity(details: EventDetails | None) -> SlaActivity:
    """The event's activity as the metrics see it (a field update: NONE)."""
    if details is None or details.activity is None:
        return SlaActivity.NONE
    return SlaActivity(details.activity.value)


@dataclass(frozen=True)
class Violation:
    field: str
    description: str


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(ts: Timestamp) -> datetime:
    # Microseconds: what PostgreSQL keeps, so a retried event compares equal to the stored one.
    # One timedelta from the epoch: the same UTC instant as datetime.fromtimestamp(seconds, UTC)
    # plus the microseconds (both exact), for half the cost, twice per ingested event.
    return _EPOCH + timedelta(0, ts.seconds, ts.nanos // 1000)


def _timestamp(
    event: pb.TicketEvent, name: str, path: str, out: list[Violation]
) -> datetime | None:
    if not event.HasField(name):  # type: ignore[arg-type]
        out.append(Violation(f"{path}.{name}", "required"))
        return None
    ts: Timestamp = getattr(event, name)
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS) or not (0 <= ts.nanos < 1_000_000_000):
        out.append(Violation(f"{path}.{name}", "out of range (2000-01-01 or later)"))
        return None
    return to_datetime(ts)


def check_text(value: str, field: str, out: list[Violation], max_len: int = MAX_TICKET_ID) -> bool:
    """Every string of every request (ids, priorities, tiers, filter values, the contents of page
    tokens): required, bounded, and printable: no NUL (PostgreSQL text cannot hold it), no lone
    surrogate (not encodable), no control characters (always a client bug). True when it added
    a violation."""
    if not value:
        out.append(Violation(field, "required"))
    elif len(value) > max_len:
        out.append(Violation(field, f"longer than {max_len} characters"))
    elif not value.isprintable():
        out.append(Violation(field, "contains control characters"))
    else:
        return False
    return True


MAX_FILTER_VALUES = 100
MAX_ACK_NOTE = 500


def validate_acknowledge(request: pb.AcknowledgeAlertRequest) -> list[Violation]:
    out: list[Violation] = []
    if request.alert_id <= 0:
        out.append(Violation("alert_id", "required: the alert_id of a stored alert (> 0)"))
    if len(request.note) > MAX_ACK_NOTE:
        out.append(Violation("note", f"longer than {MAX_ACK_NOTE} characters"))
    elif request.note and not request.note.isprintable():
        out.append(Violation("note", "contains control characters"))
    return out


def check_filter(values: Sequence[str], field: str, out: list[Violation]) -> None:
    if len(values) > MAX_FILTER_VALUES:
        out.append(Violation(field, f"at most {MAX_FILTER_VALUES} values"))
        return
    for i, value in enumerate(values):
        check_text(value, f"{field}[{i}]", out)


def _optional_text(value: str, max_len: int) -> bool:
    """An optional string field passes: empty (not given), or bounded and printable."""
    return not value or (len(value) <= max_len and value.isprintable())


def _details(e: pb.TicketEvent, activity: Activity | None) -> EventDetails | None:
    """The optional fields of an event that carries some, or None if one of them is refused
    (`_check_details` then says which)."""
    group, assignee, tags, attributes = e.group, e.assignee, list(e.tags), dict(e.attributes)
    if not (
        _optional_text(group, MAX_GROUP)
        and _optional_text(assignee, MAX_GROUP)
        and len(tags) <= MAX_TAGS
        and all(tag and len(tag) <= MAX_TAG and tag.isprintable() for tag in tags)
        and len(attributes) <= MAX_ATTRIBUTES
        and all(
            key
            and len(key) <= MAX_ATTRIBUTE_KEY
            and key.isprintable()
            and _optional_text(value, MAX_ATTRIBUTE_VALUE)
            for key, value in attributes.items()
        )
    ):
        return None
    return EventDetails(activity, group or None, assignee or None, tags or None, attributes or None)


def _check_details(e: pb.TicketEvent, path: str, out: list[Violation]) -> None:
    """Every violation of the optional fields of one event, each named by its path."""
    if e.activity not in ACTIVITY_FROM_PB:
        out.append(Violation(f"{path}.activity", "unknown TicketActivity value"))
    for name in ("group", "assignee"):
        value = getattr(e, name)
        if value:
            check_text(value, f"{path}.{name}", out, MAX_GROUP)
    if len(e.tags) > MAX_TAGS:
        out.append(Violation(f"{path}.tags", f"at most {MAX_TAGS} tags"))
    else:
        for i, tag in enumerate(e.tags):
            check_text(tag, f"{path}.tags[{i}]", out, MAX_TAG)
    if len(e.attributes) > MAX_ATTRIBUTES:
        out.append(Violation(f"{path}.attributes", f"at most {MAX_ATTRIBUTES} attributes"))
        return
    for key, value in sorted(e.attributes.items()):
        # A refused key is not echoed into the path: the entry is named by the map.
        if not key:
            out.append(Violation(f"{path}.attributes", "a key is empty"))
        elif len(key) > MAX_ATTRIBUTE_KEY:
            out.append(
                Violation(
                    f"{path}.attributes", f"a key is longer than {MAX_ATTRIBUTE_KEY} characters"
                )
            )
        elif not key.isprintable():
            out.append(Violation(f"{path}.attributes", "a key contains control characters"))
        elif value:
            # The key is printable and short: quoted as JSON, it names the entry unambiguously.
            check_text(value, f"{path}.attributes[{json.dumps(key)}]", out, MAX_ATTRIBUTE_VALUE)


Accepted = tuple[Event, EventDetails | None]


def _may_match(config: SlaConfig, priority: str, tier: str, details: EventDetails | None) -> bool:
    if details is None:
        return config.may_match(priority, tier)
    return config.may_match(
        priority,
        tier,
        details.group or "",
        details.assignee or "",
        details.tags or (),
        details.attributes,
    )


def no_policy_matches(priority: str, tier: str, details: EventDetails | None) -> str:
    """The violation's text for an event no policy can match: the fields it gives."""
    if details is None:
        return describe(Facts(priority, tier))
    facts = Facts(
        priority,
        tier,
        details.group or "",
        details.assignee or "",
        frozenset(details.tags or ()),
        details.attributes or {},
    )
    return describe(facts)


def _accept(e: pb.TicketEvent, config: SlaConfig, latest: datetime) -> Accepted | None:
    """The event (and its optional fields, if it carries any) if it passes every check of
    `_check`, else None. Nearly every event does, and this way of asking builds no field paths,
    messages or lists; `_check` then says what is wrong. `latest` is the latest time accepted
    (now plus MAX_FUTURE)."""
    # Each read of a protobuf string field builds a new str: read each once.
    ticket_id = e.ticket_id
    priority = e.priority
    tier = e.customer_tier
    status = STATUS_FROM_PB.get(e.status)
    details = None
    # A field update without group, assignee, tags or attributes (the common event) carries no
    # details: five cheap reads, and nothing built.
    if e.activity or e.group or e.assignee or e.tags or e.attributes:
        if e.activity not in ACTIVITY_FROM_PB:
            return None
        activity = ACTIVITY_FROM_PB[e.activity]
        details = _details(e, activity)
        if details is None:
            return None
        if status is None and activity is not None and e.status == pb.TICKET_STATUS_UNSPECIFIED:
            status = UNCHANGED
        elif status is None:
            return None
    elif status is None:
        return None
    if config.is_map_form:
        if config.targets(priority, tier) is None:  # None too when the priority is unknown
            return None
    elif not _may_match(config, priority, tier, details):
        return None
    if (
        not ticket_id
        or len(ticket_id) > MAX_TICKET_ID
        or not ticket_id.isprintable()
        or not e.HasField("created_at")
        or not e.HasField("updated_at")
    ):
        return None
    created_ts, updated_ts = e.created_at, e.updated_at
    if not (
        _MIN_SECONDS <= created_ts.seconds <= _MAX_SECONDS
        and 0 <= created_ts.nanos < 1_000_000_000
        and _MIN_SECONDS <= updated_ts.seconds <= _MAX_SECONDS
        and 0 <= updated_ts.nanos < 1_000_000_000
    ):
        return None
    created, updated = to_datetime(created_ts), to_datetime(updated_ts)
    if updated < created or updated > latest or created > latest:
        return None
    return Event(ticket_id, priority, tier, status, created, updated, _activity(details)), details


def _check(
    e: pb.TicketEvent, path: str, config: SlaConfig, now: datetime
) -> tuple[Accepted | None, list[Violation]]:
    """Every violation of one event, each named by its path under `path`; the event if none."""
    found: list[Violation] = []
    check_text(e.ticket_id, f"{path}.ticket_id", found)
    if not config.is_map_form:
        # Checked like every string field; whether a policy matches, once the rest passes.
        check_text(e.priority, f"{path}.priority", found)
        check_text(e.customer_tier, f"{path}.customer_tier", found)
    elif e.priority not in config.policies:
        # Checked like every string field first; a value that passes is named unknown.
        if not check_text(e.priority, f"{path}.priority", found):
            known = ", ".join(sorted(config.policies))
            found.append(Violation(f"{path}.priority", f"unknown priority (known: {known})"))
    elif config.targets(e.priority, e.customer_tier) is None and not check_text(
        e.customer_tier, f"{path}.customer_tier", found
    ):
        known = ", ".join(sorted(config.policies[e.priority]))
        found.append(
            Violation(
                f"{path}.customer_tier",
                f"no policy for tier under priority {e.priority!r} (known: {known})",
            )
        )
    status = STATUS_FROM_PB.get(e.status)
    # With an activity, an unspecified status means unchanged; an unknown activity is named
    # as such, not as a missing status.
    with_activity = e.activity != pb.TICKET_ACTIVITY_UNSPECIFIED
    if status is None and not (with_activity and e.status == pb.TICKET_STATUS_UNSPECIFIED):
        found.append(Violation(f"{path}.status", "required: one of the TicketStatus values"))
    _check_details(e, path, found)
    created = _timestamp(e, "created_at", path, found)
    updated = _timestamp(e, "updated_at", path, found)
    if created and updated:
        if updated < created:
            found.append(Violation(f"{path}.updated_at", "earlier than created_at"))
        if updated > now + MAX_FUTURE:
            found.append(Violation(f"{path}.updated_at", "more than 5 minutes in the future"))
    if created and created > now + MAX_FUTURE:
        found.append(Violation(f"{path}.created_at", "more than 5 minutes in the future"))
    if found:
        return None, found
    assert created is not None and updated is not None
    details = None
    if e.activity or e.group or e.assignee or e.tags or e.attributes:
        details = _details(e, ACTIVITY_FROM_PB[e.activity])
        assert details is not None, "_check_details passed what _details refuses"
    if not config.is_map_form and not _may_match(config, e.priority, e.customer_tier, details):
        return None, [Violation(path, no_policy_matches(e.priority, e.customer_tier, details))]
    event = Event(
        e.ticket_id,
        e.priority,
        e.customer_tier,
        UNCHANGED if status is None else status,
        created,
        updated,
        _activity(details),
    )
    return (event, details), found


def validate_ingest(
    request: pb.IngestTicketsRequest, config: SlaConfig, now: datetime, max_events: int
) -> tuple[list[Event], dict[int, EventDetails], list[Violation]]:
    """The events, the optional fields of those that carry any (by index into the events), or
    every violation found; a batch with any violation is stored not at all. An event that leaves
    its status unchanged has the status None (UNCHANGED)."""
    if not request.events:
        return [], {}, [Violation("events", "at least one event is required")]
    if len(request.events) > max_events:
        return [], {}, [Violation("events", f"at most {max_events} events per batch")]
    events: list[Event] = []
    details: dict[int, EventDetails] = {}
    violations: list[Violation] = []
    latest = now + MAX_FUTURE
    for i, e in enumerate(request.events):
        accepted = _accept(e, config, latest)
        if accepted is None:
            accepted, found = _check(e, f"events[{i}]", config, now)
            violations.extend(found)
        if accepted is not None:
            if accepted[1] is not None:
                details[len(events)] = accepted[1]
            events.append(accepted[0])
    return events, details, violations


def validate_batch(
    request: pb.IngestTicketsRequest, config: SlaConfig, now: datetime, max_events: int
) -> tuple[list[Event], list[Violation]]:
    """The events of `validate_ingest` without their optional fields."""
    events, _, violations = validate_ingest(request, config, now, max_events)
    return events, violations


REPORT_INTERVALS = {
    pb.REPORT_INTERVAL_HOUR: "hour",
    pb.REPORT_INTERVAL_DAY: "day",
    pb.REPORT_INTERVAL_WEEK: "week",
    pb.REPORT_INTERVAL_MONTH: "month",
}
REPORT_DIMENSIONS = {
    pb.REPORT_DIMENSION_METRIC: "metric",
    pb.REPORT_DIMENSION_PRIORITY: "priority",
    pb.REPORT_DIMENSION_CUSTOMER_TIER: "customer_tier",
}
MAX_TIME_ZONE = 64


@dataclass(frozen=True)
class ReportRequest:
    start: datetime
    end: datetime
    interval: str
    zone: ZoneInfo
    group_by: tuple[str, ...]
    filters: dict[str, list[str]]


def validate_report(
    request: pb.GetSlaReportRequest, max_intervals: int
) -> tuple[list[Violation], ReportRequest | None]:
    """Every bad field of a GetSlaReport request; the parsed request when there is none."""
    out: list[Violation] = []
    start = end = None
    for name in ("start", "end"):
        if not request.HasField(name):
            out.append(Violation(name, "required"))
            continue
        value: Timestamp = getattr(request, name)
        if not _MIN_SECONDS <= value.seconds < _MAX_SECONDS or not 0 <= value.nanos < 10**9:
            out.append(Violation(name, "must be between 2000-01-01 and 9999-01-01"))
        elif name == "start":
            start = value.ToDatetime(UTC)
        else:
            end = value.ToDatetime(UTC)
    if start is not None and end is not None and end <= start:
        out.append(Violation("end", "must be after start"))
    interval = REPORT_INTERVALS.get(request.interval)
    if interval is None:
        out.append(Violation("interval", "required: HOUR, DAY, WEEK or MONTH"))
    zone = None
    name = request.time_zone or "UTC"
    if len(name) > MAX_TIME_ZONE or not name.isprintable() or name.startswith(("/", ".")):
        out.append(Violation("time_zone", "not an IANA time zone name"))
    else:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(Violation("time_zone", f"unknown time zone {name!r}"))
    group_by: list[str] = []
    for i, d in enumerate(request.group_by):
        dim = REPORT_DIMENSIONS.get(d)
        if dim is None:
            out.append(Violation(f"group_by[{i}]", "unknown dimension"))
        elif dim in group_by:
            out.append(Violation(f"group_by[{i}]", f"{dim} named twice"))
        else:
            group_by.append(dim)
    check_filter(request.metrics, "metrics", out)
    check_filter(request.priorities, "priorities", out)
    check_filter(request.customer_tiers, "customer_tiers", out)
    if out or start is None or end is None or interval is None or zone is None:
        return out, None
    if count_windows(start, end, Interval(interval), zone, max_intervals) > max_intervals:
        out.append(Violation("end", f"the range spans more than {max_intervals} {interval}s"))
        return out, None
    filters = {
        "metric": sorted(set(request.metrics)),
        "priority": sorted(set(request.priorities)),
        "customer_tier": sorted(set(request.customer_tiers)),
    }
    return out, ReportRequest(start, end, interval, zone, tuple(group_by), filters)
