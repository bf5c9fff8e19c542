"""Random ticket histories for comparing the engine and the server with the reference model.

A history is a creation time, its events in event-time order, the same events as they arrive
(shuffled, some delivered twice, cut into batches) and a `now` after the last event. Two sources:

- `histories()`: a hypothesis strategy (shrinks to small failing histories);
- `random_history(rng)`: the same shape from a seeded `random.Random`, for loops over a few
  hundred histories against a live server, where hypothesis' replay would be too slow.

Events come from a small vocabulary of help-desk actions (replies that do or do not change the
status, holds, resolves, reopens, closes, internal notes, plain field updates) plus an `odd` action
with any status and any activity, so that unlikely transitions (a hold straight from closed, a
reply that closes) are covered too. Times are whole seconds; creation times sit near the spots a
business calendar finds hard (the Berlin DST changes, Christmas, a weekend).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from reference.calendar_model import TWENTY_FOUR_SEVEN, Calendar, emea_office
from reference.metric_model import ACTIVITIES, STATUSES, Event

# action -> (status it sets or None, activity); "odd" draws both at random.
ACTIONS: dict[str, tuple[str | None, str]] = {
    "customer_reply": (None, "customer_reply"),
    "customer_reopens": ("open", "customer_reply"),
    "agent_reply": (None, "agent_reply"),
    "agent_works": ("in_progress", "agent_reply"),
    "agent_asks": ("on_hold", "agent_reply"),
    "agent_solves": ("resolved", "agent_reply"),
    "internal_note": (None, "internal_note"),
    "field_update": (None, "none"),
    "hold": ("on_hold", "none"),
    "unhold": ("in_progress", "none"),
    "resolve": ("resolved", "none"),
    "reopen": ("open", "none"),
    "close": ("closed", "none"),
}
ODD = "odd"
# How often random_history picks each action: replies most, odd transitions rarely.
WEIGHTS: dict[str, int] = {
    "customer_reply": 6,
    "customer_reopens": 1,
    "agent_reply": 6,
    "agent_works": 3,
    "agent_asks": 2,
    "agent_solves": 2,
    "internal_note": 3,
    "field_update": 2,
    "hold": 2,
    "unhold": 2,
    "resolve": 2,
    "reopen": 2,
    "close": 1,
    ODD: 1,
}

# Friday mornings (UTC) just before the spring and autumn changes in Europe/Berlin, the days
# before Christmas, and an ordinary June week.
ANCHORS = (
    datetime(2026, 3, 27, 7, 0, tzinfo=UTC),
    datetime(2026, 10, 23, 6, 0, tzinfo=UTC),
    datetime(2026, 12, 23, 7, 0, tzinfo=UTC),
    datetime(2026, 6, 1, 6, 0, tzinfo=UTC),
)
# Gaps between events: seconds, minutes, hours, days (a history spans weekends now and then).
GAP_RANGES = ((1, 120), (60, 3_600), (3_600, 8 * 3_600), (86_400, 3 * 86_400))

CALENDARS: tuple[Calendar, ...] = (TWENTY_FOUR_SEVEN, emea_office())


@dataclass(frozen=True)
class Step:
    """One drawn action: what happens and how many seconds after the previous event."""

    action: str
    gap_seconds: int
    odd_status: str | None = None  # for "odd" only
    odd_activity: str = "none"  # for "odd" only


@dataclass(frozen=True)
class History:
    created_at: datetime
    events: tuple[Event, ...]  # event-time order, one per instant
    batches: tuple[tuple[Event, ...], ...]  # arrival order: shuffled, with repeats
    now: datetime

    @property
    def arrival(self) -> list[Event]:
        """Every delivery in arrival order (batches concatenated)."""
        return [event for batch in self.batches for event in batch]


def build_events(
    created_at: datetime, steps: Sequence[Step], early_seconds: int | None = None
) -> list[Event]:
    """The events of a list of steps, in event-time order. With `early_seconds`, the first event
    is stamped that many seconds before created_at (the rule counts it as created_at)."""
    events: list[Event] = []
    at = created_at
    for index, step in enumerate(steps):
        at += timedelta(seconds=step.gap_seconds)
        if step.action == ODD:
            status, activity = step.odd_status, step.odd_activity
        else:
            status, activity = ACTIONS[step.action]
        stamp = at
        if index == 0 and early_seconds is not None:
            stamp = created_at - timedelta(seconds=early_seconds)
        events.append(Event(stamp, status, activity))
    return events


def arrange(
    events: Sequence[Event], order: Sequence[int], repeats: Sequence[int], cuts: Sequence[int]
) -> tuple[tuple[Event, ...], ...]:
    """Deliveries: the events in `order` (a permutation of their indices), then the events at
    `repeats` once more, cut into batches before each position in `cuts`."""
    deliveries = [events[index] for index in order] + [events[index] for index in repeats]
    bounds = sorted({cut for cut in cuts if 0 < cut < len(deliveries)})
    batches: list[tuple[Event, ...]] = []
    begin = 0
    for bound in [*bounds, len(deliveries)]:
        if bound > begin:
            batches.append(tuple(deliveries[begin:bound]))
        begin = bound
    return tuple(batches)


# -- hypothesis ----------------------------------------------------------------------------------

_gaps = st.one_of(*(st.integers(low, high) for low, high in GAP_RANGES))


@st.composite
def _steps(draw: st.DrawFn) -> Step:
    action = draw(st.sampled_from([*ACTIONS, ODD]))
    gap = draw(_gaps)
    if action != ODD:
        return Step(action, gap)
    return Step(
        action,
        gap,
        draw(st.sampled_from([*STATUSES, None])),
        draw(st.sampled_from(ACTIVITIES)),
    )


@st.composite
def histories(draw: st.DrawFn, max_events: int = 25, early: bool = False) -> History:
    """A random history. With `early`, the first event may be stamped before created_at."""
    created_at = draw(st.sampled_from(ANCHORS)) + timedelta(
        seconds=draw(st.integers(0, 7 * 86_400))
    )
    steps = draw(st.lists(_steps(), max_size=max_events))
    early_seconds = draw(st.none() | st.integers(1, 3_600)) if early else None
    events = build_events(created_at, steps, early_seconds)
    order = draw(st.permutations(range(len(events))))
    repeats = draw(st.lists(st.integers(0, len(events) - 1), max_size=3)) if events else []
    cuts = draw(st.lists(st.integers(0, len(events) + len(repeats)), max_size=4))
    last = max([created_at, *(event.at for event in events)])
    now = last + timedelta(seconds=draw(st.integers(0, 2 * 86_400)))
    return History(created_at, tuple(events), arrange(events, order, repeats, cuts), now)


# -- seeded random ---------------------------------------------------------------------------------


def random_history(
    rng: random.Random, max_events: int = 25, early: bool = False, max_batches: int = 4
) -> History:
    """A random history from `rng`, with actions drawn by WEIGHTS."""
    created_at = rng.choice(ANCHORS) + timedelta(seconds=rng.randint(0, 7 * 86_400))
    names = list(WEIGHTS)
    steps: list[Step] = []
    for _ in range(rng.randint(0, max_events)):
        action = rng.choices(names, weights=[WEIGHTS[name] for name in names])[0]
        low, high = rng.choice(GAP_RANGES)
        gap = rng.randint(low, high)
        if action == ODD:
            steps.append(Step(action, gap, rng.choice([*STATUSES, None]), rng.choice(ACTIVITIES)))
        else:
            steps.append(Step(action, gap))
    early_seconds = rng.randint(1, 3_600) if early and rng.random() < 0.5 else None
    events = build_events(created_at, steps, early_seconds)
    order = list(range(len(events)))
    rng.shuffle(order)
    repeats = [rng.randrange(len(events)) for _ in range(rng.randint(0, 2))] if events else []
    total = len(events) + len(repeats)
    cuts = [rng.randint(1, max(total, 1)) for _ in range(rng.randint(0, max_batches - 1))]
    last = max([created_at, *(event.at for event in events)])
    now = last + timedelta(seconds=rng.randint(0, 2 * 86_400))
    return History(created_at, tuple(events), arrange(events, order, repeats, cuts), now)
