"""One upstream feed per tenant in use, and which token each feed calls the server with.

A client only ever joins the feed of its own tenant (the tenant of its token), and a feed only
ever calls the server with a token of that tenant, so no alert of one tenant can reach another's
client, whatever the bridge's state.

Which token a feed uses, asked afresh at every (re)connect of its upstream stream:
1. the tenant's configured upstream token (SLAWATCH_UPSTREAM_TOKEN), if any: such a feed starts
   with the bridge and runs for its whole life;
2. otherwise the token of the tenant's longest-connected client that the server has not refused.
When that client leaves, the open stream stays open (the server authenticated it when it
started, and the remaining clients hold tokens of the same tenant with the same role); the next
reconnect uses a client still connected. When the server refuses a client token (UNAUTHENTICATED
or PERMISSION_DENIED: revoked there, or a configuration that differs from the bridge's), every
client holding that token is closed with 4401 / 4403 and the feed moves on to another client's
token. A feed without configured token stops `linger` seconds after its last client left.

When the bridge reloads its tokens file, `FeedRegistry.recheck` closes at once every client whose
token the new tokens revoke (4401) or no longer allow to watch its tenant (4401 / 4403), without
waiting for the server to refuse it; a token put back is tried upstream again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping

import grpc

from internal.bridge.client import WsClient, refusal_close_code
from internal.bridge.feed import AlertFeed, Credential
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# Why a client of a tenant holding a credential may no longer be served: (close code, reason).
Refusal = Callable[[str, Credential], tuple[int, str] | None]


class TooManyClients(Exception):
    """The tenant already has its maximum of WebSocket clients on this bridge."""


class TenantFeed:
    """One tenant's AlertFeed and the clients (with their credentials) attached to it; the
    feed's CredentialSource."""

    def __init__(
        self,
        tenant: str,
        stub: pb_grpc.TicketServiceAsyncStub,
        *,
        ring_size: int,
        replay_slots: int,
        heartbeat_seconds: float,
        configured: Credential | None,
    ) -> None:
        self.tenant = tenant
        self.configured = configured
        # Insertion order is connection order: the oldest client's token is tried first.
        self.clients: dict[WsClient, Credential] = {}
        self.refused_tokens: set[str] = set()
        self._usable = asyncio.Event()
        self.feed = AlertFeed(stub, ring_size, replay_slots, self, tenant)
        self.tasks = (
            asyncio.create_task(self.feed.run(), name=f"upstream:{tenant}"),
            asyncio.create_task(self.feed.heartbeats(heartbeat_seconds), name=f"beat:{tenant}"),
        )
        self.linger: asyncio.TimerHandle | None = None

    # -- CredentialSource ----------------------------------------------------------------------

    def upstream(self) -> Credential | None:
        if self.configured is not None:
            return self.configured
        for credential in self.clients.values():
            if credential.token is not None and credential.token not in self.refused_tokens:
                return credential
        return None

    async def wait_usable(self) -> None:
        while self.upstream() is None:
            self._usable.clear()
            await self._usable.wait()

    def refused(self, credential: Credential, code: grpc.StatusCode) -> None:
        if credential == self.configured or credential.token is None:
            # An operator's token: keep retrying with backoff; /healthz shows the error.
            return
        self.refused_tokens.add(credential.token)
        victims = [c for c, cred in self.clients.items() if cred == credential]
        log.warning(
            "server refused a client token of tenant %r (%s); closing its %d client(s)",
            self.tenant,
            code.name,
            len(victims),
        )
        for client in victims:
            client.close_soon(
                refusal_close_code(code), f"token refused by the server ({code.name})"
            )

    def recheck(self, refusal: Refusal) -> int:
        """Close the clients `refusal` now refuses; how many were closed."""
        if self.configured is not None and refusal(self.tenant, self.configured) is not None:
            # Not closed: the server decides, and the feed keeps retrying (/healthz shows it).
            log.warning(
                "the configured upstream token of tenant %r is no longer allowed by the"
                " tokens file",
                self.tenant,
            )
        # Tokens the server refused before may be valid again: let the feed try them.
        self.refused_tokens = {
            t for t in self.refused_tokens if refusal(self.tenant, Credential(t)) is not None
        }
        closed = 0
        for client, credential in list(self.clients.items()):
            verdict = refusal(self.tenant, credential)
            if verdict is None:
                continue
            if credential.token is not None:
                self.refused_tokens.add(credential.token)  # never the feed's next upstream
            client.close_soon(*verdict)
            closed += 1
        if closed:
            log.info("closed %d WebSocket(s) of tenant %r: token revoked", closed, self.tenant)
        self._usable.set()  # wake a feed waiting for a usable token, in case one came back
        return closed

    # -- clients -------------------------------------------------------------------------------

    def add(self, client: WsClient, credential: Credential) -> None:
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        self.clients[client] = credential
        self._usable.set()

    def remove(self, client: WsClient) -> None:
        self.feed.detach(client)
        self.clients.pop(client, None)

    def cancel(self) -> None:
        if self.linger is not None:
            self.linger.cancel()
        for task in self.tasks:
            task.cancel()


