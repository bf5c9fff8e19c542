"""Dramatiq actors on the Redis broker (REDIS_URL). The worker runs them under Dramatiq's own CLI
(`cmd/slawatch-worker`), which imports this module in every worker process.

Actors are thin: the work is in `evaluation` and `delivery`; each process builds its database
pool and config once, lazily, after Dramatiq has forked it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dramatiq
import psycopg_pool
from dramatiq.brokers.redis import RedisBroker

from internal.config.holder import ConfigHolder
from internal.config.settings import Settings
from internal.config.sla_config import load_config
from internal.obs import metrics
from internal.obs.correlation import correlation
from internal.obs.logs import configure_logging
from internal.obs.metrics import PoolStats, track_policy
from internal.store import outbox_repo, state_buckets
from internal.store.db import make_pool
from internal.usecase.policy_reload import ConfigReload, start_config_reload
from internal.worker import delivery
from internal.worker.evaluation import run_evaluation
from internal.worker.middleware import CorrelationMiddleware, ShutdownFlag, shutting_down

log = logging.getLogger(__name__)

EVALUATE_QUEUE = "evaluate"
NOTIFY_QUEUE = "notify"
SWEEP_LIMIT = 1000

settings = Settings.from_env()
configure_logging(settings.log_level, "worker")
broker = RedisBroker(url=settings.redis_url)
broker.add_middleware(CorrelationMiddleware())
broker.add_middleware(ShutdownFlag())
dramatiq.set_broker(broker)


@dataclass(frozen=True)
class Runtime:
    pool: psycopg_pool.ConnectionPool
    config: ConfigHolder
    reload: ConfigReload


@functools.cache
def runtime() -> Runtime:
    pool = make_pool(settings.database_url, min_size=1, max_size=8)
    config = ConfigHolder(load_config(settings.sla_config_path))
    rt = Runtime(pool, config, start_config_reload(config, settings.sla_config_path, pool))
    PoolStats(rt.pool, "worker").start()
    track_policy(rt.config)
    return rt


def utc_now() -> datetime:
    return datetime.now(UTC)


@dramatiq.actor(queue_name=EVALUATE_QUEUE, max_retries=0, time_limit=120_000)
def evaluate(tick: int) -> None:
    """Turn due clocks into alerts and notification rows, then hand the rows to delivery."""
    rt = runtime()
    result = run_evaluation(rt.pool, rt.config.current, utc_now, stop=shutting_down)
    # Enqueued after commit; if Redis fails here the sweeper picks the rows up later.
    for notification_id in result.notifications:
        _send_delivery(notification_id, result.correlations.get(notification_id))


def _send_delivery(notification_id: int, correlation_id: str | None) -> None:
    """The delivery message carries the correlation id of the call behind its alert."""
    with correlation(correlation_id):
        deliver.send(notification_id)


@dramatiq.actor(queue_name=NOTIFY_QUEUE, max_retries=0, time_limit=60_000)
def deliver(notification_id: int) -> None:
    rt = runtime()
    outcome = delivery.deliver(
        rt.pool,
        rt.config.current,
        notification_id,
        utc_now(),
        ticket_url_template=settings.ticket_url_template,
        send_timeout=settings.slack_timeout_seconds,
    )
    if outcome.result is delivery.Result.RETRY and outcome.retry_in is not None:
        deliver.send_with_options(args=(notification_id,), delay=int(outcome.retry_in * 1000))


@dramatiq.actor(queue_name=EVALUATE_QUEUE, max_retries=0, time_limit=60_000)
def sweep() -> None:
    """Re-enqueue pending rows whose message was lost (Redis down, a worker died mid-send)."""
    rt = runtime()
    with rt.pool.connection() as conn:
        # Fresh rows are left alone: their own message is normally on its way.
        grace = timedelta(seconds=settings.sweep_grace_seconds)
        due = outbox_repo.due_pending(conn, utc_now() - grace, SWEEP_LIMIT)
    for notification_id, correlation_id in due:
        _send_delivery(notification_id, correlation_id)
    if due:
        metrics.OUTBOX_SWEPT.inc(len(due))
        log.info("sweeper re-enqueued %d pending notifications", len(due))


@dramatiq.actor(queue_name=EVALUATE_QUEUE, max_retries=0, time_limit=60_000)
def fold_dashboard_buckets() -> None:
    """Keep the dashboard's count buckets as small as the hours still ahead (hours a day past
    all count alike)."""
    rt = runtime()
    with rt.pool.connection() as conn:
        folded = state_buckets.fold_past_hours(conn, utc_now())
    if folded:
        log.info("folded %d dashboard count buckets of past hours", folded)
