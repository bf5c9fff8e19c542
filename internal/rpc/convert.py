"""Read rows (internal/usecase/queries) to protobuf messages. States and elapsed times are
computed at `now`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from internal.config.sla_config import SlaConfig
from internal.sla.model import ClockKind, Mode, State, Status
from internal.sla.stored_clock import StoredClock
from internal.sla.timeline import Segment, SegmentKind
from internal.usecase.explain import Timelines
from internal.usecase.ingest import Outcome
from internal.usecase.policies import PolicyVersion
from internal.usecase.policy_preview import Preview
from internal.usecase.queries import (
    AlertRow,
    ClockRow,
    HistoryRow,
    NotificationRow,
    TicketFields,
    TicketRow,
)
from slawatch.v1 import ticket_service_pb2 as pb

# The maps below are keyed by StrEnum members, which hash and compare as their values: the text
# the store returns looks them up directly, without building the enum member first (dashboard
# pages convert every clock of every ticket).

STATUS_TO_PB = {
    Status.OPEN: pb.TICKET_STATUS_OPEN,
    Status.IN_PROGRESS: pb.TICKET_STATUS_IN_PROGRESS,
    Status.ON_HOLD: pb.TICKET_STATUS_ON_HOLD,
    Status.RESOLVED: pb.TICKET_STATUS_RESOLVED,
    Status.CLOSED: pb.TICKET_STATUS_CLOSED,
}
STATE_TO_PB = {
    State.OK: pb.SLA_STATE_OK,
    State.WARNING: pb.SLA_STATE_WARNING,
    State.BREACHED: pb.SLA_STATE_BREACHED,
    State.MET: pb.SLA_STATE_MET,
}
STATE_FROM_PB = {v: k for k, v in STATE_TO_PB.items()}
# The clocks the contract has a kind and a Ticket field for, by metric name. Any other metric's
# cycles count in the ticket's sla_state and are listed in Ticket.clocks only; its alerts carry
# CLOCK_KIND_UNSPECIFIED, never another clock's kind.
CLOCK_TO_PB: dict[str, pb.ClockKind.ValueType] = {
    ClockKind.RESPONSE: pb.CLOCK_KIND_RESPONSE,
    ClockKind.RESOLUTION: pb.CLOCK_KIND_RESOLUTION,
}
_TICKET_FIELD: dict[str, str] = {ClockKind.RESPONSE: "response", ClockKind.RESOLUTION: "resolution"}
ACTIVITY_TO_PB = {
    "agent_reply": pb.TICKET_ACTIVITY_AGENT_REPLY,
    "customer_reply": pb.TICKET_ACTIVITY_CUSTOMER_REPLY,
    "internal_note": pb.TICKET_ACTIVITY_INTERNAL_NOTE,
}
SEGMENT_KIND_TO_PB = {
    SegmentKind.RUNNING: pb.TIMELINE_SEGMENT_KIND_RUNNING,
    SegmentKind.PAUSED: pb.TIMELINE_SEGMENT_KIND_PAUSED,
    SegmentKind.STOPPED: pb.TIMELINE_SEGMENT_KIND_STOPPED,
    SegmentKind.OUTSIDE_HOURS: pb.TIMELINE_SEGMENT_KIND_OUTSIDE_HOURS,
}
ALERT_KIND_TO_PB = {"warning": pb.ALERT_KIND_WARNING, "breach": pb.ALERT_KIND_BREACH}
NOTIFICATION_STATE_TO_PB = {
    "pending": pb.NOTIFICATION_STATE_PENDING,
    "sent": pb.NOTIFICATION_STATE_SENT,
    "failed": pb.NOTIFICATION_STATE_FAILED,
}
OUTCOME_TO_PB = {
    Outcome.CREATED: pb.INGEST_OUTCOME_CREATED,
    Outcome.UPDATED: pb.INGEST_OUTCOME_UPDATED,
    Outcome.DUPLICATE: pb.INGEST_OUTCOME_DUPLICATE,
    Outcome.OUT_OF_ORDER: pb.INGEST_OUTCOME_OUT_OF_ORDER,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MODES = {mode.value: mode for mode in Mode}  # a dict lookup: a third of Mode()'s cost


def ts(value: object) -> Timestamp:
    # Plain arithmetic on an aware datetime: a third of Timestamp.FromDatetime's cost, which
    # counts on dashboard pages (four timestamps per ticket). A naive datetime raises here.
    assert isinstance(value, datetime)
    d = value - _EPOCH
    return Timestamp(seconds=d.days * 86400 + d.seconds, nanos=d.microseconds * 1000)


def duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def _nanos(seconds: float) -> int:
    """The nanoseconds of duration(seconds)."""
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def fill_timeline(msg: pb.SlaClock, segments: Sequence[Segment]) -> None:
    """The clock's timeline. Each counted Duration is the step of the running total, taken to
    nanoseconds as `elapsed` is, so the Durations add up to the clock's elapsed Duration exactly
    (the segments' seconds add up to its elapsed seconds: internal/sla/timeline.py)."""
    total, reached = 0.0, 0
    for s in segments:
        total += s.counted
        step, reached = _nanos(total) - reached, _nanos(total)
        seg = msg.timeline.add(kind=SEGMENT_KIND_TO_PB[s.kind], start=ts(s.start))
        if s.end is not None:
            seg.end.CopyFrom(ts(s.end))
        seg.counted.FromNanoseconds(step)
        cause = s.cause
        seg.cause.trigger = cause.trigger
        if cause.at is not None:
            seg.cause.updated_at.CopyFrom(ts(cause.at))
        if cause.status is not None:
            seg.cause.status = STATUS_TO_PB[cause.status]
        seg.cause.activity = ACTIVITY_TO_PB.get(cause.activity, pb.TICKET_ACTIVITY_UNSPECIFIED)


def _stored(row: ClockRow, config: SlaConfig) -> StoredClock:
    return StoredClock(
        row.target_s,
        row.calendar,
        config.calendars.get(row.calendar),
        _MODES[row.mode],
        row.anchor_at,
        row.anchor_elapsed,
        row.due_at,
        row.warn_at,
        row.fired_level,
    )


def fill_clock(msg: pb.SlaClock, row: ClockRow, config: SlaConfig, now: datetime) -> State:
    """Fill `msg` (a field of its ticket: filled in place, not copied) from a clock row."""
    clock = _stored(row, config)
    elapsed = clock.elapsed(now)
    state = clock.state(now)
    mode = clock.mode
    msg.kind = CLOCK_TO_PB.get(row.clock, pb.CLOCK_KIND_UNSPECIFIED)
    msg.metric = row.clock
    msg.cycle = row.cycle
    msg.target.CopyFrom(duration(clock.target))
    msg.elapsed.CopyFrom(duration(elapsed))
    msg.remaining.CopyFrom(duration(clock.target - elapsed))
    msg.state = STATE_TO_PB[state]
    msg.paused = mode is Mode.PAUSED
    msg.stopped = mode is Mode.STOPPED
    # The stored name, also when the config no longer defines it (StoredClock says how it counts).
    msg.calendar = clock.calendar_name
    if mode is Mode.RUNNING and clock.due_at is not None:
        msg.due_at.CopyFrom(ts(clock.due_at))
    return state


def current_cycles(clocks: Sequence[ClockRow]) -> list[ClockRow]:
    """The latest cycle of each metric, in the order the metrics first appear (`clocks` in the
    store's order: by metric, then cycle)."""
    latest: dict[str, ClockRow] = {}
    for row in clocks:
        seen = latest.get(row.clock)
        if seen is None or row.cycle > seen.cycle:
            latest[row.clock] = row
    return list(latest.values())


def ticket_to_pb(
    row: TicketRow,
    clocks: Sequence[ClockRow],
    config: SlaConfig,
    now: datetime,
    every_cycle: bool = False,
    timelines: Timelines | None = None,
) -> pb.Ticket:
    """`clocks`: every stored cycle of the ticket. Ticket.clocks lists the current cycle of each
    metric, or with `every_cycle` all of them; sla_state is the worst over all of them either
    way (as the dashboard's state). With `timelines` (the full view), each clock's timeline."""
    msg = pb.Ticket(
        ticket_id=row.ticket_id,
        priority=row.priority,
        customer_tier=row.customer_tier,
        status=STATUS_TO_PB[Status(row.status)],
        created_at=ts(row.created_at),
        updated_at=ts(row.updated_at),
        escalation_level=row.escalation_level,
        policy_version=row.policy_version,
        policy=row.policy,
    )
    worst = State.MET
    current = current_cycles(clocks)
    # Ids of the rows shown: all of them in the full view, or when each metric has one cycle.
    shown = None if every_cycle or len(current) == len(clocks) else {id(r) for r in current}
    # In the store's order (metric name, then cycle); the current cycles of response and
    # resolution also in their own fields, as in part one. A cycle not shown counts in the
    # ticket's state all the same.
    for clock_row in clocks:
        if shown is not None and id(clock_row) not in shown:
            worst = max(worst, _stored(clock_row, config).state(now))
            continue
        clock_msg = msg.clocks.add()
        state = fill_clock(clock_msg, clock_row, config, now)
        if timelines is not None:
            fill_timeline(clock_msg, timelines.get((clock_msg.metric, clock_msg.cycle), ()))
        name = _TICKET_FIELD.get(clock_row.clock)
        if name is not None:
            getattr(msg, name).CopyFrom(clock_msg)
        worst = max(worst, state)
    msg.sla_state = STATE_TO_PB[worst]
    return msg


def history_to_pb(row: HistoryRow) -> pb.StatusChange:
    """One stored event; a status it left unchanged (NULL) is UNSPECIFIED."""
    status = row.status
    return pb.StatusChange(
        status=pb.TICKET_STATUS_UNSPECIFIED if status is None else STATUS_TO_PB[Status(status)],
        priority=row.priority,
        customer_tier=row.customer_tier,
        updated_at=ts(row.updated_at),
        received_at=ts(row.received_at),
        activity=ACTIVITY_TO_PB.get(row.activity or "", pb.TICKET_ACTIVITY_UNSPECIFIED),
        group=row.group_name or "",
        assignee=row.assignee or "",
        tags=row.tags or (),
        attributes=row.attributes or {},
    )


def fill_ticket_fields(msg: pb.Ticket, fields: TicketFields) -> None:
    """The ticket's current group, assignee, tags and attributes (queries.ticket_fields)."""
    msg.group = fields.group
    msg.assignee = fields.assignee
    msg.tags[:] = fields.tags
    msg.attributes.update(fields.attributes)


def alert_to_pb(row: AlertRow, notifications: Sequence[NotificationRow] = ()) -> pb.Alert:
    msg = pb.Alert(
        alert_id=row.alert_id,
        ticket_id=row.ticket_id,
        clock=CLOCK_TO_PB.get(row.clock, pb.CLOCK_KIND_UNSPECIFIED),
        kind=ALERT_KIND_TO_PB[row.kind],
        escalation_level=row.escalation_level,
        created_at=ts(row.created_at),
        priority=row.priority,
        customer_tier=row.customer_tier,
        policy_version=row.policy_version,
        metric=row.clock,
        cycle=row.cycle,
        repeat=row.repeat,
        acknowledged_by=row.acknowledged_by or "",
        ack_note=row.ack_note or "",
    )
    if row.due_at is not None:
        msg.due_at.CopyFrom(ts(row.due_at))
    if row.acknowledged_at is not None:
        msg.acknowledged_at.CopyFrom(ts(row.acknowledged_at))
    for n in notifications:
        note = msg.notifications.add(
            channel=n.channel,
            state=NOTIFICATION_STATE_TO_PB[n.state],
            attempts=n.attempts,
            last_error=n.last_error or "",
            repeat=n.repeat,
        )
        if n.sent_at is not None:
            note.sent_at.CopyFrom(ts(n.sent_at))
    return msg


def preview_to_pb(p: Preview) -> pb.PreviewPolicyResponse:
    out = pb.PreviewPolicyResponse(
        version=p.version,
        current_version=p.current_version,
        evaluated_at=ts(p.evaluated_at),
        open_tickets=p.open_tickets,
        unmatched_tickets=p.unmatched,
        breach_earlier=p.breach_earlier,
        breach_later=p.breach_later,
        sample_ticket_ids=p.sample,
        batches=p.batches,
    )
    for (before, after), n in sorted(p.state_changes.items()):
        out.state_changes.add(
            from_state=STATE_TO_PB[before], to_state=STATE_TO_PB[after], tickets=n
        )
    for (was, becomes), n in sorted(p.policy_changes.items()):
        out.policy_changes.add(from_policy=was, to_policy=becomes, tickets=n)
    return out


def policy_version_to_pb(v: PolicyVersion) -> pb.PolicyVersion:
    out = pb.PolicyVersion(version=v.version, active=v.active)
    if v.first_seen_at is not None:
        out.first_seen_at.CopyFrom(ts(v.first_seen_at))
    if v.applied_at is not None:
        out.applied_at.CopyFrom(ts(v.applied_at))
    if v.recomputed_at is not None:
        out.recomputed_at.CopyFrom(ts(v.recomputed_at))
        out.recomputed_tickets = v.tickets or 0
    return out
