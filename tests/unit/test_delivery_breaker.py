"""The pure parts of delivery through outages: the per-channel breaker and pacing state machine
(internal/worker/breaker.py), what a send's result says about the channel, the retry schedule
up to the deadline, the late-message line, and the duration settings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from internal.backoff import next_delay
from internal.config.settings import Settings, SettingsError
from internal.notify.notifier import AlertMessage, DeliveryResult
from internal.notify.slack import build_payload, is_retryable
from internal.worker import breaker
from internal.worker.breaker import (
    BreakerPolicy,
    BreakerState,
    ChannelState,
    Send,
    SendOutcome,
    Wait,
    WaitReason,
)
from internal.worker.delivery import DeliveryPolicy, classify, duration_text, late_reason

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
POLICY = BreakerPolicy(failures_to_open=3, cool_down=10.0, cool_down_max=40.0, send_interval=1.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fail(s: ChannelState, now: datetime, n: int = 1) -> ChannelState:
    return breaker.record(s, POLICY, now, n, SendOutcome.TRANSIENT, error="HTTP 500")


def opened() -> ChannelState:
    s = ChannelState()
    for _ in range(3):
        s = fail(s, at(0))
    return s


def test_consecutive_transient_failures_open_the_breaker_and_a_success_resets_the_count() -> None:
    """N-1 failures leave it closed; a success in between starts the count again; the Nth in a
    row opens it with the first cool-down, remembering when and why."""
    s = fail(fail(ChannelState(), at(0)), at(1))
    assert (s.state, s.failures) == (BreakerState.CLOSED, 2)
    s = breaker.record(s, POLICY, at(2), 1, SendOutcome.SENT)
    assert (s.state, s.failures) == (BreakerState.CLOSED, 0)
    s = fail(fail(fail(s, at(3)), at(4)), at(5))
    assert s.state is BreakerState.OPEN
    assert (s.opened_at, s.retry_at, s.cool_down) == (at(5), at(15), 10.0)
    assert (s.last_failure_at, s.last_failure) == (at(5), "HTTP 500")


def test_while_open_nobody_sends_then_one_probe_at_a_time() -> None:
    """Before retry_at every delivery waits until then; after it the first one becomes the probe
    (half-open), and the others wait while its lease runs, looking again after a cool-down."""
    s = opened()
    waiting = breaker.admit(s, POLICY, at(9), 7, LEASE)
    assert isinstance(waiting, Wait) and waiting.reason is WaitReason.OPEN
    assert waiting.until == at(10)
    probe = breaker.admit(s, POLICY, at(10), 7, LEASE)
    assert isinstance(probe, Send) and probe.probe
    assert (probe.state.state, probe.state.probe_id) == (BreakerState.HALF_OPEN, 7)
    other = breaker.admit(probe.state, POLICY, at(11), 8, LEASE)
    assert isinstance(other, Wait) and other.reason is WaitReason.PROBING
    assert other.until == at(21)  # a cool-down later, within the probe's lease
    assert other.state == probe.state  # waiting takes nothing


def test_a_probe_whose_worker_died_is_taken_over_when_its_lease_ends() -> None:
    s = breaker.admit(opened(), POLICY, at(10), 7, LEASE).state
    again = breaker.admit(s, POLICY, at(10) + LEASE, 8, LEASE)
    assert isinstance(again, Send) and again.probe and again.state.probe_id == 8


def test_the_probe_s_success_closes_and_its_failure_reopens_with_a_longer_cool_down() -> None:
    """Failed probes double the cool-down up to its cap; a successful one closes the breaker
    and forgets the outage (the last failure stays, for late messages)."""
    s = opened()
    cool_downs = []
    for n in range(4):
        s = breaker.admit(s, POLICY, s.retry_at or at(0), n, LEASE).state
        assert s.state is BreakerState.HALF_OPEN
        s = fail(s, s.probe_until - LEASE, n)  # type: ignore[operator]
        assert s.state is BreakerState.OPEN and s.probe_id is None
        cool_downs.append(s.cool_down)
    assert cool_downs == [20.0, 40.0, 40.0, 40.0]
    probe_at = s.retry_at
    assert probe_at is not None
    s = breaker.admit(s, POLICY, probe_at, 9, LEASE).state
    closed = breaker.record(s, POLICY, probe_at, 9, SendOutcome.SENT)
    assert (closed.state, closed.failures, closed.retry_at, closed.probe_id) == (
        BreakerState.CLOSED,
        0,
        None,
        None,
    )
    assert closed.opened_at is None and closed.last_failure == "HTTP 500"


def test_a_send_admitted_before_the_breaker_opened_does_not_count_as_the_probe() -> None:
    """Only the probe's failure re-opens a half-open breaker; another send's failure (admitted
    while it was closed, answered late) adds to the count and leaves the probe alone."""
    s = breaker.admit(opened(), POLICY, at(10), 7, LEASE).state
    late = fail(s, at(11), n=3)
    assert late.state is BreakerState.HALF_OPEN and late.probe_id == 7


def test_answers_that_show_the_channel_reachable_close_it_and_a_429_holds_the_channel() -> None:
    """A permanent error or a 429 is Slack answering: not a failure of the channel. A 429's
    Retry-After holds every send to the channel, not only that message's retry."""
    s = breaker.admit(opened(), POLICY, at(10), 7, LEASE).state
    assert breaker.record(s, POLICY, at(11), 7, SendOutcome.PERMANENT).state is BreakerState.CLOSED
    limited = breaker.record(s, POLICY, at(11), 7, SendOutcome.RATE_LIMITED, retry_after=30)
    assert limited.state is BreakerState.CLOSED and limited.next_send_at == at(41)
    held = breaker.admit(limited, POLICY, at(20), 8, LEASE)
    assert isinstance(held, Wait) and held.until == at(41)


