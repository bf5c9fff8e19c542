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
from support.bridge import WS_TIMEOUT, alerts_until, receive, run_bridge, silent_ws_client
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
