"""The bridge's authentication, tenant isolation and per-tenant limits, with a real token-protected
gRPC server, the real bridge process and real aiohttp WebSocket/HTTP clients.

The bridge and the server share one token configuration (support/tokens.py): acme-all (acme,
every role), acme-reader (acme, read), acme-watcher (acme, watch), globex-all (globex, every
role)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from internal.bridge.client import CLOSE_FORBIDDEN, CLOSE_TOO_MANY_CLIENTS, CLOSE_UNAUTHORIZED
from internal.embedded.ports import free_port
from internal.rpc.server import start_server
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.alerts import Shape, breach_by_evaluation, write_alerts
from support.bridge import WS_TIMEOUT, Bridge, alerts_until, get_json, receive, run_bridge
from support.configs import write_config
from support.databases import own_database
from support.env import ROOT, make_settings
from support.events import event
from support.ops import scrape_when_up, value
from support.servers import wait_for
from support.tokens import TOKENS, bearer, secret, tokens_json

SECURE = {"SLAWATCH_INSECURE_DEV": "", "SLAWATCH_TOKENS": tokens_json()}

WsMessage = aiohttp.WSMessage


# -- one token-protected server and bridge for the matrix ------------------------------------------


@contextlib.contextmanager
def server_with_acme_ticket(database_url: str, config_dir: Path) -> Iterator[str]:
    """A token-protected server where acme (only acme) has ticket ACME-1; its target."""
    config = write_config(config_dir / "sla_config.yaml")
    running = start_server(make_settings(database_url, config, **SECURE), bind="127.0.0.1")
    target = f"127.0.0.1:{running.port}"
    with grpc.insecure_channel(target) as channel:
        pb_grpc.TicketServiceStub(channel).IngestTickets(
            pb.IngestTicketsRequest(events=[event("ACME-1")]), metadata=bearer("acme-all")
        )
    try:
        yield target
    finally:
        running.stop(grace=1)


@pytest.fixture(scope="module")
def module_db(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with own_database(pg_admin_url, template_db, "b") as url:
        yield url


@pytest.fixture(scope="module")
def module_server(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A token-protected server where acme (only acme) has ticket ACME-1; its target. The
    alert tests add tickets of both tenants (alerts are raised by evaluating real tickets)."""
    with server_with_acme_ticket(module_db, tmp_path_factory.mktemp("bridge-security")) as target:
        yield target


@pytest.fixture(scope="module")
def bridge(module_server: str) -> Iterator[Bridge]:
    with run_bridge(module_server, **SECURE) as b:
        b.wait_up()
        yield b


@pytest.fixture(scope="module")
def dashboard_bridge(
    pg_admin_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bridge]:
    """A bridge on a server and database of its own, where ACME-1 is the only ticket."""
    with (
        own_database(pg_admin_url, template_db, "b") as url,
        server_with_acme_ticket(url, tmp_path_factory.mktemp("bridge-dashboard")) as target,
        run_bridge(target, **SECURE) as b,
    ):
        b.wait_up()
        yield b


# -- helpers -----------------------------------------------------------------------------------


def ws_url(bridge: Bridge, token: str | None = None, after: int | None = None) -> str:
    query = [f"token={token}"] if token is not None else []
    if after is not None:
        query.append(f"after={after}")
    return bridge.ws_url + ("?" + "&".join(query) if query else "")


