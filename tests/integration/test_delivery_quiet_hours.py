"""Quiet hours of a channel (DESIGN §11): the real evaluator writes alerts and rows in PostgreSQL,
`delivery.deliver` holds or sends them to the loopback Slack stand-in, the sweeper's repository
calls release them; time is explicit (a Friday night, the Monday morning after). The same with
real worker and scheduler processes and a calendar that opens a few seconds into the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg_pool
import pytest

from internal.config.sla_config import SlaConfig, load_config
from internal.embedded.ports import free_port
from internal.notify.notifier import for_channel
from internal.store import outbox_repo
from internal.usecase.evaluate import evaluate_batch
from internal.worker import delivery
from internal.worker.breaker import BreakerPolicy
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import BASE, write_config
from support.env import StubFactory
from support.events import event
from support.fake_slack import FakeSlack, Recorded
from support.ops import engine_env, scrape_when_up, value
from support.workers import CHANNEL_PATHS, Processes, poll, rows

TEAM = "/hooks/team"
LEASE = timedelta(seconds=30)
# Friday 6 November 2026, 21:00 in Berlin: the emea_office calendar (weekdays 09:00-17:00 CET)
# is closed until Monday 09:00 CET, 08:00 UTC, 60 hours later.
FRIDAY_NIGHT = datetime(2026, 11, 6, 20, 0, tzinfo=UTC)
MONDAY_OPENING = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)
# The team hears of warnings (level 1) and breaches (level 3); at night only breaches go out.
LADDER = [
    {"at_percent": 85, "level": 1, "kind": "warning", "notify": ["team"]},
    {"at_percent": 100, "level": 3, "kind": "breach", "notify": ["team"]},
]


def quiet_team(**quiet: object) -> dict[str, object]:
    return {
        "team": {"slack_webhook_env": "SLACK_WEBHOOK_URL", **quiet},
        "lead": {"slack_webhook_env": "SLACK_WEBHOOK_URL_LEAD"},
        "manager": {"slack_webhook_env": "SLACK_WEBHOOK_URL_MANAGER"},
    }


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def quiet_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "quiet.yaml",
        escalation=LADDER,
        channels=quiet_team(quiet_hours="emea_office", quiet_min_level=3),
    )


def notifiers(slack: FakeSlack) -> delivery.NotifierFor:
    env = {var: slack.url(path) for var, path in CHANNEL_PATHS.items()}
    return lambda channel: for_channel(channel, env, timeout=5)


def friday_night_alerts(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    database_url: str,
    config_path: Path,
) -> tuple[SlaConfig, int, int]:
    """A low/gold ticket 52 minutes into its 1 h response (a level 1 warning) and a high/gold
    one 20 minutes into its 15 m (a level 3 breach), evaluated on Friday night. Returns the
    config and the warning's and the breach's notification rows."""
    stub = stub_factory(config_path)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[
                event(
                    "WARN-1",
                    created=FRIDAY_NIGHT - timedelta(minutes=52),
                    priority="low",
                    tier="gold",
                ),
                event("BREACH-1", created=FRIDAY_NIGHT - timedelta(minutes=20)),
            ]
        )
    )
    config = load_config(config_path)
    with pool.connection() as conn:
        batch = evaluate_batch(conn, config, FRIDAY_NIGHT)
    assert sorted((a.ticket_id, a.level) for a in batch.raised) == [
        ("BREACH-1", 3),
        ("WARN-1", 1),
    ]
    by_level = {
        int(r[1]): int(r[0])
        for r in rows(
            database_url,
            "SELECT n.notification_id, a.escalation_level FROM notifications n"
            " JOIN alerts a USING (alert_id)",
        )
    }
    return config, by_level[1], by_level[3]


def row(database_url: str, notification_id: int) -> tuple[object, ...]:
    (found,) = rows(
        database_url,
        "SELECT state, attempts, next_attempt_at, quiet_until, last_error FROM notifications"
        " WHERE notification_id = %s",
        notification_id,
    )
    return found


def released(pool: psycopg_pool.ConnectionPool, now: datetime) -> list[int]:
    with pool.connection() as conn:
        return [n for n, _ in outbox_repo.take_released(conn, now, 100)]


def test_a_warning_waits_out_the_weekend_while_a_breach_goes_at_once(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    quiet_config: Path,
    slack: FakeSlack,
    database_url: str,
) -> None:
    """On Friday night the team channel is quiet (its calendar is closed) and lets level 3
    through: the warning's delivery sends the breach at once and holds the warning until Monday
    09:00, without an attempt or a word to the breaker. It is not handed back before then; at
    the opening it is, once, and is sent saying it was held, 60 h after its alert and still
    within the 24 h delivery deadline, which counts from the end of the hold."""
    config, warning, breach = friday_night_alerts(stub_factory, pool, database_url, quiet_config)
    send = notifiers(slack)
    outcome = delivery.deliver(pool, config, warning, FRIDAY_NIGHT, notifier_for=send, lease=LEASE)
    assert outcome.result is delivery.Result.SENT
    (posted,) = slack.requests(TEAM)
    assert "SLA breached" in str(posted.body["text"])
    assert row(database_url, breach)[:2] == ("sent", 1)
    assert row(database_url, warning) == ("pending", 0, MONDAY_OPENING, MONDAY_OPENING, None)
    assert rows(
        database_url,
        "SELECT state, consecutive_failures, probe_id FROM delivery_channels",
    ) == [("closed", 0, None)]
    # Another delivery of the channel that night finds nothing to send.
    again = delivery.deliver(
        pool, config, warning, FRIDAY_NIGHT + timedelta(hours=3), notifier_for=send, lease=LEASE
    )
    assert again.result is delivery.Result.SKIPPED
    assert len(slack.requests(TEAM)) == 1

    assert released(pool, MONDAY_OPENING - timedelta(seconds=1)) == []
    assert released(pool, MONDAY_OPENING) == [warning]
    assert released(pool, MONDAY_OPENING + timedelta(seconds=5)) == []  # handed back once
    monday = MONDAY_OPENING + timedelta(seconds=1)
    sent = delivery.deliver(pool, config, warning, monday, notifier_for=send, lease=LEASE)
    assert sent.result is delivery.Result.SENT
    assert row(database_url, warning)[:2] == ("sent", 1)
    held_post = slack.requests(TEAM)[1]
    text = str(held_post.body["text"])
    assert "SLA at risk" in text
    assert "held for the channel's quiet hours until 2026-11-09T08:00:00Z" in text, text
    assert "delivered 2d12h late" in text, text


def test_the_deadline_of_a_held_row_counts_from_the_end_of_its_hold(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    quiet_config: Path,
    slack: FakeSlack,
    database_url: str,
) -> None:
    """A held warning released on Monday 09:00 and still not sent 24 h later is failed as past
    the delivery deadline, and says it counted from the end of its quiet hours."""
    config, warning, _ = friday_night_alerts(stub_factory, pool, database_url, quiet_config)
    send = notifiers(slack)
    delivery.deliver(pool, config, warning, FRIDAY_NIGHT, notifier_for=send, lease=LEASE)
    assert released(pool, MONDAY_OPENING) == [warning]
    late = MONDAY_OPENING + timedelta(hours=24, seconds=1)
    outcome = delivery.deliver(pool, config, warning, late, notifier_for=send, lease=LEASE)
    assert outcome.result is delivery.Result.SKIPPED  # nothing left to send
    state, attempts, _, _, error = row(database_url, warning)
    assert (state, attempts) == ("failed", 0)
    assert error == "not delivered within the delivery deadline (1d after its quiet hours ended)"
    assert len(slack.requests(TEAM)) == 1  # the breach, on Friday


def test_a_row_already_past_its_deadline_is_failed_not_held(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    quiet_config: Path,
    slack: FakeSlack,
    database_url: str,
) -> None:
    """Quiet hours do not give a new deadline to a row whose deadline has already passed: with a
    30 m deadline, a first delivery 31 minutes after the alerts fails both (the breach too)."""
    config, warning, breach = friday_night_alerts(stub_factory, pool, database_url, quiet_config)
    outcome = delivery.deliver(
        pool,
        config,
        warning,
        FRIDAY_NIGHT + timedelta(minutes=31),
        notifier_for=notifiers(slack),
        lease=LEASE,
        policy=delivery.DeliveryPolicy(deadline=timedelta(minutes=30)),
    )
    assert outcome.result is delivery.Result.SKIPPED
    for notification_id in (warning, breach):
        state, attempts, _, quiet_until, error = row(database_url, notification_id)
        assert (state, attempts, quiet_until) == ("failed", 0, None)
        assert error == "not delivered within the delivery deadline (30m after the alert)"
    assert slack.requests() == []


def test_an_outage_during_quiet_hours_leaves_the_held_rows_held(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    quiet_config: Path,
    slack: FakeSlack,
    database_url: str,
) -> None:
    """The breach fails (500) and opens the channel's breaker, which brings the channel's
    backing-off rows forward to its next probe: not the held warning, which still waits for
    Monday, with no attempt."""
    config, warning, breach = friday_night_alerts(stub_factory, pool, database_url, quiet_config)
    slack.outage(TEAM, 60.0)
    one_failure_opens = delivery.DeliveryPolicy(
        breaker=BreakerPolicy(failures_to_open=1, cool_down=30.0)
    )
    outcome = delivery.deliver(
        pool,
        config,
        warning,
        FRIDAY_NIGHT,
        notifier_for=notifiers(slack),
        lease=LEASE,
        policy=one_failure_opens,
    )
    assert outcome.result is delivery.Result.RETRY
    assert rows(database_url, "SELECT state FROM delivery_channels") == [("open",)]
    assert row(database_url, breach)[:2] == ("pending", 1)
    assert row(database_url, warning)[:4] == ("pending", 0, MONDAY_OPENING, MONDAY_OPENING)


def test_a_reload_applies_its_quiet_hours_to_the_rows_held(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    quiet_config: Path,
    slack: FakeSlack,
    database_url: str,
    tmp_path: Path,
) -> None:
    """Held until Monday under the first config. A config whose speaking hours open on Saturday
    morning reschedules the hold to then; one that lets level 1 through releases it at once (its
    deadline counts from that release); one that makes the hold longer leaves it to end as it
    was, to be held again when it comes due."""
    config, warning, _ = friday_night_alerts(stub_factory, pool, database_url, quiet_config)
    send = notifiers(slack)
    delivery.deliver(pool, config, warning, FRIDAY_NIGHT, notifier_for=send, lease=LEASE)
    saturday_08_utc = datetime(2026, 11, 7, 8, 0, tzinfo=UTC)
    calendars = {
        "emea_office": {
            "timezone": "Europe/Berlin",
            "hours": {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat")},
        },
        "late_week": {"timezone": "Europe/Berlin", "hours": {"wed": "09:00-17:00"}},
    }

    def reloaded(name: str, **quiet: object) -> SlaConfig:
        path = write_config(
            tmp_path / f"{name}.yaml",
            escalation=LADDER,
            calendars=calendars,
            channels=quiet_team(**quiet),
        )
        return load_config(path)

    night = FRIDAY_NIGHT + timedelta(hours=1)
    with pool.connection() as conn:
        longer = reloaded("longer", quiet_hours="late_week")
        assert delivery.apply_quiet_hours(conn, longer, night) == 0
        assert row(database_url, warning)[2:4] == (MONDAY_OPENING, MONDAY_OPENING)

        saturday = reloaded("saturday", quiet_hours="emea_office", quiet_min_level=3)
        assert delivery.apply_quiet_hours(conn, saturday, night) == 1
        assert row(database_url, warning)[2:4] == (saturday_08_utc, saturday_08_utc)

        everything = reloaded("everything", quiet_hours="emea_office", quiet_min_level=1)
        assert delivery.apply_quiet_hours(conn, everything, night) == 1
        assert row(database_url, warning)[2:4] == (night, night)
    assert released(pool, night) == [warning]
    later = night + timedelta(seconds=1)
    outcome = delivery.deliver(pool, everything, warning, later, notifier_for=send, lease=LEASE)
    assert outcome.result is delivery.Result.SENT
    assert row(database_url, warning)[:2] == ("sent", 1)


def test_removing_a_channels_quiet_hours_releases_what_it_holds(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    quiet_config: Path,
    slack: FakeSlack,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A reload without quiet hours on the channel: its held rows are due at once."""
    config, warning, _ = friday_night_alerts(stub_factory, pool, database_url, quiet_config)
    delivery.deliver(
        pool, config, warning, FRIDAY_NIGHT, notifier_for=notifiers(slack), lease=LEASE
    )
    plain = load_config(write_config(tmp_path / "plain.yaml", escalation=LADDER))
    night = FRIDAY_NIGHT + timedelta(minutes=5)
    with pool.connection() as conn:
        assert delivery.apply_quiet_hours(conn, plain, night) == 1
    assert row(database_url, warning)[:4] == ("pending", 0, night, night)
    assert released(pool, night) == [warning]


