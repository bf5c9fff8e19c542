"""Settings of the bridge process, from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from internal.config.settings import SettingsError, env_int, env_number, env_path


class BridgeSettingsError(SettingsError):
    pass


@dataclass(frozen=True)
class BridgeSettings:
    # Loopback by default: expose the bridge deliberately (TLS-terminating proxy in front), since
    # browsers send their tokens to it.
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_target: str = "127.0.0.1:50051"
    # The token configuration shared with the server (internal/config/tokens.py): browsers are
    # authenticated with the same tokens, tenants and roles.
    tokens_json: str | None = None
    tokens_file: Path | None = None
    insecure_dev: bool = False
    # Configured upstream tokens (role `watch`), at most one per tenant: that tenant's feed runs
    # for the bridge's whole life on it instead of on its clients' tokens.
    upstream_tokens: tuple[str, ...] = ()
    upstream_tls_ca: Path | None = None  # TLS to the server, trusting this CA
    upstream_tls_cert: Path | None = None  # client certificate, when the server wants mTLS
    upstream_tls_key: Path | None = None
    # Origins (scheme://host[:port]) besides the bridge's own whose pages may open the WebSocket.
    allowed_origins: frozenset[str] = frozenset()
    ring_size: int = 10_000  # recent alerts kept per tenant for clients resuming with ?after=
    client_queue: int = 1_000  # messages a WebSocket client may fall behind before it is closed
    heartbeat_seconds: float = 15.0
    replay_slots: int = 16  # concurrent replays per tenant for ?after= older than the ring
    max_clients_per_tenant: int = 1_000  # concurrent WebSocket clients of one tenant
    # A tenant's upstream stream (and ring) outlives its last client this long, so that a page
    # reload or a network blip reconnects to a warm ring instead of a new upstream call.
    feed_linger_seconds: float = 30.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BridgeSettings:
        env = os.environ if env is None else env
        grpc_port = env_int(env, "SLAWATCH_GRPC_PORT", 50051, 1)
        origins = env.get("SLAWATCH_BRIDGE_ALLOWED_ORIGINS", "")
        upstream = env.get("SLAWATCH_UPSTREAM_TOKEN", "")
        return cls(
            host=env.get("SLAWATCH_BRIDGE_HOST") or cls.host,
            port=env_int(env, "SLAWATCH_BRIDGE_PORT", cls.port, 0),
            grpc_target=env.get("SLAWATCH_GRPC_TARGET") or f"127.0.0.1:{grpc_port}",
            tokens_json=env.get("SLAWATCH_TOKENS") or None,
            tokens_file=env_path(env, "SLAWATCH_TOKENS_FILE"),
            insecure_dev=env.get("SLAWATCH_INSECURE_DEV", "").lower() in {"1", "true", "yes"},
            upstream_tokens=tuple(t.strip() for t in upstream.split(",") if t.strip()),
            upstream_tls_ca=env_path(env, "SLAWATCH_UPSTREAM_TLS_CA"),
            upstream_tls_cert=env_path(env, "SLAWATCH_UPSTREAM_TLS_CERT"),
            upstream_tls_key=env_path(env, "SLAWATCH_UPSTREAM_TLS_KEY"),
            allowed_origins=frozenset(
                o.strip().rstrip("/").lower() for o in origins.split(",") if o.strip()
            ),
            ring_size=env_int(env, "SLAWATCH_BRIDGE_RING_SIZE", cls.ring_size, 1),
            client_queue=env_int(env, "SLAWATCH_BRIDGE_CLIENT_QUEUE", cls.client_queue, 1),
            heartbeat_seconds=env_number(
                env, "SLAWATCH_BRIDGE_HEARTBEAT_SECONDS", cls.heartbeat_seconds, 0.1
            ),
            replay_slots=env_int(env, "SLAWATCH_BRIDGE_REPLAY_SLOTS", cls.replay_slots, 1),
            max_clients_per_tenant=env_int(
                env, "SLAWATCH_BRIDGE_MAX_CLIENTS_PER_TENANT", cls.max_clients_per_tenant, 1
            ),
            feed_linger_seconds=env_number(
                env, "SLAWATCH_BRIDGE_FEED_LINGER_SECONDS", cls.feed_linger_seconds, 0
            ),
            log_level=env.get("SLAWATCH_LOG_LEVEL", "INFO").upper(),
        )
