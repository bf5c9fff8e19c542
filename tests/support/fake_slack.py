"""A real HTTP server on loopback standing in for Slack's incoming webhooks.

It records every POST and answers from a per-path script (429 with Retry-After, 500, a delay
longer than the client's timeout, ...), then `ok` once the script runs out.

    with FakeSlack() as slack:
        slack.script("/hooks/team", (429, "rate_limited", {"Retry-After": "1"}), Reply(500))
        ...send to slack.url("/hooks/team")...
        (first, second, third) = slack.wait_for(3, "/hooks/team")
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival: for measuring the gaps between attempts
    status: int = 200  # the status it was answered with


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering: longer than the client's timeout = timeout


# A script entry: a Reply, or a tuple in Reply's field order, e.g. (404, "no_service").
Scripted = Reply | tuple[Any, ...]


class FakeSlack:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._recorded: list[Recorded] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._outages: dict[str, tuple[float, Reply]] = {}  # path -> (until, the answer)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode(errors="replace")}
                # Recorded on arrival, in arrival order, whatever the scripted answer.
                with fake._lock:
                    arrived = time.monotonic()
                    script = fake._scripts[self.path]
                    outage = fake._outages.get(self.path)
                    if outage is not None and arrived < outage[0]:
                        reply = outage[1]
                    else:
                        reply = script.popleft() if script else Reply()
                    fake._recorded.append(
                        Recorded(self.path, dict(self.headers.items()), body, arrived, reply.status)
                    )
                    fake._lock.notify_all()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    payload = reply.body.encode()
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if not any(k.lower() == "content-type" for k in reply.headers):
                        self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._stopped = False

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._server.shutdown()
        # Handlers still sleeping out a scripted delay are daemon threads: not waited for.
        self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hooks/team") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Scripted) -> None:
        """Queue answers for `path`, used one per request in order; then `ok` again."""
        queued = [r if isinstance(r, Reply) else Reply(*r) for r in replies]
        with self._lock:
            self._scripts[path].extend(queued)

    def outage(
        self, path: str, seconds: float, reply: Scripted = Reply(500, "rollup_error")
    ) -> None:
        """Answer every request on `path` with `reply` for the next `seconds` (a Slack outage),
        before any script; an outage of 0 seconds ends the current one."""
        answer = reply if isinstance(reply, Reply) else Reply(*reply)
        with self._lock:
            self._outages[path] = (time.monotonic() + seconds, answer)

    def requests(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self._recorded if path is None or r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[Recorded]:
        """Block until at least `count` requests (on `path`, if given) have arrived."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = [r for r in self._recorded if path is None or r.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.path, str(r.body.get("text", r.body))[:80]) for r in self._recorded]
                    raise AssertionError(
                        f"expected {count} requests on {path or 'any path'} within {timeout}s, "
                        f"got {len(got)}; all requests so far: {seen}"
                    )
                self._lock.wait(left)
