"""Recomputing open tickets' deadlines when a new SLA config version appears, once per version
whichever process notices it first.

Tickets are walked in keyset batches, each its own short transaction with the same locks as
ingest (advisory lock per ticket, then the ticket rows), so ingest and evaluation carry on while
a large recompute runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg_pool

from internal.config.sla_config import SlaConfig
from internal.sla.ticket_sla import compute_ticket_sla
from internal.store.ingest_repo import (
    _read_history,
    _read_prior,
    prepare_session,
    write_ticket_slas,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 500

# A claim left unfinished for ten minutes (its process died mid-way) may be taken over.
_CLAIM = """
INSERT INTO policy_versions (version) VALUES (%s)
ON CONFLICT (version) DO UPDATE SET first_seen_at = now()
    WHERE policy_versions.recomputed_at IS NULL
      AND policy_versions.first_seen_at < now() - interval '10 minutes'
RETURNING version
"""

# Open tickets still on another version, after the cursor.
_NEXT_BATCH = """
SELECT tenant_id, ticket_id FROM tickets
WHERE active AND policy_version <> %(version)s AND (tenant_id, ticket_id) > (%(t)s, %(id)s)
ORDER BY tenant_id, ticket_id LIMIT %(limit)s
"""

_LOCK = """
SELECT count(pg_advisory_xact_lock(k)) FROM (
    SELECT hashtextextended(%(tenant)s || chr(31) || t, 0) AS k
    FROM unnest(%(ids)s::text[]) AS t ORDER BY k
) AS keys
"""


def claim_version(conn: psycopg.Connection[Any], version: str) -> bool:
    """True for exactly one caller per version, across every process."""
    with conn.transaction():
        return conn.execute(_CLAIM, (version,)).fetchone() is not None


def _recompute_batch(
    conn: psycopg.Connection[Any], config: SlaConfig, tenant: str, ids: list[str]
) -> tuple[int, int]:
    done = skipped = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK, {"tenant": tenant, "ids": ids})
        prior = _read_prior(cur, tenant, ids)
        history = _read_history(cur, tenant, ids)
        slas = []
        for tid in ids:
            if tid not in history:
                continue
            latest = max(history[tid], key=lambda e: e.updated_at)
            targets = config.targets(latest.priority, latest.customer_tier)
            if targets is None:
                skipped += 1  # its policy left the config: keep the clocks it has
                continue
            fired = prior[tid].fired if tid in prior else {}
            slas.append(compute_ticket_sla(history[tid], targets, config.rules, fired))
        write_ticket_slas(cur, tenant, slas)
        done = len(slas)
    return done, skipped


def recompute_open_tickets(
    pool: psycopg_pool.ConnectionPool, config: SlaConfig, batch_size: int = BATCH_SIZE
) -> tuple[int, int]:
    """Recompute every open ticket not yet on `config`'s version: (recomputed, skipped)."""
    cursor = ("", "")
    recomputed = skipped = 0
    while True:
        with pool.connection() as conn:
            rows = conn.execute(
                _NEXT_BATCH,
                {"version": config.version, "t": cursor[0], "id": cursor[1], "limit": batch_size},
            ).fetchall()
            conn.commit()
            if not rows:
                break
            cursor = (rows[-1][0], rows[-1][1])
            prepare_session(conn)
            by_tenant: dict[str, list[str]] = {}
            for tenant, tid in rows:
                by_tenant.setdefault(tenant, []).append(tid)
            for tenant, ids in by_tenant.items():
                done, left = _recompute_batch(conn, config, tenant, ids)
                recomputed += done
                skipped += left
    with pool.connection() as conn:
        conn.execute(
            "UPDATE policy_versions SET recomputed_at = now(), tickets = %s WHERE version = %s",
            (recomputed, config.version),
        )
    if skipped:
        log.warning(
            "%d open tickets have a priority/tier missing from policy %s; their deadlines are"
            " unchanged",
            skipped,
            config.version,
        )
    log.info("policy %s: recomputed %d open tickets", config.version, recomputed)
    return recomputed, skipped


def recompute_on_change(pool: psycopg_pool.ConnectionPool) -> Callable[[SlaConfig], None]:
    """A ConfigHolder listener: claim the new version, and if this process won, recompute in
    the background (the listener returns at once)."""

    def run(config: SlaConfig) -> None:
        try:
            with pool.connection() as conn:
                if not claim_version(conn, config.version):
                    return
            recompute_open_tickets(pool, config)
        except Exception:
            log.exception("recompute for policy %s failed", config.version)

    def listener(config: SlaConfig) -> None:
        threading.Thread(target=run, args=(config,), name="recompute", daemon=True).start()

    return listener
