"""Bearer-token authentication and role checks for TicketService (the gRPC side).

Tokens, principals, roles and the rate bucket live in internal/config/tokens.py, shared with the
WebSocket bridge; this module maps RPCs to roles and guards them with a server interceptor. The
tenant of every call comes from its token, never from the request. Health and reflection stay
open: load balancers and grpcurl need them unauthenticated.

Every call is authenticated against the tokens in force when it starts, so a reload of the
tokens file takes effect from the next call; `stream_guard` also ends the open WatchAlerts
streams that a reload no longer allows.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from internal.config.tokens import DEV_PRINCIPAL, Authenticator, Principal, Role
from internal.rpc.alert_hub import Guard, StreamEnd
from internal.rpc.errors import status_with_reason
from slawatch.errors import RATE_LIMITED, TOKEN_REVOKED
from slawatch.v1 import ticket_service_pb2 as pb

SERVICE_PREFIX = "/" + pb.DESCRIPTOR.services_by_name["TicketService"].full_name + "/"

METHOD_ROLES = {
    "IngestTickets": Role.INGEST,
    "GetTicket": Role.READ,
    "GetDashboard": Role.READ,
    "WatchAlerts": Role.WATCH,
    "DeleteTicket": Role.ADMIN,
    "AcknowledgeAlert": Role.ACK,
    "GetSlaReport": Role.READ,
    "PreviewPolicy": Role.ADMIN,
    "GetPolicy": Role.READ,
    "ListPolicyVersions": Role.READ,
}

# The caller of the RPC being served on this thread; set by the interceptor.
current_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def _metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    return {k: v for k, v in details.invocation_metadata or () if isinstance(v, str)}


def _refuse(
    code: grpc.StatusCode, message: str, streaming: bool, status: grpc.Status | None = None
) -> grpc.RpcMethodHandler:
    def refuse(context: grpc.ServicerContext) -> None:
        if status is not None:
            context.abort_with_status(status)
        context.abort(code, message)

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        refuse(context)

    def stream(request: Any, context: grpc.ServicerContext) -> Iterable[Any]:
        refuse(context)
        yield from ()

    if streaming:
        return grpc.unary_stream_rpc_method_handler(stream)
    return grpc.unary_unary_rpc_method_handler(unary)


def _with_principal(handler: grpc.RpcMethodHandler, principal: Principal) -> grpc.RpcMethodHandler:
    """The same handler, run with `current_principal` set on the serving thread."""

    def wrap(behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            token = current_principal.set(principal)
            try:
                return behavior(request, context)
            finally:
                current_principal.reset(token)

        return call

    def wrap_stream(behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            token = current_principal.set(principal)
            try:
                yield from behavior(request, context)
            finally:
                current_principal.reset(token)

        return call

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream(handler.unary_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    assert handler.unary_unary is not None, "TicketService has unary and server-streaming RPCs only"
    return grpc.unary_unary_rpc_method_handler(
        wrap(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method or ""
        handler = continuation(handler_call_details)
        if not method.startswith(SERVICE_PREFIX) or handler is None:
            return handler  # health, reflection, unknown methods: not ours to guard
        streaming = handler.unary_stream is not None
        role = METHOD_ROLES.get(method[len(SERVICE_PREFIX) :])
        if role is None:  # an RPC added to the proto but not here: nobody may call it
            return _refuse(
                grpc.StatusCode.PERMISSION_DENIED, f"{method} has no roles configured", streaming
            )
        if self._auth.open_dev:
            principal: Principal | None = DEV_PRINCIPAL
        else:
            principal = self._auth.authenticate(
                _metadata(handler_call_details).get("authorization")
            )
        if principal is None:
            return _refuse(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or unknown bearer token (metadata 'authorization: Bearer <token>')",
                streaming,
            )
        if role not in principal.roles:
            return _refuse(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {principal.name!r} lacks the {role.value!r} role for {method}",
                streaming,
            )
        wait = self._auth.admit(principal)
        if wait:
            message = (
                f"rate limit exceeded for token {principal.name!r}"
                f" (SLAWATCH_RATE_LIMIT_PER_SECOND); retry in {wait:.3f}s"
            )
            code = grpc.StatusCode.RESOURCE_EXHAUSTED
            status = status_with_reason(
                code, message, RATE_LIMITED, {"token": principal.name}, retry_delay=wait
            )
            return _refuse(code, message, streaming, status)
        return _with_principal(handler, principal)


def stream_guard(auth: Authenticator) -> Guard:
    """Whether a WatchAlerts stream opened by a principal may go on under the tokens in force now:
    not once its token is removed or moved to another tenant (UNAUTHENTICATED), nor once it lost
    the `watch` role (PERMISSION_DENIED), as a new call with it would be refused."""

    def guard(principal: Principal) -> StreamEnd | None:
        if auth.open_dev:
            return None
        now = auth.by_hash(principal.token_hash)
        unauthenticated = grpc.StatusCode.UNAUTHENTICATED
        if now is None:
            why = f"token {principal.name!r} was revoked"
            return StreamEnd(unauthenticated, TOKEN_REVOKED, why)
        if now.tenant != principal.tenant:
            why = f"token {principal.name!r} was moved to another tenant"
            return StreamEnd(unauthenticated, TOKEN_REVOKED, why)
        if Role.WATCH not in now.roles:
            why = f"token {now.name!r} no longer has the 'watch' role"
            return StreamEnd(grpc.StatusCode.PERMISSION_DENIED, TOKEN_REVOKED, why)
        return None

    return guard
