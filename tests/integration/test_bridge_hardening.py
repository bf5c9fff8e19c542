"""The bridge against hostile or broken clients, as a real process between a real gRPC server and
real sockets: clients that never read, request lines that aiohttp cannot parse, forged query
values, and what the open /healthz shows."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import aiohttp

from internal.embedded.ports import free_port
from internal.rpc.server import RunningServer
from support.alerts import write_alerts
from support.bridge import receive, run_bridge, silent_ws_client
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
