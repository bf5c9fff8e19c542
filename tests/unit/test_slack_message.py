"""The Slack message and the retry policy: pure functions with explicit timestamps."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from internal.backoff import next_delay
from internal.notify.notifier import AlertMessage, DeliveryResult
from internal.notify.slack import INVALID_URL, build_payload, is_retryable

DUE = datetime(2026, 11, 2, 9, 15, tzinfo=UTC)
TEMPLATE = "https://desk.example.com/t/{ticket_id}"


def message(
    kind: str = "breach",
    ticket_id: str = "T-1",
    level: int = 3,
    due_at: datetime = DUE,
    correlation_id: str | None = None,
) -> AlertMessage:
    return AlertMessage(
        alert_id=42,
        ticket_id=ticket_id,
        clock="response",
        kind=kind,
        escalation_level=level,
        due_at=due_at,
        priority="high",
        customer_tier="gold",
        channel="team",
        correlation_id=correlation_id,
    )


def text_of(payload: dict[str, object]) -> str:
    return json.dumps(payload)


def header_of(payload: dict[str, object]) -> str:
    return str(payload["blocks"][0]["text"]["text"])  # type: ignore[index]


def test_breach_says_how_long_ago_and_the_level() -> None:
    payload = build_payload(message(), DUE + timedelta(minutes=12), None)
    assert "breached 12m ago" in text_of(payload)
    assert header_of(payload).startswith(":rotating_light: SLA breached")
    assert "escalation level 3" in str(payload["text"])
    assert "high / gold" in text_of(payload)


def test_long_overdue_breach_reads_in_hours_and_days() -> None:
    hours = build_payload(message(level=4), DUE + timedelta(hours=2, minutes=5), None)
    days = build_payload(message(level=4), DUE + timedelta(days=3, hours=4), None)
    assert "breached 2h05m ago" in text_of(hours)
    assert "breached 3d4h ago" in text_of(days)


def test_warning_says_how_close() -> None:
    payload = build_payload(message("warning", level=1), DUE - timedelta(minutes=4), None)
    assert "due in 4m" in text_of(payload)
    assert header_of(payload).startswith(":warning: SLA at risk")


def test_warning_delivered_after_the_due_time_says_overdue_not_due_in() -> None:
    """A warning can reach Slack late (retries); it must not claim time is left."""
    payload = build_payload(message("warning", level=2), DUE + timedelta(minutes=3), None)
    assert "overdue by 3m" in text_of(payload)
    assert "due in" not in text_of(payload)


def test_warning_and_breach_headers_differ() -> None:
    warning = build_payload(message("warning", level=1), DUE, None)
    breach = build_payload(message("breach", level=3), DUE, None)
    assert header_of(warning).split()[0] != header_of(breach).split()[0]


def test_due_time_uses_slack_date_formatting_with_iso_fallback() -> None:
    payload = build_payload(message(), DUE, None)
    assert f"<!date^{int(DUE.timestamp())}^{{date_short_pretty}} {{time}}|" in text_of(payload)
    assert "2026-11-02T09:15:00Z" in text_of(payload)


def test_due_time_is_shown_in_utc_whatever_zone_due_at_carries() -> None:
    """psycopg hands back timestamptz in the session's zone; the message says UTC, to the second."""
    berlin = DUE.astimezone(ZoneInfo("Europe/Berlin")) + timedelta(microseconds=123456)
    body = text_of(build_payload(message(due_at=berlin), DUE, None))
    assert "2026-11-02T09:15:00Z" in body
    assert "+01:00" not in body and ".123456" not in body


def test_ticket_link_quotes_the_id_and_escapes_control_characters() -> None:
    payload = build_payload(message(ticket_id="A&B <x>/1"), DUE, TEMPLATE)
    body = text_of(payload)
    assert "<https://desk.example.com/t/A%26B%20%3Cx%3E%2F1|A&amp;B &lt;x&gt;/1>" in body


def test_ampersands_and_pipes_in_the_url_template_do_not_break_the_link() -> None:
    payload = build_payload(message(), DUE, "https://desk.example.com/t?id={ticket_id}&v=a|b")
    assert "<https://desk.example.com/t?id=T-1&amp;v=a%7Cb|T-1>" in text_of(payload)


def test_fallback_text_escapes_control_characters() -> None:
    """The `text` fallback is parsed as mrkdwn too: a raw `<` could forge a link or mention."""
    payload = build_payload(message(ticket_id="<!channel>"), DUE, None)
    assert "<!channel>" not in str(payload["text"])
    assert "&lt;!channel&gt;" in str(payload["text"])


def test_without_template_the_ticket_id_is_plain_code() -> None:
    assert "`T-1`" in text_of(build_payload(message(), DUE, None))


