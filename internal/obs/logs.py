"""Structured logs: one JSON object per line on stderr, from every process.

Every line has `timestamp`, `level`, `logger`, `message`, `process_name` and `pid`; lines written
while a correlation id is current carry `correlation_id`; anything passed through `extra=`
(`ticket_id`, `alert_id`, `rpc`, `status`, `latency_ms`, ...) becomes a field of its own. Fields
whose value is None are left out rather than written as null.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from internal.obs.correlation import current_correlation_id

# Attributes every LogRecord has; anything else passed through `extra=` becomes a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

_process_name: str | None = None
_factory_installed = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class CorrelationFilter(logging.Filter):
    """Adds the current correlation id to records that do not name one themselves (a line about
    one alert names that alert's id, even while a scheduler tick's id is current)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = current_correlation_id.get()
        return True


def _install_factory() -> None:
    global _factory_installed
    if _factory_installed:
        return
    old_factory = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        if _process_name is not None:
            record.process_name = _process_name
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def configure_logging(level: str = "INFO", process: str | None = None) -> None:
    """JSON lines on stderr for the whole process; safe to call again (the last call wins)."""
    global _process_name
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    # On the handler, not a logger: records propagated from every logger pass through it.
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if process:
        # Every record of this process names it, so merged logs can be told apart.
        _process_name = process
        _install_factory()
