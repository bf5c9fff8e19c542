"""The environment readers (internal/config/settings.py): one set of parsing rules, and every
refusal a SettingsError that names the variable, so entry points can print it as one line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from internal.config.settings import (
    BridgeSettings,
    OpsSettings,
    Settings,
    SettingsError,
    StreamOptions,
    WorkerSettings,
)
from internal.rpc.supervisor import child_env
from support.env import ROOT

Reader = Callable[[dict[str, str]], object]

READERS: dict[str, Reader] = {
    "server": Settings.from_env,
    "worker": WorkerSettings.from_env,
    "streams": StreamOptions.from_env,
    "ops": lambda env: OpsSettings.from_env("server", env),
    "bridge": BridgeSettings.from_env,
}

# reader, variable, a malformed value, an out-of-range value (None: the variable has no range)
CASES = [
    ("server", "SLAWATCH_GRPC_PORT", "fifty", "70000"),
    ("server", "SLAWATCH_EVAL_INTERVAL_SECONDS", "1.5", "0"),
    ("server", "SLAWATCH_MAX_MESSAGE_BYTES", "4MB", "10"),
    ("server", "SLAWATCH_SERVER_PROCESSES", "two", "65"),
    ("server", "SLAWATCH_RATE_LIMIT_PER_SECOND", "fast", "-1"),
    ("server", "SLAWATCH_INSECURE_DEV", "maybe", None),
    ("server", "SLAWATCH_LOG_LEVEL", "LOUD", None),
    ("server", "REDIS_URL", "127.0.0.1:6379", None),
    ("server", "SLAWATCH_TICKET_URL_TEMPLATE", "desk.example.com/t/{ticket_id}", None),
    ("worker", "SLAWATCH_WORKER_PROCESSES", "one", "0"),
    ("worker", "SLAWATCH_WORKER_THREADS", "eight", "-8"),
    ("streams", "SLAWATCH_MAX_STREAMS", "many", "0"),
    ("streams", "SLAWATCH_MAX_STREAMS_PER_TENANT", "1e", "-1"),
    ("streams", "SLAWATCH_STREAM_QUEUE_SIZE", "10k", "0"),
    ("streams", "SLAWATCH_STREAM_POLL_SECONDS", "nan", "0"),
    ("ops", "SLAWATCH_METRICS_PORT", "x", "70000"),
    ("ops", "SLAWATCH_SHUTDOWN_GRACE_SECONDS", "soon", "601"),
    ("ops", "SLAWATCH_WORKER_SHUTDOWN_SECONDS", "20s", "-1"),
    ("bridge", "SLAWATCH_BRIDGE_PORT", "http", "65536"),
    ("bridge", "SLAWATCH_BRIDGE_RING_SIZE", "big", "0"),
    ("bridge", "SLAWATCH_BRIDGE_HEARTBEAT_SECONDS", "often", "0.01"),
    ("bridge", "SLAWATCH_BRIDGE_FEED_LINGER_SECONDS", "inf", "-5"),
    ("bridge", "SLAWATCH_INSECURE_DEV", "sure", None),
]


@pytest.mark.parametrize(("reader", "name", "malformed", "out_of_range"), CASES)
def test_bad_values_are_refused_naming_the_variable(
    reader: str, name: str, malformed: str, out_of_range: str | None
) -> None:
    """A value that does not parse, or parses out of bounds, is a SettingsError whose message
    starts with the variable's name (never a traceback from int() or a silent default)."""
    for bad in (malformed, out_of_range):
        if bad is None:
            continue
        with pytest.raises(SettingsError) as info:
            READERS[reader]({name: bad})
        assert str(info.value).startswith(f"{name}: "), str(info.value)
        assert repr(bad) in str(info.value) or bad in str(info.value)


