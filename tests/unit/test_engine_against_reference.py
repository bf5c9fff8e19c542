"""The SLA engine (internal/sla) against the independent reference model (tests/reference), for
part one's two clocks: over random histories of status changes, replies, notes, holds, reopens,
duplicates and shuffled arrival, on the 24x7 and a business calendar, both give each clock the
same mode, due time, first-warning time, elapsed time and state.

The engine knows only statuses today, so an event without a status is given the status in force
before it (for the two default clocks that is what "unchanged" means); its activity has no part in
them."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.config.sla_config import SlaConfig, parse_config
from internal.sla.model import Mode, Status
from internal.sla.ticket_sla import Event as EngineEvent
from internal.sla.ticket_sla import compute_ticket_sla
from reference import metric_model
from reference.calendar_model import TWENTY_FOUR_SEVEN, Calendar, emea_office
from reference.histories import History, histories
from support.configs import config_text

# Targets of a few hours, so that random histories of minutes to days cross them in every state.
POLICIES = {
    "high": {
        "gold": {"response": "2h", "resolution": "9h"},
        "silver": {"response": "2h", "resolution": "9h", "calendar": "emea_office"},
    }
}
CONFIG: SlaConfig = parse_config(config_text(policies=POLICIES))
MODEL_CALENDARS: dict[str, Calendar] = {"gold": TWENTY_FOUR_SEVEN, "silver": emea_office()}
ENGINE_MODE = {"running": Mode.RUNNING, "paused": Mode.PAUSED, "stopped": Mode.STOPPED}


def engine_events(history: History, tier: str) -> list[EngineEvent]:
    """The arrival, as the engine's events: a status-less event carries the status before it."""
    status_at: dict[datetime, Status] = {}
    status = Status.OPEN
    for e in history.events:  # event-time order
        if e.status is not None:
            status = Status(e.status)
        status_at[e.at] = status
    return [
        EngineEvent("T-1", "high", tier, status_at[e.at], history.created_at, e.at)
        for e in history.arrival
    ]


def compare(history: History, tier: str) -> None:
    targets = CONFIG.targets("high", tier)
    assert targets is not None
    metrics = [
        metric_model.response_metric(),
        metric_model.resolution_metric(sorted(s.value for s in CONFIG.pause_statuses)),
    ]
    expected = metric_model.clocks(
        history.created_at,
        history.events,
        metrics,
        dict(targets.seconds),
        MODEL_CALENDARS[tier],
        history.now,
    )
    if not history.events:
        return  # the engine computes a ticket from its events: none, no ticket
    sla = compute_ticket_sla(engine_events(history, tier), targets, CONFIG.rules, {})
    assert [c.metric for c in expected] == [c.metric for c in sla.clocks]
    for want, got in zip(expected, sla.clocks, strict=True):
        where = f"{want.metric} of {history}"
        assert ENGINE_MODE[want.mode] is got.mode, where
        assert want.due_at == got.due_at, where
        assert want.warning_at == got.warn_at, where
        assert want.state == got.state(history.now).name.lower(), where
        elapsed = got.anchor_elapsed
        if got.mode is Mode.RUNNING:
            elapsed += targets.calendar.working_seconds(got.anchor_at, history.now)
        assert abs(want.elapsed_seconds - elapsed) < 1e-3, where


@settings(max_examples=400, deadline=None)
@given(histories(max_events=20), st.sampled_from(["gold", "silver"]))
def test_the_default_clocks_agree_with_the_reference_model(history: History, tier: str) -> None:
    """Part one's response and resolution, computed by the engine from any arrival order, are
    what the reference model says the time-ordered history gives."""
    compare(history, tier)


@settings(max_examples=150, deadline=None)
@given(histories(max_events=8, early=True), st.sampled_from(["gold", "silver"]))
def test_events_stamped_before_creation_agree_too(history: History, tier: str) -> None:
    """An event stamped before the ticket's creation counts as at creation, in both."""
    compare(history, tier)
