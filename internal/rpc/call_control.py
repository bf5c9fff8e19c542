"""Ending a server-streaming call from another thread, with a status the client sees.

`context.abort()` only works in the thread running the handler, and that thread may be blocked
inside a `yield` for as long as a client does not read (HTTP/2 flow control). The hub must still
be able to end such a call, with RESOURCE_EXHAUSTED or UNAVAILABLE rather than a bare CANCELLED,
so that the client knows to resume. gRPC core's cancel-with-status does exactly that; the sync
Python API only exposes it on the call object behind the context.
"""

from __future__ import annotations

import logging

import grpc

log = logging.getLogger(__name__)


def end_call(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """Finish the call now with `code` and `details`; safe from any thread, and a no-op on a call
    that has already finished. Falls back to a plain cancel (the client sees CANCELLED) should a
    future grpcio hide the call object."""
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    cancel = getattr(call, "cancel", None)
    if cancel is not None:
        try:
            cancel(code.value[0], details)
            return
        except (TypeError, ValueError) as err:
            log.warning("cancel with status unavailable (%s); cancelling plainly", err)
    context.cancel()
