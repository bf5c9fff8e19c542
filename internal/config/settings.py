"""Every process setting read from the environment (DESIGN §7, README "Configuration"), in one
place, read once at start-up.

One set of parsing rules for all of them: the `env_*` readers below treat an unset or empty
variable as its default, and refuse anything else that does not parse or is out of bounds with a
SettingsError whose message starts with the variable's name. Entry points print it as one line
and exit 2.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The names logging.setLevel takes.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL", "NOTSET")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


class BridgeSettingsError(SettingsError):
    """The bridge's token configuration is unusable (raised when the bridge reads it)."""


# -- readers ------------------------------------------------------------------------------------


def _raw(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


def env_number(
    env: Mapping[str, str],
    name: str,
    default: float,
    minimum: float = 0.0,
    maximum: float = math.inf,
) -> float:
    """A finite number within [minimum, maximum]; `default` when unset."""
    raw = _raw(env, name)
    if raw is None:
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
    """A whole number within [minimum, maximum]; `default` when unset."""
    value = env_number(env, name, default, minimum, maximum)
    if value != int(value):
        raise SettingsError(f"{name}: expected an integer, got {_raw(env, name)!r}")
    return int(value)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def env_duration(
    env: Mapping[str, str],
    name: str,
    default: float,
    minimum: float = 0.0,
    maximum: float = 3650 * 86400,
) -> float:
    """A duration in seconds, written as the SLA config writes them: seconds ("90", "0.5") or
    a number with s, m, h or d ("15m", "24h"); within [minimum, maximum]; `default` when unset."""
    raw = _raw(env, name)
    if raw is None:
        return default
    match = _DURATION.match(raw)
    if match is None:
        raise SettingsError(f"{name}: expected a duration such as 90, '15m' or '24h', got {raw!r}")
    value = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not minimum <= value <= maximum:
        low, high = _duration_text(minimum), _duration_text(maximum)
        raise SettingsError(f"{name}: must be between {low} and {high}, got {raw!r}")
    return value


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def env_bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); `default` when unset. Anything else is refused:
    a mistyped switch must not silently mean "off"."""
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise SettingsError(f"{name}: expected 1/true/yes/on or 0/false/no/off, got {raw!r}")


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """The value as given; `default` when unset or empty."""
    raw = env.get(name)
    return raw if raw else default


def env_path(env: Mapping[str, str], name: str) -> Path | None:
    """A file path (not checked for existence here: its user says what it expected to find)."""
    raw = env.get(name)
    return Path(raw) if raw else None


def env_url(
    env: Mapping[str, str], name: str, schemes: frozenset[str], default: str | None = None
) -> str | None:
    """A URL with one of `schemes` and a host (or path, for unix sockets); `default` when unset."""
    raw = _raw(env, name)
    if raw is None:
        return default
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        wanted = ", ".join(f"{s}://" for s in sorted(schemes))
        raise SettingsError(f"{name}: expected a URL starting with {wanted}, got {raw!r}")
    if not (parts.netloc or (parts.scheme == "unix" and parts.path)):
        raise SettingsError(f"{name}: the URL has no host, got {raw!r}")
    return raw


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, case-insensitive (returned upper-case); `default` when unset."""
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.upper() not in choices:
        raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return raw.upper()


