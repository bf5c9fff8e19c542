"""Real-time benchmark (issue 4), everything real and on this machine:

1. N (default 1,000) concurrent WatchAlerts streams on one server process: the delay from an
   alert's commit to its receipt on every stream (target p99 <= 500 ms) and the server's RSS;
2. M (default 5,000) WebSocket clients on one bridge process: the delay from commit to receipt
   on every client (target p99 <= 1 s) and the bridge's RSS.

The server and the bridge run as subprocesses (so that their RSS is theirs alone); the
watchers are grpc.aio streams and aiohttp WebSockets in this process, sharing the machine's
cores with them. Alerts are written one per transaction at a steady rate, with the evaluator's
discipline (alert write lock, NOTIFY in the same transaction); the commit time is taken when
COMMIT returns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import grpc.aio
import psycopg

from bench.common import ROOT, peak_rss_mb, rss_mb, scratch_database, server_process, summary_ms
from internal.embedded.ports import free_port
from internal.store.evaluate_repo import ALERT_WRITE_LOCK, ALERTS_CHANNEL
from internal.store.migrate import migrate
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

DRAIN_SECONDS = 60.0  # after the last write, how long watchers may take to receive it

_INSERT = """
INSERT INTO alerts (tenant_id, ticket_id, clock, kind, escalation_level, due_at, priority,
                    customer_tier, policy_version)
