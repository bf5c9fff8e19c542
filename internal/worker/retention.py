"""One retention run: tickets done longer ago than SLAWATCH_RETENTION_DAYS, erased in bounded
batches of one short transaction each (internal/usecase/erase.py)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

import psycopg_pool

from internal.obs import metrics
from internal.usecase.erase import retention_batch

log = logging.getLogger(__name__)

# Tickets per transaction: a few milliseconds of locks each, whatever the backlog.
BATCH_SIZE = 500
# A run that still finds work after this many batches leaves the rest to the next one, so one
# run never holds a worker thread for long (the first run after enabling retention on a large
# store works through its backlog over several runs).
MAX_BATCHES = 100


def run_retention(
    pool: psycopg_pool.ConnectionPool,
    now: datetime,
    days: int,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    stop: threading.Event | None = None,
) -> int:
    """Erase the tickets whose latest event is more than `days` days before `now` and that are
    resolved or closed with no clock running; the number erased. `days` 0 keeps everything."""
    if days <= 0:
        return 0
    cutoff = now - timedelta(days=days)
    erased = 0
    started = time.perf_counter()
    for _ in range(max_batches):
        with pool.connection() as conn:
            batch = retention_batch(conn, cutoff, batch_size)
        metrics.TICKETS_ERASED.labels("retention").inc(batch.erased)
        erased += batch.erased
        # Fewer candidates than asked: none left. None erased: the rest are held by writers
        # (or were just reopened); the next run tries them again.
        if batch.candidates < batch_size or batch.erased == 0:
            break
        if stop is not None and stop.is_set():
            log.info("shutting down: leaving the remaining old tickets to the next run")
            break
    if erased:
        log.info(
            "retention erased %d tickets done before %s in %.3fs",
            erased,
            cutoff.isoformat(),
            time.perf_counter() - started,
        )
    return erased
