"""Hot reload of the SLA config for one process: the file watcher, plus the one-time recompute of
stored tickets' deadlines for each new version, done by whichever process claims it first.

A use case: it joins `config`, which knows nothing of the database, to the recompute; the
processes (rpc, worker, scheduler) only call `start_config_reload`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psycopg_pool

from internal.config.holder import ConfigHolder
from internal.config.sla_config import SlaConfig
from internal.config.watcher import ConfigWatcher
from internal.usecase.recompute import (
    BATCH_SIZE,
    claim_version,
    recompute_open_tickets,
    release_version,
)

log = logging.getLogger(__name__)

# Waits between attempts when the database is away; the last one repeats until it is back.
RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_WAIT_SECONDS = 5.0


class PolicyRecompute:
    """A ConfigHolder listener: each version it is given is claimed, and if this process won,
    the open tickets are recomputed on a background thread (the listener returns at once).

    One thread, one version at a time: a version arriving during a recompute supersedes it (the
    walk stops after its batch in hand and hands the claim back). A failure is retried with
    backoff, keeping the claim, until it succeeds, is superseded or the process stops.
    """

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        *,
        batch_size: int = BATCH_SIZE,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self._pool = pool
        self._batch_size = batch_size
        self._retry_delays = retry_delays
        self._cond = threading.Condition()
        self._pending: SlaConfig | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="policy-recompute", daemon=True)

    def start(self) -> PolicyRecompute:
        self._thread.start()
        return self

    def __call__(self, config: SlaConfig) -> None:
        with self._cond:
            if not self._stopping:
                self._pending = config
                self._cond.notify_all()

    def stop(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        """Stop after the batch in hand; an unfinished claim is handed back."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _interrupted(self, version: str) -> bool:
        with self._cond:
            return self._stopping or (
                self._pending is not None and self._pending.version != version
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self._pending is not None)
                if self._stopping:
                    return
                config, self._pending = self._pending, None
            if config is not None:
                self._handle(config)

    def _handle(self, config: SlaConfig) -> None:
        version = config.version
        won = False
        attempt = 0
        while not self._interrupted(version):
            try:
                if not won:
                    with self._pool.connection() as conn:
                        won = claim_version(conn, version)
                    if not won:
                        return  # another process has it, or had it for this version
                recompute_open_tickets(
                    self._pool,
                    config,
                    batch_size=self._batch_size,
                    stop=lambda: self._interrupted(version),
                )
                return
            except Exception as err:
                delay = self._retry_delays[min(attempt, len(self._retry_delays) - 1)]
                attempt += 1
                log.warning(
                    "recompute for policy %s failed (%s); retrying in %.0fs",
                    version,
                    err,
                    delay,
                    exc_info=attempt == 1,
                )
                with self._cond:
                    self._cond.wait_for(lambda: self._interrupted(version), timeout=delay)
        if won:
            self._release(version)

    def _release(self, version: str) -> None:
        try:
            with self._pool.connection() as conn:
                release_version(conn, version)
        except Exception as err:
            # The claim then lapses after recompute.ABANDONED_AFTER_SECONDS.
            log.warning("could not hand back the recompute of policy %s: %s", version, err)


class ConfigReload:
    """The hot reload running in a process; `stop()` it before closing the pool."""

    def __init__(self, watcher: ConfigWatcher, recompute: PolicyRecompute | None) -> None:
        self.watcher = watcher
        self.recompute = recompute

    def stop(self) -> None:
        self.watcher.stop()
        if self.recompute is not None:
            self.recompute.stop()


def start_config_reload(
    holder: ConfigHolder,
    path: Path,
    pool: psycopg_pool.ConnectionPool | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> ConfigReload:
    """Watch `path` and keep `holder` on its last valid content. With a `pool`, every new version
    (including the one in force now: it may have been edited while everything was down) is
    claimed and, if this process wins, recomputed in the background. Without one (a process with
    no database), only the holder follows the file."""
    recompute = None
    if pool is not None:
        recompute = PolicyRecompute(pool, batch_size=batch_size).start()
        holder.on_change(recompute)
        recompute(holder.current)
    watcher = ConfigWatcher(path, holder).start()
    return ConfigReload(watcher, recompute)
