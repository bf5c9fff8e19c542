"""The ingest transaction: a validated batch of events in, one outcome per event out.

All in one transaction, a batch is stored whole or not at all: lock the tickets, append the new
events, recompute the clocks of the tickets that changed from their full history (internal/sla),
write them. The statements are internal/store/ticket_repo's.

An event with an activity may leave the status unchanged (its status is None): it takes the
status of the ticket's event before it in event time (open when there is none), whenever that
event arrived, so a late event before it changes it too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg

from internal.sla.model import Status
from internal.sla.policy import Facts, FieldRow, Rules, Targets, facts_of
from internal.sla.ticket_sla import Event, compute_ticket_sla, latest_event
from internal.store import ticket_repo
from internal.store.event_details import Activity as Activity
from internal.store.event_details import EventDetails as EventDetails
from internal.store.ticket_repo import Prior


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


TargetsFor = Callable[[str, str], Targets]


@dataclass(frozen=True)
class Chooser:
    """How the ingest picks a ticket's targets when policies match on more than priority and
    tier: `choose` answers the first matching policy's targets for a ticket's Facts (None: no
    policy matches); `uses_fields` says whether the ticket's group, assignee, tags and
    attributes must be read for it."""

    choose: Callable[[Facts], Targets | None]
    uses_fields: bool


class NoPolicyMatches(Exception):
    """No policy matches a ticket of the batch (its current fields as of the batch): the batch
    is refused whole. `ticket_id` names it; `facts` are what was matched."""

    def __init__(self, ticket_id: str, facts: Facts) -> None:
        super().__init__(ticket_id)
        self.ticket_id = ticket_id
        self.facts = facts


def describe(facts: Facts) -> str:
    """`no policy matches (priority='high', ...)`: the fields matched, those given."""
    shown = [f"priority={facts.priority!r}", f"customer_tier={facts.customer_tier!r}"]
    if facts.group:
        shown.append(f"group={facts.group!r}")
    if facts.assignee:
        shown.append(f"assignee={facts.assignee!r}")
    if facts.tags:
        shown.append(f"tags={sorted(facts.tags)!r}")
    if facts.attributes:
        shown.append(f"attributes={dict(sorted(facts.attributes.items()))!r}")
    return f"no policy matches ({', '.join(shown)})"


def ingest(
    conn: psycopg.Connection[Any],
    tenant: str,
    events: Sequence[Event],
    targets_for: TargetsFor,
    rules: Rules,
    correlation_id: str | None = None,
    details: Mapping[int, EventDetails] | None = None,
    chooser: Chooser | None = None,
) -> list[Outcome]:
    """Store a validated batch in one transaction; one outcome per event, in request order.
    The tickets it changes remember `correlation_id`, for the alerts they may raise later.
    `details` holds the activity and optional fields of the events that carry any, by index
    into `events`. With `chooser`, it picks each ticket's targets instead of `targets_for`,
    and raises NoPolicyMatches (nothing stored) for a ticket no policy matches."""
    # Within a batch the first copy of a (ticket_id, updated_at) wins; later copies are duplicates.
    first_index: dict[tuple[str, datetime], int] = {}
    for i, e in enumerate(events):
        first_index.setdefault((e.ticket_id, e.updated_at), i)
    unique = [events[i] for i in sorted(first_index.values())]
    unique_details = (
        {key: details[i] for key, i in first_index.items() if i in details} if details else None
    )

    ticket_repo.prepare_session(conn)
    with conn.transaction(), conn.cursor(binary=True) as cur:
        ids = {e.ticket_id for e in unique}  # the statements order them for locking
        ticket_repo.lock_tickets(cur, tenant, ids)
        prior = ticket_repo.read_prior(cur, tenant, ids)
        inserted = ticket_repo.insert_events(cur, tenant, unique, prior, unique_details)
        changed = sorted({tid for tid, _ in inserted})
        known = [tid for tid in changed if tid in prior]
        history = ticket_repo.read_history(cur, tenant, known) if known else defaultdict(list)
        unchanged: set[str] = set()
        for e in unique:
            if e.ticket_id not in prior:
                history[e.ticket_id].append(e)
                if e.status is None:
                    unchanged.add(e.ticket_id)
        # Stored tickets' history comes back with every status resolved (read_history); a new
        # ticket's is the batch, resolved here by the same rule.
        for tid in unchanged:
            history[tid] = _with_statuses(history[tid])
        fields: Mapping[str, list[FieldRow]] = {}
        if chooser is not None and chooser.uses_fields:
            fields = _fields(cur, tenant, known, unique, prior, unique_details)
        slas = []
        for tid in changed:
            fired = prior[tid].fired if tid in prior else {}
            latest = latest_event(history[tid])
            if chooser is None:
                targets = targets_for(latest.priority, latest.customer_tier)
            else:
                facts = facts_of(latest.priority, latest.customer_tier, fields.get(tid, ()))
                chosen = chooser.choose(facts)
                if chosen is None:
                    raise NoPolicyMatches(tid, facts)  # rolls the transaction back
                targets = chosen
            slas.append(compute_ticket_sla(history[tid], targets, rules, fired))
        ticket_repo.write_ticket_slas(cur, tenant, slas, prior, correlation_id)

    return _outcomes(events, first_index, inserted, prior)


def _fields(
    cur: psycopg.Cursor[Any],
    tenant: str,
    known: list[str],
    unique: Sequence[Event],
    prior: Mapping[str, Prior],
    details: Mapping[tuple[str, datetime], EventDetails] | None,
) -> dict[str, list[FieldRow]]:
    """The four fields of the changed tickets' events, by ticket in event-time order: stored
    tickets' from the store (this batch's events are stored by now), new tickets' from the
    batch."""
    out: dict[str, list[FieldRow]] = dict(ticket_repo.read_fields(cur, tenant, known))
    if details:
        for e in sorted(unique, key=lambda e: e.updated_at):
            d = details.get((e.ticket_id, e.updated_at))
            if d is not None and e.ticket_id not in prior:
                out.setdefault(e.ticket_id, []).append((d.group, d.assignee, d.tags, d.attributes))
    return out


def _with_statuses(events: list[Event]) -> list[Event]:
    """`events` in event-time order, each that left the status unchanged (None) given the status
    of the one before it (open for the first: a ticket is open at created_at)."""
    out = []
    status = Status.OPEN
    for e in sorted(events, key=lambda e: e.updated_at):
        if e.status is None:
            e = Event(
                e.ticket_id,
                e.priority,
                e.customer_tier,
                status,
                e.created_at,
                e.updated_at,
                e.activity,
            )
        status = e.status
        out.append(e)
    return out


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
