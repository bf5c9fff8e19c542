"""What the bridge logs about HTTP requests, with no token in it.

Tokens travel in `?token=` (browsers' WebSockets cannot set headers) and in `Authorization`, so
request lines and headers are secrets. The access log shows the path and the query with every
`token` parameter (any case) redacted, and never a header. aiohttp logs a request it cannot
parse (a NUL or DEL byte, an over-long line, a bad header) at ERROR with a traceback whose text
quotes the raw request, and anyone can send such requests: those records become one short line
naming only the error's class, at most one per interval, counting the ones left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

REDACTED = "REDACTED"
TOKEN_PARAM = "token"
BAD_REQUEST_LOG_INTERVAL_SECONDS = 60.0


def redacted_target(request: web.BaseRequest) -> str:
    """The request's path and query, each `token` parameter's value (any case) replaced."""
    url = request.rel_url
    if not any(key.lower() == TOKEN_PARAM for key in url.query):
        return str(url)
    return str(
        url.with_query(
            [(k, REDACTED if k.lower() == TOKEN_PARAM else v) for k, v in url.query.items()]
        )
    )


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log without token values (and without headers)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %.3fs',
            request.remote,
            request.method,
            redacted_target(request),
            response.status,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class BadRequestLog(logging.Filter):
    """On aiohttp's `aiohttp.server` logger: a record about an unparsable request becomes one
    short WARNING line without the request or a traceback, at most one per `interval` seconds
    (the next one says how many were left out). Other records pass unchanged."""

    def __init__(
        self,
        interval: float = BAD_REQUEST_LOG_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        now = self._clock()
        if now < self._next:
            self._left_out += 1
            return False
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "refused a malformed HTTP request from %s (%s)%s"
        record.args = (
            remote,
            type(error).__name__,
            f"; {self._left_out} more since the last such line" if self._left_out else "",
        )
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._next = now + self._interval
        self._left_out = 0
        return True


def install_bad_request_log() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestLog) for f in server_log.filters):
        server_log.addFilter(BadRequestLog())
