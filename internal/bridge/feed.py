"""One tenant's upstream WatchAlerts stream, its ring of recent alerts, and the fan-out to that
tenant's WebSocket clients (internal/bridge/tenants.py keeps one AlertFeed per tenant in use).

The stream is opened with a credential of the tenant, asked of a CredentialSource at every
(re)connect; a credential the server refuses is reported back to the source.

The upstream reconnects with backoff and resumes after the last alert it received, so the feed
itself has no gap. `position` is the last alert id the feed covers (at first, the resume point
the server announces). The ring holds the most recent alerts: a client resuming with
`?after=ID` inside the ring is served from memory; one whose ID is older gets a replay through a
separate WatchAlerts call per page (at most `replay_slots` reading at once) up to the feed's
position, and then joins the feed like the others.

Everything here runs on the event loop: attaching a client and snapshotting the ring happen
without an await in between, which is what makes the hand-over gapless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import grpc
import grpc.aio

from internal.backoff import backoff
from internal.bridge import codec
from internal.obs.metrics import BRIDGE_UPSTREAM_FEEDS
from slawatch.metadata import RESUME_METADATA_KEY
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
# Alerts a replay reads from the server under one replay slot, then sends with the slot released.
REPLAY_PAGE = 256
REFUSALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
UPDATES = {pb.ALERT_CHANGE_REPEATED: "repeated", pb.ALERT_CHANGE_ACKNOWLEDGED: "acknowledged"}


@dataclass(frozen=True, slots=True)
class FeedItem:
    alert_id: int | None  # None for status and heartbeat messages
    frame: bytes


class Subscriber(Protocol):
    def deliver(self, item: FeedItem) -> bool:
        """Queue the item; False when the subscriber's queue is full."""
        ...

    def overflowed(self) -> None:
        """It fell too far behind and has been detached."""
        ...


@dataclass(frozen=True, slots=True)
class Credential:
    """A bearer token for upstream calls; None calls without one (insecure development mode)."""

    token: str | None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        if self.token is None:
            return ()
        return (("authorization", f"Bearer {self.token}"),)

    def __repr__(self) -> str:
        return "Credential(<token>)" if self.token else "Credential(None)"


class CredentialSource(Protocol):
    def upstream(self) -> Credential | None:
        """The credential to (re)open the stream with; None when none is usable right now."""
        ...

    async def wait_usable(self) -> None:
        """Until `upstream()` may return a credential again."""
        ...

    def refused(self, credential: Credential, code: grpc.StatusCode) -> None:
        """The server answered UNAUTHENTICATED or PERMISSION_DENIED to `credential`."""
        ...


class NotReady(Exception):
    """The feed has never reached the server, so it cannot hand a resuming client over."""


@dataclass(frozen=True)
class Attachment:
    backlog: list[FeedItem]  # ring items the client still needs, before anything live
    replay_until: int | None  # not attached: replay from the server through this id first


