"""A real Node.js gRPC client (@grpc/grpc-js + @grpc/proto-loader, loading proto/ as is) ingests,
reads and watches against a real, token-protected server."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from internal.config.tokens import hash_token
from internal.rpc.server import RunningServer, start_server
from internal.usecase.evaluate import evaluate_batch
from support.env import ROOT, make_settings

TOKEN = "node-client-token"
STEP_TIMEOUT = 60


@pytest.fixture
def token_server(database_url: str, config_path: Path) -> Iterator[RunningServer]:
    roles = ["ingest", "read", "watch"]
    tokens = [{"name": "node", "sha256": hash_token(TOKEN), "tenant": "js", "roles": roles}]
    settings = make_settings(
        database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=json.dumps(tokens)
    )
    running = start_server(settings, bind="127.0.0.1")
    yield running
    running.stop(grace=1)


def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is required (Debian package nodejs); `make test` installs npm deps"
    for package in ("@grpc/grpc-js", "@grpc/proto-loader"):
        assert (ROOT / "node_modules" / package).is_dir(), f"{package} missing: run `npm ci`"
    return found


class Lines:
    """The child's stdout, one JSON object per line, read by a thread so that waits time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def next(self, expected: str) -> dict[str, Any]:
        line = self._queue.get(timeout=STEP_TIMEOUT)
        assert line is not None, f"the Node client exited before {expected!r}"
        message: dict[str, Any] = json.loads(line)
        assert message["event"] == expected, message
        return message


def test_node_client_ingests_reads_and_watches(
    token_server: RunningServer, database_url: str
) -> None:
    """Node ingests a ticket (CREATED), reads it back (enums and durations as the .proto says),
    receives the alert its breach produces on a live stream, and the same alert again through a
    replay with after_alert_id."""
    proc = subprocess.Popen(
        [node(), str(ROOT / "tests/e2e/node/client.js"), f"127.0.0.1:{token_server.port}", "JS-1"],
        cwd=ROOT,
        env={**os.environ, "SLAWATCH_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(proc)
        assert lines.next("ingested")["outcomes"] == ["INGEST_OUTCOME_CREATED"]
        ticket = lines.next("ticket")
        assert ticket["ticket_id"] == "JS-1"
        assert ticket["status"] == "TICKET_STATUS_OPEN"
        assert ticket["response_target_seconds"] == "900"
        assert ticket["sla_state"] == "SLA_STATE_BREACHED"
        assert int(lines.next("watching")["resume_after"]) >= 0
        with token_server.pool.connection() as conn:
            written = evaluate_batch(conn, token_server.config.current, datetime.now(UTC)).alerts
        assert written

        live = lines.next("alert")["alert"]
        assert live["alert_id"] == str(written[0])  # int64 as a string: exact in JavaScript
        assert live["ticket_id"] == "JS-1"
        assert live["kind"] == "ALERT_KIND_BREACH"
        assert live["clock"] == "CLOCK_KIND_RESPONSE"
        assert live["escalation_level"] == 3
        assert lines.next("replayed")["alert"] == live
        assert proc.wait(STEP_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.communicate()[1]
    assert "Error" not in stderr, stderr