def test_an_attempt_that_never_reached_the_channel_only_hands_the_probe_back() -> None:
    s = breaker.admit(opened(), POLICY, at(10), 7, LEASE).state
    back = breaker.record(s, POLICY, at(11), 7, SendOutcome.NOT_SENT)
    assert back == replace(s, probe_id=None, probe_until=None)
    closed = ChannelState(failures=2)
    assert breaker.record(closed, POLICY, at(11), 7, SendOutcome.NOT_SENT) == closed


def test_pacing_grants_one_send_per_interval_and_hands_waiting_deliveries_distinct_slots() -> None:
    """A send sets the next slot an interval later; deliveries arriving meanwhile are given
    slots one interval apart (a backlog wakes one per slot), and reservations never allow a
    send before next_send_at."""
    first = breaker.admit(ChannelState(), POLICY, at(0), 1, LEASE)
    assert isinstance(first, Send) and first.state.next_send_at == at(1)
    s = first.state
    slots = []
    for n in range(2, 6):
        waited = breaker.admit(s, POLICY, at(0.2), n, LEASE)
        assert isinstance(waited, Wait) and waited.reason is WaitReason.PACED
        slots.append(waited.until)
        s = waited.state
    assert slots == [at(1), at(2), at(3), at(4)]
    assert s.next_send_at == at(1)  # only a send moves it
    assert isinstance(breaker.admit(s, POLICY, at(0.99), 9, LEASE), Wait)
    granted = breaker.admit(s, POLICY, at(1), 2, LEASE)
    assert isinstance(granted, Send) and granted.state.next_send_at == at(2)


def test_no_pacing_when_the_interval_is_zero() -> None:
    fast = replace(POLICY, send_interval=0.0)
    s = ChannelState()
    for n in range(5):
        decision = breaker.admit(s, fast, at(0), n, LEASE)
        assert isinstance(decision, Send)
        s = decision.state


def test_results_are_classified_permanent_rate_limited_or_transient() -> None:
    """Slack's permanent answers (404 no_service / channel_not_found, 410 channel_is_archived,
    400 invalid_payload, 403 invalid_token / action_prohibited) fail at once; 429 is rate
    limiting; 5xx, 408, timeouts and connection errors are transient."""
    cases = {
        (404, "HTTP 404: channel_not_found"): SendOutcome.PERMANENT,
        (404, "HTTP 404: no_service"): SendOutcome.PERMANENT,
        (410, "HTTP 410: channel_is_archived"): SendOutcome.PERMANENT,
        (400, "HTTP 400: invalid_payload"): SendOutcome.PERMANENT,
        (403, "HTTP 403: invalid_token"): SendOutcome.PERMANENT,
        (403, "HTTP 403: action_prohibited"): SendOutcome.PERMANENT,
        (429, "HTTP 429: rate_limited"): SendOutcome.RATE_LIMITED,
        (500, "HTTP 500: rollup_error"): SendOutcome.TRANSIENT,
        (503, "HTTP 503"): SendOutcome.TRANSIENT,
        (408, "HTTP 408"): SendOutcome.TRANSIENT,
        (None, "timeout"): SendOutcome.TRANSIENT,
        (None, "connection error: refused"): SendOutcome.TRANSIENT,
    }
    for (status, error), expected in cases.items():
        result = DeliveryResult(False, status, error=error)
        assert classify(result, is_retryable(result)) is expected, (status, error)
    assert classify(DeliveryResult(True, 200), False) is SendOutcome.SENT


def test_the_backoff_schedule_doubles_to_the_configured_cap_with_full_jitter() -> None:
    """Ceilings 1, 2, 4, ... capped at SLAWATCH_DELIVERY_BACKOFF_MAX; full jitter draws from 0 up
    to the ceiling; a Retry-After beyond the cap still wins."""
    policy = DeliveryPolicy.from_settings(
        Settings.from_env({"SLAWATCH_DELIVERY_BACKOFF_MAX": "5s"})
    )
    top = [
        next_delay(a, None, policy.backoff_base, policy.backoff_max, lambda: 0.999999)
        for a in range(1, 7)
    ]
    assert [round(t, 3) for t in top] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert next_delay(6, None, 1.0, policy.backoff_max, lambda: 0.0) == 0.0
    assert next_delay(6, 30.0, 1.0, policy.backoff_max, lambda: 0.5) == 30.0


