"""Recomputing stored tickets' deadlines for a new SLA config version, once per version whichever
process notices it first.

Which tickets, among those whose `policy_version` is not the new one:
- active tickets (some clock not stopped): their due times, warning/breach instants and next
  checks follow the new targets and ladder;
- inactive tickets with a check still pending (a step crossed before the clock stopped that the
  evaluator has not fired yet, e.g. while the workers were down): the evaluator will fire it
  under the new version and record that version on the alert, so the stored target and next
  check must be the new version's as well.
Other closed tickets keep the verdict of the policy they closed under, and are never read: their
number only grows.

Tickets are walked in keyset batches, each its own short transaction with the same locks as
ingest (advisory lock per ticket, then the ticket rows), so ingest and evaluation carry on while
a large recompute runs. A ticket whose priority/tier the new config no longer has keeps the
clocks it has (the config's validation cannot know about stored tickets); they are counted in
one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool

from internal.config.sla_config import SlaConfig
from internal.sla.ticket_sla import TicketSla, compute_ticket_sla, latest_event
from internal.store.ingest_repo import (
    _read_history,
    _read_prior,
    prepare_session,
    write_ticket_slas,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# A claim unfinished after this long belonged to a process that died; it may be taken over.
ABANDONED_AFTER_SECONDS = 600

# One winner per version. A version already claimed is taken on again only when its claim was
# handed back, when it was abandoned half-way, or when the config returns to it after another
# version was claimed (a rollback: the open tickets carry the other version's deadlines now).
_CLAIM = """
INSERT INTO policy_versions AS v (version) VALUES (%(version)s)
ON CONFLICT (version) DO UPDATE SET claimed_at = now(), recomputed_at = NULL, tickets = NULL
    WHERE v.claimed_at IS NULL
       OR (v.recomputed_at IS NULL
           AND v.claimed_at < now() - %(abandoned)s * interval '1 second')
       OR (v.recomputed_at IS NOT NULL
           AND EXISTS (SELECT 1 FROM policy_versions o WHERE o.claimed_at > v.claimed_at))
RETURNING version
"""

_RELEASE = """
UPDATE policy_versions SET claimed_at = NULL WHERE version = %s AND recomputed_at IS NULL
"""

_CLAIMED_AT = """
SELECT coalesce((SELECT claimed_at FROM policy_versions WHERE version = %s), now())
"""

# Another version claimed after ours: the config moved on, and going on would only overwrite
# deadlines the newer version's walk may already have written.
_SUPERSEDED = """
SELECT EXISTS (SELECT 1 FROM policy_versions WHERE version <> %s AND claimed_at > %s)
"""

_DONE = """
UPDATE policy_versions SET recomputed_at = now(), tickets = %s WHERE version = %s
"""

_NEXT_ACTIVE = """
SELECT tenant_id, ticket_id FROM tickets
WHERE active AND policy_version <> %(version)s AND (tenant_id, ticket_id) > (%(t)s, %(id)s)
ORDER BY tenant_id, ticket_id LIMIT %(limit)s
"""
_NEXT_ACTIVE_OF_TENANT = """
SELECT tenant_id, ticket_id FROM tickets
WHERE tenant_id = %(tenant)s
  AND active AND policy_version <> %(version)s AND (tenant_id, ticket_id) > (%(t)s, %(id)s)
ORDER BY tenant_id, ticket_id LIMIT %(limit)s
"""

# Few rows (the evaluator clears a pending check within a tick), found through the partial index
# on next_check_at: read in one go rather than walked.
_PENDING_CLOSED = """
SELECT DISTINCT c.tenant_id, c.ticket_id
FROM sla_clocks c JOIN tickets t USING (tenant_id, ticket_id)
WHERE c.next_check_at IS NOT NULL AND c.mode = 'stopped'
  AND NOT t.active AND t.policy_version <> %(version)s
  AND (%(tenant)s::text IS NULL OR c.tenant_id = %(tenant)s)