def test_context_names_the_alert_and_the_request() -> None:
    payload = build_payload(message(correlation_id="req-7"), DUE, None)
    context = payload["blocks"][-1]["elements"][0]["text"]
    assert context == "alert 42 · clock response · request req-7"


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError):
        message(due_at=DUE.replace(tzinfo=None))
    with pytest.raises(ValueError):
        build_payload(message(), DUE.replace(tzinfo=None), None)


def test_rate_limits_server_errors_and_timeouts_are_retried_other_4xx_are_not() -> None:
    assert is_retryable(DeliveryResult(False, 429))
    assert is_retryable(DeliveryResult(False, 408))
    assert is_retryable(DeliveryResult(False, 500))
    assert is_retryable(DeliveryResult(False, 503))
    assert is_retryable(DeliveryResult(False, None, error="timeout"))
    assert is_retryable(DeliveryResult(False, None, error="connection error: refused"))
    assert not is_retryable(DeliveryResult(False, 404, error="HTTP 404: no_service"))
    assert not is_retryable(DeliveryResult(False, 403, error="HTTP 403: invalid_token"))
    assert not is_retryable(DeliveryResult(False, 400))
    assert not is_retryable(DeliveryResult(False, None, error=INVALID_URL))
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


def test_retry_after_is_honoured_even_above_the_cap() -> None:
    assert next_delay(2, 120.0, base=1, cap=60, rand=lambda: 0.5) == 120.0


def test_a_breach_on_a_clock_that_stopped_says_both_when_it_was_due_and_when_it_stopped() -> None:
    stopped = DUE + timedelta(minutes=5)
    msg = AlertMessage(
        alert_id=42,
        ticket_id="T-1",
        clock="response",
        kind="breach",
        escalation_level=3,
        due_at=DUE,
        priority="high",
        customer_tier="gold",
        channel="team",
        clock_mode="stopped",
        mode_since=stopped,
    )
    text = str(build_payload(msg, DUE + timedelta(minutes=30), None)["text"])
    assert "due 2026-11-02T09:15:00Z, breached 30m ago" in text
    assert "clock stopped 2026-11-02T09:20:00Z" in text


def test_a_message_needs_a_due_time_or_the_instant_its_clock_stopped() -> None:
    with pytest.raises(ValueError, match="due_at"):
        AlertMessage(
            alert_id=1,
            ticket_id="T-1",
            clock="response",
            kind="warning",
            escalation_level=1,
            due_at=None,
            priority="high",
            customer_tier="gold",
            channel="team",
        )


def test_every_copy_carries_the_idempotency_key_and_a_repeat_says_so() -> None:
    """The key (alert id and notification id) sits in the context line beside the alert id; a
    copy sent after an attempt whose worker died mid-send says it may be a repeat."""
    base = dict(
        alert_id=42,
        ticket_id="T-1",
        clock="response",
        kind="breach",
        escalation_level=3,
        due_at=DUE,
        priority="high",
        customer_tier="gold",
        channel="team",
        notification_id=7,
    )
    first = build_payload(AlertMessage(**base), DUE, None)  # type: ignore[arg-type]
    again = build_payload(
        AlertMessage(**base, interrupted_at=DUE + timedelta(seconds=3)),  # type: ignore[arg-type]
        DUE + timedelta(seconds=40),
        None,
    )
    key_of = [p["blocks"][-1]["elements"][1]["text"] for p in (first, again)]  # type: ignore[index]
    assert key_of[0] == "key slawatch-a42-n7"
    assert key_of[1].startswith(
        "key slawatch-a42-n7 · may repeat the message of 2026-11-02T09:15:03Z"
    )
    assert "may repeat" not in text_of(first)
    assert str(again["text"]).endswith(
        "may repeat the message of 2026-11-02T09:15:03Z (no answer came to it)"
    )


def test_a_message_held_for_quiet_hours_says_so_beside_its_lateness() -> None:
    """Held from Friday night until Monday 09:00 CET: the fallback and the context line say it
    was held for the channel's quiet hours and until when, after how late it is."""
    alerted = datetime(2026, 11, 6, 20, 0, tzinfo=UTC)
    opening = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)
    held = replace(message(kind="warning", level=1), alerted_at=alerted, quiet_until=opening)
    payload = build_payload(held, opening + timedelta(seconds=2), None)
    fallback = str(payload["text"])
    assert fallback.endswith(
        "; delivered 2d12h late; held for the channel's quiet hours until 2026-11-09T08:00:00Z"
    ), fallback
    context = payload["blocks"][-1]["elements"][1]["text"]  # type: ignore[index]
    assert "held for the channel's quiet hours until <!date^1794211200^" in context, context
    plain = build_payload(replace(held, quiet_until=None), opening, None)
    assert "quiet hours" not in text_of(plain)
