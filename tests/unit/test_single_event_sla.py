"""The direct computation for a ticket known by one event (the ingest's common case) must give
exactly what the general computation over its history gives, for any event, policy and ladder,
and for any metrics (part one's two, or any set of definitions with their own ladders)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.sla.business_calendar import BusinessCalendar
from internal.sla.calendar import ALWAYS_OPEN
from internal.sla.ladder import Ladder, Step
from internal.sla.metric import TRIGGERS, Cycles, MetricDefinition, Triggers
from internal.sla.model import DONE_STATUSES, Activity, AlertKind, ClockKind, Status
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
    exact = st.sampled_from(thresholds or [60.0]).map(lambda s: timedelta(seconds=s))
    lag = exact | st.integers(-3600 * 10**6, 5 * 86400 * 10**6).map(
        lambda us: timedelta(microseconds=us)
    )
    return Event("T-1", "high", "gold", draw(st.sampled_from(Status)), created, created + draw(lag))


fired = st.fixed_dictionaries(
    {},
    optional={
        (ClockKind.RESPONSE.value, 1): st.integers(0, 6),
        (ClockKind.RESOLUTION.value, 1): st.integers(0, 6),
    },
)


@settings(max_examples=1500, deadline=None)
@given(st.data(), targets, rules, fired)
def test_one_event_gives_what_its_history_gives(
    data: st.DataObject, targets: Targets, rules: Rules, fired: dict[tuple[str, int], int]
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


# Metrics of any shape (part one's, reply metrics, odd ones), each maybe with its own ladder.
_trigger_sets = st.lists(st.sampled_from(TRIGGERS), max_size=4).map(Triggers.parse)
_status_sets = st.frozensets(st.sampled_from(Status), max_size=3)


@st.composite
def metric_rules(draw: st.DrawFn) -> tuple[Rules, Targets]:
    """Rules of one to four metrics, and targets for some of them (a policy need not name each
    metric: one without a target gives no cycles)."""
    names = draw(
        st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4, unique=True)
    )
    defs = []
    for name in names:
        if draw(st.booleans()):
            start, stop, resume = draw(_trigger_sets), draw(_trigger_sets), draw(_trigger_sets)
            cycles = draw(st.sampled_from(Cycles))
        else:  # part one's shape: once, from creation, stopped by statuses
            start, cycles = Triggers(created=True), Cycles.ONCE
            stop = Triggers(statuses=draw(_status_sets))
            resume = draw(st.sampled_from([Triggers(), Triggers(reopened=True)]))
        own = draw(st.none() | ladders())
        defs.append(MetricDefinition(name, start, stop, draw(_status_sets), resume, cycles, own))
    rules = Rules(draw(ladders()), frozenset(), "v2", tuple(defs))
    seconds = {
        n: draw(st.floats(0.001, 3 * 86400) | st.integers(1, 86400).map(float))
        for n in names
        if draw(st.integers(0, 3)) > 0
    }
    return rules, Targets(seconds, draw(st.sampled_from([ALWAYS_OPEN, OFFICE])))


@settings(max_examples=1500, deadline=None)
@given(st.data(), metric_rules())
def test_one_event_gives_what_its_history_gives_for_any_metrics(
    data: st.DataObject, drawn: tuple[Rules, Targets]
) -> None:
    """The fast path with metrics: the part-one-shaped ones worked out directly, the others by
    the rule over two moments, each on its own ladder, with fired levels per (metric, cycle)."""
    rules, targets = drawn
    event = data.draw(events(targets, rules))
    event = Event(
        event.ticket_id,
        event.priority,
        event.customer_tier,
        event.status,
        event.created_at,
        event.updated_at,
        data.draw(st.sampled_from(Activity)),
    )
    fired = data.draw(
        st.dictionaries(
            st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 3)),
            st.integers(0, 6),
            max_size=4,
        )
    )
    fast = single_event_sla(event, targets, rules, fired)
    assert fast == history_sla([event], targets, rules, fired)
    assert {c.metric for c in fast.clocks} <= set(targets.seconds)


def test_each_metric_runs_on_its_own_ladder() -> None:
    """A metric with its own ladder has its warning and next check from it; one without, from
    the rules' ladder."""
    own = Ladder((Step(50, 1, AlertKind.WARNING), Step(100, 2, AlertKind.BREACH)))
    defs = (
        MetricDefinition(
            "a", Triggers(created=True), Triggers(statuses=frozenset({Status.CLOSED}))
        ),
        MetricDefinition(
            "b",
            Triggers(created=True),
            Triggers(activities=frozenset({Activity.AGENT_REPLY})),
            ladder=own,
        ),
    )
    rules = Rules(Ladder((Step(85, 1, AlertKind.WARNING),)), frozenset(), "v1", defs)
    event = Event("T-1", "low", "gold", Status.OPEN, T0, T0 + timedelta(minutes=1))
    targets = Targets({"a": 100.0, "b": 100.0}, ALWAYS_OPEN)
    for sla in (
        single_event_sla(event, targets, rules, {}),
        history_sla([event], targets, rules, {}),
    ):
        assert sla.clock("a").warn_at == T0 + timedelta(seconds=85)
        assert sla.clock("b").warn_at == T0 + timedelta(seconds=50)
        assert sla.clock("b").next_check_at == T0 + timedelta(seconds=50)
