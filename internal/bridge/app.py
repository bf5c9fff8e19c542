"""The bridge's HTTP side: the live page, /ws/alerts, /api/dashboard, /api/report.csv
(internal/bridge/report_csv.py), /healthz, /livez, and the HTTP/JSON routes of the unary RPCs
under /v1 (internal/bridge/http_api.py).

The only asynchronous code of the project (DESIGN §2): aiohttp on one event loop, grpc.aio for
the upstream calls. Nothing here blocks the loop: gRPC calls are awaited, files are read in a
thread at start-up, static files are served by aiohttp's sendfile path.

Every endpoint but `/healthz`, `/livez` and the page's own files needs a token
(internal/bridge/auth.py); each tenant has its own upstream feed (internal/bridge/tenants.py), and
`/api/dashboard` calls the server with the caller's own token. SLAWATCH_TOKENS_FILE is watched
on a thread of its own; a reload that revokes tokens closes their WebSockets on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio
from aiohttp import web
from grpc_health.v1 import health_pb2

from internal.bridge import codec
from internal.bridge.auth import BridgeAuth
from internal.bridge.client import (
    CLIENTS,
    CLOSE_FORBIDDEN,
    CLOSE_GOING_AWAY,
    CLOSE_TOO_MANY_CLIENTS,
    CLOSE_UNAUTHORIZED,
    WsClient,
    new_socket,
    refuse,
    serve_client,
)
from internal.bridge.http_api import HTTP_API, HttpApi, add_routes
from internal.bridge.openapi import document
from internal.bridge.report_csv import PATH as REPORT_CSV_PATH
from internal.bridge.report_csv import report_csv
from internal.bridge.request_logs import RedactingAccessLogger, install_bad_request_log
from internal.bridge.tenants import FeedRegistry, TooManyClients
from internal.config.settings import BridgeSettings
from internal.config.tokens import Role
from internal.config.tokens_watcher import start_tokens_reload
from slawatch.client import CHANNEL_OPTIONS
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SETTINGS: web.AppKey[BridgeSettings] = web.AppKey("settings", BridgeSettings)
AUTH: web.AppKey[BridgeAuth] = web.AppKey("auth", BridgeAuth)
FEEDS: web.AppKey[FeedRegistry] = web.AppKey("feeds", FeedRegistry)
STUB: web.AppKey[pb_grpc.TicketServiceAsyncStub] = web.AppKey("stub")
CHANNEL: web.AppKey[grpc.aio.Channel] = web.AppKey("channel")
DASHBOARD_TIMEOUT_SECONDS = 5.0
HEALTH_PROBE_SECONDS = 2.0
SHUTDOWN_CLOSE_SECONDS = 3.0
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
UNAUTHORIZED_REASON = "missing or unknown token (Authorization: Bearer <token>, or ?token=)"
# What /api/dashboard answers for the server's gRPC status: the HTTP status and a fixed text.
# Only INVALID_ARGUMENT passes the server's own message on (it names the bad field); any other
# status's details may be an internal exception's text and never reach a response body.
UPSTREAM_ERRORS: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "bad request"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "the server refused the token"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "the token lacks a role the server requires"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "the token's rate limit is reached; retry later"),
    grpc.StatusCode.UNAVAILABLE: (503, "the server is unavailable; retry later"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "the server did not answer in time; retry later"),
}
UPSTREAM_FAILED = (502, "the server could not answer this request")
MAX_ERROR_CHARS = 300
# Page tokens are the server's opaque cursors: printable ASCII, far shorter than this.
MAX_PAGE_TOKEN_CHARS = 1024
# ?after= is an alert id: plain digits, within the int64 of WatchAlertsRequest.after_alert_id.
AFTER_PATTERN = re.compile(r"[0-9]{1,19}")
MAX_ALERT_ID = 2**63 - 1


def origin_allowed(request: web.Request, allowed: frozenset[str]) -> bool:
    """Browsers send Origin on WebSocket handshakes; only pages served by this bridge or listed
    in SLAWATCH_BRIDGE_ALLOWED_ORIGINS may connect. Non-browser clients send none and pass."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc == (request.host or "").lower()


def parse_after(value: str) -> int | None:
    """The alert id of `?after=`, or None when it is not one."""
    if AFTER_PATTERN.fullmatch(value) is None:
        return None
    after = int(value)
    return after if after <= MAX_ALERT_ID else None


def valid_page_token(token: str) -> bool:
    return len(token) <= MAX_PAGE_TOKEN_CHARS and all(" " < c < "\x7f" for c in token)


