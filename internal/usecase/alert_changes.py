"""What happens to an alert after it is written (DESIGN §11): repeats of unacknowledged alerts
of steps with `repeat_every`, and acknowledgement. Each function is one transaction; the
statements are internal/store/alert_change_repo.py's.

A repeat is another notification of the same alert to the channels it was first sent to, with
`repeat` counting; it is due `repeat_every` after the previous one and stops when the alert is
acknowledged, when its clock has stopped (or is gone), or after `repeat_max`. The repeat settings
are the step's when the alert was written: a later config change leaves raised alerts as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from internal.store import alert_change_repo, deadline_repo
from internal.store.rows import AlertRow

Conn = psycopg.Connection[Any]

REPEAT = "repeat"
ACKNOWLEDGED = "acknowledged"


@dataclass
class RepeatBatch:
    due: int = 0  # due repeats read
    repeated: list[int] = field(default_factory=list)  # alerts notified again
    ended: int = 0  # due repeats dropped: the clock had stopped
    notifications: list[int] = field(default_factory=list)
    correlations: dict[int, str | None] = field(default_factory=dict)


def next_due_after(every: float, due: datetime, now: datetime) -> datetime:
    """The repeat after one due at `due`: `every` later, or `every` after `now` when the
    evaluation ran late, so that a worker back from an outage does not send a burst."""
    step = timedelta(seconds=every)
    following = due + step
    return following if following > now else now + step


def repeat_batch(conn: Conn, now: datetime, limit: int) -> RepeatBatch:
    """Notify again up to `limit` due repeats, in one transaction."""
    batch = RepeatBatch()
    with conn.transaction():
        due = alert_change_repo.due_repeats(conn, now, limit)
        if not due:
            return batch
        batch.due = len(due)
        changes: list[tuple[int, int, datetime | None]] = []
        repeats: list[tuple[int, int]] = []
        tenants: list[tuple[str, int]] = []
        for d in due:
            if not d.clock_counting:
                changes.append((d.alert_id, d.repeat, None))
                batch.ended += 1
                continue
            number = d.repeat + 1
            following = (
                next_due_after(d.repeat_every_s, d.next_repeat_at, now)
                if number < d.repeat_max
                else None
            )
            changes.append((d.alert_id, number, following))
            repeats.append((d.alert_id, number))
            tenants.append((d.tenant_id, d.alert_id))
        alert_change_repo.set_repeats(conn, changes)
        upcoming = [c[2] for c in changes if c[2] is not None]
        if upcoming:
            with conn.cursor() as cur:
                deadline_repo.announce(cur, min(upcoming))
        if repeats:
            for note in alert_change_repo.insert_repeat_notifications(conn, repeats, now):
                batch.notifications.append(note.notification_id)
                batch.correlations[note.notification_id] = note.correlation_id
            alert_change_repo.record_updates(conn, REPEAT, tenants, now)
            batch.repeated = [alert_id for _, alert_id in tenants]
    return batch


def acknowledge(
    conn: Conn, tenant: str, alert_id: int, by: str, note: str | None, now: datetime
) -> AlertRow | None:
    """Acknowledge the tenant's alert (its repeats stop; the feeds stream the change); an alert
    acknowledged before is answered as it is; None when the tenant has no such alert."""
    with conn.transaction():
        row, changed = alert_change_repo.acknowledge(conn, tenant, alert_id, by, note, now)
        if changed:
            alert_change_repo.record_updates(conn, ACKNOWLEDGED, [(tenant, alert_id)], now)
    return row
