"""One evaluation run: due clocks in batches until none are left (bounded per run), then the
alerts whose repeat is due, the same way."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg_pool

from internal.config.holder import TenantPolicies
from internal.obs import metrics
from internal.usecase.alert_changes import repeat_batch
from internal.usecase.evaluate import BatchResult, evaluate_batch

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
# A run that still finds work after this many batches leaves the rest to the next tick, so one
# run never holds a worker thread for long.
MAX_BATCHES = 50


@dataclass
class RunResult:
    clocks: int = 0
    alerts: list[int] = field(default_factory=list)
    repeated: list[int] = field(default_factory=list)  # alerts notified again
    notifications: list[int] = field(default_factory=list)
    # notification id -> correlation id of the ingest call behind its alert
    correlations: dict[int, str | None] = field(default_factory=dict)
    seconds: float = 0.0


def _record(batch: BatchResult) -> None:
    """Metrics and one log line per alert, after the batch committed."""
    metrics.EVALUATION_CLOCKS.inc(batch.clocks)
    for alert in batch.raised:
        metrics.ALERTS.labels(alert.kind, str(alert.level)).inc()
        log.info(
            "alert %d: %s clock of ticket %s, %s level %d",
            alert.alert_id,
            alert.clock,
            alert.ticket_id,
            alert.kind,
            alert.level,
            extra={
                "alert_id": alert.alert_id,
                "ticket_id": alert.ticket_id,
                "correlation_id": alert.correlation_id,
            },
        )


def run_evaluation(
    pool: psycopg_pool.ConnectionPool,
    policies: TenantPolicies,
    now: Callable[[], datetime],
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    stop: threading.Event | None = None,
) -> RunResult:
    """Due clocks in batches of one transaction each. When `stop` is set (the worker is shutting
    down), the run ends after the batch in hand: what is left stays due for the next tick."""
    result = RunResult()
    started = time.perf_counter()
    for _ in range(max_batches):
        with pool.connection() as conn:
            batch = evaluate_batch(conn, policies, now(), batch_size)
        _record(batch)
        result.clocks += batch.clocks
        result.alerts += batch.alerts
        result.notifications += batch.notifications
        result.correlations.update(batch.correlations)
        if batch.clocks < batch_size:
            break
        if stop is not None and stop.is_set():
            log.info("shutting down: leaving the remaining due clocks to the next tick")
            break
    for _ in range(max_batches):
        if stop is not None and stop.is_set():
            break
        with pool.connection() as conn:
            repeats = repeat_batch(conn, now(), batch_size)
        if repeats.repeated:
            metrics.ALERT_REPEATS.inc(len(repeats.repeated))
            log.info("repeated %d unacknowledged alerts", len(repeats.repeated))
        result.repeated += repeats.repeated
        result.notifications += repeats.notifications
        result.correlations.update(repeats.correlations)
        if repeats.due < batch_size:
            break
    result.seconds = time.perf_counter() - started
    metrics.EVALUATION_DURATION.observe(result.seconds)
    if result.clocks:
        log.info(
            "evaluated %d due clocks: %d alerts, %d notifications in %.3fs",
            result.clocks,
            len(result.alerts),
            len(result.notifications),
            result.seconds,
        )
    return result
