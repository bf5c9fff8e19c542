"""Erasing tickets: DeleteTicket's one ticket, and retention's batches of tickets done long ago.

Each erasure is one transaction: a ticket goes with all of its rows or not at all, and its count
leaves the dashboard's buckets in the same commit. DeleteTicket takes the ticket's locks the way
ingest does (advisory lock, then the row), so a delete and an ingest of one ticket run one after
the other. A retention batch only tries the locks and skips what a writer holds: it never waits
for ingest, and ingest waits for it only on the old tickets of that batch and on the count
buckets it changed (as two ingests wait for each other's), for one short transaction. The
statements are internal/store's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from internal.store import erase_repo, state_buckets, ticket_repo
from internal.store.erase_repo import Erased


def delete_ticket(conn: psycopg.Connection[Any], tenant: str, ticket_id: str) -> Erased | None:
    """Erase one ticket of `tenant` with everything of its own; None when there is no such
    ticket. A pending notification of it goes too, so delivery finds nothing to send."""
    ticket_repo.prepare_session(conn)
    with conn.transaction(), conn.cursor() as cur:
        ticket_repo.lock_tickets(cur, tenant, [ticket_id])
        prior = ticket_repo.read_prior(cur, tenant, [ticket_id])
        if ticket_id not in prior:
            return None
        erased = erase_repo.erase(cur, [(tenant, ticket_id)])
        state_buckets.record_changes(cur, tenant, {prior[ticket_id].bucket: -1})
    return erased


@dataclass(frozen=True)
class RetentionBatch:
    candidates: int  # done tickets older than the cutoff that the batch looked at
    erased: int  # of those, the tickets erased (the others were held by a writer, or reopened)


def retention_batch(
    conn: psycopg.Connection[Any],
    cutoff: datetime,
    limit: int,
    *,
    before_commit: Callable[[], None] | None = None,
) -> RetentionBatch:
    """Erase up to `limit` tickets, of any tenant, that are resolved or closed with no clock
    running and whose latest event is before `cutoff`, in one transaction. `before_commit` runs
    inside the transaction after the deletes (tests pause or break a batch there)."""
    ticket_repo.prepare_session(conn)
    with conn.transaction(), conn.cursor() as cur:
        candidates = erase_repo.retention_candidates(cur, cutoff, limit)
        locked = erase_repo.lock_done(cur, candidates, cutoff)
        erase_repo.erase(cur, [t.key for t in locked])
        moves: dict[str, Counter[state_buckets.BucketKey]] = defaultdict(Counter)
        for t in locked:
            moves[t.key[0]][t.bucket] -= 1
        state_buckets.record_changes_of_tenants(cur, moves)
        if before_commit is not None:
            before_commit()
    return RetentionBatch(len(candidates), len(locked))
