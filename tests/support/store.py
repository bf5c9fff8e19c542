"""Storing events through the same use case the server calls, without a server."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg_pool

from internal.config.sla_config import SlaConfig
from internal.sla.policy import Targets
from internal.sla.ticket_sla import Event
from internal.usecase import ingest


def store_events(
    pool: psycopg_pool.ConnectionPool, tenant: str, config: SlaConfig, events: Sequence[Event]
) -> None:
    """Ingest `events` for `tenant` under `config`, as IngestTickets does after validation."""

    def targets_for(priority: str, tier: str) -> Targets:
        targets = config.targets(priority, tier)
        assert targets is not None
        return targets

    with pool.connection() as conn:
        ingest.ingest(conn, tenant, events, targets_for, config.rules)
