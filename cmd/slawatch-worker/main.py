"""slawatch-worker: the Dramatiq worker (evaluation, Slack delivery, outbox sweeps).

Runs Dramatiq's own CLI on `internal.worker.actors`; extra arguments go to it unchanged, e.g.
`--processes 2 --threads 8`. Defaults: SLAWATCH_WORKER_PROCESSES (1), SLAWATCH_WORKER_THREADS (8).
"""

from __future__ import annotations

import os
import sys

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser


def main() -> int:
    args = sys.argv[1:]
    if "--processes" not in args and "-p" not in args:
        args += ["--processes", os.environ.get("SLAWATCH_WORKER_PROCESSES", "1")]
    if "--threads" not in args and "-t" not in args:
        args += ["--threads", os.environ.get("SLAWATCH_WORKER_THREADS", "8")]
    # Logging is ours (JSON lines), set up when each worker process imports the actors.
    parsed = make_argument_parser().parse_args(["internal.worker.actors", "--skip-logging", *args])
    return int(dramatiq_main(parsed) or 0)


if __name__ == "__main__":
    sys.exit(main())
