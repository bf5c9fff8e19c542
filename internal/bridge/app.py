"""The bridge's HTTP side: the live page, /ws/alerts, /api/dashboard and /healthz.

The only asynchronous code of the project (DESIGN §2): aiohttp on one event loop, grpc.aio for
the upstream calls. Nothing here blocks the loop: gRPC calls are awaited, static files are
served by aiohttp's sendfile path.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import grpc.aio
from aiohttp import web

from internal.bridge import codec
from internal.bridge.client import CLIENTS, CLOSE_GOING_AWAY, WsClient, serve_client
from internal.bridge.feed import AlertFeed
from internal.bridge.settings import BridgeSettings
from slawatch.client import CHANNEL_OPTIONS
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SETTINGS: web.AppKey[BridgeSettings] = web.AppKey("settings", BridgeSettings)
FEED: web.AppKey[AlertFeed] = web.AppKey("feed", AlertFeed)
STUB: web.AppKey[pb_grpc.TicketServiceAsyncStub] = web.AppKey("stub")
DASHBOARD_TIMEOUT_SECONDS = 5.0
SHUTDOWN_CLOSE_SECONDS = 3.0


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


async def ws_alerts(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if not origin_allowed(request, settings.allowed_origins):
        raise web.HTTPForbidden(text="origin not allowed")
    after: int | None = None
    if "after" in request.query:
        try:
            after = int(request.query["after"])
        except ValueError:
            after = -1
        if after < 0:
            raise web.HTTPBadRequest(text="after must be a non-negative alert id")
    return await serve_client(
        request, request.app[FEED], after, settings.client_queue, settings.heartbeat_seconds
    )


async def healthz(request: web.Request) -> web.Response:
    feed = request.app[FEED]
    body = {
        "status": "ok" if feed.state == "up" else "unavailable",
        "upstream": feed.state,
        "last_alert_id": feed.position,
        "clients": len(request.app[CLIENTS]),
        "ring": len(feed.ring),
        "slow_closed": feed.slow_closed,
        "upstream_connects": feed.upstream_connects,
        "upstream_error": feed.last_error,
    }
    return web.json_response(body, status=200 if feed.state == "up" else 503)


async def api_dashboard(request: web.Request) -> web.Response:
    q = request.query
    try:
        dashboard_request = pb.GetDashboardRequest(
            page_size=int(q.get("page_size", "50")),
            page_token=q.get("page_token", ""),
            states=[codec.state_from_name(s) for s in q.getall("state", [])],
            priorities=q.getall("priority", []),
            customer_tiers=q.getall("tier", []),
            statuses=[codec.status_from_name(s) for s in q.getall("status", [])],
        )
    except ValueError as err:
        return web.json_response({"error": f"bad query: {err}"}, status=400)
    try:
        response = await request.app[STUB].GetDashboard(
            dashboard_request,
            timeout=DASHBOARD_TIMEOUT_SECONDS,
            metadata=request.app[SETTINGS].upstream_metadata,
        )
    except grpc.aio.AioRpcError as err:
        status = 400 if err.code() == grpc.StatusCode.INVALID_ARGUMENT else 503
        return web.json_response({"error": err.details(), "code": err.code().name}, status=status)
    return web.json_response(codec.dashboard(response))


async def index(request: web.Request) -> web.FileResponse:
    host = request.host
    return web.FileResponse(
        STATIC / "index.html",
        headers={
            "Cache-Control": "no-cache",
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
    feed = AlertFeed(stub, settings.ring_size, settings.replay_slots, settings.upstream_metadata)
    app[FEED] = feed
    app[STUB] = stub
    tasks = [
        asyncio.create_task(feed.run(), name="upstream"),
        asyncio.create_task(feed.heartbeats(settings.heartbeat_seconds), name="heartbeats"),
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await channel.close()


async def _close_clients(app: web.Application) -> None:
    """On shutdown every WebSocket gets 1001 with the id to resume from, and a bounded wait."""
    registry = app[CLIENTS]
    clients = list(registry)
    await asyncio.gather(
        *(
            asyncio.wait_for(
                c.ws.close(
                    code=CLOSE_GOING_AWAY,
                    message=f"bridge shutting down; reconnect with after={c.last_alert_id}"[
                        :123
                    ].encode(),
                ),
                SHUTDOWN_CLOSE_SECONDS,
            )
            for c in clients
        ),
        return_exceptions=True,
    )


def make_app(settings: BridgeSettings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[CLIENTS] = set[WsClient]()
    app.cleanup_ctx.append(_upstream)
    app.on_shutdown.append(_close_clients)
    app.router.add_get("/", index)
    app.router.add_get("/ws/alerts", ws_alerts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/dashboard", api_dashboard)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app


async def serve(settings: BridgeSettings) -> None:
    """Run until SIGTERM or SIGINT, then close WebSockets with 1001 and stop within seconds."""
    runner = web.AppRunner(make_app(settings), shutdown_timeout=SHUTDOWN_CLOSE_SECONDS)
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
