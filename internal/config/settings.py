"""Process settings from the environment (DESIGN §7), read once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class SettingsError(ValueError):
    pass


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name}: must not be negative, got {value}")
    return value


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    sla_config_path: Path
    grpc_port: int
    bridge_port: int
    eval_interval_seconds: int
    log_level: str
    max_batch_events: int
    ticket_url_template: str | None
    slack_timeout_seconds: int
    sweep_grace_seconds: int
    # Security (README "Security"): tokens as hashes, TLS, limits.
    tokens_json: str | None = None
    tokens_file: Path | None = None
    insecure_dev: bool = False
    rate_limit_per_second: float = 0.0
    rate_limit_burst: float = 0.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    max_message_bytes: int = 4 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            sla_config_path=Path(env.get("SLA_CONFIG_PATH") or "./sla_config.yaml"),
            grpc_port=_int(env, "SLAWATCH_GRPC_PORT", 50051),
            bridge_port=_int(env, "SLAWATCH_BRIDGE_PORT", 8080),
            eval_interval_seconds=_int(env, "SLAWATCH_EVAL_INTERVAL_SECONDS", 5, minimum=1),
            log_level=env.get("SLAWATCH_LOG_LEVEL", "INFO").upper(),
            max_batch_events=_int(env, "SLAWATCH_MAX_BATCH_EVENTS", 1000, minimum=1),
            ticket_url_template=env.get("SLAWATCH_TICKET_URL_TEMPLATE") or None,
            slack_timeout_seconds=_int(env, "SLAWATCH_SLACK_TIMEOUT_SECONDS", 10, minimum=1),
            sweep_grace_seconds=_int(env, "SLAWATCH_SWEEP_GRACE_SECONDS", 15, minimum=1),
            tokens_json=env.get("SLAWATCH_TOKENS") or None,
            tokens_file=_path(env, "SLAWATCH_TOKENS_FILE"),
            insecure_dev=env.get("SLAWATCH_INSECURE_DEV", "").lower() in {"1", "true", "yes"},
            rate_limit_per_second=_float(env, "SLAWATCH_RATE_LIMIT_PER_SECOND", 0.0),
            rate_limit_burst=_float(env, "SLAWATCH_RATE_LIMIT_BURST", 0.0),
            tls_cert=_path(env, "SLAWATCH_TLS_CERT"),
            tls_key=_path(env, "SLAWATCH_TLS_KEY"),
            tls_client_ca=_path(env, "SLAWATCH_TLS_CLIENT_CA"),
            max_message_bytes=_int(
                env, "SLAWATCH_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, minimum=1024
            ),
        )
