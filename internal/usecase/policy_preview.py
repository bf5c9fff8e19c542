"""PreviewPolicy: what saving a candidate config would do to one tenant's open tickets, without
saving it (DESIGN §9).

Every open ticket of the tenant is computed under the candidate exactly as the recompute after a
reload would compute it (recompute.sla_under: the policy chosen again on the ticket's current
fields, the new targets over the whole history, the fired levels kept), and compared with what
is stored: its SLA state now (the worst over its clocks, as GetTicket's sla_state), its next
breach (the earliest due time of a running clock) and its policy's name.

The reads are keyset batches of BATCH_SIZE tickets, all in one REPEATABLE READ READ ONLY
transaction: one snapshot, so that the counts add up even while ingest goes on, and nothing can
be written. The cost is that of the recompute without its writes: O(the tenant's open tickets),
a few statements per batch (the walk reads the tenant's rows of the ticket index, the closed ones
only to skip them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg_pool

from internal.config.sla_config import SlaConfig
from internal.sla.clocks import state_at
from internal.sla.model import Mode, State
from internal.sla.ticket_sla import FAR_FUTURE, TicketSla
from internal.store import preview_repo, ticket_repo
from internal.store.preview_repo import StoredClockState
from internal.usecase.recompute import sla_under, uses_fields

BATCH_SIZE = 500
DEFAULT_SAMPLE = 10
MAX_SAMPLE = 100


@dataclass
class Preview:
    version: str  # the candidate's policy version, as its alerts would record it
    current_version: str  # the version serving the tenant now
    evaluated_at: datetime  # the `now` the states are taken at
    open_tickets: int = 0
    # Open tickets no policy of the candidate matches: applying it keeps their clocks.
    unmatched: int = 0
    # (from, to) -> tickets, only where the two differ.
    state_changes: Counter[tuple[State, State]] = field(default_factory=Counter)
    policy_changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    breach_earlier: int = 0
    breach_later: int = 0
    sample: list[str] = field(default_factory=list)  # tickets that would change, in id order
    batches: int = 0


@dataclass(frozen=True)
class TicketChange:
    before: State
    after: State
    policy_before: str
    policy_after: str
    breach_before: datetime | None  # the next breach: earliest due time of a running clock
    breach_after: datetime | None

    @property
    def changed(self) -> bool:
        return (
            self.before != self.after
            or self.policy_before != self.policy_after
            or self.breach_before != self.breach_after
        )


def _stored_state(clocks: Sequence[StoredClockState], now: datetime) -> State:
    return max((state_at(c.mode, c.due_at, c.warn_at, now) for c in clocks), default=State.MET)


def _stored_next_breach(clocks: Sequence[StoredClockState]) -> datetime | None:
    due = [c.due_at for c in clocks if c.mode is Mode.RUNNING and c.due_at is not None]
    return min(due, default=None)


def compare(
    stored: Sequence[StoredClockState], policy: str, new: TicketSla, now: datetime
) -> TicketChange:
    """What applying the candidate changes of one ticket (pure)."""
    after = max((c.state(now) for c in new.clocks), default=State.MET)
    return TicketChange(
        _stored_state(stored, now),
        after,
        policy,
        new.policy,
        _stored_next_breach(stored),
        None if new.urgent_at == FAR_FUTURE else new.urgent_at,
    )


def _add(preview: Preview, ticket_id: str, change: TicketChange, sample_size: int) -> None:
    if change.before != change.after:
        preview.state_changes[(change.before, change.after)] += 1
    if change.policy_before != change.policy_after:
        preview.policy_changes[(change.policy_before, change.policy_after)] += 1
    before, after = change.breach_before, change.breach_after
    if before != after:
        if after is not None and (before is None or after < before):
            preview.breach_earlier += 1
        else:
            preview.breach_later += 1
    if change.changed and len(preview.sample) < sample_size:
        preview.sample.append(ticket_id)


def preview_policy(
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
    current: SlaConfig,
    candidate: SlaConfig,
    now: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    sample_size: int = DEFAULT_SAMPLE,
) -> Preview:
    preview = Preview(candidate.version, current.version, now)
    needs_fields = uses_fields(candidate)
    after = ""
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        preview_repo.begin_snapshot(cur)
        while True:
            page = preview_repo.open_tickets(cur, tenant, after, batch_size)
            if not page:
                break
            preview.batches += 1
            after = page[-1][0]
            _preview_batch(cur, preview, tenant, candidate, page, needs_fields, sample_size)
            if len(page) < batch_size:
                break
    return preview


def _preview_batch(
    cur: Any,
    preview: Preview,
    tenant: str,
    candidate: SlaConfig,
    page: list[tuple[str, str]],
    needs_fields: bool,
    sample_size: int,
) -> None:
    ids = [tid for tid, _ in page]
    history = ticket_repo.read_history(cur, tenant, ids)
    fields = ticket_repo.read_fields(cur, tenant, ids) if needs_fields else {}
    clocks = preview_repo.stored_clocks(cur, tenant, ids)
    now = preview.evaluated_at
    for tid, policy in page:
        if tid not in history:
            continue
        preview.open_tickets += 1
        stored = clocks.get(tid, [])
        fired = {(c.metric, c.cycle): c.fired_level for c in stored}
        new = sla_under(candidate, history[tid], fields.get(tid, ()), fired)
        if new is None:
            preview.unmatched += 1
            continue
        _add(preview, tid, compare(stored, policy, new, now), sample_size)
