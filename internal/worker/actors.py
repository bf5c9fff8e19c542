"""Dramatiq actors on the Redis broker (REDIS_URL).

Importing this module does nothing: `setup` (the worker processes) or `declare` (the scheduler,
which only sends) builds the broker and declares the actors on it, once per process. The worker
runs under Dramatiq's own CLI (`cmd/slawatch-worker`), which is given `internal.worker.actors:setup`
as its broker: the CLI imports the module in every worker process, calls `setup`, and consumes
from the broker it set.

Actors are thin: the work is in `evaluation` and `delivery`; each process builds its database
pool and config once, lazily, after Dramatiq has forked it.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec

import dramatiq
import psycopg
import psycopg_pool
from dramatiq.brokers.redis import RedisBroker

from internal.config.holder import ConfigHolder
from internal.config.settings import Settings
from internal.config.tenant_configs import TenantConfigs, load_policies
from internal.notify.notifier import for_channel
from internal.obs import metrics
from internal.obs.correlation import correlation
from internal.obs.logs import configure_logging
from internal.obs.metrics import PoolStats, track_policy
from internal.store import channel_repo, outbox_repo, state_buckets
from internal.store.db import make_pool
from internal.usecase.policy_reload import ConfigReload, start_config_reload
from internal.worker import delivery
from internal.worker.breaker import ChannelState
from internal.worker.evaluation import run_evaluation
from internal.worker.middleware import CorrelationMiddleware, ShutdownFlag, shutting_down
from internal.worker.retention import run_retention

log = logging.getLogger(__name__)

EVALUATE_QUEUE = "evaluate"
NOTIFY_QUEUE = "notify"
REDIS_NAMESPACE = "dramatiq"  # the RedisBroker's default key namespace
SWEEP_LIMIT = 1000
# The config version whose quiet hours this process last applied to the held rows.
_quiet_applied: dict[str, str] | None = None  # scope -> version of the holds applied

P = ParamSpec("P")


@dataclass(frozen=True)
class Actors:
    """The actors of this process, declared on its broker; `send` on them enqueues."""

    settings: Settings
    broker: dramatiq.Broker
    evaluate: dramatiq.Actor[Any, Any]
    deliver: dramatiq.Actor[Any, Any]
    sweep: dramatiq.Actor[Any, Any]
    fold_dashboard_buckets: dramatiq.Actor[Any, Any]
    retain: dramatiq.Actor[Any, Any]


_declared: Actors | None = None
_declare_lock = threading.Lock()


def setup() -> None:
    """The worker processes' start: settings, JSON logging, then the broker and actors.

    Dramatiq's CLI calls it (broker argument `internal.worker.actors:setup`) before it starts
    the worker threads; cmd/slawatch-worker has already refused a malformed environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, "worker")
    declare(settings)


def declare(settings: Settings) -> Actors:
    """Build the Redis broker, make it Dramatiq's global broker and declare the actors on it;
    later calls return the same actors."""
    global _declared
    with _declare_lock:
        if _declared is None:
            broker = RedisBroker(url=settings.redis_url)
            broker.add_middleware(CorrelationMiddleware())
            broker.add_middleware(ShutdownFlag())
            dramatiq.set_broker(broker)
            evaluate_on = functools.partial(
                dramatiq.actor, broker=broker, queue_name=EVALUATE_QUEUE, max_retries=0
            )
            _declared = Actors(
                settings=settings,
                broker=broker,
                evaluate=evaluate_on(time_limit=120_000)(evaluate),
                deliver=dramatiq.actor(
                    broker=broker, queue_name=NOTIFY_QUEUE, max_retries=0, time_limit=60_000
                )(deliver),
                sweep=evaluate_on(time_limit=60_000)(sweep),
                fold_dashboard_buckets=evaluate_on(time_limit=60_000)(fold_dashboard_buckets),
                retain=evaluate_on(time_limit=120_000)(retain),
            )
        return _declared


def declared() -> Actors:
    if _declared is None:
        raise RuntimeError("internal.worker.actors: call setup() or declare() first")
    return _declared


