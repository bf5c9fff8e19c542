"""slawatch-scheduler: enqueue an evaluation every SLAWATCH_EVAL_INTERVAL_SECONDS."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import redis

from internal.config.settings import Settings
from internal.obs.logs import configure_logging
from internal.worker import actors
from internal.worker.scheduler import Scheduler

log = logging.getLogger("slawatch.scheduler")


def enqueue(tick: int) -> None:
    actors.evaluate.send(tick)
    actors.sweep.send()


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    settings = Settings.from_env()
    configure_logging(settings.log_level, "scheduler")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    scheduler = Scheduler(client, settings.eval_interval_seconds, enqueue)
    log.info("scheduler started: one evaluation every %ss", settings.eval_interval_seconds)
    scheduler.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
