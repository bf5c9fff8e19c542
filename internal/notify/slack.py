"""Slack, the first notification channel: the Block Kit message, one webhook send, and the
retry policy (`SlackNotifier` puts them together behind `internal.notify.notifier.Notifier`)."""

from __future__ import annotations

import email.utils
import http.client
import logging
import urllib.error
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from internal.notify.notifier import AlertMessage, DeliveryResult

# slack-sdk writes the request URL, which is the webhook's secret, into its debug and error log
# lines. It gets a logger outside the logging tree that drops everything; `send` reports what
# went wrong in its result instead, with the URL scrubbed.
_SDK_LOG = logging.Logger("slawatch.slack_sdk.silenced", level=logging.CRITICAL + 1)
_SDK_LOG.addHandler(logging.NullHandler())

INVALID_URL = "invalid webhook URL"
_MAX_ERROR_CHARS = 200
# A message posted later than this after its alert says how late it is.
LATE_AFTER_SECONDS = 60.0


def _escape(text: str) -> str:
    # Slack's three control characters; `&` first so the other two are not escaped twice.
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


# Words for the metric names whose plain spelling reads wrong in a sentence.
_METRIC_WORDS = {"response": "first response"}


def metric_words(metric: str) -> str:
    """A clock's name as words in a message: "first response", "resolution", "next reply"."""
    return _METRIC_WORDS.get(metric) or metric.replace("_", " ")


def _ticket_ref(ticket_id: str, template: str | None) -> str:
    if not template:
        return f"`{_escape(ticket_id)}`"
    url = template.replace("{ticket_id}", urllib.parse.quote(ticket_id, safe=""))
    # Slack reads the first `|` inside <...> as the end of the URL, and has no escape for it.
    url = _escape(url).replace("|", "%7C")
    return f"<{url}|{_escape(ticket_id)}>"


def _date(when: datetime) -> tuple[str, str]:
    """An instant as Slack date markup and as the ISO text of its fallback.

    Slack renders <!date^...> in each reader's own time zone; the fallback is for clients that
    cannot, so it names its zone."""
    utc = when.astimezone(UTC)
    iso = utc.isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{iso}>", iso


