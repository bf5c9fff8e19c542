"""The SLA engine end to end: real PostgreSQL, real Redis, real Dramatiq worker and scheduler
processes, and a real HTTP server standing in for Slack."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from internal.config.sla_config import load_config
from internal.embedded.ports import free_port
from internal.embedded.redis import EmbeddedRedis
from internal.store.db import make_pool
from internal.usecase.evaluate import evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import write_config
from support.env import DATA, StubFactory
from support.events import event
from support.fake_slack import FakeSlack, Reply
from support.ops import engine_env
from support.workers import Processes, poll, rows


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def procs(
    database_url: str, redis_url: str, config_path: Path, slack: FakeSlack, tmp_path: Path
) -> Iterator[Processes]:
    p = Processes(engine_env(database_url, redis_url, config_path, slack), tmp_path)
    yield p
    p.stop_all()
    print(p.logs())  # shown by pytest when the test failed


def alert_ids_in(requests: list[object]) -> list[int]:
    found = []
    for r in requests:
        match = re.search(r"alert (\d+)", str(r.body))  # type: ignore[attr-defined]
        assert match, r
        found.append(int(match.group(1)))
    return found


def past_ticket(ticket_id: str, minutes_ago: float, **kwargs: object) -> pb.TicketEvent:
    return event(ticket_id, created=datetime.now(UTC) - timedelta(minutes=minutes_ago), **kwargs)  # type: ignore[arg-type]


def test_ticket_created_in_the_past_is_alerted_on_the_next_tick(
    stub: pb_grpc.TicketServiceStub, procs: Processes, slack: FakeSlack, database_url: str
) -> None:
    """20 minutes into a 15-minute response target: one breach alert at the highest crossed
    level (3), delivered to that level's channel, visible on the ticket with its delivery."""
    procs.worker()
    procs.scheduler()
    stub.IngestTickets(pb.IngestTicketsRequest(events=[past_ticket("OLD-1", 20)]))
    (message,) = slack.wait_for(1, "/hooks/lead", timeout=60)
    assert "OLD-1" in str(message.body)
    poll(
        lambda: (
            stub.GetTicket(pb.GetTicketRequest(ticket_id="OLD-1")).alerts[0].notifications[0].state
            == pb.NOTIFICATION_STATE_SENT
        ),
        what="notification marked sent",
    )
    got = stub.GetTicket(pb.GetTicketRequest(ticket_id="OLD-1"))
    assert [(a.clock, a.kind, a.escalation_level) for a in got.alerts] == [
        (pb.CLOCK_KIND_RESPONSE, pb.ALERT_KIND_BREACH, 3)
    ]
    assert got.ticket.escalation_level == 3
    assert got.alerts[0].policy_version == got.ticket.policy_version
    assert slack.requests("/hooks/team") == [] and slack.requests("/hooks/manager") == []


def test_a_fresh_ticket_walks_the_ladder_level_by_level(
    database_url: str, redis_url: str, slack: FakeSlack, tmp_path: Path, stub_factory: StubFactory
) -> None:
    """Second-long targets: each level fires once, in order, never before its threshold."""
    config = write_config(
        tmp_path / "ladder.yaml",
        escalation=[
            {"at_percent": 40, "level": 1, "kind": "warning", "notify": ["team"]},
            {"at_percent": 70, "level": 2, "kind": "warning", "notify": ["team"]},
            {"at_percent": 100, "level": 3, "kind": "breach", "notify": ["team"]},
            {"at_percent": 130, "level": 4, "kind": "breach", "notify": ["team"]},
        ],
        policies={"high": {"gold": {"response": "10s", "resolution": "1h"}}},
    )
    procs = Processes(engine_env(database_url, redis_url, config, slack), tmp_path)
    try:
        stub = stub_factory(config)
        procs.worker()
        procs.scheduler()
        created = datetime.now(UTC)
        stub.IngestTickets(pb.IngestTicketsRequest(events=[event("WALK", created=created)]))
        slack.wait_for(4, "/hooks/team", timeout=60)
        alerts = stub.GetTicket(pb.GetTicketRequest(ticket_id="WALK")).alerts
    finally:
        procs.stop_all()
    assert [a.escalation_level for a in alerts] == [1, 2, 3, 4]
    for alert, seconds in zip(alerts, (4, 7, 10, 13), strict=True):
        fired = alert.created_at.ToDatetime(UTC)
        assert fired >= created + timedelta(seconds=seconds), (alert, seconds)
    assert len(slack.requests("/hooks/team")) == 4


