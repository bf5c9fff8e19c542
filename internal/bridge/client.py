"""One WebSocket client of the bridge: a bounded queue fed by the AlertFeed and a task writing it.

A client that falls `capacity` messages behind is detached and closed with CLOSE_TOO_SLOW; its
close reason says which `after` to reconnect with. Alert ids it was already sent are never sent
again (a replay and the ring can overlap).

A client that does not read at all cannot even be sent its close frame: when the close times
out the connection is aborted, since a graceful transport close would wait for ever for the
unsent bytes to drain, keeping the socket, its buffered megabytes and the tenant's client slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import grpc
import grpc.aio
from aiohttp import WSMsgType, web

from internal.bridge import codec
from internal.bridge.feed import REFUSALS, AlertFeed, Credential, FeedItem, NotReady
from internal.obs.metrics import BRIDGE_WEBSOCKETS_OPEN

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008  # application code: fell behind; reconnect with ?after=
# Authentication and limits are close codes rather than refused handshakes: a browser's
# WebSocket API shows the page a close code and reason, but never a handshake's HTTP status.
CLOSE_UNAUTHORIZED = 4401  # missing or unknown token: do not retry with the same token
CLOSE_FORBIDDEN = 4403  # the token lacks the `watch` role (or the server refused it)
CLOSE_TOO_MANY_CLIENTS = 4429  # the tenant's WebSocket clients are at the bridge's limit
CLOSE_TRY_AGAIN = 1013  # RFC 6455 "try again later": the upstream is not reachable right now
CLOSE_GOING_AWAY = 1001  # the bridge is shutting down
CLOSE_INTERNAL_ERROR = 1011
# A client too slow to read even its close frame is cut off after this long.
CLOSE_TIMEOUT_SECONDS = 10.0
# How long a client waits for a tenant feed that has just started to reach the server before
# its hello (which must carry a resume point), before it is told to try again.
FEED_READY_WAIT_SECONDS = 10.0


def refusal_close_code(code: grpc.StatusCode) -> int:
    """The close code for a token the server answered UNAUTHENTICATED or PERMISSION_DENIED to."""
    return CLOSE_UNAUTHORIZED if code == grpc.StatusCode.UNAUTHENTICATED else CLOSE_FORBIDDEN


class WsClient:
    def __init__(self, ws: web.WebSocketResponse, capacity: int) -> None:
        self.ws = ws
        self.capacity = capacity
        self.last_alert_id: int | None = None
        self._queue: deque[FeedItem] = deque()
        self._wake = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None  # set once the handshake is done
        # A close asked for before the handshake is done (a token revoked between the check of
        # /ws/alerts and the handshake) waits for it: a socket not prepared cannot be closed.
        self._opened = asyncio.Event()

    # Called by the feed, on the event loop.

    def deliver(self, item: FeedItem) -> bool:
        if len(self._queue) >= self.capacity:
            return False
        self._queue.append(item)
        self._wake.set()
        return True

    def overflowed(self) -> None:
        resume = "" if self.last_alert_id is None else f" with after={self.last_alert_id}"
        reason = f"too slow: more than {self.capacity} messages behind; reconnect{resume}"
        self.close_soon(CLOSE_TOO_SLOW, reason)

    def close_soon(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.create_task(self._close_when_open(code, reason))

    async def _close_when_open(self, code: int, reason: str) -> None:
        await self._opened.wait()
        await self.close(code, reason)

    def opened(self, transport: asyncio.Transport | None) -> None:
        """The handshake is done."""
        self.transport = transport
        self._opened.set()

    def abandon(self) -> None:
        """The handshake failed: a close waiting for it is dropped."""
        if self._closing is not None and not self._opened.is_set():
            self._closing.cancel()

    async def close(self, code: int, reason: str, wait: float = CLOSE_TIMEOUT_SECONDS) -> None:
        # RuntimeError: not prepared yet.
        with contextlib.suppress(ConnectionError, RuntimeError):
            try:
                await asyncio.wait_for(
                    self.ws.close(code=code, message=reason.encode()[:123]), wait
                )
            except TimeoutError:
                self.abort()
        self._wake.set()

    def abort(self) -> None:
        """Drop the connection at once, with whatever is still unsent."""
        if self.transport is not None:
            self.transport.abort()

    def release(self) -> None:
        """The handler is done: a connection still holding unsent bytes (a close that aiohttp
        ended on a ping timeout, say) is aborted rather than left to drain for ever."""
        if self.transport is not None and self.transport.get_write_buffer_size():
            self.transport.abort()

    # The writer task.

    async def run(
        self, feed: AlertFeed, after: int | None, heartbeat_seconds: float, credential: Credential
    ) -> None:
        try:
            await self._run(feed, after, heartbeat_seconds, credential)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("WebSocket writer failed")
            self.close_soon(CLOSE_INTERNAL_ERROR, "internal error; reconnect")

    async def _run(
        self, feed: AlertFeed, after: int | None, heartbeat_seconds: float, credential: Credential
    ) -> None:
        """Hello, any replay or backlog, then live messages until the socket closes."""
        if not feed.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.ready.wait(), FEED_READY_WAIT_SECONDS)
        try:
            if not feed.ready.is_set():
                raise NotReady("upstream not connected yet")
            attachment = feed.attach(self, after)
        except NotReady:
            reason = f"upstream not connected; reconnect with after={after}"
            await self.close(CLOSE_TRY_AGAIN, reason)
            return
        self.last_alert_id = after
        await self._send(
            FeedItem(
                None,
                codec.frame(
                    {
                        "type": "hello",
                        "resume_after": after if after is not None else feed.position,
                        "upstream": feed.state,
                        "heartbeat_seconds": heartbeat_seconds,
                    }
                ),
            )
        )
        if after is None:
            self.last_alert_id = feed.position
        while attachment.replay_until is not None:
            assert self.last_alert_id is not None
            try:
                async for item in feed.replay(
                    self.last_alert_id, attachment.replay_until, credential
                ):
                    await self._send(item)
            except grpc.aio.AioRpcError as err:
                log.info("replay for a client failed: %s", err.code().name)
                if err.code() in REFUSALS:
                    await self.close(
                        refusal_close_code(err.code()),
                        f"token refused by the server ({err.code().name})",
                    )
                    return
                await self.close(
                    CLOSE_TRY_AGAIN,
                    f"upstream unavailable; reconnect with after={self.last_alert_id}",
                )
                return
            attachment = feed.attach(self, self.last_alert_id)
        for item in attachment.backlog:
            await self._send(item)
        while not self.ws.closed and self._closing is None:
            while self._queue and self._closing is None:
                await self._send(self._queue.popleft())
            self._wake.clear()
            await self._wake.wait()

    async def _send(self, item: FeedItem) -> None:
        if item.alert_id is not None:
            if self.last_alert_id is not None and item.alert_id <= self.last_alert_id:
                return
            await self.ws.send_frame(item.frame, WSMsgType.TEXT)
            self.last_alert_id = item.alert_id
        else:
            await self.ws.send_frame(item.frame, WSMsgType.TEXT)


CLIENTS: web.AppKey[set[WsClient]] = web.AppKey("clients", set)


async def refuse(request: web.Request, code: int, reason: str) -> web.WebSocketResponse:
    """Complete the handshake only to close at once with `code`: the page can read it."""
    ws = web.WebSocketResponse(compress=False, max_msg_size=1024)
    await ws.prepare(request)
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(ws.close(code=code, message=reason.encode()[:123]), 5)
    return ws


def new_socket(heartbeat: float) -> web.WebSocketResponse:
    # compress=False: every frame is encoded once and sent as is to thousands of clients;
    # per-client deflate would multiply the CPU per alert by the number of clients.
    return web.WebSocketResponse(heartbeat=heartbeat * 2, compress=False, max_msg_size=64 * 1024)


async def serve_client(
    request: web.Request,
    client: WsClient,
    feed: AlertFeed,
    after: int | None,
    heartbeat: float,
    credential: Credential,
) -> web.WebSocketResponse:
    """Run an accepted client until its socket closes; the caller detaches it afterwards."""
    ws = client.ws
    try:
        await ws.prepare(request)
    except BaseException:
        client.abandon()
        raise
    client.opened(request.transport)
    clients: set[WsClient] = request.app[CLIENTS]
    clients.add(client)
    BRIDGE_WEBSOCKETS_OPEN.inc()
    writer = asyncio.create_task(client.run(feed, after, heartbeat, credential))
    try:
        async for _ in ws:
            pass  # nothing to receive; the loop answers pings and notices the close
    finally:
        feed.detach(client)
        clients.discard(client)
        BRIDGE_WEBSOCKETS_OPEN.dec()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
            await writer
        client.release()
    return ws