def env_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated values, blanks dropped."""
    return tuple(v.strip() for v in env.get(name, "").split(",") if v.strip())


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


# -- the server, worker and scheduler -----------------------------------------------------------


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
    # Delivery through outages (README "Slack delivery"): retries until the deadline after the
    # alert, with backoff up to the cap; the per-channel breaker and send pacing.
    delivery_deadline_seconds: float = 86400.0
    delivery_backoff_max_seconds: float = 300.0
    breaker_failures: int = 5
    breaker_cool_down_seconds: float = 30.0
    delivery_send_interval_seconds: float = 1.0
    # Tickets resolved or closed (no clock running) whose latest event is older than this many
    # days are erased by the worker; 0 keeps everything (the default).
    retention_days: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = _environ(env)
        return cls(
            # Also a libpq "key=value" string, so not read as a URL; psycopg judges it.
            database_url=env.get("DATABASE_URL", ""),
            redis_url=env_url(
                env, "REDIS_URL", frozenset({"redis", "rediss", "unix"}), DEFAULT_REDIS_URL
            )
            or DEFAULT_REDIS_URL,
            sla_config_path=env_path(env, "SLA_CONFIG_PATH") or Path("./sla_config.yaml"),
            grpc_port=env_int(env, "SLAWATCH_GRPC_PORT", 50051, maximum=65535),
            eval_interval_seconds=env_int(env, "SLAWATCH_EVAL_INTERVAL_SECONDS", 5, minimum=1),
            log_level=env_choice(env, "SLAWATCH_LOG_LEVEL", "INFO", LOG_LEVELS),
            max_batch_events=env_int(env, "SLAWATCH_MAX_BATCH_EVENTS", 1000, minimum=1),
            ticket_url_template=env_url(
                env, "SLAWATCH_TICKET_URL_TEMPLATE", frozenset({"http", "https"})
            ),
            slack_timeout_seconds=env_int(env, "SLAWATCH_SLACK_TIMEOUT_SECONDS", 10, minimum=1),
            sweep_grace_seconds=env_int(env, "SLAWATCH_SWEEP_GRACE_SECONDS", 15, minimum=1),
            tokens_json=env_str(env, "SLAWATCH_TOKENS"),
            tokens_file=env_path(env, "SLAWATCH_TOKENS_FILE"),
            insecure_dev=env_bool(env, "SLAWATCH_INSECURE_DEV"),
            rate_limit_per_second=env_number(env, "SLAWATCH_RATE_LIMIT_PER_SECOND", 0.0),
            rate_limit_burst=env_number(env, "SLAWATCH_RATE_LIMIT_BURST", 0.0),
            tls_cert=env_path(env, "SLAWATCH_TLS_CERT"),
            tls_key=env_path(env, "SLAWATCH_TLS_KEY"),
            tls_client_ca=env_path(env, "SLAWATCH_TLS_CLIENT_CA"),
            max_message_bytes=env_int(
                env, "SLAWATCH_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, minimum=1024
            ),
            server_processes=env_int(env, "SLAWATCH_SERVER_PROCESSES", 1, minimum=1, maximum=64),
            delivery_deadline_seconds=env_duration(
                env, "SLAWATCH_DELIVERY_DEADLINE", 86400.0, minimum=1
            ),
            delivery_backoff_max_seconds=env_duration(
                env, "SLAWATCH_DELIVERY_BACKOFF_MAX", 300.0, minimum=0.1
            ),
            breaker_failures=env_int(env, "SLAWATCH_BREAKER_FAILURES", 5, minimum=1),
            breaker_cool_down_seconds=env_duration(
                env, "SLAWATCH_BREAKER_COOL_DOWN", 30.0, minimum=0.1
            ),
            delivery_send_interval_seconds=env_duration(
                env, "SLAWATCH_DELIVERY_SEND_INTERVAL", 1.0, maximum=3600
            ),
            # At most about 1,000 years: the cutoff stays a representable date.
            retention_days=env_int(env, "SLAWATCH_RETENTION_DAYS", 0, maximum=365_000),
        )


@dataclass(frozen=True)
class WorkerSettings:
    """The Dramatiq worker's defaults for `--processes` and `--threads`."""

    processes: int = 1
    threads: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = _environ(env)
        return cls(
            processes=env_int(env, "SLAWATCH_WORKER_PROCESSES", cls.processes, minimum=1),
            threads=env_int(env, "SLAWATCH_WORKER_THREADS", cls.threads, minimum=1),
        )


@dataclass(frozen=True)
class StreamOptions:
    """Sizing of the streaming side of one server process.

    Every open stream holds one thread of the server's pool for its whole life, so the pool has
    `max_streams` threads on top of those for unary calls; beyond `max_streams` a new stream is
    refused with RESOURCE_EXHAUSTED rather than queued behind the others.
    """

    max_streams: int = 1000
    max_streams_per_tenant: int = 500  # of max_streams; at most max_streams in effect
    queue_size: int = 10_000  # alerts a stream may fall behind before it is ended
    poll_interval: float = 5.0  # safety-net read of the table when no NOTIFY arrives
    replay_page: int = 500

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamOptions:
        env = _environ(env)
        return cls(
            max_streams=env_int(env, "SLAWATCH_MAX_STREAMS", cls.max_streams, minimum=1),
            max_streams_per_tenant=env_int(
                env, "SLAWATCH_MAX_STREAMS_PER_TENANT", cls.max_streams_per_tenant, minimum=1
            ),
            queue_size=env_int(env, "SLAWATCH_STREAM_QUEUE_SIZE", cls.queue_size, minimum=1),
            poll_interval=env_number(
                env, "SLAWATCH_STREAM_POLL_SECONDS", cls.poll_interval, minimum=0.1, maximum=3600
            ),
        )


