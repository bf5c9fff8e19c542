"""Delivering one notification row: claim it, send it through its channel's notifier, record the
result. Which channel and how it sends is `internal.notify`'s.

Retries follow exponential backoff with jitter; a 429 waits at least its Retry-After. After
MAX_ATTEMPTS the row is marked failed with the last error, which GetTicket shows with the alert.
Anything that raises after the claim counted an attempt is such a failed attempt too, recorded
with its error, so that no row is left pending for the sweeper to hand back for ever.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg
import psycopg_pool

from internal.backoff import next_delay
from internal.config.sla_config import Channel, SlaConfig
from internal.notify.notifier import AlertMessage, ChannelUnavailable, Notifier
from internal.obs import metrics
from internal.store import outbox_repo

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
MAX_ERROR_CHARS = 200  # last_error is shown by GetTicket: one short line

# A configured channel's notifier; raises ChannelUnavailable when the channel cannot send.
NotifierFor = Callable[[Channel], Notifier]


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"  # not pending or not due: someone else has it, or it is done


@dataclass(frozen=True)
class DeliveryOutcome:
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
        # Alerts written before these were recorded have neither: their clocks were running.
        clock_mode=str(a["clock_mode"] or "running"),
        mode_since=a["clock_mode_since"],
        notification_id=claimed.notification_id,
        interrupted_at=claimed.interrupted_at,
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
    notifier_for: NotifierFor,
    lease: timedelta,
    rand: Callable[[], float] = random.random,
) -> DeliveryOutcome:
    """`lease` must outlast any send (a few times the notifier's timeout), so that a live
    worker's claim is never taken over."""
    with pool.connection() as conn:
        claimed = outbox_repo.claim(conn, notification_id, now, lease)
    if claimed is None:
        metrics.NOTIFICATIONS.labels(Result.SKIPPED.value).inc()
        log.debug("notification %d: not pending or not due; nothing to do", notification_id)
        return DeliveryOutcome(Result.SKIPPED)
    log_extra = {
        "alert_id": claimed.alert["alert_id"],
        "ticket_id": claimed.alert["ticket_id"],
        "correlation_id": claimed.correlation_id,
        "attempt": claimed.attempts,
    }
    if claimed.interrupted_at is not None:
        # A channel like a Slack webhook cannot be asked what it received, and an alert must
        # not be lost: the message goes again, saying it may be a repeat (README: at least once).
        log.warning(
            "notification %d: the attempt started at %s may have been delivered (it timed out,"
            " or its worker stopped mid-send); sending again, marked as a possible repeat",
            notification_id,
            claimed.interrupted_at.isoformat(),
            extra=log_extra,
        )
    try:
        return _attempt(pool, config, claimed, now, notifier_for, rand, log_extra)
    except Exception as err:
        # Whatever broke after the claim counted this attempt: recorded as a failed attempt,
        # so the attempt cap applies and the row cannot go round the sweeper for ever.
        error = _safe_error(err)
        log.exception(
            "notification %d attempt %d raised: %s",
            notification_id,
            claimed.attempts,
            error,
            extra=log_extra,
        )
        with pool.connection() as conn:
            return _failed_attempt(conn, claimed, now, error, True, None, rand, log_extra)


def _safe_error(err: BaseException) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text[:MAX_ERROR_CHARS]


def _attempt(
    pool: psycopg_pool.ConnectionPool,
    config: SlaConfig,
    claimed: outbox_repo.Claimed,
    now: datetime,
    notifier_for: NotifierFor,
    rand: Callable[[], float],
    log_extra: dict[str, Any],
) -> DeliveryOutcome:
    notification_id = claimed.notification_id
    channel = config.channels.get(claimed.channel)
    try:
        if channel is None:
            raise ChannelUnavailable(f"channel {claimed.channel!r} is not configured")
        notifier = notifier_for(channel)
    except ChannelUnavailable as err:
        reason = str(err)
        with pool.connection() as conn:
            outbox_repo.mark_failed(conn, notification_id, reason)
        log.warning("notification %d failed: %s", notification_id, reason, extra=log_extra)
        _finished(Result.FAILED, claimed.attempts)
        return DeliveryOutcome(Result.FAILED)

    started = time.perf_counter()
    result = notifier.send(_message(claimed), now)
    metrics.SLACK_SEND_DURATION.observe(time.perf_counter() - started)
    with pool.connection() as conn:
        if result.ok:
            outbox_repo.mark_sent(conn, notification_id, now)
            log.info(
                "notification %d sent to %s", notification_id, claimed.channel, extra=log_extra
            )
            _finished(Result.SENT, claimed.attempts)
            return DeliveryOutcome(Result.SENT)
        error = result.error or f"HTTP {result.status}"
        retryable = notifier.is_retryable(result)
        return _failed_attempt(
            conn,
            claimed,
            now,
            error,
            retryable,
            result.retry_after,
            rand,
            log_extra,
            maybe_delivered=result.maybe_delivered,
        )


def _failed_attempt(
    conn: psycopg.Connection[Any],
    claimed: outbox_repo.Claimed,
    now: datetime,
    error: str,
    retryable: bool,
    retry_after: float | None,
    rand: Callable[[], float],
    log_extra: dict[str, Any],
    *,
    maybe_delivered: bool = False,
) -> DeliveryOutcome:
    """Record an attempt that did not deliver: retried later, or failed for good when the error
    is permanent or this was the last attempt allowed. A retry after an attempt that may have
    been delivered anyway says it may be a repeat."""
    notification_id = claimed.notification_id
    if not retryable or claimed.attempts >= MAX_ATTEMPTS:
        outbox_repo.mark_failed(conn, notification_id, error)
        log.error(
            "notification %d failed after %d attempts: %s",
            notification_id,
            claimed.attempts,
            error,
            extra=log_extra,
        )
        _finished(Result.FAILED, claimed.attempts)
        return DeliveryOutcome(Result.FAILED)
    delay = next_delay(
        claimed.attempts, retry_after, BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, rand
    )
    outbox_repo.mark_retry(
        conn,
        notification_id,
        now + timedelta(seconds=delay),
        error,
        outcome_unknown=maybe_delivered,
    )
    log.warning(
        "notification %d attempt %d failed (%s); retrying in %.1fs",
        notification_id,
        claimed.attempts,
        error,
        delay,
        extra=log_extra,
    )
    metrics.NOTIFICATIONS.labels(Result.RETRY.value).inc()
    return DeliveryOutcome(Result.RETRY, delay)
