"""Real worker and scheduler processes for the SLA engine tests, started through cmd/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from support.env import ROOT

CHANNEL_PATHS = {
    "SLACK_WEBHOOK_URL": "/hooks/team",
    "SLACK_WEBHOOK_URL_LEAD": "/hooks/lead",
    "SLACK_WEBHOOK_URL_MANAGER": "/hooks/manager",
}


def poll(predicate: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout:.0f}s: {what}")


@dataclass
class Processes:
    """The worker/scheduler processes of one test; every process is stopped at the end."""

    env: dict[str, str]
    log_dir: Path
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _start(self, script: str, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}-{len(self.running)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / script), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that a kill reaches Dramatiq's worker children too
        )
        log.close()
        self.running.append(proc)
        return proc

    def worker(self, threads: int = 4) -> subprocess.Popen[bytes]:
        return self._start(
            "cmd/slawatch-worker/main.py", "worker", "--processes", "1", "--threads", str(threads)
        )

    def scheduler(self) -> subprocess.Popen[bytes]:
        return self._start("cmd/slawatch-scheduler/main.py", "scheduler")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole process group: a worker dying with work in hand."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


def rows(database_url: str, query: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, args).fetchall()  # type: ignore[arg-type]