def test_each_alert_reaches_slack_exactly_once_with_two_workers_and_two_schedulers(
    stub: pb_grpc.TicketServiceStub, procs: Processes, slack: FakeSlack, database_url: str
) -> None:
    for _ in range(2):
        procs.worker()
        procs.scheduler()
    stub.IngestTickets(
        pb.IngestTicketsRequest(events=[past_ticket(f"DUP-{i}", 20) for i in range(40)])
    )
    slack.wait_for(40, "/hooks/lead", timeout=90)
    poll(
        lambda: (
            rows(database_url, "SELECT count(*) FROM notifications WHERE state = 'sent'")[0][0]
            == 40
        ),
        what="all 40 notifications sent",
    )
    # A repeat would need another tick or a redelivery: let several ticks pass, then count.
    time.sleep(4)
    counts = Counter(alert_ids_in(slack.requests("/hooks/lead")))
    assert len(counts) == 40 and set(counts.values()) == {1}
    assert rows(database_url, "SELECT count(*) FROM alerts")[0][0] == 40


def test_slack_429_500_and_timeouts_are_retried_until_delivered(
    stub: pb_grpc.TicketServiceStub, procs: Processes, slack: FakeSlack, database_url: str
) -> None:
    slack.script(
        "/hooks/lead",
        Reply(429, "rate_limited", {"Retry-After": "1"}),
        Reply(500, "oops"),
        Reply(delay=2.5),  # longer than the 1 s send timeout
    )
    procs.worker()
    procs.scheduler()
    stub.IngestTickets(pb.IngestTicketsRequest(events=[past_ticket("RETRY-1", 20)]))
    poll(
        lambda: rows(database_url, "SELECT state FROM notifications")[0:1] == [("sent",)],
        timeout=90,
        what="delivered after retries",
    )
    attempts, last_error = rows(database_url, "SELECT attempts, last_error FROM notifications")[0]
    assert attempts == 4
    assert last_error is None
    arrivals = [r.at for r in slack.requests("/hooks/lead")]
    assert len(arrivals) == 4
    assert arrivals[1] - arrivals[0] >= 1.0  # Retry-After honoured


def test_permanent_slack_error_marks_the_notification_failed_with_the_error(
    stub: pb_grpc.TicketServiceStub, procs: Processes, slack: FakeSlack
) -> None:
    slack.script("/hooks/lead", Reply(404, "no_service"))
    procs.worker()
    procs.scheduler()
    stub.IngestTickets(pb.IngestTicketsRequest(events=[past_ticket("GONE-1", 20)]))

    def failed() -> bool:
        alerts = stub.GetTicket(pb.GetTicketRequest(ticket_id="GONE-1")).alerts
        return bool(alerts) and alerts[0].notifications[0].state == pb.NOTIFICATION_STATE_FAILED

    poll(failed, what="notification failed")
    note = stub.GetTicket(pb.GetTicketRequest(ticket_id="GONE-1")).alerts[0].notifications[0]
    assert note.last_error == "HTTP 404: no_service"
    assert note.attempts == 1


def test_rows_whose_messages_were_lost_are_swept_and_delivered(
    stub: pb_grpc.TicketServiceStub,
    procs: Processes,
    slack: FakeSlack,
    database_url: str,
    config_path: Path,
) -> None:
    """Alerts committed while nothing could enqueue their delivery (Redis down, a worker died
    after commit) are found by the sweeper and delivered once."""
    stub.IngestTickets(
        pb.IngestTicketsRequest(events=[past_ticket(f"LOST-{i}", 20) for i in range(5)])
    )
    pool = make_pool(database_url)
    try:
        with pool.connection() as conn:
            written = evaluate_batch(conn, load_config(config_path), datetime.now(UTC))
    finally:
        pool.close()
    assert len(written.notifications) == 5  # committed; no deliver message was ever sent
    procs.worker()
    procs.scheduler()
    slack.wait_for(5, "/hooks/lead", timeout=60)
    poll(
        lambda: (
            rows(database_url, "SELECT count(*) FROM notifications WHERE state='sent'")[0][0] == 5
        ),
        what="swept rows sent",
    )
    assert Counter(alert_ids_in(slack.requests("/hooks/lead"))) == Counter(written.alerts)