# -- operations (README "Operations") -----------------------------------------------------------

# Each process has a metrics port of its own, with its own variable and default, so that
# `make run` can start all of them on one machine; in Kubernetes every pod may use the default of
# its process. Port 0 turns the endpoint off (and with it the worker's and scheduler's health
# endpoints). process -> (environment variable, default port)
METRICS_PORTS: dict[str, tuple[str, int]] = {
    "server": ("SLAWATCH_METRICS_PORT", 9464),
    "worker": ("SLAWATCH_WORKER_METRICS_PORT", 9465),
    "scheduler": ("SLAWATCH_SCHEDULER_METRICS_PORT", 9466),
    "bridge": ("SLAWATCH_BRIDGE_METRICS_PORT", 9467),
}
METRICS_HOST_ENV = "SLAWATCH_METRICS_HOST"
SERVER_GRACE_ENV = "SLAWATCH_SHUTDOWN_GRACE_SECONDS"
WORKER_SHUTDOWN_ENV = "SLAWATCH_WORKER_SHUTDOWN_SECONDS"

DEFAULT_SERVER_GRACE_SECONDS = 10.0
# Long enough for an evaluation batch and a Slack send (10 s timeout) in flight to finish, short
# enough to fit Kubernetes' default 30 s termination grace period with room for the rest.
DEFAULT_WORKER_SHUTDOWN_SECONDS = 20.0


@dataclass(frozen=True)
class OpsSettings:
    metrics_port: int  # 0: no metrics/health endpoint
    metrics_host: str
    server_grace_seconds: float
    worker_shutdown_seconds: float

    @classmethod
    def from_env(cls, process: str, env: Mapping[str, str] | None = None) -> OpsSettings:
        env = _environ(env)
        name, default = METRICS_PORTS[process]
        return cls(
            metrics_port=env_int(env, name, default, maximum=65535),
            metrics_host=env_str(env, METRICS_HOST_ENV) or "0.0.0.0",
            server_grace_seconds=env_number(
                env, SERVER_GRACE_ENV, DEFAULT_SERVER_GRACE_SECONDS, maximum=600
            ),
            worker_shutdown_seconds=env_number(
                env, WORKER_SHUTDOWN_ENV, DEFAULT_WORKER_SHUTDOWN_SECONDS, maximum=600
            ),
        )


# -- the bridge -----------------------------------------------------------------------------------


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
    # The HTTP/JSON routes (/v1/...): the largest request body, the server's own message limit
    # (the same variable), and how long one forwarded call may take.
    max_message_bytes: int = 4 * 1024 * 1024
    call_timeout_seconds: float = 30.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BridgeSettings:
        env = _environ(env)
        grpc_port = env_int(env, "SLAWATCH_GRPC_PORT", 50051, 1, maximum=65535)
        return cls(
            host=env_str(env, "SLAWATCH_BRIDGE_HOST") or cls.host,
            port=env_int(env, "SLAWATCH_BRIDGE_PORT", cls.port, 0, maximum=65535),
            grpc_target=env_str(env, "SLAWATCH_GRPC_TARGET") or f"127.0.0.1:{grpc_port}",
            tokens_json=env_str(env, "SLAWATCH_TOKENS"),
            tokens_file=env_path(env, "SLAWATCH_TOKENS_FILE"),
            insecure_dev=env_bool(env, "SLAWATCH_INSECURE_DEV"),
            upstream_tokens=env_list(env, "SLAWATCH_UPSTREAM_TOKEN"),
            upstream_tls_ca=env_path(env, "SLAWATCH_UPSTREAM_TLS_CA"),
            upstream_tls_cert=env_path(env, "SLAWATCH_UPSTREAM_TLS_CERT"),
            upstream_tls_key=env_path(env, "SLAWATCH_UPSTREAM_TLS_KEY"),
            allowed_origins=frozenset(
                o.rstrip("/").lower() for o in env_list(env, "SLAWATCH_BRIDGE_ALLOWED_ORIGINS")
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
            max_message_bytes=env_int(
                env, "SLAWATCH_MAX_MESSAGE_BYTES", cls.max_message_bytes, minimum=1024
            ),
            call_timeout_seconds=env_number(
                env, "SLAWATCH_BRIDGE_CALL_TIMEOUT_SECONDS", cls.call_timeout_seconds, 0.1, 3600
            ),
            log_level=env_choice(env, "SLAWATCH_LOG_LEVEL", "INFO", LOG_LEVELS),
        )
