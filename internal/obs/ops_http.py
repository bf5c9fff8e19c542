"""The operations endpoint of a process, on its metrics port: `/metrics` (Prometheus text
format), `/livez` (the process is alive and making progress) and `/readyz` (its dependencies
answer: 200 when every check passes, 503 naming the failing ones).

A plain threaded HTTP server: probes and scrapes are rare and small, and it must keep answering
while the process's own work is stuck, which is exactly when someone looks.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

Check = Callable[[], bool]
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CHECK_TIMEOUT_SECONDS = 3.0


def _registry() -> CollectorRegistry:
    if os.environ.get(MULTIPROC_ENV):
        # Built per scrape, as prometheus_client advises: it reads every process's files.
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


class OpsServer:
    def __init__(
        self,
        port: int,
        *,
        host: str = "0.0.0.0",
        live: Check | None = None,
        ready: Mapping[str, Check] | None = None,
        collectors: Sequence[Collector] = (),
    ) -> None:
        self._live = live or (lambda: True)
        self._ready = dict(ready or {})
        # Read at scrape time, in this process (e.g. queue depths), besides the usual metrics.
        self._extra = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self._extra.register(collector)
        self._checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ready-check")
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body = generate_latest(_registry()) + generate_latest(ops._extra)
                    self._send(200, body, CONTENT_TYPE_LATEST)
                elif path == "/livez":
                    alive = ops._is_live()
                    self._json(200 if alive else 503, {"status": "alive" if alive else "stuck"})
                elif path == "/readyz":
                    results = ops.readiness()
                    ready = all(results.values())
                    self._json(
                        200 if ready else 503,
                        {
                            "status": "ready" if ready else "not ready",
                            "checks": {k: "ok" if v else "failing" for k, v in results.items()},
                        },
                    )
                else:
                    self._json(404, {"error": "not found"})

            def _json(self, status: int, body: object) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the real log lines

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ops-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _is_live(self) -> bool:
        try:
            return bool(self._live())
        except Exception:
            log.exception("liveness check failed")
            return False

    def readiness(self) -> dict[str, bool]:
        """Every check at once, each bounded, so one hanging dependency cannot stall the probe."""
        futures = {name: self._checks.submit(check) for name, check in self._ready.items()}
        results: dict[str, bool] = {}
        for name, future in futures.items():
            try:
                results[name] = bool(future.result(timeout=CHECK_TIMEOUT_SECONDS))
            except FutureTimeout:
                results[name] = False
            except Exception as err:
                log.warning("readiness check %s failed: %s", name, err)
                results[name] = False
        return results

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("metrics and health on port %d (/metrics, /livez, /readyz)", self.port)
        return self

    def serve_forever(self) -> None:
        """In the calling thread, for a process whose only job this is."""
        log.info("metrics and health on port %d (/metrics, /livez, /readyz)", self.port)
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._checks.shutdown(wait=False, cancel_futures=True)


def start_ops_server(
    port: int,
    *,
    host: str,
    setting: str,
    live: Check | None = None,
    ready: Mapping[str, Check] | None = None,
    collectors: Sequence[Collector] = (),
) -> OpsServer | None:
    """The endpoint in a thread of its own, or None (logged) when the port is taken: the process
    keeps doing its work, and the missing endpoint shows where it is watched (a target down in
    Prometheus, failing probes)."""
    try:
        server = OpsServer(port, host=host, live=live, ready=ready, collectors=collectors)
    except OSError as err:
        log.error(
            "metrics and health endpoint off: cannot listen on %s:%d (%s): %s",
            host,
            port,
            setting,
            err.strerror or err,
        )
        return None
    return server.start()
