"""Scale benchmark (issue 17): ten million tickets, one million of them open.

Opt-in (ten minutes or more, 12 GiB of disk): `make bench BENCH_ARGS=scale`, or
`python -m bench.scale --tickets N --open M`. A baseline size runs first (`--baseline-tickets`,
default 100,000 with 10,000 open; 0 for none), then the main one, each in a database of its own;
every figure of both is measured by this same code, so their comparison, printed at the end, is
like for like.

1. Load, by set-based SQL in chunks of 250,000 tickets on two connections, the rows ingest writes
   for such tickets: the ticket, its events (one to four), a clock row per metric (response,
   resolution; one cycle each), the alerts and notification rows the evaluator would have written
   for the levels the clocks have reached, then the dashboard's state buckets computed from the
   loaded tickets (migration 0005's backfill) and folded as the worker's fold tick folds them.
   Keys and indexes are dropped for the load and built after it (as a restore does); then
   VACUUM ANALYZE. Most tickets are resolved or closed with stopped clocks (one in 20 answered
   late, 3 in 100 resolved late); the open ones, the most recent, arrived at a steady rate and
   have running or paused clocks whose due times spread over hours to days, some breached, some
   warning. A sample of the loaded tickets is then recomputed from their events by internal/sla
   and compared with the loaded rows, and the dashboard's counts with a count over every ticket:
   the benchmark stops if they differ.
2. Through a real server (2 processes, SLAWATCH_SERVER_PROCESSES=2): GetTicket on random closed
   and open tickets, GetDashboard's first page, deep pages (next_page_token followed 20 pages),
   the dashboard filtered to WARNING + priority high; then ingest at that size by the ingest
   benchmark's client (bench/ingest.ingest_all: batches of 500, 4 concurrent callers): 100,000
   new tickets, then a status change of 100,000 existing open tickets (of every open ticket, each
   once, when there are fewer).
3. Disk per ticket: each table's total size (heap, indexes, TOAST) over the tickets.

The SLA config is sla_config.yaml's ladder and channels with every policy on the 24x7 calendar
(the load computes due times in SQL) and resolution targets of hours to days.
"""

from __future__ import annotations

import argparse
import gc
import queue
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg

from bench.common import (
    ServerProcess,
    cpu_by_process,
    cpu_seconds,
    machine_ticks,
    peak_rss_mb,
    percentile,
    scratch_database,
    server_process,
    summary_ms,
)
from bench.ingest import NEXT_STATUSES, ingest_all, make_events, steal_share, ts
from internal.config.sla_config import SlaConfig, load_config
from internal.sla.model import Activity, State, Status
from internal.sla.ticket_sla import FAR_FUTURE, Event, compute_ticket_sla
from internal.store import query_repo, state_buckets
from internal.store.migrate import migrate
from internal.store.recompute_repo import DEFAULT_SCOPE
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

CONFIG = """\
escalation:
  - {at_percent: 85,  level: 1, kind: warning, notify: [team]}
  - {at_percent: 95,  level: 2, kind: warning, notify: [team, lead]}
  - {at_percent: 100, level: 3, kind: breach,  notify: [lead]}
  - {at_percent: 150, level: 4, kind: breach,  notify: [manager]}
pause_statuses: [on_hold]
channels:
  team: {slack_webhook_env: SLACK_WEBHOOK_URL}
  lead: {slack_webhook_env: SLACK_WEBHOOK_URL_LEAD}
  manager: {slack_webhook_env: SLACK_WEBHOOK_URL_MANAGER}
policies:
  urgent:
    gold:   {response: 15m, resolution: 4h}
    silver: {response: 30m, resolution: 8h}
  high:
    gold:   {response: 30m, resolution: 8h}
    silver: {response: 1h,  resolution: 1d}
  low:
    gold:   {response: 4h,  resolution: 3d}
    silver: {response: 8h,  resolution: 5d}
"""
PAIRS = [("high", "gold"), ("high", "silver"), ("low", "gold"), ("low", "silver")]
CHUNK = 250_000

