"""What a notification channel is to the worker: the message of one alert, the result of one
send, and the `Notifier` protocol every channel implements. Slack (`internal.notify.slack`) is
the first; `for_channel` picks the implementation of a configured channel.

No database here: the worker claims an outbox row, hands its message to the channel's notifier,
and records the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from internal.config.sla_config import Channel
from internal.config.yaml_load import YamlLoadError, read_bounded

# A webhook URL is short; a larger file is not one (a directory's worth of keys, say).
MAX_WEBHOOK_FILE_BYTES = 8192


@dataclass(frozen=True)
class AlertMessage:
    alert_id: int
    ticket_id: str
    clock: str  # the clock's metric name: "response", "resolution", ...
    kind: str  # "warning" | "breach"
    escalation_level: int
    # None when the clock stopped or paused short of its target before the evaluator saw it.
    due_at: datetime | None
    priority: str
    customer_tier: str
    channel: str
    correlation_id: str | None = None
    # The clock's mode when the alert was written ("running", "paused", "stopped") and since
    # when; a message on a clock that was not running says when it stopped.
    clock_mode: str = "running"
    mode_since: datetime | None = None
    # The outbox row: with the alert id, the message's idempotency key (one per alert and
    # channel), which every copy of the message carries.
    notification_id: int | None = None
    # When an earlier attempt at this message started whose outcome is unknown (it timed out,
    # or its worker died mid-send): this copy may be a repeat, and says so.
    interrupted_at: datetime | None = None
    # When the alert was written, and why its delivery may be late: a message sent more than a
    # minute after it says by how much (and why, when the reason is known).
    alerted_at: datetime | None = None
    late_reason: str | None = None
    # 0: the alert's first notification; n: its nth repeat, of at most repeat_max.
    repeat: int = 0
    repeat_max: int | None = None
    cycle: int = 1  # which cycle of the metric (a message names it when > 1)
    # When the channel's quiet hours ended, if they held this message: it says so.
    quiet_until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("due_at", "mode_since", "interrupted_at", "alerted_at", "quiet_until"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"AlertMessage.{name} must be time-zone aware")
        if self.due_at is None and self.halted_at is None:
            raise ValueError("AlertMessage needs a due_at, or a clock that stopped (mode_since)")

    @property
    def key(self) -> str:
        """The idempotency key: the same in every copy of one alert's message to one channel."""
        return f"slawatch-a{self.alert_id}-n{self.notification_id}"

    @property
    def halted_at(self) -> datetime | None:
        """When the clock stopped or paused, if it was not running when the alert was written."""
        return self.mode_since if self.clock_mode in ("stopped", "paused") else None


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    status: int | None
    retry_after: float | None = None
    error: str | None = None  # short, and never the webhook URL: that is a secret
    # The request may have reached the channel although no answer came (a timeout): the next
    # attempt says it may be a repeat.
    maybe_delivered: bool = False


class Notifier(Protocol):
    """One channel's way of sending a message. `send` never raises for a failed delivery: it
    says what went wrong in its result, without secrets (a webhook URL is one)."""

    def send(self, message: AlertMessage, now: datetime) -> DeliveryResult: ...

    def is_retryable(self, result: DeliveryResult) -> bool:
        """Whether a failed result may pass on a later try."""
        ...


class ChannelUnavailable(Exception):
    """A configured channel that cannot send (its webhook variable is unset, say): the reason
    becomes the notification's last error."""


def for_channel(
    channel: Channel,
    env: Mapping[str, str],
    *,
    timeout: float,
    ticket_url_template: str | None = None,
) -> Notifier:
    """The notifier of a configured channel, by its `type`. Slack incoming webhooks are the only
    type so far (the URL in the environment variable the channel names, or in its file); the
    config loader refuses any other, so an unknown type here is a programming error."""
    from internal.notify.slack import SlackNotifier  # slack imports this module's types

    if channel.type != "slack":
        raise ValueError(f"no notifier for channel type {channel.type!r}")
    if channel.slack_webhook_file is not None:
        webhook = webhook_from_file(channel.slack_webhook_file)
    else:
        webhook = env.get(channel.slack_webhook_env, "")
        if not webhook:
            raise ChannelUnavailable(f"{channel.slack_webhook_env} is not set")
    return SlackNotifier(webhook, timeout=timeout, ticket_url_template=ticket_url_template)


def webhook_from_file(path: str) -> str:
    """The URL in a `slack_webhook_file`, read at each send: a mounted Secret is rotated by
    swapping the file, and the next message uses the new URL without a reload. Surrounding
    whitespace (the newline editors and `kubectl create secret --from-file` leave) is dropped.
    The error never shows the file's content: it is a secret."""
    try:
        data = read_bounded(Path(path), MAX_WEBHOOK_FILE_BYTES)
    except OSError as err:
        raise ChannelUnavailable(f"cannot read {path}: {err.strerror or err}") from None
    except YamlLoadError as err:
        raise ChannelUnavailable(f"cannot read {path}: {err}") from None
    webhook = data.decode("utf-8", errors="replace").strip()
    if not webhook:
        raise ChannelUnavailable(f"{path} is empty")
    return webhook
