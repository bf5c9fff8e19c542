"""The correlation id: one value that follows a piece of work across processes.

It enters with a gRPC call (metadata `x-request-id`, generated when absent or unusable), is stored
with the tickets that call changed, travels in Dramatiq message options and the notification rows
an alert causes, and ends in the Slack message. Code reads it from `current_correlation_id`; the
logging filter adds it to every log line written while it is set.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import uuid
from collections.abc import Iterator

REQUEST_ID_KEY = "x-request-id"
MAX_LENGTH = 128
# What we accept from a caller: it ends up in logs, the database and Slack messages, so only
# characters that are safe in all three, and a bounded length.
_ACCEPTED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+=-]*")

current_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept(value: str | None) -> str | None:
    """The caller's id if it is usable as given, else None (the caller then gets a new one)."""
    if not value or len(value) > MAX_LENGTH or not _ACCEPTED.fullmatch(value):
        return None
    return value


@contextlib.contextmanager
def correlation(correlation_id: str | None) -> Iterator[str | None]:
    """Run the block with `correlation_id` as the current id (None clears it)."""
    token = current_correlation_id.set(correlation_id)
    try:
        yield correlation_id
    finally:
        current_correlation_id.reset(token)
