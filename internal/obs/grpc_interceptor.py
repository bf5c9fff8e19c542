"""The server interceptor that makes every gRPC call observable.

For each call it: takes the caller's `x-request-id` (or makes one) and makes it the current
correlation id for the handler's thread; returns it to the caller as trailing metadata
`x-request-id` (trailing, because the streaming handler sends initial metadata of its own and
rich errors replace the trailing metadata: ours is merged in last, whatever the handler did);
writes one log line when the call ends (`rpc`, `status`, `latency_ms`, `correlation_id`); and
counts it in the RPC metrics. It is the first interceptor, so refusals by authentication are
logged and counted too.

TicketService calls are logged at INFO; health and reflection calls (load balancers probe every
few seconds) at DEBUG.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from internal.obs import metrics
from internal.obs.correlation import (
    REQUEST_ID_KEY,
    accept,
    current_correlation_id,
    new_correlation_id,
)

log = logging.getLogger("slawatch.rpc")

# Codes that point at the server rather than the caller.
_SERVER_FAULTS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNAVAILABLE,
}

Behavior = Callable[[Any, grpc.ServicerContext], Any]


def _request_id(details: grpc.HandlerCallDetails) -> str:
    for key, value in details.invocation_metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            accepted = accept(value)
            if accepted is not None:
                return accepted
    return new_correlation_id()


def _final_code(context: grpc.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    # Set by abort() or set_code(), None while nothing set it; the typing stubs omit the getter.
    code = context.code()  # type: ignore[attr-defined]
    if isinstance(code, grpc.StatusCode):
        return code
    if error is not None:
        # GeneratorExit: grpc closed a stream whose client went away.
        return (
            grpc.StatusCode.CANCELLED
            if isinstance(error, GeneratorExit)
            else grpc.StatusCode.UNKNOWN
        )
    if not context.is_active():
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK


def _reset(token: contextvars.Token[str | None]) -> None:
    # A stream may be closed from another thread than the one that served it.
    with contextlib.suppress(ValueError):
        current_correlation_id.reset(token)


class ObservabilityInterceptor(grpc.ServerInterceptor):
    def __init__(self, loud_prefix: str = "/slawatch.") -> None:
        self._loud_prefix = loud_prefix

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # an unknown method: grpc answers UNIMPLEMENTED; never a label value
        full = handler_call_details.method or ""
        call = _Call(
            method=full.lstrip("/"),
            level=logging.INFO if full.startswith(self._loud_prefix) else logging.DEBUG,
            request_id=_request_id(handler_call_details),
        )
        kinds: list[tuple[Callable[..., grpc.RpcMethodHandler], Behavior | None, bool]] = [
            (grpc.unary_unary_rpc_method_handler, handler.unary_unary, False),
            (grpc.unary_stream_rpc_method_handler, handler.unary_stream, True),
            (grpc.stream_unary_rpc_method_handler, handler.stream_unary, False),
            (grpc.stream_stream_rpc_method_handler, handler.stream_stream, True),
        ]
        for make, behavior, streaming in kinds:
            if behavior is not None:
                wrapped = call.wrap_stream(behavior) if streaming else call.wrap_unary(behavior)
                return make(
                    wrapped,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


class _Call:
    def __init__(self, method: str, level: int, request_id: str) -> None:
        self.method = method
        self.level = level
        self.request_id = request_id

    def _return_id(self, context: grpc.ServicerContext) -> None:
        existing = tuple(context.trailing_metadata() or ())
        context.set_trailing_metadata((*existing, (REQUEST_ID_KEY, self.request_id)))

    def _finish(
        self,
        context: grpc.ServicerContext,
        started: float,
        error: BaseException | None,
        timed: bool,
    ) -> None:
        code = _final_code(context, error)
        seconds = time.perf_counter() - started
        metrics.RPC_REQUESTS.labels(self.method, code.name).inc()
        if timed:
            metrics.RPC_DURATION.labels(self.method, code.name).observe(seconds)
        level = logging.WARNING if code in _SERVER_FAULTS else self.level
        log.log(
            level,
            "%s %s in %.1f ms",
            self.method,
            code.name,
            seconds * 1000,
            extra={"rpc": self.method, "status": code.name, "latency_ms": round(seconds * 1000, 2)},
        )

    def wrap_unary(self, behavior: Behavior) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            token = current_correlation_id.set(self.request_id)
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return behavior(request, context)
            except BaseException as err:
                error = err
                raise
            finally:
                self._return_id(context)
                self._finish(context, started, error, timed=True)
                _reset(token)

        return call

    def wrap_stream(self, behavior: Behavior) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            token = current_correlation_id.set(self.request_id)
            started = time.perf_counter()
            error: BaseException | None = None
            gauge = metrics.RPC_STREAMS_OPEN.labels(self.method)
            gauge.inc()
            try:
                yield from behavior(request, context)
            except BaseException as err:
                error = err
                raise
            finally:
                gauge.dec()
                self._return_id(context)
                self._finish(context, started, error, timed=False)
                _reset(token)

        return call
