"""GetSlaReport's rollups (table sla_report_rollups, migration 0018): SLA instances counted by
metric, priority, customer tier, the UTC block of their decided instant, outcome and whether they
stopped, with the histogram of the stopped ones' elapsed times (internal/sla/report.py says what
an instance adds). A report reads the blocks that make up its intervals: its cost follows the
intervals and groups it returns, not the tickets.

Every write of clock rows (ingest, the recompute after a reload, both through
ticket_repo.write_ticket_slas) calls `record_changes` in its transaction with each changed
instance's old contribution out and new one in, so the counts are exactly those of the committed
clocks. The evaluator only writes fired levels and checks, which change no contribution. Erasing
a ticket (DeleteTicket, retention) leaves its counts: a report keeps what was attained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from internal.sla.report import HIST_BINS, SPANS, Contribution

# (metric, priority, customer_tier, contribution)
RollupKey = tuple[str, str, str, Contribution]

_HIST = [f"h{k}" for k in range(HIST_BINS)]
_KEY = "span_s, block, metric, priority, customer_tier, breached, stopped"

# Staging for one transaction's moves, one row per (key, bin) at the finest span; the upsert
# spreads each to the four block sizes. Emptied at commit.
TEMP_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS in_report_moves (
    quarter int8, metric text, priority text, customer_tier text, breached boolean,
    stopped boolean, bin int4, instances int8) ON COMMIT DELETE ROWS;
"""
_MOVE_TYPES = ["int8", "text", "text", "text", "bool", "bool", "int4", "int8"]

_SPANS_SQL = ", ".join(f"({s})" for s in SPANS)
_BIN_SUMS = ", ".join(
    f"coalesce(sum(m.instances) FILTER (WHERE m.bin = {k}), 0)" for k in range(HIST_BINS)
)
_BIN_ADDS = ", ".join(f"{h} = r.{h} + EXCLUDED.{h}" for h in _HIST)

# One statement, its keys in sorted order: two transactions moving overlapping rows wait for
# each other, never deadlock. Run last before commit (the rows are shared by every writer).
_RECORD = f"""
INSERT INTO sla_report_rollups AS r (tenant_id, {_KEY}, instances, {", ".join(_HIST)})
SELECT %(tenant)s, s.span, m.quarter * 900 / s.span, m.metric, m.priority, m.customer_tier,
       m.breached, m.stopped, sum(m.instances), {_BIN_SUMS}
FROM in_report_moves m CROSS JOIN (VALUES {_SPANS_SQL}) AS s(span)
GROUP BY 2, 3, 4, 5, 6, 7, 8
ORDER BY 2, 3, 4, 5, 6, 7, 8
ON CONFLICT (tenant_id, {_KEY}) DO UPDATE SET
    instances = r.instances + EXCLUDED.instances, {_BIN_ADDS}
"""


def record_changes(cur: psycopg.Cursor[Any], tenant: str, moves: Mapping[RollupKey, int]) -> None:
    """Add `moves` (instances in, out when negative) to the tenant's rollups. The session must
    have created TEMP_TABLE."""
    changed = [
        (c.quarter, metric, priority, tier, c.breached, c.stopped, c.elapsed_bin, n)
        for (metric, priority, tier, c), n in moves.items()
        if n
    ]
    if not changed:
        return
    with cur.copy("COPY in_report_moves FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_MOVE_TYPES)
        for row in changed:
            copy.write_row(row)
    cur.execute(_RECORD, {"tenant": tenant})


@dataclass(frozen=True)
class Cell:
    """The counts of one group in one interval."""

    window: int  # index of the interval
    group: tuple[str, ...]  # the group-by values, in the order asked
    achieved: int
    breached: int
    running_past_target: int  # of breached, those not stopped
    hist: list[int]  # the stopped instances' elapsed times, by bin


DIMENSIONS = ("metric", "priority", "customer_tier")


def read_cells(
    conn: psycopg.Connection[Any],
    tenant: str,
    blocks: Sequence[tuple[int, int, int]],
    group_by: Sequence[str],
    filters: Mapping[str, Sequence[str]],
) -> list[Cell]:
    """The counts by interval, group, outcome and stopped-or-not over `blocks` ((interval index,
    span seconds, block index) each), for the rows whose dimensions are among `filters`' values
    (a dimension not in `filters` is not filtered). `group_by` and `filters` name DIMENSIONS."""
    dims = [d for d in group_by if d in DIMENSIONS]
    where = []
    params: dict[str, Any] = {
        "tenant": tenant,
        "w": [b[0] for b in blocks],
        "span": [b[1] for b in blocks],
        "block": [b[2] for b in blocks],
    }
    for d, values in filters.items():
        if d in DIMENSIONS and values:
            where.append(f"r.{d} = ANY(%({d})s)")
            params[d] = list(values)
    group_cols = "".join(f", r.{d}" for d in dims)
    # The histogram comes back as one text of comma-separated sums: parsing 80 numbers per row
    # from it costs a tenth of decoding them as 80 columns.
    sql = f"""
    SELECT b.w{group_cols},
           sum(r.instances) FILTER (WHERE NOT r.breached)::int8,
           sum(r.instances) FILTER (WHERE r.breached)::int8,
           sum(r.instances) FILTER (WHERE r.breached AND NOT r.stopped)::int8,
           concat_ws(',', {", ".join(f"sum(r.{h})" for h in _HIST)})
    FROM unnest(%(w)s::int4[], %(span)s::int4[], %(block)s::int8[]) AS b(w, span, block)
    -- LATERAL: one primary-key range read per block, whatever the planner estimates (a hash
    -- join chose to scan the whole table at a million tickets' rollups).
    CROSS JOIN LATERAL (
        SELECT * FROM sla_report_rollups r
        WHERE r.tenant_id = %(tenant)s AND r.span_s = b.span AND r.block = b.block
        {"AND " + " AND ".join(where) if where else ""}
        OFFSET 0
    ) AS r
    GROUP BY b.w{group_cols}
    """
    cells = []
    n = len(dims)
    for row in conn.execute(sql, params):
        achieved, breached, running = (int(v or 0) for v in row[n + 1 : n + 4])
        if achieved + breached == 0:
            continue  # moved out again: nothing decided here
        cells.append(
            Cell(
                int(row[0]),
                tuple(str(v) for v in row[1 : n + 1]),
                achieved,
                breached,
                running,
                [int(v) for v in str(row[n + 4]).split(",")],
            )
        )
    return cells
