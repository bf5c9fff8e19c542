"""Delivering one notification row to Slack: claim, send, record the result.

Retries follow exponential backoff with jitter; a 429 waits at least its Retry-After. After
MAX_ATTEMPTS the row is marked failed with the last error, which GetTicket shows with the alert.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg_pool

from internal.config.sla_config import SlaConfig
from internal.notify.slack import (
    AlertMessage,
    DeliveryResult,
    build_payload,
    is_retryable,
    next_delay,
    send,
)
from internal.obs import metrics
from internal.store import outbox_repo

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0

Sender = Callable[[str, dict[str, Any], float], DeliveryResult]


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"  # not pending or not due: someone else has it, or it is done


@dataclass(frozen=True)
class Outcome:
    result: Result
    retry_in: float | None = None  # seconds, for RETRY


def _message(claimed: outbox_repo.Claimed) -> AlertMessage:
    a = claimed.alert
    return AlertMessage(
        alert_id=int(a["alert_id"]),
        ticket_id=str(a["ticket_id"]),
        clock=str(a["clock"]),
        kind=str(a["kind"]),
        escalation_level=int(a["escalation_level"]),
        due_at=a["due_at"],
        priority=str(a["priority"]),
        customer_tier=str(a["customer_tier"]),
        channel=claimed.channel,
        correlation_id=claimed.correlation_id,
    )


def _finished(result: Result, attempts: int) -> None:
    metrics.NOTIFICATIONS.labels(result.value).inc()
    metrics.NOTIFICATION_ATTEMPTS.labels(result.value).observe(attempts)


def deliver(
    pool: psycopg_pool.ConnectionPool,
    config: SlaConfig,
    notification_id: int,
    now: datetime,
    *,
    env: Mapping[str, str] = os.environ,
    sender: Sender = send,
    ticket_url_template: str | None = None,
    send_timeout: float = 10.0,
    rand: Callable[[], float] = random.random,
) -> Outcome:
    with pool.connection() as conn:
        # The lease outlasts any send, so a live worker's claim is never taken over.
        claimed = outbox_repo.claim(conn, notification_id, now, timedelta(seconds=send_timeout * 3))
    if claimed is None:
        metrics.NOTIFICATIONS.labels(Result.SKIPPED.value).inc()
        log.debug("notification %d: not pending or not due; nothing to do", notification_id)
        return Outcome(Result.SKIPPED)
    log_extra = {
        "alert_id": claimed.alert["alert_id"],
        "ticket_id": claimed.alert["ticket_id"],
        "correlation_id": claimed.correlation_id,
        "attempt": claimed.attempts,
    }
    channel = config.channels.get(claimed.channel)
    webhook = env.get(channel.slack_webhook_env, "") if channel else ""
    if not webhook:
        reason = (
            f"channel {claimed.channel!r} is not configured"
            if channel is None
            else f"{channel.slack_webhook_env} is not set"
        )
        with pool.connection() as conn:
            outbox_repo.mark_failed(conn, notification_id, reason)
        log.warning("notification %d failed: %s", notification_id, reason, extra=log_extra)
        _finished(Result.FAILED, claimed.attempts)
        return Outcome(Result.FAILED)

    payload = build_payload(_message(claimed), now, ticket_url_template)
    started = time.perf_counter()
    result = sender(webhook, payload, send_timeout)
    metrics.SLACK_SEND_DURATION.observe(time.perf_counter() - started)
    with pool.connection() as conn:
        if result.ok:
            outbox_repo.mark_sent(conn, notification_id, now)
            log.info(
                "notification %d sent to %s", notification_id, claimed.channel, extra=log_extra
            )
            _finished(Result.SENT, claimed.attempts)
            return Outcome(Result.SENT)
        error = result.error or f"HTTP {result.status}"
        if not is_retryable(result) or claimed.attempts >= MAX_ATTEMPTS:
            outbox_repo.mark_failed(conn, notification_id, error)
            log.error(
                "notification %d failed after %d attempts: %s",
                notification_id,
                claimed.attempts,
                error,
                extra=log_extra,
            )
            _finished(Result.FAILED, claimed.attempts)
            return Outcome(Result.FAILED)
        delay = next_delay(
            claimed.attempts, result.retry_after, BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, rand
        )
        outbox_repo.mark_retry(conn, notification_id, now + timedelta(seconds=delay), error)
    log.warning(
        "notification %d attempt %d failed (%s); retrying in %.1fs",
        notification_id,
        claimed.attempts,
        error,
        delay,
        extra=log_extra,
    )
    metrics.NOTIFICATIONS.labels(Result.RETRY.value).inc()
    return Outcome(Result.RETRY, delay)
