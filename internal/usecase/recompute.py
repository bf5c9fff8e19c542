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
a large recompute runs. A ticket that no policy of the new config matches (an unknown
priority/tier, or ordered policies none of which matches its current fields) keeps the
clocks it has (the config's validation cannot know about stored tickets); they are counted in
one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
import psycopg_pool

from internal.config.sla_config import SlaConfig
from internal.sla.policy import FieldRow, facts_of
from internal.sla.ticket_sla import CycleKey, Event, TicketSla, compute_ticket_sla, latest_event
from internal.store import recompute_repo, ticket_repo
from internal.store.recompute_repo import DEFAULT_SCOPE, Key

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# A claim unfinished after this long belonged to a process that died; it may be taken over.
ABANDONED_AFTER_SECONDS = 600

Conn = psycopg.Connection[Any]


def claim_version(
    conn: Conn, version: str, scope: str = DEFAULT_SCOPE, text: str | None = None
) -> bool:
    """True for exactly one caller per version of a config (and per return to it), across every
    process. `scope` names the config: the file-wide one of every tenant, the default. `text`,
    the file's, is recorded with the version (GetPolicy, ListPolicyVersions)."""
    with conn.transaction():
        return recompute_repo.claim(conn, scope, version, ABANDONED_AFTER_SECONDS, text)


def release_version(conn: Conn, version: str, scope: str = DEFAULT_SCOPE) -> None:
    """Hand an unfinished claim back, so that the next process to see the version takes it."""
    with conn.transaction():
        recompute_repo.release(conn, scope, version)


def uses_fields(config: SlaConfig) -> bool:
    """Whether choosing `config`'s policy needs the tickets' group, assignee, tags and
    attributes (ticket_repo.read_fields), not only their priority and tier."""
    return not config.is_map_form and config.ordered_policies.uses_fields


def sla_under(
    config: SlaConfig,
    history: Sequence[Event],
    fields: Sequence[FieldRow],
    fired: Mapping[CycleKey, int],
) -> TicketSla | None:
    """What a stored ticket's clocks are under `config`: its policy chosen again on the ticket's
    current fields, its targets applied over the whole history, the levels in `fired` kept.
    None when no policy of `config` matches it. Pure: the recompute writes what this gives, and
    PreviewPolicy compares it with what is stored."""
    latest = latest_event(history)
    if config.is_map_form:
        targets = config.targets(latest.priority, latest.customer_tier)
    else:
        chosen = config.choose(facts_of(latest.priority, latest.customer_tier, fields))
        targets = None if chosen is None else chosen.targets
    if targets is None:
        return None
    return compute_ticket_sla(history, targets, config.rules, fired)


def _recompute_batch(conn: Conn, config: SlaConfig, tenant: str, ids: list[str]) -> tuple[int, int]:
    """(recomputed, skipped) for one tenant's tickets, in one transaction with ingest's locks."""
    skipped = 0
    slas: list[TicketSla] = []
    with conn.transaction(), conn.cursor() as cur:
        ticket_repo.lock_tickets(cur, tenant, ids)
        prior = ticket_repo.read_prior(cur, tenant, ids)  # FOR UPDATE on the ticket rows
        history = ticket_repo.read_history(cur, tenant, ids)
        fields = ticket_repo.read_fields(cur, tenant, ids) if uses_fields(config) else {}
        for tid in ids:
            if tid not in history:
                continue
            fired = prior[tid].fired if tid in prior else {}
            sla = sla_under(config, history[tid], fields.get(tid, ()), fired)
            if sla is None:
                skipped += 1
            else:
                slas.append(sla)
        ticket_repo.write_ticket_slas(cur, tenant, slas, prior)
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
    scope: str = DEFAULT_SCOPE,
    exclude: tuple[str, ...] = (),
    serves: Callable[[str], bool] | None = None,
) -> int:
    """Recompute the open tickets (see the module docstring) not yet on `config`'s version, of
    one tenant or of all but those in `exclude` (the tenants with a file of their own, for the
    default of a directory); returns how many were rewritten. `scope` is the config's, as in
    claim_version. `serves(tenant)`, asked at each batch, says whether `config` still serves the
    tenant: a tenant whose own file appeared during the walk is left to that file's recompute.

    A whole run (every tenant, or the one tenant the scope is) records the version as
    recomputed at the end. A run that stops early, because `stop()` turned true or another
    version was claimed meanwhile, hands the claim back instead and returns what it did so far.
    """
    version = config.version
    with pool.connection() as conn:
        since = recompute_repo.claimed_at(conn, scope, version)
        pending = recompute_repo.pending_closed(conn, version, tenant, exclude)
    recomputed = skipped = 0
    cursor: Key = ("", "")
    walking = True
    while True:
        with pool.connection() as conn:
            if (stop is not None and stop()) or recompute_repo.superseded(
                conn, scope, version, since
            ):
                conn.commit()
                release_version(conn, version, scope)
                log.info(
                    "policy %s: recompute stopped after %d tickets; the claim is handed back",
                    version,
                    recomputed,
                )
                return recomputed
            if walking:
                batch = recompute_repo.next_active(
                    conn, version, tenant, cursor, batch_size, exclude
                )
                if len(batch) < batch_size:
                    walking = False
                if batch:
                    cursor = batch[-1]
            else:
                batch, pending = pending[:batch_size], pending[batch_size:]
            conn.commit()
            if not batch and not walking and not pending:
                break
            ticket_repo.prepare_session(conn)
            for tenant_id, ids in _by_tenant(batch).items():
                if serves is not None and not serves(tenant_id):
                    continue
                done, left = _recompute_batch(conn, config, tenant_id, ids)
                recomputed += done
                skipped += left
    if tenant is None or tenant == scope:
        with pool.connection() as conn:
            recompute_repo.mark_done(conn, scope, version, recomputed)
    if skipped:
        log.warning(
            "%d open tickets have a priority/tier that policy %s does not define (or match"
            " none of its ordered policies); their deadlines are unchanged",
            skipped,
            version,
        )
    log.info("policy %s: recomputed %d open tickets", version, recomputed)
    return recomputed
