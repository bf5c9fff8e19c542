"""gRPC error answers with google.rpc details: every bad field by path (BadRequest), and the
reason, resume point or retry delay of a refusal a client can act on (ErrorInfo, RetryInfo)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from internal.rpc.validation import Violation
from slawatch.errors import ERROR_DOMAIN


class BadRequest(Exception):
    def __init__(self, violations: Iterable[Violation]) -> None:
        self.violations = list(violations)
        super().__init__(self.summary())

    def summary(self) -> str:
        shown = "; ".join(f"{v.field}: {v.description}" for v in self.violations[:5])
        more = len(self.violations) - 5
        return shown + (f" (and {more} more)" if more > 0 else "")


def abort_bad_request(context: grpc.ServicerContext, violations: Iterable[Violation]) -> NoReturn:
    error = BadRequest(violations)
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
    )
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message=error.summary(), details=[detail]
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
