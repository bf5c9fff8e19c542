"""The reference model of SLA metrics (tests/reference) checked against hand-computed histories.

The model is what the engine and the server are compared with, so its own expected values are
worked out by hand in the comments (never by calling the model a second time). Unless a test says
otherwise, times are UTC on Monday 2026-06-01 on the 24x7 calendar.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.calendar_model import (
    TWENTY_FOUR_SEVEN,
    WEEKDAYS,
    BusinessCalendar,
    Calendar,
    emea_office,
)
from reference.histories import CALENDARS, History, histories, random_history
from reference.metric_model import (
    Cycle,
    Event,
    Ladder,
    Metric,
    Step,
    clocks,
    current_cycles,
    design_metrics,
    first_reply_metric,
    ladder_instants,
    next_reply_metric,
    periodic_update_metric,
    resolution_metric,
    response_metric,
)

BERLIN = ZoneInfo("Europe/Berlin")
H = 3600
PROPERTY = settings(max_examples=200, deadline=None)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant on Monday 2026-06-01, UTC."""
    return datetime(2026, 6, 1, hour, minute, second, tzinfo=UTC)


def berlin(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A wall time in Europe/Berlin in 2026."""
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def only(cycles: list[Cycle]) -> Cycle:
    assert len(cycles) == 1, cycles
    return cycles[0]


def run(
    metric: Metric,
    events: list[Event],
    target: float,
    now: datetime,
    created_at: datetime | None = None,
    calendar: Calendar = TWENTY_FOUR_SEVEN,
    ladder: Ladder | None = None,
) -> list[Cycle]:
    """One metric over one history."""
    created = at(9) if created_at is None else created_at
    if ladder is None:
        return clocks(created, events, [metric], {metric.name: target}, calendar, now)
    return clocks(created, events, [metric], {metric.name: target}, calendar, now, ladder)


# -- the metric shapes of DESIGN §8 ---------------------------------------------------------------


def test_first_reply_stops_at_the_first_agent_reply_and_response_at_the_first_status() -> None:
    """first_reply measures replies (a status change or an internal note does not stop it), while
    part one's response stops at the first status that is not open."""
    events = [
        Event(at(9, 5), "in_progress"),
        Event(at(9, 10), None, "internal_note"),
        Event(at(9, 25), None, "agent_reply"),
    ]
    got = clocks(
        at(9),
        events,
        [first_reply_metric(), response_metric()],
        {"first_reply": 1800, "response": 900},
        TWENTY_FOUR_SEVEN,
        at(10),
    )
    # first_reply: 09:00 -> 09:25 = 1500 s < 1800 s target, and < 85 % of it (1530 s): no due,
    # no warning. response: 09:00 -> 09:05 = 300 s < 765 s (85 % of 900 s).
    assert got == [
        Cycle("first_reply", 1, at(9), at(9, 25), 1500.0, "stopped", None, None, "met"),
        Cycle("response", 1, at(9), at(9, 5), 300.0, "stopped", None, None, "met"),
    ]


def test_next_reply_three_customer_messages_before_an_answer_are_one_cycle() -> None:
    """each_start: a start while a cycle is open does not restart it; the next customer message
    after the answer opens cycle 2."""
    events = [
        Event(at(10), None, "customer_reply"),
        Event(at(10, 5), None, "customer_reply"),
        Event(at(10, 20), None, "customer_reply"),
        Event(at(10, 30), None, "agent_reply"),
        Event(at(11), None, "customer_reply"),
    ]
    got = run(next_reply_metric(), events, 3600, now=at(11, 10))
    # Cycle 1: 10:00 -> 10:30 = 1800 s, under 85 % of 3600 s (3060 s): met.
    # Cycle 2: from 11:00, 600 s by 11:10; due 11:00 + 3600 s = 12:00, warning 11:00 + 3060 s =
    # 11:51.
    assert got == [
        Cycle("next_reply", 1, at(10), at(10, 30), 1800.0, "stopped", None, None, "met"),
        Cycle("next_reply", 2, at(11), None, 600.0, "running", at(12), at(11, 51), "ok"),
    ]


def test_periodic_update_one_reply_stops_a_cycle_and_starts_the_next() -> None:
    """An event that stops a cycle may start the next one (start [agent_reply], stop
    [agent_reply]): step (a) before step (b)."""
    events = [
        Event(at(9), None, "agent_reply"),
        Event(at(10), None, "agent_reply"),
        Event(at(10, 30), None, "agent_reply"),
    ]
    got = run(periodic_update_metric(), events, 5400, now=at(11), created_at=at(8))
    # Target 5400 s, warning at 85 % = 4590 s = 1 h 16 min 30 s.
    # 1: 09:00 -> 10:00 = 3600 s; 2: 10:00 -> 10:30 = 1800 s; 3: from 10:30, 1800 s at 11:00,
    # due 10:30 + 1 h 30 = 12:00, warning 10:30 + 1:16:30 = 11:46:30.
    assert got == [
        Cycle("periodic_update", 1, at(9), at(10), 3600.0, "stopped", None, None, "met"),
        Cycle("periodic_update", 2, at(10), at(10, 30), 1800.0, "stopped", None, None, "met"),
        Cycle(
            "periodic_update", 3, at(10, 30), None, 1800.0, "running", at(12), at(11, 46, 30), "ok"
        ),
    ]


RESOLUTION_HISTORY = [
    Event(at(10), "on_hold"),
    Event(at(11), "in_progress"),
    Event(at(12), "resolved"),
    Event(at(14), "open"),
]


def test_resolution_pauses_on_hold_and_a_reopen_carries_elapsed_over() -> None:
    """Resolution: on_hold accrues nothing, resolved stops, a reopen resumes the same cycle with
    its elapsed time, and due/warning count only unpaused open time."""
    got = run(resolution_metric(["on_hold"]), RESOLUTION_HISTORY, 4 * H, now=at(14, 30))
    # Open time not on hold: 09-10 (3600) + 11-12 (3600) + 14:00-14:30 (1800) = 9000 s.
    # Due: 7200 s done at 14:00, 7200 s to go -> 16:00. Warning at 85 % of 14400 = 12240 s:
    # 5040 s after 14:00 -> 15:24.
    assert got == [
        Cycle("resolution", 1, at(9), None, 9000.0, "running", at(16), at(15, 24), "ok"),
    ]


def test_resolution_while_on_hold_and_after_resolving() -> None:
    """The same history seen earlier: paused (no due while it cannot advance) and stopped."""
    paused = only(run(resolution_metric(["on_hold"]), RESOLUTION_HISTORY[:1], 4 * H, at(10, 45)))
    # 09:00 -> 10:00 running, then on hold: 3600 s, and it stays there.
    assert paused == Cycle("resolution", 1, at(9), None, 3600.0, "paused", None, None, "ok")
    stopped = only(run(resolution_metric(["on_hold"]), RESOLUTION_HISTORY[:3], 4 * H, at(13)))
    # 3600 + 3600 = 7200 s, stopped at 12:00.
    assert stopped == Cycle("resolution", 1, at(9), at(12), 7200.0, "stopped", None, None, "met")


def test_part_one_response_does_not_resume_on_reopen() -> None:
    """response names `resume: []`: a reopen leaves it stopped where it first stopped."""
    events = [
        Event(at(9, 10), "in_progress"),
        Event(at(9, 20), "resolved"),
        Event(at(9, 30), "open"),
    ]
    got = only(run(response_metric(), events, 3600, now=at(10)))
    # 09:00 -> 09:10 = 600 s, and nothing after.
    assert got == Cycle("response", 1, at(9), at(9, 10), 600.0, "stopped", None, None, "met")


# -- the rule's steps (a)-(d) ---------------------------------------------------------------------


def test_a_stop_with_no_cycle_open_does_nothing_and_cycles_count_from_one() -> None:
    """(a) only stops an open cycle: an agent reply before any customer message opens nothing,
    and the first customer message opens cycle 1."""
    events = [Event(at(9, 30), None, "agent_reply"), Event(at(10), None, "customer_reply")]
    got = run(next_reply_metric(), events, 3600, now=at(10, 15))
    # From 10:00: 900 s; due 11:00, warning 10:00 + 3060 s = 10:51.
    assert got == [
        Cycle("next_reply", 1, at(10), None, 900.0, "running", at(11), at(10, 51), "ok"),
    ]


def test_once_opens_one_cycle_only_and_each_start_opens_one_per_start() -> None:
    """(b): with `once` a start after the cycle stopped opens nothing (resume is the only way
    back); with `each_start` it opens cycle 2."""
    events = [
        Event(at(10), None, "customer_reply"),
        Event(at(10, 10), None, "agent_reply"),
        Event(at(10, 20), None, "customer_reply"),
    ]
    once = Metric("ask", start=("customer_reply",), stop=("agent_reply",), resume=())
    each = Metric("ask", start=("customer_reply",), stop=("agent_reply",), cycles="each_start")
    # once: 10:00 -> 10:10 = 600 s, and that is all.
    assert run(once, events, 3600, now=at(10, 30)) == [
        Cycle("ask", 1, at(10), at(10, 10), 600.0, "stopped", None, None, "met"),
    ]
    # each_start: cycle 2 from 10:20, 600 s at 10:30; due 11:20, warning 10:20 + 3060 s = 11:11.
    assert run(each, events, 3600, now=at(10, 30)) == [
        Cycle("ask", 1, at(10), at(10, 10), 600.0, "stopped", None, None, "met"),
        Cycle("ask", 2, at(10, 20), None, 600.0, "running", at(11, 20), at(11, 11), "ok"),
    ]


def test_resume_is_skipped_at_the_event_that_stopped_the_cycle() -> None:
    """(c): a cycle stopped by (a) is not resumed by the same event, even when that event also
    fires a resume trigger; the next such event resumes it with its elapsed time."""
    metric = Metric("noted", start=("created",), stop=("internal_note",), resume=("internal_note",))
    notes = [Event(at(9, minute), None, "internal_note") for minute in (10, 20, 40)]
    got = only(run(metric, notes, 3600, now=at(10)))
    # 09:10 stops (no resume there), 09:20 resumes, 09:40 stops again:
    # 09:00-09:10 (600) + 09:20-09:40 (1200) = 1800 s. Without the skip, 09:10 would stop and
    # resume at once and the cycle would run to 10:00.
    assert got == Cycle("noted", 1, at(9), at(9, 40), 1800.0, "stopped", None, None, "met")


def test_a_once_metric_resumes_on_reopen_by_default() -> None:
    """(c): `resume` left out means [reopened] for a once metric, so first_reply runs again after a
    reopen until the next agent reply, its elapsed time carried over."""
    events = [
        Event(at(9, 10), None, "agent_reply"),
        Event(at(9, 20), "resolved"),
        Event(at(9, 30), "open"),
    ]
    got = only(run(first_reply_metric(), events, 3600, now=at(10)))
    # 09:00-09:10 (600) + 09:30-10:00 (1800) = 2400 s. Due: 3000 s after 09:30 = 10:20; warning
    # at 3060 s: 2460 s after 09:30 = 10:11.
    assert got == Cycle(
        "first_reply", 1, at(9), None, 2400.0, "running", at(10, 20), at(10, 11), "ok"
    )


def test_a_cycle_started_in_a_stopping_status_stops_at_once() -> None:
    """(d): a customer message (status unchanged) on a resolved ticket opens a next_reply cycle
    that stops at the same instant; a reopen by the customer opens one that runs."""
    events = [
        Event(at(9, 10), "resolved"),
        Event(at(9, 20), None, "customer_reply"),
        Event(at(9, 40), "open", "customer_reply"),
    ]
    got = run(next_reply_metric(), events, 3600, now=at(10))
    # 1: 09:20 -> 09:20, 0 s. 2: from 09:40, 1200 s at 10:00, due 10:40, warning 09:40 + 3060 s
    # = 10:31.
    assert got == [
        Cycle("next_reply", 1, at(9, 20), at(9, 20), 0.0, "stopped", None, None, "met"),
        Cycle("next_reply", 2, at(9, 40), None, 1200.0, "running", at(10, 40), at(10, 31), "ok"),
    ]


def test_a_resume_into_a_stopping_status_stops_at_once() -> None:
    """(d) after (c): a reopen straight into in_progress resumes a response-like clock that stops
    in in_progress, which therefore stops again at that instant and gains nothing."""
    metric = Metric("response", start=("created",), stop=("status:in_progress",))
    events = [
        Event(at(9, 10), "in_progress"),
        Event(at(9, 20), "resolved"),
        Event(at(9, 30), "in_progress"),
    ]
    got = only(run(metric, events, 3600, now=at(10)))
    # 09:00-09:10 (600), then resumed and stopped at 09:30: still 600 s. Without (d) it would
    # run from 09:30: 2400 s.
    assert got == Cycle("response", 1, at(9), at(9, 30), 600.0, "stopped", None, None, "met")


# -- order, times and duplicates ------------------------------------------------------------------


def test_an_event_stamped_before_created_at_counts_as_created_at_in_event_order() -> None:
    """Early events take created_at as their time but keep their event-time order among
    themselves, after the virtual creation event."""
    early = [Event(at(8, 50), None, "agent_reply")]
    # first_reply opens at creation and the reply, counted at 09:00, stops it: 0 s.
    assert run(first_reply_metric(), early, 3600, now=at(10)) == [
        Cycle("first_reply", 1, at(9), at(9), 0.0, "stopped", None, None, "met"),
    ]
    # on_hold at 08:40 then in_progress at 08:50 (given in the wrong order): both count at
    # 09:00, in_progress last, so resolution runs from 09:00: 3600 s at 10:00; due 13:00,
    # warning 09:00 + 12240 s = 12:24.
    holds = [Event(at(8, 50), "in_progress"), Event(at(8, 40), "on_hold")]
    assert run(resolution_metric(["on_hold"]), holds, 4 * H, now=at(10)) == [
        Cycle("resolution", 1, at(9), None, 3600.0, "running", at(13), at(12, 24), "ok"),
    ]


def test_a_real_event_at_created_at_comes_after_the_creation_event() -> None:
    """An agent reply stamped exactly at created_at stops the first_reply cycle that the creation
    opened (it does not come before it and leave the cycle running)."""
    got = run(first_reply_metric(), [Event(at(9), None, "agent_reply")], 3600, now=at(10))
    assert got == [Cycle("first_reply", 1, at(9), at(9), 0.0, "stopped", None, None, "met")]


def test_a_reply_stamped_before_the_cycle_start_does_not_close_it() -> None:
    """An agent reply that arrives after a customer message but is stamped before it belongs
    before the cycle: the cycle stays open."""
    events = [Event(at(10), None, "customer_reply"), Event(at(9, 55), None, "agent_reply")]
    # From 10:00: 1800 s at 10:30; due 11:00, warning 10:51.
    assert run(next_reply_metric(), events, 3600, now=at(10, 30)) == [
        Cycle("next_reply", 1, at(10), None, 1800.0, "running", at(11), at(10, 51), "ok"),
    ]


def test_a_late_agent_reply_is_placed_by_event_time() -> None:
    """An agent reply delivered after a later customer message closes the cycle it answered and
    leaves the later message its own cycle."""
    arrival = [
        Event(at(10), None, "customer_reply"),
        Event(at(10, 40), None, "customer_reply"),
        Event(at(10, 20), None, "agent_reply"),
    ]
    # 1: 10:00 -> 10:20 = 1200 s. 2: from 10:40, 1200 s at 11:00; due 11:40, warning 10:40 +
    # 3060 s = 11:31.
    assert run(next_reply_metric(), arrival, 3600, now=at(11)) == [
        Cycle("next_reply", 1, at(10), at(10, 20), 1200.0, "stopped", None, None, "met"),
        Cycle("next_reply", 2, at(10, 40), None, 1200.0, "running", at(11, 40), at(11, 31), "ok"),
    ]


def test_repeated_deliveries_count_once_and_conflicting_ones_are_refused() -> None:
    """(ticket_id, updated_at) is the idempotency key: an exact repeat changes nothing; two
    different events at one instant are not a history the model will guess about."""
    reply = Event(at(10), None, "customer_reply")
    once = run(next_reply_metric(), [reply], 3600, now=at(10, 30))
    assert run(next_reply_metric(), [reply, reply, reply], 3600, now=at(10, 30)) == once
    with pytest.raises(ValueError, match="two different events"):
        run(next_reply_metric(), [reply, Event(at(10), "on_hold")], 3600, now=at(10, 30))


def test_now_before_the_history_is_refused() -> None:
    """The model answers for a history complete as of now; an event after now is refused rather
    than half counted."""
    with pytest.raises(ValueError, match="now"):
        run(next_reply_metric(), [Event(at(11), None, "customer_reply")], 3600, now=at(10))


# -- the state rule and the ladder ----------------------------------------------------------------


def test_reaching_the_target_exactly_at_the_stop_is_a_breach() -> None:
    """The due instant is when elapsed reaches the target; a stop at that same instant does not
    come 'before' it, so the cycle is breached, not met."""
    events = [Event(at(9), None, "agent_reply"), Event(at(10), None, "agent_reply")]
    first = run(periodic_update_metric(), events, 3600, now=at(10), created_at=at(8))[0]
    # 09:00 -> 10:00 = 3600 s = the target: due 10:00 <= now; warning 09:00 + 3060 s = 09:51.
    assert first == Cycle(
        "periodic_update", 1, at(9), at(10), 3600.0, "stopped", at(10), at(9, 51), "breached"
    )


def test_states_ok_warning_breached_and_met() -> None:
    """Part one's state rule: breached once due <= now, else met when stopped, else warning once
    the first warning step's instant <= now, else ok."""
    metric = resolution_metric(["on_hold"])
    # Target 3600 s from 09:00: warning 09:51 (3060 s), due 10:00.
    assert only(run(metric, [], 3600, now=at(9, 50))).state == "ok"
    assert only(run(metric, [], 3600, now=at(9, 51))).state == "warning"
    assert only(run(metric, [], 3600, now=at(10))).state == "breached"
    # Resolved at 09:55: past the warning, short of the target: met, its warning instant kept.
    resolved = only(run(metric, [Event(at(9, 55), "resolved")], 3600, now=at(11)))
    assert resolved == Cycle(
        "resolution", 1, at(9), at(9, 55), 3300.0, "stopped", None, at(9, 51), "met"
    )


def test_the_first_warning_is_the_lowest_warning_step_of_the_ladder() -> None:
    """warning_at follows the ladder's lowest warning percentage; a ladder without warnings has
    none."""
    ladder = Ladder((Step(75, 2, "warning"), Step(25, 1, "warning"), Step(100, 3, "breach")))
    got = only(run(resolution_metric([]), [], 3600, now=at(9, 20), ladder=ladder))
    # 25 % of 3600 s = 900 s -> 09:15 <= 09:20: warning.
    assert (got.warning_at, got.state) == (at(9, 15), "warning")
    breach_only = Ladder((Step(100, 1, "breach"),))
    got = only(run(resolution_metric([]), [], 3600, now=at(9, 59), ladder=breach_only))
    assert (got.warning_at, got.due_at, got.state) == (None, at(10), "ok")


def test_current_cycles_keeps_the_latest_cycle_of_each_metric() -> None:
    """The default GetTicket view shows one cycle per metric: the highest-numbered one."""
    events = [
        Event(at(9, 10), None, "customer_reply"),
        Event(at(9, 20), None, "agent_reply"),
        Event(at(9, 30), None, "customer_reply"),
    ]
    got = clocks(
        at(9),
        events,
        [next_reply_metric(), first_reply_metric()],
        {"next_reply": 3600, "first_reply": 3600},
        TWENTY_FOUR_SEVEN,
        at(10),
    )
    # next_reply: cycle 1 09:10-09:20, cycle 2 from 09:30; first_reply: 09:00-09:20.
    assert [(c.metric, c.cycle) for c in current_cycles(got)] == [
        ("next_reply", 2),
        ("first_reply", 1),
    ]


def test_ladder_instants_per_cycle() -> None:
    """Each step of the default ladder is reached at its percentage of the target, per cycle;
    a cycle that stops first never reaches the later steps."""
    events = [
        Event(at(9), None, "customer_reply"),
        Event(at(10, 10), None, "agent_reply"),
        Event(at(11), None, "customer_reply"),
        Event(at(11, 30), None, "agent_reply"),
    ]
    got = ladder_instants(at(8), events, next_reply_metric(), 3600, TWENTY_FOUR_SEVEN)
    # Cycle 1, 09:00 -> 10:10: 85 % = 51 min -> 09:51, 95 % = 57 min -> 09:57, 100 % -> 10:00;
    # 150 % (10:30) comes after the stop. Cycle 2, 11:00 -> 11:30: 51 min would be 11:51, too
    # late for every step.
    assert [(step.level, instant) for step, instant in got[1]] == [
        (1, at(9, 51)),
        (2, at(9, 57)),
        (3, at(10)),
        (4, None),
    ]
    assert [(step.level, instant) for step, instant in got[2]] == [
        (1, None),
        (2, None),
        (3, None),
        (4, None),
    ]
    assert set(got) == {1, 2}


def test_a_metric_without_a_target_gives_no_cycles() -> None:
    """Only metrics the policy gives a target produce cycles."""
    got = clocks(
        at(9),
        [Event(at(9, 30), None, "customer_reply")],
        [first_reply_metric(), next_reply_metric()],
        {"next_reply": 3600},
        TWENTY_FOUR_SEVEN,
        at(10),
    )
    assert [(cycle.metric, cycle.cycle) for cycle in got] == [("next_reply", 1)]


def test_invalid_metric_definitions_are_refused() -> None:
    """The model refuses what the rule forbids instead of inventing a meaning for it."""
    with pytest.raises(ValueError, match="each_start metrics cannot name resume"):
        Metric("m", ("customer_reply",), ("agent_reply",), cycles="each_start", resume=())
    with pytest.raises(ValueError, match="pause"):
        Metric("m", ("created",), ("agent_reply",), pause=("agent_reply",))
    with pytest.raises(ValueError, match="unknown trigger"):
        Metric("m", ("created",), ("status:pending",))
    with pytest.raises(ValueError, match="stop"):
        Metric("m", ("created",), ())


# -- calendars ------------------------------------------------------------------------------------


def test_business_calendar_across_a_weekend_and_the_spring_change() -> None:
    """Friday 16:00 CET to Monday 10:00 CEST: one hour each side; the day's window is read in
    local time on both sides of the change (Monday 09:00 CEST is 07:00 UTC)."""
    office = emea_office()
    start, end = berlin(3, 27, 16), berlin(3, 30, 10)
    # Fri 16:00-17:00 + Mon 09:00-10:00 = 7200 s (65 real hours apart).
    assert office.working_seconds(start, end) == 7200
    assert office.reach_seconds(start, 7200) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    # Saturday and Sunday hold no working time at all.
    assert office.working_seconds(berlin(3, 28, 0), berlin(3, 30, 0)) == 0


def test_business_calendar_across_a_weekend_and_the_autumn_change() -> None:
    """Friday 16:00 CEST (14:00 UTC) to Monday 10:00 CET (09:00 UTC): still two working hours."""
    office = emea_office()
    assert office.working_seconds(berlin(10, 23, 16), berlin(10, 26, 10)) == 7200
    assert office.reach_seconds(berlin(10, 23, 16), 7200) == datetime(
        2026, 10, 26, 9, 0, tzinfo=UTC
    )


def test_business_calendar_skips_a_holiday() -> None:
    """Christmas Day 2026 is a Friday and a holiday: Thursday 16:00 to Monday 10:00 holds Thu
    16-17 and Mon 09-10, and three working hours from Thursday 16:00 end Monday 11:00."""
    office = emea_office()
    assert office.working_seconds(berlin(12, 24, 16), berlin(12, 28, 10)) == 7200
    assert office.reach_seconds(berlin(12, 24, 16), 3 * H) == berlin(12, 28, 11)
    assert office.working_seconds(berlin(12, 25, 0), berlin(12, 26, 0)) == 0


def test_a_day_of_the_change_is_as_long_as_it_really_is() -> None:
    """Hours that cover the change (Sunday 00:00-24:00 and 01:00-04:00) count the real seconds:
    23 h / 25 h for the whole day, 2 h / 4 h for 01:00-04:00."""
    whole = BusinessCalendar("Europe/Berlin", {"sun": "00:00-24:00"})
    night = BusinessCalendar("Europe/Berlin", {"sun": "01:00-04:00"})
    assert whole.working_seconds(berlin(3, 29, 0), berlin(3, 30, 0)) == 23 * H
    assert whole.working_seconds(berlin(10, 25, 0), berlin(10, 26, 0)) == 25 * H
    assert night.working_seconds(berlin(3, 28, 0), berlin(3, 30, 0)) == 2 * H
    assert night.working_seconds(berlin(10, 24, 0), berlin(10, 26, 0)) == 4 * H
    # 20 real hours from Sunday 00:00 CEST (22:00 UTC Saturday) end at 18:00 UTC = 19:00 CET.
    assert whole.reach_seconds(berlin(10, 25, 0), 20 * H) == berlin(10, 25, 19)


def test_a_24x7_clock_across_the_autumn_change_counts_25_hours() -> None:
    """24x7 counts real time: Berlin noon to noon over the autumn change is 25 hours."""
    created = berlin(10, 24, 12)  # 10:00 UTC
    got = only(run(resolution_metric([]), [], 48 * H, now=berlin(10, 25, 12), created_at=created))
    # 10:00 UTC Saturday to 11:00 UTC Sunday = 90000 s; due 48 h after creation.
    assert got.elapsed_seconds == 25 * H
    assert got.due_at == datetime(2026, 10, 26, 10, 0, tzinfo=UTC)


def test_a_metric_on_the_business_calendar_over_a_weekend() -> None:
    """elapsed, due and warning of a running cycle are all counted in office hours, across the
    weekend of the spring change."""
    created = berlin(3, 27, 16, 30)
    got = only(
        run(
            resolution_metric([]),
            [],
            4 * H,
            now=berlin(3, 30, 12),
            created_at=created,
            calendar=emea_office(),
        )
    )
    # Fri 16:30-17:00 (1800) + Mon 09:00-12:00 (10800) = 12600 s.
    # Due: 14400 - 1800 = 12600 s from Mon 09:00 = 12:30 CEST. Warning: 12240 - 1800 = 10440 s
    # = 2 h 54 min from Mon 09:00 = 11:54 CEST <= 12:00: warning.
    assert got == Cycle(
        "resolution",
        1,
        created,
        None,
        12600.0,
        "running",
        berlin(3, 30, 12, 30),
        berlin(3, 30, 11, 54),
        "warning",
    )


def test_calendar_hours_are_checked() -> None:
    """Malformed hours and a calendar with no working day are refused, naming what is wrong."""
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        BusinessCalendar("Europe/Berlin", {"mon": "9-17"})
    with pytest.raises(ValueError, match="after the start"):
        BusinessCalendar("Europe/Berlin", {"mon": "17:00-09:00"})
    with pytest.raises(ValueError, match="weekday"):
        BusinessCalendar("Europe/Berlin", {"monday": "09:00-17:00"})
    with pytest.raises(ValueError, match="at least one"):
        BusinessCalendar("Europe/Berlin", {})


# -- properties -----------------------------------------------------------------------------------

ALL_METRICS = (*design_metrics(), response_metric())
TARGETS = {
    "first_reply": 2 * H,
    "next_reply": 1 * H,
    "periodic_update": 8 * H,
    "resolution": 24 * H,
    "response": 30 * 60,
}


def model(history: History, calendar: Calendar, now: datetime | None = None) -> list[Cycle]:
    return clocks(
        history.created_at,
        history.arrival,
        ALL_METRICS,
        TARGETS,
        calendar,
        history.now if now is None else now,
    )


@PROPERTY
@given(histories(early=True), st.sampled_from(CALENDARS))
def test_arrival_order_does_not_matter(history: History, calendar: Calendar) -> None:
    """The shuffled, repeated, batched deliveries give the same cycles as the clean time-ordered
    history and as the same events in reverse."""
    clean = clocks(history.created_at, history.events, ALL_METRICS, TARGETS, calendar, history.now)
    assert model(history, calendar) == clean
    backwards = list(reversed(history.arrival))
    assert (
        clocks(history.created_at, backwards, ALL_METRICS, TARGETS, calendar, history.now) == clean
    )


@PROPERTY
@given(histories(), st.sampled_from(CALENDARS), st.integers(0, 10 * 86_400))
def test_elapsed_never_decreases_and_a_paused_cycle_does_not_move(
    history: History, calendar: Calendar, later_seconds: int
) -> None:
    """As now grows the cycles stay the same ones, elapsed never decreases, a paused or stopped
    cycle keeps its elapsed time, and due/warning instants do not depend on now."""
    before = model(history, calendar)
    after = model(history, calendar, history.now + timedelta(seconds=later_seconds))
    assert [(c.metric, c.cycle) for c in after] == [(c.metric, c.cycle) for c in before]
    for early, late in zip(before, after, strict=True):
        assert late.elapsed_seconds >= early.elapsed_seconds
        assert (late.mode, late.due_at, late.warning_at) == (
            early.mode,
            early.due_at,
            early.warning_at,
        )
        if early.mode in ("paused", "stopped"):
            assert late.elapsed_seconds == early.elapsed_seconds


@PROPERTY
@given(histories(), st.sampled_from(CALENDARS))
def test_cycles_are_consistent_with_their_own_numbers(history: History, calendar: Calendar) -> None:
    """Every cycle: elapsed fits in the real time it was open; a stopped cycle stopped after it
    started; cycles of a metric are numbered 1..n in start order; a once metric has at most one;
    the state agrees with due, warning and mode."""
    got = model(history, calendar)
    for metric in ALL_METRICS:
        mine = [cycle for cycle in got if cycle.metric == metric.name]
        assert [cycle.cycle for cycle in mine] == list(range(1, len(mine) + 1))
        assert [cycle.started_at for cycle in mine] == sorted(cycle.started_at for cycle in mine)
        if metric.cycles == "once":
            assert len(mine) <= 1
    for cycle in got:
        end = history.now if cycle.stopped_at is None else min(cycle.stopped_at, history.now)
        assert 0 <= cycle.elapsed_seconds <= (end - cycle.started_at).total_seconds()
        assert (cycle.stopped_at is not None) == (cycle.mode == "stopped")
        if cycle.state == "breached":
            assert cycle.due_at is not None and cycle.due_at <= history.now
        if cycle.state == "met":
            assert cycle.mode == "stopped"
        if cycle.due_at is not None and cycle.warning_at is not None:
            assert cycle.warning_at <= cycle.due_at
        if cycle.mode == "running" and calendar is TWENTY_FOUR_SEVEN and cycle.due_at is not None:
            left = TARGETS[cycle.metric] - cycle.elapsed_seconds
            if left > 0:  # running and not yet due: due is exactly the rest of the target away
                assert cycle.due_at == history.now + timedelta(seconds=left)


@PROPERTY
@given(
    st.datetimes(
        min_value=datetime(2026, 3, 20),  # noqa: DTZ001 (hypothesis takes naive bounds)
        max_value=datetime(2026, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    st.integers(0, 20 * 86_400),
    st.integers(0, 10 * 86_400),
)
def test_business_calendar_reach_and_working_time_agree(
    start: datetime, span_seconds: int, amount_seconds: int
) -> None:
    """reach() and working_time() are inverses: the working time up to reach(x) is x, and reaching
    the working time of [start, end) never lands after end."""
    office = emea_office()
    end = start + timedelta(seconds=span_seconds)
    amount = timedelta(seconds=amount_seconds)
    assert office.working_time(start, office.reach(start, amount)) == amount
    assert office.reach(start, office.working_time(start, end)) <= end


def test_the_seeded_generator_covers_what_the_comparison_needs() -> None:
    """Over 300 seeded histories the generator produces every kind of event the comparison must
    exercise: both replies, notes, status-less events, holds, reopens, repeats and several
    batches (so a comparison built on it cannot silently test less)."""
    seen: set[str] = set()
    for seed in range(300):
        history = random_history(random.Random(seed))
        statuses = ["open"] + [e.status for e in history.events if e.status is not None]
        seen.update(e.activity for e in history.events)
        if any(e.status is None for e in history.events):
            seen.add("no status")
        if "on_hold" in statuses:
            seen.add("hold")
        if any(
            a in ("resolved", "closed") and b not in ("resolved", "closed")
            for a, b in itertools.pairwise(statuses)
        ):
            seen.add("reopen")
        if len(history.arrival) > len(history.events):
            seen.add("repeat")
        if len(history.batches) > 1:
            seen.add("batches")
    assert seen >= {
        "agent_reply",
        "customer_reply",
        "internal_note",
        "none",
        "no status",
        "hold",
        "reopen",
        "repeat",
        "batches",
    }


def test_weekday_names_match_python_weekdays() -> None:
    """WEEKDAYS is indexed by date.weekday(): 2026-06-01 is a Monday."""
    assert WEEKDAYS[date(2026, 6, 1).weekday()] == "mon"
