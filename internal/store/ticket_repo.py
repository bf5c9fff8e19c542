"""Tickets, their events and clocks in the store: the statements the ingest and the recompute
(internal/usecase) run inside the transactions they own, and the lock both take first.

A fixed number of statements per batch whatever its size. Rows travel by binary COPY: those of
new tickets straight into their tables, those of stored tickets into session temp tables that
upserts then read. Nothing here decides what a ticket's clocks are: internal/sla does.
"""

from __future__ import annotations

import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from internal.sla.model import Activity, Mode, Status
from internal.sla.policy import FieldRow
from internal.sla.report import Contribution, contribution
from internal.sla.ticket_sla import Event, TicketSla
from internal.store import deadline_repo, report_rollups, state_buckets
from internal.store.event_details import NO_DETAILS_ROW, EventDetails


@dataclass(frozen=True)
class Prior:
    """What a rewrite needs of a stored ticket (read with its row locked)."""

    updated_at: datetime
    fired: dict[tuple[str, int], int]  # (metric, cycle) -> the level that cycle has fired
    bucket: state_buckets.BucketKey  # where the dashboard counts it now
    # Where GetSlaReport's rollups count its clocks now: (metric, contribution) of each cycle
    # that is decided.
    report: list[tuple[str, Contribution]]


Cursor = psycopg.Cursor[tuple[Any, ...]]

