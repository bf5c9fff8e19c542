"""Delivering notifications: admit a send on the channel, claim the row, send it through the
channel's notifier, record the result. Which channel and how it sends is `internal.notify`'s; the
channel's circuit breaker and pacing are `internal.worker.breaker`'s decisions, kept in
PostgreSQL (`delivery_channels`) so that every worker shares them and a restart keeps them.

A delivery message names a row, and sends the oldest due row of that row's channel: after an
outage the backlog drains in alert order, at most one message per send interval per channel
(Slack takes about one per second per webhook), whatever order the messages come back in.

Until the delivery deadline (SLAWATCH_DELIVERY_DEADLINE after the alert, default 24h) a transient
failure (5xx, timeout, connection error, 429) is retried with full-jitter exponential backoff up to
SLAWATCH_DELIVERY_BACKOFF_MAX; a 429 waits at least its Retry-After, and so does every other send
to that channel. Past the deadline the row is marked failed with the reason and its last error. A
permanent error (404, 410, 400/403 such as invalid_token, an unset webhook) fails it at once.
While the channel's breaker is open, or its next send slot is not due, the delivery waits without
counting an attempt.

While a channel's quiet hours hold it (`quiet_hours`, `quiet_min_level`; internal/sla/quiet_hours),
its due rows below the level that passes are held until the quiet period ends: next_attempt_at
and quiet_until become that instant, no attempt is counted and the breaker is not asked. No
message waits for them: the sweeper hands them back when they come due (`take_released`), and
they are sent oldest first within the channel's pacing like any backlog. The delivery deadline
of a held row counts from the end of its hold, so that a warning held over a weekend is not
failed as late on Monday morning (a row already past its deadline is failed, not held). A config
reload that shortens or ends a hold, or lets its level through, applies at the first sweep after
it; one that lengthens it applies when the old hold ends (the row is held again when it comes
due).

MAX_ATTEMPTS is no longer the end of a row that Slack keeps refusing: the deadline is. It caps only
the attempts that raised inside slawatch (a bug, which retrying for a day would not fix): anything
that raises after the claim counted an attempt is recorded with its error, and the row is failed
when MAX_ATTEMPTS such attempts have raised, so that no row goes round the sweeper for ever.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg
import psycopg_pool

from internal.backoff import next_delay
from internal.config.holder import ServedPolicies
from internal.config.settings import Settings
from internal.config.sla_config import Channel, SlaConfig
from internal.config.tenant_configs import NoTenantConfig
from internal.notify.notifier import (
    AlertMessage,
    ChannelUnavailable,
    DeliveryResult,
    Notifier,
)
from internal.obs import metrics
from internal.sla.quiet_hours import QuietHours, quiet_until
from internal.store import channel_repo, outbox_repo
from internal.store.outbox_repo import Lane
from internal.worker import breaker
from internal.worker.breaker import BreakerPolicy, BreakerState, ChannelState, SendOutcome

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # attempts that raised inside slawatch; the channel's answers have the deadline
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0  # the default of SLAWATCH_DELIVERY_BACKOFF_MAX
MAX_ERROR_CHARS = 200  # last_error is shown by GetTicket: one short line
# A delivery whose send slot comes within this many intervals waits for it in its thread instead
# of going back to the queue (a round trip that would often miss the slot it was given).
_WAIT_IN_THREAD_INTERVALS = 1.0
_MAX_ADMISSIONS = 3

# A configured channel's notifier; raises ChannelUnavailable when the channel cannot send.
NotifierFor = Callable[[Channel], Notifier]

_GAUGE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(frozen=True)
class DeliveryPolicy:
    deadline: timedelta = timedelta(hours=24)
    backoff_base: float = BACKOFF_BASE_SECONDS
    backoff_max: float = BACKOFF_CAP_SECONDS
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        """The breaker's cool-down doubles on each failed probe up to the backoff cap (or stays
        at its first value, when that is longer)."""
        cool_down = settings.breaker_cool_down_seconds
        return cls(
            deadline=timedelta(seconds=settings.delivery_deadline_seconds),
            backoff_max=settings.delivery_backoff_max_seconds,
            breaker=BreakerPolicy(
                failures_to_open=settings.breaker_failures,
                cool_down=cool_down,
                cool_down_max=max(cool_down, settings.delivery_backoff_max_seconds),
                send_interval=settings.delivery_send_interval_seconds,
            ),
        )


DEFAULT_POLICY = DeliveryPolicy()


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing due on the channel: someone else has it, or it is done
    WAITING = "waiting"  # the channel's breaker or pacing holds it; not an attempt
    HELD = "held"  # the channel's quiet hours hold it until they end; not an attempt


@dataclass(frozen=True)
class DeliveryOutcome:
    result: Result
    retry_in: float | None = None  # seconds, for RETRY and WAITING
    # WAITING for a send slot handed to it: the message that comes back says so.
    holds_slot: bool = False


def classify(result: DeliveryResult, retryable: bool) -> SendOutcome:
    """What a send's result says about the channel: permanent errors fail the row at once, 429s
    hold the channel for their Retry-After, the rest (5xx, timeouts, connection errors) count
    towards opening the breaker."""
    if result.ok:
        return SendOutcome.SENT
    if not retryable:
        return SendOutcome.PERMANENT
    if result.status == 429:
        return SendOutcome.RATE_LIMITED
    return SendOutcome.TRANSIENT


def late_reason(
    previous_error: str | None, channel: ChannelState, alerted_at: datetime
) -> str | None:
    """Why a message may be late: this row's last failed attempt, or else a failure of its channel
    since its alert was written (rows that waited on an open breaker never attempted)."""
    if previous_error:
        if previous_error.startswith("HTTP 429"):
            return "held by Slack's rate limit"
        if previous_error.startswith(("HTTP 5", "HTTP 408", "timeout", "connection error")):
            return "Slack was unreachable"
        return f"earlier attempts failed ({previous_error})"
    if channel.last_failure_at is not None and channel.last_failure_at >= alerted_at:
        return "Slack was unreachable"
    return None


def duration_text(seconds: float) -> str:
    """24h, 90m, 20s: a setting's value as people write it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _past_deadline(policy: DeliveryPolicy, held: bool = False) -> str:
    deadline = duration_text(policy.deadline.total_seconds())
    after = "after its quiet hours ended" if held else "after the alert"
    return f"not delivered within the delivery deadline ({deadline} {after})"


