"""Writing alert rows directly, for tests that need many alerts or alerts of exact shapes.

Same discipline as the evaluator (internal/store/evaluate_repo.py): the alert write lock until
commit, and a NOTIFY with the largest new id in the same transaction.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from internal.config.sla_config import SlaConfig
from internal.store.evaluate_repo import ALERT_WRITE_LOCK, ALERTS_CHANNEL, evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.events import event

_INSERT = """
INSERT INTO alerts (tenant_id, ticket_id, clock, kind, escalation_level, due_at, priority,
                    customer_tier, policy_version)
SELECT %(tenant)s, t, 'response', %(kind)s, %(level)s, now(), %(priority)s, %(tier)s, 'test'
FROM unnest(%(tickets)s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n
RETURNING alert_id
"""

_serial = itertools.count()


@dataclass(frozen=True)
class Shape:
    kind: str = "warning"
    level: int = 1
    priority: str = "high"
    tier: str = "gold"
    tenant: str = "default"


def write_alerts(
    database_url: str, count: int, shape: Shape = Shape(), *, notify: bool = True
) -> list[int]:
    """Insert `count` alerts in one transaction; their ids, ascending."""
    tickets = [f"A-{uuid.uuid4().hex[:8]}-{next(_serial)}" for _ in range(count)]
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_WRITE_LOCK,))
        rows = conn.execute(
            _INSERT,
            {
                "tenant": shape.tenant,
                "kind": shape.kind,
                "level": shape.level,
                "priority": shape.priority,
                "tier": shape.tier,
                "tickets": tickets,
            },
        ).fetchall()
        ids = sorted(int(r[0]) for r in rows)
        if notify and ids:
            conn.execute("SELECT pg_notify(%s, %s)", (ALERTS_CHANNEL, str(ids[-1])))
    return ids


def stored_ids(database_url: str, after: int = 0) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [
            int(r[0])
            for r in conn.execute(
                "SELECT alert_id FROM alerts WHERE alert_id > %s ORDER BY alert_id", (after,)
            )
        ]


class AlertWriter:
    """A thread writing small batches of alerts back to back until stopped."""

    def __init__(self, database_url: str, batch: int = 3) -> None:
        self._url = database_url
        self._batch = batch
        self._stop = threading.Event()
        self.written: list[int] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="alert-writer", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.written.extend(write_alerts(self._url, self._batch))
        except BaseException as err:
            self.error = err

    def __enter__(self) -> AlertWriter:
        self._thread.start()
        return self

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise self.error
        return self.written

    def __exit__(self, *exc: object) -> None:
        self.stop()


def breach_by_evaluation(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    config: SlaConfig,
    ticket_id: str,
    *,
    minutes_ago: float = 20,
    metadata: tuple[tuple[str, str], ...] = (),
) -> list[int]:
    """The real path: ingest an open high/gold ticket created `minutes_ago` (past its 15-minute
    response target), then run one evaluation batch; the ids of the alerts it wrote (of every
    tenant with clocks due). `metadata` carries the ingesting tenant's token."""
    now = datetime.now(UTC)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[event(ticket_id, created=now - timedelta(minutes=minutes_ago))]
        ),
        timeout=30,
        metadata=metadata,
    )
    with psycopg.connect(database_url) as conn:
        return evaluate_batch(conn, config, now).alerts
