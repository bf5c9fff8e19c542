"""The real bridge process (cmd/slawatch-bridge) for tests, and small HTTP/WebSocket helpers."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from internal.embedded.ports import free_port
from support.env import ROOT
from support.servers import logged_process, wait_for


@dataclass
class Bridge:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/alerts"

    def health(self, token: str | None = None) -> tuple[int, dict[str, Any]]:
        """/healthz; with a token it also has that token's tenant's feed figures."""
        return get_json(f"{self.url}/healthz", token)

    def wait_up(self, timeout: float = 60) -> dict[str, Any]:
        wait_for(lambda: self.health()[0] == 200, timeout, "bridge upstream up")
        return self.health()[1]

    def wait_position(self, alert_id: int, timeout: float = 60, token: str | None = None) -> None:
        """Until the feed of the tenant (of `token`; without tokens the one tenant) has
        received `alert_id`."""
        wait_for(
            lambda: (self.health(token)[1].get("last_alert_id") or 0) >= alert_id,
            timeout,
            f"bridge received alert {alert_id}",
        )


def get_json(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    """GET `url`, with `Authorization: Bearer <token>` when a token is given."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _answers(url: str) -> bool:
    try:
        get_json(f"{url}/healthz")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def run_bridge(grpc_target: str, port: int | None = None, **env: str) -> Iterator[Bridge]:
    """The bridge on a loopback port, once it answers HTTP (its upstream may still be down)."""
    port = port or free_port()
    full_env = {
        "SLAWATCH_BRIDGE_HOST": "127.0.0.1",
        "SLAWATCH_BRIDGE_PORT": str(port),
        "SLAWATCH_GRPC_TARGET": grpc_target,
        # Tests run several bridges at once: no fixed metrics port to fight over.
        "SLAWATCH_BRIDGE_METRICS_PORT": "0",
        **env,
    }
    with logged_process([str(ROOT / "cmd/slawatch-bridge/main.py")], full_env, "bridge") as (
        proc,
        log_path,
    ):
        bridge = Bridge(proc, port, log_path)
        wait_for(lambda: proc.poll() is not None or _answers(bridge.url), what="bridge serving")
        assert proc.poll() is None, "the bridge exited at start"
        yield bridge


# Generous: the machine running the tests is small and shared.
WS_TIMEOUT = 60.0


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=WS_TIMEOUT)
    assert msg.type == aiohttp.WSMsgType.TEXT, f"expected a message, got {msg}"
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def alerts_until(ws: aiohttp.ClientWebSocketResponse, last_id: int) -> list[int]:
    """Alert ids received until `last_id`, skipping heartbeats and status messages."""
    ids: list[int] = []
    while not ids or ids[-1] < last_id:
        message = await receive(ws)
        if message["type"] == "alert":
            ids.append(message["alert"]["alert_id"])
    return ids


def silent_ws_client(port: int, query: str = "", rcvbuf: int = 4096) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads: its receive buffer
    is `rcvbuf` bytes (set before connecting, so the TCP window stays small), and the handshake
    answer is read byte by byte so that nothing after it is consumed. The caller closes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(WS_TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET /ws/alerts{'?' + query if query else ''} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"the bridge closed during the handshake: {answer!r}"
        answer += byte
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: Any  # the parsed JSON (the text when the answer is not JSON)


def http_json(
    method: str,
    url: str,
    token: str | None = None,
    body: object = None,
    *,
    raw: bytes | None = None,
    content_type: str = "application/json",
    timeout: float = 30,
) -> HttpAnswer:
    """One HTTP/JSON call to the bridge's /v1 routes: `body` is sent as JSON (or `raw` as is),
    with `Authorization: Bearer <token>` when a token is given; the answer's JSON is parsed."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return HttpAnswer(r.status, dict(r.headers), _json_or_text(r.read()))
    except urllib.error.HTTPError as err:
        return HttpAnswer(err.code, dict(err.headers), _json_or_text(err.read()))


def _json_or_text(raw: bytes) -> Any:
    """The parsed JSON; the text itself when it is not JSON (aiohttp's own 404/405 pages), so
    that the test's assertion, not a decoding error, says what came back."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