# Per chunk, one row per ticket with the moments of its history (seconds after created_at):
# answered after `a` (the first status other than open), resolved after `s`. Uniform numbers
# come from hashes of the ticket number, so that every statement sees the same ticket.
# Closed tickets (g < closed) are the older ones, created in ticket order over a year ending
# ten days ago. Open ones (g >= closed) arrived at a steady rate over the last 1.1 resolution
# targets (so 9 in 100 are past it): those not answered yet are open with both clocks running,
# the others in progress or (15%) on hold, whose resolution clock is paused.
_SETUP = """
CREATE TEMP TABLE targets (i int, priority text, customer_tier text, r float8, t float8);
CREATE TEMP TABLE steps (pct float8, level int, kind text, notify text[]);
CREATE TEMP TABLE plan (
    g bigint, ticket_id text, priority text, customer_tier text, kind text, c timestamptz,
    r float8, t float8, a float8, s float8) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE plan_clocks (
    ticket_id text, priority text, customer_tier text, c timestamptz, clock text, target float8,
    mode text, anchor_at timestamptz, elapsed float8, due_at timestamptz, warn_at timestamptz,
    fired int, next_check_at timestamptz) ON COMMIT DELETE ROWS;
"""

_PLAN = """
INSERT INTO plan
SELECT g, 'S' || lpad(g::text, 9, '0'), p.priority, p.customer_tier, k.kind,
       %(now)s - k.age * interval '1 second', p.r, p.t,
       CASE WHEN k.kind <> 'open' THEN k.a END, k.s
FROM generate_series(%(lo)s, %(hi)s - 1) AS g
JOIN targets p ON p.i = g %% 4
CROSS JOIN LATERAL (
    SELECT (hashint8extended(g, 1) & 16777215) / 16777216.0 AS u1,
           (hashint8extended(g, 2) & 16777215) / 16777216.0 AS u2,
           (hashint8extended(g, 3) & 16777215) / 16777216.0 AS u3,
           (hashint8extended(g, 4) & 16777215) / 16777216.0 AS u4,
           (hashint8extended(g, 5) & 16777215) / 16777216.0 AS u5,
           (hashint8extended(g, 6) & 16777215) / 16777216.0 AS u6
) AS u
CROSS JOIN LATERAL (
    SELECT CASE WHEN u3 < 0.05 THEN p.r * (1.0 + 0.6 * u1)  -- one in 20 answered late
                ELSE p.r * (0.05 + 0.75 * u1) END AS a,
           CASE WHEN g < %(closed)s
                THEN 10 * 86400 + (%(closed)s - g)::float8 / %(closed)s * 365 * 86400
                ELSE p.t * 1.1 * u6 END AS age  -- seconds from creation to now
) AS x
CROSS JOIN LATERAL (
    SELECT x.a, x.age,
           CASE WHEN g < %(closed)s THEN CASE WHEN u5 < 0.3 THEN 'closed' ELSE 'resolved' END
                WHEN x.age < x.a THEN 'open'  -- not answered yet
                WHEN u5 < 0.15 THEN 'on_hold'
                ELSE 'in_progress' END AS kind,
           CASE WHEN g < %(closed)s THEN
                    x.a + CASE WHEN u4 < 0.03 THEN p.t * (1.0 + 0.3 * u2)  -- 3 in 100 resolved late
                               ELSE p.t * (0.05 + 0.6 * u2) END
                END AS s
) AS k
"""

_EVENTS = """
INSERT INTO ticket_events (tenant_id, ticket_id, updated_at, status, priority, customer_tier,
                           created_at, received_at)
SELECT 'default', p.ticket_id, e.at, e.status, p.priority, p.customer_tier, p.c, e.at
FROM plan p
CROSS JOIN LATERAL (VALUES
    (p.c, 'open'),
    (p.c + p.a * interval '1 second', CASE WHEN p.kind = 'on_hold' THEN 'on_hold'
                                           ELSE 'in_progress' END),
    (p.c + p.s * interval '1 second', 'resolved'),
    (p.c + (p.s + 3600) * interval '1 second', 'closed')
) AS e (at, status)
WHERE e.at IS NOT NULL AND (e.status <> 'closed' OR p.kind = 'closed')
"""