# Rows of stored tickets travel by binary COPY into session temp tables (cleared at commit), which
# the upserts then read: a fixed number of round trips per batch, and no per-row parameter
# encoding in Python.
_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS in_events (
    ticket_id text, updated_at timestamptz, status text, priority text, customer_tier text,
    created_at timestamptz, activity text, group_name text, assignee text, tags text[],
    attributes jsonb) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS in_tickets (
    ticket_id text, priority text, customer_tier text, status text, created_at timestamptz,
    updated_at timestamptz, policy_version text, breach_at timestamptz, warn_at timestamptz,
    active boolean, urgent_at timestamptz, policy text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS in_clocks (
    ticket_id text, clock text, cycle int, target_s float8, calendar text, mode text,
    anchor_at timestamptz, anchor_elapsed float8, due_at timestamptz, warn_at timestamptz,
    fired_level int, next_check_at timestamptz) ON COMMIT DELETE ROWS;
"""
_EVENT_TYPES = ["text", "timestamptz", "text", "text", "text", "timestamptz"]
# The optional columns (EventDetails.row), copied only in a batch where some event carries one:
# a batch of plain field updates costs what it cost before they existed.
_DETAIL_COLUMNS = "activity, group_name, assignee, tags, attributes"
_DETAIL_TYPES = ["text", "text", "text", "text[]", "jsonb"]
_EVENT_COLUMNS = "ticket_id, updated_at, status, priority, customer_tier, created_at"
_TICKET_TYPES = [
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "text",
    "timestamptz",
    "timestamptz",
    "bool",
    "timestamptz",
    "text",
]
_CLOCK_TYPES = [
    "text",
    "text",
    "int4",
    "float8",
    "text",
    "text",
    "timestamptz",
    "float8",
    "timestamptz",
    "timestamptz",
    "int4",
    "timestamptz",
]
_MODES = {mode.value: mode for mode in Mode}
_prepared: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()

# Sets of ticket ids travel as one newline-separated text (ids are printable, so never hold a
# newline): psycopg encodes an array parameter in Python element by element, about 1.3 us per id.
_IDS = "string_to_array(%(ids)s, E'\\n')"


def _ids(ids: Iterable[str]) -> str:
    return "\n".join(ids)


# Advisory locks per ticket, in key order, so that two writers of overlapping tickets (ingest,
# recompute) wait for each other and never deadlock.
_LOCK_TICKETS = f"""
SELECT count(pg_advisory_xact_lock(k)) FROM (
    SELECT DISTINCT hashtextextended(%(tenant)s || chr(31) || id, 0) AS k
    FROM unnest({_IDS}) AS id ORDER BY k
) AS keys
"""

# Row locks on the tickets make a running evaluation (which locks them too, with SKIP LOCKED)
# finish first; the fired levels are then read in a statement of their own, so they are fresh.
# One primary-key lookup per id, in id order, whatever the planner thinks of the table: a plain
# `ticket_id = ANY(...)` on a table not yet analyzed was planned as a scan of the urgency index
# (9 ms for 500 ids at 25,000 tickets). A sub-select with FOR UPDATE is never flattened.
_LOCK_PRIOR = f"""
SELECT t.ticket_id, t.updated_at, t.priority, t.customer_tier, t.status, t.active, t.warn_at,
       t.breach_at
FROM (SELECT DISTINCT id FROM unnest({_IDS}) AS id ORDER BY 1) AS i
CROSS JOIN LATERAL (
    SELECT * FROM tickets WHERE tenant_id = %(tenant)s AND ticket_id = i.id FOR UPDATE
) AS t
"""

_FIRED = f"""
SELECT ticket_id, clock, cycle, fired_level, mode, anchor_at, anchor_elapsed, due_at
FROM sla_clocks
WHERE tenant_id = %(tenant)s AND ticket_id = ANY({_IDS})
"""

# Events of tickets that already exist: some may be stored already (duplicates, which change
# nothing: the first copy's fields, activity and details stay).
_INSERT_EVENTS = f"""
INSERT INTO ticket_events (tenant_id, {_EVENT_COLUMNS}, {_DETAIL_COLUMNS})
SELECT %(tenant)s, {_EVENT_COLUMNS}, {_DETAIL_COLUMNS}
FROM in_events
ON CONFLICT DO NOTHING
RETURNING ticket_id, updated_at
"""
_COPY_IN_EVENTS = f"COPY in_events ({_EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_IN_EVENTS_DETAILED = (
    f"COPY in_events ({_EVENT_COLUMNS}, {_DETAIL_COLUMNS}) FROM STDIN (FORMAT BINARY)"
)
# Events of new tickets: nothing of theirs is stored, and the batch holds each event once.
_COPY_NEW_EVENTS = f"COPY ticket_events ({_EVENT_COLUMNS}, tenant_id) FROM STDIN (FORMAT BINARY)"
_COPY_NEW_EVENTS_DETAILED = (
    f"COPY ticket_events ({_EVENT_COLUMNS}, {_DETAIL_COLUMNS}, tenant_id)"
    " FROM STDIN (FORMAT BINARY)"
)

# Stored history of tickets that existed before the batch (new tickets' history is the batch).
# An event that left the status unchanged (NULL) has the status of the ticket's latest event
# before it that names one, or open (every ticket is open at created_at); the sub-select runs
# only for those events, as one primary-key range read.
_HISTORY = f"""
SELECT e.ticket_id, e.priority, e.customer_tier,
       coalesce(e.status, (
           SELECT p.status FROM ticket_events p
           WHERE p.tenant_id = e.tenant_id AND p.ticket_id = e.ticket_id
             AND p.updated_at < e.updated_at AND p.status IS NOT NULL
           ORDER BY p.updated_at DESC LIMIT 1
       ), 'open'),
       e.created_at, e.updated_at, e.activity
FROM ticket_events e WHERE e.tenant_id = %(tenant)s AND e.ticket_id = ANY({_IDS})
"""

# The group, assignee, tags and attributes of the events that carry any, in event-time order:
# what policies match on besides priority and tier (read only when a policy does).
_FIELDS = f"""
SELECT ticket_id, group_name, assignee, tags, attributes FROM ticket_events
WHERE tenant_id = %(tenant)s AND ticket_id = ANY({_IDS})
  AND (group_name IS NOT NULL OR assignee IS NOT NULL OR tags IS NOT NULL
       OR attributes IS NOT NULL)
ORDER BY ticket_id, updated_at
"""

# A recomputation without a call behind it (correlation_id NULL) keeps the ticket's last one.
_UPSERT_TICKETS = """
INSERT INTO tickets (tenant_id, ticket_id, priority, customer_tier, status, created_at,
                     updated_at, policy_version, breach_at, warn_at, active, urgent_at, policy,
                     correlation_id)
SELECT %(tenant)s, *, %(correlation_id)s FROM in_tickets
ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET
    priority = EXCLUDED.priority, customer_tier = EXCLUDED.customer_tier,
    status = EXCLUDED.status, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, policy_version = EXCLUDED.policy_version,
    breach_at = EXCLUDED.breach_at, warn_at = EXCLUDED.warn_at,
    active = EXCLUDED.active, urgent_at = EXCLUDED.urgent_at, policy = EXCLUDED.policy,
    correlation_id = coalesce(EXCLUDED.correlation_id, tickets.correlation_id)
"""

_COPY_NEW_TICKETS = (
    "COPY tickets (ticket_id, priority, customer_tier, status, created_at, updated_at,"
    " policy_version, breach_at, warn_at, active, urgent_at, policy, tenant_id, correlation_id)"
    " FROM STDIN (FORMAT BINARY)"
)
_COPY_NEW_CLOCKS = (
    "COPY sla_clocks (ticket_id, clock, cycle, target_s, calendar, mode, anchor_at, anchor_elapsed,"
    " due_at, warn_at, fired_level, next_check_at, tenant_id) FROM STDIN (FORMAT BINARY)"
)

# A stored cycle that an event leaves as it was (most of them: a reply stops one cycle, the
# others run on or stopped long ago) is not rewritten: no new row version, no new index entries.
_UPSERT_CLOCKS = """
INSERT INTO sla_clocks AS c (tenant_id, ticket_id, clock, cycle, target_s, calendar, mode,
                             anchor_at, anchor_elapsed, due_at, warn_at, fired_level,
                             next_check_at)
SELECT %(tenant)s, * FROM in_clocks
ON CONFLICT (tenant_id, ticket_id, clock, cycle) DO UPDATE SET
    target_s = EXCLUDED.target_s, calendar = EXCLUDED.calendar, mode = EXCLUDED.mode,
    anchor_at = EXCLUDED.anchor_at, anchor_elapsed = EXCLUDED.anchor_elapsed,
    due_at = EXCLUDED.due_at, warn_at = EXCLUDED.warn_at, next_check_at = EXCLUDED.next_check_at
WHERE (c.target_s, c.calendar, c.mode, c.anchor_at, c.anchor_elapsed, c.due_at, c.warn_at,
       c.next_check_at)
      IS DISTINCT FROM
      (EXCLUDED.target_s, EXCLUDED.calendar, EXCLUDED.mode, EXCLUDED.anchor_at,
       EXCLUDED.anchor_elapsed, EXCLUDED.due_at, EXCLUDED.warn_at, EXCLUDED.next_check_at)
"""

# The stored cycles of rewritten tickets that their history no longer gives: a late event may
# merge two waits into one (fewer cycles), and a priority change may leave a metric without a
# target. Their alerts stay, as the record of what was raised.
_DELETE_STALE_CLOCKS = f"""
DELETE FROM sla_clocks c
WHERE c.tenant_id = %(tenant)s AND c.ticket_id = ANY({_IDS})
  AND NOT EXISTS (SELECT 1 FROM in_clocks i
                  WHERE i.ticket_id = c.ticket_id AND i.clock = c.clock AND i.cycle = c.cycle)
"""


def prepare_session(conn: psycopg.Connection[Any]) -> None:
    """Create this session's temp tables once."""
    if conn not in _prepared:
        with conn.transaction():
            conn.execute(_TEMP_TABLES)
            conn.execute(state_buckets.TEMP_TABLE)
            conn.execute(report_rollups.TEMP_TABLE)
        _prepared.add(conn)


def _copy(cur: Cursor, target: str, types: list[str], rows: Iterable[Sequence[Any]]) -> None:
    """Binary COPY of `rows` into a temp table's name, or with a full COPY statement."""
    sql = target if target.startswith("COPY ") else f"COPY {target} FROM STDIN (FORMAT BINARY)"
    with cur.copy(sql) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def lock_tickets(cur: Cursor, tenant: str, ids: Iterable[str]) -> None:
    """Take the per-ticket advisory locks of `ids` until the transaction ends: every writer of
    tickets takes them first."""
    cur.execute(_LOCK_TICKETS, {"tenant": tenant, "ids": _ids(ids)})


def read_prior(cur: Cursor, tenant: str, ids: Iterable[str]) -> dict[str, Prior]:
    """The stored tickets among `ids`, their rows locked until the transaction ends."""
    prior = {
        str(tid): Prior(at, {}, state_buckets.bucket_key(*key), [])
        for tid, at, *key in cur.execute(_LOCK_PRIOR, {"tenant": tenant, "ids": _ids(ids)})
    }
    if prior:  # a batch of new tickets has no fired levels to read
        for tid, clock, cycle, fired, mode, anchor_at, anchor_elapsed, due_at in cur.execute(
            _FIRED, {"tenant": tenant, "ids": _ids(prior)}
        ):
            p = prior[str(tid)]
            p.fired[(str(clock), int(cycle))] = int(fired)
            counted = contribution(_MODES[mode], anchor_at, float(anchor_elapsed), due_at)
            if counted is not None:
                p.report.append((str(clock), counted))
    return prior


# Rows carry the StrEnum members (status, mode) as they are: each is a str whose text is
# its value, which COPY writes. Reading `.value` goes through a Python descriptor on Python 3.11.


def _event_row(e: Event) -> tuple[Any, ...]:
    return (e.ticket_id, e.updated_at, e.status, e.priority, e.customer_tier, e.created_at)


def read_history(cur: Cursor, tenant: str, ids: list[str]) -> dict[str, list[Event]]:
    """The stored events of the tickets `ids`, by ticket (in no particular order)."""
    history: dict[str, list[Event]] = defaultdict(list)
    for tid, prio, tier, status, created, updated, activity in cur.execute(
        _HISTORY, {"tenant": tenant, "ids": _ids(ids)}
    ):
        history[tid].append(
            Event(
                tid,
                prio,
                tier,
                Status(status),
                created,
                updated,
                Activity.NONE if activity is None else Activity(activity),
            )
        )
    return history


def read_fields(cur: Cursor, tenant: str, ids: list[str]) -> dict[str, list[FieldRow]]:
    """The stored group, assignee, tags and attributes of the tickets `ids`, by ticket: one row
    per event that carries any, in event-time order (policy.facts_of reads them)."""
    out: dict[str, list[FieldRow]] = defaultdict(list)
    for tid, group, assignee, tags, attributes in cur.execute(
        _FIELDS, {"tenant": tenant, "ids": _ids(ids)}
    ):
        out[tid].append((group, assignee, tags, attributes))
    return out


def _ticket_row(s: TicketSla) -> tuple[Any, ...]:
    e = s.latest
    return (
        e.ticket_id,
        e.priority,
        e.customer_tier,
        e.status,
        e.created_at,
        e.updated_at,
        s.policy_version,
        s.breach_at,
        s.warn_at,
        s.active,
        s.urgent_at,
        s.policy,
    )


def _clock_rows(slas: Sequence[TicketSla]) -> Iterator[tuple[Any, ...]]:
    for s in slas:
        for c in s.clocks:
            yield (
                s.latest.ticket_id,
                c.metric,
                c.cycle,
                float(c.target),
                c.calendar,
                c.mode,
                c.anchor_at,
                float(c.anchor_elapsed),
                c.due_at,
                c.warn_at,
                c.fired_level,
                c.next_check_at,
            )


def write_ticket_slas(
    cur: Cursor,
    tenant: str,
    slas: Sequence[TicketSla],
    prior: Mapping[str, Prior],
    correlation_id: str | None = None,
) -> None:
    """Write tickets and their clocks (every cycle the history gives; stored cycles it no longer
    gives are deleted); fired levels are kept as the evaluator left them.
    `prior` holds the stored tickets among them, read by `read_prior` in this transaction
    (which locked them); the others are new. `correlation_id` is recorded on the tickets (None
    keeps what they had). The session must have been prepared with `prepare_session`."""
    if not slas:
        return
    new = [s for s in slas if s.latest.ticket_id not in prior]
    stored = [s for s in slas if s.latest.ticket_id in prior]
    if new:
        # Straight into the tables: no row of these tickets exists, and the per-ticket advisory
        # locks make this transaction the only one that may create them. COPY is the cheapest
        # way in by far (no staging, no conflict handling).
        _copy(
            cur,
            _COPY_NEW_TICKETS,
            [*_TICKET_TYPES, "text", "text"],
            ((*_ticket_row(s), tenant, correlation_id) for s in new),
        )
        _copy(
            cur,
            _COPY_NEW_CLOCKS,
            [*_CLOCK_TYPES, "text"],
            ((*row, tenant) for row in _clock_rows(new)),
        )
    if stored:
        _copy(cur, "in_tickets", _TICKET_TYPES, (_ticket_row(s) for s in stored))
        _copy(cur, "in_clocks", _CLOCK_TYPES, _clock_rows(stored))
        cur.execute(_UPSERT_CLOCKS, {"tenant": tenant})
        cur.execute(
            _DELETE_STALE_CLOCKS,
            {"tenant": tenant, "ids": _ids(s.latest.ticket_id for s in stored)},
        )
        cur.execute(_UPSERT_TICKETS, {"tenant": tenant, "correlation_id": correlation_id})
    moves: Counter[state_buckets.BucketKey] = Counter()
    report: Counter[report_rollups.RollupKey] = Counter()
    for s in slas:
        e = s.latest
        for c in s.clocks:
            counted = contribution(c.mode, c.anchor_at, c.anchor_elapsed, c.due_at)
            if counted is not None:
                report[(c.metric, e.priority, e.customer_tier, counted)] += 1
        was = prior.get(e.ticket_id)
        if was is not None:
            for metric, counted in was.report:
                report[(metric, was.bucket[0], was.bucket[1], counted)] -= 1
        moves[
            state_buckets.bucket_key(
                e.priority, e.customer_tier, e.status, s.active, s.warn_at, s.breach_at
            )
        ] += 1
        if e.ticket_id in prior:
            moves[prior[e.ticket_id].bucket] -= 1
    # Last: the bucket and rollup rows are shared by every concurrent writer, so their locks
    # are held only until commit (each statement takes its rows in key order: no deadlock).
    report_rollups.record_changes(cur, tenant, report)
    state_buckets.record_changes(cur, tenant, moves)
    # The scheduler sleeps until the earliest check it knows of: wake it if this is earlier.
    checks = [c.next_check_at for s in slas for c in s.clocks if c.next_check_at is not None]
    deadline_repo.announce(cur, min(checks, default=None))


def insert_events(
    cur: Cursor,
    tenant: str,
    events: Sequence[Event],
    prior: Mapping[str, Prior],
    details: Mapping[tuple[str, datetime], EventDetails] | None = None,
) -> set[tuple[str, datetime]]:
    """Append `events` (unique by ticket and time) to the history; the (ticket_id, updated_at)
    of those that were not stored yet. `prior` holds the stored tickets among them (read_prior);
    the history of the others is empty, and the batch holds each of their events once.
    `details` holds the optional fields of the events that carry any, by (ticket_id,
    updated_at); an event whose status is None left it unchanged (stored as NULL)."""
    fresh = [e for e in events if e.ticket_id not in prior]
    known_events = [e for e in events if e.ticket_id in prior]
    inserted: set[tuple[str, datetime]] = {(e.ticket_id, e.updated_at) for e in fresh}
    if details:
        new_sql, in_sql, types = (
            _COPY_NEW_EVENTS_DETAILED,
            _COPY_IN_EVENTS_DETAILED,
            [*_EVENT_TYPES, *_DETAIL_TYPES],
        )

        def row(e: Event) -> tuple[Any, ...]:
            d = details.get((e.ticket_id, e.updated_at))
            return (*_event_row(e), *(NO_DETAILS_ROW if d is None else d.row()))
    else:
        new_sql, in_sql, types, row = _COPY_NEW_EVENTS, _COPY_IN_EVENTS, _EVENT_TYPES, _event_row
    if fresh:
        _copy(cur, new_sql, [*types, "text"], ((*row(e), tenant) for e in fresh))
    if known_events:
        _copy(cur, in_sql, types, (row(e) for e in known_events))
        inserted.update((tid, at) for tid, at in cur.execute(_INSERT_EVENTS, {"tenant": tenant}))
    return inserted
