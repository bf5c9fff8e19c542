"""The README's curl session, run verbatim (but for the address and the token) with the real curl
against the real bridge process in front of a real token-protected server: the HTTP/JSON
commands a help-desk admin copies must work as written."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from internal.config.tokens import hash_token
from internal.rpc.server import RunningServer, start_server
from support.bridge import Bridge, run_bridge
from support.env import ROOT, make_settings

TOKEN = "readme-curl-token"
TOKENS = json.dumps(
    [{"name": "readme", "sha256": hash_token(TOKEN), "tenant": "t", "roles": ["ingest", "read"]}]
)
SECURE = {"SLAWATCH_INSECURE_DEV": "", "SLAWATCH_TOKENS": TOKENS}


def readme_session() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## A curl session", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README has no curl block"
    return [line for line in block.group(1).splitlines() if line.startswith("curl ")]


@pytest.fixture
def stack(database_url: str, config_path: Path) -> Iterator[Bridge]:
    settings = make_settings(database_url, config_path, **SECURE)
    running: RunningServer = start_server(settings, bind="127.0.0.1")
    try:
        with run_bridge(f"127.0.0.1:{running.port}", **SECURE) as bridge:
            bridge.wait_up()
            yield bridge
    finally:
        running.stop(grace=1)


def test_readme_curl_session_works(stack: Bridge) -> None:
    """Each command of the README's block exits 0 and answers what the README says: the ingest
    creates T-1002, GetTicket shows it breached, the dashboard lists it, the bad batch is a 400
    naming both bad fields, and the OpenAPI document lists the routes."""
    curl = shutil.which("curl")
    assert curl, "curl is on the PATH"
    commands = readme_session()
    assert len(commands) == 5, "ingest, get, dashboard, an error, the OpenAPI document"
    outputs = []
    for line in commands:
        line = line.replace("http://localhost:8080", stack.url)
        args = [a.replace("$SLAWATCH_TOKEN", TOKEN) for a in shlex.split(line)]
        args[0] = curl
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        outputs.append(done.stdout)
    assert json.loads(outputs[0])["results"] == [
        {"ticket_id": "T-1002", "outcome": "INGEST_OUTCOME_CREATED"}
    ]
    ticket = json.loads(outputs[1])["ticket"]
    assert ticket["ticket_id"] == "T-1002"
    assert ticket["response"]["state"] == "SLA_STATE_BREACHED"  # created long before the test
    assert ticket["response"]["target"] == "900s"
    assert json.loads(outputs[2])["tickets"][0]["ticket_id"] == "T-1002"
    head, _, body = outputs[3].replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 400 Bad Request"), head
    assert "Content-Type: application/json" in head
    error = json.loads(body)
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["message"].startswith("events[0].ticket_id: required; events[0].priority:")
    violations = error["details"][0]["field_violations"]
    assert {"field": "events[0].ticket_id", "description": "required"} in violations
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    spec = json.loads(outputs[4])
    assert spec["openapi"].startswith("3.1")
    assert {"/v1/tickets:ingest", "/v1/tickets/{ticket_id}", "/v1/dashboard"} <= set(spec["paths"])
    print("\n\n".join(outputs[:4]))
