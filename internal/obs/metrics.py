"""Every Prometheus metric of slawatch, defined once (README "Operations" lists them).

Label values are always bounded: gRPC method names of the services we register, status code
names, outcomes and results from fixed sets, alert kinds and ladder levels from the config, pool
names chosen in code. Never a ticket id, tenant or correlation id.

The Dramatiq worker runs several forked processes; it sets PROMETHEUS_MULTIPROC_DIR before any
of them starts (cmd/slawatch-worker), so the values below live in per-process files that the
worker's metrics endpoint adds up. The `multiprocess_mode` of each gauge says how: `livesum` for
amounts, `livemax` for the 0/1 policy version. Other processes keep values in memory as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

# --- gRPC (server) ---
RPC_REQUESTS = Counter(
    "slawatch_rpc_requests",
    "gRPC calls handled, by full method name and status code.",
    ["method", "code"],
)
RPC_DURATION = Histogram(
    "slawatch_rpc_duration_seconds",
    "Time to answer a unary gRPC call, by method and status code (streams are not timed).",
    ["method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RPC_STREAMS_OPEN = Gauge(
    "slawatch_rpc_streams_open",
    "Server-streaming gRPC calls open now, by method (WatchAlerts, Health/Watch).",
    ["method"],
    multiprocess_mode="livesum",
)
EVENTS_INGESTED = Counter(
    "slawatch_events_ingested",
    "Ticket events received by IngestTickets, by outcome (created, updated, duplicate,"
    " out_of_order).",
    ["outcome"],
)

# --- evaluation and alerts (worker) ---
EVALUATION_DURATION = Histogram(
    "slawatch_evaluation_duration_seconds",
    "Duration of one evaluation run (every due batch until none is left).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
EVALUATION_CLOCKS = Counter(
    "slawatch_evaluation_clocks",
    "Due SLA clocks processed by evaluations.",
)
ALERTS = Counter(
    "slawatch_alerts",
    "Alerts written, by kind (warning, breach) and escalation level.",
    ["kind", "level"],
)
ALERT_REPEATS = Counter(
    "slawatch_alert_repeats",
    "Unacknowledged alerts notified again (ladder steps with repeat_every).",
)
ALERTS_ACKNOWLEDGED = Counter(
    "slawatch_alerts_acknowledged",
    "Alerts acknowledged through AcknowledgeAlert.",
)

# --- notifications (worker) ---
NOTIFICATIONS = Counter(
    "slawatch_notifications",
    "Notification delivery attempts, by result (sent, retry, failed, skipped, waiting: held by"
    " the channel's breaker or send pacing, not an attempt; held: put aside for the channel's"
    " quiet hours, counted once per hold).",
    ["result"],
)
NOTIFICATION_ATTEMPTS = Histogram(
    "slawatch_notification_attempts",
    "Attempts a notification took, observed once when it ends sent or failed.",
    ["result"],
    # Up to the hundreds: retries go on until the delivery deadline, not for 8 attempts.
    buckets=(1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256),
)
SLACK_SEND_DURATION = Histogram(
    "slawatch_slack_send_duration_seconds",
    "Time of one Slack webhook request, whatever its answer.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# State from PostgreSQL (delivery_channels), set by whichever worker process wrote or read it
# last: "mostrecent" across processes. Labelled by channel names from the config only.
BREAKER_STATE = Gauge(
    "slawatch_delivery_breaker_state",
    "Each channel's circuit breaker: 0 closed, 1 half-open (a probe may go), 2 open.",
    ["channel"],
    multiprocess_mode="mostrecent",
)
BREAKER_FAILURES = Gauge(
    "slawatch_delivery_breaker_consecutive_failures",
    "Transient failures in a row of each channel (5xx, timeouts, connection errors).",
    ["channel"],
    multiprocess_mode="mostrecent",
)
NOTIFICATIONS_HELD = Gauge(
    "slawatch_notifications_held",
    "Notifications each configured channel holds for its quiet hours (read by the sweeper).",
    ["channel"],
    multiprocess_mode="mostrecent",
)
OUTBOX_SWEPT = Counter(
    "slawatch_outbox_swept",
    "Pending notifications re-enqueued by the sweeper (their message was lost).",
)

# --- erasure (server: DeleteTicket; worker: retention) ---
TICKETS_ERASED = Counter(
    "slawatch_tickets_erased",
    "Tickets erased with everything of theirs, by reason (delete: the DeleteTicket RPC,"
    " retention: done longer ago than SLAWATCH_RETENTION_DAYS).",
    ["reason"],
)

# --- scheduler ---
SCHEDULER_TICKS = Counter(
    "slawatch_scheduler_ticks",
    "Scheduler ticks, by result: enqueued (this scheduler won the interval tick), deadline"
    " (it won the tick of a due instant), skipped (another scheduler had it), coalesced (an"
    " evaluation was still queued), error (Redis unreachable).",
    ["result"],
)

# --- configuration ---
CONFIG_RELOADS = Counter(
    "slawatch_config_reloads",
    "SLA config reloads, by result (applied, rejected, unchanged).",
    ["result"],
)
TOKENS_RELOADS = Counter(
    "slawatch_tokens_reloads",
    "Reloads of SLAWATCH_TOKENS_FILE, by result (applied, rejected, unchanged); a rejected file"
    " leaves the last good tokens in force.",
    ["result"],
)
POLICY_VERSION = Gauge(
    "slawatch_policy_version_info",
    "1 for the SLA policy version active in this process, 0 for versions it replaced.",
    ["version"],
    multiprocess_mode="livemax",
)

# --- bridge (WebSocket side) ---
BRIDGE_WEBSOCKETS_OPEN = Gauge(
    "slawatch_bridge_websockets_open",
    "WebSocket clients connected to this bridge.",
    multiprocess_mode="livesum",
)
BRIDGE_UPSTREAM_FEEDS = Gauge(
    "slawatch_bridge_upstream_feeds",
    "Upstream WatchAlerts feeds of this bridge (one per tenant with clients), by state"
    " (connecting, up, down).",
    ["state"],
    multiprocess_mode="livesum",
)

# --- database pool ---
DB_POOL_CONNECTIONS = Gauge(
    "slawatch_db_pool_connections",
    "Connections held by the pool, by state (in_use, idle).",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "slawatch_db_pool_max_connections",
    "Largest number of connections the pool may open.",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "slawatch_db_pool_requests_waiting",
    "Callers waiting for a connection now.",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_REQUESTS = Counter(
    "slawatch_db_pool_requests",
    "Connections asked of the pool.",
    ["pool"],
)
DB_POOL_WAIT = Counter(
    "slawatch_db_pool_wait_seconds",
    "Time callers spent waiting for a connection.",
    ["pool"],
)
DB_POOL_TIMEOUTS = Counter(
    "slawatch_db_pool_timeouts",
    "Requests for a connection that timed out or failed.",
    ["pool"],
)


class Versioned(Protocol):
    @property
    def version(self) -> str: ...


class ConfigSource(Protocol):
    """What `track_policy` needs of a ConfigHolder (or of a directory's TenantConfigs)."""

    def scopes(self) -> Mapping[str, Versioned]: ...

    def on_change(self, listener: Callable[..., None]) -> None: ...


_policy_lock = threading.Lock()
_active_policy: list[str] = []


def set_policy_version(version: str) -> None:
    """Mark `version` as this process's active policy (and the one before it as replaced)."""
    set_policy_versions([version])


def set_policy_versions(versions: Iterable[str]) -> None:
    """Mark `versions` as this process's active policies (one per config of a directory of
    per-tenant files: as bounded as the files), and those before them as replaced."""
    active = sorted(set(versions))
    with _policy_lock:
        for old in _active_policy:
            if old not in active:
                POLICY_VERSION.labels(version=old).set(0)
        _active_policy[:] = active
        for version in active:
            POLICY_VERSION.labels(version=version).set(1)


def track_policy(holder: ConfigSource) -> None:
    """Follow a ConfigHolder: its versions now, and every version it switches to."""

    def show(*_: object) -> None:
        set_policy_versions(c.version for c in holder.scopes().values())

    show()
    holder.on_change(show)


class StatsPool(Protocol):
    def get_stats(self) -> dict[str, int]: ...


class PoolStats:
    """Copies psycopg_pool statistics into the pool metrics every `interval` seconds.

    A thread rather than a collector reading the pool at scrape time: in the forked worker the
    process answering scrapes is not the one holding the pool.
    """

    def __init__(self, pool: StatsPool, name: str, interval: float = 5.0) -> None:
        self._pool = pool
        self._name = name
        self._interval = interval
        self._seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pool-stats-{name}", daemon=True)

    def start(self) -> PoolStats:
        self.update()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def update(self) -> None:
        stats = self._pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        DB_POOL_CONNECTIONS.labels(self._name, "in_use").set(max(size - idle, 0))
        DB_POOL_CONNECTIONS.labels(self._name, "idle").set(idle)
        DB_POOL_MAX.labels(self._name).set(stats.get("pool_max", 0))
        DB_POOL_WAITING.labels(self._name).set(stats.get("requests_waiting", 0))
        # The pool's counters are cumulative; ours grow by what is new since the last look.
        for key, counter, scale in (
            ("requests_num", DB_POOL_REQUESTS, 1.0),
            ("requests_wait_ms", DB_POOL_WAIT, 0.001),
            ("requests_errors", DB_POOL_TIMEOUTS, 1.0),
        ):
            value = stats.get(key, 0)
            delta = value - self._seen.get(key, 0)
            if delta > 0:
                counter.labels(self._name).inc(delta * scale)
            self._seen[key] = value

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.update()
            except Exception:  # a metrics thread must never take the process down
                log.exception("cannot read pool statistics")
