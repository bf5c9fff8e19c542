"""The statements of the recompute for a new SLA config version (internal/usecase/recompute.py
says which tickets and why): the claim of a version, and the keyset walks that find the tickets
to recompute. The ticket reads and writes are ticket_repo's, the same as ingest's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

# One winner per version. A version already claimed is taken on again only when its claim was
# handed back, when it was abandoned half-way, or when the config returns to it after another
# version was claimed (a rollback: the open tickets carry the other version's deadlines now).
# A return to a version that was recomputed is a rollback: the version comes into force again.
_CLAIM = """
INSERT INTO policy_versions AS v (tenant_id, version, text)
VALUES (%(scope)s, %(version)s, %(text)s)
ON CONFLICT (tenant_id, version) DO UPDATE
    SET claimed_at = now(), recomputed_at = NULL, tickets = NULL,
        text = coalesce(v.text, EXCLUDED.text),
        applied_at = CASE WHEN v.recomputed_at IS NOT NULL THEN now() ELSE v.applied_at END
    WHERE v.claimed_at IS NULL
       OR (v.recomputed_at IS NULL
           AND v.claimed_at < now() - %(abandoned)s * interval '1 second')
       OR (v.recomputed_at IS NOT NULL
           AND EXISTS (SELECT 1 FROM policy_versions o
                       WHERE o.tenant_id = v.tenant_id AND o.claimed_at > v.claimed_at))
RETURNING version
"""

_RELEASE = """
UPDATE policy_versions SET claimed_at = NULL
WHERE tenant_id = %s AND version = %s AND recomputed_at IS NULL
"""

_CLAIMED_AT = """
SELECT coalesce(
    (SELECT claimed_at FROM policy_versions WHERE tenant_id = %s AND version = %s), now())
"""

# Another version claimed after ours: the config moved on, and going on would only overwrite
# deadlines the newer version's walk may already have written.
_SUPERSEDED = """
SELECT EXISTS (
    SELECT 1 FROM policy_versions WHERE tenant_id = %s AND version <> %s AND claimed_at > %s)
"""

_DONE = """
UPDATE policy_versions SET recomputed_at = now(), tickets = %s
WHERE tenant_id = %s AND version = %s
"""

_NEXT_ACTIVE = """
SELECT tenant_id, ticket_id FROM tickets
WHERE active AND policy_version <> %(version)s AND (tenant_id, ticket_id) > (%(t)s, %(id)s)
  AND tenant_id <> ALL(%(exclude)s)
ORDER BY tenant_id, ticket_id LIMIT %(limit)s
"""
_NEXT_ACTIVE_OF_TENANT = """
SELECT tenant_id, ticket_id FROM tickets
WHERE tenant_id = %(tenant)s
  AND active AND policy_version <> %(version)s AND (tenant_id, ticket_id) > (%(t)s, %(id)s)
ORDER BY tenant_id, ticket_id LIMIT %(limit)s
"""

# Few rows (the evaluator clears a pending check within a tick), found through the partial index
# on next_check_at: read in one go rather than walked.
_PENDING_CLOSED = """
SELECT DISTINCT c.tenant_id, c.ticket_id
FROM sla_clocks c JOIN tickets t USING (tenant_id, ticket_id)
WHERE c.next_check_at IS NOT NULL AND c.mode = 'stopped'
  AND NOT t.active AND t.policy_version <> %(version)s
  AND (%(tenant)s::text IS NULL OR c.tenant_id = %(tenant)s)
  AND c.tenant_id <> ALL(%(exclude)s)
ORDER BY 1, 2
"""

Conn = psycopg.Connection[Any]
Key = tuple[str, str]  # (tenant_id, ticket_id)

# The scope of the file-wide config, which serves every tenant: no tenant is named ''.
DEFAULT_SCOPE = ""


def claim(
    conn: Conn, scope: str, version: str, abandoned_after_seconds: float, text: str | None = None
) -> bool:
    """True if this call claimed `version` of `scope` (see _CLAIM for when a claimed one is
    taken again); `text` is the config file's, recorded with a version seen first."""
    row = conn.execute(
        _CLAIM,
        {
            "scope": scope,
            "version": version,
            "abandoned": abandoned_after_seconds,
            "text": text,
        },
    )
    return row.fetchone() is not None


def release(conn: Conn, scope: str, version: str) -> None:
    conn.execute(_RELEASE, (scope, version))


def claimed_at(conn: Conn, scope: str, version: str) -> datetime:
    """When `version` of `scope` was claimed (now, if it is not)."""
    row = conn.execute(_CLAIMED_AT, (scope, version)).fetchone()
    assert row is not None
    return row[0]


def superseded(conn: Conn, scope: str, version: str, since: datetime) -> bool:
    """Whether another version of `scope` was claimed after `since`."""
    return conn.execute(_SUPERSEDED, (scope, version, since)).fetchone() == (True,)


def mark_done(conn: Conn, scope: str, version: str, tickets: int) -> None:
    conn.execute(_DONE, (tickets, scope, version))


def next_active(
    conn: Conn,
    version: str,
    tenant: str | None,
    after: Key,
    limit: int,
    exclude: tuple[str, ...] = (),
) -> list[Key]:
    """Up to `limit` active tickets not on `version`, of `tenant` or of all but the tenants in
    `exclude`, after `after` in (tenant_id, ticket_id) order."""
    rows = conn.execute(
        _NEXT_ACTIVE if tenant is None else _NEXT_ACTIVE_OF_TENANT,
        {
            "version": version,
            "tenant": tenant,
            "t": after[0],
            "id": after[1],
            "limit": limit,
            "exclude": list(exclude),
        },
    ).fetchall()
    return [(str(t), str(i)) for t, i in rows]


def pending_closed(
    conn: Conn, version: str, tenant: str | None, exclude: tuple[str, ...] = ()
) -> list[Key]:
    """Stopped tickets not on `version` with a check still pending, of `tenant` or of all but
    the tenants in `exclude`."""
    rows = conn.execute(
        _PENDING_CLOSED, {"version": version, "tenant": tenant, "exclude": list(exclude)}
    )
    return [(str(t), str(i)) for t, i in rows]
