"""The WebSocket bridge as a real process between a real gRPC server and real WebSocket clients:
the JSON it sends, resuming with ?after= from its ring or from before it, upstream loss and
recovery, slow clients, the origin allow-list, /healthz, /api/dashboard and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from internal.bridge.client import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW
from internal.config.tokens import hash_token
from internal.embedded.ports import free_port
from internal.rpc.server import RunningServer, start_server
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.alerts import Shape, breach_by_evaluation, write_alerts
from support.bridge import WS_TIMEOUT, Bridge, alerts_until, get_json, receive, run_bridge
from support.configs import config_text
from support.env import make_settings
from support.events import event, ts
from support.ops import scrape, scrape_when_up, value
from support.servers import Servers, wait_for


@pytest.fixture
def servers(database_url: str, config_path: Path) -> Iterator[Servers]:
    s = Servers(database_url, config_path)
    yield s
    s.stop()


@pytest.fixture
def bridge(server: RunningServer) -> Iterator[Bridge]:
    with run_bridge(f"127.0.0.1:{server.port}") as b:
        b.wait_up()
        yield b


def test_alert_reaches_websocket_as_documented_json(
    server: RunningServer, stub: pb_grpc.TicketServiceStub, database_url: str, bridge: Bridge
) -> None:
    """hello first (with the resume point), then an alert produced by ingest and evaluation, in
    the documented shape."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[int]]:
        async with aiohttp.ClientSession() as session, session.ws_connect(bridge.ws_url) as ws:
            hello = await receive(ws)
            ids = await asyncio.to_thread(
                breach_by_evaluation, stub, database_url, server.config.current, "WS-1"
            )
            while (message := await receive(ws))["type"] != "alert":
                pass
            return hello, message, ids

    hello, message, ids = asyncio.run(scenario())
    assert hello["type"] == "hello" and hello["upstream"] == "up"
    assert isinstance(hello["resume_after"], int) and hello["heartbeat_seconds"] > 0
    alert = message["alert"]
    assert alert["alert_id"] == ids[0]
    assert alert["ticket_id"] == "WS-1"
    assert (alert["kind"], alert["clock"], alert["escalation_level"]) == ("breach", "response", 3)
    assert (alert["priority"], alert["customer_tier"]) == ("high", "gold")
    assert alert["policy_version"] == server.config.current.version
    assert alert["due_at"].endswith("Z") and alert["created_at"].endswith("Z")
    assert set(alert) == {
        "alert_id",
        "ticket_id",
        "clock",
        "kind",
        "escalation_level",
        "due_at",
        "created_at",
        "priority",
        "customer_tier",
        "policy_version",
        "metric",
        "cycle",
        "repeat",
        "acknowledged_at",
        "acknowledged_by",
        "ack_note",
    }
    assert (alert["metric"], alert["cycle"]) == ("response", 1)
    assert (alert["repeat"], alert["acknowledged_at"], alert["acknowledged_by"]) == (0, None, None)


def test_resume_from_the_ring_and_from_before_it(server: RunningServer, database_url: str) -> None:
    """?after= inside the ring is served from memory, older than the ring by a replay from the
    server; both continue live, each alert once and in order."""
    with run_bridge(f"127.0.0.1:{server.port}", SLAWATCH_BRIDGE_RING_SIZE="5") as bridge:
        bridge.wait_up()
        ids = write_alerts(database_url, 3) + write_alerts(database_url, 20)
        bridge.wait_position(ids[-1])

        async def scenario() -> tuple[list[int], list[int]]:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"{bridge.ws_url}?after={ids[0]}") as old,
                session.ws_connect(f"{bridge.ws_url}?after={ids[-3]}") as recent,
            ):
                assert (await receive(old))["resume_after"] == ids[0]
                assert (await receive(recent))["resume_after"] == ids[-3]
                got_old = await alerts_until(old, ids[-1])
                got_recent = await alerts_until(recent, ids[-1])
                more = await asyncio.to_thread(write_alerts, database_url, 2)
                got_old += await alerts_until(old, more[-1])
                got_recent += await alerts_until(recent, more[-1])
                return got_old, got_recent

        got_old, got_recent = asyncio.run(scenario())
    assert got_old[: len(ids) - 1] == ids[1:]
    assert got_recent[:2] == ids[-2:]
    assert got_old[len(ids) - 1 :] == got_recent[2:]
    assert len(got_old) == len(set(got_old)) == len(ids) - 1 + 2


