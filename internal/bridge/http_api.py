"""The unary TicketService RPCs as HTTP/JSON routes (DESIGN §12), for webhooks and curl.

Each route forwards its call to the gRPC server with the caller's own token, so the server's
authentication, roles, rate limits and validation apply unchanged (an ingest over HTTP is the
same one all-or-nothing transaction); the bridge adds only the JSON mapping
(internal/bridge/protojson.py) and the status mapping (internal/bridge/http_errors.py). The
routes are one table: the handlers, the OpenAPI document (internal/bridge/openapi.py) and its
test all read it.

Nothing blocks the event loop: the calls are grpc.aio, and the JSON conversions, which are pure
Python and take tens of milliseconds for a full batch or page, run in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from aiohttp import web
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message

from internal.bridge import http_errors, protojson
from internal.bridge.auth import BridgeAuth
from internal.bridge.feed import Credential
from internal.config.settings import BridgeSettings
from internal.config.tokens import bearer_token
from slawatch.v1 import ticket_service_pb2 as pb

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["TicketService"]
JSON_TYPES = ("application/json",)
UNAUTHORIZED_MESSAGE = "missing or unknown bearer token (header 'Authorization: Bearer <token>')"


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST or DELETE
    path: str  # aiohttp's (and OpenAPI's) template: {name} is a field of the request
    rpc: str  # the TicketService method
    body: bool  # True: the request is the JSON body; False: path parameters and the query
    summary: str

    @property
    def descriptor(self) -> MethodDescriptor:
        return SERVICE.methods_by_name[self.rpc]

    @property
    def request_type(self) -> Descriptor:
        return self.descriptor.input_type

    @property
    def response_type(self) -> Descriptor:
        return self.descriptor.output_type

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(p.split("}")[0] for p in self.path.split("{")[1:])

    @property
    def grpc_method(self) -> str:
        return f"/{SERVICE.full_name}/{self.rpc}"


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/tickets:ingest",
        "IngestTickets",
        body=True,
        summary="Store a batch of ticket events, all or nothing (IngestTickets)",
    ),
    Route(
        "GET",
        "/v1/tickets/{ticket_id}",
        "GetTicket",
        body=False,
        summary="One ticket with its clocks, history and alerts (GetTicket)",
    ),
    Route(
        "GET",
        "/v1/dashboard",
        "GetDashboard",
        body=False,
        summary="Tickets most urgent first, with counts per SLA state (GetDashboard)",
    ),
    Route(
        "DELETE",
        "/v1/tickets/{ticket_id}",
        "DeleteTicket",
        body=False,
        summary="Erase a ticket with its history, clocks, alerts and notifications (DeleteTicket)",
    ),
    Route(
        "POST",
        "/v1/alerts/{alert_id}:acknowledge",
        "AcknowledgeAlert",
        body=True,
        summary="Mark an alert handled: its repeats stop (AcknowledgeAlert)",
    ),
    Route(
        "GET",
        "/v1/reports/sla",
        "GetSlaReport",
        body=False,
        summary="SLA attainment per interval and group, from the rollups (GetSlaReport)",
    ),
    Route(
        "POST",
        "/v1/policy:preview",
        "PreviewPolicy",
        body=True,
        summary="What saving a candidate SLA config would change, nothing written (PreviewPolicy)",
    ),
    Route(
        "GET",
        "/v1/policy",
        "GetPolicy",
        body=False,
        summary="The SLA config version in force (or the one named) with its text (GetPolicy)",
    ),
    Route(
        "GET",
        "/v1/policy/versions",
        "ListPolicyVersions",
        body=False,
        summary="The SLA config's versions, newest first (ListPolicyVersions)",
    ),
)
OPENAPI_PATH = "/v1/openapi.json"


def _check_routes() -> None:
    """At import: every route names a unary RPC and its path parameters name request fields."""
    for route in ROUTES:
        method = route.descriptor
        assert not (method.client_streaming or method.server_streaming), route.rpc
        for name in route.path_params:
            field = route.request_type.fields_by_name.get(name)
            assert field is not None and protojson.query_settable(field), (route.path, name)


_check_routes()


class HttpApi:
    """The /v1 handlers of one bridge: its channel to the server, tokens and limits."""

    def __init__(
        self, channel: grpc.aio.Channel, auth: BridgeAuth, settings: BridgeSettings
    ) -> None:
        self._auth = auth
        self._max_bytes = settings.max_message_bytes
        self._timeout = settings.call_timeout_seconds
        self._calls = {
            route.rpc: channel.unary_unary(
                route.grpc_method,
                request_serializer=_message_class(route.request_type).SerializeToString,
                response_deserializer=_message_class(route.response_type).FromString,
            )
            for route in ROUTES
        }

    async def serve(self, route: Route, request: web.Request) -> web.StreamResponse:
        credential = self.credential(request)
        if credential is None:
            return http_errors.error_response(grpc.StatusCode.UNAUTHENTICATED, UNAUTHORIZED_MESSAGE)
        try:
            message = await self._request_message(
                request, route, _message_class(route.request_type)()
            )
        except _Refused as refused:
            return refused.response
        try:
            answer = await self.call(route.rpc, message, credential)
            body = await asyncio.to_thread(protojson.to_json, answer)
        except grpc.aio.AioRpcError as err:
            return http_errors.from_rpc_error(err, route.rpc)
        except Exception:
            # Still the documented JSON error shape, not aiohttp's plain-text page.
            log.exception("%s over HTTP failed in the bridge", route.rpc)
            return http_errors.error_response(
                grpc.StatusCode.INTERNAL, http_errors.FALLBACK_MESSAGE
            )
        return web.Response(body=body, content_type="application/json")

    async def call(self, rpc: str, message: Message, credential: Credential) -> Any:
        """One unary call of a route's RPC with the caller's own token, under the bridge's call
        timeout; a failed call raises grpc.aio.AioRpcError."""
        return await self._calls[rpc](message, timeout=self._timeout, metadata=credential.metadata)

    def credential(self, request: web.Request) -> Credential | None:
        """The token to call the server with: the caller's own, from the Authorization header
        (not from the URL, where webhook configurations and proxies' logs would keep it). The
        bridge refuses a missing or unknown one itself; roles are the server's to check."""
        if self._auth.authenticator.open_dev:
            caller = self._auth.identify(request)
            return caller.credential if caller is not None else None
        token = bearer_token(request.headers.get("Authorization"))
        if not token or self._auth.authenticator.lookup(token) is None:
            return None
        return Credential(token)

    async def _request_message(self, request: web.Request, route: Route, message: Message) -> Any:
        try:
            if not route.body:
                return protojson.parse_query(request.query, dict(request.match_info), message)
            raw = await self._read_body(request)
            parsed = await asyncio.to_thread(
                protojson.parse_body, raw, message, dict(request.match_info)
            )
        except protojson.BadJson as err:
            raise _Refused(
                http_errors.error_response(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            ) from None
        # JSON is larger than the binary encoding almost always; this catches the rest, so that
        # the server's RESOURCE_EXHAUSTED for a message too large is never mistaken for a 429.
        if parsed.ByteSize() > self._max_bytes:
            raise _Refused(self._too_large())
        return parsed

    async def _read_body(self, request: web.Request) -> bytes:
        if request.content_type not in JSON_TYPES and not request.content_type.endswith("+json"):
            raise _Refused(
                http_errors.error_response(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the body must be JSON (Content-Type: application/json),"
                    f" not {request.content_type!r}",
                    http_status=415,
                )
            )
        if request.content_length is not None and request.content_length > self._max_bytes:
            raise _Refused(self._too_large())
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Refused(self._too_large()) from None

    def _too_large(self) -> web.Response:
        return http_errors.error_response(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the request is larger than {self._max_bytes} bytes (SLAWATCH_MAX_MESSAGE_BYTES)",
            http_status=413,
        )


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


HTTP_API: web.AppKey[HttpApi] = web.AppKey("http_api", HttpApi)


def add_routes(app: web.Application, document: dict[str, Any]) -> None:
    """The /v1 routes on `app`, served by its HTTP_API (set once the upstream channel is open)."""
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _handler(route))
    body = json.dumps(document, indent=2).encode()

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app.router.add_route("GET", OPENAPI_PATH, openapi)


def _handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[HTTP_API].serve(route, request)

    return handle
