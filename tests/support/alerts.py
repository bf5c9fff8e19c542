"""Alerts for the streaming tests, raised the real way: tickets stored through the ingest use
case, then the evaluator (internal/usecase/evaluate.evaluate_batch) run at an explicit
instant, so that these alerts are written exactly as production writes them.

Every evaluation here runs at the same instant, NOW, and each ticket is created so that at NOW
its response clock has just crossed the step asked for. The steps above it are crossed later
than NOW, so an evaluation only ever raises the alerts of the tickets it was called for.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from internal.config.sla_config import SlaConfig, parse_config
from internal.sla.model import Status
from internal.sla.ticket_sla import Event
from internal.usecase import ingest
from internal.usecase.evaluate import evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import config_text
from support.events import event

# A Monday, 13:00 in Berlin: hours of emea_office's working day lie behind it, so high/silver's
# thresholds are counted back on working time as on 24x7.
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
# The config the `config_path` fixture writes (the same version the test servers run).
CONFIG = parse_config(config_text())

_serial = itertools.count()
INGEST_BATCH = 1000  # SLAWATCH_MAX_BATCH_EVENTS' default
# One writer at a time: two evaluations at NOW would share each other's due clocks (SKIP LOCKED),
# and each call must return the alerts of its own tickets.
_one_writer = threading.Lock()

# A session whose pg_notify drops the notification: a NOTIFY lost on its way, for the tests of
# what the stream does when one never comes. The evaluator's SQL names pg_notify unqualified,
# so a schema searched before pg_catalog replaces it for this session only.
_LOSE_NOTIFY = """
CREATE SCHEMA IF NOT EXISTS lost_notify;
CREATE OR REPLACE FUNCTION lost_notify.pg_notify(text, text) RETURNS void
    LANGUAGE sql AS 'SELECT NULL';
SET search_path = lost_notify, pg_catalog, public;
"""


@dataclass(frozen=True)
class Shape:
    kind: str = "warning"
    level: int = 1
    priority: str = "high"
    tier: str = "gold"
    tenant: str = "default"


def _created_at(shape: Shape, config: SlaConfig) -> datetime:
    """When a ticket of `shape` must have been created for its response clock to be just past
    the step of `shape.level` at NOW."""
    (step,) = [s for s in config.ladder.steps if s.level == shape.level]
    assert step.kind.value == shape.kind, f"level {shape.level} is a {step.kind} step"
    targets = config.targets(shape.priority, shape.tier)
    assert targets is not None, shape
    created = NOW - timedelta(seconds=step.seconds(targets.seconds["response"]) + 1)
    counted = targets.calendar.working_seconds(created, NOW)
    assert counted == step.seconds(targets.seconds["response"]) + 1, (
        "NOW is too early in the working day"
    )
    return created


def write_alerts(
    database_url: str, count: int, shape: Shape = Shape(), *, notify: bool = True
) -> list[int]:
    """`count` alerts of `shape`, raised by one evaluation batch; their ids, ascending. With
    `notify` False, the batch's NOTIFY is lost (see _LOSE_NOTIFY)."""
    created = _created_at(shape, CONFIG)
    events = [
        Event(
            f"A-{uuid.uuid4().hex[:8]}-{next(_serial)}",
            shape.priority,
            shape.tier,
            Status.OPEN,
            created,
            created,
        )
        for _ in range(count)
    ]
    targets = CONFIG.targets(shape.priority, shape.tier)
    assert targets is not None
    with _one_writer, psycopg.connect(database_url, autocommit=True) as conn:
        # In batches no larger than a server accepts: one transaction locks each of its
        # tickets, and PostgreSQL's lock table holds a few thousand locks.
        for start in range(0, count, INGEST_BATCH):
            ingest.ingest(
                conn,
                shape.tenant,
                events[start : start + INGEST_BATCH],
                lambda p, t: targets,
                CONFIG.rules,
            )
        if not notify:
            conn.execute(_LOSE_NOTIFY)
        batch = evaluate_batch(conn, CONFIG, NOW, limit=max(1000, count))
    assert len(batch.alerts) == count, "the evaluator raised other alerts than those asked for"
    return sorted(batch.alerts)


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
    """The whole path from the API: ingest through `stub` an open high/gold ticket created
    `minutes_ago` before NOW (past its 15-minute response target), then run one evaluation batch
    at NOW; the ids of the alerts it wrote (of every tenant with clocks due). `metadata` carries
    the ingesting tenant's token."""
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[event(ticket_id, created=NOW - timedelta(minutes=minutes_ago))]
        ),
        timeout=30,
        metadata=metadata,
    )
    with _one_writer, psycopg.connect(database_url) as conn:
        return evaluate_batch(conn, config, NOW).alerts
