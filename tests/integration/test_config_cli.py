"""`slawatch-config` as an operator runs it (a child process): `check` gives the reload's own
messages and exit codes 0/1/2, for a file and for a per-tenant directory; `preview` asks a real
server and prints the changes, refuses an invalid file with exit 1 and an unreachable server
with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from internal.config.sla_config import ConfigError, parse_config
from internal.embedded.ports import free_port
from internal.rpc.server import RunningServer
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import config_text
from support.env import ROOT
from support.events import event

TOOL = ROOT / "cmd" / "slawatch-config" / "main.py"
BROKEN = "policies: {high: {gold: {response: soon, resolution: 4h}}}\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLAWATCH_TOKEN": ""},
        cwd=ROOT,
    )


def reload_message(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    return str(err.value)


def test_check_a_valid_file_says_its_version(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(config_text())
    done = run("check", str(path))
    assert done.returncode == 0, done.stderr
    assert f"policy version {parse_config(config_text()).version}" in done.stdout
    assert "metrics response, resolution" in done.stdout


def test_check_an_invalid_file_exits_1_with_the_reloads_message(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(BROKEN)
    done = run("check", str(path))
    assert done.returncode == 1
    assert done.stderr.strip() == f"refused {path}: {reload_message(BROKEN)}"
    assert "policies.high.gold.response" in done.stderr


def test_check_an_unreadable_file_or_a_bad_command_exits_2(tmp_path: Path) -> None:
    done = run("check", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr and "missing.yaml" in done.stderr
    assert run("frobnicate").returncode == 2
    assert run("check").returncode == 2


def test_check_a_directory_checks_every_tenant_file(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(config_text())
    (tmp_path / "acme.yaml").write_text(BROKEN)
    (tmp_path / "globex.yaml").write_text(config_text(pause_statuses=["on_hold", "in_progress"]))
    done = run("check", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip() == f"refused {tmp_path / 'acme.yaml'}: {reload_message(BROKEN)}"
    assert f"{tmp_path / 'default.yaml'}: ok" in done.stdout
    assert f"{tmp_path / 'globex.yaml'}: ok" in done.stdout
    (tmp_path / "acme.yaml").write_text(config_text())
    assert run("check", str(tmp_path)).returncode == 0


def test_preview_prints_the_changes_a_save_would_make(
    server: RunningServer, stub: pb_grpc.TicketServiceStub, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[event(f"CLI-{i}", created=now - timedelta(minutes=20)) for i in range(3)]
        )
    )
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(
        config_text(policies={"high": {"gold": {"response": "30m", "resolution": "4h"}}})
    )
    done = run("preview", str(candidate), "--server", f"127.0.0.1:{server.port}")
    assert done.returncode == 0, done.stderr
    assert "open tickets: 3, read in 1 batches" in done.stdout
    assert "BREACHED -> OK       3" in done.stdout
    assert "for example: CLI-0, CLI-1, CLI-2" in done.stdout

    candidate.write_text(BROKEN)
    done = run("preview", str(candidate), "--server", f"127.0.0.1:{server.port}")
    assert done.returncode == 1
    assert done.stderr.strip() == f"refused {candidate}: {reload_message(BROKEN)}"


def test_preview_against_no_server_exits_2(tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(config_text())
    done = run("preview", str(candidate), "--server", f"127.0.0.1:{free_port()}", "--timeout", "2")
    assert done.returncode == 2
    assert "preview failed: " in done.stderr