def test_upstream_loss_and_recovery(servers: Servers, database_url: str) -> None:
    """When the gRPC server goes away the bridge reports it (status message, /healthz 503) and
    keeps its WebSockets; when the server returns it resumes from its last alert, so clients
    receive what was written meanwhile."""
    servers.start()
    with run_bridge(servers.target) as bridge:
        bridge.wait_up()

        async def scenario() -> tuple[list[int], list[int]]:
            async with aiohttp.ClientSession() as session, session.ws_connect(bridge.ws_url) as ws:
                await receive(ws)
                before = await asyncio.to_thread(write_alerts, database_url, 3)
                got = await alerts_until(ws, before[-1])

                await asyncio.to_thread(servers.stop)
                while (await receive(ws)) != {"type": "status", "upstream": "down"}:
                    pass
                status, body = await asyncio.to_thread(bridge.health)
                assert status == 503 and body["upstream"] == "down"
                during = await asyncio.to_thread(write_alerts, database_url, 4)

                await asyncio.to_thread(servers.start)
                await asyncio.to_thread(bridge.wait_up)
                after = await asyncio.to_thread(write_alerts, database_url, 2)
                got += await alerts_until(ws, after[-1])
                return got, before + during + after

        got, expected = asyncio.run(scenario())
    assert got == expected


def test_slow_client_is_closed_with_4008_and_resumes(
    server: RunningServer, database_url: str
) -> None:
    """A client that stops reading is closed with 4008 and a reason naming the id to resume
    after; reconnecting with it delivers the rest, nothing twice. Others are not held back."""
    with run_bridge(f"127.0.0.1:{server.port}", SLAWATCH_BRIDGE_CLIENT_QUEUE="20") as bridge:
        bridge.wait_up()

        async def scenario() -> tuple[list[int], list[int], aiohttp.WSMessage]:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(bridge.ws_url) as slow,
                session.ws_connect(bridge.ws_url) as fast,
            ):
                start = (await receive(slow))["resume_after"]
                await receive(fast)
                written: list[int] = []
                fast_got: list[int] = []
                while (await asyncio.to_thread(bridge.health))[1]["slow_closed"] == 0:
                    written += await asyncio.to_thread(write_alerts, database_url, 200)
                    fast_got += await alerts_until(fast, written[-1])
                    assert len(written) < 200_000, "the slow client was never closed"
                assert fast_got == written

                got: list[int] = []
                while True:
                    msg = await slow.receive(timeout=WS_TIMEOUT)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    message = json.loads(msg.data)
                    if message["type"] == "alert":
                        got.append(message["alert"]["alert_id"])
                closed = msg
                resume = got[-1] if got else start
                async with session.ws_connect(f"{bridge.ws_url}?after={resume}") as again:
                    await receive(again)
                    got += await alerts_until(again, written[-1])
                return got, written, closed

        got, written, closed = asyncio.run(scenario())
    assert closed.type == aiohttp.WSMsgType.CLOSE
    assert closed.data == CLOSE_TOO_SLOW
    assert "after=" in closed.extra
    assert got == written


def test_origin_allow_list(server: RunningServer) -> None:
    """Browsers on other origins are refused (403) unless listed; the bridge's own page and
    non-browser clients (no Origin) are accepted."""
    with run_bridge(
        f"127.0.0.1:{server.port}", SLAWATCH_BRIDGE_ALLOWED_ORIGINS="https://dash.example.com"
    ) as bridge:

        async def handshake(origin: str | None) -> int:
            headers = {"Origin": origin} if origin else {}
            async with aiohttp.ClientSession() as session:
                try:
                    async with session.ws_connect(bridge.ws_url, headers=headers) as ws:
                        await receive(ws)
                        return 101
                except aiohttp.WSServerHandshakeError as err:
                    return err.status

        async def scenario() -> list[int]:
            return [
                await handshake(None),
                await handshake(bridge.url),
                await handshake("https://dash.example.com"),
                await handshake("https://evil.example.com"),
                await handshake("http://localhost:1"),
            ]

        assert asyncio.run(scenario()) == [101, 101, 101, 403, 403]


