"""GetPolicy and ListPolicyVersions: the config versions that have served a tenant, as
policy_versions records them, joined to the one in force in this process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg_pool

from internal.config.sla_config import SlaConfig
from internal.store import policy_repo
from internal.store.policy_repo import VersionRow


@dataclass(frozen=True)
class PolicyVersion:
    version: str
    active: bool  # the version serving the tenant now, in this process
    # None for the active version before any process has recorded it (just after a reload).
    first_seen_at: datetime | None
    applied_at: datetime | None
    recomputed_at: datetime | None
    tickets: int | None
    text: str | None  # None when not asked for, or not recorded (versions from before 0020)


def _of(row: VersionRow, active: SlaConfig) -> PolicyVersion:
    is_active = row.version == active.version
    text = active.text if is_active else row.text
    return PolicyVersion(
        row.version,
        is_active,
        row.first_seen_at,
        row.applied_at,
        row.recomputed_at,
        row.tickets,
        text,
    )


def get_policy(
    pool: psycopg_pool.ConnectionPool, scope: str, active: SlaConfig, name: str = ""
) -> PolicyVersion | None:
    """The version `name` of `scope` with its text ("" : the active one); None if unknown."""
    with pool.connection() as conn:
        row = policy_repo.version(conn, scope, name or active.version)
    if row is not None:
        return _of(row, active)
    if name and name != active.version:
        return None
    # In force here, not yet recorded: the claim runs in the background after a reload.
    return PolicyVersion(active.version, True, None, None, None, None, active.text)


def list_versions(
    pool: psycopg_pool.ConnectionPool,
    scope: str,
    active: SlaConfig,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PolicyVersion]:
    """A page of `scope`'s versions, newest first (without their texts)."""
    with pool.connection() as conn:
        rows = policy_repo.page(conn, scope, after, limit)
    return [
        PolicyVersion(
            r.version,
            r.version == active.version,
            r.first_seen_at,
            r.applied_at,
            r.recomputed_at,
            r.tickets,
            None,
        )
        for r in rows
    ]
