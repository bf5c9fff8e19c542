"""Hostile input to the gRPC server: every bad request gets INVALID_ARGUMENT naming the field,
whatever its size or encoding, and is logged and counted like any other call."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from internal.config.tokens import hash_token
from internal.rpc import page_token
from internal.rpc.server import start_server
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.env import StubFactory, make_settings
from support.events import T0, event

# gRPC clients refuse trailing metadata beyond this soft limit (some of the time), and then the
# caller sees RESOURCE_EXHAUSTED instead of our answer.
METADATA_SOFT_LIMIT = 8192


def violations(err: grpc.RpcError) -> list[error_details_pb2.BadRequest.FieldViolation]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "INVALID_ARGUMENT must carry a google.rpc.Status"
    found = []
    for detail in status.details:
        br = error_details_pb2.BadRequest()
        assert detail.Unpack(br)
        found.extend(br.field_violations)
    return found


def metadata_size(metadata: object) -> int:
    # HTTP/2 counts each entry as name + value + 32 bytes.
    return sum(len(k) + len(v) + 32 for k, v in metadata or ())  # type: ignore[attr-defined]


def test_a_batch_of_1000_bad_events_is_invalid_argument_with_a_capped_detail(
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """1,000 events, each with several violations and long values: the answer is still
    INVALID_ARGUMENT (not RESOURCE_EXHAUSTED from an oversized trailer), carrying the first
    violations and one entry saying how many more were left out."""
    bad = pb.TicketEvent(
        ticket_id="x" * 1000,
        priority="p" * 1000,
        customer_tier="gold",
    )  # and no status, no timestamps
    with pytest.raises(grpc.RpcError) as info:
        stub.IngestTickets(pb.IngestTicketsRequest(events=[bad] * 1000), timeout=30)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    found = violations(err)
    assert 40 <= len(found) <= 101
    assert found[0].field == "events[0].ticket_id"
    # Each event has 5 violations: ticket_id, priority, status, created_at, updated_at.
    left_out = 5000 - (len(found) - 1)
    assert found[-1].field == ""
    assert f"{left_out} more violations left out" in found[-1].description
    assert f"and {5000 - 5} more" in (err.details() or "")
    # The trailer (the status message travels in grpc-message beside it) stays well below.
    trailer = metadata_size(err.trailing_metadata()) + len(err.details() or "")  # type: ignore[attr-defined]
    assert trailer < METADATA_SOFT_LIMIT * 0.6


SERVICE = "slawatch.v1.TicketService"
# Each a request whose string field holds the single byte 0xff, which is not UTF-8.
UNDECODABLE = {
    "IngestTickets": b"\x0a\x03" + b"\x0a\x01\xff",  # events[0].ticket_id
    "GetTicket": b"\x0a\x01\xff",  # ticket_id
    "GetDashboard": b"\x12\x01\xff",  # page_token
    "WatchAlerts": b"\x22\x01\xff",  # priorities[0]
}


def requests_counted(method: str, code: str) -> float:
    labels = {"method": f"{SERVICE}/{method}", "code": code}
    return REGISTRY.get_sample_value("slawatch_rpc_requests_total", labels) or 0.0


@pytest.mark.parametrize("method", sorted(UNDECODABLE))
def test_an_undecodable_request_is_invalid_argument_and_counted(
    channel: grpc.Channel, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not a valid request message: INVALID_ARGUMENT (not INTERNAL), no ERROR
    log line with a traceback, and the call is counted like any other, so the error-rate alert
    sees it."""
    before = requests_counted(method, "INVALID_ARGUMENT")
    path = f"/{SERVICE}/{method}"
    with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as info:
        if method == "WatchAlerts":
            list(channel.unary_stream(path)(UNDECODABLE[method], timeout=10))
        else:
            channel.unary_unary(path)(UNDECODABLE[method], timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "not a valid" in (info.value.details() or "")  # type: ignore[attr-defined]
    assert requests_counted(method, "INVALID_ARGUMENT") == before + 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# One valid request per RPC; each test below spoils one string field of it.
VALID: dict[str, Callable[[], Message]] = {
    "IngestTickets": lambda: pb.IngestTicketsRequest(events=[event("T-1")]),
    "GetTicket": lambda: pb.GetTicketRequest(ticket_id="T-1"),
    "GetDashboard": lambda: pb.GetDashboardRequest(),
    "WatchAlerts": lambda: pb.WatchAlertsRequest(after_alert_id=0),
}
HOSTILE = {"nul": "T\x00", "escape": "\x1b[2J", "129 characters": "x" * 129}


def string_fields(message: Message, prefix: str = "") -> Iterator[tuple[str, Message, str, bool]]:
    """(path, the message holding it, field name, repeated) of every string field, nested ones
    included (events[0].ticket_id)."""
    for field in message.DESCRIPTOR.fields:
        repeated = field.is_repeated
        if field.type == field.TYPE_STRING:
            yield prefix + field.name, message, field.name, repeated
        elif field.type == field.TYPE_MESSAGE and repeated:
            items = getattr(message, field.name)  # events: spoil the first
            if items and field.message_type.file.package == "slawatch.v1":
                yield from string_fields(items[0], f"{prefix}{field.name}[0].")


def call(channel: grpc.Channel, method: str, request: Message) -> None:
    stub = pb_grpc.TicketServiceStub(channel)
    if method == "WatchAlerts":
        list(stub.WatchAlerts(request, timeout=5))  # type: ignore[arg-type]
    else:
        getattr(stub, method)(request, timeout=10)


CASES = [
    (method, path, kind)
    for method, make in VALID.items()
    for path, _, _, repeated in string_fields(make())
    for kind in [*HOSTILE, *(["101 values"] if repeated else [])]
]


@pytest.mark.parametrize(("method", "path", "kind"), CASES)
def test_every_string_field_of_every_rpc_is_validated_alike(
    channel: grpc.Channel, method: str, path: str, kind: str
) -> None:
    """NUL, control characters, more than 128 characters, more than 100 values of a list: each
    is INVALID_ARGUMENT naming the field, in every RPC (WatchAlerts filters too)."""
    request = VALID[method]()
    for found_path, holder, name, repeated in string_fields(request):
        if found_path != path:
            continue
        if kind == "101 values":
            getattr(holder, name).extend(["a"] * 101)
        elif repeated:
            getattr(holder, name).append(HOSTILE[kind])
        else:
            setattr(holder, name, HOSTILE[kind])
    with pytest.raises(grpc.RpcError) as info:
        call(channel, method, request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()  # type: ignore[attr-defined]
    fields = [v.field for v in violations(info.value)]
    assert any(f == path or f.startswith(f"{path}[") for f in fields), fields


def old_style_token(body: object) -> str:
    """A page token as the server used to make them: base64 of readable JSON."""
    raw = json.dumps(body).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("ticket_id", ["\u0000", "\ud800", "x" * 129])
def test_a_forged_page_token_is_invalid_argument_naming_page_token(
    stub: pb_grpc.TicketServiceStub, database_url: str, ticket_id: str
) -> None:
    """A token built by hand, holding what PostgreSQL cannot store: refused as `page_token`
    before any query (never UNKNOWN from the database); even one made with the server's own key
    has its contents checked like any field."""
    seed_dashboard(stub, 3)
    first = stub.GetDashboard(pb.GetDashboardRequest(page_size=1))
    fingerprint = page_token.filter_fingerprint([[], [], [], []])
    forged = old_style_token({"u": "2026-11-02T09:00:00+00:00", "t": ticket_id, "f": fingerprint})
    tokens = [forged, first.next_page_token[:-2] + forged]
    if ticket_id != "\ud800":  # not encodable, so no token can carry it
        keyed = page_token.PageTokens.from_env(database_url, env={})
        tokens.append(keyed.encode("default", T0, ticket_id, fingerprint))
    for token in tokens:
        with pytest.raises(grpc.RpcError) as info:
            stub.GetDashboard(pb.GetDashboardRequest(page_size=1, page_token=token))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert [v.field for v in violations(info.value)] == ["page_token"]


def seed_dashboard(
    stub: pb_grpc.TicketServiceStub, n: int, metadata: tuple[tuple[str, str], ...] = ()
) -> None:
    stub.IngestTickets(
        pb.IngestTicketsRequest(events=[event(f"SECRET-{i}") for i in range(n)]),
        metadata=metadata,
    )


def decoded_bytes(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_a_page_token_is_opaque_and_a_tampered_one_is_refused(
    stub: pb_grpc.TicketServiceStub,
) -> None:
    """The token reveals no ticket id, and changing any character of it makes it refused."""
    seed_dashboard(stub, 3)
    token = stub.GetDashboard(pb.GetDashboardRequest(page_size=1)).next_page_token
    assert token
    assert b"SECRET" not in decoded_bytes(token) and "SECRET" not in token
    second = stub.GetDashboard(pb.GetDashboardRequest(page_size=1, page_token=token))
    assert len(second.tickets) == 1
    for i in (0, len(token) // 2, len(token) - 1):
        tampered = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(grpc.RpcError) as info:
            stub.GetDashboard(pb.GetDashboardRequest(page_size=1, page_token=tampered))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert [v.field for v in violations(info.value)] == ["page_token"]


def test_a_page_token_outlives_the_server_that_issued_it(
    stub_factory: StubFactory, config_path: Path
) -> None:
    """Another server process on the same database (a restart, or the next replica behind the
    load balancer) accepts the token: the key is not per process."""
    first, second = stub_factory(config_path), stub_factory(config_path)
    seed_dashboard(first, 3)
    token = first.GetDashboard(pb.GetDashboardRequest(page_size=1)).next_page_token
    page = second.GetDashboard(pb.GetDashboardRequest(page_size=1, page_token=token))
    assert len(page.tickets) == 1


TENANT_TOKENS = {"acme-reader": "acme", "globex-reader": "globex"}


@pytest.fixture
def two_tenants(database_url: str, config_path: Path) -> Iterator[pb_grpc.TicketServiceStub]:
    tokens = json.dumps(
        [
            {"name": name, "sha256": hash_token(f"{name}-secret"), "tenant": tenant}
            | {"roles": ["ingest", "read"]}
            for name, tenant in TENANT_TOKENS.items()
        ]
    )
    settings = make_settings(
        database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=tokens
    )
    running = start_server(settings, bind="127.0.0.1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            yield pb_grpc.TicketServiceStub(ch)
    finally:
        running.stop(grace=1)


def test_a_page_token_of_one_tenant_is_refused_for_another(
    two_tenants: pb_grpc.TicketServiceStub,
) -> None:
    """Same filter, same server, another tenant: the token is refused, naming page_token."""
    acme = (("authorization", "Bearer acme-reader-secret"),)
    globex = (("authorization", "Bearer globex-reader-secret"),)
    for md in (acme, globex):
        seed_dashboard(two_tenants, 3, md)
    first = pb.GetDashboardRequest(page_size=1)
    token = two_tenants.GetDashboard(first, metadata=acme).next_page_token
    next_page = pb.GetDashboardRequest(page_size=1, page_token=token)
    assert two_tenants.GetDashboard(next_page, metadata=acme).tickets
    with pytest.raises(grpc.RpcError) as info:
        two_tenants.GetDashboard(next_page, metadata=globex)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert [v.field for v in violations(info.value)] == ["page_token"]
