"""Dramatiq middleware of our own: the correlation id in message options, and a shutdown flag.

Correlation: a message sent while a correlation id is current carries it as the message option
`correlation_id` (unless the sender set one), and the actor runs with it current, so its log
lines, and the messages it sends in turn, carry it too.

Shutdown: Dramatiq stops a worker process on SIGTERM by letting each worker thread finish the
message in hand (within --worker-shutdown-timeout). A long evaluation run checks `shutting_down`
between its batches and leaves the rest to the next tick, so that it ends well within that bound.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from internal.obs.correlation import accept, current_correlation_id

OPTION = "correlation_id"

shutting_down = threading.Event()


class CorrelationMiddleware(Middleware):
    def __init__(self) -> None:
        # Before and after hooks of one message run on the same worker thread.
        self._local = threading.local()

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message, delay: Any
    ) -> None:
        current = current_correlation_id.get()
        if current is not None and not message.options.get(OPTION):
            message.options[OPTION] = current

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        raw = message.options.get(OPTION)
        self._local.token = current_correlation_id.set(
            accept(raw) if isinstance(raw, str) else None
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        token: contextvars.Token[str | None] | None = getattr(self._local, "token", None)
        if token is not None:
            self._local.token = None
            current_correlation_id.reset(token)

    after_skip_message = after_process_message


class ShutdownFlag(Middleware):
    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        shutting_down.set()
