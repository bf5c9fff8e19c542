"""One webhook send over real HTTP to a loopback stand-in for Slack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from internal.notify.slack import is_retryable, send
from support.fake_slack import FakeSlack, Reply

PAYLOAD = {
    "text": "hello",
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}],
}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_ok_is_delivered_with_the_blocks(slack: FakeSlack) -> None:
    result = send(slack.url(), PAYLOAD, timeout=5)
    assert result.ok and result.status == 200
    (recorded,) = slack.requests("/hooks/team")
    assert recorded.body == PAYLOAD


def test_429_reports_retry_after(slack: FakeSlack) -> None:
    slack.script("/hooks/team", Reply(429, "rate_limited", {"Retry-After": "3"}))
    result = send(slack.url(), PAYLOAD, timeout=5)
    assert not result.ok and result.status == 429
    assert result.retry_after == 3.0
    assert is_retryable(result)


def test_500_is_retryable_and_404_is_not(slack: FakeSlack) -> None:
    slack.script("/hooks/team", Reply(500, "oops"), Reply(404, "no_service"))
    first = send(slack.url(), PAYLOAD, timeout=5)
    second = send(slack.url(), PAYLOAD, timeout=5)
    assert first.status == 500 and is_retryable(first)
    assert second.status == 404 and not is_retryable(second)
    assert second.error == "HTTP 404: no_service"


def test_a_slow_answer_is_a_timeout(slack: FakeSlack) -> None:
    slack.script("/hooks/team", Reply(delay=3))
    result = send(slack.url(), PAYLOAD, timeout=1)
    assert not result.ok and result.error == "timeout"
    assert is_retryable(result)


def test_errors_never_contain_the_webhook_url(slack: FakeSlack) -> None:
    """The webhook URL is a secret: it must not reach the database or the logs."""
    secret = slack.url("/hooks/T000/B000/sekrit-token")
    slack.script("/hooks/T000/B000/sekrit-token", Reply(500, "boom"))
    failures = [
        send(secret, PAYLOAD, timeout=5),
        send("http://127.0.0.1:9/sekrit-token", PAYLOAD, 2),
    ]
    for result in failures:
        assert not result.ok
        assert "sekrit" not in (result.error or "")
