"""The statements of GetPolicy and ListPolicyVersions: the rows of policy_versions, which the
recompute's claim writes (recompute_repo), read by scope (a tenant's own file, or '' for the
file-wide config and a directory's default.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

_COLUMNS = "version, first_seen_at, applied_at, recomputed_at, tickets"

_ONE = f"""
SELECT {_COLUMNS}, text FROM policy_versions WHERE tenant_id = %(scope)s AND version = %(version)s
"""

# Newest first; the row comparison is one range of the policy_versions_history index.
_PAGE = f"""
SELECT {_COLUMNS} FROM policy_versions
WHERE tenant_id = %(scope)s
  AND (%(at)s::timestamptz IS NULL OR (first_seen_at, version) < (%(at)s, %(after)s))
ORDER BY first_seen_at DESC, version DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class VersionRow:
    version: str
    first_seen_at: datetime
    applied_at: datetime
    recomputed_at: datetime | None  # None while the recompute for it has not finished
    tickets: int | None  # open tickets the recompute rewrote
    text: str | None = None  # None: recorded before texts were kept, or not asked for


def _row(r: tuple[Any, ...]) -> VersionRow:
    return VersionRow(str(r[0]), r[1], r[2], r[3], r[4], *(r[5:6]))


def version(conn: Conn, scope: str, name: str) -> VersionRow | None:
    found = conn.execute(_ONE, {"scope": scope, "version": name}).fetchone()
    return None if found is None else _row(found)


def page(
    conn: Conn, scope: str, after: tuple[datetime, str] | None, limit: int
) -> list[VersionRow]:
    """Up to `limit` versions of `scope`, newest first, after the cursor (first_seen_at,
    version) of the previous page's last row."""
    at, name = after if after is not None else (None, "")
    rows = conn.execute(_PAGE, {"scope": scope, "at": at, "after": name, "limit": limit})
    return [_row(r) for r in rows]