async def first_message(url: str, headers: dict[str, str] | None = None) -> WsMessage:
    """What a client gets first after the handshake: the hello, or a close."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as ws:
        return await ws.receive(timeout=WS_TIMEOUT)


def assert_closed(msg: WsMessage, code: int, *words: str) -> None:
    assert msg.type == aiohttp.WSMsgType.CLOSE, f"expected a close, got {msg}"
    assert msg.data == code, msg
    for word in words:
        assert word in msg.extra, msg.extra
    assert "s3cret" not in msg.extra  # a close reason never echoes a token


def bridge_gauge(metrics_port: int, name: str) -> float:
    """A bridge gauge summed over its labels (-1 while the metrics port is not up yet): the
    number of tenant feeds and of open WebSockets are for operators, not on the open /healthz."""
    samples = scrape_when_up(metrics_port)
    return -1 if samples is None else value(samples, name)


def feed_count(metrics_port: int) -> float:
    return bridge_gauge(metrics_port, "slawatch_bridge_upstream_feeds")


def interleaved_alerts(database_url: str) -> dict[str, list[int]]:
    """acme, globex, acme, globex: one alert each, by tenant."""
    ids: dict[str, list[int]] = {"acme": [], "globex": []}
    for tenant in ("acme", "globex", "acme", "globex"):
        ids[tenant] += write_alerts(database_url, 1, Shape(tenant=tenant))
    return ids


# -- the matrix --------------------------------------------------------------------------------

# who -> (token, expected close code, or the tenant whose alerts it must receive)
WS_MATRIX: dict[str, tuple[str | None, int | str]] = {
    "no token": (None, CLOSE_UNAUTHORIZED),
    "bad token": ("not-a-configured-token", CLOSE_UNAUTHORIZED),
    "wrong role": (secret("acme-reader"), CLOSE_FORBIDDEN),
    "other tenant": (secret("globex-all"), "globex"),
    "right token": (secret("acme-watcher"), "acme"),
}


@pytest.mark.parametrize("who", list(WS_MATRIX))
def test_ws_alerts_needs_a_token_with_the_watch_role_and_shows_only_its_tenant(
    bridge: Bridge, module_db: str, who: str
) -> None:
    """/ws/alerts: no or unknown token is closed with 4401, a token without `watch` with 4403
    (before any data); a valid token receives the alerts of its own tenant and none of the
    other's, although both tenants' alerts are written interleaved."""
    token, expected = WS_MATRIX[who]

    async def scenario() -> tuple[WsMessage, list[int], dict[str, list[int]]]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(ws_url(bridge, token)) as ws,
        ):
            first = await ws.receive(timeout=WS_TIMEOUT)
            if isinstance(expected, int):
                return first, [], {}
            written = await asyncio.to_thread(interleaved_alerts, module_db)
            return first, await alerts_until(ws, written[expected][-1]), written

    first, got, written = asyncio.run(scenario())
    if isinstance(expected, int):
        words = ("watch",) if expected == CLOSE_FORBIDDEN else ("token",)
        assert_closed(first, expected, *words)
        return
    assert first.type == aiohttp.WSMsgType.TEXT and json.loads(first.data)["type"] == "hello"
    assert got == written[expected]


# who -> (token, expected HTTP status)
DASHBOARD_MATRIX: dict[str, tuple[str | None, int]] = {
    "no token": (None, 401),
    "bad token": ("not-a-configured-token", 401),
    "wrong role": (secret("acme-watcher"), 403),
    "other tenant": (secret("globex-all"), 200),
    "right token": (secret("acme-reader"), 200),
}


@pytest.mark.parametrize("who", list(DASHBOARD_MATRIX))
def test_dashboard_needs_a_token_with_the_read_role_and_shows_only_its_tenant(
    dashboard_bridge: Bridge, who: str
) -> None:
    """/api/dashboard: 401 (with WWW-Authenticate) without a known token, 403 without `read`;
    with a token it is the dashboard of that token's tenant: acme sees ACME-1, globex sees no
    ticket and zero counts."""
    token, expected = DASHBOARD_MATRIX[who]
    status, body = get_json(f"{dashboard_bridge.url}/api/dashboard", token)
    assert status == expected, body
    if status != 200:
        assert body["error"] and "s3cret" not in body["error"]
        return
    tickets = [t["ticket_id"] for t in body["tickets"]]
    if who == "right token":
        assert tickets == ["ACME-1"] and sum(body["counts"].values()) == 1
    else:
        assert tickets == [] and sum(body["counts"].values()) == 0


def test_unauthenticated_dashboard_says_bearer(bridge: Bridge) -> None:
    """A 401 names the scheme, as HTTP wants (WWW-Authenticate: Bearer)."""

    async def scenario() -> tuple[int, str | None]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{bridge.url}/api/dashboard") as response,
        ):
            return response.status, response.headers.get("WWW-Authenticate")

    assert asyncio.run(scenario()) == (401, "Bearer")


def test_token_in_header_or_query_and_never_in_the_log(bridge: Bridge, module_db: str) -> None:
    """The WebSocket takes the token in an Authorization header as well as in ?token=, the
    dashboard in ?token= as well as in the header; a bad header is not rescued by a good query
    parameter; the page and /healthz need none; the access log shows the parameter redacted."""
    watcher, reader = secret("acme-watcher"), secret("acme-reader")
    hello = asyncio.run(first_message(bridge.ws_url, {"Authorization": f"Bearer {watcher}"}))
    assert hello.type == aiohttp.WSMsgType.TEXT
    refused = asyncio.run(
        first_message(ws_url(bridge, watcher), {"Authorization": "Bearer not-a-token"})
    )
    assert_closed(refused, CLOSE_UNAUTHORIZED)

    assert get_json(f"{bridge.url}/api/dashboard?token={reader}")[0] == 200
    assert get_json(f"{bridge.url}/api/dashboard?token=not-a-token")[0] == 401
    assert bridge.health()[0] == 200

    async def page() -> int:
        async with aiohttp.ClientSession() as session, session.get(bridge.url + "/") as response:
            return response.status

    assert asyncio.run(page()) == 200

    def logged() -> str:
        return bridge.log_path.read_text(errors="replace")

    wait_for(lambda: "/ws/alerts?token=REDACTED" in logged(), what="WebSocket access logged")
    wait_for(lambda: "/api/dashboard?token=REDACTED" in logged(), what="dashboard access logged")
    assert "s3cret" not in logged()


def test_open_healthz_shows_status_only_and_a_token_its_own_tenants_figures(
    module_server: str, module_db: str
) -> None:
    """/healthz without a (valid) token is only `status` and `upstream`: no number of tenant
    feeds, no alert id, no error text. With a token it adds the figures of that token's tenant:
    acme sees its own last alert id, not globex's later one; globex, without a feed, none."""
    with run_bridge(module_server, **SECURE) as b:
        b.wait_up()

        async def scenario() -> tuple[list[int], list[int]]:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(ws_url(b, secret("acme-watcher"))) as ws,
            ):
                await receive(ws)
                acme = await asyncio.to_thread(write_alerts, module_db, 2, Shape(tenant="acme"))
                globex = await asyncio.to_thread(write_alerts, module_db, 1, Shape(tenant="globex"))
                got = await alerts_until(ws, acme[-1])
                assert got == acme
                open_status, open_body = await asyncio.to_thread(b.health)
                assert open_status == 200 and open_body == {"status": "ok", "upstream": "up"}
                refused = await asyncio.to_thread(b.health, "not-a-configured-token")
                assert refused == (200, open_body)
                status, mine = await asyncio.to_thread(b.health, secret("acme-reader"))
                assert status == 200
                assert mine["last_alert_id"] == acme[-1] < globex[-1]
                assert (mine["clients"], mine["tenant_upstream"]) == (1, "up")
                status, other = await asyncio.to_thread(b.health, secret("globex-all"))
                assert status == 200
                assert (other["last_alert_id"], other["clients"]) == (None, 0)
                return acme, globex

        asyncio.run(scenario())