VALUES ('default', %s, 'response', 'breach', 3, now(), 'high', 'gold', 'bench')
RETURNING alert_id
"""


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def write_alerts(database_url: str, count: int, rate: float, tag: str) -> dict[int, float]:
    """`count` alerts, one per transaction, `rate` per second; alert id -> commit time."""
    committed: dict[int, float] = {}
    with psycopg.connect(database_url) as conn:
        started = time.monotonic()
        for i in range(count):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_WRITE_LOCK,))
                row = conn.execute(_INSERT, (f"{tag}-{i}",)).fetchone()
                assert row is not None
                conn.execute("SELECT pg_notify(%s, %s)", (ALERTS_CHANNEL, str(row[0])))
            committed[int(row[0])] = time.time()
            # Pacing a load generator, not synchronisation.
            time.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
    return committed


class Completion:
    """Set once every watcher has received the last alert written (all on the event loop)."""

    def __init__(self, received: list[dict[int, float]]) -> None:
        self.received = received
        self.last: int | None = None
        self.done: set[int] = set()
        self.event = asyncio.Event()

    def saw(self, watcher: int, alert_id: int) -> None:
        if self.last is not None and alert_id >= self.last:
            self.done.add(watcher)
            if len(self.done) == len(self.received):
                self.event.set()

    async def wait(self, last: int) -> None:
        self.last = last
        for i, got in enumerate(self.received):
            if last in got:
                self.saw(i, last)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), DRAIN_SECONDS)


def delays(
    committed: dict[int, float], received: list[dict[int, float]]
) -> tuple[list[float], int]:
    samples, missing = [], 0
    for got in received:
        for alert_id, at in committed.items():
            if alert_id in got:
                samples.append(got[alert_id] - at)
            else:
                missing += 1
    return samples, missing


# -- 1. WatchAlerts streams --------------------------------------------------------------------


async def grpc_streams(
    target: str, streams: int, channels: int, database_url: str, args: argparse.Namespace, pid: int
) -> None:
    received: list[dict[int, float]] = [{} for _ in range(streams)]
    completion = Completion(received)
    ready = 0
    all_ready = asyncio.Event()
    # Separate subchannel pools: otherwise every channel shares one connection.
    opened = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(channels)
    ]

    async def watch(i: int) -> None:
        nonlocal ready
        stub = pb_grpc.TicketServiceStub(opened[i % channels])
        call = stub.WatchAlerts(pb.WatchAlertsRequest())
        await call.initial_metadata()
        ready += 1
        if ready == streams:
            all_ready.set()
        got = received[i]
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            async for response in call:
                got[response.alert.alert_id] = time.time()
                completion.saw(i, response.alert.alert_id)

    tasks = [asyncio.create_task(watch(i)) for i in range(streams)]
    await asyncio.wait_for(all_ready.wait(), 300)
    rss_open = rss_mb(pid)
    committed = await asyncio.to_thread(write_alerts, database_url, args.alerts, args.rate, "grpc")
    await completion.wait(max(committed))
    samples, missing = delays(committed, received)
    print(
        f"WatchAlerts: {streams} streams on one server process ({channels} connections), "
        f"{args.alerts} alerts at {args.rate:g}/s"
    )
    print(f"  commit -> receipt on every stream: {summary_ms(samples)}, missing {missing}")
    print(
        f"  server RSS: {rss_open:.0f} MB with the streams open, {rss_mb(pid):.0f} MB after, "
        f"peak {peak_rss_mb(pid):.0f} MB; {threads_of(pid)} threads"
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in opened:
        await channel.close()


# -- 2. WebSocket clients on the bridge --------------------------------------------------------


@contextlib.contextmanager
def bridge_process(grpc_target: str, clients: int) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = dict(
        os.environ,
        SLAWATCH_BRIDGE_HOST="127.0.0.1",
        SLAWATCH_BRIDGE_PORT=str(port),
        SLAWATCH_GRPC_TARGET=grpc_target,
        SLAWATCH_LOG_LEVEL="WARNING",
        # Like the server here: one tenant, every client in it.
        SLAWATCH_INSECURE_DEV="1",
        SLAWATCH_BRIDGE_MAX_CLIENTS_PER_TENANT=str(clients),
    )
    proc = subprocess.Popen([sys.executable, str(ROOT / "cmd/slawatch-bridge/main.py")], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    if json.loads(r.read())["upstream"] == "up":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("bridge did not come up")
            time.sleep(0.2)
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(30)


async def websocket_clients(
    port: int, clients: int, database_url: str, args: argparse.Namespace, pid: int
) -> None:
    received: list[dict[int, float]] = [{} for _ in range(clients)]
    completion = Completion(received)
    ready = 0
    all_ready = asyncio.Event()
    url = f"ws://127.0.0.1:{port}/ws/alerts"
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    # The listen backlog is finite: open the sockets in waves rather than all at once.
    opening = asyncio.Semaphore(200)

    async def client(i: int) -> None:
        nonlocal ready
        async with opening:
            ws = await session.ws_connect(url, autoping=True, max_msg_size=0)
            await ws.receive()  # hello
        ready += 1
        if ready == clients:
            all_ready.set()
        got = received[i]
        with contextlib.suppress(asyncio.CancelledError):
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith('{"type":"alert"'):
                    alert_id = json.loads(msg.data)["alert"]["alert_id"]
                    got[alert_id] = time.time()
                    completion.saw(i, alert_id)
        await ws.close()

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.wait_for(all_ready.wait(), 600)
    rss_open = rss_mb(pid)
    committed = await asyncio.to_thread(
        write_alerts, database_url, args.ws_alerts, args.ws_rate, "ws"
    )
    await completion.wait(max(committed))
    samples, missing = delays(committed, received)
    print(
        f"bridge: {clients} WebSocket clients on one bridge process, "
        f"{args.ws_alerts} alerts at {args.ws_rate:g}/s"
    )
    print(f"  commit -> receipt on every client: {summary_ms(samples)}, missing {missing}")
    print(
        f"  bridge RSS: {rss_open:.0f} MB with the clients connected, {rss_mb(pid):.0f} MB after, "
        f"peak {peak_rss_mb(pid):.0f} MB"
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=10, help="connections for the streams")
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="alerts per second")
    parser.add_argument("--ws-clients", type=int, default=5000)
    parser.add_argument("--ws-alerts", type=int, default=40)
    parser.add_argument("--ws-rate", type=float, default=2.0)
    parser.add_argument("--only", choices=["grpc", "ws"], default=None)
    args = parser.parse_args()
    raise_fd_limit()

    with tempfile.TemporaryDirectory() as tmp, scratch_database() as db:
        migrate(db)
        config = Path(tmp) / "sla_config.yaml"
        config.write_text((ROOT / "sla_config.yaml").read_text())
        max_streams = str(args.streams + 100)
        with server_process(
            db,
            config,
            SLAWATCH_MAX_STREAMS=max_streams,
            SLAWATCH_MAX_STREAMS_PER_TENANT=max_streams,
        ) as server:
            if args.only in (None, "grpc"):
                asyncio.run(
                    grpc_streams(
                        server.target, args.streams, args.channels, db, args, server.proc.pid
                    )
                )
            if args.only in (None, "ws"):
                with bridge_process(server.target, args.ws_clients) as (bridge, port):
                    asyncio.run(websocket_clients(port, args.ws_clients, db, args, bridge.pid))


if __name__ == "__main__":
    main()
