"""The pure parts of the bridge's HTTP/JSON routes: the gRPC status -> HTTP status table, the
error body built from a call's status details, and proto3 JSON from bodies and query strings.
(The routes themselves are tested end to end in tests/integration/test_bridge_http.py.)"""

from __future__ import annotations

import json

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from multidict import MultiDict

from internal.bridge import http_errors, protojson
from slawatch.v1 import ticket_service_pb2 as pb

C = grpc.StatusCode


def test_every_grpc_code_has_an_http_status_and_the_standard_ones_hold() -> None:
    """No gRPC code falls through the table, and the codes callers act on map as google/rpc's
    code.proto (and the README) say."""
    assert set(http_errors.HTTP_STATUS) == set(grpc.StatusCode)
    expected = {
        C.INVALID_ARGUMENT: 400,
        C.FAILED_PRECONDITION: 400,
        C.OUT_OF_RANGE: 400,
        C.UNAUTHENTICATED: 401,
        C.PERMISSION_DENIED: 403,
        C.NOT_FOUND: 404,
        C.ALREADY_EXISTS: 409,
        C.ABORTED: 409,
        C.RESOURCE_EXHAUSTED: 429,
        C.CANCELLED: 499,
        C.UNKNOWN: 500,
        C.INTERNAL: 500,
        C.DATA_LOSS: 500,
        C.UNIMPLEMENTED: 501,
        C.UNAVAILABLE: 503,
        C.DEADLINE_EXCEEDED: 504,
    }
    assert {c: http_errors.HTTP_STATUS[c] for c in expected} == expected


def rpc_error(code: grpc.StatusCode, message: str, *details: object) -> grpc.aio.AioRpcError:
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        if isinstance(detail, any_pb2.Any):
            any_detail = detail
        else:
            any_detail.Pack(detail)  # type: ignore[arg-type]
        packed.append(any_detail)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, message)


def body_of(response: object) -> dict[str, object]:
    text = response.body  # type: ignore[attr-defined]
    body: dict[str, object] = json.loads(text)
    return body


def test_error_body_carries_the_violations_and_retry_after() -> None:
    """BadRequest, ErrorInfo and RetryInfo come out as proto3 JSON with their @type; a RetryInfo
    delay becomes Retry-After in whole seconds, rounded up."""
    violation = error_details_pb2.BadRequest.FieldViolation(
        field="events[0].priority", description="unknown priority"
    )
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromMilliseconds(1200)
    err = rpc_error(
        C.RESOURCE_EXHAUSTED,
        "slow down",
        error_details_pb2.BadRequest(field_violations=[violation]),
        error_details_pb2.ErrorInfo(reason="RATE_LIMITED", domain="slawatch.dev"),
        retry,
    )
    response = http_errors.from_rpc_error(err, "GetDashboard")
    assert response.status == 429
    assert response.headers["Retry-After"] == "2"
    body = body_of(response)
    assert body["code"] == "RESOURCE_EXHAUSTED" and body["message"] == "slow down"
    assert body["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [
                {"field": "events[0].priority", "description": "unknown priority"}
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMITED",
            "domain": "slawatch.dev",
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "1.200s"},
    ]


def test_internal_texts_stay_inside_and_unknown_details_pass_as_bytes() -> None:
    """INTERNAL and UNAVAILABLE answers never repeat the upstream text (it may be an exception's
    or name internal addresses); a detail of a type the bridge does not know is passed on as its
    type URL and base64 bytes instead of failing the answer; 401 says how to authenticate."""
    secret_text = "psycopg.OperationalError: password=hunter2 host=10.0.0.7"
    unknown = any_pb2.Any(type_url="type.googleapis.com/acme.Mystery", value=b"\x01\x02")
    internal = http_errors.from_rpc_error(rpc_error(C.INTERNAL, secret_text, unknown), "X")
    assert internal.status == 500
    body = body_of(internal)
    assert "hunter2" not in json.dumps(body)
    assert body["details"] == [{"@type": "type.googleapis.com/acme.Mystery", "value": "AQI="}]
    down = http_errors.from_rpc_error(rpc_error(C.UNAVAILABLE, "10.0.0.7:50051 refused"), "X")
    assert down.status == 503 and "10.0.0.7" not in json.dumps(body_of(down))
    refused = http_errors.from_rpc_error(rpc_error(C.UNAUTHENTICATED, "who are you"), "X")
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert body_of(refused)["message"] == "who are you"
    plain = grpc.aio.AioRpcError(C.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")
    assert body_of(http_errors.from_rpc_error(plain, "X")) == {
        "code": "NOT_FOUND",
        "message": "gone",
        "details": [],
    }


def test_bodies_take_proto_and_json_names_and_refuse_unknown_fields() -> None:
    """Both `customer_tier` and `customerTier` set the field; an unknown field is an error that
    names it, not a silently dropped value."""
    body = (
        b'{"events": [{"ticket_id": "A", "customerTier": "gold", "status": "TICKET_STATUS_OPEN"}]}'
    )
    request = protojson.parse_body(body, pb.IngestTicketsRequest())
    assert request.events[0].customer_tier == "gold"
    assert request.events[0].status == pb.TICKET_STATUS_OPEN
    with pytest.raises(protojson.BadJson, match="tier"):
        protojson.parse_body(b'{"events": [{"tier": "gold"}]}', pb.IngestTicketsRequest())


def test_query_strings_fill_scalars_lists_and_path_parameters() -> None:
    """A repeated parameter fills a list, JSON names work, numbers parse, path parameters set
    their field; an unknown parameter, a repeated single value, or a path field given again in
    the query is refused with the parameter's name."""
    query = MultiDict(
        [("pageSize", "20"), ("states", "SLA_STATE_BREACHED"), ("states", "SLA_STATE_WARNING")]
    )
    request = protojson.parse_query(query, {}, pb.GetDashboardRequest())
    assert request.page_size == 20
    assert list(request.states) == [pb.SLA_STATE_BREACHED, pb.SLA_STATE_WARNING]
    ticket = protojson.parse_query(MultiDict(), {"ticket_id": "T/1"}, pb.GetTicketRequest())
    assert ticket.ticket_id == "T/1"
    for bad, named in [
        (MultiDict([("size", "1")]), "size"),
        (MultiDict([("page_size", "1"), ("page_size", "2")]), "page_size"),
        (MultiDict([("page_size", "many")]), "page_size"),
    ]:
        with pytest.raises(protojson.BadJson, match=named):
            protojson.parse_query(bad, {}, pb.GetDashboardRequest())
    with pytest.raises(protojson.BadJson, match="twice"):
        protojson.parse_query(
            MultiDict([("ticket_id", "B")]), {"ticket_id": "A"}, pb.GetTicketRequest()
        )


def test_answers_use_proto_names_and_write_zero_values() -> None:
    """Output names are the proto names grpcurl prints; zero values of fields without presence
    are written; an unset message field is left out; int64 is a string, as proto3 JSON says."""
    answer = pb.GetDashboardResponse(counts=[pb.StateCount(state=pb.SLA_STATE_OK, count=0)])
    answer.tickets.add(ticket_id="A")
    out = protojson.to_dict(answer)
    assert out["next_page_token"] == ""
    assert out["counts"] == [{"state": "SLA_STATE_OK", "count": "0"}]
    ticket = out["tickets"][0]
    assert ticket["ticket_id"] == "A" and ticket["escalation_level"] == 0
    assert "response" not in ticket and "created_at" not in ticket
