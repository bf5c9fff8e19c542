"""slawatch-worker: the Dramatiq worker (evaluation, Slack delivery, outbox sweeps).

Runs Dramatiq's own CLI with `internal.worker.actors:setup` as its broker (each worker process
imports the module and calls `setup`); extra arguments go to it unchanged, e.g.
`--processes 2 --threads 8`. Defaults: SLAWATCH_WORKER_PROCESSES (1), SLAWATCH_WORKER_THREADS (8).

Metrics and health: one endpoint for all the worker processes, on SLAWATCH_WORKER_METRICS_PORT
(9465; 0 turns it off), served by a Dramatiq fork process (`internal.worker.ops:serve`) from the
prometheus_client multiprocess files of every worker process (PROMETHEUS_MULTIPROC_DIR: a fresh
temporary folder unless set).

Shutdown: on SIGTERM Dramatiq stops taking messages, lets each worker thread finish the one in
hand for up to SLAWATCH_WORKER_SHUTDOWN_SECONDS (20), puts prefetched messages back on their queue
and exits. Work still running after that is abandoned mid-transaction, which PostgreSQL rolls
back: its clocks stay due and its notification rows pending, for the next worker.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OPS_FORK = "internal.worker.ops:serve"
ACTORS_SETUP = "internal.worker.actors:setup"  # Dramatiq's broker argument: a module:callable


def metrics_dir() -> tuple[Path, bool]:
    """The multiprocess metrics folder, emptied; True when we made it (and remove it at exit).
    Set before any worker process starts: prometheus_client picks its storage on import."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of a previous run's processes
            stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="slawatch-worker-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path, True


def main() -> int:
    folder, made = metrics_dir()
    try:
        return run()
    finally:
        if made:
            shutil.rmtree(folder, ignore_errors=True)


def run() -> int:
    # Imported only once PROMETHEUS_MULTIPROC_DIR is set, in case they load prometheus_client.
    from internal.config.settings import Settings, SettingsError
    from internal.obs.logs import configure_logging
    from internal.obs.settings import OpsSettings

    try:
        settings = Settings.from_env()
        ops = OpsSettings.from_env("worker")
    except SettingsError as err:
        print(f"slawatch-worker: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, "worker")
    args = sys.argv[1:]
    if "--processes" not in args and "-p" not in args:
        args += ["--processes", os.environ.get("SLAWATCH_WORKER_PROCESSES", "1")]
    if "--threads" not in args and "-t" not in args:
        args += ["--threads", os.environ.get("SLAWATCH_WORKER_THREADS", "8")]
    if "--worker-shutdown-timeout" not in args:
        args += ["--worker-shutdown-timeout", str(int(ops.worker_shutdown_seconds * 1000))]
    if ops.metrics_port:
        args += ["--fork-function", OPS_FORK]
    # Logging is ours (JSON lines), set up by `setup` in each worker process.
    parsed = make_argument_parser().parse_args([ACTORS_SETUP, "--skip-logging", *args])
    return int(dramatiq_main(parsed) or 0)


if __name__ == "__main__":
    sys.exit(main())
