"""Operations helpers for tests: a server process with its log kept, Prometheus scrapes, JSON log
lines and the health endpoints."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from internal.embedded.ports import free_port
from support.env import ROOT
from support.fake_slack import FakeSlack
from support.servers import stop_process
from support.workers import CHANNEL_PATHS

LOG_FIELDS = {"timestamp", "level", "logger", "message"}


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def server_process(
    database_url: str, config_path: Path, log_dir: Path, **env: str
) -> Iterator[ServerProcess]:
    """cmd/slawatch-server on free ports, serving once this yields; its log (stdout and stderr)
    stays in `log_dir` for the test to read, and is printed when the test fails."""
    port, metrics_port = free_port(), free_port()
    log_path = log_dir / f"server-{port}.log"
    full_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SLA_CONFIG_PATH": str(config_path),
        "SLAWATCH_GRPC_PORT": str(port),
        "SLAWATCH_METRICS_PORT": str(metrics_port),
        "SLAWATCH_INSECURE_DEV": "1",
        "SLAWATCH_LOG_LEVEL": "INFO",
        **env,
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "cmd/slawatch-server/main.py")],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(proc, port, metrics_port, log_path)
    try:
        with grpc.insecure_channel(server.target) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        yield server
    except BaseException:
        print(f"--- server log ---\n{server.log_text()[-6000:]}")
        raise
    finally:
        stop_process(proc, 30)


def engine_env(
    database_url: str, redis_url: str, config_path: Path, slack: FakeSlack, **extra: str
) -> dict[str, str]:
    """Environment of worker and scheduler processes: fast ticks and retries, Slack on loopback,
    and the metrics/health endpoints off unless `extra` gives them ports."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SLA_CONFIG_PATH=str(config_path),
        SLAWATCH_EVAL_INTERVAL_SECONDS="1",
        SLAWATCH_SLACK_TIMEOUT_SECONDS="1",
        SLAWATCH_SWEEP_GRACE_SECONDS="2",
        # Slack's one message per second per webhook, compressed like the ticks: a test's burst
        # of hundreds of alerts to one channel still drains in seconds.
        SLAWATCH_DELIVERY_SEND_INTERVAL="0.01",
        SLAWATCH_LOG_LEVEL="INFO",
        SLAWATCH_WORKER_METRICS_PORT="0",
        SLAWATCH_SCHEDULER_METRICS_PORT="0",
    )
    env.update({var: slack.url(path) for var, path in CHANNEL_PATHS.items()})
    env.update(extra)
    return env


def get(url: str) -> tuple[int, str]:
    """Status and body of a GET; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return 0, str(err)


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    status, body = get(url)
    try:
        return status, json.loads(body) if status else {}
    except json.JSONDecodeError:
        return status, {"_raw": body}


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of a /metrics page, keyed by name and labels."""
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def scrape_when_up(port: int) -> Samples | None:
    """A scrape, or None while nothing listens yet (to poll on)."""
    status, _ = get(f"http://127.0.0.1:{port}/metrics")
    return scrape(port) if status == 200 else None


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def has(samples: Samples, name: str) -> bool:
    return any(n == name for n, _ in samples)


def established_connections(pid: int, port: int) -> int:
    """TCP connections accepted on `port` that process `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line as a JSON object; fails on the first line that is not one."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(entry, dict), line
        assert entry.keys() >= LOG_FIELDS, entry
        lines.append(entry)
    return lines