def test_bad_after_is_refused(bridge: Bridge) -> None:
    async def status(query: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"{bridge.ws_url}?{query}"):
                    return 101
            except aiohttp.WSServerHandshakeError as err:
                return err.status

    assert asyncio.run(status("after=-1")) == 400
    assert asyncio.run(status("after=abc")) == 400


def test_dashboard_api_and_health(stub: pb_grpc.TicketServiceStub, bridge: Bridge) -> None:
    """/api/dashboard is GetDashboard as JSON (counts per state, tickets); bad filters are 400;
    /healthz reports the upstream; /livez answers from the event loop, without a token."""
    stub.IngestTickets(pb.IngestTicketsRequest(events=[event("D-1"), event("D-2", tier="silver")]))
    status, body = get_json(f"{bridge.url}/api/dashboard?page_size=1")
    assert status == 200
    assert set(body["counts"]) == {"ok", "warning", "breached", "met"}
    assert sum(body["counts"].values()) == 2
    assert len(body["tickets"]) == 1 and body["next_page_token"]
    ticket = body["tickets"][0]
    assert ticket["status"] == "open" and ticket["sla_state"] in body["counts"]
    status, body = get_json(f"{bridge.url}/api/dashboard?tier=silver")
    assert [t["ticket_id"] for t in body["tickets"]] == ["D-2"]
    assert get_json(f"{bridge.url}/api/dashboard?state=nope")[0] == 400
    assert get_json(f"{bridge.url}/api/dashboard?page_size=9999")[0] == 400
    status, health = bridge.health()
    assert status == 200 and health["upstream"] == "up"
    assert get_json(f"{bridge.url}/livez") == (200, {"status": "alive"})


def test_dashboard_api_filters_by_metric_and_lists_clocks_by_metric_and_cycle(
    database_url: str, tmp_path: Path
) -> None:
    """/api/dashboard passes repeatable `metric` to GetDashboard: under a next_reply config only
    the ticket with a next_reply clock is listed, its clocks by metric with their cycle (the
    current one: next_reply's second wait); a bad metric is 400 naming `metrics[0]`; the counts
    stay those of the whole filter."""
    path = tmp_path / "metrics.yaml"
    path.write_text(
        config_text(
            metrics={
                "next_reply": {
                    "start": ["customer_reply"],
                    "stop": ["agent_reply"],
                    "cycles": "each_start",
                },
                "resolution": {"start": ["created"], "stop": ["status:resolved"]},
            },
            policies={"high": {"gold": {"next_reply": "1h", "resolution": "8h"}}},
        )
    )
    running = start_server(make_settings(database_url, path), bind="127.0.0.1")
    now = datetime.now(UTC).replace(microsecond=0)
    created = now - timedelta(hours=2)

    def reply(who: int, at: datetime) -> pb.TicketEvent:
        return pb.TicketEvent(
            ticket_id="NR-1",
            priority="high",
            customer_tier="gold",
            activity=who,  # type: ignore[arg-type]
            created_at=ts(created),
            updated_at=ts(at),
        )

    customer, agent = pb.TICKET_ACTIVITY_CUSTOMER_REPLY, pb.TICKET_ACTIVITY_AGENT_REPLY
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            pb_grpc.TicketServiceStub(channel).IngestTickets(
                pb.IngestTicketsRequest(
                    events=[
                        reply(customer, created),
                        reply(agent, created + timedelta(minutes=5)),
                        reply(customer, now - timedelta(minutes=10)),
                        event("PLAIN", created=now),
                    ]
                )
            )
        with run_bridge(f"127.0.0.1:{running.port}") as bridge:
            bridge.wait_up()
            status, body = get_json(f"{bridge.url}/api/dashboard?metric=next_reply")
            assert status == 200
            assert [t["ticket_id"] for t in body["tickets"]] == ["NR-1"]
            assert sum(body["counts"].values()) == 2
            clocks = body["tickets"][0]["clocks"]
            assert [(c["metric"], c["cycle"], c["state"]) for c in clocks] == [
                ("next_reply", 2, "ok"),
                ("resolution", 1, "ok"),
            ]
            assert clocks[0]["due_at"] == (now + timedelta(minutes=50)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            _, both = get_json(f"{bridge.url}/api/dashboard?metric=next_reply&metric=resolution")
            assert [t["ticket_id"] for t in both["tickets"]] == ["NR-1", "PLAIN"]
            assert [(c["metric"], c["cycle"]) for c in both["tickets"][1]["clocks"]] == [
                ("resolution", 1)
            ]
            status, bad = get_json(f"{bridge.url}/api/dashboard?metric=")
            assert status == 400 and "metrics[0]" in bad["error"]
    finally:
        running.stop(grace=1)


def test_sigterm_closes_websockets_with_1001_and_exits(bridge: Bridge) -> None:
    """SIGTERM with WebSockets open: each is closed with 1001 (going away) and the process
    exits 0."""

    async def scenario() -> list[aiohttp.WSMessage]:
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(bridge.ws_url) for _ in range(3)]
            for ws in sockets:
                await receive(ws)
            bridge.proc.send_signal(signal.SIGTERM)
            closes = []
            for ws in sockets:
                while (msg := await ws.receive(timeout=WS_TIMEOUT)).type == aiohttp.WSMsgType.TEXT:
                    pass
                closes.append(msg)
            return closes

    closes = asyncio.run(scenario())
    assert all(c.type == aiohttp.WSMsgType.CLOSE and c.data == CLOSE_GOING_AWAY for c in closes)
    assert all("after=" in c.extra for c in closes)
    assert bridge.proc.wait(30) == 0