# A clock's mode, anchor and elapsed seconds (stopped or paused at `a` or `s`), then its due and
# first-warning instants where reached, the highest ladder level reached by now (which the
# evaluator has fired) and the next step's crossing for a running clock.
_CLOCKS = """
INSERT INTO plan_clocks
SELECT m.ticket_id, m.priority, m.customer_tier, m.c, m.clock, m.target, m.mode, m.anchor_at,
       m.elapsed,
       CASE WHEN m.mode = 'running' OR m.elapsed >= m.target
            THEN m.c + m.target * interval '1 second' END,
       CASE WHEN m.mode = 'running' OR m.elapsed >= m.target * %(warn)s
            THEN m.c + m.target * %(warn)s * interval '1 second' END,
       f.fired,
       CASE WHEN m.mode = 'running' THEN
           (SELECT m.c + m.target * min(pct) / 100 * interval '1 second'
            FROM steps WHERE level > f.fired) END
FROM (
    SELECT p.ticket_id, p.priority, p.customer_tier, p.c, x.clock, x.target, x.mode,
           CASE WHEN x.mode = 'running' THEN p.c ELSE p.c + x.upto * interval '1 second' END
               AS anchor_at,
           CASE WHEN x.mode = 'running' THEN 0 ELSE x.upto END AS elapsed,
           CASE WHEN x.mode = 'running' THEN extract(epoch FROM %(now)s - p.c)::float8
                ELSE x.upto END AS reached
    FROM plan p
    CROSS JOIN LATERAL (VALUES
        ('response', p.r, CASE WHEN p.kind = 'open' THEN 'running' ELSE 'stopped' END, p.a),
        ('resolution', p.t,
         CASE WHEN p.kind IN ('resolved', 'closed') THEN 'stopped'
              WHEN p.kind = 'on_hold' THEN 'paused' ELSE 'running' END,
         coalesce(p.s, p.a))
    ) AS x (clock, target, mode, upto)
) AS m
CROSS JOIN LATERAL (
    SELECT coalesce(max(level), 0) AS fired FROM steps WHERE m.target * pct / 100 <= m.reached
) AS f
"""

_WRITE = """
INSERT INTO sla_clocks (tenant_id, ticket_id, clock, cycle, target_s, calendar, mode, anchor_at,
                        anchor_elapsed, due_at, warn_at, fired_level, next_check_at)
SELECT 'default', ticket_id, clock, 1, target, '24x7', mode, anchor_at, elapsed, due_at, warn_at,
       fired, next_check_at
FROM plan_clocks;
---
INSERT INTO tickets (tenant_id, ticket_id, priority, customer_tier, status, created_at,
                     updated_at, policy_version, breach_at, warn_at, active, urgent_at)
SELECT 'default', p.ticket_id, p.priority, p.customer_tier,
       p.kind, p.c,
       p.c + CASE WHEN p.kind = 'closed' THEN p.s + 3600
                  ELSE coalesce(p.s, p.a, 0) END * interval '1 second',
       %(version)s, k.breach_at, k.warn_at, k.active, k.urgent_at
FROM plan p
JOIN (
    SELECT ticket_id, min(due_at) AS breach_at,
           min(warn_at) FILTER (WHERE mode <> 'stopped') AS warn_at,
           bool_or(mode <> 'stopped') AS active,
           coalesce(min(due_at) FILTER (WHERE mode = 'running'), %(far)s) AS urgent_at
    FROM plan_clocks GROUP BY ticket_id
) AS k USING (ticket_id)
ORDER BY p.ticket_id;
---
WITH a AS (
    INSERT INTO alerts (tenant_id, ticket_id, clock, cycle, kind, escalation_level, due_at,
                        created_at, priority, customer_tier, policy_version, clock_mode,
                        clock_mode_since)
    SELECT 'default', c.ticket_id, c.clock, 1, s.kind, s.level, c.due_at,
           c.c + (c.target * s.pct / 100 + 1) * interval '1 second', c.priority,
           c.customer_tier, %(version)s, 'running', c.c
    FROM plan_clocks c JOIN steps s ON s.level <= c.fired
    RETURNING alert_id, escalation_level, created_at
)
INSERT INTO notifications (tenant_id, alert_id, channel, state, attempts, next_attempt_at,
                           sent_at, created_at)
SELECT 'default', a.alert_id, ch, 'sent', 1, a.created_at,
       a.created_at + interval '1 second', a.created_at
FROM a JOIN steps s ON s.level = a.escalation_level CROSS JOIN LATERAL unnest(s.notify) AS ch
"""

# Migration 0005's backfill, over the loaded tickets.
_BUCKETS = """
INSERT INTO ticket_state_buckets
SELECT tenant_id, priority, customer_tier, status, active,
       CASE WHEN active AND warn_at IS NOT NULL
            THEN date_bin('1 hour', warn_at, timestamptz '2000-01-01 00:00:00+00')
            ELSE 'infinity' END,
       coalesce(date_bin('1 hour', breach_at, timestamptz '2000-01-01 00:00:00+00'), 'infinity'),
       count(*)
FROM tickets
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

TABLES = [
    "tickets",
    "ticket_events",
    "sla_clocks",
    "alerts",
    "notifications",
    "ticket_state_buckets",
]


# The loaded tables' keys, constraints and indexes are dropped for the load and built again
# after it, as a restore does: building an index from the whole table is several times cheaper
# than as many single inserts into it.
_CONSTRAINTS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype
FROM pg_constraint
WHERE (conrelid = ANY(%(tables)s::regclass[]) AND contype IN ('p', 'u', 'f'))
   OR (confrelid = ANY(%(tables)s::regclass[]) AND contype = 'f')
ORDER BY contype = 'f' DESC
"""
_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename = ANY(%s)
  AND indexname NOT IN (SELECT conname FROM pg_constraint)
