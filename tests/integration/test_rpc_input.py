"""Hostile input to the gRPC server: every bad request gets INVALID_ARGUMENT naming the field,
whatever its size or encoding, and is logged and counted like any other call."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

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


SERVICE = "slawatch.v1.TicketService"
# Each a request whose string field holds the single byte 0xff, which is not UTF-8.
UNDECODABLE = {
    "IngestTickets": b"\x0a\x03" + b"\x0a\x01\xff",  # events[0].ticket_id
    "GetTicket": b"\x0a\x01\xff",  # ticket_id
    "GetDashboard": b"\x12\x01\xff",  # page_token
    "WatchAlerts": b"\x22\x01\xff",  # priorities[0]
}


def requests_counted(method: str, code: str) -> float:
    labels = {"method": f"{SERVICE}/{method}", "code": code}
    return REGISTRY.get_sample_value("slawatch_rpc_requests_total", labels) or 0.0


@pytest.mark.parametrize("method", sorted(UNDECODABLE))
def test_an_undecodable_request_is_invalid_argument_and_counted(
    channel: grpc.Channel, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not a valid request message: INVALID_ARGUMENT (not INTERNAL), no ERROR
    log line with a traceback, and the call is counted like any other, so the error-rate alert
    sees it."""
    before = requests_counted(method, "INVALID_ARGUMENT")
    path = f"/{SERVICE}/{method}"
    with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as info:
        if method == "WatchAlerts":
            list(channel.unary_stream(path)(UNDECODABLE[method], timeout=10))
        else:
            channel.unary_unary(path)(UNDECODABLE[method], timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "not a valid" in (info.value.details() or "")  # type: ignore[attr-defined]
    assert requests_counted(method, "INVALID_ARGUMENT") == before + 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
