"""Several server processes on one port (SLAWATCH_SERVER_PROCESSES > 1).

Python runs one thread at a time per process, so one server process uses about one core however
many threads it has. The supervisor starts N copies of the server, which all listen on the same
port (SO_REUSEPORT: the kernel spreads new connections over them), and stays in front of them:
SIGTERM or SIGINT is passed on to every copy, each shuts down gracefully, and the supervisor exits
when they have. If one copy dies on its own, the others are stopped too and the supervisor exits
with an error, so that whatever runs it (systemd, Kubernetes, `make run`) restarts the whole.

Each copy is a full server: its own database pool, config watcher, LISTEN connection and rate
limiter. Copy i answers metrics and health on SLAWATCH_METRICS_PORT + i.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from internal.config.settings import METRICS_PORTS, OpsSettings

log = logging.getLogger(__name__)

# Set in a copy's environment: the copy serves instead of supervising again.
CHILD_ENV = "SLAWATCH_SERVER_PROCESS_INDEX"
METRICS_PORT_ENV, _ = METRICS_PORTS["server"]
# Longer than a copy's own shutdown deadline (grace plus a few seconds): a copy that still has
# not exited by then is killed.
KILL_AFTER_SECONDS = 60.0


def is_child(env: Mapping[str, str] | None = None) -> bool:
    return CHILD_ENV in (os.environ if env is None else env)


def child_env(index: int, env: Mapping[str, str]) -> dict[str, str]:
    out = dict(env)
    out[CHILD_ENV] = str(index)
    port = OpsSettings.from_env("server", env).metrics_port
    if port:  # 0 keeps metrics off in every copy
        out[METRICS_PORT_ENV] = str(port + index)
    return out


def supervise(count: int, command: Sequence[str]) -> int:
    """Run `count` copies of `command` until a signal or until one of them exits."""
    children = [subprocess.Popen(list(command), env=child_env(i, os.environ)) for i in range(count)]
    log.info("serving with %d processes (pids %s)", count, ", ".join(str(c.pid) for c in children))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            log.info("received %s, stopping %d processes", signal.Signals(signum).name, count)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failed = None
    while not stopping.is_set():
        failed = next((c for c in children if c.poll() is not None), None)
        if failed is not None:
            log.error(
                "server process %d exited with %s: stopping the others",
                failed.pid,
                failed.returncode,
            )
            break
        stopping.wait(0.5)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + KILL_AFTER_SECONDS
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("server process %d did not stop: killing it", child.pid)
            child.kill()
            child.wait()
    if failed is not None:
        return 1
    return max((c.returncode for c in children), default=0, key=abs)


def own_command() -> list[str]:
    """The command line that started this process, to start copies of it."""
    return [sys.executable, *sys.argv]