"""


def drop_keys(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the loaded tables' constraints (and foreign keys to them first) and indexes; the
    statements
    that make them again, in order (keys before the foreign keys that need them)."""
    constraints = conn.execute(_CONSTRAINTS, {"tables": LOADED}).fetchall()
    indexes = conn.execute(_INDEXES, (LOADED,)).fetchall()
    for table, name, _, _ in constraints:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    remake = [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, definition, _ in reversed(constraints)
    ]
    return remake + [definition for _, definition in indexes]


LOADED = ["tickets", "ticket_events", "sla_clocks", "alerts", "notifications"]


@dataclass
class Figures:
    """What one size measured, for the comparison at the end."""

    tickets: int
    open: int
    rates: dict[str, float] = field(default_factory=dict)  # ingest phase -> events/s
    p99: dict[str, float] = field(default_factory=dict)  # read -> ms
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> side -> us/event


def run_script(
    conn: psycopg.Connection[Any],
    script: str,
    args: dict[str, object],
    seconds: list[float] | None = None,
) -> None:
    """Run the statements of `script`; add each one's time to `seconds` (by position)."""
    for i, statement in enumerate(script.split("---")):
        t = time.perf_counter()
        conn.execute(statement, args)
        if seconds is not None:
            seconds[i] += time.perf_counter() - t


def _session(db: str, config: SlaConfig) -> psycopg.Connection[Any]:
    """A loading connection with its temp tables (the targets and the ladder filled)."""
    conn = psycopg.connect(db)
    conn.execute("SET work_mem = '64MB'")
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute("SET synchronous_commit = off")  # the load's own commits, not the server's
    conn.execute(_SETUP)
    rows = []
    for i, (priority, tier) in enumerate(PAIRS):
        targets = config.targets(priority, tier)
        assert targets is not None and targets.calendar.name == "24x7"
        rows.append((i, priority, tier, targets.seconds["response"], targets.seconds["resolution"]))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO targets VALUES (%s, %s, %s, %s, %s)", rows)
        cur.executemany(
            "INSERT INTO steps VALUES (%s, %s, %s, %s)",
            [(s.at_percent, s.level, s.kind.value, list(s.notify)) for s in config.ladder.steps],
        )
    conn.commit()
    return conn


