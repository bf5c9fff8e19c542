"""Authentication, roles, tenant isolation, TLS and limits on a real server over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from internal.config.sla_config import load_config
from internal.config.tokens import hash_token
from internal.embedded.ports import free_port
from internal.rpc.alert_stream import StreamOptions
from internal.rpc.server import RunningServer, SecurityConfigError, start_server
from internal.store.db import make_pool
from internal.usecase.evaluate import evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.certs import issue, make_ca
from support.env import ROOT, make_settings
from support.events import event
from support.servers import wait_for

TOKENS = {
    "acme-all": ("acme", ["ingest", "read", "watch"]),
    "acme-reader": ("acme", ["read"]),
    "acme-ingester": ("acme", ["ingest"]),
    "globex-all": ("globex", ["ingest", "read", "watch"]),
}


def secret(name: str) -> str:
    return f"s3cret-{name}-token"


def tokens_json() -> str:
    return json.dumps(
        [
            {"name": name, "sha256": hash_token(secret(name)), "tenant": tenant, "roles": roles}
            for name, (tenant, roles) in TOKENS.items()
        ]
    )


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret(name)}"),)


@pytest.fixture
def secure_server(database_url: str, config_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(
        database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=tokens_json()
    )
    running = start_server(settings, bind="127.0.0.1")
    yield running
    running.stop(grace=1)


@pytest.fixture
def secure_stub(secure_server: RunningServer) -> Iterator[pb_grpc.TicketServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{secure_server.port}") as channel:
        yield pb_grpc.TicketServiceStub(channel)


def seed_acme(stub: pb_grpc.TicketServiceStub, database_url: str, config_path: Path) -> None:
    """An acme ticket 20 minutes old, evaluated so that it has a breach alert."""
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[event("SHARED-1", created=datetime.now(UTC) - timedelta(minutes=20))]
        ),
        metadata=bearer("acme-all"),
    )
    pool = make_pool(database_url)
    try:
        with pool.connection() as conn:
            assert evaluate_batch(conn, load_config(config_path), datetime.now(UTC)).alerts
    finally:
        pool.close()


def watch_all(stub: pb_grpc.TicketServiceStub, token: str | None) -> list[pb.Alert]:
    """Every alert a replay from the start delivers within a short deadline."""
    metadata = bearer(token) if token else ()
    got: list[pb.Alert] = []
    try:
        for message in stub.WatchAlerts(
            pb.WatchAlertsRequest(after_alert_id=0), metadata=metadata, timeout=3
        ):
            got.append(message.alert)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    return got


CALLS: dict[str, Callable[[pb_grpc.TicketServiceStub, Any], object]] = {
    "IngestTickets": lambda stub, md: stub.IngestTickets(
        pb.IngestTicketsRequest(events=[event("NEW-1")]), metadata=md, timeout=10
    ),
    "GetTicket": lambda stub, md: stub.GetTicket(
        pb.GetTicketRequest(ticket_id="SHARED-1"), metadata=md, timeout=10
    ),
    "GetDashboard": lambda stub, md: stub.GetDashboard(
        pb.GetDashboardRequest(), metadata=md, timeout=10
    ),
    "WatchAlerts": lambda stub, md: list(
        stub.WatchAlerts(pb.WatchAlertsRequest(after_alert_id=0), metadata=md, timeout=10)
    ),
}
WRONG_ROLE = {
    "IngestTickets": "acme-reader",
    "GetTicket": "acme-ingester",
    "GetDashboard": "acme-ingester",
    "WatchAlerts": "acme-reader",
}


@pytest.mark.parametrize("rpc", list(CALLS))
@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("none", grpc.StatusCode.UNAUTHENTICATED),
        ("bad", grpc.StatusCode.UNAUTHENTICATED),
        ("not-bearer", grpc.StatusCode.UNAUTHENTICATED),
        ("wrong-role", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_callers_without_a_valid_token_and_role_are_refused(
    secure_stub: pb_grpc.TicketServiceStub, rpc: str, who: str, code: grpc.StatusCode
) -> None:
    metadata = {
        "none": (),
        "bad": (("authorization", "Bearer not-a-known-token"),),
        "not-bearer": (("authorization", f"Basic {secret('acme-all')}"),),
        "wrong-role": bearer(WRONG_ROLE[rpc]),
    }[who]
    with pytest.raises(grpc.RpcError) as info:
        CALLS[rpc](secure_stub, metadata)
    assert info.value.code() == code
    assert secret("acme-all") not in (info.value.details() or "")


def test_right_token_is_served_and_other_tenants_see_nothing(
    secure_stub: pb_grpc.TicketServiceStub, database_url: str, config_path: Path
) -> None:
    """The tenant comes from the token: globex cannot read, count or watch acme's tickets, and
    the same ticket id ingested by globex is a ticket of its own."""
    seed_acme(secure_stub, database_url, config_path)
    acme, globex = bearer("acme-all"), bearer("globex-all")

    assert secure_stub.GetTicket(pb.GetTicketRequest(ticket_id="SHARED-1"), metadata=acme).alerts
    with pytest.raises(grpc.RpcError) as info:
        secure_stub.GetTicket(pb.GetTicketRequest(ticket_id="SHARED-1"), metadata=globex)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    acme_dash = secure_stub.GetDashboard(pb.GetDashboardRequest(), metadata=acme)
    globex_dash = secure_stub.GetDashboard(pb.GetDashboardRequest(), metadata=globex)
    assert [t.ticket_id for t in acme_dash.tickets] == ["SHARED-1"]
    assert list(globex_dash.tickets) == []
    assert sum(c.count for c in globex_dash.counts) == 0

    assert [a.ticket_id for a in watch_all(secure_stub, "acme-all")] == ["SHARED-1"]
    assert watch_all(secure_stub, "globex-all") == []

    created = secure_stub.IngestTickets(
        pb.IngestTicketsRequest(events=[event("SHARED-1", priority="low")]), metadata=globex
    )
    assert created.results[0].outcome == pb.INGEST_OUTCOME_CREATED
    mine = secure_stub.GetTicket(pb.GetTicketRequest(ticket_id="SHARED-1"), metadata=globex)
    theirs = secure_stub.GetTicket(pb.GetTicketRequest(ticket_id="SHARED-1"), metadata=acme)
    assert (mine.ticket.priority, theirs.ticket.priority) == ("low", "high")
    assert list(mine.alerts) == []


def test_health_and_reflection_stay_open(secure_server: RunningServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{secure_server.port}") as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert status.status == health_pb2.HealthCheckResponse.SERVING


def test_server_refuses_to_start_without_tokens(database_url: str, config_path: Path) -> None:
    """Secure by default: no tokens and no explicit development switch means no server."""
    with pytest.raises(SecurityConfigError, match="SLAWATCH_INSECURE_DEV"):
        start_server(make_settings(database_url, config_path, SLAWATCH_INSECURE_DEV=""))
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        SLA_CONFIG_PATH=str(config_path),
        SLAWATCH_GRPC_PORT=str(free_port()),
    )
    env.pop("SLAWATCH_INSECURE_DEV", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "cmd/slawatch-server/main.py")],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"no tokens configured" in done.stderr


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ('[{"name": "x", "sha256": "abc", "tenant": "t", "roles": ["read"]}]', "[0].sha256"),
        (
            '[{"name": "x", "sha256": "' + "a" * 64 + '", "tenant": "t", "roles": ["root"]}]',
            "[0].roles: unknown role",
        ),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_token_config_is_refused_naming_the_field(
    database_url: str, config_path: Path, tokens: str, message: str
) -> None:
    with pytest.raises(SecurityConfigError, match=message.replace("[", r"\[")):
        start_server(make_settings(database_url, config_path, SLAWATCH_TOKENS=tokens))


def test_rate_limit_per_token(database_url: str, config_path: Path) -> None:
    """A token bucket per token: past the burst, RESOURCE_EXHAUSTED naming the limit; another
    token is unaffected."""
    settings = make_settings(
        database_url,
        config_path,
        SLAWATCH_INSECURE_DEV="",
        SLAWATCH_TOKENS=tokens_json(),
        SLAWATCH_RATE_LIMIT_PER_SECOND="0.01",
        SLAWATCH_RATE_LIMIT_BURST="3",
    )
    running = start_server(settings, bind="127.0.0.1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TicketServiceStub(channel)
            for _ in range(3):
                stub.GetDashboard(pb.GetDashboardRequest(), metadata=bearer("acme-all"))
            with pytest.raises(grpc.RpcError) as info:
                stub.GetDashboard(pb.GetDashboardRequest(), metadata=bearer("acme-all"))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "rate limit" in (info.value.details() or "")
            stub.GetDashboard(pb.GetDashboardRequest(), metadata=bearer("globex-all"))
    finally:
        running.stop(grace=1)


def error_details(err: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, float | None]:
    """The ErrorInfo of a refusal and its RetryInfo delay in seconds (None without one)."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    info, delay = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    assert info is not None, "no ErrorInfo detail"
    return info, delay


