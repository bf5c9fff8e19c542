"""The direct computation for a ticket known by one event (the ingest's common case) must give
exactly what the general computation over its history gives, for any event, policy and ladder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.sla.business_calendar import BusinessCalendar
from internal.sla.calendar import ALWAYS_OPEN
from internal.sla.ladder import Ladder, Step
from internal.sla.model import DONE_STATUSES, AlertKind, ClockKind, Status
from internal.sla.policy import Rules, Targets
from internal.sla.ticket_sla import Event, compute_ticket_sla, history_sla, single_event_sla

T0 = datetime(2026, 3, 27, 6, 0, tzinfo=UTC)  # two days before Berlin moves its clocks forward
OFFICE = BusinessCalendar(
    "office",
    "Europe/Berlin",
    {d: "09:00-12:30,13:15-17:00" for d in ("mon", "tue", "wed", "thu", "fri")},
    holidays=["2026-03-30"],
)


@st.composite
def ladders(draw: st.DrawFn) -> Ladder:
    """Steps ascending in percent and level, as the config loader requires; possibly none."""
    # The usual percents often, so that steps meet the target (100) and each other.
    percent = st.sampled_from([50, 85, 95, 100, 150]) | st.integers(1, 300)
    percents = sorted(draw(st.lists(percent, unique=True, max_size=5)))
    kinds = draw(st.lists(st.sampled_from(AlertKind), min_size=len(percents), max_size=5))
    return Ladder(tuple(Step(p, i + 1, kinds[i]) for i, p in enumerate(percents)))


targets = st.builds(
    Targets,
    seconds=st.fixed_dictionaries(
        {
            "response": st.floats(0.001, 3 * 86400) | st.integers(1, 86400).map(float),
            "resolution": st.floats(0.001, 10 * 86400) | st.integers(1, 86400).map(float),
        }
    ),
    calendar=st.sampled_from([ALWAYS_OPEN, OFFICE]),
)
rules = st.builds(
    Rules,
    ladder=ladders(),
    pause_statuses=st.frozensets(st.sampled_from([s for s in Status if s not in DONE_STATUSES])),
    version=st.just("v1"),
)


@st.composite
def events(draw: st.DrawFn, targets: Targets, rules: Rules) -> Event:
    created = T0 + timedelta(microseconds=draw(st.integers(0, 10 * 86400 * 10**6)))
    # Also before creation (the clocks clamp it to creation), and often exactly where a stopped
    # clock's elapsed time equals a threshold, the edge between reaching it and not.
    thresholds = [
        target * step.at_percent / 100.0
        for target in targets.seconds.values()
        for step in rules.ladder.steps
    ] + list(targets.seconds.values())
    exact = st.sampled_from(thresholds).map(lambda s: timedelta(seconds=s))
    lag = exact | st.integers(-3600 * 10**6, 5 * 86400 * 10**6).map(
        lambda us: timedelta(microseconds=us)
    )
    return Event("T-1", "high", "gold", draw(st.sampled_from(Status)), created, created + draw(lag))


fired = st.fixed_dictionaries(
    {}, optional={ClockKind.RESPONSE: st.integers(0, 6), ClockKind.RESOLUTION: st.integers(0, 6)}
)


@settings(max_examples=1500, deadline=None)
@given(st.data(), targets, rules, fired)
def test_one_event_gives_what_its_history_gives(
    data: st.DataObject, targets: Targets, rules: Rules, fired: dict[ClockKind, int]
) -> None:
    event = data.draw(events(targets, rules))
    assert single_event_sla(event, targets, rules, fired) == history_sla(
        [event], targets, rules, fired
    )


def test_one_open_event_runs_both_clocks_from_creation() -> None:
    event = Event("T-1", "low", "gold", Status.OPEN, T0, T0 + timedelta(minutes=5))
    rules = Rules(Ladder((Step(85, 1, AlertKind.WARNING),)), frozenset(), "v1")
    sla = compute_ticket_sla(
        [event], Targets({"response": 60.0, "resolution": 600.0}, ALWAYS_OPEN), rules, {}
    )
    assert sla.clock("response").due_at == T0 + timedelta(seconds=60)
    assert sla.clock("resolution").warn_at == T0 + timedelta(seconds=510)
    assert sla.clock("resolution").next_check_at == sla.clock("resolution").warn_at
    assert sla.urgent_at == T0 + timedelta(seconds=60)
