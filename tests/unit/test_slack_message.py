"""The Slack message and the retry policy: pure functions with explicit timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from internal.notify.slack import (
    AlertMessage,
    DeliveryResult,
    build_payload,
    is_retryable,
    next_delay,
)

DUE = datetime(2026, 11, 2, 9, 15, tzinfo=UTC)


def message(kind: str = "breach", ticket_id: str = "T-1", level: int = 3) -> AlertMessage:
    return AlertMessage(
        alert_id=42,
        ticket_id=ticket_id,
        clock="response",
        kind=kind,
        escalation_level=level,
        due_at=DUE,
        priority="high",
        customer_tier="gold",
        channel="team",
    )


def text_of(payload: dict[str, object]) -> str:
    return json.dumps(payload)


def test_breach_says_how_long_ago_and_the_level() -> None:
    payload = build_payload(message(), DUE + timedelta(minutes=12), None)
    assert "breached 12m ago" in text_of(payload)
    assert payload["blocks"][0]["text"]["text"].startswith(":rotating_light: SLA breached")  # type: ignore[index]
    assert "escalation level 3" in str(payload["text"])
    assert "high / gold" in text_of(payload)


def test_warning_says_how_close() -> None:
    payload = build_payload(message("warning", level=1), DUE - timedelta(minutes=4), None)
    assert "due in 4m" in text_of(payload)
    assert ":warning:" in text_of(payload)


def test_due_time_uses_slack_date_formatting_with_iso_fallback() -> None:
    payload = build_payload(message(), DUE, None)
    assert f"<!date^{int(DUE.timestamp())}^" in text_of(payload)
    assert "2026-11-02T09:15:00Z" in text_of(payload)


def test_ticket_link_quotes_the_id_and_escapes_control_characters() -> None:
    payload = build_payload(
        message(ticket_id="A&B <x>/1"), DUE, "https://desk.example.com/t/{ticket_id}"
    )
    body = text_of(payload)
    assert "<https://desk.example.com/t/A%26B%20%3Cx%3E%2F1|A&amp;B &lt;x&gt;/1>" in body


def test_without_template_the_ticket_id_is_plain_code() -> None:
    assert "`T-1`" in text_of(build_payload(message(), DUE, None))


def test_retryable_results() -> None:
    assert is_retryable(DeliveryResult(False, 429))
    assert is_retryable(DeliveryResult(False, 500))
    assert is_retryable(DeliveryResult(False, 503))
    assert is_retryable(DeliveryResult(False, None, error="timeout"))
    assert not is_retryable(DeliveryResult(False, 404, error="HTTP 404: no_service"))
    assert not is_retryable(DeliveryResult(False, 400))
    assert not is_retryable(DeliveryResult(True, 200))


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    top = [next_delay(a, None, base=1, cap=60, rand=lambda: 0.999999) for a in range(1, 9)]
    assert [round(d) for d in top] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_jitter_scales_the_delay() -> None:
    assert next_delay(3, None, base=1, cap=60, rand=lambda: 0.5) == 2.0
    assert next_delay(3, None, base=1, cap=60, rand=lambda: 0.0) == 0.0


def test_retry_after_is_a_floor() -> None:
    assert next_delay(1, 7.0, base=1, cap=60, rand=lambda: 0.5) == 7.0
    assert next_delay(8, 1.0, base=1, cap=60, rand=lambda: 0.5) == 30.0