def load(db: str, config: SlaConfig, tickets: int, open_: int, now: datetime, loaders: int) -> None:
    """Load the tickets in chunks, on `loaders` connections at once."""
    warn_percent = config.ladder.warn_percent
    assert warn_percent is not None
    args: dict[str, object] = {
        "now": now,
        "closed": tickets - open_,
        "warn": warn_percent / 100,
        "version": config.version,
        "far": FAR_FUTURE,
    }
    sessions = [_session(db, config) for _ in range(loaders)]
    conn = sessions[0]
    # The version is recomputed already (as long after a deploy): the server's claim of it
    # finds nothing to do and walks no tickets.
    conn.execute(
        "INSERT INTO policy_versions (tenant_id, version, claimed_at, recomputed_at, tickets)"
        " VALUES (%s, %s, now(), now(), %s)",
        (DEFAULT_SCOPE, config.version, open_),
    )
    remake = drop_keys(conn)
    conn.commit()
    script = "---".join([_PLAN, _EVENTS, _CLOCKS, _WRITE])
    seconds = [0.0] * len(script.split("---"))
    idle: queue.Queue[psycopg.Connection[Any]] = queue.Queue()
    for session in sessions:
        idle.put(session)
    done = [0]
    lock = threading.Lock()
    started = time.perf_counter()

    def chunk(lo: int) -> None:
        session = idle.get()
        try:
            spent = [0.0] * len(seconds)
            run_script(session, script, {**args, "lo": lo, "hi": min(tickets, lo + CHUNK)}, spent)
            session.commit()
        finally:
            idle.put(session)
        with lock:
            seconds[:] = [a + b for a, b in zip(seconds, spent, strict=True)]
            done[0] += min(tickets, lo + CHUNK) - lo
            elapsed = time.perf_counter() - started
            print(
                f"  loaded {done[0]:>11,} tickets in {elapsed:6.0f} s "
                f"({done[0] / elapsed:,.0f} tickets/s)",
                flush=True,
            )

    with ThreadPoolExecutor(loaders) as pool:
        list(pool.map(chunk, range(0, tickets, CHUNK)))
    print(
        "  seconds by statement, all loaders (plan, events, clocks, sla_clocks, tickets, "
        "alerts): " + ", ".join(f"{v:.0f}" for v in seconds)
    )
    t = time.perf_counter()
    # Keys and indexes first, each on the next free connection; then the foreign keys, which
    # need the keys they reference.
    foreign = [r for r in remake if " FOREIGN KEY " in r]

    def build(statement: str) -> None:
        session = idle.get()
        try:
            session.execute(statement)
            session.commit()
        finally:
            idle.put(session)

    with ThreadPoolExecutor(loaders) as pool:
        list(pool.map(build, [r for r in remake if r not in foreign]))
        list(pool.map(build, foreign))
    print(
        f"  keys and indexes built again ({len(remake)}): {time.perf_counter() - t:.0f} s",
        flush=True,
    )
    for session in sessions[1:]:
        session.close()
    conn.execute(_BUCKETS)
    conn.commit()
    state_buckets.fold_past_hours(conn, now)
    loaded = time.perf_counter() - started
    counts = {}
    for table in ("ticket_events", "sla_clocks", "alerts", "notifications"):
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        counts[table] = int(row[0])
    rows = sum(counts.values()) + tickets
    print(
        f"load: {tickets:,} tickets ({open_:,} open), {counts['ticket_events']:,} events, "
        f"{counts['sla_clocks']:,} clock rows, {counts['alerts']:,} alerts, "
        f"{counts['notifications']:,} notifications in {loaded:.0f} s with {loaders} "
        f"connections ({tickets / loaded:,.0f} tickets/s, {rows:,} rows, "
        f"{rows / loaded:,.0f} rows/s), keys, indexes and buckets included",
        flush=True,
    )
    conn.commit()
    conn.autocommit = True
    t = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    print(f"VACUUM ANALYZE: {time.perf_counter() - t:.0f} s", flush=True)
    # The load's dirty pages written out now rather than by a checkpoint during the timed calls,
    # whose commits would wait behind its writes (stalls of seconds, seen before this).
    t = time.perf_counter()
    conn.execute("CHECKPOINT")
    print(f"CHECKPOINT: {time.perf_counter() - t:.0f} s", flush=True)
    conn.close()


def check_sample(db: str, config: SlaConfig, tickets: int, now: datetime, n: int = 400) -> None:
    """Recompute a sample of the loaded tickets from their events with internal/sla, and compare
    with the loaded ticket and clock rows: what ingest would have written for those events."""
    rnd = random.Random(3)
    ids = sorted({f"S{rnd.randrange(tickets):09d}" for _ in range(n)})
    with psycopg.connect(db) as conn:
        events: dict[str, list[Event]] = {}
        for tid, prio, tier, status, created, updated in conn.execute(
            "SELECT ticket_id, priority, customer_tier, status, created_at, updated_at"
            " FROM ticket_events WHERE tenant_id = 'default' AND ticket_id = ANY(%s)",
            (ids,),
        ):
            events.setdefault(tid, []).append(
                Event(tid, prio, tier, Status(status), created, updated, Activity.NONE)
            )
        stored_tickets = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT ticket_id, status, updated_at, breach_at, warn_at, active, urgent_at"
                " FROM tickets WHERE tenant_id = 'default' AND ticket_id = ANY(%s)",
                (ids,),
            )
        }
        stored_clocks: dict[str, dict[str, tuple[Any, ...]]] = {}
        for tid, clock, *rest in conn.execute(
            "SELECT ticket_id, clock, mode, anchor_at, anchor_elapsed, due_at, warn_at,"
            " fired_level, next_check_at FROM sla_clocks"
            " WHERE tenant_id = 'default' AND ticket_id = ANY(%s)",
            (ids,),
        ):
            stored_clocks.setdefault(tid, {})[clock] = tuple(rest)
    problems = []
    for tid in ids:
        history = events[tid]
        latest = max(history, key=lambda e: e.updated_at)
        targets = config.targets(latest.priority, latest.customer_tier)
        assert targets is not None
        fired = {(clock, 1): row[5] for clock, row in stored_clocks[tid].items()}
        sla = compute_ticket_sla(history, targets, config.rules, fired)
        want_ticket = (
            latest.status.value,
            latest.updated_at,
            sla.breach_at,
            sla.warn_at,
            sla.active,
            sla.urgent_at,
        )
        if not _same(stored_tickets[tid], want_ticket):
            problems.append(f"{tid}: ticket {stored_tickets[tid]} != {want_ticket}")
        for c in sla.clocks:
            want = (
                c.mode.value,
                c.anchor_at,
                c.anchor_elapsed,
                c.due_at,
                c.warn_at,
                c.fired_level,
                c.next_check_at,
            )
            got = stored_clocks[tid].get(c.metric)
            if got is None or not _same(got, want):
                problems.append(f"{tid} {c.metric}: {got} != {want}")
        # The levels the load marked fired are those a running evaluator would have fired by now.
        for c in sla.clocks:
            step = config.ladder.highest_crossed(c.target, _elapsed(c, now), 0)
            if c.fired_level != (step.level if step else 0):
                problems.append(f"{tid} {c.metric}: fired {c.fired_level}, reached {step}")
    if problems:
        sys.exit("loaded rows differ from what internal/sla computes:\n" + "\n".join(problems[:20]))
    print(f"check: {len(ids)} sampled tickets recomputed from their events match the loaded rows")


