"""gRPC statuses as HTTP answers for the /v1 routes: the status code, and a JSON body

    {"code": "INVALID_ARGUMENT", "message": "...", "details": [{"@type": "...", ...}]}

whose `details` are the google.rpc details the server attached (grpc-status-details-bin):
BadRequest field violations, ErrorInfo, RetryInfo, in proto3 JSON with the proto field names,
as grpcurl prints them. A RetryInfo also becomes a Retry-After header.

The HTTP status follows google/rpc/code.proto's mapping (what Google's and grpc-gateway's
HTTP APIs answer). The server's message is passed on for the codes it uses to tell the caller what
to fix (a bad field, a missing ticket, a missing role, a limit); for the rest (UNAVAILABLE,
INTERNAL, ...) a fixed text stands in, since a transport's or an exception's text may name
internal addresses or data.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from typing import Any

import grpc
import grpc.aio
from aiohttp import web
from google.protobuf import duration_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

log = logging.getLogger(__name__)

DETAILS_KEY = "grpc-status-details-bin"
RETRY_INFO_TYPE = "type.googleapis.com/" + error_details_pb2.RetryInfo.DESCRIPTOR.full_name

C = grpc.StatusCode
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    C.OK: 200,
    C.CANCELLED: 499,  # "client closed request", as nginx and google/rpc/code.proto say
    C.UNKNOWN: 500,
    C.INVALID_ARGUMENT: 400,
    C.DEADLINE_EXCEEDED: 504,
    C.NOT_FOUND: 404,
    C.ALREADY_EXISTS: 409,
    C.PERMISSION_DENIED: 403,
    C.RESOURCE_EXHAUSTED: 429,
    # 400, not 412: no HTTP precondition header (If-Match) is involved; the state of the system
    # refuses the request, as code.proto maps it.
    C.FAILED_PRECONDITION: 400,
    C.ABORTED: 409,
    C.OUT_OF_RANGE: 400,
    C.UNIMPLEMENTED: 501,
    C.INTERNAL: 500,
    C.UNAVAILABLE: 503,
    C.DATA_LOSS: 500,
    C.UNAUTHENTICATED: 401,
}
# The codes whose message the server writes for the caller, and which the caller needs.
PASSED_ON = frozenset(
    {
        C.INVALID_ARGUMENT,
        C.NOT_FOUND,
        C.ALREADY_EXISTS,
        C.PERMISSION_DENIED,
        C.UNAUTHENTICATED,
        C.RESOURCE_EXHAUSTED,
        C.FAILED_PRECONDITION,
        C.ABORTED,
        C.OUT_OF_RANGE,
    }
)
FIXED_MESSAGES: dict[grpc.StatusCode, str] = {
    C.UNAVAILABLE: "the server is unavailable; retry later (ingest is idempotent)",
    C.DEADLINE_EXCEEDED: "the server did not answer in time; retry later (ingest is idempotent)",
    C.CANCELLED: "the call was cancelled",
    C.UNIMPLEMENTED: "the server does not implement this call",
}
FALLBACK_MESSAGE = "the server could not answer this request"
MAX_MESSAGE_CHARS = 2000


def error_body(code: grpc.StatusCode, message: str, details: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"code": code.name, "message": message, "details": details}, ensure_ascii=False
    ).encode()


def error_response(
    code: grpc.StatusCode,
    message: str,
    details: list[dict[str, Any]] | None = None,
    http_status: int | None = None,
) -> web.Response:
    """An error answer in the /v1 shape; `http_status` overrides the mapping (413, 415)."""
    status = http_status or HTTP_STATUS.get(code, 500)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry = retry_after_seconds(details or [])
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return web.Response(
        body=error_body(code, message, details or []),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _detail(packed: Any) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(packed, preserving_proto_field_name=True)
    except (TypeError, KeyError, json_format.Error):
        # A detail type this bridge does not know: its type and bytes, as proto3 JSON would
        # show an unknown Any.
        return {"@type": packed.type_url, "value": base64.b64encode(packed.value).decode()}


def status_details(err: grpc.aio.AioRpcError) -> list[dict[str, Any]]:
    """The google.rpc details of a failed call, each as proto3 JSON with its "@type"."""
    for key, value in err.trailing_metadata() or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:  # a malformed trailer: the status code still stands
                log.warning("a call's %s trailer does not parse", DETAILS_KEY)
                return []
            return [_detail(d) for d in status.details]
    return []


def retry_after_seconds(details: list[dict[str, Any]]) -> int | None:
    """Retry-After (whole seconds, rounded up) from a RetryInfo detail, if there is one."""
    for detail in details:
        if detail.get("@type") == RETRY_INFO_TYPE and "retry_delay" in detail:
            delay = duration_pb2.Duration()
            delay.FromJsonString(detail["retry_delay"])
            return max(1, math.ceil(delay.ToNanoseconds() / 1e9))
    return None


def from_rpc_error(err: grpc.aio.AioRpcError, rpc: str) -> web.Response:
    code = err.code()
    if code in PASSED_ON:
        message = (err.details() or code.name)[:MAX_MESSAGE_CHARS]
    else:
        message = FIXED_MESSAGES.get(code, FALLBACK_MESSAGE)
        # The code only: the text may be an exception's, with data in it.
        log.warning("%s failed upstream: %s", rpc, code.name)
    return error_response(code, message, status_details(err))
