"""The worker's metrics and health endpoint, run as a Dramatiq fork process.

Dramatiq forks the worker processes that run actors; cmd/slawatch-worker adds `serve` as a fork
function (`--fork-function`), so Dramatiq starts it beside them once they are up and stops it on
SIGTERM. It serves, on SLAWATCH_WORKER_METRICS_PORT:
- /metrics: the metrics of every worker process (prometheus_client multiprocess files), plus the
  backlog read at scrape time: messages in the Redis queues and pending notification rows;
- /livez: 200 while the Dramatiq main process that forked us is alive;
- /readyz: 200 when PostgreSQL and Redis both answer, else 503 naming the failing one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import psycopg
import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from internal.config.settings import OpsSettings, Settings
from internal.obs.health import redis_reachable
from internal.obs.logs import configure_logging
from internal.obs.ops_http import OpsServer
from internal.store.db import ping

log = logging.getLogger(__name__)

QUEUES = ("evaluate", "notify")  # actors.EVALUATE_QUEUE, actors.NOTIFY_QUEUE
NAMESPACE = "dramatiq"  # the RedisBroker's default key namespace
BACKLOG_TIMEOUT_SECONDS = 2


class BacklogCollector(Collector):
    """What is waiting: Dramatiq messages per queue and the notification outbox."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        self._database_url = database_url
        self._redis_url = redis_url

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._queues()
        yield from self._outbox()

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        ready = GaugeMetricFamily(
            "slawatch_queue_ready_messages",
            "Messages waiting in a Redis queue for a worker thread.",
            labels=["queue"],
        )
        total = GaugeMetricFamily(
            "slawatch_queue_messages",
            "Messages of a queue not yet acknowledged: waiting, delayed (retries) or in hand.",
            labels=["queue"],
        )
        client = redis.Redis.from_url(
            self._redis_url,
            socket_timeout=BACKLOG_TIMEOUT_SECONDS,
            socket_connect_timeout=BACKLOG_TIMEOUT_SECONDS,
        )
        try:
            for queue in QUEUES:
                key = f"{NAMESPACE}:{queue}"
                ready.add_metric([queue], client.llen(key))
                held = client.hlen(f"{key}.msgs") + client.hlen(f"{key}.DQ.msgs")
                total.add_metric([queue], held)
        except redis.RedisError as err:
            log.debug("queue depths unavailable: %s", err)
            return  # no sample rather than a wrong one; /readyz says why
        finally:
            client.close()
        yield ready
        yield total

    def _outbox(self) -> Iterator[GaugeMetricFamily]:
        try:
            with psycopg.connect(
                self._database_url, connect_timeout=BACKLOG_TIMEOUT_SECONDS
            ) as conn:
                # A row held for quiet hours is not stuck: its age counts from its release
                # (as its delivery deadline does), and not at all while it is held.
                count, oldest = conn.execute(
                    "SELECT count(*), coalesce(extract(epoch FROM now() - min("
                    "  greatest(created_at, quiet_until))"
                    "  FILTER (WHERE quiet_until IS NULL OR quiet_until <= now())), 0)"
                    " FROM notifications WHERE state = 'pending'"
                ).fetchone() or (0, 0)
        except psycopg.Error as err:
            log.debug("outbox backlog unavailable: %s", err)
            return
        yield GaugeMetricFamily(
            "slawatch_outbox_pending", "Notifications not yet sent or failed.", value=count
        )
        yield GaugeMetricFamily(
            "slawatch_outbox_oldest_pending_seconds",
            "Age of the oldest pending notification (0 when none is pending); a row held for its"
            " channel's quiet hours counts from its release.",
            value=float(oldest),
        )


def serve() -> int:
    """The fork function: serve until Dramatiq's SIGTERM handler ends this process."""
    settings = Settings.from_env()
    ops = OpsSettings.from_env("worker")
    configure_logging(settings.log_level, "worker")
    parent = os.getppid()
    try:
        server = OpsServer(
            ops.metrics_port,
            host=ops.metrics_host,
            live=lambda: os.getppid() == parent,
            ready={
                "database": lambda: ping(settings.database_url),
                "redis": lambda: redis_reachable(settings.redis_url),
            },
            collectors=[BacklogCollector(settings.database_url, settings.redis_url)],
        )
    except OSError as err:
        # The workers go on without it; failing probes and a target down in Prometheus show it.
        log.error(
            "metrics and health endpoint off: cannot listen on %s:%d"
            " (SLAWATCH_WORKER_METRICS_PORT): %s",
            ops.metrics_host,
            ops.metrics_port,
            err.strerror or err,
        )
        return 1
    server.serve_forever()
    return 0
