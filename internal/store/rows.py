"""The rows the read repositories return (query_repo, alert_repo): one frozen dataclass per kind,
its fields the columns its query selects, in the same order.

`typed_rows(cls)` is the row factory that fills them. It builds each row from its values by
position, a third of psycopg's `class_row` cost (which passes every column by keyword), after
checking once per query that the columns are the fields by name and order: a column added to a
query and not to its row, or the reverse, fails there with both lists in the message, never as a
value in the wrong field. tests/integration/test_row_columns.py runs every read against the
database to find such a mismatch before production does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from psycopg.rows import BaseRowFactory, RowMaker


class ByColumn:
    """Read access by column name as well (`row["ticket_id"]`), as the mapping rows these
    replaced were read; the code reads attributes."""

    def __getitem__(self, column: str) -> Any:
        try:
            return getattr(self, column)
        except AttributeError:
            raise KeyError(column) from None


@dataclass(frozen=True)
class TicketRow(ByColumn):
    """A ticket as GetTicket shows it."""

    ticket_id: str
    priority: str
    customer_tier: str
    status: str
    created_at: datetime
    updated_at: datetime
    escalation_level: int
    policy_version: str
    policy: str  # the name of the policy that applies ("" if stored before policies had names)


@dataclass(frozen=True)
class DashboardTicket(TicketRow):
    """A ticket as a dashboard page lists it: also its place in the page order (the cursor)
    and its state at the query's `now`, computed in SQL."""

    urgent_at: datetime
    sla_state: int  # a State value


@dataclass(frozen=True)
class ClockRow(ByColumn):
    """One stored clock of a ticket (sla_clocks): one cycle of one metric, what StoredClock is
    built from."""

    clock: str  # the metric name
    cycle: int  # 1-based, among the metric's cycles on the ticket
    target_s: float
    calendar: str
    mode: str
    anchor_at: datetime
    anchor_elapsed: float
    due_at: datetime | None
    warn_at: datetime | None
    fired_level: int


@dataclass(frozen=True)
class HistoryRow(ByColumn):
    """One stored event of a ticket (ticket_events); the optional parts are None when the
    event did not carry them."""

    status: str | None  # None: an activity that left the status as it was
    priority: str
    customer_tier: str
    updated_at: datetime
    received_at: datetime
    activity: str | None
    group_name: str | None
    assignee: str | None
    tags: list[str] | None
    attributes: dict[str, str] | None


@dataclass(frozen=True)
class AlertRow(ByColumn):
    """One stored alert, as GetTicket and WatchAlerts show it."""

    alert_id: int
    tenant_id: str
    ticket_id: str
    clock: str  # the metric name
    cycle: int  # which cycle of the metric
    kind: str
    escalation_level: int
    due_at: datetime | None
    created_at: datetime
    priority: str
    customer_tier: str
    policy_version: str
    repeat: int  # repeats notified so far
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_note: str | None


@dataclass(frozen=True)
class NotificationRow(ByColumn):
    """One channel's delivery of an alert."""

    alert_id: int
    channel: str
    state: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    repeat: int


T = TypeVar("T")


def column_names(cls: type[Any], prefix: str = "") -> tuple[str, ...]:
    """The columns a query selects for rows of `cls`: its fields in order, each with `prefix`."""
    return tuple(prefix + f.name for f in fields(cls))


def check_columns(cursor: Any, names: Sequence[str], what: str) -> None:
    """Refuse a result whose columns are not `names` (by name and order)."""
    # The names straight from the result: a tenth of cursor.description's cost, which builds a
    # Column object per column (GetTicket checks five results per call).
    res = cursor.pgresult
    got = () if res is None else tuple(res.fname(i).decode() for i in range(res.nfields))
    if got != tuple(names):
        raise TypeError(f"{what}: the query selects {got}, the row has {tuple(names)}")


def typed_rows(cls: type[T]) -> BaseRowFactory[T]:
    """A row factory making a `cls` (a dataclass) of each row, from its values by position."""
    names = column_names(cls)

    def factory(cursor: Any) -> RowMaker[T]:
        check_columns(cursor, names, cls.__name__)

        def make(values: Sequence[Any]) -> T:
            return cls(*values)

        return make

    return factory