def quiet_of(config: SlaConfig | None, channel: str) -> QuietHours | None:
    configured = None if config is None else config.channels.get(channel)
    return None if configured is None else configured.quiet


def own_tenants(config: ServedPolicies) -> tuple[str, ...]:
    """The tenants with a config file of their own (none for a single file)."""
    return tuple(sorted(s for s in config.scopes() if s))


def lane_of(config: ServedPolicies, scope: str, channel: str) -> Lane:
    return Lane(channel, scope, own_tenants(config) if not scope else ())


def lane_for(config: ServedPolicies, tenant: str, channel: str) -> Lane:
    """The lane of a tenant's row: its channel in the config that serves the tenant."""
    return lane_of(config, config.scope_of(tenant), channel)


def _message(claimed: outbox_repo.Claimed, reason: str | None) -> AlertMessage:
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
        alerted_at=a["alerted_at"],
        late_reason=reason,
        repeat=int(a["repeat"]),
        repeat_max=a["repeat_max"],
        cycle=int(a.get("cycle") or 1),
        quiet_until=claimed.quiet_until,
    )


def _finished(result: Result, attempts: int) -> None:
    metrics.NOTIFICATIONS.labels(result.value).inc()
    metrics.NOTIFICATION_ATTEMPTS.labels(result.value).observe(attempts)


