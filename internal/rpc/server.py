"""The gRPC server process: TicketService, standard health (tracking the database) and reflection
on one port, a sync grpc.server with a thread pool (DESIGN §2).

Thread pool sizing: each open WatchAlerts stream holds one thread for its whole life, so the pool
has UNARY_WORKERS threads for everything else plus one per allowed stream
(StreamOptions.max_streams, env SLAWATCH_MAX_STREAMS). The same total caps concurrent RPCs, so an
overloaded server answers RESOURCE_EXHAUSTED instead of queueing calls behind streams that never
end.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType

import grpc
import psycopg_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from internal.config.holder import ConfigHolder
from internal.config.settings import OpsSettings, Settings
from internal.config.tenant_configs import TenantConfigs, load_policies
from internal.config.tokens import AuthConfigError, Authenticator, build_authenticator
from internal.config.tokens_watcher import TokensWatcher, start_tokens_reload
from internal.obs.grpc_interceptor import ObservabilityInterceptor
from internal.obs.metrics import PoolStats, track_policy
from internal.obs.ops_http import start_ops_server
from internal.rpc.alert_hub import AlertHub
from internal.rpc.alert_stream import StreamOptions
from internal.rpc.auth import AuthInterceptor, stream_guard
from internal.rpc.decoding import add_ticket_service
from internal.rpc.page_token import PageTokens
from internal.rpc.ticket_service import TicketService
from internal.store.db import FailFastPool, make_pool, ping
from internal.store.migrate import migrate
from internal.usecase.policy_reload import ConfigReload, start_config_reload
from slawatch.v1 import ticket_service_pb2 as pb

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TicketService"].full_name
UNARY_WORKERS = 64
HEALTH_INTERVAL_SECONDS = 1.0
HUB_CONNECT_WAIT_SECONDS = 10.0

# Streams stay open for days, often through NATs and load balancers that drop silent TCP
# connections after a few minutes: ping every 30 s even when no alert flows (unlimited pings
# without data), drop a peer that does not answer within 10 s, and let clients ping us as often
# as every 10 s without being told "too many pings". No max_connection_idle/age: a long-lived
# stream is the normal case, not a leak.
KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class DatabaseHealth:
    """Polls the database and flips the health status of both service names with it, and the
    pool's fail-fast flag: while the database is down, calls are refused at once."""

    def __init__(
        self,
        servicer: health.HealthServicer,
        database_url: str,
        interval: float,
        pool: FailFastPool | None = None,
    ) -> None:
        self._servicer = servicer
        self._pool = pool
        self._url = database_url
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-health", daemon=True)
        self.serving: bool | None = None

    def start(self) -> None:
        self.check()
        self._thread.start()

    def check(self) -> None:
        up = ping(self._url, timeout=max(self._interval, 1.0))
        if up != self.serving:
            log.info(
                "database %s: health %s",
                "reachable" if up else "unreachable",
                "SERVING" if up else "NOT_SERVING",
            )
            self.serving = up
            if self._pool is not None:
                self._pool.mark_reachable(up)
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if up
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self._servicer.set(name, status)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    pool: psycopg_pool.ConnectionPool
    health_servicer: health.HealthServicer
    db_health: DatabaseHealth
    config: ConfigHolder | TenantConfigs
    hub: AlertHub
    watcher: ConfigReload
    tokens_watcher: TokensWatcher | None = None  # with SLAWATCH_TOKENS_FILE
    stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new RPCs, end alert streams with UNAVAILABLE (clients resume elsewhere), let the
        other RPCs in flight finish within `grace`, then release everything."""
        if self.stopped.is_set():
            return
        self.health_servicer.enter_graceful_shutdown()
        self.db_health.stop()
        self.watcher.stop()
        if self.tokens_watcher is not None:
            self.tokens_watcher.stop()
        # Streams first, while the transport still carries their final status to the client.
        self.hub.close()
        self.server.stop(grace).wait(grace + 1)
        self.pool.close()
        self.stopped.set()

    def wait(self) -> None:
        self.stopped.wait()


class SecurityConfigError(ValueError):
    """No way to authenticate callers, or unusable TLS files: the server does not start."""


def authenticator_for(settings: Settings) -> Authenticator:
    try:
        return build_authenticator(
            settings.tokens_json,
            settings.tokens_file,
            insecure_dev=settings.insecure_dev,
            rate_per_second=settings.rate_limit_per_second,
            burst=settings.rate_limit_burst,
        )
    except AuthConfigError as err:
        raise SecurityConfigError(str(err)) from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; mTLS (client certificates required and verified)
    when a client CA is configured too."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.tls_client_ca:
            raise SecurityConfigError("SLAWATCH_TLS_CLIENT_CA needs SLAWATCH_TLS_CERT and _KEY")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise SecurityConfigError("SLAWATCH_TLS_CERT and SLAWATCH_TLS_KEY go together")
    try:
        key, cert = settings.tls_key.read_bytes(), settings.tls_cert.read_bytes()
        ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    except OSError as err:
        raise SecurityConfigError(f"cannot read TLS file {err.filename}: {err.strerror}") from None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def start_server(
    settings: Settings,
    *,
    bind: str = "[::]",
    streams: StreamOptions | None = None,
    page_tokens: PageTokens | None = None,
) -> RunningServer:
    streams = streams or StreamOptions.from_env()
    page_tokens = page_tokens or PageTokens.from_env(settings.database_url)
    auth = authenticator_for(settings)
    credentials = server_credentials(settings)
    config = load_policies(settings.sla_config_path)
    migrate(settings.database_url)
    pool = make_pool(settings.database_url, max_size=UNARY_WORKERS // 2)
    hub = AlertHub(
        settings.database_url,
        max_subscribers=streams.max_streams,
        max_per_tenant=streams.max_streams_per_tenant,
        queue_size=streams.queue_size,
        poll_interval=streams.poll_interval,
        # A single read never exceeds a queue on its own; falling behind takes several.
        page_size=min(1000, streams.queue_size),
        guard=stream_guard(auth),
    )
    # A reload of the tokens file ends the streams of the tokens it revokes.
    auth.on_change(lambda _change: hub.recheck())
    hub.start(wait=HUB_CONNECT_WAIT_SECONDS)
    threads = UNARY_WORKERS + streams.max_streams
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            # Off unless several processes share the port on purpose: then a second server
            # started by mistake on a taken port fails instead of silently sharing it.
            ("grpc.so_reuseport", 1 if settings.server_processes > 1 else 0),
            *KEEPALIVE_OPTIONS,
        ],
        maximum_concurrent_rpcs=threads,
        # Observability first, so that refusals by authentication are logged and counted too.
        interceptors=[ObservabilityInterceptor(), AuthInterceptor(auth)],
    )
    add_ticket_service(
        TicketService(
            pool,
            config,
            max_batch_events=settings.max_batch_events,
            page_tokens=page_tokens,
            alerts=hub,
            stream_options=streams,
        ),
        server,
    )
    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=2),
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{bind}:{settings.grpc_port}"
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        hub.close()
        pool.close()
        raise RuntimeError(f"cannot listen on {bind}:{settings.grpc_port}")
    db_health = DatabaseHealth(
        health_servicer, settings.database_url, HEALTH_INTERVAL_SECONDS, pool
    )
    db_health.start()
    watcher = start_config_reload(config, settings.sla_config_path, pool)
    tokens_watcher = start_tokens_reload(auth, settings.tokens_json, settings.tokens_file)
    server.start()
    log.info("slawatch gRPC server listening on port %d (%s)", port, config.describe())
    return RunningServer(
        server, port, pool, health_servicer, db_health, config, hub, watcher, tokens_watcher
    )


# After the grace period, streams and RPCs are cancelled and the pool closes; a handler thread
# still blocked in the database after this much longer is abandoned by exiting the process, and
# PostgreSQL rolls its transaction back.
EXIT_DEADLINE_AFTER_GRACE_SECONDS = 5.0


def _exit_if_stuck(seconds: float) -> None:
    def give_up() -> None:
        log.error(
            "work still in flight %.0fs after SIGTERM; exiting (open transactions roll back)",
            seconds,
        )
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()


def serve_forever(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then stop within SLAWATCH_SHUTDOWN_GRACE_SECONDS (plus a
    few seconds): health turns NOT_SERVING, new calls are refused, calls in flight finish."""
    ops = OpsSettings.from_env("server")
    running = start_server(settings)
    # What start-up allocated (modules, descriptors, the config) lives as long as the process:
    # kept out of the collector's full passes, which otherwise walk it during calls.
    gc.collect()
    gc.freeze()
    PoolStats(running.pool, "server").start()
    track_policy(running.config)
    metrics_server = (
        start_ops_server(ops.metrics_port, host=ops.metrics_host, setting="SLAWATCH_METRICS_PORT")
        if ops.metrics_port
        else None
    )

    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return  # a supervisor may signal the whole process group as well as us
        stopping.set()
        log.info("received %s, shutting down", signal.Signals(signum).name)
        _exit_if_stuck(ops.server_grace_seconds + EXIT_DEADLINE_AFTER_GRACE_SECONDS)
        threading.Thread(
            target=running.stop, args=(ops.server_grace_seconds,), name="shutdown"
        ).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    running.wait()
    if metrics_server is not None:
        metrics_server.stop()
    log.info("server stopped")