def test_rate_limited_answer_says_when_to_retry(database_url: str, config_path: Path) -> None:
    """A rate-limited call (unary or stream) carries ErrorInfo RATE_LIMITED and RetryInfo with the
    wait until the token's bucket has a request again: retrying after it is served."""
    settings = make_settings(
        database_url,
        config_path,
        SLAWATCH_INSECURE_DEV="",
        SLAWATCH_TOKENS=tokens_json(),
        SLAWATCH_RATE_LIMIT_PER_SECOND="0.5",
        SLAWATCH_RATE_LIMIT_BURST="1",
    )
    running = start_server(settings, bind="127.0.0.1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TicketServiceStub(channel)
            stub.GetDashboard(pb.GetDashboardRequest(), metadata=bearer("acme-all"))
            with pytest.raises(grpc.RpcError) as unary:
                stub.GetDashboard(pb.GetDashboardRequest(), metadata=bearer("acme-all"))
            with pytest.raises(grpc.RpcError) as stream:
                next(stub.WatchAlerts(pb.WatchAlertsRequest(), metadata=bearer("acme-all")))
            for refused in (unary.value, stream.value):
                assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                info, delay = error_details(refused)
                assert (info.reason, info.domain) == ("RATE_LIMITED", "slawatch.dev")
                assert info.metadata["token"] == "acme-all"
                # One request per 2 s, the bucket just emptied: the wait is up to 2 s.
                assert delay is not None and 0 < delay <= 2.0
            assert delay is not None
            time.sleep(delay)
            stub.GetDashboard(pb.GetDashboardRequest(), metadata=bearer("acme-all"))
    finally:
        running.stop(grace=1)


def test_concurrent_streams_per_tenant(database_url: str, config_path: Path) -> None:
    """SLAWATCH_MAX_STREAMS_PER_TENANT: a tenant at its limit gets RESOURCE_EXHAUSTED naming the
    limit, while another tenant on the same server still opens streams; a closed stream frees
    its tenant's slot."""
    settings = make_settings(
        database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=tokens_json()
    )
    running = start_server(
        settings, bind="127.0.0.1", streams=StreamOptions(max_streams=10, max_streams_per_tenant=2)
    )
    calls: list[Any] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TicketServiceStub(channel)

            def open_stream(token: str) -> Any:
                call = stub.WatchAlerts(pb.WatchAlertsRequest(), metadata=bearer(token), timeout=60)
                call.initial_metadata()  # the server has subscribed it
                calls.append(call)
                return call

            open_stream("acme-all")
            open_stream("acme-all")
            with pytest.raises(grpc.RpcError) as info:
                next(open_stream("acme-all"))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "SLAWATCH_MAX_STREAMS_PER_TENANT" in (info.value.details() or "")
            assert "at most 2" in (info.value.details() or "")

            open_stream("globex-all")
            assert running.hub.subscriber_count == 3

            calls[0].cancel()
            wait_for(lambda: running.hub.subscriber_count == 2, what="acme slot released")
            open_stream("acme-all")
            assert running.hub.subscriber_count == 3
    finally:
        for call in calls:
            call.cancel()
        running.stop(grace=1)


def test_oversized_message_is_refused(database_url: str, config_path: Path) -> None:
    running = start_server(
        make_settings(database_url, config_path, SLAWATCH_MAX_MESSAGE_BYTES="65536"),
        bind="127.0.0.1",
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TicketServiceStub(channel)
            big = [event(f"T-{i:05d}-" + "x" * 100) for i in range(600)]
            with pytest.raises(grpc.RpcError) as info:
                stub.IngestTickets(pb.IngestTicketsRequest(events=big))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        running.stop(grace=1)


def _tls_server(
    database_url: str, config_path: Path, tmp_path: Path, mutual: bool
) -> tuple[RunningServer, Any]:
    ca, ca_cert, ca_key = make_ca(tmp_path)
    server_pem = issue(tmp_path, "server", ca_cert, ca_key, server=True)
    client_pem = issue(tmp_path, "client", ca_cert, ca_key, server=False)
    extra = {"SLAWATCH_TLS_CERT": server_pem.cert, "SLAWATCH_TLS_KEY": server_pem.key}
    if mutual:
        extra["SLAWATCH_TLS_CLIENT_CA"] = ca.cert
    running = start_server(make_settings(database_url, config_path, **extra), bind="127.0.0.1")
    return running, (ca, client_pem)


def test_tls_serves_encrypted_and_refuses_plaintext(
    database_url: str, config_path: Path, tmp_path: Path
) -> None:
    running, (ca, _) = _tls_server(database_url, config_path, tmp_path, mutual=False)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=ca.cert.read_bytes())
        with grpc.secure_channel(f"localhost:{running.port}", creds) as channel:
            stub = pb_grpc.TicketServiceStub(channel)
            assert stub.GetDashboard(pb.GetDashboardRequest(), timeout=10).counts
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            with pytest.raises(grpc.RpcError) as info:
                pb_grpc.TicketServiceStub(channel).GetDashboard(pb.GetDashboardRequest(), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(grace=1)


def test_mtls_requires_a_client_certificate_from_the_ca(
    database_url: str, config_path: Path, tmp_path: Path
) -> None:
    running, (ca, client) = _tls_server(database_url, config_path, tmp_path, mutual=True)
    try:
        target = f"localhost:{running.port}"
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=ca.cert.read_bytes(),
            private_key=client.key.read_bytes(),
            certificate_chain=client.cert.read_bytes(),
        )
        with grpc.secure_channel(target, with_cert) as channel:
            stub = pb_grpc.TicketServiceStub(channel)
            assert stub.GetDashboard(pb.GetDashboardRequest(), timeout=10).counts
        (tmp_path / "other").mkdir()
        _, other_cert, other_key = make_ca(tmp_path / "other", "another CA")
        stranger = issue(tmp_path / "other", "stranger", other_cert, other_key, server=False)
        for creds in (
            grpc.ssl_channel_credentials(root_certificates=ca.cert.read_bytes()),
            grpc.ssl_channel_credentials(
                root_certificates=ca.cert.read_bytes(),
                private_key=stranger.key.read_bytes(),
                certificate_chain=stranger.cert.read_bytes(),
            ),
        ):
            with grpc.secure_channel(target, creds) as channel:
                with pytest.raises(grpc.RpcError) as info:
                    pb_grpc.TicketServiceStub(channel).GetDashboard(
                        pb.GetDashboardRequest(), timeout=5
                    )
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(grace=1)
