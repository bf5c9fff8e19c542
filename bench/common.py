"""Shared pieces of the benchmarks: a scratch database, a server subprocess, percentiles."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
from psycopg import sql

from internal.embedded.ports import free_port
from internal.embedded.postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"p50 {statistics.median(ms):.2f} ms, p99 {percentile(ms, 99):.2f} ms, "
        f"max {max(ms):.2f} ms (n={len(ms)})"
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_by_process(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server, by this benchmark process (the client) and by
    every PostgreSQL process on the machine."""
    used = {
        "server": sum(cpu_seconds(pid) for pid in [server_pid, *children(server_pid)]),
        "client": cpu_seconds(os.getpid()),
        "postgres": 0.0,
    }
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    used["postgres"] += cpu_seconds(int(entry.name))
            except OSError:
                continue  # exited meanwhile
    return used


def machine_ticks() -> tuple[int, int]:
    """(all, stolen) CPU ticks of the whole machine so far, from /proc/stat. Stolen time is
    time the hypervisor gave to other guests while this one wanted to run: on a shared host it
    is why the same code measures faster or slower from one run to the next."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[7]  # user nice system idle iowait irq softirq steal


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (a supervised server's processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database on DATABASE_URL's server, or on an embedded server under .data/."""
    server = None
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        server = EmbeddedPostgres(ROOT / ".data" / f"bench-pg-{os.getpid()}").start()
        admin = server.url
    name = f"slawatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if server:
            server.destroy()


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The serving processes: the server itself, or the processes it supervises."""
        return children(self.proc.pid) or [self.proc.pid]


@contextlib.contextmanager
def server_process(database_url: str, config_path: Path, **env: str) -> Iterator[ServerProcess]:
    port = free_port()
    full_env = dict(
        os.environ,
        DATABASE_URL=database_url,
        SLA_CONFIG_PATH=str(config_path),
        SLAWATCH_GRPC_PORT=str(port),
        SLAWATCH_LOG_LEVEL="WARNING",
        SLAWATCH_INSECURE_DEV="1",
        SLAWATCH_METRICS_PORT="0",
        **env,
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cmd/slawatch-server/main.py")], env=full_env
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        yield ServerProcess(proc, port)
    finally:
        proc.terminate()
        proc.wait(30)