def show_breaker(config: ServedPolicies, lane: Lane, state: ChannelState) -> None:
    """The breaker gauges of a configured channel, labelled with its lane's name (`team`, or
    `acme/team` for a tenant's own file: the label stays bounded by the configs)."""
    served = config.scopes().get(lane.scope)
    if served is not None and lane.channel in served.channels:
        metrics.BREAKER_STATE.labels(lane.name).set(_GAUGE_VALUE[state.state])
        metrics.BREAKER_FAILURES.labels(lane.name).set(state.failures)


def apply_quiet_hours(conn: psycopg.Connection[Any], config: ServedPolicies, now: datetime) -> int:
    """The rows channels hold, under the quiet hours of each of `config`'s configs (after a load
    or a reload): a hold the new hours end, shorten or let through is released or shortened
    now; one they make longer ends as it was, and its row is held again when it comes due.
    Returns the rows changed. The level test reads every held row once; holds taken under
    `config` need no second call."""
    changed = 0
    with conn.transaction():
        for scope, served in sorted(config.scopes().items()):
            quiet = {n: c.quiet for n, c in served.channels.items() if c.quiet is not None}
            rows = lane_of(config, scope, "")
            done = outbox_repo.release_unlisted(conn, rows, sorted(quiet), now)
            for name, hours in quiet.items():
                done += outbox_repo.rehold(
                    conn,
                    lane_of(config, scope, name),
                    now,
                    quiet_until(hours, now),
                    hours.min_level,
                )
            if done:
                log.info(
                    "config %s: %d held notifications released or rescheduled",
                    served.version,
                    done,
                )
            changed += done
    return changed


def show_held(conn: psycopg.Connection[Any], config: ServedPolicies, now: datetime) -> None:
    """The held-notification gauge of each configured channel (0 when it holds none)."""
    held = outbox_repo.held_counts(conn, now, own_tenants(config))
    for scope, served in config.scopes().items():
        for name in served.channels:
            lane = lane_of(config, scope, name)
            metrics.NOTIFICATIONS_HELD.labels(lane.name).set(held.get((scope, name), 0))


@dataclass(frozen=True)
class _Admitted:
    claimed: outbox_repo.Claimed
    late_reason: str | None
    now: datetime  # the instant the send was granted


@dataclass(frozen=True)
class _Held:
    until: datetime
    reason: breaker.WaitReason
    now: datetime


@dataclass(frozen=True)
class _Quiet:
    until: datetime  # the end of the channel's quiet period


def _admit(
    conn: psycopg.Connection[Any],
    config: ServedPolicies,
    notification_id: int,
    clock: Callable[[], datetime],
    lease: timedelta,
    policy: DeliveryPolicy,
    holds_slot: bool,
) -> _Admitted | _Held | _Quiet | None:
    """One transaction holding the channel's row: the channel's due rows that its quiet hours
    hold put aside until they end; then the wait an open breaker imposes, or else the oldest due
    row (failing those past the deadline on the way), claimed for a send or told how long to
    wait for its slot. _Quiet: quiet hours held rows and nothing else is due. None: nothing of
    the channel is due."""
    with conn.transaction():
        row = outbox_repo.channel_of(conn, notification_id)
        if row is None:
            return None
        lane = lane_for(config, *row)
        channel = lane.name  # for log lines
        state = ChannelState.from_row(channel_repo.lock(conn, lane))
        # Read once the channel's row is ours: another worker's send may have held it, and a
        # send slot granted at an instant already past would let the next one come too soon.
        now = clock()
        quiet = quiet_of(config.scopes().get(lane.scope), lane.channel)
        quiet_end = quiet_until(quiet, now)
        put_aside = 0
        if quiet is not None and quiet_end is not None:
            # Before the breaker: a held row is not an attempt and must not wait on an outage.
            put_aside = outbox_repo.hold_quiet(
                conn, lane, now, quiet_end, quiet.min_level, policy.deadline
            )
            if put_aside:
                metrics.NOTIFICATIONS.labels(Result.HELD.value).inc(put_aside)
                log.info(
                    "channel %s: %d notifications held for quiet hours until %s",
                    channel,
                    put_aside,
                    quiet_end.isoformat(),
                )
        held = breaker.blocked(state, policy.breaker, now)
        if held is not None:  # decided before looking at any row: a backlog waits cheaply
            return _Held(held.until, held.reason, now)
        candidate = _oldest_in_time(conn, lane, now, policy)
        if candidate is None:
            return _Quiet(quiet_end) if quiet_end is not None and put_aside else None
        decision = breaker.admit(
            state, policy.breaker, now, candidate, lease, holds_slot=holds_slot
        )
        channel_repo.save(conn, lane, decision.state.to_row())
        if isinstance(decision, breaker.Wait):
            return _Held(decision.until, decision.reason, now)
        claimed = outbox_repo.claim(conn, candidate, now, lease)
        if claimed is None:  # locked above, so this is not expected; nothing was sent
            return None
        if decision.probe:
            log.info("channel %s: notification %d probes the open breaker", channel, candidate)
        reason = late_reason(claimed.previous_error, state, claimed.alert["alerted_at"])
    show_breaker(config, lane, decision.state)
    return _Admitted(claimed, reason, now)


