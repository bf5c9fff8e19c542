"""The bridge against hostile or broken clients, as a real process between a real gRPC server and
real sockets: clients that never read, request lines that aiohttp cannot parse, forged query
values, and what the open /healthz shows."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from collections.abc import Iterator

import aiohttp

from internal.embedded.ports import free_port
from internal.rpc.server import RunningServer
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.alerts import write_alerts
from support.bridge import (
    WS_TIMEOUT,
    alerts_until,
    get_json,
    receive,
    run_bridge,
    silent_ws_client,
)
from support.events import event
from support.ops import scrape_when_up, value
from support.servers import wait_for

# Far beyond every test's length: the aiohttp ping timeout would otherwise also end a client
# that never answers, and hide what a test is about.
NO_PINGS = "600"


def open_websockets(metrics_port: int) -> float:
    samples = scrape_when_up(metrics_port)
    return -1 if samples is None else value(samples, "slawatch_bridge_websockets_open")


@contextlib.contextmanager
def closing_all(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_a_client_that_never_reads_is_dropped_and_frees_its_slot(
    server: RunningServer, database_url: str
) -> None:
    """A client whose TCP receive window is full (it never reads) overflows its queue; the bridge
    then cannot even send it a close frame, so it cuts the connection: within a bounded time it
    is no longer counted, and the tenant's only client slot is free for a new client."""
    metrics_port = free_port()
    with run_bridge(
        f"127.0.0.1:{server.port}",
        SLAWATCH_BRIDGE_METRICS_PORT=str(metrics_port),
        SLAWATCH_BRIDGE_CLIENT_QUEUE="20",
        SLAWATCH_BRIDGE_MAX_CLIENTS_PER_TENANT="1",
        SLAWATCH_BRIDGE_HEARTBEAT_SECONDS=NO_PINGS,
    ) as bridge:
        bridge.wait_up()
        with closing_all([silent_ws_client(bridge.port)]):
            wait_for(lambda: open_websockets(metrics_port) == 1, what="the silent client counted")
            # Far more than the socket buffers hold, so that the close frame cannot be sent.
            write_alerts(database_url, 20_000)
            wait_for(lambda: bridge.health()[1]["slow_closed"] == 1, what="queue overflowed")
            overflowed = time.monotonic()
            wait_for(lambda: open_websockets(metrics_port) == 0, 40, "the silent client dropped")
            assert time.monotonic() - overflowed < 30

            async def new_client() -> dict[str, object]:
                async with (
                    aiohttp.ClientSession() as session,
                    session.ws_connect(bridge.ws_url) as ws,
                ):
                    return await receive(ws)

            assert asyncio.run(new_client())["type"] == "hello"


def test_replays_do_not_wait_for_clients_that_never_read(
    server: RunningServer, database_url: str
) -> None:
    """Every replay slot is taken by a client resuming from before the ring that never reads;
    another client resuming from before the ring still gets its whole replay and live alerts,
    each once, because a replay holds a slot only while it reads from the server."""
    slots = 2
    with run_bridge(
        f"127.0.0.1:{server.port}",
        SLAWATCH_BRIDGE_RING_SIZE="5",
        SLAWATCH_BRIDGE_REPLAY_SLOTS=str(slots),
        SLAWATCH_BRIDGE_HEARTBEAT_SECONDS=NO_PINGS,
    ) as bridge:
        bridge.wait_up()
        first = write_alerts(database_url, 1)[0]
        # Several MB of replay each: more than the silent clients' socket buffers take.
        ids = write_alerts(database_url, 30_000)
        bridge.wait_position(ids[-1])
        silent = [silent_ws_client(bridge.port, f"after={first}") for _ in range(slots)]
        with closing_all(silent):

            async def resuming() -> list[int]:
                async with (
                    aiohttp.ClientSession() as session,
                    session.ws_connect(f"{bridge.ws_url}?after={first}") as ws,
                ):
                    assert (await receive(ws))["type"] == "hello"
                    got = await alerts_until(ws, ids[-1])
                    more = await asyncio.to_thread(write_alerts, database_url, 2)
                    return got + await alerts_until(ws, more[-1])

            got = asyncio.run(asyncio.wait_for(resuming(), WS_TIMEOUT))
    assert got[: len(ids)] == ids
    assert len(got) == len(set(got)) == len(ids) + 2


LEAKED = "leak-me-7f3a9c"


