"""The google.rpc details of slawatch's refusals a client can act on, and how to read them.

Every refusal that a client can do something about carries an ErrorInfo (domain ERROR_DOMAIN)
whose reason is one of the constants below; match on the reason, never on the message:

- RATE_LIMITED (RESOURCE_EXHAUSTED): the token's request rate is used up; a RetryInfo says how
  long until the next request would be served.
- STREAM_TOO_SLOW (RESOURCE_EXHAUSTED) and SERVER_SHUTTING_DOWN (UNAVAILABLE): a WatchAlerts
  stream was ended; metadata `after_alert_id` is the point to resume from (the last alert the
  server finished sending, so never past what the client has).
- TOKEN_REVOKED (UNAUTHENTICATED, or PERMISSION_DENIED when the token lost the `watch` role): a
  WatchAlerts stream was ended because the server's tokens were reloaded without its token (or
  with another tenant or roles for it); reconnecting with the same token is refused.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "slawatch.dev"
RATE_LIMITED = "RATE_LIMITED"
STREAM_TOO_SLOW = "STREAM_TOO_SLOW"
SERVER_SHUTTING_DOWN = "SERVER_SHUTTING_DOWN"
TOKEN_REVOKED = "TOKEN_REVOKED"
RESUME_KEY = "after_alert_id"  # ErrorInfo.metadata key of an ended stream's resume point


def _details(err: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo | None, float | None]:
    try:
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
    except (AttributeError, ValueError):  # not a call, or details that contradict its status
        return None, None
    if status is None:
        return None, None
    info, delay = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    if info is not None and info.domain != ERROR_DOMAIN:
        info = None
    return info, delay


def error_reason(err: grpc.RpcError) -> str | None:
    """The ErrorInfo reason of a slawatch refusal; None when it has none."""
    info, _ = _details(err)
    return info.reason if info is not None else None


def retry_delay(err: grpc.RpcError) -> float | None:
    """Seconds the server asks the client to wait before retrying (RetryInfo); None if unsaid."""
    return _details(err)[1]


def resume_point(err: grpc.RpcError) -> int | None:
    """The `after_alert_id` an ended WatchAlerts stream resumes from; None if it has none."""
    info, _ = _details(err)
    raw = info.metadata.get(RESUME_KEY) if info is not None else None
    return int(raw) if raw is not None and raw.isdigit() else None