def check_counts(db: str, now: datetime) -> None:
    """The dashboard's counts (from the state buckets) against a count over every ticket, and
    how many tickets the counts read from the tickets' indexes: those with an instant in the
    current hour (what a dashboard call's cost grows with)."""
    with psycopg.connect(db) as conn:
        from_buckets = state_buckets.count_states(
            conn, "tenant_id = %(tenant)s", {"tenant": "default"}, now
        )
        direct: dict[State, int] = dict.fromkeys(State, 0)
        for state, n in conn.execute(
            "SELECT CASE WHEN breach_at <= %(now)s THEN 'breached' WHEN NOT active THEN 'met'"
            " WHEN warn_at <= %(now)s THEN 'warning' ELSE 'ok' END, count(*)"
            " FROM tickets GROUP BY 1",
            {"now": now},
        ):
            direct[State[state.upper()]] = int(n)
        hour = state_buckets.hour_of(now)
        row = conn.execute(
            "SELECT (SELECT count(*) FROM tickets WHERE breach_at >= %(h)s AND breach_at < %(e)s),"
            " (SELECT count(*) FROM tickets WHERE active AND warn_at >= %(h)s AND warn_at < %(e)s)",
            {"h": hour, "e": hour + timedelta(hours=1)},
        ).fetchone()
        assert row is not None
    if from_buckets != direct:
        sys.exit(f"dashboard counts {from_buckets} != counted over the tickets {direct}")
    print(
        "check: dashboard counts from the buckets equal a count over every ticket: "
        + ", ".join(f"{state.name.lower()} {n:,}" for state, n in direct.items())
    )
    print(
        f"  tickets with an instant in the current hour (read by each count from the indexes): "
        f"breach {row[0]:,}, warning {row[1]:,}"
    )


def _elapsed(c: Any, now: datetime) -> float:
    if c.mode.value == "running":
        return float(c.anchor_elapsed) + (now - c.anchor_at).total_seconds()
    return float(c.anchor_elapsed)


