"""Delivery through Slack outages (DESIGN §11): real worker and scheduler processes, PostgreSQL,
Redis, the gRPC server and the loopback Slack stand-in, with time compressed by the delivery
settings (deadline, backoff cap, breaker cool-down). Also, in process: a message sent late says
by how much."""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg_pool
import pytest

from internal.config.sla_config import load_config
from internal.embedded.ports import free_port
from internal.notify.notifier import for_channel
from internal.usecase.evaluate import evaluate_batch
from internal.worker import delivery
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.events import event
from support.fake_slack import FakeSlack, Recorded
from support.ops import engine_env, scrape_when_up, value
from support.workers import CHANNEL_PATHS, Processes, poll, rows

LEAD = "/hooks/lead"  # level 3 (breach) of the test config: a high/gold ticket 20 minutes old
TEAM = "/hooks/team"  # level 1 (warning): a low/gold ticket 52 minutes into its hour


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def lead_ticket(ticket_id: str) -> pb.TicketEvent:
    return event(ticket_id, created=datetime.now(UTC) - timedelta(minutes=20))


def team_ticket(ticket_id: str) -> pb.TicketEvent:
    return event(
        ticket_id, created=datetime.now(UTC) - timedelta(minutes=52), priority="low", tier="gold"
    )


def alert_id(request: Recorded) -> int:
    match = re.search(r"alert (\d+)", str(request.body))
    assert match, request
    return int(match.group(1))


def delivered(requests: list[Recorded]) -> list[Recorded]:
    return [r for r in requests if r.status == 200]


def states(database_url: str, channel: str) -> Counter[str]:
    found = rows(database_url, "SELECT state FROM notifications WHERE channel = %s", channel)
    return Counter(str(r[0]) for r in found)


def processes(
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
    **extra: str,
) -> Processes:
    return Processes(engine_env(database_url, redis_url, config_path, slack, **extra), tmp_path)


def test_after_an_outage_every_alert_is_delivered_once_oldest_first_within_the_rate(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """Slack answers 500 for 6 s while alerts keep coming (in batches, so that they have
    different ages), then recovers. Two workers share the channel's breaker and pacing: every
    alert is posted successfully exactly once, in alert order, and posts to the webhook (failed
    ones included) come no faster than one per second. Nothing is failed: the 60 s deadline
    is far away."""
    procs = processes(
        database_url,
        redis_url,
        config_path,
        slack,
        tmp_path,
        SLAWATCH_DELIVERY_SEND_INTERVAL="1s",
        SLAWATCH_DELIVERY_DEADLINE="60s",
        SLAWATCH_DELIVERY_BACKOFF_MAX="1s",
        SLAWATCH_BREAKER_COOL_DOWN="1s",
        SLAWATCH_BREAKER_FAILURES="3",
    )
    try:
        slack.outage(LEAD, 6.0)
        procs.worker()
        procs.worker()
        procs.scheduler()
        for batch in range(4):
            stub.IngestTickets(
                pb.IngestTicketsRequest(events=[lead_ticket(f"OUT-{batch}-{i}") for i in range(2)])
            )
            time.sleep(1.0)
        poll(lambda: states(database_url, "lead") == Counter(sent=8), timeout=90, what="all sent")
        time.sleep(2)  # a repeat would need a redelivery: give it the time to show up
    finally:
        procs.stop_all()
        print(procs.logs())
    posts = slack.requests(LEAD)
    ok = delivered(posts)
    assert len(posts) > len(ok), "the outage was seen"
    alerts = [int(r[0]) for r in rows(database_url, "SELECT alert_id FROM alerts ORDER BY 1")]
    assert [alert_id(r) for r in ok] == alerts  # each once, oldest first
    # Sends are granted at least 1 s apart (by the clock read under the channel row's lock);
    # an arrival lags its grant by the commit and the POST, a few ms to ~0.1 s on this shared
    # 2-core machine. So no gap is much under a second, and no burst builds up: any k+1
    # consecutive posts span at least k seconds, less that lag.
    gaps = [b.at - a.at for a, b in itertools.pairwise(posts)]
    assert min(gaps) >= 0.85, gaps
    for i, first in enumerate(posts):
        for k, later in enumerate(posts[i + 1 :], start=1):
            assert later.at - first.at >= k - 0.15, (i, k, gaps)


def test_a_404_webhook_fails_at_once_with_its_reason_while_another_channel_keeps_delivering(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """The team webhook answers 404 channel_not_found: each of its notifications fails on its
    first attempt with Slack's answer as the reason, and its breaker stays closed (Slack
    answered); the lead channel's alerts are all delivered."""
    procs = processes(database_url, redis_url, config_path, slack, tmp_path)
    try:
        slack.outage(TEAM, 120.0, (404, "channel_not_found"))
        procs.worker()
        procs.scheduler()
        stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[team_ticket(f"GONE-{i}") for i in range(3)]
                + [lead_ticket(f"LIVE-{i}") for i in range(3)]
            )
        )
        poll(
            lambda: (
                states(database_url, "team") == Counter(failed=3)
                and states(database_url, "lead") == Counter(sent=3)
            ),
            timeout=60,
            what="team failed, lead sent",
        )
    finally:
        procs.stop_all()
        print(procs.logs())
    assert rows(
        database_url,
        "SELECT DISTINCT attempts, last_error FROM notifications WHERE channel = 'team'",
    ) == [(1, "HTTP 404: channel_not_found")]
    assert len(slack.requests(TEAM)) == 3
    assert rows(
        database_url,
        "SELECT state, consecutive_failures FROM delivery_channels WHERE channel = 'team'",
    ) == [("closed", 0)]


