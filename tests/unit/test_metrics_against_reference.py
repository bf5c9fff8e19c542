"""The metric engine (internal/sla/metric_run.py) against the independent reference model
(tests/reference/metric_model.py) for every metric shape: DESIGN §8's four, the example config's
four, part one's two and a few odd definitions, over random histories with replies, holds,
reopens and early events, arriving shuffled and with repeats, on the 24x7 and a business
calendar. Cycle by cycle, both give the same number, opening instant, mode, due time,
first-warning time, elapsed time, state and last stop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.config.sla_config import parse_config
from internal.sla.business_calendar import BusinessCalendar
from internal.sla.calendar import ALWAYS_OPEN, Calendar
from internal.sla.ladder import Ladder, Step, warn_at
from internal.sla.metric import Cycles, MetricDefinition, Triggers
from internal.sla.metric_run import HistoryEvent, run_metrics
from internal.sla.model import Activity, AlertKind, Status
from reference import metric_model as ref
from reference.calendar_model import TWENTY_FOUR_SEVEN, emea_office
from reference.calendar_model import Calendar as ModelCalendar
from reference.histories import History, histories
from support.env import ROOT

LADDER = Ladder(
    tuple(Step(s.at_percent, s.level, AlertKind(s.kind)) for s in ref.DEFAULT_LADDER.steps)
)
OFFICE = BusinessCalendar(
    "emea_office",
    "Europe/Berlin",
    {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")},
    ["2026-12-25", "2026-12-26"],
)
CALENDARS: dict[str, tuple[ModelCalendar, Calendar]] = {
    "24x7": (TWENTY_FOUR_SEVEN, ALWAYS_OPEN),
    "office": (emea_office(), OFFICE),
}


def definition(m: ref.Metric) -> MetricDefinition:
    """The model's metric as the engine's definition (both from the same trigger names)."""
    return MetricDefinition(
        m.name,
        Triggers.parse(m.start),
        Triggers.parse(m.stop),
        Triggers.parse(m.pause).statuses,
        Triggers.parse(sorted(m.resume_triggers)),
        Cycles(m.cycles),
    )


def _example_metrics() -> tuple[ref.Metric, ...]:
    """examples/zendesk-like.yaml's metrics, as the loader reads them, for the model."""
    config = parse_config((ROOT / "examples" / "zendesk-like.yaml").read_text())
    return tuple(
        ref.Metric(
            d.name,
            d.start.names,
            d.stop.names,
            tuple(f"status:{s.value}" for s in sorted(d.pause)),
            d.cycles.value,
            None if d.cycles is Cycles.EACH_START else d.resume.names,
        )
        for d in config.metrics
    )


METRIC_SETS = {
    "design": ref.design_metrics(),
    "example": _example_metrics(),
    "part one": (ref.response_metric(), ref.resolution_metric(["on_hold"])),
    "odd": (
        ref.Metric(
            "odd_once",
            ("customer_reply", "reopened"),
            ("status:resolved", "internal_note"),
            ("status:in_progress",),
            "once",
            ("customer_reply",),
        ),
        ref.Metric(
            "odd_each",
            ("status:on_hold", "agent_reply"),
            ("status:open", "customer_reply"),
            ("status:closed",),
            "each_start",
        ),
    ),
}


def compare(history: History, metrics: tuple[ref.Metric, ...], calendar: str, target: int) -> None:
    model_calendar, engine_calendar = CALENDARS[calendar]
    targets = {m.name: float(target) for m in metrics}
    want = ref.clocks(
        history.created_at,
        history.events,
        metrics,
        targets,
        model_calendar,
        history.now,  # type: ignore[arg-type]
    )
    # The store keeps one event per instant (the first copy); the engine sees that history.
    stored: dict[object, HistoryEvent] = {}
    for e in history.arrival:
        status = None if e.status is None else Status(e.status)
        stored.setdefault(e.at, HistoryEvent(e.at, status, Activity(e.activity)))
    got = run_metrics(
        [definition(m) for m in metrics],
        history.created_at,
        list(stored.values()),
        targets,
        engine_calendar,
    )
    cycles = [c for cs in got.values() for c in cs]
    assert [(w.metric, w.cycle) for w in want] == [(c.metric, c.number) for c in cycles]
    for w, c in zip(want, cycles, strict=True):
        clock, where = c.clock, f"{w.metric} cycle {w.cycle} of {history}"
        assert w.started_at == c.started_at, where
        assert w.mode == clock.mode.value, where
        assert w.due_at == clock.due_at, where
        assert w.warning_at == warn_at(clock, LADDER), where
        assert w.state == c.state(LADDER, history.now).name.lower(), where
        assert abs(w.elapsed_seconds - clock.elapsed(history.now)) < 1e-3, where
        if w.stopped_at is not None:
            assert w.stopped_at == clock.anchor_at, where


@settings(max_examples=400, deadline=None)
@given(
    histories(max_events=20),
    st.sampled_from(sorted(METRIC_SETS)),
    st.sampled_from(sorted(CALENDARS)),
    st.sampled_from([600, 3600, 4 * 3600, 9 * 3600]),
)
def test_every_metric_shape_agrees_with_the_reference_model(
    history: History, metrics: str, calendar: str, target: int
) -> None:
    """Whatever the arrival order, every cycle of every metric is what the model says the
    time-ordered history gives."""
    compare(history, METRIC_SETS[metrics], calendar, target)


@settings(max_examples=150, deadline=None)
@given(
    histories(max_events=8, early=True),
    st.sampled_from(sorted(METRIC_SETS)),
    st.sampled_from(sorted(CALENDARS)),
)
def test_events_stamped_before_creation_agree_too(
    history: History, metrics: str, calendar: str
) -> None:
    """An event stamped before the ticket's creation counts as at creation, in both."""
    compare(history, METRIC_SETS[metrics], calendar, 3600)
