"""Shared fixtures: real PostgreSQL and Redis (the URLs if given, embedded servers if not), a fresh
migrated database per test, and a real gRPC server on a loopback port."""

from __future__ import annotations

import itertools
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import psycopg_pool
import pytest
import redis
from psycopg import sql

from internal.embedded.postgres import EmbeddedPostgres
from internal.embedded.redis import EmbeddedRedis
from internal.rpc.server import RunningServer, start_server
from internal.store.db import make_pool
from internal.store.migrate import migrate
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import write_config
from support.databases import drop_database, own_database, with_database
from support.env import DATA, StubFactory, make_settings


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL server we may create databases on."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = EmbeddedPostgres(DATA / f"test-pg-{os.getpid()}").start()
    try:
        yield server.url
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A migrated database that each test's database is copied from (fast: no DDL per test)."""
    name = f"slawatch_tmpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(with_database(pg_admin_url, name))
    yield name
    drop_database(pg_admin_url, name)


@pytest.fixture
def database_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with own_database(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    name = f"slawatch_e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis(DATA / f"test-redis-{os.getpid()}").start()
    try:
        yield server.url
    finally:
        server.stop()


def _redis_numbers() -> list[int]:
    """The Redis database numbers this test process takes in turn: 1-15, or under pytest-xdist
    its share of them, so that two workers given one REDIS_URL never share a database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    share = [n for n in range(1, 16) if (n - 1) % count == index % count]
    return share or [15]


_redis_db = itertools.cycle(_redis_numbers())


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database of this test's own (numbers 1-15 in turn, or this xdist worker's share
    of them), emptied before use."""
    url = urllib.parse.urlsplit(redis_server_url)._replace(path=f"/{next(_redis_db)}").geturl()
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "sla_config.yaml")


@pytest.fixture
def server(database_url: str, config_path: Path) -> Iterator[RunningServer]:
    running = start_server(make_settings(database_url, config_path), bind="127.0.0.1")
    yield running
    running.stop(grace=1)


@pytest.fixture
def stub_factory(database_url: str) -> Iterator[StubFactory]:
    """Servers on this test's database with a config of the test's choosing."""
    servers: list[RunningServer] = []
    channels: list[grpc.Channel] = []

    def make(config: Path) -> pb_grpc.TicketServiceStub:
        servers.append(start_server(make_settings(database_url, config), bind="127.0.0.1"))
        channels.append(grpc.insecure_channel(f"127.0.0.1:{servers[-1].port}"))
        return pb_grpc.TicketServiceStub(channels[-1])

    yield make
    for ch in channels:
        ch.close()
    for s in servers:
        s.stop(grace=1)


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.TicketServiceStub:
    return pb_grpc.TicketServiceStub(channel)


@pytest.fixture
def pool(database_url: str) -> Iterator[psycopg_pool.ConnectionPool]:
    """A connection pool on the test's database, as the processes make theirs."""
    p = make_pool(database_url)
    yield p
    p.close()
