"""Delivery of one notification row in process: the real evaluator writes the alert and its row in
PostgreSQL, `delivery.deliver` claims, posts to the loopback Slack stand-in and records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg_pool
import pytest

from internal.config.sla_config import SlaConfig, load_config
from internal.notify.notifier import AlertMessage, DeliveryResult, Notifier, for_channel
from internal.usecase.evaluate import evaluate_batch
from internal.worker import delivery
from slawatch.v1 import ticket_service_pb2 as pb
from support.configs import write_config
from support.env import StubFactory
from support.events import event
from support.fake_slack import FakeSlack, Reply
from support.workers import rows

ENV_OF = {"SLACK_WEBHOOK_URL": "/hooks/team", "SLACK_WEBHOOK_URL_LEAD": "/hooks/lead"}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def short_config(tmp_path: Path) -> Path:
    """A 100 s response target: the first warning (85 %) at 85 s, the breach at 100 s."""
    return write_config(
        tmp_path / "short.yaml",
        policies={"high": {"gold": {"response": "100s", "resolution": "1h"}}},
    )


LEASE = timedelta(seconds=30)


def slack_notifiers(slack: FakeSlack) -> delivery.NotifierFor:
    """The worker's own channel lookup, with webhooks on the stand-in."""
    env = {var: slack.url(path) for var, path in ENV_OF.items()}
    return lambda channel: for_channel(channel, env, timeout=5)


def late_reply_alert(
    stub_factory: StubFactory, pool: psycopg_pool.ConnectionPool, config_path: Path
) -> tuple[SlaConfig, int, datetime, datetime]:
    """A first reply at 90 s on a 100 s target, evaluated 200 s after creation: the response
    clock stopped past its first warning step before the evaluator saw it. Returns the config,
    the one notification row written, the stop instant and the evaluation instant."""
    stub = stub_factory(config_path)
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=250)
    replied = created + timedelta(seconds=90)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[
                event("LATE-1", created=created),
                event("LATE-1", pb.TICKET_STATUS_IN_PROGRESS, created=created, updated=replied),
            ]
        )
    )
    config = load_config(config_path)
    evaluated = created + timedelta(seconds=200)
    with pool.connection() as conn:
        batch = evaluate_batch(conn, config, evaluated)
    assert [(a.clock, a.kind, a.level) for a in batch.raised] == [("response", "warning", 1)]
    (notification_id,) = batch.notifications
    return config, notification_id, replied, evaluated


def test_an_alert_on_a_clock_stopped_past_a_warning_is_delivered_saying_when_it_stopped(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    short_config: Path,
    slack: FakeSlack,
    database_url: str,
) -> None:
    """The alert has no due time (the clock stopped short of its target); its message says the
    clock stopped, and when, and the row ends sent after one attempt."""
    config, notification_id, replied, evaluated = late_reply_alert(stub_factory, pool, short_config)
    outcome = delivery.deliver(
        pool,
        config,
        notification_id,
        evaluated + timedelta(seconds=1),
        notifier_for=slack_notifiers(slack),
        lease=LEASE,
    )
    assert outcome.result is delivery.Result.SENT
    (posted,) = slack.requests("/hooks/team")
    text = str(posted.body["text"])
    stopped_iso = replied.isoformat().replace("+00:00", "Z")
    assert f"clock stopped {stopped_iso}" in text, text
    assert "due" not in text
    fields = [f["text"] for f in posted.body["blocks"][1]["fields"]]
    (clock_field,) = [f for f in fields if f.startswith("*Clock*")]
    assert "stopped" in clock_field and stopped_iso in clock_field
    assert not any(f.startswith("*Due*") for f in fields)
    assert rows(
        database_url,
        "SELECT state, attempts FROM notifications WHERE notification_id = %s",
        notification_id,
    ) == [("sent", 1)]


def test_any_exception_after_the_claim_is_a_failed_attempt_and_the_cap_applies(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    short_config: Path,
    slack: FakeSlack,
    database_url: str,
) -> None:
    """A sender that raises: every attempt is recorded as a retry with the error; the attempt
    that reaches MAX_ATTEMPTS marks the row failed, and nothing is left pending."""
    config, notification_id, _, now = late_reply_alert(stub_factory, pool, short_config)

    class Broken:
        def send(self, message: AlertMessage, now: datetime) -> DeliveryResult:
            raise RuntimeError("sender blew up")

        def is_retryable(self, result: DeliveryResult) -> bool:
            return True

    def broken(channel: Any) -> Notifier:
        return Broken()

    for attempt in range(1, delivery.MAX_ATTEMPTS + 1):
        now += timedelta(hours=1)  # past any backoff
        outcome = delivery.deliver(
            pool, config, notification_id, now, notifier_for=broken, lease=LEASE
        )
        state, attempts, error = rows(
            database_url,
            "SELECT state, attempts, last_error FROM notifications WHERE notification_id = %s",
            notification_id,
        )[0]
        assert attempts == attempt
        assert error == "RuntimeError: sender blew up"
        if attempt < delivery.MAX_ATTEMPTS:
            assert outcome.result is delivery.Result.RETRY and state == "pending"
        else:
            assert outcome.result is delivery.Result.FAILED and state == "failed"
    assert slack.requests() == []


def test_a_channel_whose_webhook_variable_is_unset_fails_at_once_naming_the_variable(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    short_config: Path,
    slack: FakeSlack,
    database_url: str,
) -> None:
    """No notifier for the channel: the row fails on its first attempt with the variable named,
    and nothing is posted."""
    config, notification_id, _, now = late_reply_alert(stub_factory, pool, short_config)
    outcome = delivery.deliver(
        pool,
        config,
        notification_id,
        now,
        notifier_for=lambda channel: for_channel(channel, {}, timeout=5),
        lease=LEASE,
    )
    assert outcome.result is delivery.Result.FAILED
    assert rows(
        database_url,
        "SELECT state, attempts, last_error FROM notifications WHERE notification_id = %s",
        notification_id,
    ) == [("failed", 1, "SLACK_WEBHOOK_URL is not set")]
    assert slack.requests() == []


def test_the_attempt_after_a_timed_out_send_says_it_may_repeat_it(
    stub_factory: StubFactory,
    pool: psycopg_pool.ConnectionPool,
    short_config: Path,
    slack: FakeSlack,
) -> None:
    """A send that timed out may have reached Slack: the retry is posted marked as a possible
    repeat of it, with the same key; a send refused outright is not such a case."""
    config, notification_id, _, now = late_reply_alert(stub_factory, pool, short_config)
    slack.script("/hooks/team", Reply(500, "oops"), Reply(delay=3))  # then ok
    env = {var: slack.url(path) for var, path in ENV_OF.items()}

    def notifiers(channel: Any) -> Notifier:
        return for_channel(channel, env, timeout=1)

    results = []
    for _ in range(3):
        now += timedelta(hours=1)  # past any backoff
        results.append(
            delivery.deliver(
                pool, config, notification_id, now, notifier_for=notifiers, lease=LEASE
            ).result
        )
    assert results == [delivery.Result.RETRY, delivery.Result.RETRY, delivery.Result.SENT]
    refused, timed_out, last = slack.wait_for(3, "/hooks/team")
    assert "may repeat" not in str(refused.body) and "may repeat" not in str(timed_out.body)
    assert "may repeat the message of" in str(last.body["text"])