def test_delivery_settings_defaults_durations_and_refusals_naming_the_variable() -> None:
    """Defaults: 24h deadline, 5m backoff cap, 5 failures, 30s cool-down, 1s send interval;
    durations read like the config's; a malformed or out-of-range one names its variable."""
    default = DeliveryPolicy.from_settings(Settings.from_env({}))
    assert default.deadline == timedelta(hours=24) and default.backoff_max == 300.0
    assert default.breaker == BreakerPolicy(5, 30.0, 300.0, 1.0)
    compressed = DeliveryPolicy.from_settings(
        Settings.from_env(
            {
                "SLAWATCH_DELIVERY_DEADLINE": "20s",
                "SLAWATCH_DELIVERY_BACKOFF_MAX": "1",
                "SLAWATCH_BREAKER_FAILURES": "2",
                "SLAWATCH_BREAKER_COOL_DOWN": "0.5",
                "SLAWATCH_DELIVERY_SEND_INTERVAL": "0",
            }
        )
    )
    assert compressed.deadline == timedelta(seconds=20)
    assert compressed.breaker == BreakerPolicy(2, 0.5, 1.0, 0.0)
    assert Settings.from_env({"SLAWATCH_DELIVERY_DEADLINE": "2d"}).delivery_deadline_seconds == (
        172800
    )
    for name, bad in (
        ("SLAWATCH_DELIVERY_DEADLINE", "a day"),
        ("SLAWATCH_DELIVERY_DEADLINE", "0"),
        ("SLAWATCH_DELIVERY_BACKOFF_MAX", "-5m"),
        ("SLAWATCH_BREAKER_COOL_DOWN", "0"),
        ("SLAWATCH_BREAKER_FAILURES", "0"),
        ("SLAWATCH_DELIVERY_SEND_INTERVAL", "2h"),
    ):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({name: bad})
        assert str(info.value).startswith(f"{name}: ") and bad in str(info.value)
    assert [duration_text(s) for s in (86400, 7200, 300, 20, 1.5)] == [
        "1d",
        "2h",
        "5m",
        "20s",
        "1.5s",
    ]


def message(alerted_at: datetime, reason: str | None) -> AlertMessage:
    return AlertMessage(
        alert_id=3,
        ticket_id="T-1",
        clock="response",
        kind="breach",
        escalation_level=3,
        due_at=alerted_at,
        priority="high",
        customer_tier="gold",
        channel="team",
        notification_id=4,
        alerted_at=alerted_at,
        late_reason=reason,
    )


def test_a_message_sent_more_than_a_minute_after_its_alert_says_how_late_and_why() -> None:
    """14 minutes late after an outage: the fallback text and the context line say so; a
    message within the minute says nothing."""
    msg = message(T0, "Slack was unreachable")
    payload = build_payload(msg, T0 + timedelta(minutes=14), None)
    assert "delivered 14m late: Slack was unreachable" in payload["text"]
    assert "delivered 14m late" in str(payload["blocks"][-1])
    on_time = build_payload(msg, T0 + timedelta(seconds=59), None)
    assert "late" not in on_time["text"] and "late" not in str(on_time["blocks"])


def test_the_late_reason_comes_from_the_row_s_last_error_or_its_channel_s_outage() -> None:
    """A row that failed says what failed; a row that never attempted (it waited on the open
    breaker) is late because its channel failed after its alert; otherwise no reason."""
    quiet = ChannelState()
    assert late_reason("HTTP 500: rollup_error", quiet, T0) == "Slack was unreachable"
    assert late_reason("timeout", quiet, T0) == "Slack was unreachable"
    assert late_reason("HTTP 429: rate_limited", quiet, T0) == "held by Slack's rate limit"
    outage = ChannelState(last_failure_at=at(30), last_failure="HTTP 503")
    assert late_reason(None, outage, T0) == "Slack was unreachable"
    assert late_reason(None, outage, at(60)) is None  # that outage was over before the alert
    assert late_reason(None, quiet, T0) is None


def test_the_state_round_trips_through_the_table_row_shape() -> None:
    """What the repository stores is what the breaker decided: every field, the state as text."""
    s = breaker.admit(opened(), POLICY, at(10), 7, LEASE).state
    row = s.to_row()
    assert row["state"] == "half_open" and row["probe_id"] == 7
    assert ChannelState.from_row(row) == s


def test_a_delivery_back_for_its_slot_waits_for_a_late_predecessor_not_at_the_end_of_the_line() -> (
    None
):
    """The send before it was granted a little late, pushing next_send_at past its slot: a
    delivery holding a slot waits that remainder (and reserves nothing); a newcomer is handed a
    slot after every slot already given out."""
    s = ChannelState(next_send_at=at(10.05), reserved_until=at(30))
    held = breaker.admit(s, POLICY, at(10), 1, LEASE, holds_slot=True)
    assert isinstance(held, Wait) and held.until == at(10.05) and held.state == s
    newcomer = breaker.admit(s, POLICY, at(10), 2, LEASE)
    assert isinstance(newcomer, Wait) and newcomer.until == at(30)
    assert newcomer.state.reserved_until == at(31)
