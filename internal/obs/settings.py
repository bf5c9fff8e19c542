"""Operations settings of each process, from the environment (README "Operations").

Each process has a metrics port of its own, with its own variable and default, so that `make run`
can start all of them on one machine; in Kubernetes every pod may use the default of its process.
Port 0 turns the endpoint off (and with it the worker's and scheduler's health endpoints).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from internal.config.settings import env_int, env_number

# process -> (environment variable, default port)
METRICS_PORTS: dict[str, tuple[str, int]] = {
    "server": ("SLAWATCH_METRICS_PORT", 9464),
    "worker": ("SLAWATCH_WORKER_METRICS_PORT", 9465),
    "scheduler": ("SLAWATCH_SCHEDULER_METRICS_PORT", 9466),
    "bridge": ("SLAWATCH_BRIDGE_METRICS_PORT", 9467),
}
METRICS_HOST_ENV = "SLAWATCH_METRICS_HOST"
SERVER_GRACE_ENV = "SLAWATCH_SHUTDOWN_GRACE_SECONDS"
WORKER_SHUTDOWN_ENV = "SLAWATCH_WORKER_SHUTDOWN_SECONDS"

DEFAULT_SERVER_GRACE_SECONDS = 10.0
# Long enough for an evaluation batch and a Slack send (10 s timeout) in flight to finish, short
# enough to fit Kubernetes' default 30 s termination grace period with room for the rest.
DEFAULT_WORKER_SHUTDOWN_SECONDS = 20.0


@dataclass(frozen=True)
class OpsSettings:
    metrics_port: int  # 0: no metrics/health endpoint
    metrics_host: str
    server_grace_seconds: float
    worker_shutdown_seconds: float

    @classmethod
    def from_env(cls, process: str, env: Mapping[str, str] | None = None) -> OpsSettings:
        env = os.environ if env is None else env
        name, default = METRICS_PORTS[process]
        return cls(
            metrics_port=env_int(env, name, default, maximum=65535),
            metrics_host=env.get(METRICS_HOST_ENV) or "0.0.0.0",
            server_grace_seconds=env_number(
                env, SERVER_GRACE_ENV, DEFAULT_SERVER_GRACE_SECONDS, maximum=600
            ),
            worker_shutdown_seconds=env_number(
                env, WORKER_SHUTDOWN_ENV, DEFAULT_WORKER_SHUTDOWN_SECONDS, maximum=600
            ),
        )
