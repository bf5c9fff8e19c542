"""gRPC error answers with google.rpc details: every bad field by path (BadRequest), and the
reason, resume point or retry delay of a refusal a client can act on (ErrorInfo, RetryInfo).

A BadRequest travels in trailing metadata, which gRPC clients refuse beyond 8 KB (soft limit,
16 KB hard): the caller would then see RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT. So an
answer carries the first MAX_VIOLATIONS violations, within MAX_DETAIL_BYTES, and one more entry
saying how many were left out; fixing those and resending shows the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from internal.rpc.validation import Violation
from slawatch.errors import ERROR_DOMAIN

MAX_VIOLATIONS = 100
# Of field paths and descriptions together; what the detail adds in framing stays well below the
# difference to the soft limit.
MAX_DETAIL_BYTES = 3000
MAX_DESCRIPTION = 200
IN_MESSAGE = 5


def _clip(text: str, limit: int = MAX_DESCRIPTION) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def capped(violations: Sequence[Violation]) -> tuple[list[Violation], int]:
    """The violations an answer carries (descriptions clipped) and how many it leaves out."""
    shown: list[Violation] = []
    size = 0
    for v in violations[:MAX_VIOLATIONS]:
        clipped = Violation(_clip(v.field), _clip(v.description))
        size += len(clipped.field.encode()) + len(clipped.description.encode())
        if size > MAX_DETAIL_BYTES:
            break
        shown.append(clipped)
    return shown, len(violations) - len(shown)


def summary(violations: Sequence[Violation], total: int) -> str:
    """The status message: the first few violations, and how many more there are."""
    shown = "; ".join(f"{v.field}: {v.description}" for v in violations[:IN_MESSAGE])
    more = total - min(len(violations), IN_MESSAGE)
    return shown + (f" (and {more} more)" if more > 0 else "")


def abort_bad_request(context: grpc.ServicerContext, violations: Sequence[Violation]) -> NoReturn:
    shown, left_out = capped(violations)
    entries = [
        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
        for v in shown
    ]
    if left_out:
        # Field "" is the request as a whole.
        entries.append(
            error_details_pb2.BadRequest.FieldViolation(
                field="",
                description=f"{left_out} more violations left out (the first {len(shown)} shown)",
            )
        )
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=entries))
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT,
        message=summary(shown, len(violations)),
        details=[detail],
    )
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable: abort_with_status raises")


def status_with_reason(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: Mapping[str, str] | None = None,
    retry_delay: float | None = None,
) -> grpc.Status:
    """A status a client can act on without parsing `message`: ErrorInfo names the reason (and
    carries, say, the resume point in its metadata); RetryInfo says how long to wait."""
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {})
    )
    details = [info]
    if retry_delay is not None:
        retry = error_details_pb2.RetryInfo()
        # Rounded up to the millisecond: retrying a hair too early would be refused again.
        retry.retry_delay.FromMilliseconds(max(1, math.ceil(retry_delay * 1000)))
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return rpc_status.to_status(status)
