"""Server operations: health following the database, concurrent migrations, reflection, and a
real server process stopping on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from internal.embedded.ports import free_port
from internal.embedded.postgres import EmbeddedPostgres
from internal.rpc.server import SERVICE_NAME, start_server
from internal.store.migrate import migrate, migrations
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.env import DATA, ROOT, make_settings
from support.events import event


def health_status(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def wait_for(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL this test may stop and start: always embedded, never the shared one."""
    server = EmbeddedPostgres(DATA / f"test-own-pg-{os.getpid()}-{time.monotonic_ns()}").start()
    yield server
    server.destroy()


def test_health_follows_the_database(own_postgres: EmbeddedPostgres, config_path: Path) -> None:
    """NOT_SERVING while PostgreSQL is down, SERVING again when it returns, with no restart;
    RPCs meanwhile answer UNAVAILABLE (safe to retry), not INTERNAL."""
    running = start_server(make_settings(own_postgres.url, config_path), bind="127.0.0.1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TicketServiceStub(channel)
            for name in ("", SERVICE_NAME):
                assert health_status(channel, name) == health_pb2.HealthCheckResponse.SERVING
            stub.IngestTickets(pb.IngestTicketsRequest(events=[event("before")]))

            own_postgres.stop()
            wait_for(
                lambda: (
                    health_status(channel, SERVICE_NAME)
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                )
            )
            assert health_status(channel, "") == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as info:
                stub.GetTicket(pb.GetTicketRequest(ticket_id="before"), timeout=20)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE

            own_postgres.start()
            wait_for(
                lambda: (
                    health_status(channel, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
                )
            )
            wait_for(lambda: _get_ok(stub, "before"))
    finally:
        running.stop(grace=1)


def _get_ok(stub: pb_grpc.TicketServiceStub, ticket_id: str) -> bool:
    try:
        stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id), timeout=5)
        return True
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        return False


def test_two_processes_migrating_an_empty_database_at_once(empty_database_url: str) -> None:
    """The advisory lock serialises migrations: one applies them, the other finds them done."""
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        try:
            results.append(migrate(empty_database_url))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    applied = sorted(results, key=len)
    assert applied[:3] == [[], [], []]
    every = [number for number, _, _ in migrations()]
    assert applied[3] == every
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(every),)


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    """grpcurl needs reflection: the service list names TicketService and health."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


def test_server_process_stops_on_sigterm(database_url: str, config_path: Path) -> None:
    """The real entry point serves, then exits 0 promptly on SIGTERM."""
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        SLA_CONFIG_PATH=str(config_path),
        SLAWATCH_GRPC_PORT=str(port),
        SLAWATCH_INSECURE_DEV="1",
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cmd/slawatch-server/main.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            assert health_status(channel, "") == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0].decode(errors="replace")
    assert "shutting down" in output


def test_server_refuses_to_start_on_invalid_config(database_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  high:\n    gold: {response: soon, resolution: 4h}\n")
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        SLA_CONFIG_PATH=str(bad),
        SLAWATCH_GRPC_PORT=str(free_port()),
        SLAWATCH_INSECURE_DEV="1",
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cmd/slawatch-server/main.py")],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"policies.high.gold.response" in proc.stderr


def test_calls_are_refused_at_once_while_the_database_is_known_down(
    own_postgres: EmbeddedPostgres, config_path: Path
) -> None:
    """While health says NOT_SERVING, calls that need the database answer UNAVAILABLE at once
    instead of each waiting the pool's 5 s timeout (64 threads piling up); once the database is
    back and health says SERVING, they are served again."""
    running = start_server(make_settings(own_postgres.url, config_path), bind="127.0.0.1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TicketServiceStub(channel)
            stub.IngestTickets(pb.IngestTicketsRequest(events=[event("before")]))

            own_postgres.stop()
            wait_for(
                lambda: (
                    health_status(channel, SERVICE_NAME)
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                )
            )
            calls = {
                "IngestTickets": lambda: stub.IngestTickets(
                    pb.IngestTicketsRequest(events=[event("during")]), timeout=20
                ),
                "GetTicket": lambda: stub.GetTicket(
                    pb.GetTicketRequest(ticket_id="before"), timeout=20
                ),
                "GetDashboard": lambda: stub.GetDashboard(pb.GetDashboardRequest(), timeout=20),
                "WatchAlerts": lambda: list(
                    stub.WatchAlerts(pb.WatchAlertsRequest(after_alert_id=0), timeout=20)
                ),
            }
            for name, call in calls.items():
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as info:
                    call()
                took = time.monotonic() - started
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE, name
                assert took < 1.5, f"{name} took {took:.1f}s to refuse"

            own_postgres.start()
            wait_for(
                lambda: (
                    health_status(channel, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
                )
            )
            wait_for(lambda: _get_ok(stub, "before"), timeout=5)
    finally:
        running.stop(grace=1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLAWATCH_MAX_STREAMS", "-1"),
        ("SLAWATCH_STREAM_QUEUE_SIZE", "lots"),
        ("SLAWATCH_PAGE_TOKEN_KEY", "short"),
    ],
)
def test_a_bad_stream_or_page_token_setting_is_one_line_and_exit_2(
    database_url: str, config_path: Path, name: str, value: str
) -> None:
    """The real entry point refuses the setting with a message naming it, no traceback."""
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        SLA_CONFIG_PATH=str(config_path),
        SLAWATCH_GRPC_PORT=str(free_port()),
        SLAWATCH_INSECURE_DEV="1",
        SLAWATCH_METRICS_PORT="0",
    )
    env[name] = value
    done = subprocess.run(
        [sys.executable, str(ROOT / "cmd/slawatch-server/main.py")],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert name.encode() in done.stderr
    assert b"Traceback" not in done.stderr
