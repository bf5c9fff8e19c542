"""Why a ticket is breached, through the real server (DESIGN §10, "Explain"): GetTicket with
TICKET_VIEW_FULL gives every clock its timeline, on the ticket's business calendar, with the
event that began each segment; the segments' counted Durations add up to elapsed exactly; the
basic view carries no timeline."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration

from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.events import event

# high/silver: response 30m and resolution 8h on emea_office (Berlin, Mon-Fri 09:00-17:00).
FRIDAY_1500 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 16:00 in Berlin (CET)
FRIDAY_1600 = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # the office closes
MONDAY_0800 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # it opens
ON_HOLD = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
BACK_OPEN = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
RESOLVED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

RUNNING, PAUSED, STOPPED, OUTSIDE = (
    pb.TIMELINE_SEGMENT_KIND_RUNNING,
    pb.TIMELINE_SEGMENT_KIND_PAUSED,
    pb.TIMELINE_SEGMENT_KIND_STOPPED,
    pb.TIMELINE_SEGMENT_KIND_OUTSIDE_HOURS,
)


def store_history(stub: pb_grpc.TicketServiceStub, ticket_id: str) -> None:
    """Created on a Friday an hour before closing, on hold on Monday, open again, resolved."""
    stages = [
        (pb.TICKET_STATUS_OPEN, FRIDAY_1500),
        (pb.TICKET_STATUS_ON_HOLD, ON_HOLD),
        (pb.TICKET_STATUS_OPEN, BACK_OPEN),
        (pb.TICKET_STATUS_RESOLVED, RESOLVED),
    ]
    events = [
        event(ticket_id, status, created=FRIDAY_1500, updated=at, tier="silver")
        for status, at in stages
    ]
    stub.IngestTickets(pb.IngestTicketsRequest(events=events))


def summary(clock: pb.SlaClock) -> list[tuple[int, datetime, datetime | None, float, str]]:
    return [
        (
            s.kind,
            s.start.ToDatetime(tzinfo=UTC),
            s.end.ToDatetime(tzinfo=UTC) if s.HasField("end") else None,
            s.counted.ToTimedelta().total_seconds(),
            s.cause.trigger,
        )
        for s in clock.timeline
    ]


def total(clock: pb.SlaClock) -> int:
    return sum(s.counted.ToNanoseconds() for s in clock.timeline)


def test_full_view_explains_each_clock_with_its_segments_and_causes(
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """The response clock breached because it ran an hour on Friday and half an hour on Monday
    morning (the weekend outside hours between) before the ticket went on hold; the resolution
    clock was paused on hold, ran again when the ticket was opened, and stopped when it was
    resolved. Each segment names its cause; the counted Durations add up to elapsed exactly."""
    store_history(stub, "WHY-1")
    got = stub.GetTicket(pb.GetTicketRequest(ticket_id="WHY-1", view=pb.TICKET_VIEW_FULL))
    ticket = got.ticket
    assert ticket.response.state == pb.SLA_STATE_BREACHED
    assert summary(ticket.response) == [
        (RUNNING, FRIDAY_1500, FRIDAY_1600, 3600.0, "created"),
        (OUTSIDE, FRIDAY_1600, MONDAY_0800, 0.0, "calendar"),
        (RUNNING, MONDAY_0800, ON_HOLD, 1800.0, "calendar"),
        (STOPPED, ON_HOLD, None, 0.0, "status:on_hold"),
    ]
    assert summary(ticket.resolution) == [
        (RUNNING, FRIDAY_1500, FRIDAY_1600, 3600.0, "created"),
        (OUTSIDE, FRIDAY_1600, MONDAY_0800, 0.0, "calendar"),
        (RUNNING, MONDAY_0800, ON_HOLD, 1800.0, "calendar"),
        (PAUSED, ON_HOLD, BACK_OPEN, 0.0, "status:on_hold"),
        (RUNNING, BACK_OPEN, RESOLVED, 3600.0, "status:open"),
        (STOPPED, RESOLVED, None, 0.0, "status:resolved"),
    ]
    paused = ticket.resolution.timeline[3].cause
    assert paused.updated_at.ToDatetime(tzinfo=UTC) == ON_HOLD
    assert paused.status == pb.TICKET_STATUS_ON_HOLD
    created = ticket.resolution.timeline[0].cause
    assert created.updated_at.ToDatetime(tzinfo=UTC) == FRIDAY_1500
    assert not ticket.resolution.timeline[1].cause.HasField("updated_at")  # the calendar's
    for clock in (ticket.response, ticket.resolution):
        assert total(clock) == clock.elapsed.ToNanoseconds()
    assert ticket.resolution.elapsed == Duration(seconds=9000)
    # Ticket.clocks carries the same timelines as the response and resolution fields.
    by_metric = {c.metric: c for c in ticket.clocks}
    assert by_metric["response"] == ticket.response
    assert by_metric["resolution"] == ticket.resolution


def test_a_running_clock_ends_in_an_open_segment_counted_up_to_now(
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """A ticket still open: the resolution clock's last segment has no end and counts up to the
    request's time, and the Durations still add up to elapsed exactly."""
    stub.IngestTickets(
        pb.IngestTicketsRequest(events=[event("WHY-2", created=FRIDAY_1500, tier="silver")])
    )
    got = stub.GetTicket(pb.GetTicketRequest(ticket_id="WHY-2", view=pb.TICKET_VIEW_FULL))
    resolution = got.ticket.resolution
    assert resolution.timeline[0].cause.trigger == "created"
    last = resolution.timeline[-1]
    assert not last.HasField("end") and last.kind in (RUNNING, OUTSIDE)
    assert total(resolution) == resolution.elapsed.ToNanoseconds() > 0


def test_the_basic_view_has_no_timeline(stub: pb_grpc.TicketServiceStub) -> None:
    """Timelines cost a run over the history: the default and BASIC views leave them out."""
    store_history(stub, "WHY-3")
    for view in (pb.TICKET_VIEW_UNSPECIFIED, pb.TICKET_VIEW_BASIC):
        got = stub.GetTicket(pb.GetTicketRequest(ticket_id="WHY-3", view=view))
        assert got.ticket.clocks and all(not c.timeline for c in got.ticket.clocks)
        assert not got.ticket.response.timeline and not got.ticket.resolution.timeline