def test_redis_stopped_and_started_mid_run_loses_nothing(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    slack: FakeSlack,
    config_path: Path,
    tmp_path: Path,
) -> None:
    own = EmbeddedRedis(DATA / f"test-own-redis-{free_port()}", port=free_port()).start()
    procs = Processes(engine_env(database_url, own.url, config_path, slack), tmp_path)
    try:
        procs.worker()
        procs.scheduler()
        stub.IngestTickets(pb.IngestTicketsRequest(events=[past_ticket("R-before", 20)]))
        slack.wait_for(1, "/hooks/lead", timeout=60)
        own.stop()
        stub.IngestTickets(
            pb.IngestTicketsRequest(events=[past_ticket(f"R-during-{i}", 20) for i in range(5)])
        )
        own.start()
        slack.wait_for(6, "/hooks/lead", timeout=120)
        poll(
            lambda: (
                rows(database_url, "SELECT count(*) FROM notifications WHERE state='sent'")[0][0]
                == 6
            ),
            timeout=60,
            what="all delivered after Redis returned",
        )
    finally:
        procs.stop_all()
        own.stop()
    counts = Counter(alert_ids_in(slack.requests("/hooks/lead")))
    assert len(counts) == 6 and set(counts.values()) == {1}


def test_a_worker_killed_mid_run_loses_nothing_and_repeats_no_alert(
    stub: pb_grpc.TicketServiceStub, procs: Processes, slack: FakeSlack, database_url: str
) -> None:
    """SIGKILL while alerts are being delivered: another worker finishes the job; every alert
    exists once and every notification ends sent."""
    for start in range(0, 600, 300):
        stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[past_ticket(f"K-{i}", 20) for i in range(start, start + 300)]
            )
        )
    slack.script("/hooks/lead", *[Reply(delay=0.05)] * 600)
    victim = procs.worker(threads=2)
    procs.scheduler()
    slack.wait_for(20, "/hooks/lead", timeout=60)
    procs.kill(victim)
    procs.worker()
    poll(
        lambda: (
            rows(database_url, "SELECT count(*) FROM notifications WHERE state='sent'")[0][0] == 600
        ),
        timeout=180,
        what="every notification sent after the kill",
    )
    assert rows(
        database_url,
        "SELECT count(*), count(DISTINCT (ticket_id, clock, escalation_level)) FROM alerts",
    ) == [(600, 600)]
    assert set(alert_ids_in(slack.requests("/hooks/lead"))) == {
        r[0] for r in rows(database_url, "SELECT alert_id FROM alerts")
    }
    with psycopg.connect(database_url) as conn:
        levels = conn.execute("SELECT DISTINCT escalation_level FROM tickets").fetchall()
    assert levels == [(3,)]