_EXPIRE_PER_ADMISSION = 1000


def _oldest_in_time(
    conn: psycopg.Connection[Any], lane: Lane, now: datetime, policy: DeliveryPolicy
) -> int | None:
    """The channel's oldest due row still within its delivery deadline. Older rows past theirs
    are failed with the reason: the backlog is sent oldest first, so expired rows are always at
    its head, and this costs one row read per expired row."""
    for _ in range(_EXPIRE_PER_ADMISSION):
        due = outbox_repo.oldest_due(conn, lane, now)
        if due is None:
            return None
        notification_id, deadline_from, was_held = due
        if now < deadline_from + policy.deadline:
            return notification_id
        outbox_repo.expire(conn, notification_id, _past_deadline(policy, was_held))
        log.error(
            "notification %d failed: its delivery deadline passed",
            notification_id,
            extra={"channel": lane.name},
        )
        metrics.NOTIFICATIONS.labels(Result.FAILED.value).inc()
    return None  # the next delivery of the channel goes on from here


def deliver(
    pool: psycopg_pool.ConnectionPool,
    config: ServedPolicies,
    notification_id: int,
    now: datetime,
    *,
    notifier_for: NotifierFor,
    lease: timedelta,
    rand: Callable[[], float] = random.random,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
    holds_slot: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> DeliveryOutcome:
    """One send on the channel of `notification_id` (its oldest due row), or the wait the
    channel asks for. The channel is the one of that name in the config serving the row's
    tenant (an SlaConfig serves every tenant). `lease` must outlast any send (a few times the
    notifier's timeout), so that a live worker's claim is never taken over. `holds_slot`: this
    delivery was handed a send slot by an earlier paced wait and comes back for it. `clock`:
    the workers' clock, read again at each admission (then `now` is only the first reading);
    without it, every instant is `now` (plus any wait), as tests give it."""
    admitted: _Admitted | _Held | _Quiet | None = None

    def current() -> datetime:
        return clock() if clock is not None else now

    for round_ in range(_MAX_ADMISSIONS):
        with pool.connection() as conn:
            admitted = _admit(conn, config, notification_id, current, lease, policy, holds_slot)
        if admitted is None:
            break
        if isinstance(admitted, _Quiet):
            break
        now = admitted.now
        if not isinstance(admitted, _Held):
            break
        if admitted.reason is not breaker.WaitReason.PACED:
            holds_slot = False
            break
        holds_slot = True  # a paced wait hands out a slot, or keeps the one held
        wait = (admitted.until - now).total_seconds()
        if wait > policy.breaker.send_interval * _WAIT_IN_THREAD_INTERVALS:
            break
        if round_ < _MAX_ADMISSIONS - 1:
            sleep(max(wait, 0.0))
            now += timedelta(seconds=max(wait, 0.0))
    if admitted is None:
        metrics.NOTIFICATIONS.labels(Result.SKIPPED.value).inc()
        log.debug("notification %d: nothing due on its channel; nothing to do", notification_id)
        return DeliveryOutcome(Result.SKIPPED)
    if isinstance(admitted, _Quiet):
        return DeliveryOutcome(Result.HELD)
    if isinstance(admitted, _Held):
        metrics.NOTIFICATIONS.labels(Result.WAITING.value).inc()
        wait = max((admitted.until - now).total_seconds(), 0.0)
        log.debug(
            "notification %d: held by its channel (%s); looking again in %.1fs",
            notification_id,
            admitted.reason.value,
            wait,
        )
        return DeliveryOutcome(Result.WAITING, wait, holds_slot=holds_slot)
    claimed = admitted.claimed
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
            claimed.notification_id,
            claimed.interrupted_at.isoformat(),
            extra=log_extra,
        )
    try:
        return _attempt(
            pool, config, claimed, admitted.late_reason, now, notifier_for, rand, policy, log_extra
        )
    except Exception as err:
        # Whatever broke after the claim counted this attempt: recorded as a failed attempt of
        # its own kind, so the cap on them applies and the row cannot go round for ever.
        error = _safe_error(err)
        log.exception(
            "notification %d attempt %d raised: %s",
            claimed.notification_id,
            claimed.attempts,
            error,
            extra=log_extra,
        )
        with pool.connection() as conn:
            return _record(
                conn,
                config,
                claimed,
                now,
                SendOutcome.NOT_SENT,
                error,
                None,
                rand,
                policy,
                log_extra,
                crashed=True,
            )


