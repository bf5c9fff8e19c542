"""Why a ticket's clocks stand where they do: each clock's timeline (DESIGN §10, "Explain"),
for GetTicket's full view.

The timelines are worked out at read time from the ticket's stored history, by the metric
definitions of the config in force and each clock's stored target and calendar, so they say what
the stored clocks say (ingest and a config reload store clocks worked out the same way). Nothing
is stored: a timeline costs a run of the metric over the history, which only the full view pays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from internal.config.sla_config import SlaConfig
from internal.sla.metric_run import HistoryEvent
from internal.sla.model import Activity, Status
from internal.sla.timeline import Segment, metric_timelines
from internal.store.query_repo import TicketDetail
from internal.store.rows import HistoryRow

Timelines = Mapping[tuple[str, int], Sequence[Segment]]  # by (metric, cycle)


def history_events(history: Iterable[HistoryRow]) -> list[HistoryEvent]:
    """Stored events as the metrics see them (a NULL status: the event left it unchanged)."""
    return [
        HistoryEvent(
            row.updated_at,
            None if row.status is None else Status(row.status),
            Activity(row.activity) if row.activity else Activity.NONE,
        )
        for row in history
    ]


def clock_timelines(config: SlaConfig, detail: TicketDetail, now: datetime) -> Timelines:
    """The timeline of every cycle of every stored clock's metric, by (metric, cycle). A clock
    whose metric or calendar the config no longer defines has none (as StoredClock, it is not
    counted on another)."""
    events = history_events(detail.history)
    out: dict[tuple[str, int], Sequence[Segment]] = {}
    done: set[str] = set()  # a metric is run once for all its cycles' rows
    for row in detail.clocks:
        calendar = config.calendars.get(row.calendar)
        try:
            definition = config.metric(row.clock)
        except KeyError:
            continue
        if calendar is None or row.clock in done:
            continue
        done.add(row.clock)
        cycles = metric_timelines(
            definition, detail.ticket.created_at, events, row.target_s, calendar, now
        )
        out.update(((row.clock, number), segments) for number, segments in cycles.items())
    return out