def raw_request(port: int, request: bytes) -> bytes:
    """Send `request` as is on a new connection; whatever the bridge answers before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=WS_TIMEOUT) as sock:
        sock.sendall(request)
        answer = b""
        with contextlib.suppress(ConnectionError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b"Connection: close" not in answer:
                    break
        return answer


def test_bad_requests_and_token_parameters_never_put_a_token_in_the_log(
    server: RunningServer,
) -> None:
    """Request lines aiohttp cannot parse (NUL, DEL, too long, a bad header beside an
    Authorization header) are answered 400 and logged as one short line without the request,
    and a flood of them as few lines; no traceback is logged. A token passed as `token`, `TOKEN`
    or `Token` is shown as REDACTED in the access log."""
    with run_bridge(f"127.0.0.1:{server.port}") as bridge:
        bridge.wait_up()
        bad = [
            f"GET /ws/alerts?token={LEAKED}\x00 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            f"GET /ws/alerts?token={LEAKED}\x7f HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            f"GET /api/dashboard?token={LEAKED}{'x' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            (
                f"GET /api/dashboard HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {LEAKED}\r\n"
                f"X-Bad: {LEAKED}\x00\r\n\r\n"
            ).encode(),
        ]
        for _ in range(20):
            for request in bad:
                assert (
                    raw_request(bridge.port, request)
                    .split(b"\r\n")[0]
                    .endswith(b" 400 Bad Request")
                )
        for query in ("token", "TOKEN", "Token"):
            answer = raw_request(
                bridge.port,
                f"GET /api/dashboard?{query}={LEAKED}&x=1 HTTP/1.1\r\nHost: x\r\n"
                "Connection: close\r\n\r\n".encode(),
            )
            assert answer.startswith(b"HTTP/1.1 200"), answer

        def logged() -> str:
            return bridge.log_path.read_text(errors="replace")

        wait_for(lambda: "/api/dashboard?Token=REDACTED&x=1" in logged(), what="access logged")
        log = logged()
        assert "/api/dashboard?TOKEN=REDACTED&x=1" in log
        assert LEAKED not in log
        assert "Traceback" not in log
        bad_lines = [line for line in log.splitlines() if '"aiohttp.server"' in line]
        assert 1 <= len(bad_lines) <= 2, bad_lines
        assert all('"level": "ERROR"' not in line and len(line) < 500 for line in bad_lines)


def forged(ticket_id: str) -> str:
    """A page token an attacker builds by hand in the readable form tokens once had (base64 of
    JSON naming the ticket to continue after), with `ticket_id` in it."""
    raw = {"u": "9999-12-31T00:00:00+00:00", "t": ticket_id, "f": "0" * 16}
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


INTERNAL_WORDS = ("NUL", "0x00", "psycopg", "text fields", "Traceback", "Exception", "surrogate")


def test_forged_page_tokens_and_bad_values_get_a_short_client_error(
    server: RunningServer, stub: pb_grpc.TicketServiceStub
) -> None:
    """/api/dashboard with a page token the bridge can tell is not one (control characters,
    over-long) is 400 naming page_token; a forged token that only the server can judge is never
    answered with the server's internal exception text, nor as if the server were down (503):
    the server refuses it as INVALID_ARGUMENT, and the bridge answers 400 with its message."""
    stub.IngestTickets(pb.IngestTicketsRequest(events=[event("F-1"), event("F-2")]))
    with run_bridge(f"127.0.0.1:{server.port}") as bridge:
        bridge.wait_up()
        dashboard = f"{bridge.url}/api/dashboard?page_size=1"
        status, body = get_json(dashboard)
        assert status == 200 and body["next_page_token"]
        token = body["next_page_token"]
        for bad in ("%00", "a%7Fb", "x" * 2000):
            status, body = get_json(f"{dashboard}&page_token={bad}")
            assert status == 400 and "page_token" in body["error"], (bad, body)
        for ticket_id in ("\u0000", "\ud800", "T\u0000" * 50):
            status, body = get_json(f"{dashboard}&page_token={forged(ticket_id)}")
            assert status == 400 and "page_token" in body["error"], (status, body)
            assert set(body) == {"error", "code"}
            assert len(body["error"]) <= 300
            assert not any(word in body["error"] for word in INTERNAL_WORDS), body
        status, body = get_json(f"{dashboard}&page_token={token}")
        assert status == 200 and body["tickets"], body


def test_after_must_be_an_alert_id_within_int64(server: RunningServer) -> None:
    """?after= is a non-negative 64-bit alert id in plain digits, else the handshake is 400 (a
    value beyond int64 used to be accepted and then stall the client for ever)."""
    with run_bridge(f"127.0.0.1:{server.port}") as bridge:
        bridge.wait_up()

        async def status(after: str) -> int:
            async with aiohttp.ClientSession() as session:
                try:
                    async with session.ws_connect(f"{bridge.ws_url}?after={after}") as ws:
                        assert (await receive(ws))["type"] == "hello"
                        return 101
                except aiohttp.WSServerHandshakeError as err:
                    return err.status

        refused = ["9223372036854775808", "99999999999999999999999", "-5", "1e3", "+1", "1_0", ""]
        assert {a: asyncio.run(status(a)) for a in refused} == {a: 400 for a in refused}
        assert asyncio.run(status(str(2**63 - 1))) == 101
        assert asyncio.run(status("0")) == 101