def _safe_error(err: BaseException) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text[:MAX_ERROR_CHARS]


def _attempt(
    pool: psycopg_pool.ConnectionPool,
    config: ServedPolicies,
    claimed: outbox_repo.Claimed,
    reason: str | None,
    now: datetime,
    notifier_for: NotifierFor,
    rand: Callable[[], float],
    policy: DeliveryPolicy,
    log_extra: dict[str, Any],
) -> DeliveryOutcome:
    try:
        try:
            served = config.for_tenant(claimed.tenant)
        except NoTenantConfig as err:
            raise ChannelUnavailable(str(err)) from None
        # The tenant's own channels only: another tenant's `team` is another channel.
        channel = served.channels.get(claimed.channel)
        if channel is None:
            raise ChannelUnavailable(f"channel {claimed.channel!r} is not configured")
        notifier = notifier_for(channel)
    except ChannelUnavailable as err:
        with pool.connection() as conn:
            return _record(
                conn,
                config,
                claimed,
                now,
                SendOutcome.NOT_SENT,
                str(err),
                None,
                rand,
                policy,
                log_extra,
                permanent=True,
            )

    started = time.perf_counter()
    result = notifier.send(_message(claimed, reason), now)
    metrics.SLACK_SEND_DURATION.observe(time.perf_counter() - started)
    outcome = classify(result, notifier.is_retryable(result))
    error = None if result.ok else (result.error or f"HTTP {result.status}")
    with pool.connection() as conn:
        return _record(
            conn,
            config,
            claimed,
            now,
            outcome,
            error,
            result.retry_after,
            rand,
            policy,
            log_extra,
            maybe_delivered=result.maybe_delivered,
        )


