"""What an event carries besides the fields its clocks are computed from, as the history keeps
it (ticket_events: activity, group_name, assignee, tags, attributes)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Activity(StrEnum):
    """What happened at an event; an event without one is a field update."""

    AGENT_REPLY = "agent_reply"
    CUSTOMER_REPLY = "customer_reply"
    INTERNAL_NOTE = "internal_note"


@dataclass(frozen=True, slots=True)
class EventDetails:
    """None (or empty) means the event did not carry the field: stored as NULL."""

    activity: Activity | None = None
    group: str | None = None
    assignee: str | None = None
    tags: list[str] | None = None
    attributes: dict[str, str] | None = None

    def row(self) -> tuple[object, ...]:
        """The values of the history's columns, in their order (see ticket_repo)."""
        return (self.activity, self.group, self.assignee, self.tags, self.attributes)


NO_DETAILS_ROW: tuple[object, ...] = (None, None, None, None, None)
