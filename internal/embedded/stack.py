"""`make run`: the whole stack on one machine. Embedded PostgreSQL and Redis under .data/ unless
DATABASE_URL / REDIS_URL are set, then every slawatch process as a child; SIGINT or SIGTERM stops
the children first, then the servers it started."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from internal.config.tokens import Role, hash_token
from internal.embedded.postgres import EmbeddedPostgres
from internal.embedded.redis import EmbeddedRedis

log = logging.getLogger(__name__)

# Fixed ports so that a developer's psql/redis-cli finds the embedded servers run after run.
EMBEDDED_PG_PORT = 54329
EMBEDDED_REDIS_PORT = 63799
DATABASE = "slawatch"


@dataclass(frozen=True)
class Process:
    name: str
    script: str  # path under cmd/
    args: tuple[str, ...] = ()


PROCESSES = (
    Process("server", "cmd/slawatch-server/main.py"),
    Process("worker", "cmd/slawatch-worker/main.py"),
    Process("scheduler", "cmd/slawatch-scheduler/main.py"),
    Process("bridge", "cmd/slawatch-bridge/main.py"),
)


def _ensure_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(admin_url, dbname=name)


class Stack:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = dict(env)
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def start_backing_services(self) -> None:
        data = self.root / ".data"
        if not self.env.get("DATABASE_URL"):
            self.postgres = EmbeddedPostgres(data / "postgres", port=EMBEDDED_PG_PORT).start()
            self.env["DATABASE_URL"] = _ensure_database(self.postgres.url, DATABASE)
            log.info("embedded PostgreSQL: %s", self.env["DATABASE_URL"])
        if not self.env.get("REDIS_URL"):
            self.redis = EmbeddedRedis(data / "redis", port=EMBEDDED_REDIS_PORT).start()
            self.env["REDIS_URL"] = self.redis.url
            log.info("embedded Redis: %s", self.env["REDIS_URL"])

    def ensure_dev_token(self) -> str | None:
        """Unless the environment brings its own tokens (or the insecure switch), make a
        development token once, keep it in .data/dev-token, and configure it for every process."""
        if any(
            self.env.get(k)
            for k in ("SLAWATCH_TOKENS", "SLAWATCH_TOKENS_FILE", "SLAWATCH_INSECURE_DEV")
        ):
            return None
        path = self.root / ".data" / "dev-token"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        token = path.read_text().strip()
        self.env["SLAWATCH_TOKENS"] = json.dumps(
            [
                {
                    "name": "dev",
                    "sha256": hash_token(token),
                    "tenant": "default",
                    "roles": [r.value for r in Role],
                }
            ]
        )
        # The bridge calls the server with it too.
        self.env.setdefault("SLAWATCH_UPSTREAM_TOKEN", token)
        return token

    def start_processes(self, processes: tuple[Process, ...] = PROCESSES) -> None:
        for proc in processes:
            # Own sessions: Ctrl-C reaches this process only, which then sends each child one
            # SIGTERM (a second signal would cut the worker's graceful shutdown short).
            self.children[proc.name] = subprocess.Popen(
                [sys.executable, str(self.root / proc.script), *proc.args],
                env=self.env,
                start_new_session=True,
            )
            log.info("started %s (pid %d)", proc.name, self.children[proc.name].pid)

    def wait(self) -> int:
        """Until a signal asks us to stop (0) or a child dies on its own (1)."""
        while not self.stopping.wait(0.5):
            for name, child in self.children.items():
                if child.poll() is not None:
                    log.error("%s exited with %s; stopping the stack", name, child.returncode)
                    return 1
        return 0

    def stop(self, grace: float = 20.0) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for name, child in self.children.items():
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", name, grace)
                child.kill()
                child.wait()
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()


def run(root: Path) -> int:
    stack = Stack(root, dict(os.environ))

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stack.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start_backing_services()
        token = stack.ensure_dev_token()
        stack.start_processes()
        port = stack.env.get("SLAWATCH_GRPC_PORT", "50051")
        page = f"http://127.0.0.1:{stack.env.get('SLAWATCH_BRIDGE_PORT') or '8080'}/"
        # The page keeps the token in its tab (sessionStorage) and drops it from the address bar.
        page_with_token = f"{page}?token={token}" if token else page
        log.info(
            "slawatch is up: gRPC on 127.0.0.1:%s, live page %s; Ctrl-C stops everything",
            port,
            page,
        )
        print(f"\nlive alerts page: {page_with_token}", flush=True)
        if token:
            # Printed plainly as well: this is what a developer copies into grpcurl.
            print(
                f"\ndevelopment token (all roles, tenant 'default'): {token}\n"
                f"  export SLAWATCH_TOKEN={token}\n",
                flush=True,
            )
        return stack.wait()
    finally:
        stack.stop()