def test_the_open_breaker_survives_a_worker_restart_and_the_new_worker_waits_it_out(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """The lead webhook is dead (500). Two failures open its breaker for 6 s; the worker is
    killed while it is open and another one started: the new worker sends nothing to the dead
    webhook before the breaker's retry_at (read from PostgreSQL), then probes one at a time, no
    more than once per cool-down; meanwhile it delivers the team channel's alert at once, and
    its metrics show the lead breaker open. When Slack recovers every lead alert is sent."""
    metrics_port = free_port()
    procs = processes(
        database_url,
        redis_url,
        config_path,
        slack,
        tmp_path,
        SLAWATCH_DELIVERY_SEND_INTERVAL="0.01",
        SLAWATCH_DELIVERY_BACKOFF_MAX="6s",
        SLAWATCH_BREAKER_COOL_DOWN="6s",
        SLAWATCH_BREAKER_FAILURES="2",
        SLAWATCH_WORKER_METRICS_PORT=str(metrics_port),
    )
    breaker_row = "SELECT state, retry_at FROM delivery_channels WHERE channel = 'lead'"
    try:
        slack.outage(LEAD, 300.0)
        first = procs.worker()
        procs.scheduler()
        stub.IngestTickets(
            pb.IngestTicketsRequest(events=[lead_ticket(f"DEAD-{i}") for i in range(4)])
        )
        poll(
            lambda: (
                rows(database_url, breaker_row)[0:1]
                and rows(database_url, breaker_row)[0][0] == "open"
            ),
            timeout=60,
            what="lead breaker open",
        )
        procs.kill(first)
        state, retry_at = rows(database_url, breaker_row)[0]
        assert state == "open" and isinstance(retry_at, datetime)
        before = len(slack.requests(LEAD))
        procs.worker()
        stub.IngestTickets(pb.IngestTicketsRequest(events=[team_ticket("ALIVE-1")]))
        slack.wait_for(1, TEAM, timeout=30)  # another channel goes on while lead is open
        assert datetime.now(UTC) < retry_at, "the team alert came before the lead probe was due"
        samples = None
        while (
            samples is None
            or value(samples, "slawatch_delivery_breaker_state", channel="lead") != 2
        ):
            assert datetime.now(UTC) < retry_at - timedelta(seconds=0.5), samples
            samples = scrape_when_up(metrics_port)
            time.sleep(0.2)
        time.sleep(max((retry_at - datetime.now(UTC)).total_seconds() - 0.3, 0))
        assert len(slack.requests(LEAD)) == before, "sent to the dead webhook while open"
        time.sleep(6.0 * 2 + 1)  # two cool-downs (the cap): at most one probe each, plus slack
        probes = slack.requests(LEAD)[before:]
        assert 1 <= len(probes) <= 3, [p.at for p in probes]
        slack.outage(LEAD, 0)  # Slack recovers
        poll(lambda: states(database_url, "lead") == Counter(sent=4), timeout=60, what="lead sent")
    finally:
        procs.stop_all()
        print(procs.logs())
    assert Counter(alert_id(r) for r in delivered(slack.requests(LEAD))) == Counter(
        {
            int(r[0]): 1
            for r in rows(database_url, "SELECT alert_id FROM notifications WHERE channel = 'lead'")
        }
    )


def test_past_the_deadline_a_row_is_failed_with_the_reason_and_not_before(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """Slack never recovers: the notification keeps being retried (well past the 8 attempts that
    used to be the end; its breaker opens and probes every 0.2 s), stays pending 10 s after its
    alert, and is failed once the 12 s deadline has passed, with the deadline and the last error
    as its reason."""
    procs = processes(
        database_url,
        redis_url,
        config_path,
        slack,
        tmp_path,
        SLAWATCH_DELIVERY_DEADLINE="12s",
        SLAWATCH_DELIVERY_BACKOFF_MAX="0.2s",
        SLAWATCH_BREAKER_COOL_DOWN="0.2s",
        SLAWATCH_BREAKER_FAILURES="3",
    )
    query = (
        "SELECT n.state, n.attempts, n.last_error, a.created_at FROM notifications n"
        " JOIN alerts a USING (alert_id)"
    )
    try:
        slack.outage(LEAD, 300.0)
        procs.worker()
        procs.scheduler()
        stub.IngestTickets(pb.IngestTicketsRequest(events=[lead_ticket("LATE-1")]))
        poll(lambda: rows(database_url, query), timeout=30, what="the alert written")
        created = rows(database_url, query)[0][3]
        assert isinstance(created, datetime)
        time.sleep(max((created + timedelta(seconds=10) - datetime.now(UTC)).total_seconds(), 0))
        state, attempts, _, _ = rows(database_url, query)[0]
        assert state == "pending" and int(attempts) > 8  # type: ignore[call-overload]
        poll(lambda: rows(database_url, query)[0][0] == "failed", timeout=30, what="failed")
    finally:
        procs.stop_all()
        print(procs.logs())
    _, _, last_error, _ = rows(database_url, query)[0]
    assert last_error == (
        "not delivered within the delivery deadline (12s after the alert);"
        " last error: HTTP 500: rollup_error"
    )


def test_a_message_sent_after_an_outage_says_how_late_it_is_and_why(
    stub_factory: object,
    pool: psycopg_pool.ConnectionPool,
    config_path: Path,
    slack: FakeSlack,
    database_url: str,
) -> None:
    """In process, with the clock as a parameter: the first attempt fails (500), the channel's
    breaker then stays closed (one failure), and the retry 14 minutes after the alert goes
    through saying "delivered 14m late: Slack was unreachable"; the first attempt, on time,
    says nothing of the kind."""
    stub = stub_factory(config_path)  # type: ignore[operator]
    stub.IngestTickets(pb.IngestTicketsRequest(events=[lead_ticket("SLOW-1")]))
    config = load_config(config_path)
    with pool.connection() as conn:
        (notification_id,) = evaluate_batch(conn, config, datetime.now(UTC)).notifications
    (created,) = rows(database_url, "SELECT created_at FROM alerts")[0]
    assert isinstance(created, datetime)
    slack.outage(LEAD, 300.0)
    env = {var: slack.url(path) for var, path in CHANNEL_PATHS.items()}

    def notifiers(channel: object) -> delivery.Notifier:
        return for_channel(channel, env, timeout=5)  # type: ignore[arg-type]

    lease = timedelta(seconds=30)
    first = delivery.deliver(
        pool,
        config,
        notification_id,
        created + timedelta(seconds=5),
        notifier_for=notifiers,
        lease=lease,
    )
    assert first.result is delivery.Result.RETRY
    slack.outage(LEAD, 0)
    second = delivery.deliver(
        pool,
        config,
        notification_id,
        created + timedelta(minutes=14),
        notifier_for=notifiers,
        lease=lease,
    )
    assert second.result is delivery.Result.SENT
    failed, posted = slack.requests(LEAD)
    assert "late" not in str(failed.body)
    assert "delivered 14m late: Slack was unreachable" in str(posted.body["text"])