def _same(got: tuple[Any, ...], want: tuple[Any, ...]) -> bool:
    """Equal, instants to the millisecond and seconds to the microsecond (SQL interval
    arithmetic rounds to microseconds)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if isinstance(g, datetime) and isinstance(w, datetime):
            if abs((g - w).total_seconds()) > 0.001:
                return False
        elif isinstance(g, float) and isinstance(w, float):
            if abs(g - w) > 1e-3:
                return False
        elif g != w:
            return False
    return True


def timed(call: Any, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - t)
    return samples


def reads(server: ServerProcess, figures: Figures, opts: argparse.Namespace) -> None:
    gc.collect()
    gc.freeze()
    closed = figures.tickets - figures.open
    rnd = random.Random(11)
    closed_ids = [f"S{rnd.randrange(closed):09d}" for _ in range(opts.reads // 2)]
    open_ids = [f"S{closed + rnd.randrange(figures.open):09d}" for _ in range(opts.reads // 2)]
    ids = [tid for pair in zip(closed_ids, open_ids, strict=True) for tid in pair]
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.TicketServiceStub(ch)
        get = timed(lambda i: stub.GetTicket(pb.GetTicketRequest(ticket_id=ids[i])), len(ids))
        print(f"GetTicket, random closed and open tickets: {summary_ms(get)}")
        print(f"  closed only: {summary_ms(get[0::2])}")
        print(f"  open only:   {summary_ms(get[1::2])}")
        figures.p99["GetTicket"] = _p99(get)

        first = timed(lambda i: stub.GetDashboard(pb.GetDashboardRequest()), opts.reads // 4)
        print(f"GetDashboard, first page of 50 + counts: {summary_ms(first)}")
        figures.p99["GetDashboard first page"] = _p99(first)

        deep: list[float] = []
        last_pages: list[float] = []
        for _ in range(opts.walks):
            token = stub.GetDashboard(pb.GetDashboardRequest()).next_page_token
            for page in range(opts.pages):
                t = time.perf_counter()
                response = stub.GetDashboard(pb.GetDashboardRequest(page_token=token))
                deep.append(time.perf_counter() - t)
                if page == opts.pages - 1:
                    last_pages.append(deep[-1])
                token = response.next_page_token
                assert token, "ran out of pages"
        print(
            f"GetDashboard, pages 2-{opts.pages + 1} by next_page_token ({opts.walks} walks): "
            f"{summary_ms(deep)}; page {opts.pages + 1} alone: {summary_ms(last_pages)}"
        )
        figures.p99["GetDashboard deep pages"] = _p99(deep)

        filtered = timed(
            lambda i: stub.GetDashboard(
                pb.GetDashboardRequest(states=[pb.SLA_STATE_WARNING], priorities=["high"])
            ),
            opts.reads // 4,
        )
        print(f"GetDashboard filtered (WARNING, high): {summary_ms(filtered)}")
        figures.p99["GetDashboard filtered"] = _p99(filtered)
        counts = stub.GetDashboard(pb.GetDashboardRequest()).counts
        print(f"  dashboard counts: {counts}".replace("\n", " "))
    gc.unfreeze()


def dashboard_parts(db: str) -> None:
    """Where a dashboard call's time goes: its two statements timed alone, in this process."""
    now = datetime.now(UTC)
    every = query_repo.DashboardFilter()
    with psycopg.connect(db, autocommit=True) as conn:
        counts = timed(lambda i: query_repo.dashboard_counts(conn, "default", every, now), 100)
        page = timed(
            lambda i: query_repo.dashboard_page(conn, "default", every, now, None, 50), 100
        )
    print(f"GetDashboard's counts statement alone, in-process: {summary_ms(counts)}")
    print(f"GetDashboard's page statement alone, in-process:   {summary_ms(page)}")


def _p99(samples: list[float]) -> float:
    return percentile([s * 1000 for s in samples], 99)


def update_events(db: str, figures: Figures, count: int, now: datetime) -> list[pb.TicketEvent]:
    """A status change of `count` open tickets picked at random (at most every open ticket,
    each once), halfway between the ticket's last event and now."""
    closed = figures.tickets - figures.open
    picks = random.Random(5).sample(range(figures.open), min(count, figures.open))
    ids = [f"S{closed + k:09d}" for k in picks]
    with psycopg.connect(db) as conn:
        stored = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT ticket_id, priority, customer_tier, created_at, updated_at FROM tickets"
                " WHERE tenant_id = 'default' AND ticket_id = ANY(%s)",
                (ids,),
            )
        }
    events = []
    for i, tid in enumerate(ids):
        priority, tier, created, updated = stored[tid]
        events.append(
            pb.TicketEvent(
                ticket_id=tid,
                priority=priority,
                customer_tier=tier,
                status=NEXT_STATUSES[i % len(NEXT_STATUSES)],
                created_at=ts(created),
                updated_at=ts(updated + (now - updated) / 2),
            )
        )
    return events


