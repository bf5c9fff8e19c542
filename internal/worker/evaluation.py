"""One evaluation run: due clocks in batches until none are left (bounded per run)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg_pool

from internal.config.sla_config import SlaConfig
from internal.store.evaluate_repo import evaluate_batch

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
# A run that still finds work after this many batches leaves the rest to the next tick, so one
# run never holds a worker thread for long.
MAX_BATCHES = 50


@dataclass
class RunResult:
    clocks: int = 0
    alerts: list[int] = field(default_factory=list)
    notifications: list[int] = field(default_factory=list)
    seconds: float = 0.0


def run_evaluation(
    pool: psycopg_pool.ConnectionPool,
    config: SlaConfig,
    now: Callable[[], datetime],
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> RunResult:
    result = RunResult()
    started = time.perf_counter()
    for _ in range(max_batches):
        with pool.connection() as conn:
            batch = evaluate_batch(conn, config, now(), batch_size)
        result.clocks += batch.clocks
        result.alerts += batch.alerts
        result.notifications += batch.notifications
        if batch.clocks < batch_size:
            break
    result.seconds = time.perf_counter() - started
    if result.clocks:
        log.info(
            "evaluated %d due clocks: %d alerts, %d notifications in %.3fs",
            result.clocks,
            len(result.alerts),
            len(result.notifications),
            result.seconds,
        )
    return result
