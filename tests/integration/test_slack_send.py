"""One webhook send over real HTTP to a loopback stand-in for Slack."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from internal.notify.notifier import AlertMessage
from internal.notify.slack import INVALID_URL, build_payload, is_retryable, send
from support.fake_slack import FakeSlack, Reply

HOOK = "/hooks/team"
PAYLOAD = {
    "text": "hello",
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}],
}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def refused_url(path: str = "/hooks/team") -> str:
    """A loopback URL nothing listens on: the port was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def test_ok_is_delivered_as_json_with_the_blocks(slack: FakeSlack) -> None:
    now = datetime(2026, 11, 2, 9, 27, tzinfo=UTC)
    msg = AlertMessage(
        alert_id=7,
        ticket_id="T-9",
        clock="resolution",
        kind="breach",
        escalation_level=3,
        due_at=now - timedelta(minutes=12),
        priority="high",
        customer_tier="gold",
        channel="team",
    )
    payload = build_payload(msg, now, "https://desk.example.com/t/{ticket_id}")
    result = send(slack.url(), payload, timeout=5)
    assert result.ok and result.status == 200 and result.error is None
    (recorded,) = slack.requests(HOOK)
    assert recorded.body == payload
    assert recorded.body["blocks"][0]["type"] == "header"
    assert recorded.headers["Content-Type"].startswith("application/json")


def test_429_reports_retry_after_and_is_not_retried_inside_the_client(slack: FakeSlack) -> None:
    """We own the retry schedule: slack-sdk must hand the 429 back after one request."""
    slack.script(HOOK, (429, "rate_limited", {"Retry-After": "3"}))
    result = send(slack.url(), PAYLOAD, timeout=5)
    assert not result.ok and result.status == 429
    assert result.retry_after == 3.0
    assert is_retryable(result)
    time.sleep(0.2)
    assert len(slack.requests(HOOK)) == 1


def test_retry_after_given_as_an_http_date_is_read_as_seconds(slack: FakeSlack) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    slack.script(HOOK, Reply(429, "rate_limited", {"Retry-After": later}))
    result = send(slack.url(), PAYLOAD, timeout=5)
    assert result.retry_after is not None and 25 <= result.retry_after <= 30


def test_500_is_retryable_and_404_is_not(slack: FakeSlack) -> None:
    slack.script(HOOK, Reply(500, "oops"), Reply(404, "no_service"))
    first = send(slack.url(), PAYLOAD, timeout=5)
    second = send(slack.url(), PAYLOAD, timeout=5)
    assert first.status == 500 and is_retryable(first)
    assert second.status == 404 and not is_retryable(second)
    assert second.error == "HTTP 404: no_service"


def test_403_invalid_token_is_permanent(slack: FakeSlack) -> None:
    slack.script(HOOK, (403, "invalid_token"))
    result = send(slack.url(), PAYLOAD, timeout=5)
    assert result.error == "HTTP 403: invalid_token" and not is_retryable(result)


def test_a_slow_answer_is_a_timeout(slack: FakeSlack) -> None:
    slack.script(HOOK, Reply(delay=3))
    result = send(slack.url(), PAYLOAD, timeout=1)
    assert not result.ok and result.status is None and result.error == "timeout"
    assert is_retryable(result)


def test_a_sub_second_timeout_is_not_rounded_up(slack: FakeSlack) -> None:
    """The worker's claim lease is a multiple of the send timeout: a send must not outlast it."""
    slack.script(HOOK, Reply(delay=3))
    started = time.monotonic()
    result = send(slack.url(), PAYLOAD, timeout=0.3)
    assert result.error == "timeout"
    assert time.monotonic() - started < 1.0


def test_a_refused_connection_is_a_retryable_connection_error() -> None:
    result = send(refused_url(), PAYLOAD, timeout=2)
    assert not result.ok and result.status is None
    assert (result.error or "").startswith("connection error: ")
    assert is_retryable(result)


@pytest.mark.parametrize(
    "url",
    [
        "hooks.slack.com/services/T000/B000/sekrit-token",
        "ftp://hooks.slack.com/services/T000/B000/sekrit-token",
        "http://127.0.0.1:sekrit-token/services",
        "https:///services/T000/B000/sekrit-token",
    ],
)
def test_a_malformed_webhook_url_fails_permanently_without_raising_or_echoing(url: str) -> None:
    result = send(url, PAYLOAD, timeout=2)
    assert result == type(result)(False, None, error=INVALID_URL)
    assert not is_retryable(result)


def test_errors_never_contain_the_webhook_url(slack: FakeSlack) -> None:
    """The webhook URL is a secret: it must not reach the database or the logs."""
    secret_path = "/hooks/T000/B000/sekrit-token"
    slack.script(secret_path, Reply(500, "boom"), Reply(400, f"bad request to {secret_path}"))
    failures = [
        send(slack.url(secret_path), PAYLOAD, timeout=5),
        send(slack.url(secret_path), PAYLOAD, timeout=5),
        send(refused_url(secret_path), PAYLOAD, 2),
        send("http://127.0.0.1:sekrit-token/x", PAYLOAD, 2),
    ]
    for result in failures:
        assert not result.ok
        assert "sekrit" not in (result.error or "")


def test_the_webhook_url_never_reaches_the_logs(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """slack-sdk logs the request URL at debug and on errors; none of it may come out."""
    secret_path = "/hooks/T000/B000/sekrit-token"
    slack.script(secret_path, Reply(500, "boom"), Reply(delay=2))
    with caplog.at_level(logging.DEBUG):
        send(slack.url(secret_path), PAYLOAD, timeout=5)
        send(slack.url(secret_path), PAYLOAD, timeout=0.5)
        send(slack.url(secret_path), PAYLOAD, timeout=5)
        send(refused_url(secret_path), PAYLOAD, 2)
        send("hooks.slack.com/services/sekrit-token", PAYLOAD, 2)
    assert "sekrit" not in caplog.text


def test_wait_for_reports_what_arrived_when_the_count_is_not_reached(slack: FakeSlack) -> None:
    send(slack.url("/hooks/lead"), PAYLOAD, timeout=5)
    with pytest.raises(AssertionError, match=r"got 0.*/hooks/lead"):
        slack.wait_for(1, HOOK, timeout=0.2)
