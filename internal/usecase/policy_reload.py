"""Hot reload of the SLA config for one process: the file watcher (of one file, or of a directory
of per-tenant files), plus the one-time recompute of stored tickets' deadlines for each new
version, done by whichever process claims it first.

A use case: it joins `config`, which knows nothing of the database, to the recompute; the
processes (rpc, worker, scheduler) only call `start_config_reload`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg_pool

from internal.config.holder import ConfigHolder
from internal.config.sla_config import SlaConfig
from internal.config.tenant_configs import DEFAULT_SCOPE, TenantConfigs, TenantConfigWatcher
from internal.config.watcher import ConfigWatcher, FileWatcher
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


@dataclass(frozen=True)
class RecomputeJob:
    """The recompute of one config's tickets: `scope` is the config's (claim_version), `tenant`
    the one tenant it serves (a tenant's own file, or the default after the tenant's file was
    removed), or None: every tenant but those in `exclude`."""

    config: SlaConfig
    scope: str = DEFAULT_SCOPE
    tenant: str | None = None
    exclude: tuple[str, ...] = ()
    serves: Callable[[str], bool] | None = field(default=None, compare=False)


class PolicyRecompute:
    """A config listener: each version it is given is claimed, and if this process won, the open
    tickets it serves are recomputed on a background thread (the listener returns at once).

    One thread, one job at a time: a version arriving for a scope during a recompute of that
    scope supersedes it (the walk stops after its batch in hand and hands the claim back); jobs
    of other scopes wait their turn. A failure is retried with backoff, keeping the claim, until
    it succeeds, is superseded or the process stops.
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
        self._pending: dict[str, RecomputeJob] = {}  # by scope, in arrival order
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="policy-recompute", daemon=True)

    def start(self) -> PolicyRecompute:
        self._thread.start()
        return self

    def __call__(self, config: SlaConfig) -> None:
        """A ConfigHolder's listener: the file-wide config, for every tenant."""
        self.submit(RecomputeJob(config))

    def submit(self, job: RecomputeJob) -> None:
        with self._cond:
            if not self._stopping:
                self._pending.pop(job.scope, None)
                self._pending[job.scope] = job
                self._cond.notify_all()

    def stop(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        """Stop after the batch in hand; an unfinished claim is handed back."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _interrupted(self, job: RecomputeJob) -> bool:
        with self._cond:
            newer = self._pending.get(job.scope)
            return self._stopping or (
                newer is not None and newer.config.version != job.config.version
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or bool(self._pending))
                if self._stopping:
                    return
                scope = next(iter(self._pending))
                job = self._pending.pop(scope)
            self._handle(job)

    def _handle(self, job: RecomputeJob) -> None:
        version, scope = job.config.version, job.scope
        won = False
        attempt = 0
        while not self._interrupted(job):
            try:
                if not won:
                    with self._pool.connection() as conn:
                        won = claim_version(conn, version, scope, job.config.text)
                    if not won:
                        return  # another process has it, or had it for this version
                recompute_open_tickets(
                    self._pool,
                    job.config,
                    job.tenant,
                    batch_size=self._batch_size,
                    stop=lambda: self._interrupted(job),
                    scope=scope,
                    exclude=job.exclude,
                    serves=job.serves,
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
                    self._cond.wait_for(lambda: self._interrupted(job), timeout=delay)
        if won:
            self._release(version, scope)

    def _release(self, version: str, scope: str) -> None:
        try:
            with self._pool.connection() as conn:
                release_version(conn, version, scope)
        except Exception as err:
            # The claim then lapses after recompute.ABANDONED_AFTER_SECONDS.
            log.warning("could not hand back the recompute of policy %s: %s", version, err)


def tenant_job(configs: TenantConfigs, scope: str, config: SlaConfig) -> RecomputeJob:
    """The recompute a directory's change asks for. A tenant's file (added, edited, or removed:
    then `config` is the default now serving it) recomputes that tenant's tickets, claimed in
    the tenant's scope; the default recomputes every tenant without a file of its own."""

    def serves(tenant: str) -> bool:
        return configs.for_tenant(tenant).version == config.version

    if scope == DEFAULT_SCOPE:
        return RecomputeJob(config, DEFAULT_SCOPE, None, configs.own_tenants(), serves)
    return RecomputeJob(config, scope, scope, (), serves)


class ConfigReload:
    """The hot reload running in a process; `stop()` it before closing the pool."""

    def __init__(self, watcher: FileWatcher, recompute: PolicyRecompute | None) -> None:
        self.watcher = watcher
        self.recompute = recompute

    def stop(self) -> None:
        self.watcher.stop()
        if self.recompute is not None:
            self.recompute.stop()


def start_config_reload(
    holder: ConfigHolder | TenantConfigs,
    path: Path,
    pool: psycopg_pool.ConnectionPool | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> ConfigReload:
    """Watch `path` and keep `holder` on its last valid content (a directory: each file on its
    own). With a `pool`, every new version (including those in force now: a file may have been
    edited while everything was down) is claimed and, if this process wins, recomputed in the
    background. Without one (a process with no database), only the holder follows the file."""
    recompute = None
    if pool is not None:
        recompute = PolicyRecompute(pool, batch_size=batch_size).start()
    watcher: FileWatcher
    if isinstance(holder, TenantConfigs):
        if recompute is not None:
            configs, rc = holder, recompute
            holder.on_change(lambda scope, config: rc.submit(tenant_job(configs, scope, config)))
            for scope, config in sorted(holder.scopes().items()):
                recompute.submit(tenant_job(holder, scope, config))
        watcher = TenantConfigWatcher(path, holder).start()
    else:
        if recompute is not None:
            holder.on_change(recompute)
            recompute(holder.current)
        watcher = ConfigWatcher(path, holder).start()
    return ConfigReload(watcher, recompute)
