"""The README's grpcurl session, run verbatim (but for the port and the token) against a real
server with a real grpcurl binary: the documentation a user copies at 3 a.m. must work."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from internal.config.tokens import hash_token
from internal.rpc.server import RunningServer, start_server
from support.env import ROOT, make_settings


def readme_session() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## A grpcurl session", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README has no grpcurl block"
    return [line for line in block.group(1).splitlines() if line.startswith("grpcurl ")]


def grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    assert Path(found).exists(), "grpcurl is installed by the dev dependencies"
    return found


TOKEN = "readme-session-token"


@pytest.fixture
def token_server(database_url: str, config_path: Path) -> Iterator[RunningServer]:
    tokens = [
        {"name": "readme", "sha256": hash_token(TOKEN), "tenant": "t", "roles": ["ingest", "read"]}
    ]
    settings = make_settings(
        database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=json.dumps(tokens)
    )
    running = start_server(settings, bind="127.0.0.1")
    yield running
    running.stop(grace=1)


def test_readme_grpcurl_session_works(token_server: RunningServer) -> None:
    commands = readme_session()
    assert len(commands) >= 4, "list, describe, ingest and get at least"
    outputs = []
    for line in commands:
        line = line.replace("localhost:50051", f"127.0.0.1:{token_server.port}")
        args = [a.replace("$SLAWATCH_TOKEN", TOKEN) for a in shlex.split(line)]
        args[0] = grpcurl()
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        outputs.append(done.stdout)
    assert "slawatch.v1.TicketService" in outputs[0]
    assert "rpc IngestTickets" in outputs[1]
    assert json.loads(outputs[2])["results"][0]["outcome"] == "INGEST_OUTCOME_CREATED"
    ticket = json.loads(outputs[3])["ticket"]
    assert ticket["ticket_id"] == "T-1001"
    assert ticket["response"]["state"] == "SLA_STATE_BREACHED"  # created long before the test
    assert json.loads(outputs[4])["tickets"][0]["ticket_id"] == "T-1001"
    assert json.loads(outputs[5])["status"] == "SERVING"
    policy = json.loads(outputs[-2])
    assert policy["policy"]["active"] is True and "policies:" in policy["text"]
    versions = json.loads(outputs[-1])["versions"]
    assert [v["version"] for v in versions] == [policy["policy"]["version"]]