# -- isolation through the whole path ------------------------------------------------------------


def test_two_tenants_on_one_bridge_each_receive_only_their_own_alerts(
    database_url: str, config_path: Path
) -> None:
    """Alerts produced by ingest and evaluation under each tenant's token (the same ticket id in
    both) reach only that tenant's WebSocket client, through one upstream stream per tenant;
    when the clients leave, the bridge closes both upstream streams."""
    running = start_server(make_settings(database_url, config_path, **SECURE), bind="127.0.0.1")
    target = f"127.0.0.1:{running.port}"
    metrics_port = free_port()
    try:
        with (
            run_bridge(
                target,
                SLAWATCH_BRIDGE_FEED_LINGER_SECONDS="0",
                SLAWATCH_BRIDGE_METRICS_PORT=str(metrics_port),
                **SECURE,
            ) as bridge,
            grpc.insecure_channel(target) as channel,
        ):
            stub = pb_grpc.TicketServiceStub(channel)
            config = running.config.current

            async def scenario() -> dict[str, tuple[list[int], list[int]]]:
                async with (
                    aiohttp.ClientSession() as session,
                    session.ws_connect(ws_url(bridge, secret("acme-watcher"))) as acme,
                    session.ws_connect(
                        bridge.ws_url, headers={"Authorization": f"Bearer {secret('globex-all')}"}
                    ) as globex,
                ):
                    await receive(acme)
                    await receive(globex)
                    assert await asyncio.to_thread(feed_count, metrics_port) == 2
                    written: dict[str, list[int]] = {"acme": [], "globex": []}
                    for tenant in ("acme", "globex"):
                        written[tenant] += await asyncio.to_thread(
                            breach_by_evaluation,
                            stub,
                            database_url,
                            config,
                            "SHARED-1",
                            metadata=bearer(f"{tenant}-all"),
                        )
                    more = await asyncio.to_thread(interleaved_alerts, database_url)
                    for tenant in written:
                        written[tenant] += more[tenant]
                    return {
                        "acme": (await alerts_until(acme, written["acme"][-1]), written["acme"]),
                        "globex": (
                            await alerts_until(globex, written["globex"][-1]),
                            written["globex"],
                        ),
                    }

            results = asyncio.run(scenario())
            for got, expected in results.values():
                assert len(expected) == 3  # one breach by evaluation, two written directly
                assert got == expected
            wait_for(lambda: feed_count(metrics_port) == 0, what="tenant feeds closed")
            wait_for(lambda: running.hub.subscriber_count == 0, what="upstream streams closed")
    finally:
        running.stop(grace=1)