# --- real worker and scheduler processes


def opening_soon(now: datetime, at_least: float) -> datetime:
    """The first whole UTC minute at least `at_least` seconds after `now`."""
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while (minute - now).total_seconds() < at_least:
        minute += timedelta(minutes=1)
    return minute


def opening_at(opening: datetime) -> dict[str, object]:
    """A UTC calendar that opens at `opening` (a whole minute) and is closed for the week
    before it."""
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[opening.weekday()]
    return {"timezone": "UTC", "hours": {weekday: f"{opening:%H:%M}-24:00"}}


def team_posts(slack: FakeSlack) -> list[Recorded]:
    return [r for r in slack.requests(TEAM) if r.status == 200]


def test_quiet_hours_hold_and_release_in_the_running_engine(
    database_url: str,
    redis_url: str,
    slack: FakeSlack,
    tmp_path: Path,
    stub_factory: StubFactory,
) -> None:
    """The team channel is quiet, its calendar opening in three days: a warning is held and the
    breach goes out at once; the held count shows on the worker's metrics, and the held row does
    not age the outbox's oldest pending row. A config reload moves the opening to a whole minute
    10 to 70 s away: the worker's next sweep shortens the hold to it, the warning is not sent
    before it, and when the calendar opens the sweeper hands it back and it is delivered exactly
    once, saying it was held."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config_path = config_dir / "sla_config.yaml"

    def write(calendar: dict[str, object]) -> None:
        write_config(
            config_path,
            escalation=LADDER,
            calendars={**BASE["calendars"], "speaking": calendar},  # type: ignore[dict-item]
            channels=quiet_team(quiet_hours="speaking", quiet_min_level=3),
        )

    far = opening_soon(datetime.now(UTC), 0) + timedelta(days=3)
    write(opening_at(far))
    stub: pb_grpc.TicketServiceStub = stub_factory(config_path)
    metrics_port = free_port()
    procs = Processes(
        engine_env(
            database_url,
            redis_url,
            config_path,
            slack,
            SLAWATCH_WORKER_METRICS_PORT=str(metrics_port),
        ),
        tmp_path,
    )
    held = (
        "SELECT attempts, quiet_until FROM notifications n JOIN alerts a USING (alert_id)"
        " WHERE a.ticket_id = 'Q-WARN'"
    )
    try:
        procs.worker()
        procs.scheduler()
        now = datetime.now(UTC)
        stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[
                    event(
                        "Q-WARN", created=now - timedelta(minutes=52), priority="low", tier="gold"
                    ),
                    event("Q-BREACH", created=now - timedelta(minutes=20)),
                ]
            )
        )
        poll(lambda: len(team_posts(slack)) == 1, timeout=30, what="the breach sent at once")
        assert "SLA breached" in str(team_posts(slack)[0].body["text"])
        poll(lambda: rows(database_url, held) == [(0, far)], timeout=10, what="held")

        def held_gauge() -> float | None:
            samples = scrape_when_up(metrics_port)
            return (
                None
                if samples is None
                else value(samples, "slawatch_notifications_held", channel="team")
            )

        poll(lambda: held_gauge() == 1, timeout=20, what="the held gauge")
        # Pending, but not stuck: the age of the oldest pending row leaves held rows out.
        samples = scrape_when_up(metrics_port)
        assert samples is not None
        assert value(samples, "slawatch_outbox_pending") == 1
        assert value(samples, "slawatch_outbox_oldest_pending_seconds") == 0

        opening = opening_soon(datetime.now(UTC), 10)
        write(opening_at(opening))
        poll(lambda: rows(database_url, held) == [(0, opening)], timeout=8, what="rescheduled")
        wait = (opening - datetime.now(UTC)).total_seconds()
        time.sleep(max(wait - 1.0, 0.0))
        assert len(team_posts(slack)) == 1, "the warning went before the opening"
        poll(lambda: len(team_posts(slack)) == 2, timeout=30, what="the warning at the opening")
        time.sleep(3)  # a repeat would need another message: give it the time to show up
    finally:
        procs.stop_all()
        print(procs.logs())
    posts = team_posts(slack)
    assert len(posts) == 2
    released_post = posts[1]
    assert "SLA at risk" in str(released_post.body["text"])
    opening_iso = opening.isoformat().replace("+00:00", "Z")
    assert f"held for the channel's quiet hours until {opening_iso}" in str(
        released_post.body["text"]
    )
    assert rows(
        database_url, "SELECT state, attempts FROM notifications ORDER BY notification_id"
    ) == [("sent", 1), ("sent", 1)]
