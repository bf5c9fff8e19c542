"""The real server entry point started on a hostile SLA config or tokens file (issue 18, defect
3): it exits 2 with one line on stderr naming the problem, never 1 with a traceback. Both files
are refused before the database is used, so the database URL here is never connected to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from internal.embedded.ports import free_port
from support.configs import write_config
from support.env import ROOT

DEEP = "[" * 5000 + "]" * 5000 + "\n"
BOMB = (
    "pause_statuses: [[&l0 ["
    + ", ".join(['"lol"'] * 10)
    + "], "
    + ", ".join(f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9))
    + "]]\n"
)


def start_server(**env: str) -> subprocess.CompletedProcess[bytes]:
    full = dict(
        os.environ,
        DATABASE_URL="postgresql://slawatch@127.0.0.1:1/never-used",
        SLAWATCH_GRPC_PORT=str(free_port()),
        SLAWATCH_SERVER_PROCESSES="1",
        **env,
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "cmd/slawatch-server/main.py")],
        env=full,
        capture_output=True,
        timeout=60,
    )


def assert_one_line_refusal(done: subprocess.CompletedProcess[bytes], words: str) -> None:
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    # JSON log lines of start-up (the SLAWATCH_INSECURE_DEV warning) aside, one line remains.
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("{")]
    assert len(lines) == 1, stderr[-2000:]
    assert lines[0].startswith("slawatch-server: ")
    assert words in lines[0] and len(lines[0]) < 500


@pytest.mark.parametrize(
    ("text", "words"),
    [(DEEP, "nested deeper than 64 levels"), (BOMB, "more than 100000 values")],
    ids=["deep", "alias-bomb"],
)
def test_a_hostile_sla_config_stops_the_server_with_exit_2_and_one_line(
    tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "sla_config.yaml"
    path.write_text(text)
    done = start_server(SLA_CONFIG_PATH=str(path), SLAWATCH_INSECURE_DEV="1")
    assert_one_line_refusal(done, words)


def test_a_deeply_nested_tokens_file_stops_the_server_with_exit_2_and_one_line(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(DEEP)
    done = start_server(
        SLA_CONFIG_PATH=str(write_config(tmp_path / "sla_config.yaml")),
        SLAWATCH_TOKENS_FILE=str(tokens),
        SLAWATCH_INSECURE_DEV="",
    )
    assert_one_line_refusal(done, "nested deeper than 64 levels")
