"""Who is calling the bridge: the same tokens, tenants and roles as the server
(internal/config/tokens.py, SLAWATCH_TOKENS / SLAWATCH_TOKENS_FILE).

A token comes in the `Authorization: Bearer <token>` header or, for browsers' WebSockets (whose
API cannot set headers), in the `token` query parameter. Tokens never reach a log line: the
access log redacts the parameter (internal/bridge/request_logs.py).

SLAWATCH_TOKENS_FILE is watched (internal/config/tokens_watcher.py): every request is identified
against the tokens in force, and `ws_refusal` tells which open WebSockets a reload revokes.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from internal.bridge.client import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED
from internal.bridge.feed import Credential
from internal.bridge.request_logs import TOKEN_PARAM
from internal.config.settings import BridgeSettings, BridgeSettingsError
from internal.config.tokens import (
    DEV_PRINCIPAL,
    DEV_TENANT,
    AuthConfigError,
    Authenticator,
    Principal,
    Role,
    bearer_token,
    build_authenticator,
)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    # What the bridge calls the server with on this caller's behalf: its own token, or in the
    # insecure development mode the configured upstream token (if any).
    credential: Credential


@dataclass(frozen=True)
class BridgeAuth:
    authenticator: Authenticator
    # Tenant -> its configured upstream token (SLAWATCH_UPSTREAM_TOKEN).
    configured: dict[str, Credential]

    @classmethod
    def from_settings(cls, settings: BridgeSettings) -> BridgeAuth:
        """Reads SLAWATCH_TOKENS_FILE: call it off the event loop."""
        try:
            auth = build_authenticator(
                settings.tokens_json, settings.tokens_file, insecure_dev=settings.insecure_dev
            )
        except AuthConfigError as err:
            raise BridgeSettingsError(str(err)) from None
        if auth.open_dev:
            if len(settings.upstream_tokens) > 1:
                raise BridgeSettingsError(
                    "SLAWATCH_UPSTREAM_TOKEN: one token only in the insecure development mode"
                    " (there is a single tenant)"
                )
            token = settings.upstream_tokens[0] if settings.upstream_tokens else None
            return cls(auth, {DEV_TENANT: Credential(token)})
        configured: dict[str, Credential] = {}
        for i, token in enumerate(settings.upstream_tokens, 1):
            principal = auth.lookup(token)
            if principal is None:
                raise BridgeSettingsError(
                    f"SLAWATCH_UPSTREAM_TOKEN: token #{i} is not one of the configured tokens"
                    " (SLAWATCH_TOKENS / SLAWATCH_TOKENS_FILE), so its tenant is unknown"
                )
            if Role.WATCH not in principal.roles:
                raise BridgeSettingsError(
                    f"SLAWATCH_UPSTREAM_TOKEN: token {principal.name!r} lacks the 'watch' role"
                )
            if principal.tenant in configured:
                raise BridgeSettingsError(
                    f"SLAWATCH_UPSTREAM_TOKEN: two tokens of tenant {principal.tenant!r}"
                )
            configured[principal.tenant] = Credential(token)
        return cls(auth, configured)

    def identify(self, request: web.Request) -> Caller | None:
        """The caller of `request`, or None for a missing or unknown token."""
        if self.authenticator.open_dev:
            return Caller(DEV_PRINCIPAL, self.configured[DEV_TENANT])
        header = request.headers.get("Authorization")
        # A header, when present, decides: a bad header is not rescued by the query.
        token = bearer_token(header) if header is not None else request.query.get(TOKEN_PARAM)
        if not token:
            return None
        principal = self.authenticator.lookup(token)
        if principal is None:
            return None
        return Caller(principal, Credential(token))

    def ws_refusal(self, tenant: str, credential: Credential) -> tuple[int, str] | None:
        """Why a WebSocket of `tenant` opened with `credential` may not stay open under the tokens
        in force now (close code and reason), as /ws/alerts would refuse it; None if it may."""
        if self.authenticator.open_dev or credential.token is None:
            return None
        principal = self.authenticator.lookup(credential.token)
        if principal is None:
            return CLOSE_UNAUTHORIZED, "token revoked"
        if principal.tenant != tenant:
            return CLOSE_UNAUTHORIZED, f"token {principal.name!r} was moved to another tenant"
        if Role.WATCH not in principal.roles:
            return CLOSE_FORBIDDEN, f"token {principal.name!r} no longer has the 'watch' role"
        return None
