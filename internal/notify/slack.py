"""The Slack side of notification delivery: the message, one send, and the retry policy.

No database here: the worker claims an outbox row, calls `send`, and records the result.
"""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.webhook import WebhookClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertMessage:
    alert_id: int
    ticket_id: str
    clock: str  # "response" | "resolution"
    kind: str  # "warning" | "breach"
    escalation_level: int
    due_at: datetime
    priority: str
    customer_tier: str
    channel: str
    correlation_id: str | None = None


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    status: int | None
    retry_after: float | None = None
    error: str | None = None  # short, and never the webhook URL: that is a secret


def _escape(text: str) -> str:
    # Slack's three control characters in mrkdwn text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _humanize(seconds: float) -> str:
    seconds = abs(int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours}h{minutes:02d}m"
    days, rest = divmod(seconds, 86400)
    return f"{days}d{rest // 3600}h"


def _ticket_ref(ticket_id: str, template: str | None) -> str:
    if not template:
        return f"`{_escape(ticket_id)}`"
    url = template.replace("{ticket_id}", urllib.parse.quote(ticket_id, safe=""))
    return f"<{url}|{_escape(ticket_id)}>"


def build_payload(
    msg: AlertMessage, now: datetime, ticket_url_template: str | None
) -> dict[str, Any]:
    """A Block Kit message a person on call can act on, with a plain-text fallback."""
    delta = (msg.due_at - now).total_seconds()
    clock = "first response" if msg.clock == "response" else "resolution"
    if msg.kind == "breach":
        headline = f":rotating_light: SLA breached: {clock}"
        timing = f"breached {_humanize(delta)} ago" if delta <= 0 else f"due in {_humanize(delta)}"
    else:
        headline = f":warning: SLA at risk: {clock}"
        timing = f"due in {_humanize(delta)}" if delta > 0 else f"overdue by {_humanize(delta)}"
    epoch = int(msg.due_at.timestamp())
    due_iso = msg.due_at.isoformat().replace("+00:00", "Z")
    due_text = f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{due_iso}>"
    ticket = _ticket_ref(msg.ticket_id, ticket_url_template)
    fallback = (
        f"{headline.split(' ', 1)[1]} for ticket {msg.ticket_id} "
        f"({msg.priority}/{msg.customer_tier}), {timing}, escalation level {msg.escalation_level}"
    )
    fields = [
        ("Ticket", ticket),
        ("Due", f"{due_text} ({timing})"),
        ("Priority / tier", f"{_escape(msg.priority)} / {_escape(msg.customer_tier)}"),
        ("Escalation level", str(msg.escalation_level)),
    ]
    context = f"alert {msg.alert_id} · clock {msg.clock}"
    if msg.correlation_id:
        context += f" · request {_escape(msg.correlation_id)}"
    return {
        "text": fallback,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline, "emoji": True}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def _retry_after(headers: dict[str, Any]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(float(raw), 0.0)
            except (TypeError, ValueError):
                return None
    return None


def send(webhook_url: str, payload: dict[str, Any], timeout: float) -> DeliveryResult:
    """One POST to the webhook; retries are the caller's, so slack-sdk's own are off."""
    client = WebhookClient(
        webhook_url, timeout=max(1, round(timeout)), retry_handlers=[], logger=log
    )
    try:
        response = client.send_dict(payload)
    except TimeoutError:
        return DeliveryResult(False, None, error="timeout")
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError | socket.timeout):
            return DeliveryResult(False, None, error="timeout")
        return DeliveryResult(False, None, error=f"connection error: {err.reason}")
    except OSError as err:
        return DeliveryResult(False, None, error=f"connection error: {err.strerror or err}")
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryResult(True, status)
    body = (response.body or "").strip()[:200]
    return DeliveryResult(
        False, status, retry_after=_retry_after(response.headers), error=f"HTTP {status}: {body}"
    )


def is_retryable(result: DeliveryResult) -> bool:
    """429, 5xx, timeouts and connection errors pass; other 4xx (no_service, invalid_token,
    invalid_payload) will not change by retrying."""
    if result.ok:
        return False
    return result.status is None or result.status == 429 or result.status >= 500


def next_delay(
    attempt: int, retry_after: float | None, base: float, cap: float, rand: Callable[[], float]
) -> float:
    """Exponential backoff with full jitter, never shorter than Slack's Retry-After."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    delay = ceiling * rand()
    return max(delay, retry_after) if retry_after is not None else delay