class AlertFeed:
    def __init__(
        self,
        stub: pb_grpc.TicketServiceAsyncStub,
        ring_size: int,
        replay_slots: int,
        credentials: CredentialSource,
        tenant: str = "",
    ) -> None:
        self.tenant = tenant  # for log lines only
        self._stub = stub
        self._credentials = credentials
        self.last_error: str | None = None
        self.ring: deque[FeedItem] = deque(maxlen=ring_size)
        self.ring_floor: int | None = None  # the ring has every alert with a larger id
        self.position: int | None = None
        self.state = "connecting"
        self.up = asyncio.Event()
        self.ready = asyncio.Event()  # set once `position` is known: clients can be handed over
        self.subscribers: set[Subscriber] = set()
        self.slow_closed = 0
        self.upstream_connects = 0
        self._replay_slots = asyncio.Semaphore(replay_slots)

    # -- clients -------------------------------------------------------------------------------

    def attach(self, sub: Subscriber, after: int | None) -> Attachment:
        """Join `sub` to the live feed, with the ring items after `after`; or, when `after` is
        older than the ring, tell the caller to replay from the server first (not attached)."""
        if after is None or (self.position is not None and after >= self.position):
            self.subscribers.add(sub)
            return Attachment([], None)
        if self.ring_floor is not None and after >= self.ring_floor:
            self.subscribers.add(sub)
            return Attachment([i for i in self.ring if (i.alert_id or 0) > after], None)
        if self.position is None:
            raise NotReady("upstream not connected yet")
        return Attachment([], self.position)

    def detach(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def replay(
        self, after: int, until: int, credential: Credential
    ) -> AsyncIterator[FeedItem]:
        """Stored alerts after `after` through `until`, straight from the server, asked with the
        resuming client's own credential.

        Read a page at a time, each under a replay slot that is released before the page is
        sent: a client that stops reading holds no slot, so it cannot keep the tenant's other
        resuming clients waiting."""
        while after < until:
            async with self._replay_slots:
                page = await self._replay_page(after, until, credential)
            if not page:
                return
            for item in page:
                yield item
            after = page[-1].alert_id or after

    async def _replay_page(self, after: int, until: int, credential: Credential) -> list[FeedItem]:
        call = self._stub.WatchAlerts(
            pb.WatchAlertsRequest(after_alert_id=after), metadata=credential.metadata
        )
        page: list[FeedItem] = []
        try:
            async for response in call:
                alert_id = response.alert.alert_id
                page.append(FeedItem(alert_id, _alert_frame(response.alert)))
                if alert_id >= until or len(page) >= REPLAY_PAGE:
                    break
        finally:
            call.cancel()
        return page

    # -- the upstream --------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the upstream stream open for ever (until cancelled)."""
        BRIDGE_UPSTREAM_FEEDS.labels(self.state).inc()
        try:
            await self._run()
        finally:
            BRIDGE_UPSTREAM_FEEDS.labels(self.state).dec()

    async def _run(self) -> None:
        attempt = 0
        while True:
            credential = self._credentials.upstream()
            if credential is None:
                self.last_error = "no usable token of this tenant"
                self._set_state("down")
                await self._credentials.wait_usable()
                continue
            request = pb.WatchAlertsRequest()
            if self.position is not None:
                request.after_alert_id = self.position
            call = self._stub.WatchAlerts(request, metadata=credential.metadata)
            try:
                metadata = await call.initial_metadata()
                for key, value in metadata or ():
                    if key == RESUME_METADATA_KEY and self.position is None:
                        self.position = self.ring_floor = int(value)
                        self.ready.set()
                if self.position is not None:
                    attempt = 0
                    self.last_error = None
                    self._set_state("up")
                async for response in call:
                    if response.change in UPDATES:
                        self._publish_update(response)
                    else:
                        self._publish(response.alert)
                log.warning("upstream WatchAlerts of tenant %r ended; reconnecting", self.tenant)
            except grpc.aio.AioRpcError as err:
                error = f"{err.code().name}: {err.details()}"
                # Once per outage, not once per retry.
                level = logging.DEBUG if error == self.last_error else logging.WARNING
                log.log(
                    level, "upstream WatchAlerts of tenant %r: %s; reconnecting", self.tenant, error
                )
                self.last_error = error
                if err.code() in REFUSALS:
                    self._credentials.refused(credential, err.code())
            finally:
                call.cancel()
            self._set_state("down")
            await asyncio.sleep(
                backoff(attempt, RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS, jitter=0.5)
            )
            attempt += 1

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        BRIDGE_UPSTREAM_FEEDS.labels(self.state).dec()
        BRIDGE_UPSTREAM_FEEDS.labels(state).inc()
        self.state = state
        if state == "up":
            self.up.set()
            self.upstream_connects += 1
            log.info(
                "upstream WatchAlerts of tenant %r up (after alert %s)", self.tenant, self.position
            )
        else:
            self.up.clear()
        self.broadcast(FeedItem(None, codec.frame({"type": "status", "upstream": state})))

    def _publish(self, alert: pb.Alert) -> None:
        if self.position is not None and alert.alert_id <= self.position:
            return
        item = FeedItem(alert.alert_id, _alert_frame(alert))
        self.position = alert.alert_id
        if len(self.ring) == self.ring.maxlen:
            self.ring_floor = self.ring[0].alert_id
        self.ring.append(item)
        self.broadcast(item)

    def _publish_update(self, response: pb.WatchAlertsResponse) -> None:
        # A repeat or acknowledgement of an alert already sent: to the clients connected now,
        # outside the ring (a client resuming later reads the alert's state from GetTicket).
        change = UPDATES[response.change]
        frame = {"type": "alert_update", "change": change, "alert": codec.alert(response.alert)}
        self.broadcast(FeedItem(None, codec.frame(frame)))

    def broadcast(self, item: FeedItem) -> None:
        for sub in list(self.subscribers):
            if not sub.deliver(item):
                self.subscribers.discard(sub)
                self.slow_closed += 1
                sub.overflowed()

    async def heartbeats(self, interval: float) -> None:
        """A heartbeat message to every client every `interval` seconds: browsers cannot see
        WebSocket pings, and a silent feed must not look like a dead one."""
        while True:
            await asyncio.sleep(interval)
            self.broadcast(
                FeedItem(
                    None,
                    codec.frame(
                        {
                            "type": "heartbeat",
                            "at": codec.now_iso(),
                            "upstream": self.state,
                            "last_alert_id": self.position,
                        }
                    ),
                )
            )


def _alert_frame(alert: pb.Alert) -> bytes:
    return codec.frame({"type": "alert", "alert": codec.alert(alert)})
