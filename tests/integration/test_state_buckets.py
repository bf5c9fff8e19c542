"""The dashboard's counts per SLA state come from hourly buckets kept up to date by every write of
tickets (internal/store/state_buckets.py). These tests hold them to the definition: at any `now`,
for any filter, they equal the states of the stored tickets counted one by one, through ingest of
new, updated, paused, closed, reopened and out-of-order tickets, a recompute under a new config,
concurrent writers, and the folding of old hours."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg_pool

from internal.config.sla_config import SlaConfig, parse_config
from internal.sla.clocks import state_at
from internal.sla.model import Mode, State, Status
from internal.sla.ticket_sla import Event
from internal.store import state_buckets
from internal.store.migrate import MIGRATIONS_DIR
from internal.store.query_repo import DashboardFilter, dashboard_counts
from internal.usecase.recompute import recompute_open_tickets
from support.configs import config_text
from support.store import store_events

T0 = datetime(2026, 3, 2, 9, 17, 23, tzinfo=UTC)
POLICIES = {
    "high": {"gold": {"response": "15m", "resolution": "2h"}},
    "low": {"gold": {"response": "1h", "resolution": "9h"}},
}
STATUSES = [Status.OPEN, Status.IN_PROGRESS, Status.ON_HOLD, Status.RESOLVED, Status.CLOSED]
FILTERS = [
    DashboardFilter(),
    DashboardFilter(priorities=["high"]),
    DashboardFilter(statuses=["open", "on_hold"], tiers=["gold"]),
]


def config(policies: dict[str, object] = POLICIES) -> SlaConfig:
    return parse_config(config_text(policies=policies))


def one_by_one(
    pool: psycopg_pool.ConnectionPool, f: DashboardFilter, now: datetime
) -> Counter[State]:
    """The definition: each stored ticket's state from its own clocks, counted in Python."""
    found: Counter[State] = Counter()
    sql = (
        "SELECT t.ticket_id, c.mode, c.due_at, c.warn_at FROM tickets t"
        " JOIN sla_clocks c USING (tenant_id, ticket_id)"
        " WHERE (cardinality(%(p)s::text[]) = 0 OR t.priority = ANY(%(p)s))"
        " AND (cardinality(%(t)s::text[]) = 0 OR t.customer_tier = ANY(%(t)s))"
        " AND (cardinality(%(s)s::text[]) = 0 OR t.status = ANY(%(s)s))"
    )
    worst: dict[str, State] = {}
    with pool.connection() as conn:
        args = {"p": list(f.priorities), "t": list(f.tiers), "s": list(f.statuses)}
        for tid, mode, due_at, warn_at in conn.execute(sql, args):
            state = state_at(Mode(mode), due_at, warn_at, now)
            worst[tid] = max(worst.get(tid, State.MET), state)
    found.update(worst.values())
    return found


def assert_counts_exact(pool: psycopg_pool.ConnectionPool, nows: list[datetime]) -> None:
    with pool.connection() as conn:
        for now in nows:
            for f in FILTERS:
                counted = dashboard_counts(conn, "default", f, now)
                expected = one_by_one(pool, f, now)
                assert counted == {s: expected.get(s, 0) for s in State}, (now, f)


def random_history(rnd: random.Random, n: int) -> list[Event]:
    """Tickets created over a day, each with up to four later status changes (some of them
    arriving out of order, in later batches)."""
    events = []
    for i in range(n):
        created = T0 + timedelta(seconds=rnd.randint(0, 86400))
        priority = rnd.choice(["high", "low"])
        at = created
        events.append(Event(f"T-{i}", priority, "gold", Status.OPEN, created, created))
        for _ in range(rnd.randint(0, 4)):
            at += timedelta(seconds=rnd.randint(60, 4 * 3600))
            events.append(Event(f"T-{i}", priority, "gold", rnd.choice(STATUSES), created, at))
    rnd.shuffle(events)
    return events