def backend_cpu(db: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to this benchmark's database: on
    a server other work shares, counting every postgres process (bench.common.cpu_by_process)
    would count theirs too, and backends of theirs that exit meanwhile subtract."""
    with psycopg.connect(db, autocommit=True) as conn:
        pids = [
            int(pid)
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    used = {}
    for pid in pids:
        try:
            used[pid] = cpu_seconds(pid)
        except OSError:
            continue  # exited meanwhile
    return used


def ingest(server: ServerProcess, db: str, figures: Figures, opts: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    phases = (
        ("new", make_events(opts.ingest_events, now)),
        ("updates", update_events(db, figures, opts.ingest_events, now)),
    )
    # The server's ingest path warmed up first (its first batches are slower), with tickets of
    # their own.
    warm = make_events(2000, now)
    for e in warm:
        e.ticket_id = "WARM-" + e.ticket_id
    ingest_all(server.target, warm, opts.batch, opts.clients)
    for label, events in phases:
        backends_before = backend_cpu(db)
        cpu_before, ticks_before = cpu_by_process(server.proc.pid), machine_ticks()
        total, lat = ingest_all(server.target, events, opts.batch, opts.clients)
        cpu_after, ticks_after = cpu_by_process(server.proc.pid), machine_ticks()
        backends_after = backend_cpu(db)
        rate = len(events) / total
        figures.rates[label] = rate
        per_event = {k: (cpu_after[k] - cpu_before[k]) / len(events) * 1e6 for k in cpu_after}
        per_event["postgres"] = (
            sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in backends_after.items())
            / len(events)
            * 1e6
        )
        figures.cpu[label] = per_event
        print(
            f"ingest {label:<8} {rate:>8,.0f} events/s ({opts.clients} clients); "
            f"per batch of {opts.batch}: {summary_ms(lat)}"
        )
        print(
            f"  CPU per event: server {per_event['server']:.0f} us, "
            f"PostgreSQL backends {per_event['postgres']:.0f} us, "
            f"benchmark client {per_event['client']:.0f} us; "
            f"CPU stolen by the host: {steal_share(ticks_before, ticks_after):.1%}"
        )


def disk(db: str, tickets: int) -> None:
    with psycopg.connect(db) as conn:
        total = 0
        parts = []
        for table in TABLES:
            row = conn.execute(
                "SELECT pg_total_relation_size(%s), pg_relation_size(%s)", (table, table)
            ).fetchone()
            assert row is not None
            size, heap = int(row[0]), int(row[1])
            total += size
            parts.append(f"{table} {size / tickets:,.0f} B ({heap / tickets:,.0f} B heap)")
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        print("disk per ticket: " + ", ".join(parts))
        print(
            f"  total {total / tickets:,.0f} B per ticket ({total / 2**30:.2f} GiB); whole "
            f"database {int(row[0]) / 2**30:.2f} GiB"
        )


def run_size(config_path: Path, tickets: int, open_: int, opts: argparse.Namespace) -> Figures:
    print(f"-- {tickets:,} tickets, {open_:,} open", flush=True)
    figures = Figures(tickets, open_)
    config = load_config(config_path)
    with scratch_database() as db:
        print(f"  database {psycopg.conninfo.conninfo_to_dict(db)['dbname']}", flush=True)
        migrate(db)
        now = datetime.now(UTC)
        load(db, config, tickets, open_, now, opts.loaders)
        check_sample(db, config, tickets, now)
        check_counts(db, now)
        disk(db, tickets)
        with server_process(db, config_path, SLAWATCH_SERVER_PROCESSES="2") as server:
            reads(server, figures, opts)
            dashboard_parts(db)
            ingest(server, db, figures, opts)
            rss = max(peak_rss_mb(pid) for pid in server.pids())
            print(f"server peak RSS: {rss:.0f} MB (largest process)", flush=True)
    return figures


def compare(base: Figures, big: Figures) -> None:
    print(f"-- {big.tickets:,} tickets against {base.tickets:,} (same code, same session)")
    for label in base.rates:
        print(
            f"ingest {label}: {big.rates[label]:,.0f} against {base.rates[label]:,.0f} events/s "
            f"({big.rates[label] / base.rates[label] - 1:+.0%}); CPU per event "
            f"server {big.cpu[label]['server']:.0f} against {base.cpu[label]['server']:.0f} us, "
            f"PostgreSQL backends {big.cpu[label]['postgres']:.0f} against "
            f"{base.cpu[label]['postgres']:.0f} us"
        )
    for label in base.p99:
        print(f"{label} p99: {big.p99[label]:.2f} against {base.p99[label]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=10_000_000)
    parser.add_argument("--open", type=int, default=1_000_000)
    parser.add_argument("--baseline-tickets", type=int, default=100_000, help="0: no baseline")
    parser.add_argument("--baseline-open", type=int, default=10_000)
    parser.add_argument("--loaders", type=int, default=2, help="loading connections at once")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--walks", type=int, default=10, help="deep-page walks")
    parser.add_argument("--pages", type=int, default=20, help="pages per walk after the first")
    parser.add_argument(
        "--ingest-events",
        type=int,
        default=100_000,
        help="new tickets ingested; and updates of as many open tickets (at most all of them)",
    )
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "sla_config.yaml"
        config_path.write_text(CONFIG)
        base = None
        if opts.baseline_tickets:
            base = run_size(config_path, opts.baseline_tickets, opts.baseline_open, opts)
        big = run_size(config_path, opts.tickets, opts.open, opts)
        if base is not None:
            compare(base, big)


if __name__ == "__main__":
    main()
