"""Evaluation at the deadline: real scheduler and Dramatiq worker processes, a real server, with
the interval safety net set to 30 s. A crossing must become an alert row within a second of its
instant, which only the deadline ticks (ingest's announcement, the scheduler's sleep until the
earliest next_check_at) can do."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from slawatch.v1 import ticket_service_pb2 as pb
from support.configs import write_config
from support.env import StubFactory
from support.events import event
from support.fake_slack import FakeSlack
from support.ops import engine_env
from support.workers import Processes, poll, rows

INTERVAL = "30"
TARGET_S = 5.0
STEPS = (40, 70, 100)  # at_percent of the 5 s response target: 2 s, 3.5 s, 5 s
# The row must exist within this long of its crossing instant. The second asked for, measured
# with some headroom: under a loaded 2-core machine a worker thread may take a few hundred ms to
# be scheduled. Far below the 30 s interval either way.
TOLERANCE_S = 1.0


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def seconds_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "seconds.yaml",
        escalation=[
            {
                "at_percent": p,
                "level": i,
                "kind": "warning" if p < 100 else "breach",
                "notify": ["team"],
            }
            for i, p in enumerate(STEPS, start=1)
        ],
        policies={"high": {"gold": {"response": f"{TARGET_S:g}s", "resolution": "1h"}}},
    )


def crossings(created: datetime) -> dict[int, datetime]:
    """Level -> the instant the ticket's response clock crosses it (24x7: wall time)."""
    return {
        level: created + timedelta(seconds=TARGET_S * p / 100)
        for level, p in enumerate(STEPS, start=1)
    }


def lateness(database_url: str, created: dict[str, datetime]) -> dict[tuple[str, int], float]:
    """(ticket, level) -> seconds from the crossing to the alert row's created_at."""
    late = {}
    for ticket, level, at in rows(
        database_url,
        "SELECT ticket_id, escalation_level, created_at FROM alerts WHERE ticket_id <> 'WARM'",
    ):
        crossing = crossings(created[str(ticket)])[int(str(level))]
        late[(str(ticket), int(str(level)))] = (at - crossing).total_seconds()  # type: ignore[operator]
    return late


def run_tickets(
    database_url: str,
    redis_url: str,
    config: Path,
    slack: FakeSlack,
    tmp_path: Path,
    stub_factory: StubFactory,
    *,
    schedulers: int,
    workers: int,
    tickets: int,
) -> dict[tuple[str, int], float]:
    procs = Processes(
        engine_env(database_url, redis_url, config, slack, SLAWATCH_EVAL_INTERVAL_SECONDS=INTERVAL),
        tmp_path,
    )
    try:
        stub = stub_factory(config)
        for _ in range(workers):
            procs.worker()
        for _ in range(schedulers):
            procs.scheduler()
        # A ticket already overdue: its alert proves the processes are up (and warms the worker's
        # pool) before the timed tickets are created. Its announcement is a past instant.
        stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[event("WARM", created=datetime.now(UTC) - timedelta(minutes=5))]
            )
        )
        poll(
            lambda: rows(database_url, "SELECT count(*) FROM alerts")[0][0] == 1,
            timeout=60,
            what="the overdue ticket's alert",
        )
        created: dict[str, datetime] = {}
        for i in range(tickets):
            # Staggered, so that the crossings spread over several seconds.
            ticket = f"DUE-{i}"
            created[ticket] = datetime.now(UTC) - timedelta(seconds=0.7 * (tickets - i))
            stub.IngestTickets(
                pb.IngestTicketsRequest(events=[event(ticket, created=created[ticket])])
            )
        expected = 1 + tickets * len(STEPS)
        poll(
            lambda: rows(database_url, "SELECT count(*) FROM alerts")[0][0] == expected,
            timeout=30,
            what=f"{expected} alerts",
        )
        slack.wait_for(expected, "/hooks/team", timeout=60)
        poll(
            lambda: (
                rows(database_url, "SELECT count(*) FROM notifications WHERE state = 'sent'")[0][0]
                == expected
            ),
            what="every notification sent",
        )
    finally:
        procs.stop_all()
    print(procs.logs())
    ids = Counter(
        int(m.group(1))
        for r in slack.requests("/hooks/team")
        if (m := re.search(r"alert (\d+)", str(r.body)))
    )
    assert len(ids) == expected and set(ids.values()) == {1}, ids
    return lateness(database_url, created)


def test_a_crossing_becomes_an_alert_row_within_a_second_with_a_30s_interval(
    database_url: str,
    redis_url: str,
    seconds_config: Path,
    slack: FakeSlack,
    tmp_path: Path,
    stub_factory: StubFactory,
) -> None:
    """Three tickets, nine crossings over about six seconds: every alert row is written no
    earlier than its crossing and at most TOLERANCE_S after it; the 30 s interval tick could
    at best have caught one of them that quickly."""
    late = run_tickets(
        database_url,
        redis_url,
        seconds_config,
        slack,
        tmp_path,
        stub_factory,
        schedulers=1,
        workers=1,
        tickets=3,
    )
    print("lateness (s):", sorted(late.values()))
    assert len(late) == 9
    assert all(0.0 <= s <= TOLERANCE_S for s in late.values()), late


def test_two_schedulers_and_two_workers_raise_one_alert_per_crossing_on_time(
    database_url: str,
    redis_url: str,
    seconds_config: Path,
    slack: FakeSlack,
    tmp_path: Path,
    stub_factory: StubFactory,
) -> None:
    """Both schedulers see every due instant; the tick key of the instant lets one enqueue it,
    SKIP LOCKED and the unique alerts do the rest: each crossing is one alert and one Slack
    message, and still on time."""
    late = run_tickets(
        database_url,
        redis_url,
        seconds_config,
        slack,
        tmp_path,
        stub_factory,
        schedulers=2,
        workers=2,
        tickets=4,
    )
    assert len(late) == 12
    assert all(0.0 <= s <= TOLERANCE_S for s in late.values()), late


def test_the_scheduler_stops_promptly_on_sigterm_while_it_sleeps_toward_a_deadline(
    database_url: str, redis_url: str, seconds_config: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """With the next interval tick 30 s away and the next deadline an hour away, SIGTERM still
    ends the scheduler within a few seconds (it looks at the stop at least every half second)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO sla_clocks VALUES ('default', 'FAR', 'response', 3600, '24x7',"
            " 'running', now(), 0, now() + interval '1 hour', NULL, 0, now() + interval '1 hour')"
        )
    procs = Processes(
        engine_env(
            database_url, redis_url, seconds_config, slack, SLAWATCH_EVAL_INTERVAL_SECONDS=INTERVAL
        ),
        tmp_path,
    )
    proc = procs.scheduler()
    try:
        poll(lambda: "scheduler started" in procs.logs(), timeout=30, what="scheduler started")
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 3.0
    finally:
        procs.stop_all()
