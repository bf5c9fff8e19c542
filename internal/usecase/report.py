"""GetSlaReport (DESIGN §10): attainment per interval in a time zone, grouped and filtered by
metric, priority and customer tier, read from the rollups that ingest and recompute keep
(internal/store/report_rollups.py), never from the tickets. internal/sla/report.py says what an
instance counts as and how intervals are cut into the rollups' blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg_pool

from internal.sla import report
from internal.sla.report import HIST_BINS, Interval
from internal.store import report_rollups
from internal.store.db import read_only

MAX_INTERVALS = 10_000


@dataclass
class ReportRow:
    start: datetime
    end: datetime
    group: dict[str, str]  # dimension -> value, for the dimensions grouped by
    achieved: int = 0
    breached: int = 0
    running_past_target: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * HIST_BINS)

    @property
    def attainment(self) -> float:
        decided = self.achieved + self.breached
        return self.achieved / decided if decided else 0.0

    @property
    def p50(self) -> float | None:
        return report.percentile(self.hist, 0.5)

    @property
    def p90(self) -> float | None:
        return report.percentile(self.hist, 0.9)


def sla_report(
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
    start: datetime,
    end: datetime,
    interval: Interval,
    zone: ZoneInfo,
    group_by: Sequence[str],
    filters: Mapping[str, Sequence[str]],
    now: datetime,
) -> list[ReportRow]:
    """The report's rows, by interval then group values (validated arguments: `group_by` and
    `filters` name report_rollups.DIMENSIONS)."""
    windows = report.windows(start, end, interval, zone, now)
    blocks = [
        (w, span, block)
        for w, window in enumerate(windows)
        for span, block in report.blocks(window.start, window.counted_end)
    ]
    if not blocks:
        return []
    with pool.connection() as conn, read_only(conn):
        cells = report_rollups.read_cells(conn, tenant, blocks, group_by, filters)
    rows: dict[tuple[int, tuple[str, ...]], ReportRow] = {}
    for cell in cells:
        key = (cell.window, cell.group)
        row = rows.get(key)
        if row is None:
            window = windows[cell.window]
            row = rows[key] = ReportRow(
                window.start, window.end, dict(zip(group_by, cell.group, strict=True))
            )
        row.achieved += cell.achieved
        row.breached += cell.breached
        row.running_past_target += cell.running_past_target
        row.hist = [a + b for a, b in zip(row.hist, cell.hist, strict=True)]
    return [rows[key] for key in sorted(rows)]