ORDER BY 1, 2
"""

# The same keys, in the same order, as ingest's _LOCK_TICKETS: the two never deadlock.
_LOCK = """
SELECT count(pg_advisory_xact_lock(k)) FROM (
    SELECT DISTINCT hashtextextended(%(tenant)s || chr(31) || t, 0) AS k
    FROM unnest(%(ids)s::text[]) AS t ORDER BY k
) AS keys
"""

Conn = psycopg.Connection[Any]
Key = tuple[str, str]


def claim_version(conn: Conn, version: str) -> bool:
    """True for exactly one caller per version (and per return to it), across every process."""
    with conn.transaction():
        row = conn.execute(
            _CLAIM, {"version": version, "abandoned": ABANDONED_AFTER_SECONDS}
        ).fetchone()
    return row is not None


def release_version(conn: Conn, version: str) -> None:
    """Hand an unfinished claim back, so that the next process to see the version takes it."""
    with conn.transaction():
        conn.execute(_RELEASE, (version,))


def _recompute_batch(conn: Conn, config: SlaConfig, tenant: str, ids: list[str]) -> tuple[int, int]:
    """(recomputed, skipped) for one tenant's tickets, in one transaction."""
    skipped = 0
    slas: list[TicketSla] = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK, {"tenant": tenant, "ids": ids})
        prior = _read_prior(cur, tenant, ids)  # FOR UPDATE on the ticket rows
        history = _read_history(cur, tenant, ids)
        for tid in ids:
            if tid not in history:
                continue
            latest = latest_event(history[tid])
            targets = config.targets(latest.priority, latest.customer_tier)
            if targets is None:
                skipped += 1
                continue
            fired = prior[tid].fired if tid in prior else {}
            slas.append(compute_ticket_sla(history[tid], targets, config.rules, fired))
        write_ticket_slas(cur, tenant, slas, prior)
    return len(slas), skipped


def _by_tenant(keys: list[Key]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tenant, tid in keys:
        out.setdefault(tenant, []).append(tid)
    return out


def recompute_open_tickets(
    pool: psycopg_pool.ConnectionPool,
    config: SlaConfig,
    tenant: str | None = None,
    batch_size: int = BATCH_SIZE,
    *,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Recompute the open tickets (see the module docstring) not yet on `config`'s version, of
    one tenant or of all; returns how many were rewritten.

    A whole run (every tenant) records the version as recomputed at the end. A run that stops
    early, because `stop()` turned true or another version was claimed meanwhile, hands the
    claim back instead and returns what it did so far.
    """
    version = config.version
    with pool.connection() as conn:
        since: datetime = conn.execute(_CLAIMED_AT, (version,)).fetchone()[0]  # type: ignore[index]
        pending = [
            (str(t), str(i))
            for t, i in conn.execute(_PENDING_CLOSED, {"version": version, "tenant": tenant})
        ]
    recomputed = skipped = 0
    cursor: Key = ("", "")
    walking = True
    while True:
        with pool.connection() as conn:
            if (stop is not None and stop()) or conn.execute(
                _SUPERSEDED, (version, since)
            ).fetchone() == (True,):
                conn.commit()
                release_version(conn, version)
                log.info(
                    "policy %s: recompute stopped after %d tickets; the claim is handed back",
                    version,
                    recomputed,
                )
                return recomputed
            if walking:
                rows = conn.execute(
                    _NEXT_ACTIVE if tenant is None else _NEXT_ACTIVE_OF_TENANT,
                    {
                        "version": version,
                        "tenant": tenant,
                        "t": cursor[0],
                        "id": cursor[1],
                        "limit": batch_size,
                    },
                ).fetchall()
                batch: list[Key] = [(str(t), str(i)) for t, i in rows]
                if len(batch) < batch_size:
                    walking = False
                if batch:
                    cursor = batch[-1]
            else:
                batch, pending = pending[:batch_size], pending[batch_size:]
            conn.commit()
            if not batch and not walking and not pending:
                break
            prepare_session(conn)
            for tenant_id, ids in _by_tenant(batch).items():
                done, left = _recompute_batch(conn, config, tenant_id, ids)
                recomputed += done
                skipped += left
    if tenant is None:
        with pool.connection() as conn:
            conn.execute(_DONE, (recomputed, version))
    if skipped:
        log.warning(
            "%d open tickets have a priority/tier that policy %s does not define; their"
            " deadlines are unchanged",
            skipped,
            version,
        )
    log.info("policy %s: recomputed %d open tickets", version, recomputed)
    return recomputed
