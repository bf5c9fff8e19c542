"""The SLA state is computed in SQL where the database must filter or count by it (the
dashboard's state filter in query_repo, its counts per state in state_buckets). These properties
hold both equal to the Python rule (StoredClock.state: a ticket is as bad as its worst clock) on a
real PostgreSQL, for generated tickets stored through ingest and any `now`, the instants of
their own thresholds included."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg_pool
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from internal.config.sla_config import SlaConfig, parse_config
from internal.sla.model import State, Status
from internal.sla.stored_clock import StoredClock
from internal.sla.ticket_sla import Event
from internal.store.query_repo import DashboardFilter, dashboard_counts, dashboard_page
from support.configs import config_text
from support.store import store_events

# A Thursday, 10:00 in Berlin: the generated tickets run into a weekend on emea_office's hours.
T0 = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
CONFIG: SlaConfig = parse_config(config_text())
STATUSES = list(Status)
_tenants = itertools.count()

# One ticket: its priority and tier (high/silver counts on emea_office, the others on 24x7),
# creation minute, and later status changes as (minutes after the previous one, status).
tickets = st.tuples(
    st.sampled_from([("high", "gold"), ("high", "silver"), ("low", "gold")]),
    st.integers(0, 600),
    st.lists(st.tuples(st.integers(1, 240), st.sampled_from(STATUSES)), max_size=4),
)


def events_of(i: int, ticket: tuple[tuple[str, str], int, list[tuple[int, Status]]]) -> list[Event]:
    (priority, tier), created_minute, changes = ticket
    created = T0 + timedelta(minutes=created_minute)
    out = [Event(f"S-{i}", priority, tier, Status.OPEN, created, created)]
    at = created
    for gap, status in changes:
        at += timedelta(minutes=gap)
        out.append(Event(f"S-{i}", priority, tier, status, created, at))
    return out


def python_states(
    pool: psycopg_pool.ConnectionPool, tenant: str, now: datetime
) -> dict[str, State]:
    """The definition: each ticket's worst clock, each clock's state by StoredClock."""
    worst: dict[str, State] = {}
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM sla_clocks WHERE tenant_id = %s", (tenant,))
        names = [d.name for d in cur.description or ()]
        for values in cur.fetchall():
            row = dict(zip(names, values, strict=True))
            state = StoredClock.from_row(row, CONFIG.calendars).state(now)
            tid = str(row["ticket_id"])
            worst[tid] = max(worst.get(tid, State.MET), state)
    return worst


def probes(pool: psycopg_pool.ConnectionPool, tenant: str, offsets: list[int]) -> list[datetime]:
    """The generated instants, and the stored thresholds themselves (where `<=` against `<`
    would show), a microsecond either side too."""
    with pool.connection() as conn:
        marks = [
            r[0]
            for r in conn.execute(
                "SELECT due_at FROM sla_clocks WHERE tenant_id = %(t)s AND due_at IS NOT NULL"
                " UNION SELECT warn_at FROM sla_clocks WHERE tenant_id = %(t)s"
                " AND warn_at IS NOT NULL",
                {"t": tenant},
            )
        ]
    tiny = timedelta(microseconds=1)
    return [T0 + timedelta(minutes=m) for m in offsets] + [
        m + d for m in marks[:4] for d in (-tiny, timedelta(0), tiny)
    ]


@pytest.fixture
def shared_pool(pool: psycopg_pool.ConnectionPool) -> psycopg_pool.ConnectionPool:
    """One database for every example; each example stores its tickets as a tenant of its own."""
    return pool


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    generated=st.lists(tickets, min_size=1, max_size=6),
    offsets=st.lists(st.integers(-60, 5 * 24 * 60), min_size=1, max_size=4),
)
def test_sql_states_equal_the_python_rule(
    shared_pool: psycopg_pool.ConnectionPool,
    generated: list[tuple[tuple[str, str], int, list[tuple[int, Status]]]],
    offsets: list[int],
) -> None:
    """For every `now`: the dashboard page filtered on one state lists exactly the tickets
    whose Python state it is, and the counts per state are the Python states counted."""
    tenant = f"prop-{next(_tenants)}"
    events = [e for i, t in enumerate(generated) for e in events_of(i, t)]
    store_events(shared_pool, tenant, CONFIG, events)
    everything = DashboardFilter()
    for now in probes(shared_pool, tenant, offsets):
        expected = python_states(shared_pool, tenant, now)
        with shared_pool.connection() as conn:
            counts = dashboard_counts(conn, tenant, everything, now)
            assert counts == {s: Counter(expected.values()).get(s, 0) for s in State}, now
            for state in State:
                page = dashboard_page(conn, tenant, DashboardFilter(states=[state]), now, None, 50)
                listed = sorted(str(p.ticket["ticket_id"]) for p in page)
                assert listed == sorted(t for t, s in expected.items() if s is state), (now, state)
                assert all(p.ticket["sla_state"] == state.value for p in page)