def probe_times(pool: psycopg_pool.ConnectionPool, rnd: random.Random) -> list[datetime]:
    """Random instants, hour boundaries, and the exact instants of some tickets' thresholds
    (where `<=` against `<` would show)."""
    with pool.connection() as conn:
        marks = [
            row[0]
            for row in conn.execute(
                "SELECT breach_at FROM tickets WHERE breach_at IS NOT NULL"
                " UNION SELECT warn_at FROM tickets WHERE warn_at IS NOT NULL"
            )
        ]
    hour = T0.replace(minute=0, second=0)
    return (
        [T0 + timedelta(seconds=rnd.randint(-3600, 3 * 86400)) for _ in range(8)]
        + [hour + timedelta(hours=h) for h in (1, 5, 30)]
        + rnd.sample(marks, min(6, len(marks)))
    )


def test_counts_equal_the_tickets_states_through_every_kind_of_write(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """Batches of new tickets, status changes, pauses, closes, reopens and late events, then a
    recompute under a config with other targets: the counts stay exact at every probed `now`."""
    rnd = random.Random(20261202)
    cfg = config()
    events = random_history(rnd, 150)
    for start in range(0, len(events), 70):
        store_events(pool, "default", cfg, events[start : start + 70])
    assert_counts_exact(pool, probe_times(pool, rnd))

    faster = config(
        {
            "high": {"gold": {"response": "5m", "resolution": "1h"}},
            "low": {"gold": {"response": "30m", "resolution": "3h"}},
        }
    )
    assert recompute_open_tickets(pool, faster) > 0
    assert_counts_exact(pool, probe_times(pool, rnd))


def test_concurrent_writers_keep_the_counts_exact(pool: psycopg_pool.ConnectionPool) -> None:
    """Four threads ingesting overlapping tickets at once (they share buckets): no deadlock, no
    lost update of a bucket."""
    rnd = random.Random(7)
    cfg = config()
    events = random_history(rnd, 200)
    chunks = [events[i::4] for i in range(4)]
    errors: list[BaseException] = []

    def run(chunk: list[Event]) -> None:
        try:
            for start in range(0, len(chunk), 40):
                store_events(pool, "default", cfg, chunk[start : start + 40])
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert_counts_exact(pool, probe_times(pool, rnd))


def test_folding_old_hours_keeps_counts_and_shrinks_the_table(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """Hours a day behind the folding instant become one '-infinity' bucket per group: counts at
    that instant and later do not change, and the table keeps far fewer rows."""
    rnd = random.Random(3)
    cfg = config()
    store_events(pool, "default", cfg, random_history(rnd, 120))
    later = T0 + timedelta(days=4)

    def buckets() -> int:
        with pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM ticket_state_buckets").fetchone()
        assert row is not None
        return int(row[0])

    before = buckets()
    with pool.connection() as conn:
        assert state_buckets.fold_past_hours(conn, later) > 0
        assert state_buckets.fold_past_hours(conn, later) == 0  # nothing left to fold
    assert buckets() < before / 4
    assert_counts_exact(pool, [later, later + timedelta(hours=1), later + timedelta(days=30)])

    # A ticket changed after the fold moves out of a folded hour: still exact.
    store_events(pool, "default", cfg, [Event("T-1", "high", "gold", Status.CLOSED, T0, later)])
    assert_counts_exact(pool, [later + timedelta(minutes=5)])


def test_migration_backfill_counts_tickets_stored_before_it(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """A database upgraded with tickets in it: the migration's backfill alone gives exact
    buckets (run here again on emptied buckets)."""
    rnd = random.Random(11)
    store_events(pool, "default", config(), random_history(rnd, 80))
    migration = (MIGRATIONS_DIR / "0005_dashboard_buckets.sql").read_text()
    backfill = migration[migration.index("INSERT INTO ticket_state_buckets") :]
    with pool.connection() as conn:
        conn.execute("DELETE FROM ticket_state_buckets")
        conn.execute(backfill)
    assert_counts_exact(pool, probe_times(pool, rnd))