def test_defaults_are_those_of_the_readme() -> None:
    """Unset (or empty) variables keep their documented defaults."""
    settings = Settings.from_env({"SLAWATCH_GRPC_PORT": ""})
    assert (settings.grpc_port, settings.eval_interval_seconds, settings.log_level) == (
        50051,
        5,
        "INFO",
    )
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.sla_config_path == Path("./sla_config.yaml")
    assert (settings.max_batch_events, settings.slack_timeout_seconds) == (1000, 10)
    assert (settings.sweep_grace_seconds, settings.server_processes) == (15, 1)
    assert settings.insecure_dev is False and settings.ticket_url_template is None
    assert WorkerSettings.from_env({}) == WorkerSettings(processes=1, threads=8)
    assert StreamOptions.from_env({}) == StreamOptions(1000, 500, 10_000, 5.0)
    ops = OpsSettings.from_env("worker", {})
    assert (ops.metrics_port, ops.metrics_host) == (9465, "0.0.0.0")
    assert (ops.server_grace_seconds, ops.worker_shutdown_seconds) == (10.0, 20.0)
    bridge = BridgeSettings.from_env({"SLAWATCH_GRPC_PORT": "50052"})
    assert (bridge.host, bridge.port, bridge.grpc_target) == ("127.0.0.1", 8080, "127.0.0.1:50052")


def test_values_are_read_as_documented() -> None:
    """The switch's old spellings still mean what they meant; lists and URLs are taken as given."""
    for on in ("1", "true", "YES"):
        assert Settings.from_env({"SLAWATCH_INSECURE_DEV": on}).insecure_dev
    for off in ("", "0", "false", "no"):
        assert not Settings.from_env({"SLAWATCH_INSECURE_DEV": off}).insecure_dev
    settings = Settings.from_env(
        {
            "REDIS_URL": "rediss://cache:6380/1",
            "SLAWATCH_LOG_LEVEL": "debug",
            "SLAWATCH_TICKET_URL_TEMPLATE": "https://desk.example.com/t/{ticket_id}",
            "SLAWATCH_RATE_LIMIT_PER_SECOND": "2.5",
        }
    )
    assert settings.redis_url == "rediss://cache:6380/1"
    assert settings.log_level == "DEBUG"
    assert settings.ticket_url_template == "https://desk.example.com/t/{ticket_id}"
    assert settings.rate_limit_per_second == 2.5
    bridge = BridgeSettings.from_env(
        {
            "SLAWATCH_BRIDGE_ALLOWED_ORIGINS": "https://A.example/, ,http://b:8000",
            "SLAWATCH_UPSTREAM_TOKEN": " t1 ,t2,",
        }
    )
    assert bridge.allowed_origins == frozenset({"https://a.example", "http://b:8000"})
    assert bridge.upstream_tokens == ("t1", "t2")


def test_supervisor_refuses_a_bad_metrics_port_and_offsets_a_good_one() -> None:
    """Each server copy gets SLAWATCH_METRICS_PORT + its index; a bad port is refused up front
    with the variable named, not handed on to every copy."""
    assert child_env(2, {"SLAWATCH_METRICS_PORT": "9000"})["SLAWATCH_METRICS_PORT"] == "9002"
    assert child_env(1, {})["SLAWATCH_METRICS_PORT"] == "9465"
    assert child_env(1, {"SLAWATCH_METRICS_PORT": "0"})["SLAWATCH_METRICS_PORT"] == "0"
    with pytest.raises(SettingsError, match=r"^SLAWATCH_METRICS_PORT: "):
        child_env(1, {"SLAWATCH_METRICS_PORT": "nine"})


@pytest.mark.parametrize(
    ("command", "name", "value"),
    [
        ("slawatch-server", "SLAWATCH_MAX_STREAMS", "-3"),
        ("slawatch-server", "SLAWATCH_METRICS_PORT", "x"),
        ("slawatch-worker", "SLAWATCH_WORKER_THREADS", "eight"),
        ("slawatch-bridge", "SLAWATCH_BRIDGE_CLIENT_QUEUE", "0"),
    ],
)
def test_entry_points_print_one_line_and_exit_2(command: str, name: str, value: str) -> None:
    """A bad variable stops a process before it starts anything: one line naming it, exit 2."""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nowhere/x", name: value}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cmd" / command / "main.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{command}: {name}: "), proc.stderr