def _record(
    conn: psycopg.Connection[Any],
    config: ServedPolicies,
    claimed: outbox_repo.Claimed,
    now: datetime,
    outcome: SendOutcome,
    error: str | None,
    retry_after: float | None,
    rand: Callable[[], float],
    policy: DeliveryPolicy,
    log_extra: dict[str, Any],
    *,
    maybe_delivered: bool = False,
    crashed: bool = False,
    permanent: bool = False,
) -> DeliveryOutcome:
    """One transaction: the channel's breaker learns the outcome, the row records it (sent,
    retried later, or failed: a permanent error, past the deadline, or the cap on attempts that
    raised). A retry after an attempt that may have been delivered says it may be a repeat."""
    notification_id = claimed.notification_id
    lane = lane_for(config, claimed.tenant, claimed.channel)
    with conn.transaction():
        before = ChannelState.from_row(channel_repo.lock(conn, lane))
        after = breaker.record(
            before,
            policy.breaker,
            now,
            notification_id,
            outcome,
            retry_after=retry_after,
            error=error,
        )
        channel_repo.save(conn, lane, after.to_row())
        result, delay = _row_result(
            conn,
            claimed,
            now,
            outcome,
            error,
            retry_after,
            rand,
            policy,
            maybe_delivered=maybe_delivered,
            crashed=crashed,
            permanent=permanent,
            hold_until=after.retry_at if after.state is BreakerState.OPEN else None,
        )
        if after.state is BreakerState.OPEN and after.retry_at is not None:
            # The channel, not each row's backoff, decides when its rows go next: all of them
            # are due when it recovers, and the backlog drains oldest first.
            outbox_repo.hold_for_channel(conn, lane, after.retry_at)
    show_breaker(config, lane, after)
    if after.state is not before.state:
        log.log(
            logging.WARNING if after.state is BreakerState.OPEN else logging.INFO,
            "channel %s: breaker %s -> %s (%d transient failures in a row%s)",
            lane.name,
            before.state.value,
            after.state.value,
            after.failures,
            f", next probe in {after.cool_down:g}s" if after.state is BreakerState.OPEN else "",
        )
    if result is Result.SENT:
        log.info("notification %d sent to %s", notification_id, lane.name, extra=log_extra)
        _finished(result, claimed.attempts)
    elif result is Result.FAILED:
        log.error(
            "notification %d failed after %d attempts: %s",
            notification_id,
            claimed.attempts,
            error,
            extra=log_extra,
        )
        _finished(result, claimed.attempts)
    else:
        log.warning(
            "notification %d attempt %d failed (%s); retrying in %.1fs",
            notification_id,
            claimed.attempts,
            error,
            delay,
            extra=log_extra,
        )
        metrics.NOTIFICATIONS.labels(Result.RETRY.value).inc()
    return DeliveryOutcome(result, delay if result is Result.RETRY else None)


def _row_result(
    conn: psycopg.Connection[Any],
    claimed: outbox_repo.Claimed,
    now: datetime,
    outcome: SendOutcome,
    error: str | None,
    retry_after: float | None,
    rand: Callable[[], float],
    policy: DeliveryPolicy,
    *,
    maybe_delivered: bool,
    crashed: bool,
    permanent: bool,
    hold_until: datetime | None,
) -> tuple[Result, float]:
    notification_id = claimed.notification_id
    if outcome is SendOutcome.SENT:
        outbox_repo.mark_sent(conn, notification_id, now)
        return Result.SENT, 0.0
    error = error or "unknown error"
    if outcome is SendOutcome.PERMANENT or permanent:
        outbox_repo.mark_failed(conn, notification_id, error)
        return Result.FAILED, 0.0
    if crashed and claimed.crashes + 1 >= MAX_ATTEMPTS:
        outbox_repo.mark_failed(conn, notification_id, error)
        return Result.FAILED, 0.0
    deadline = claimed.deadline_from + policy.deadline
    if now >= deadline:
        reason = f"{_past_deadline(policy, claimed.quiet_until is not None)}; last error: {error}"
        outbox_repo.mark_failed(conn, notification_id, reason[:MAX_ERROR_CHARS])
        return Result.FAILED, 0.0
    delay = next_delay(claimed.attempts, retry_after, policy.backoff_base, policy.backoff_max, rand)
    # The last try comes at the deadline, not after it; none later than the end of the open
    # breaker's cool-down, when the channel is tried again.
    latest = min(deadline, hold_until) if hold_until is not None else deadline
    delay = max(min(delay, (latest - now).total_seconds()), 0.0)
    outbox_repo.mark_retry(
        conn,
        notification_id,
        now + timedelta(seconds=delay),
        error,
        outcome_unknown=maybe_delivered,
        crashed=crashed,
    )
    return Result.RETRY, delay
