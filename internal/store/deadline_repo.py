"""The next instant the evaluator has work: what the scheduler sleeps until.

Writers of clocks (ingest, recompute) announce the earliest next_check_at they stored on
DEADLINE_CHANNEL, delivered at commit; the scheduler LISTENs, so that a new earlier instant
wakes it. Reading the next instant is one probe of each of the partial indexes sla_clocks_due
and alerts_repeat_due (a repeat is scheduled by the evaluator itself, which the scheduler asks
again after each run).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

DEADLINE_CHANNEL = "slawatch_deadline"

# Each min() over its partial index is one index probe (an Index Only Scan with LIMIT 1),
# whatever the number of clocks and alerts; least() skips the NULL of an empty one.
_NEXT_AFTER = """
SELECT least((SELECT min(next_check_at) FROM sla_clocks WHERE next_check_at > %(after)s),
             (SELECT min(next_repeat_at) FROM alerts WHERE next_repeat_at > %(after)s))
"""


def next_check_after(conn: psycopg.Connection[Any], after: datetime) -> datetime | None:
    """The earliest instant strictly after `after` at which a clock crosses a step or an
    alert's repeat is due, or None when there is none."""
    row = conn.execute(_NEXT_AFTER, {"after": after}).fetchone()
    return None if row is None else row[0]


def announce(cur: psycopg.Cursor[Any], earliest: datetime | None) -> None:
    """Tell the schedulers, at commit, that a clock is now due at `earliest` (one NOTIFY per
    call; PostgreSQL folds identical ones of one transaction)."""
    if earliest is not None:
        cur.execute("SELECT pg_notify(%s, %s)", (DEADLINE_CHANNEL, earliest.isoformat()))


def parse_announcement(payload: str) -> datetime | None:
    """The instant a NOTIFY carried; None for a payload that is not an aware ISO instant."""
    try:
        when = datetime.fromisoformat(payload)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