def build_payload(
    msg: AlertMessage, now: datetime, ticket_url_template: str | None
) -> dict[str, Any]:
    """A Block Kit message a person on call can act on, with a plain-text fallback.

    `ticket_url_template` holds `{ticket_id}`, e.g. "https://desk.example.com/t/{ticket_id}";
    without it the ticket id is shown as code.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be time-zone aware")
    clock = _escape(metric_words(msg.clock))
    if msg.cycle > 1:  # a metric with one cycle per start: which wait this is
        clock += f" (cycle {msg.cycle})"
    if msg.kind == "breach":
        emoji, title = ":rotating_light:", f"SLA breached: {clock}"
    else:
        emoji, title = ":warning:", f"SLA at risk: {clock}"
    if msg.repeat > 0:
        of = f" of {msg.repeat_max}" if msg.repeat_max else ""
        title += f" (repeat {msg.repeat}{of}, not acknowledged)"
    facts: list[str] = []  # the fallback's parts, in the order the fields show them
    fields = [("Ticket", _ticket_ref(msg.ticket_id, ticket_url_template))]
    if msg.due_at is not None:
        delta = (msg.due_at - now).total_seconds()
        if msg.kind == "breach":
            timing = (
                f"breached {_humanize(delta)} ago" if delta <= 0 else f"due in {_humanize(delta)}"
            )
        else:
            timing = f"due in {_humanize(delta)}" if delta > 0 else f"overdue by {_humanize(delta)}"
        due_text, due_iso = _date(msg.due_at)
        facts += [f"due {due_iso}", timing]
        fields.append(("Due", f"{due_text} ({timing})"))
    if msg.halted_at is not None:
        halted_text, halted_iso = _date(msg.halted_at)
        facts.append(f"clock {msg.clock_mode} {halted_iso}")
        fields.append(("Clock", f"{msg.clock_mode} {halted_text}"))
    fallback = (
        f"{title} for ticket {_escape(msg.ticket_id)} "
        f"({_escape(msg.priority)}/{_escape(msg.customer_tier)}), {', '.join(facts)}, "
        f"escalation level {msg.escalation_level}"
    )
    key_text = f"key {msg.key}"
    if msg.interrupted_at is not None:
        _, attempted_iso = _date(msg.interrupted_at)
        repeat = f"may repeat the message of {attempted_iso} (no answer came to it)"
        fallback += f"; {repeat}"
        key_text += f" · {repeat}"
    fields += [
        ("Priority / tier", f"{_escape(msg.priority)} / {_escape(msg.customer_tier)}"),
        ("Escalation level", str(msg.escalation_level)),
    ]
    late = lateness(msg, now)
    if late is not None:
        fallback += f"; {late}"
        key_text += f" · {late}"
    if msg.quiet_until is not None:
        quiet_text, quiet_iso = _date(msg.quiet_until)
        fallback += f"; held for the channel's quiet hours until {quiet_iso}"
        key_text += f" · held for the channel's quiet hours until {quiet_text}"
    context = f"alert {msg.alert_id} · clock {msg.clock}"
    if msg.cycle > 1:
        context += f" · cycle {msg.cycle}"
    if msg.correlation_id:
        context += f" · request {_escape(msg.correlation_id)}"
    return {
        "text": fallback,
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"{emoji} {title}", "emoji": True},
            },
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
            },
            # Kept last: operators grep for the alert id and the request id here, and tools
            # that read the channel find the idempotency key beside them.
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": context},
                    {"type": "mrkdwn", "text": key_text},
                ],
            },
        ],
    }


def lateness(msg: AlertMessage, now: datetime) -> str | None:
    """ "delivered 14m late: Slack was unreachable" for a message posted more than
    LATE_AFTER_SECONDS after its alert was written; None for one on time."""
    if msg.alerted_at is None:
        return None
    late = (now - msg.alerted_at).total_seconds()
    if late <= LATE_AFTER_SECONDS:
        return None
    text = f"delivered {_humanize(late)} late"
    return f"{text}: {_escape(msg.late_reason)}" if msg.late_reason else text


def _retry_after(headers: Mapping[str, Any], now: datetime) -> float | None:
    for key, value in headers.items():
        if key.lower() != "retry-after":
            continue
        raw = str(value[0] if isinstance(value, list) else value).strip()
        try:
            return max(float(raw), 0.0)
        except ValueError:
            pass
        # The HTTP spec also allows a date; Slack sends seconds, a proxy in between may not.
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max((when - now).total_seconds(), 0.0)
    return None


def _safe(text: str, webhook_url: str) -> str:
    """One short line without the URL or its path (the token lives in the path)."""
    parts = urllib.parse.urlsplit(webhook_url)
    for secret in (webhook_url, parts.path, parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "<webhook>")
    return " ".join(text.split())[:_MAX_ERROR_CHARS]


def _valid_url(webhook_url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(webhook_url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def send(webhook_url: str, payload: dict[str, Any], timeout: float) -> DeliveryResult:
    """One POST to the webhook. Never raises for a failed delivery, and the result never
    contains the URL.

    `timeout` bounds the connect and each read, in seconds. Retries are the caller's, so
    slack-sdk's own retry handlers are off.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if not _valid_url(webhook_url):
        return DeliveryResult(False, None, error=INVALID_URL)
    client = WebhookClient(
        webhook_url,
        # Annotated as int, but handed as is to urllib, which takes fractions of a second.
        timeout=cast(int, timeout),
        retry_handlers=[],
        logger=_SDK_LOG,
    )
    try:
        response = client.send_dict(payload)
    except TimeoutError:
        return DeliveryResult(False, None, error="timeout", maybe_delivered=True)
    except urllib.error.URLError as err:
        # HTTP error statuses come back as responses; a URLError here is the connection.
        if isinstance(err.reason, TimeoutError):
            return DeliveryResult(False, None, error="timeout", maybe_delivered=True)
        reason = str(err.reason) or type(err.reason).__name__
        return DeliveryResult(False, None, error=_safe(f"connection error: {reason}", webhook_url))
    except (OSError, http.client.HTTPException) as err:
        reason = str(err) or type(err).__name__
        return DeliveryResult(False, None, error=_safe(f"connection error: {reason}", webhook_url))
    except (ValueError, SlackClientError):
        return DeliveryResult(False, None, error=INVALID_URL)
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryResult(True, status)
    body = (response.body or "").strip()
    return DeliveryResult(
        False,
        status,
        retry_after=_retry_after(response.headers or {}, datetime.now(UTC)),
        error=_safe(f"HTTP {status}: {body}" if body else f"HTTP {status}", webhook_url),
    )


def is_retryable(result: DeliveryResult) -> bool:
    """429, 408, 5xx (Slack's own rollup_error is a 500), timeouts and connection errors may
    pass on a later try. Every other 4xx will not: Slack's incoming webhooks answer 400
    invalid_payload / user_not_found / no_service_id, 403 action_prohibited / invalid_token,
    404 channel_not_found / no_service / no_team / team_disabled, 410 channel_is_archived
    (api.slack.com changelog 2016-05-17, "Improving error conditions for Incoming Webhooks"),
    and the same request gets the same answer. Nor will a malformed URL."""
    if result.ok:
        return False
    if result.status is None:
        return result.error != INVALID_URL
    return result.status in (408, 429) or result.status >= 500


@dataclass(frozen=True)
class SlackNotifier:
    """A channel that is a Slack incoming webhook."""

    webhook_url: str = field(repr=False)  # a secret
    timeout: float
    ticket_url_template: str | None = None
    post: Callable[[str, dict[str, Any], float], DeliveryResult] = send

    def send(self, message: AlertMessage, now: datetime) -> DeliveryResult:
        payload = build_payload(message, now, self.ticket_url_template)
        return self.post(self.webhook_url, payload, self.timeout)

    def is_retryable(self, result: DeliveryResult) -> bool:
        return is_retryable(result)