@dataclass(frozen=True)
class Runtime:
    pool: psycopg_pool.ConnectionPool
    config: ConfigHolder | TenantConfigs
    reload: ConfigReload


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """This process's pool, config and reload watch, built on first use by one thread only:
    worker threads taking their first messages at once wait for it instead of each building its
    own (functools.cache takes no lock: 16 threads once made 16 pools). A build that raises (a
    refused config) is tried again by the next message."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = _build_runtime(declared().settings)
    return _runtime


def _build_runtime(settings: Settings) -> Runtime:
    pool = make_pool(settings.database_url, min_size=1, max_size=8)
    try:
        config = load_policies(settings.sla_config_path)
        rt = Runtime(pool, config, start_config_reload(config, settings.sla_config_path, pool))
    except BaseException:
        pool.close()  # the next try makes its own
        raise
    PoolStats(rt.pool, "worker").start()
    track_policy(rt.config)
    return rt


def _dropped_on_database_error(
    then: str,
) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """An actor whose work fails on PostgreSQL (down, a pool timeout, a deadlock) ends with one
    warning line instead of a traceback and a dead-lettered message: the work is still recorded
    as to be done (clocks due, rows pending), and `then` says what redoes it."""

    def wrap(fn: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                fn(*args, **kwargs)
            except psycopg.OperationalError as err:
                reason = " ".join(str(err).split())[:200] or type(err).__name__
                log.warning("%s dropped: database unavailable (%s); %s", fn.__name__, reason, then)

        return run

    return wrap


def utc_now() -> datetime:
    return datetime.now(UTC)


@_dropped_on_database_error("the next tick redoes it")
def evaluate(tick: int) -> None:
    """Turn due clocks into alerts and notification rows, then hand the rows to delivery."""
    rt = runtime()
    result = run_evaluation(rt.pool, rt.config, utc_now, stop=shutting_down)
    # Enqueued after commit; if Redis fails here the sweeper picks the rows up later.
    for notification_id in result.notifications:
        _send_delivery(notification_id, result.correlations.get(notification_id))


def _send_delivery(notification_id: int, correlation_id: str | None) -> None:
    """The delivery message carries the correlation id of the call behind its alert."""
    with correlation(correlation_id):
        declared().deliver.send(notification_id)


@_dropped_on_database_error("the row stays pending and the sweeper hands it back")
def deliver(notification_id: int, holds_slot: bool = False) -> None:
    """Send the oldest due notification of `notification_id`'s channel. `holds_slot`: the
    message comes back for the send slot its channel handed it."""
    rt = runtime()
    settings = declared().settings
    timeout = float(settings.slack_timeout_seconds)
    outcome = delivery.deliver(
        rt.pool,
        rt.config,
        notification_id,
        utc_now(),
        notifier_for=functools.partial(
            for_channel,
            env=os.environ,
            timeout=timeout,
            ticket_url_template=settings.ticket_url_template,
        ),
        # Outlasts any send, so a live worker's claim is never taken over.
        lease=timedelta(seconds=timeout * 3),
        policy=delivery.DeliveryPolicy.from_settings(settings),
        holds_slot=holds_slot,
        clock=utc_now,
    )
    again = (delivery.Result.RETRY, delivery.Result.WAITING)
    if outcome.result in again and outcome.retry_in is not None:
        declared().deliver.send_with_options(
            args=(notification_id, outcome.holds_slot), delay=int(outcome.retry_in * 1000)
        )


@_dropped_on_database_error("the next tick sweeps again")
def sweep() -> None:
    """Re-enqueue pending rows whose message was lost (Redis down, a worker died mid-send).

    Fresh rows are left alone: their own message is normally on its way. So is every row while
    the notify queue still has messages waiting: a burst the workers take longer than the grace
    to work through is not lost, and re-enqueuing it would only add to the queue (25,880
    redundant messages in a 16,000-alert burst). Rows lost meanwhile are swept once the queue
    has run dry."""
    actors = declared()
    broker = actors.broker
    if isinstance(broker, RedisBroker):
        waiting = int(broker.client.llen(f"{broker.namespace}:{NOTIFY_QUEUE}"))
        if waiting:
            log.debug("sweep skipped: %d delivery messages still queued", waiting)
            return
    global _quiet_applied
    rt = runtime()
    config = rt.config
    versions = {scope: c.version for scope, c in config.scopes().items()}
    own = delivery.own_tenants(config)
    now = utc_now()
    with rt.pool.connection() as conn:
        if _quiet_applied != versions:
            # Holds taken under an earlier config (before a reload, or a restart with a new
            # file) follow this one's quiet hours.
            delivery.apply_quiet_hours(conn, config, now)
            _quiet_applied = versions
        released = outbox_repo.take_released(conn, now, SWEEP_LIMIT, own)
        grace = timedelta(seconds=actors.settings.sweep_grace_seconds)
        lost = outbox_repo.take_lost(conn, now - grace, now, SWEEP_LIMIT, own)
        channels = channel_repo.all_rows(conn)
        delivery.show_held(conn, config, now)
    # The breaker gauges follow the table even while no delivery runs in this process.
    for (scope, channel), row in channels.items():
        delivery.show_breaker(
            config, delivery.lane_of(config, scope, channel), ChannelState.from_row(row)
        )
    for notification_id, correlation_id in released + lost:
        _send_delivery(notification_id, correlation_id)
    if released:
        log.info("sweeper handed back %d notifications whose quiet hours ended", len(released))
    if lost:
        metrics.OUTBOX_SWEPT.inc(len(lost))
        log.info("sweeper re-enqueued %d pending notifications", len(lost))


@_dropped_on_database_error("the next fold tick folds them")
def fold_dashboard_buckets() -> None:
    """Keep the dashboard's count buckets as small as the hours still ahead (hours a day past
    all count alike)."""
    rt = runtime()
    with rt.pool.connection() as conn:
        folded = state_buckets.fold_past_hours(conn, utc_now())
    if folded:
        log.info("folded %d dashboard count buckets of past hours", folded)


@_dropped_on_database_error("the next retention tick erases them")
def retain(days: int) -> None:
    """Erase the tickets done more than `days` days ago, in batches. The scheduler sends its own
    SLAWATCH_RETENTION_DAYS, so the retention is configured in one place."""
    rt = runtime()
    run_retention(rt.pool, utc_now(), days, stop=shutting_down)
