"""The TicketService on a real gRPC server on loopback, as start_server builds it, with its `now`
under the test's control instead of the wall clock's."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc

from internal.config.holder import ConfigHolder
from internal.config.sla_config import load_config
from internal.rpc.auth import AuthInterceptor
from internal.rpc.decoding import add_ticket_service
from internal.rpc.page_token import PageTokens
from internal.rpc.server import authenticator_for
from internal.rpc.ticket_service import TicketService
from internal.store.db import make_pool
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.env import make_settings


@dataclass
class Clock:
    """The servicer's `now`, set by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Clocked:
    stub: pb_grpc.TicketServiceStub
    clock: Clock
    target: str  # host:port of the server


@contextmanager
def clocked_service(database_url: str, config_path: Path, now: datetime) -> Iterator[Clocked]:
    settings = make_settings(database_url, config_path)
    pool = make_pool(database_url)
    clock = Clock(now)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[AuthInterceptor(authenticator_for(settings))],
    )
    add_ticket_service(
        TicketService(
            pool,
            ConfigHolder(load_config(config_path)),
            page_tokens=PageTokens.from_env(database_url),
            now=clock,
        ),
        server,
    )
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        with grpc.insecure_channel(target) as channel:
            yield Clocked(pb_grpc.TicketServiceStub(channel), clock, target)
    finally:
        server.stop(1).wait()
        pool.close()
