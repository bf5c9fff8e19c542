"""Metric definitions for the pure-logic tests, written with the config's trigger names."""

from __future__ import annotations

from collections.abc import Sequence

from internal.sla.metric import Cycles, MetricDefinition, Triggers


def metric(
    name: str,
    start: list[str],
    stop: list[str],
    pause: Sequence[str] = (),
    resume: Sequence[str] = (),
    cycles: Cycles = Cycles.ONCE,
) -> MetricDefinition:
    return MetricDefinition(
        name,
        Triggers.parse(start),
        Triggers.parse(stop),
        Triggers.parse(pause).statuses,
        Triggers.parse(resume),
        cycles,
    )


# Two shapes of DESIGN §8: the first public reply, and the wait after each customer message.
FIRST_REPLY = metric(
    "first_reply", ["created"], ["agent_reply"], pause=["status:on_hold"], resume=["reopened"]
)
NEXT_REPLY = metric(
    "next_reply",
    ["customer_reply"],
    ["agent_reply", "status:resolved", "status:closed"],
    cycles=Cycles.EACH_START,
)
