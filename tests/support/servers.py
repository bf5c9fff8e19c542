"""Servers and processes the streaming tests start, stop and restart themselves."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from internal.embedded.ports import free_port
from internal.rpc.alert_stream import StreamOptions
from internal.rpc.server import RunningServer, start_server
from support.env import ROOT, make_settings

DEFAULT_WAIT = 30.0


def wait_for(
    predicate: Callable[[], object], timeout: float = DEFAULT_WAIT, what: str = ""
) -> None:
    """Poll `predicate` until it is truthy; the condition, not a fixed sleep, is what we wait on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout:.0f}s: {what or predicate}")


def serve(
    database_url: str, config_path: Path, *, port: int = 0, streams: StreamOptions | None = None
) -> RunningServer:
    settings = make_settings(database_url, config_path, SLAWATCH_GRPC_PORT=port)
    return start_server(settings, bind="127.0.0.1", streams=streams or StreamOptions())


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if the child has not exited within `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A child process whose output is kept in a log file and shown if the test fails."""
    with logged_process(args, env, name) as (proc, _):
        yield proc


@contextlib.contextmanager
def logged_process(
    args: list[str], env: dict[str, str], name: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`process`, also yielding the path of its log file (removed afterwards)."""
    log_path = ROOT / ".data" / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    failed = False
    with log_path.open("wb") as log:
        # Child servers run as the development tenant unless the test configures tokens.
        full_env = {**os.environ, "SLAWATCH_INSECURE_DEV": "1", **env}
        proc = subprocess.Popen([sys.executable, *args], env=full_env, stdout=log, stderr=log)
        try:
            yield proc, log_path
        except BaseException:
            failed = True
            raise
        finally:
            stop_process(proc, 20)
            if failed:
                print(f"--- {name} output ---\n{log_path.read_text(errors='replace')[-6000:]}")
            log_path.unlink(missing_ok=True)


def channel_ready(target: str, timeout: float = DEFAULT_WAIT) -> None:
    with grpc.insecure_channel(target) as ch:
        grpc.channel_ready_future(ch).result(timeout=timeout)


class Servers:
    """In-process servers on one fixed port, started and stopped (restarted) by the test."""

    def __init__(self, database_url: str, config_path: Path) -> None:
        self.database_url = database_url
        self.config_path = config_path
        self.port = free_port()
        self.current: RunningServer | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, streams: StreamOptions | None = None) -> RunningServer:
        self.current = serve(self.database_url, self.config_path, port=self.port, streams=streams)
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop(grace=5)
            self.current = None