def test_bridge_authenticates_upstream_with_its_token(database_url: str, config_path: Path) -> None:
    """In the insecure development mode (no tokens on the bridge, every browser is tenant
    'default'), against a server that requires tokens, the bridge calls with
    SLAWATCH_UPSTREAM_TOKEN and streams that token's tenant only; with a wrong token it stays
    down and /healthz says why."""
    token = "bridge-upstream-secret"
    tokens = [
        {
            "name": "bridge",
            "sha256": hash_token(token),
            "tenant": "acme",
            "roles": ["watch", "read"],
        }
    ]
    running = start_server(
        make_settings(
            database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=json.dumps(tokens)
        ),
        bind="127.0.0.1",
    )
    target = f"127.0.0.1:{running.port}"
    try:
        with run_bridge(target, SLAWATCH_UPSTREAM_TOKEN="not-the-token") as refused:
            wait_for(
                lambda: (refused.health()[1].get("upstream_error") or "").startswith(
                    "UNAUTHENTICATED"
                ),
                what="upstream refused",
            )
            assert refused.health()[0] == 503
        with run_bridge(target, SLAWATCH_UPSTREAM_TOKEN=token) as bridge:
            bridge.wait_up()

            async def scenario() -> tuple[list[int], list[int]]:
                async with (
                    aiohttp.ClientSession() as session,
                    session.ws_connect(bridge.ws_url) as ws,
                ):
                    await receive(ws)
                    await asyncio.to_thread(write_alerts, database_url, 3)  # tenant "default"
                    acme = await asyncio.to_thread(
                        write_alerts, database_url, 2, Shape(tenant="acme")
                    )
                    return await alerts_until(ws, acme[-1]), acme

            got, acme = asyncio.run(scenario())
            assert got == acme
            assert get_json(f"{bridge.url}/api/dashboard")[0] == 200
    finally:
        running.stop(grace=1)


def test_bridge_metrics_count_open_websockets_and_feeds(server: RunningServer) -> None:
    """The bridge's gauges follow its clients and its upstream feed: an operator sees how many
    browsers are connected and whether the feed is up."""
    metrics_port = free_port()
    with run_bridge(
        f"127.0.0.1:{server.port}", SLAWATCH_BRIDGE_METRICS_PORT=str(metrics_port)
    ) as bridge:
        bridge.wait_up()

        def opened() -> float:
            samples = scrape_when_up(metrics_port)
            return -1 if samples is None else value(samples, "slawatch_bridge_websockets_open")

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                sockets = [await session.ws_connect(bridge.ws_url) for _ in range(3)]
                for ws in sockets:
                    await receive(ws)  # hello: the client is attached
                await asyncio.to_thread(wait_for, lambda: opened() == 3, 30, "3 open")
                samples = scrape(metrics_port)
                assert value(samples, "slawatch_bridge_upstream_feeds", state="up") == 1
                for ws in sockets:
                    await ws.close()

        asyncio.run(scenario())
        wait_for(lambda: opened() == 0, 30, "all closed")
