"""Hostile input to the gRPC server: every bad request gets INVALID_ARGUMENT naming the field,
whatever its size or encoding, and is logged and counted like any other call."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

# gRPC clients refuse trailing metadata beyond this soft limit (some of the time), and then the
# caller sees RESOURCE_EXHAUSTED instead of our answer.
METADATA_SOFT_LIMIT = 8192


def violations(err: grpc.RpcError) -> list[error_details_pb2.BadRequest.FieldViolation]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "INVALID_ARGUMENT must carry a google.rpc.Status"
    found = []
    for detail in status.details:
        br = error_details_pb2.BadRequest()
        assert detail.Unpack(br)
        found.extend(br.field_violations)
    return found


def metadata_size(metadata: object) -> int:
    # HTTP/2 counts each entry as name + value + 32 bytes.
    return sum(len(k) + len(v) + 32 for k, v in metadata or ())  # type: ignore[attr-defined]


def test_a_batch_of_1000_bad_events_is_invalid_argument_with_a_capped_detail(
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """1,000 events, each with several violations and long values: the answer is still
    INVALID_ARGUMENT (not RESOURCE_EXHAUSTED from an oversized trailer), carrying the first
    violations and one entry saying how many more were left out."""
    bad = pb.TicketEvent(
        ticket_id="x" * 1000,
        priority="p" * 1000,
        customer_tier="gold",
    )  # and no status, no timestamps
    with pytest.raises(grpc.RpcError) as info:
        stub.IngestTickets(pb.IngestTicketsRequest(events=[bad] * 1000), timeout=30)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    found = violations(err)
    assert 40 <= len(found) <= 101
    assert found[0].field == "events[0].ticket_id"
    # Each event has 5 violations: ticket_id, priority, status, created_at, updated_at.
    left_out = 5000 - (len(found) - 1)
    assert found[-1].field == ""
    assert f"{left_out} more violations left out" in found[-1].description
    assert f"and {5000 - 5} more" in (err.details() or "")
    # The trailer (the status message travels in grpc-message beside it) stays well below.
    trailer = metadata_size(err.trailing_metadata()) + len(err.details() or "")  # type: ignore[attr-defined]
    assert trailer < METADATA_SOFT_LIMIT * 0.6
