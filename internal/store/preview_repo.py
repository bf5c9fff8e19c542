"""The reads of PreviewPolicy (internal/usecase/policy_preview.py): a tenant's open tickets in
keyset pages, and what is stored of their clocks. Plain reads, without ingest's locks: the
preview runs in one read-only snapshot and changes nothing. Their histories and fields are read
with ticket_repo's statements, the same as the recompute's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from internal.sla.model import Mode

Cursor = psycopg.Cursor[tuple[Any, ...]]

# In primary-key order; `active` is read from the row, so the walk costs a read of every
# ticket of the tenant in the index, and a computation only for the open ones.
_OPEN_PAGE = """
SELECT ticket_id, policy FROM tickets
WHERE tenant_id = %(tenant)s AND ticket_id > %(after)s AND active
ORDER BY ticket_id LIMIT %(limit)s
"""

_CLOCKS = """
SELECT ticket_id, clock, cycle, mode, due_at, warn_at, fired_level FROM sla_clocks
WHERE tenant_id = %(tenant)s AND ticket_id = ANY(%(ids)s)
"""

_MODES = {mode.value: mode for mode in Mode}


@dataclass(frozen=True)
class StoredClockState:
    """What decides a stored cycle's state now (internal/sla/clocks.state_at) and its next
    breach, and the level it has fired (kept by a recompute)."""

    metric: str
    cycle: int
    mode: Mode
    due_at: datetime | None
    warn_at: datetime | None
    fired_level: int


def begin_snapshot(cur: Cursor) -> None:
    """Make the transaction just begun one read-only snapshot: every later read sees the same
    committed state, and no statement can write."""
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def open_tickets(cur: Cursor, tenant: str, after: str, limit: int) -> list[tuple[str, str]]:
    """Up to `limit` open tickets of `tenant` after `after` in id order: (ticket_id, policy)."""
    rows = cur.execute(_OPEN_PAGE, {"tenant": tenant, "after": after, "limit": limit})
    return [(str(tid), str(policy)) for tid, policy in rows]


def stored_clocks(cur: Cursor, tenant: str, ids: list[str]) -> dict[str, list[StoredClockState]]:
    out: dict[str, list[StoredClockState]] = defaultdict(list)
    for tid, metric, cycle, mode, due_at, warn_at, fired in cur.execute(
        _CLOCKS, {"tenant": tenant, "ids": ids}
    ):
        out[str(tid)].append(
            StoredClockState(str(metric), int(cycle), _MODES[mode], due_at, warn_at, int(fired))
        )
    return out
