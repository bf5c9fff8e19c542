"""Process settings from the environment (DESIGN §7), read once at start-up."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class SettingsError(ValueError):
    pass


def env_number(
    env: Mapping[str, str],
    name: str,
    default: float,
    minimum: float = 0.0,
    maximum: float = math.inf,
) -> float:
    """A number from the environment, or `default` when unset; errors name the variable. Shared
    by every process's settings."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise SettingsError(f"{name}: must be between {minimum:g} and {maximum:g}, got {raw}")
    return value


def env_int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: float = math.inf
) -> int:
    value = env_number(env, name, default, minimum, maximum)
    if value != int(value):
        raise SettingsError(f"{name}: expected an integer, got {env.get(name)!r}")
    return int(value)


def env_path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    sla_config_path: Path
    grpc_port: int
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
    # Processes serving the gRPC port together (SO_REUSEPORT): Python runs one thread at a time
    # per process, so a machine with more cores than one gets more throughput from more processes.
    server_processes: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            sla_config_path=Path(env.get("SLA_CONFIG_PATH") or "./sla_config.yaml"),
            grpc_port=env_int(env, "SLAWATCH_GRPC_PORT", 50051),
            eval_interval_seconds=env_int(env, "SLAWATCH_EVAL_INTERVAL_SECONDS", 5, minimum=1),
            log_level=env.get("SLAWATCH_LOG_LEVEL", "INFO").upper(),
            max_batch_events=env_int(env, "SLAWATCH_MAX_BATCH_EVENTS", 1000, minimum=1),
            ticket_url_template=env.get("SLAWATCH_TICKET_URL_TEMPLATE") or None,
            slack_timeout_seconds=env_int(env, "SLAWATCH_SLACK_TIMEOUT_SECONDS", 10, minimum=1),
            sweep_grace_seconds=env_int(env, "SLAWATCH_SWEEP_GRACE_SECONDS", 15, minimum=1),
            tokens_json=env.get("SLAWATCH_TOKENS") or None,
            tokens_file=env_path(env, "SLAWATCH_TOKENS_FILE"),
            insecure_dev=env.get("SLAWATCH_INSECURE_DEV", "").lower() in {"1", "true", "yes"},
            rate_limit_per_second=env_number(env, "SLAWATCH_RATE_LIMIT_PER_SECOND", 0.0),
            rate_limit_burst=env_number(env, "SLAWATCH_RATE_LIMIT_BURST", 0.0),
            tls_cert=env_path(env, "SLAWATCH_TLS_CERT"),
            tls_key=env_path(env, "SLAWATCH_TLS_KEY"),
            tls_client_ca=env_path(env, "SLAWATCH_TLS_CLIENT_CA"),
            max_message_bytes=env_int(
                env, "SLAWATCH_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, minimum=1024
            ),
            server_processes=env_int(env, "SLAWATCH_SERVER_PROCESSES", 1, minimum=1, maximum=64),
        )
