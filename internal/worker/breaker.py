"""A channel's circuit breaker and send pacing, as a pure state machine (DESIGN §11).

The state lives in PostgreSQL (`delivery_channels`, internal/store/channel_repo.py) so that it is
shared by every worker and survives restarts; a worker reads it FOR UPDATE, asks `admit` or
`record` what to do, and writes the new state back in the same transaction. Nothing here reads
the clock or the database.

- closed: sends go, one per `send_interval` at most (Slack takes about one message per second
  per webhook). `failures_to_open` transient failures in a row open the breaker.
- open: nobody sends until `retry_at`; deliveries wait without counting an attempt.
- half_open: after the cool-down one delivery at a time is the probe (its lease bounds how long
  others wait for it). Its success closes the breaker; its transient failure re-opens it with a
  cool-down twice as long, up to `cool_down_max`.

Any answer from the channel that is not a transient failure (a success, a permanent error, a
429) shows the channel reachable: it closes the breaker. A 429's Retry-After holds every send
to the channel, not only the retry of the message that got it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class SendOutcome(StrEnum):
    SENT = "sent"
    PERMANENT = "permanent"  # the channel answered and refused the message for good
    RATE_LIMITED = "rate_limited"  # 429
    TRANSIENT = "transient"  # 5xx, timeout, connection error
    NOT_SENT = "not_sent"  # nothing reached the channel (slawatch raised, no webhook set)


@dataclass(frozen=True)
class BreakerPolicy:
    failures_to_open: int = 5
    cool_down: float = 30.0  # seconds of the first open period
    cool_down_max: float = 300.0
    send_interval: float = 1.0  # seconds between two sends to one channel; 0: no pacing

    def __post_init__(self) -> None:
        if self.failures_to_open < 1:
            raise ValueError("failures_to_open must be at least 1")
        if self.cool_down <= 0 or self.cool_down_max < self.cool_down:
            raise ValueError("need 0 < cool_down <= cool_down_max")
        if self.send_interval < 0:
            raise ValueError("send_interval must not be negative")


@dataclass(frozen=True)
class ChannelState:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: datetime | None = None
    retry_at: datetime | None = None
    cool_down: float = 0.0
    probe_id: int | None = None
    probe_until: datetime | None = None
    next_send_at: datetime | None = None
    reserved_until: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ChannelState:
        """From a `delivery_channels` row as internal/store/channel_repo.py returns it."""
        return cls(**{**row, "state": BreakerState(row["state"]), "failures": int(row["failures"])})

    def to_row(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}


@dataclass(frozen=True)
class Send:
    state: ChannelState
    probe: bool


class WaitReason(StrEnum):
    OPEN = "open"  # the breaker is open
    PROBING = "probing"  # another delivery is the probe
    PACED = "paced"  # the channel's send slot is not yet due


@dataclass(frozen=True)
class Wait:
    state: ChannelState
    until: datetime
    reason: WaitReason


def admit(
    s: ChannelState,
    policy: BreakerPolicy,
    now: datetime,
    notification_id: int,
    lease: timedelta,
    *,
    holds_slot: bool = False,
) -> Send | Wait:
    """May a delivery of `notification_id` send to this channel now? `holds_slot`: it was
    handed a send slot earlier (a paced Wait) and comes back for it."""
    held = blocked(s, policy, now)
    if held is not None:
        return held
    if s.state is BreakerState.OPEN:
        probing = replace(
            s, state=BreakerState.HALF_OPEN, probe_id=notification_id, probe_until=now + lease
        )
        return _paced(s, probing, policy, now, probe=True, holds_slot=holds_slot)
    if s.state is BreakerState.HALF_OPEN:
        # No probe, or its worker died holding it: this delivery probes.
        probing = replace(s, probe_id=notification_id, probe_until=now + lease)
        return _paced(s, probing, policy, now, probe=True, holds_slot=holds_slot)
    return _paced(s, s, policy, now, probe=False, holds_slot=holds_slot)


def blocked(s: ChannelState, policy: BreakerPolicy, now: datetime) -> Wait | None:
    """The wait every delivery of the channel gets while its breaker is open or its probe is in
    flight, whichever row it would send; None when one may be admitted (pacing permitting)."""
    if s.state is BreakerState.OPEN and s.retry_at is not None and now < s.retry_at:
        return Wait(s, s.retry_at, WaitReason.OPEN)
    if (
        s.state is BreakerState.HALF_OPEN
        and s.probe_id is not None
        and s.probe_until is not None
        and now < s.probe_until
    ):
        # Look again after a cool-down rather than at the end of the probe's lease: the
        # probe's answer usually comes within a second.
        again = min(s.probe_until, now + timedelta(seconds=policy.cool_down))
        return Wait(s, again, WaitReason.PROBING)
    return None


def _paced(
    before: ChannelState,
    after: ChannelState,
    policy: BreakerPolicy,
    now: datetime,
    *,
    probe: bool,
    holds_slot: bool,
) -> Send | Wait:
    interval = timedelta(seconds=policy.send_interval)
    if before.next_send_at is None or now >= before.next_send_at:
        return Send(replace(after, next_send_at=now + interval), probe)
    if holds_slot and before.next_send_at - now <= interval:
        # Back for its slot, which the send before it (granted a little late) has pushed on by
        # less than an interval: it waits for that, not at the end of the line.
        return Wait(before, before.next_send_at, WaitReason.PACED)
    # A slot after every slot already handed out: a backlog's deliveries wake one per interval.
    slot = max(before.next_send_at, before.reserved_until or before.next_send_at)
    reserved = replace(before, reserved_until=slot + interval)
    return Wait(reserved, slot, WaitReason.PACED)


def record(
    s: ChannelState,
    policy: BreakerPolicy,
    now: datetime,
    notification_id: int,
    outcome: SendOutcome,
    *,
    retry_after: float | None = None,
    error: str | None = None,
) -> ChannelState:
    """The channel's state after a send admitted by `admit` ended with `outcome`."""
    was_probe = s.state is BreakerState.HALF_OPEN and s.probe_id == notification_id
    if outcome is SendOutcome.NOT_SENT:
        # Says nothing about the channel; a probe that never reached it is handed back.
        return replace(s, probe_id=None, probe_until=None) if was_probe else s
    if outcome is SendOutcome.TRANSIENT:
        failed = replace(s, failures=s.failures + 1, last_failure_at=now, last_failure=error)
        if was_probe:
            cool = min(max(s.cool_down * 2, policy.cool_down), policy.cool_down_max)
            return _opened(failed, now, cool)
        if s.state is BreakerState.CLOSED and failed.failures >= policy.failures_to_open:
            return _opened(failed, now, policy.cool_down)
        return failed  # open already, or a send admitted before the breaker opened
    closed = replace(
        s,
        state=BreakerState.CLOSED,
        failures=0,
        opened_at=None,
        retry_at=None,
        cool_down=0.0,
        probe_id=None,
        probe_until=None,
    )
    if outcome is SendOutcome.RATE_LIMITED and retry_after is not None:
        hold = now + timedelta(seconds=retry_after)
        if closed.next_send_at is None or hold > closed.next_send_at:
            closed = replace(closed, next_send_at=hold)
    return closed


def _opened(s: ChannelState, now: datetime, cool_down: float) -> ChannelState:
    return replace(
        s,
        state=BreakerState.OPEN,
        opened_at=s.opened_at or now,
        retry_at=now + timedelta(seconds=cool_down),
        cool_down=cool_down,
        probe_id=None,
        probe_until=None,
    )
