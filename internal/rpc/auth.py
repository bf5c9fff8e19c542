"""Bearer-token authentication and role checks for TicketService.

Tokens are configured as SHA-256 hashes, each bound to one tenant and a set of roles; the clear
token is never stored or logged. The tenant of every call comes from its token, never from the
request. Health and reflection stay open: load balancers and grpcurl need them unauthenticated.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import grpc
import yaml

from slawatch.v1 import ticket_service_pb2 as pb

SERVICE_PREFIX = "/" + pb.DESCRIPTOR.services_by_name["TicketService"].full_name + "/"
DEV_TENANT = "default"


class Role(StrEnum):
    INGEST = "ingest"
    READ = "read"
    WATCH = "watch"


METHOD_ROLES = {
    "IngestTickets": Role.INGEST,
    "GetTicket": Role.READ,
    "GetDashboard": Role.READ,
    "WatchAlerts": Role.WATCH,
}


class AuthConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str  # the token's label, safe to log
    tenant: str
    roles: frozenset[Role]


# The caller of the RPC being served on this thread; set by the interceptor.
current_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class TokenBucket:
    """`rate` requests per second on average, bursts up to `burst`."""

    rate: float
    burst: float
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Authenticator:
    def __init__(
        self,
        tokens: Mapping[str, Principal],
        *,
        insecure_dev: bool = False,
        rate_per_second: float = 0.0,
        burst: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = dict(tokens)  # sha256 hex -> principal
        self.insecure_dev = insecure_dev
        self._rate = rate_per_second
        self._burst = burst or max(rate_per_second, 1.0)
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._clock = clock

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def authenticate(self, authorization: str | None) -> Principal | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hash_token(token.strip())
        for known, principal in self._tokens.items():
            # Constant-time comparison: the hash must not leak through timing.
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def allow(self, principal: Principal) -> bool:
        """The per-token request rate; always True when no rate is configured."""
        if self._rate <= 0:
            return True
        with self._lock:
            bucket = self._buckets.setdefault(principal.name, TokenBucket(self._rate, self._burst))
            return bucket.take(self._clock())


DEV_PRINCIPAL = Principal("insecure-dev", DEV_TENANT, frozenset(Role))


def parse_tokens(raw: Any, source: str) -> dict[str, Principal]:
    """`[{name, sha256, tenant, roles}]`; errors name the entry and field."""
    if not isinstance(raw, list):
        raise AuthConfigError(f"{source}: expected a list of tokens")
    tokens: dict[str, Principal] = {}
    names: set[str] = set()
    for i, entry in enumerate(raw):
        key = f"{source}[{i}]"
        if not isinstance(entry, dict):
            raise AuthConfigError(f"{key}: expected a mapping")
        name, digest, tenant, roles = (entry.get(k) for k in ("name", "sha256", "tenant", "roles"))
        if not isinstance(name, str) or not name or name in names:
            raise AuthConfigError(f"{key}.name: a unique, non-empty label is required")
        if (
            not isinstance(digest, str)
            or len(digest) != 64
            or not all(c in "0123456789abcdef" for c in digest)
        ):
            raise AuthConfigError(f"{key}.sha256: expected 64 lowercase hex characters")
        if not isinstance(tenant, str) or not tenant or len(tenant) > 64:
            raise AuthConfigError(f"{key}.tenant: expected a tenant name of 1-64 characters")
        if not isinstance(roles, list) or not roles:
            raise AuthConfigError(f"{key}.roles: expected a non-empty list")
        try:
            parsed = frozenset(Role(r) for r in roles)
        except ValueError:
            raise AuthConfigError(
                f"{key}.roles: unknown role (known: {', '.join(r.value for r in Role)})"
            ) from None
        names.add(name)
        tokens[digest] = Principal(name, tenant, parsed)
    return tokens


def load_tokens(inline: str | None, path: Path | None) -> dict[str, Principal]:
    """Tokens from SLAWATCH_TOKENS (JSON) and/or SLAWATCH_TOKENS_FILE (YAML or JSON)."""
    tokens: dict[str, Principal] = {}
    if inline:
        try:
            tokens.update(parse_tokens(json.loads(inline), "SLAWATCH_TOKENS"))
        except json.JSONDecodeError as err:
            raise AuthConfigError(f"SLAWATCH_TOKENS: not valid JSON: {err.msg}") from None
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as err:
            raise AuthConfigError(f"{path}: cannot read: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise AuthConfigError(f"{path}: not valid YAML: {err}") from None
        tokens.update(parse_tokens(raw, str(path)))
    return tokens


def _metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    return {k: v for k, v in details.invocation_metadata or () if isinstance(v, str)}


def _refuse(code: grpc.StatusCode, message: str, streaming: bool) -> grpc.RpcMethodHandler:
    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    def stream(request: Any, context: grpc.ServicerContext) -> Iterable[Any]:
        context.abort(code, message)
        yield from ()

    if streaming:
        return grpc.unary_stream_rpc_method_handler(stream)
    return grpc.unary_unary_rpc_method_handler(unary)


def _with_principal(handler: grpc.RpcMethodHandler, principal: Principal) -> grpc.RpcMethodHandler:
    """The same handler, run with `current_principal` set on the serving thread."""

    def wrap(behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            token = current_principal.set(principal)
            try:
                return behavior(request, context)
            finally:
                current_principal.reset(token)

        return call

    def wrap_stream(behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            token = current_principal.set(principal)
            try:
                yield from behavior(request, context)
            finally:
                current_principal.reset(token)

        return call

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream(handler.unary_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    assert handler.unary_unary is not None, "TicketService has unary and server-streaming RPCs only"
    return grpc.unary_unary_rpc_method_handler(
        wrap(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method or ""
        handler = continuation(handler_call_details)
        if not method.startswith(SERVICE_PREFIX) or handler is None:
            return handler  # health, reflection, unknown methods: not ours to guard
        role = METHOD_ROLES[method[len(SERVICE_PREFIX) :]]
        streaming = handler.unary_stream is not None
        if self._auth.insecure_dev and not self._auth.configured:
            principal: Principal | None = DEV_PRINCIPAL
        else:
            principal = self._auth.authenticate(
                _metadata(handler_call_details).get("authorization")
            )
        if principal is None:
            return _refuse(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or unknown bearer token (metadata 'authorization: Bearer <token>')",
                streaming,
            )
        if role not in principal.roles:
            return _refuse(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {principal.name!r} lacks the {role.value!r} role for {method}",
                streaming,
            )
        if not self._auth.allow(principal):
            return _refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit exceeded for token {principal.name!r}"
                " (SLAWATCH_RATE_LIMIT_PER_SECOND); retry with backoff",
                streaming,
            )
        return _with_principal(handler, principal)