async def ws_alerts(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if not origin_allowed(request, settings.allowed_origins):
        raise web.HTTPForbidden(text="origin not allowed")
    after: int | None = None
    if "after" in request.query:
        after = parse_after(request.query["after"])
        if after is None:
            raise web.HTTPBadRequest(text="after must be an alert id: 0 to 2^63-1, in digits")
    caller = request.app[AUTH].identify(request)
    if caller is None:
        return await refuse(request, CLOSE_UNAUTHORIZED, UNAUTHORIZED_REASON)
    if Role.WATCH not in caller.principal.roles:
        return await refuse(
            request, CLOSE_FORBIDDEN, f"token {caller.principal.name!r} lacks the 'watch' role"
        )
    registry = request.app[FEEDS]
    client = WsClient(new_socket(settings.heartbeat_seconds), settings.client_queue)
    try:
        tenant_feed = registry.join(caller.principal.tenant, client, caller.credential)
    except TooManyClients as err:
        return await refuse(request, CLOSE_TOO_MANY_CLIENTS, str(err))
    try:
        return await serve_client(
            request,
            client,
            tenant_feed.feed,
            after,
            settings.heartbeat_seconds,
            caller.credential,
        )
    finally:
        registry.leave(tenant_feed, client)


async def _probe_server(app: web.Application) -> str | None:
    """None when the server's health service answers SERVING, else what went wrong. Used while
    no tenant feed runs, so that /healthz still says whether the server is reachable."""
    check = app[CHANNEL].unary_unary(
        HEALTH_CHECK_METHOD,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    try:
        answer = await check(health_pb2.HealthCheckRequest(), timeout=HEALTH_PROBE_SECONDS)
    except grpc.aio.AioRpcError as err:
        return f"{err.code().name}: {err.details()}"
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        return "server health: " + health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return None


async def livez(request: web.Request) -> web.Response:
    """Liveness, answered by the event loop itself: a loop that is stuck cannot answer it (the
    metrics port's /livez runs on a thread of its own and would not notice)."""
    return web.json_response({"status": "alive"})


async def healthz(request: web.Request) -> web.Response:
    """Open (no token), for probes and load balancers: only whether the bridge can serve, i.e.
    every tenant feed's upstream is up (with no feed: the server answers its health check).
    A caller with a valid token also gets its own tenant's feed figures; nothing here tells an
    anonymous caller how many tenants use the bridge or how far their alert ids have got."""
    registry = request.app[FEEDS]
    feeds = [f.feed for f in registry]
    probe_error: str | None = None
    if feeds:
        states = {f.state for f in feeds}
        upstream = next(s for s in ("down", "connecting", "up") if s in states)
    else:
        probe_error = await _probe_server(request.app)
        upstream = "up" if probe_error is None else "down"
    body: dict[str, Any] = {"status": "ok" if upstream == "up" else "unavailable"}
    body["upstream"] = upstream
    caller = request.app[AUTH].identify(request)
    if caller is not None:
        body.update(_tenant_figures(registry, caller.principal.tenant, probe_error))
    return web.json_response(body, status=200 if upstream == "up" else 503)


def _tenant_figures(registry: FeedRegistry, tenant: str, probe_error: str | None) -> dict[str, Any]:
    tenant_feed = registry.get(tenant)
    if tenant_feed is None:
        return {
            "tenant_upstream": None,
            "last_alert_id": None,
            "clients": 0,
            "ring": 0,
            "slow_closed": 0,
            "upstream_connects": 0,
            "upstream_error": probe_error,
        }
    feed = tenant_feed.feed
    return {
        "tenant_upstream": feed.state,
        "last_alert_id": feed.position,
        "clients": len(tenant_feed.clients),
        "ring": len(feed.ring),
        "slow_closed": feed.slow_closed,
        "upstream_connects": feed.upstream_connects,
        "upstream_error": feed.last_error if feed.state != "up" else None,
    }


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


async def api_dashboard(request: web.Request) -> web.Response:
    caller = request.app[AUTH].identify(request)
    if caller is None:
        return _error(401, UNAUTHORIZED_REASON)
    if Role.READ not in caller.principal.roles:
        return _error(403, f"token {caller.principal.name!r} lacks the 'read' role")
    q = request.query
    if not valid_page_token(q.get("page_token", "")):
        return _error(400, "bad query: page_token is not a page token of this server")
    try:
        dashboard_request = pb.GetDashboardRequest(
            page_size=int(q.get("page_size", "50")),
            page_token=q.get("page_token", ""),
            states=[codec.state_from_name(s) for s in q.getall("state", [])],
            priorities=q.getall("priority", []),
            customer_tiers=q.getall("tier", []),
            statuses=[codec.status_from_name(s) for s in q.getall("status", [])],
            metrics=q.getall("metric", []),
        )
    except ValueError as err:
        return _error(400, f"bad query: {err}")
    try:
        response = await request.app[STUB].GetDashboard(
            dashboard_request,
            timeout=DASHBOARD_TIMEOUT_SECONDS,
            metadata=caller.credential.metadata,
        )
    except grpc.aio.AioRpcError as err:
        return _upstream_error(err)
    return web.json_response(codec.dashboard(response))


def _upstream_error(err: grpc.aio.AioRpcError) -> web.Response:
    code = err.code()
    status, message = UPSTREAM_ERRORS.get(code, UPSTREAM_FAILED)
    if code == grpc.StatusCode.INVALID_ARGUMENT and err.details():
        message = (err.details() or "")[:MAX_ERROR_CHARS]
    elif status == UPSTREAM_FAILED[0]:
        # The code only: the details may be an exception's text, with data in it.
        log.warning("GetDashboard failed upstream: %s", code.name)
    return _error(status, message, code=code.name)


async def index(request: web.Request) -> web.FileResponse:
    host = request.host
    return web.FileResponse(
        STATIC / "index.html",
        headers={
            "Cache-Control": "no-cache",
            # The page may be opened as /?token=...: that URL must not travel in a Referer.
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": (
                f"default-src 'self'; connect-src 'self' ws://{host} wss://{host}; "
                "frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
        },
    )


def _credentials(settings: BridgeSettings) -> grpc.ChannelCredentials | None:
    if not (settings.upstream_tls_ca or settings.upstream_tls_cert):
        return None

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(settings.upstream_tls_ca),
        private_key=read(settings.upstream_tls_key),
        certificate_chain=read(settings.upstream_tls_cert),
    )


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    credentials = await asyncio.to_thread(_credentials, settings)
    options = list(CHANNEL_OPTIONS)
    if credentials is None:
        channel = grpc.aio.insecure_channel(settings.grpc_target, options=options)
    else:
        channel = grpc.aio.secure_channel(settings.grpc_target, credentials, options=options)
    stub = pb_grpc.TicketServiceStub(channel)
    registry = FeedRegistry(
        stub,
        configured=app[AUTH].configured,
        max_clients_per_tenant=settings.max_clients_per_tenant,
        linger_seconds=settings.feed_linger_seconds,
        ring_size=settings.ring_size,
        replay_slots=settings.replay_slots,
        heartbeat_seconds=settings.heartbeat_seconds,
    )
    app[CHANNEL] = channel
    app[STUB] = stub
    app[HTTP_API] = HttpApi(channel, app[AUTH], settings)
    app[FEEDS] = registry
    registry.start()
    yield
    await registry.close()
    await channel.close()


async def _tokens_reload(app: web.Application) -> AsyncIterator[None]:
    """Watch SLAWATCH_TOKENS_FILE while the app runs. The watcher's thread swaps the tokens (every
    request after that sees them) and hands the closing of revoked WebSockets to the loop."""
    settings, auth, registry = app[SETTINGS], app[AUTH], app[FEEDS]
    loop = asyncio.get_running_loop()

    def recheck() -> None:
        registry.recheck(auth.ws_refusal)

    auth.authenticator.on_change(lambda _change: loop.call_soon_threadsafe(recheck))
    watcher = await asyncio.to_thread(
        start_tokens_reload, auth.authenticator, settings.tokens_json, settings.tokens_file
    )
    yield
    if watcher is not None:
        await asyncio.to_thread(watcher.stop)


async def _close_clients(app: web.Application) -> None:
    """On shutdown every WebSocket gets 1001 with the id to resume from, and a bounded wait."""
    registry = app[CLIENTS]
    clients = list(registry)
    await asyncio.gather(
        *(
            c.close(
                CLOSE_GOING_AWAY,
                f"bridge shutting down; reconnect with after={c.last_alert_id}",
                SHUTDOWN_CLOSE_SECONDS,
            )
            for c in clients
        ),
        return_exceptions=True,
    )


def make_app(settings: BridgeSettings, auth: BridgeAuth) -> web.Application:
    # The largest body: the /v1 routes' JSON requests, within the server's own message limit.
    app = web.Application(client_max_size=settings.max_message_bytes)
    app[SETTINGS] = settings
    app[AUTH] = auth
    app[CLIENTS] = set[WsClient]()
    app.cleanup_ctx.append(_upstream)
    app.cleanup_ctx.append(_tokens_reload)  # after _upstream: it needs the feeds
    app.on_shutdown.append(_close_clients)
    app.router.add_get("/", index)
    app.router.add_get("/ws/alerts", ws_alerts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/api/dashboard", api_dashboard)
    app.router.add_get(REPORT_CSV_PATH, report_csv)
    app.router.add_static("/static/", STATIC, append_version=False)
    add_routes(app, document())
    return app


async def serve(settings: BridgeSettings) -> None:
    """Run until SIGTERM or SIGINT, then close WebSockets with 1001 and stop within seconds.

    BridgeSettingsError when the token configuration is unusable, before anything listens."""
    auth = await asyncio.to_thread(BridgeAuth.from_settings, settings)
    install_bad_request_log()
    runner = web.AppRunner(
        make_app(settings, auth),
        shutdown_timeout=SHUTDOWN_CLOSE_SECONDS,
        access_log_class=RedactingAccessLogger,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info(
        "bridge listening on http://%s:%d/ (upstream %s)",
        settings.host,
        settings.port,
        settings.grpc_target,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("bridge shutting down")
    await runner.cleanup()
