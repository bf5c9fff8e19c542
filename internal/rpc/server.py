"""The gRPC server process: TicketService, standard health (tracking the database) and reflection
on one port, a sync grpc.server with a thread pool (DESIGN §2)."""

from __future__ import annotations

import logging
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
from internal.config.settings import Settings
from internal.config.sla_config import load_config
from internal.rpc.ticket_service import TicketService
from internal.store.db import make_pool, ping
from internal.store.migrate import migrate
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TicketService"].full_name
MAX_WORKERS = 64
HEALTH_INTERVAL_SECONDS = 1.0


class DatabaseHealth:
    """Polls the database and flips the health status of both service names with it."""

    def __init__(self, servicer: health.HealthServicer, database_url: str, interval: float) -> None:
        self._servicer = servicer
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
    config: ConfigHolder
    stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new RPCs, let those in flight finish within `grace`, then release everything."""
        if self.stopped.is_set():
            return
        self.health_servicer.enter_graceful_shutdown()
        self.db_health.stop()
        self.server.stop(grace).wait(grace + 1)
        self.pool.close()
        self.stopped.set()

    def wait(self) -> None:
        self.stopped.wait()


def start_server(settings: Settings, *, bind: str = "[::]") -> RunningServer:
    config = ConfigHolder(load_config(settings.sla_config_path))
    migrate(settings.database_url)
    pool = make_pool(settings.database_url, max_size=MAX_WORKERS // 2)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_TicketServiceServicer_to_server(
        TicketService(pool, config, max_batch_events=settings.max_batch_events), server
    )
    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=2),
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{bind}:{settings.grpc_port}")
    if port == 0:
        raise RuntimeError(f"cannot listen on {bind}:{settings.grpc_port}")
    db_health = DatabaseHealth(health_servicer, settings.database_url, HEALTH_INTERVAL_SECONDS)
    db_health.start()
    server.start()
    log.info("slawatch gRPC server listening on port %d (policy %s)", port, config.current.version)
    return RunningServer(server, port, pool, health_servicer, db_health, config)


def serve_forever(settings: Settings) -> None:
    running = start_server(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        threading.Thread(target=running.stop, name="shutdown").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    running.wait()
    log.info("server stopped")
