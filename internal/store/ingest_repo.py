"""The ingest transaction: a validated batch of events in, one outcome per event out.

A fixed number of statements per batch whatever its size (arrays bound with unnest), all in one
transaction: a batch is stored whole or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import psycopg

from internal.sla.model import ClockKind, Status
from internal.sla.policy import Rules, Targets
from internal.sla.ticket_sla import Event, TicketSla, compute_ticket_sla


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True)
class Prior:
    updated_at: datetime
    fired: dict[ClockKind, int]


TargetsFor = Callable[[str, str], Targets]

_LOCK_TICKETS = """
SELECT pg_advisory_xact_lock(k) FROM (
    SELECT hashtextextended(%(tenant)s || chr(31) || t, 0) AS k
    FROM unnest(%(ids)s::text[]) AS t ORDER BY k
) AS keys
"""

_INSERT_EVENTS = """
INSERT INTO ticket_events
    (tenant_id, ticket_id, updated_at, status, priority, customer_tier, created_at)
SELECT %(tenant)s, * FROM unnest(
    %(ids)s::text[], %(updated)s::timestamptz[], %(statuses)s::text[],
    %(priorities)s::text[], %(tiers)s::text[], %(created)s::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING ticket_id, updated_at
"""

# Row locks on the tickets make a running evaluation (which locks them too, with SKIP LOCKED)
# finish first; the fired levels are then read in a statement of their own, so they are fresh.
_LOCK_PRIOR = """
SELECT ticket_id, updated_at FROM tickets
WHERE tenant_id = %(tenant)s AND ticket_id = ANY(%(ids)s)
ORDER BY ticket_id FOR UPDATE
"""

_FIRED = """
SELECT ticket_id, clock, fired_level FROM sla_clocks
WHERE tenant_id = %(tenant)s AND ticket_id = ANY(%(ids)s)
"""

_HISTORY = """
SELECT ticket_id, priority, customer_tier, status, created_at, updated_at
FROM ticket_events WHERE tenant_id = %(tenant)s AND ticket_id = ANY(%(ids)s)
"""

_UPSERT_TICKETS = """
INSERT INTO tickets (tenant_id, ticket_id, priority, customer_tier, status, created_at,
                     updated_at, policy_version, breach_at, warn_at, active, urgent_at)
SELECT %(tenant)s, * FROM unnest(
    %(ids)s::text[], %(priorities)s::text[], %(tiers)s::text[], %(statuses)s::text[],
    %(created)s::timestamptz[], %(updated)s::timestamptz[], %(versions)s::text[],
    %(breach)s::timestamptz[], %(warn)s::timestamptz[], %(active)s::boolean[],
    %(urgent)s::timestamptz[])
ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET
    priority = EXCLUDED.priority, customer_tier = EXCLUDED.customer_tier,
    status = EXCLUDED.status, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, policy_version = EXCLUDED.policy_version,
    breach_at = EXCLUDED.breach_at, warn_at = EXCLUDED.warn_at,
    active = EXCLUDED.active, urgent_at = EXCLUDED.urgent_at
"""

_UPSERT_CLOCKS = """
INSERT INTO sla_clocks (tenant_id, ticket_id, clock, target_s, calendar, mode, anchor_at,
                        anchor_elapsed, due_at, warn_at, fired_level, next_check_at)
SELECT %(tenant)s, * FROM unnest(
    %(ids)s::text[], %(clocks)s::text[], %(targets)s::float8[], %(calendars)s::text[],
    %(modes)s::text[], %(anchors)s::timestamptz[], %(elapsed)s::float8[],
    %(due)s::timestamptz[], %(warn)s::timestamptz[], %(fired)s::int[],
    %(next_check)s::timestamptz[])
ON CONFLICT (tenant_id, ticket_id, clock) DO UPDATE SET
    target_s = EXCLUDED.target_s, calendar = EXCLUDED.calendar, mode = EXCLUDED.mode,
    anchor_at = EXCLUDED.anchor_at, anchor_elapsed = EXCLUDED.anchor_elapsed,
    due_at = EXCLUDED.due_at, warn_at = EXCLUDED.warn_at, next_check_at = EXCLUDED.next_check_at
"""


def _event_columns(events: Sequence[Event]) -> dict[str, list[object]]:
    return {
        "ids": [e.ticket_id for e in events],
        "updated": [e.updated_at for e in events],
        "statuses": [e.status.value for e in events],
        "priorities": [e.priority for e in events],
        "tiers": [e.customer_tier for e in events],
        "created": [e.created_at for e in events],
    }


def _read_prior(
    cur: psycopg.Cursor[tuple[object, ...]], tenant: str, ids: list[str]
) -> dict[str, Prior]:
    args = {"tenant": tenant, "ids": ids}
    prior = {
        str(tid): Prior(updated_at, {})  # type: ignore[arg-type]
        for tid, updated_at in cur.execute(_LOCK_PRIOR, args)
    }
    for tid, clock, fired in cur.execute(_FIRED, args):
        prior[str(tid)].fired[ClockKind(str(clock))] = int(fired)  # type: ignore[call-overload]
    return prior


def _read_history(
    cur: psycopg.Cursor[tuple[object, ...]], tenant: str, ids: list[str]
) -> dict[str, list[Event]]:
    history: dict[str, list[Event]] = defaultdict(list)
    for tid, prio, tier, status, created, updated in cur.execute(
        _HISTORY, {"tenant": tenant, "ids": ids}
    ):
        history[str(tid)].append(
            Event(str(tid), str(prio), str(tier), Status(status), created, updated)  # type: ignore[arg-type]
        )
    return history


def write_ticket_slas(
    cur: psycopg.Cursor[tuple[object, ...]], tenant: str, slas: Sequence[TicketSla]
) -> None:
    """Upsert tickets and their clocks; fired levels are kept as the evaluator left them."""
    if not slas:
        return
    cur.execute(
        _UPSERT_TICKETS,
        {
            "tenant": tenant,
            "ids": [s.latest.ticket_id for s in slas],
            "priorities": [s.latest.priority for s in slas],
            "tiers": [s.latest.customer_tier for s in slas],
            "statuses": [s.latest.status.value for s in slas],
            "created": [s.latest.created_at for s in slas],
            "updated": [s.latest.updated_at for s in slas],
            "versions": [s.policy_version for s in slas],
            "breach": [s.breach_at for s in slas],
            "warn": [s.warn_at for s in slas],
            "active": [s.active for s in slas],
            "urgent": [s.urgent_at for s in slas],
        },
    )
    clocks = [(s.latest.ticket_id, c) for s in slas for c in s.clocks]
    cur.execute(
        _UPSERT_CLOCKS,
        {
            "tenant": tenant,
            "ids": [tid for tid, _ in clocks],
            "clocks": [c.kind.value for _, c in clocks],
            "targets": [float(c.target) for _, c in clocks],
            "calendars": [c.calendar for _, c in clocks],
            "modes": [c.mode.value for _, c in clocks],
            "anchors": [c.anchor_at for _, c in clocks],
            "elapsed": [float(c.anchor_elapsed) for _, c in clocks],
            "due": [c.due_at for _, c in clocks],
            "warn": [c.warn_at for _, c in clocks],
            "fired": [c.fired_level for _, c in clocks],
            "next_check": [c.next_check_at for _, c in clocks],
        },
    )


def ingest(
    conn: psycopg.Connection[tuple[object, ...]],
    tenant: str,
    events: Sequence[Event],
    targets_for: TargetsFor,
    rules: Rules,
) -> list[Outcome]:
    """Store a validated batch in one transaction; one outcome per event, in request order."""
    # Within a batch the first copy of a (ticket_id, updated_at) wins; later copies are duplicates.
    first_index: dict[tuple[str, datetime], int] = {}
    for i, e in enumerate(events):
        first_index.setdefault((e.ticket_id, e.updated_at), i)
    unique = [events[i] for i in sorted(first_index.values())]
    ids = sorted({e.ticket_id for e in unique})

    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK_TICKETS, {"tenant": tenant, "ids": ids})
        prior = _read_prior(cur, tenant, ids)
        inserted: set[tuple[str, datetime]] = {
            (str(tid), at)  # type: ignore[misc]
            for tid, at in cur.execute(_INSERT_EVENTS, {"tenant": tenant, **_event_columns(unique)})
        }
        changed = sorted({tid for tid, _ in inserted})
        history = _read_history(cur, tenant, changed) if changed else {}
        slas = []
        for tid in changed:
            fired = prior[tid].fired if tid in prior else {}
            latest = max(history[tid], key=lambda e: e.updated_at)
            slas.append(
                compute_ticket_sla(
                    history[tid], targets_for(latest.priority, latest.customer_tier), rules, fired
                )
            )
        write_ticket_slas(cur, tenant, slas)

    return _outcomes(events, first_index, inserted, prior)


def _outcomes(
    events: Sequence[Event],
    first_index: dict[tuple[str, datetime], int],
    inserted: set[tuple[str, datetime]],
    prior: dict[str, Prior],
) -> list[Outcome]:
    # New events of one ticket are applied in updated_at order: the earliest of a new ticket
    # creates it, and an event is out of order only against what was stored before the batch.
    earliest_new: dict[str, datetime] = {}
    for tid, at in inserted:
        if tid not in prior and (tid not in earliest_new or at < earliest_new[tid]):
            earliest_new[tid] = at
    outcomes = []
    for i, e in enumerate(events):
        key = (e.ticket_id, e.updated_at)
        if first_index[key] != i or key not in inserted:
            outcomes.append(Outcome.DUPLICATE)
        elif e.ticket_id not in prior:
            created = earliest_new[e.ticket_id] == e.updated_at
            outcomes.append(Outcome.CREATED if created else Outcome.UPDATED)
        elif e.updated_at < prior[e.ticket_id].updated_at:
            outcomes.append(Outcome.OUT_OF_ORDER)
        else:
            outcomes.append(Outcome.UPDATED)
    return outcomes