def test_the_scheduler_has_a_worker_fold_count_buckets_of_hours_a_day_past(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """Through the real scheduler, Redis and a Dramatiq worker: hours more than a day past leave
    the bucket table for the one '-infinity' bucket of their group, and the dashboard's counts
    do not move. Ticks of 600 s make the scheduler's first tick a fold tick."""
    now = datetime.now(UTC)
    old = [
        event(f"F-{i}", created=now - timedelta(days=3, hours=i), priority="low", tier="gold")
        for i in range(30)
    ]
    stub.IngestTickets(pb.IngestTicketsRequest(events=old))
    stale = (
        "SELECT count(*) FROM ticket_state_buckets WHERE"
        " (warn_hour < now() - interval '1 day' AND warn_hour <> '-infinity')"
        " OR (breach_hour < now() - interval '1 day' AND breach_hour <> '-infinity')"
    )
    assert rows(database_url, stale)[0][0] > 1  # one bucket per hour before the fold
    before = stub.GetDashboard(pb.GetDashboardRequest()).counts

    procs = Processes(
        engine_env(
            database_url, redis_url, config_path, slack, SLAWATCH_EVAL_INTERVAL_SECONDS="600"
        ),
        tmp_path,
    )
    try:
        procs.worker()
        procs.scheduler()
        poll(lambda: rows(database_url, stale)[0][0] == 0, what="old hours folded")
        folded = "SELECT count(*) FROM ticket_state_buckets WHERE breach_hour = '-infinity'"
        assert rows(database_url, folded)[0][0] >= 1
        assert stub.GetDashboard(pb.GetDashboardRequest()).counts == before
    finally:
        procs.stop_all()
        print(procs.logs())


def test_a_worker_killed_while_its_post_is_in_flight_posts_it_once_more_marked_as_a_repeat(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """The documented guarantee under worker death (README, Slack delivery): at least once. A
    worker SIGKILLed while Slack holds its POST open never learns the outcome; when its lease
    runs out the next worker posts the message again, exactly once more, saying it may be a
    repeat, with the same idempotency key as the first copy; the row ends sent after 2
    attempts and nothing else is posted."""
    slack.script("/hooks/lead", Reply(delay=120))  # held open until long after the kill
    procs = Processes(
        engine_env(database_url, redis_url, config_path, slack, SLAWATCH_SLACK_TIMEOUT_SECONDS="5"),
        tmp_path,
    )
    try:
        victim = procs.worker(threads=1)
        procs.scheduler()
        stub.IngestTickets(pb.IngestTicketsRequest(events=[past_ticket("HELD-1", 20)]))
        slack.wait_for(1, "/hooks/lead", timeout=60)
        procs.kill(victim)  # well within the 5 s send timeout: the POST is still in flight
        procs.worker()
        poll(
            lambda: rows(database_url, "SELECT state FROM notifications") == [("sent",)],
            timeout=120,
            what="the interrupted notification sent by the next worker",
        )
        time.sleep(4)  # several ticks and sweeps: a third copy would show up by now
    finally:
        procs.stop_all()
        print(procs.logs())
    first, second = slack.requests("/hooks/lead")
    keys = [r.body["blocks"][-1]["elements"][1]["text"].split(" · ")[0] for r in (first, second)]
    (alert_id,) = alert_ids_in([first])
    (notification_id,) = rows(database_url, "SELECT notification_id FROM notifications")[0]
    assert keys == [f"key slawatch-a{alert_id}-n{notification_id}"] * 2
    assert "may repeat" not in str(first.body)
    assert "may repeat the message of" in str(second.body["text"])
    assert rows(database_url, "SELECT attempts, sending_at FROM notifications") == [(2, None)]


def test_the_sweeper_leaves_rows_whose_messages_are_still_queued_alone(
    stub: pb_grpc.TicketServiceStub, procs: Processes, slack: FakeSlack, database_url: str
) -> None:
    """A burst that takes a one-thread worker far longer than the 2 s sweep grace to deliver:
    the rows waiting in the notify queue are on their way, not lost, so the sweeper re-enqueues
    at most what the worker had prefetched when the queue ran dry (2 per thread), where it used
    to re-enqueue every waiting row on every tick. Each alert is still posted exactly once."""
    burst = 40
    slack.script("/hooks/lead", *[Reply(delay=0.25)] * burst)  # ≥ 10 s of sends
    procs.worker(threads=1)
    procs.scheduler()
    stub.IngestTickets(
        pb.IngestTicketsRequest(events=[past_ticket(f"BURST-{i}", 20) for i in range(burst)])
    )
    poll(
        lambda: (
            rows(database_url, "SELECT count(*) FROM notifications WHERE state = 'sent'")[0][0]
            == burst
        ),
        timeout=120,
        what="the whole burst sent",
    )
    time.sleep(3)  # a few more ticks and sweeps
    procs.stop_all()
    logs = "".join(p.read_text(errors="replace") for p in procs.log_dir.glob("worker-*.log"))
    swept = sum(int(m) for m in re.findall(r"sweeper re-enqueued (\d+) pending notif", logs))
    assert swept <= 2, swept
    counts = Counter(alert_ids_in(slack.requests("/hooks/lead")))
    assert len(counts) == burst and set(counts.values()) == {1}