class FeedRegistry:
    def __init__(
        self,
        stub: pb_grpc.TicketServiceAsyncStub,
        *,
        configured: Mapping[str, Credential],
        max_clients_per_tenant: int,
        linger_seconds: float,
        ring_size: int,
        replay_slots: int,
        heartbeat_seconds: float,
    ) -> None:
        self._stub = stub
        self._configured = dict(configured)
        self.max_clients_per_tenant = max_clients_per_tenant
        self._linger = linger_seconds
        self._ring_size = ring_size
        self._replay_slots = replay_slots
        self._heartbeat = heartbeat_seconds
        self._feeds: dict[str, TenantFeed] = {}
        self._stopped: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """The feeds of tenants with a configured upstream token run from the start."""
        for tenant in self._configured:
            self._create(tenant)

    def __iter__(self) -> Iterator[TenantFeed]:
        return iter(list(self._feeds.values()))

    def __len__(self) -> int:
        return len(self._feeds)

    def get(self, tenant: str) -> TenantFeed | None:
        return self._feeds.get(tenant)

    def recheck(self, refusal: Refusal) -> int:
        """After a reload of the tokens: close every client that `refusal` refuses now."""
        return sum(tenant_feed.recheck(refusal) for tenant_feed in self)

    def join(self, tenant: str, client: WsClient, credential: Credential) -> TenantFeed:
        """Attach `client` to its tenant's feed, starting the feed if needed."""
        tenant_feed = self._feeds.get(tenant) or self._create(tenant)
        if len(tenant_feed.clients) >= self.max_clients_per_tenant:
            raise TooManyClients(
                f"too many clients for this tenant: at most {self.max_clients_per_tenant}"
                " (SLAWATCH_BRIDGE_MAX_CLIENTS_PER_TENANT)"
            )
        tenant_feed.add(client, credential)
        return tenant_feed

    def leave(self, tenant_feed: TenantFeed, client: WsClient) -> None:
        tenant_feed.remove(client)
        if tenant_feed.clients or tenant_feed.configured is not None:
            return
        if self._feeds.get(tenant_feed.tenant) is not tenant_feed:
            return
        loop = asyncio.get_running_loop()
        tenant_feed.linger = loop.call_later(self._linger, self._stop, tenant_feed)

    async def close(self) -> None:
        feeds = list(self._feeds.values())
        self._feeds.clear()
        for tenant_feed in feeds:
            tenant_feed.cancel()
        tasks = [t for f in feeds for t in f.tasks] + list(self._stopped)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    def _create(self, tenant: str) -> TenantFeed:
        tenant_feed = TenantFeed(
            tenant,
            self._stub,
            ring_size=self._ring_size,
            replay_slots=self._replay_slots,
            heartbeat_seconds=self._heartbeat,
            configured=self._configured.get(tenant),
        )
        self._feeds[tenant] = tenant_feed
        return tenant_feed

    def _stop(self, tenant_feed: TenantFeed) -> None:
        if tenant_feed.clients or self._feeds.get(tenant_feed.tenant) is not tenant_feed:
            return
        del self._feeds[tenant_feed.tenant]
        tenant_feed.cancel()
        log.info("tenant %r has no clients left; its upstream stream is closed", tenant_feed.tenant)
        # Kept until done, so that shutdown can wait for them and none is garbage-collected
        # while still cancelling.
        for task in tenant_feed.tasks:
            self._stopped.add(task)
            task.add_done_callback(self._stopped.discard)
