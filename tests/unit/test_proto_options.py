"""What the service descriptor tells generic clients about retrying its RPCs."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from slawatch.v1 import ticket_service_pb2 as pb

Level = descriptor_pb2.MethodOptions.IdempotencyLevel


def level_of(method: str) -> int:
    options = pb.DESCRIPTOR.services_by_name["TicketService"].methods_by_name[method].GetOptions()
    return options.idempotency_level


def test_reads_are_marked_free_of_side_effects() -> None:
    """GetTicket and GetDashboard change nothing: any client may retry (or cache) them."""
    assert level_of("GetTicket") == Level.Value("NO_SIDE_EFFECTS")
    assert level_of("GetDashboard") == Level.Value("NO_SIDE_EFFECTS")


def test_ingest_is_marked_idempotent() -> None:
    """IngestTickets is idempotent on (ticket_id, updated_at): a retried batch changes nothing."""
    assert level_of("IngestTickets") == Level.Value("IDEMPOTENT")


def test_delete_ticket_is_marked_idempotent() -> None:
    """DeleteTicket repeated leaves the store as the first call left it (the repeat answers
    NOT_FOUND): safe to retry after a lost answer."""
    assert level_of("DeleteTicket") == Level.Value("IDEMPOTENT")
