"""slawatch-scheduler: enqueue an evaluation when the earliest clock comes due (with
DATABASE_URL: woken by ingest's announcements), and every SLAWATCH_EVAL_INTERVAL_SECONDS.

Metrics and health on SLAWATCH_SCHEDULER_METRICS_PORT (9466): /metrics, /livez (the tick loop
turns), /readyz (Redis and, when DATABASE_URL is set, PostgreSQL answer). SIGTERM or SIGINT stops
it between ticks.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import redis

from internal.config.settings import OpsSettings, Settings, SettingsError
from internal.config.sla_config import ConfigError
from internal.config.tenant_configs import load_policies
from internal.obs.health import redis_reachable
from internal.obs.logs import configure_logging
from internal.obs.metrics import track_policy
from internal.obs.ops_http import Check, start_ops_server
from internal.store.db import ping
from internal.usecase.policy_reload import start_config_reload
from internal.worker import actors
from internal.worker.deadlines import PgDeadlines
from internal.worker.scheduler import Scheduler, fold_due, retention_due

log = logging.getLogger("slawatch.scheduler")


def enqueue(workers: actors.Actors, tick: int, interval: float) -> None:
    workers.evaluate.send(tick)
    workers.sweep.send()
    if fold_due(tick, interval):
        workers.fold_dashboard_buckets.send()
    if workers.settings.retention_days and retention_due(tick, interval):
        workers.retain.send(workers.settings.retention_days)


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    try:
        settings = Settings.from_env()
        ops = OpsSettings.from_env("scheduler")
    except SettingsError as err:
        print(f"slawatch-scheduler: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, "scheduler")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, stopping after the current tick", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    interval = settings.eval_interval_seconds
    workers = actors.declare(settings)
    deadlines = PgDeadlines(settings.database_url) if settings.database_url else None
    queue_key = f"{actors.REDIS_NAMESPACE}:{actors.EVALUATE_QUEUE}"
    scheduler = Scheduler(
        client,
        interval,
        lambda tick: enqueue(workers, tick, interval),
        deadlines=deadlines,
        enqueue_due=lambda instant: workers.evaluate.send(int(instant.timestamp() // interval)),
        evaluation_waiting=lambda: bool(client.llen(queue_key)),
    )
    # The scheduler decides nothing by policy, but it validates and reports the active version
    # like every process, so a broken save shows up in its logs and metrics too.
    try:
        policy = load_policies(settings.sla_config_path)
    except ConfigError as err:
        print(f"slawatch-scheduler: invalid SLA config: {err}", file=sys.stderr)
        return 2
    track_policy(policy)
    reload = start_config_reload(policy, settings.sla_config_path)  # no database: watch only
    server = None
    if ops.metrics_port:
        ready: dict[str, Check] = {"redis": lambda: redis_reachable(settings.redis_url)}
        if settings.database_url:
            ready["database"] = lambda: ping(settings.database_url)
        server = start_ops_server(
            ops.metrics_port,
            host=ops.metrics_host,
            setting="SLAWATCH_SCHEDULER_METRICS_PORT",
            live=scheduler.alive,
            ready=ready,
        )
    log.info(
        "scheduler started: evaluations at each due instant%s and every %ss",
        "" if deadlines else " (off: no DATABASE_URL)",
        settings.eval_interval_seconds,
    )
    try:
        scheduler.run(stop)
    finally:
        if server is not None:
            server.stop()
        reload.stop()
        if deadlines is not None:
            deadlines.close()
        client.close()
    log.info("scheduler stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