def test_a_token_the_server_refuses_closes_its_clients_with_4401(module_server: str) -> None:
    """The bridge knows a token the server does not (revoked there, configurations out of step):
    the server is the authority, so the client whose token the tenant feed used is closed with
    4401 and the reason, and the tenant's next client, with a valid token, is served."""
    tokens = {**TOKENS, "acme-stale": ("acme", ["watch"])}
    with run_bridge(
        module_server, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=tokens_json(tokens)
    ) as bridge:
        bridge.wait_up()
        refused = asyncio.run(first_message(ws_url(bridge, secret("acme-stale"))))
        assert_closed(refused, CLOSE_UNAUTHORIZED, "refused by the server")
        hello = asyncio.run(first_message(ws_url(bridge, secret("acme-watcher"))))
        assert hello.type == aiohttp.WSMsgType.TEXT
        assert json.loads(hello.data)["upstream"] == "up"


def test_configured_upstream_token_runs_its_tenants_feed_from_the_start(
    module_server: str, module_db: str
) -> None:
    """SLAWATCH_UPSTREAM_TOKEN pins its tenant's feed for the bridge's life (up before any
    client); other tenants still get feeds of their own, on their clients' tokens."""
    metrics_port = free_port()
    with run_bridge(
        module_server,
        SLAWATCH_UPSTREAM_TOKEN=secret("acme-watcher"),
        SLAWATCH_BRIDGE_METRICS_PORT=str(metrics_port),
        **SECURE,
    ) as b:

        def pinned_feed_up() -> bool:
            status, body = b.health(secret("acme-reader"))
            return (
                status == 200 and feed_count(metrics_port) == 1 and body["upstream_connects"] == 1
            )

        wait_for(pinned_feed_up, what="the configured tenant's feed up without clients")

        async def scenario() -> tuple[list[int], dict[str, list[int]]]:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(ws_url(b, secret("globex-all"))) as ws,
            ):
                await receive(ws)
                assert await asyncio.to_thread(feed_count, metrics_port) == 2
                written = await asyncio.to_thread(interleaved_alerts, module_db)
                return await alerts_until(ws, written["globex"][-1]), written

        got, written = asyncio.run(scenario())
        assert got == written["globex"]


# -- limits and start-up -------------------------------------------------------------------------


def test_websocket_clients_per_tenant_limit(module_server: str) -> None:
    """SLAWATCH_BRIDGE_MAX_CLIENTS_PER_TENANT: past it a tenant's client is closed with 4429 and
    a reason naming the limit; other tenants are unaffected; a client leaving frees a slot."""
    metrics_port = free_port()
    with run_bridge(
        module_server,
        SLAWATCH_BRIDGE_MAX_CLIENTS_PER_TENANT="2",
        SLAWATCH_BRIDGE_METRICS_PORT=str(metrics_port),
        **SECURE,
    ) as b:
        b.wait_up()
        acme = ws_url(b, secret("acme-watcher"))

        async def scenario() -> tuple[WsMessage, WsMessage, WsMessage]:
            async with aiohttp.ClientSession() as session:
                first = await session.ws_connect(acme)
                second = await session.ws_connect(acme)
                await receive(first)
                await receive(second)
                third = await first_message(acme)
                async with session.ws_connect(ws_url(b, secret("globex-all"))) as globex:
                    globex_first = await globex.receive(timeout=WS_TIMEOUT)
                    await first.close()
                    await asyncio.to_thread(
                        wait_for,
                        lambda: bridge_gauge(metrics_port, "slawatch_bridge_websockets_open") == 2,
                        WS_TIMEOUT,
                        "slot freed",
                    )
                    again = await first_message(acme)
                await second.close()
                return third, globex_first, again

        third, globex_first, again = asyncio.run(scenario())
    assert_closed(third, CLOSE_TOO_MANY_CLIENTS, "SLAWATCH_BRIDGE_MAX_CLIENTS_PER_TENANT", "2")
    assert globex_first.type == aiohttp.WSMsgType.TEXT
    assert again.type == aiohttp.WSMsgType.TEXT


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, b"no tokens configured"),
        (
            {"SLAWATCH_TOKENS": tokens_json(), "SLAWATCH_UPSTREAM_TOKEN": "unknown-token"},
            b"SLAWATCH_UPSTREAM_TOKEN: token #1 is not one of the configured tokens",
        ),
        (
            {"SLAWATCH_TOKENS": tokens_json(), "SLAWATCH_UPSTREAM_TOKEN": secret("acme-reader")},
            b"lacks the 'watch' role",
        ),
    ],
)
def test_bridge_refuses_to_start_without_a_usable_token_configuration(
    env: dict[str, str], message: bytes
) -> None:
    """Secure by default, like the server: no tokens (and no SLAWATCH_INSECURE_DEV), or an
    upstream token the configuration cannot place in a tenant with `watch`, is exit code 2."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLAWATCH_", "DATABASE_URL"))
    }
    full_env.update(
        SLAWATCH_BRIDGE_PORT=str(free_port()), SLAWATCH_GRPC_TARGET="127.0.0.1:1", **env
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "cmd/slawatch-bridge/main.py")],
        env=full_env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
