"""One evaluation batch: due clocks in, alerts and their notification rows out, one transaction.

Each due clock (one cycle of one metric) is evaluated against its metric's ladder at `now`
(StoredClock.evaluate: the highest step crossed fires, the ones below it are skipped); its alert
(one per ticket, metric, cycle and level), the alert's notification rows (one per channel of the
step), the ticket's escalation level and the clock's next check are written together, and
listeners are told on commit. The statements are internal/store/evaluate_repo's.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from internal.config.holder import TenantPolicies
from internal.config.sla_config import SlaConfig
from internal.config.tenant_configs import NoTenantConfig
from internal.sla.ladder import Step
from internal.sla.model import Mode
from internal.sla.stored_clock import StoredClock
from internal.store import alert_change_repo, deadline_repo, evaluate_repo
from internal.store.evaluate_repo import ClockCheck, DueClock, NewAlert, NewNotification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RaisedAlert:
    alert_id: int
    ticket_id: str
    clock: str
    kind: str
    level: int
    correlation_id: str | None  # of the ingest call that last changed the ticket
    cycle: int = 1


@dataclass(frozen=True)
class BatchResult:
    clocks: int  # due clocks looked at
    alerts: list[int]  # ids of the alerts written
    notifications: list[int]  # ids of the notification rows written
    raised: list[RaisedAlert] = field(default_factory=list)  # the alerts written, in detail
    # notification id -> the correlation id it carries (that of its alert's ticket)
    correlations: dict[int, str | None] = field(default_factory=dict)


def _stored(due: DueClock, config: SlaConfig) -> StoredClock:
    return StoredClock(
        float(due.target_s),
        due.calendar,
        config.calendars.get(due.calendar),
        Mode(due.mode),
        due.anchor_at,
        float(due.anchor_elapsed),
        due.due_at,
        due.warn_at,
        int(due.fired_level),
    )


UNSERVED_RECHECK = timedelta(minutes=1)


def evaluate_batch(
    conn: psycopg.Connection[Any], policies: TenantPolicies, now: datetime, limit: int = 1000
) -> BatchResult:
    """Due clocks of every tenant, each evaluated against its tenant's policy (looked up once per
    tenant in the batch), written in one transaction."""
    configs: dict[str, SlaConfig] = {}
    with conn.transaction():
        due = evaluate_repo.due_clocks(conn, now, limit)
        if not due:
            return BatchResult(0, [], [])
        checks: list[ClockCheck] = []
        alerts: list[NewAlert] = []
        # (tenant, ticket, clock, cycle, level) -> the step that fired: its channels, its repeats
        fired: dict[tuple[str, str, str, int, int], Step] = {}
        correlation_by_ticket: dict[tuple[str, str], str | None] = {}
        # (policy version, calendar name) -> due clocks counted on a calendar it lacks
        unknown_calendars: Counter[tuple[str, str]] = Counter()
        unserved: Counter[str] = Counter()
        for d in due:
            config = configs.get(d.tenant_id)
            if config is None:
                try:
                    config = configs[d.tenant_id] = policies.for_tenant(d.tenant_id)
                except NoTenantConfig:
                    # A directory of per-tenant files without a default, and a tenant with
                    # stored tickets but no file: its clocks are looked at again in a minute
                    # (not at once: they would fill every batch), nothing fires meanwhile.
                    unserved[d.tenant_id] += 1
                    checks.append(
                        ClockCheck(
                            d.tenant_id,
                            d.ticket_id,
                            d.clock,
                            d.cycle,
                            int(d.fired_level),
                            now + UNSERVED_RECHECK,
                        )
                    )
                    continue
            clock = _stored(d, config)
            if clock.calendar is None:
                unknown_calendars[(config.version, clock.calendar_name)] += 1
            outcome = clock.evaluate(config.ladder_for(d.clock), now)
            step = outcome.step
            if step is not None:
                alerts.append(
                    NewAlert(
                        d.tenant_id,
                        d.ticket_id,
                        d.clock,
                        d.cycle,
                        step.kind.value,
                        step.level,
                        d.due_at,
                        d.priority,
                        d.customer_tier,
                        d.mode,
                        d.anchor_at,
                        config.version,
                    )
                )
                fired[(d.tenant_id, d.ticket_id, d.clock, d.cycle, step.level)] = step
                correlation_by_ticket[(d.tenant_id, d.ticket_id)] = d.correlation_id
            checks.append(
                ClockCheck(
                    d.tenant_id,
                    d.ticket_id,
                    d.clock,
                    d.cycle,
                    outcome.fired_level,
                    outcome.next_check_at,
                )
            )
        for tenant, count in sorted(unserved.items()):
            log.warning(
                "%d due clock(s) of tenant %s wait: no SLA config serves the tenant (no file of"
                " its own, and no default.yaml)",
                count,
                tenant,
            )
        for (version, name), count in sorted(unknown_calendars.items()):
            log.warning(
                "%d due clock(s) count on calendar %r, which policy %s does not define: their"
                " steps are timed from their stored due time (late, never early), steps past"
                " the target do not fire; define the calendar again to count them exactly",
                count,
                name,
                version,
            )

        raised: list[RaisedAlert] = []
        notification_ids: list[int] = []
        correlations: dict[int, str | None] = {}
        if alerts:
            written = evaluate_repo.insert_alerts(conn, alerts, now)
            raised = [
                RaisedAlert(
                    alert_id=w.alert_id,
                    ticket_id=w.ticket_id,
                    clock=w.clock,
                    cycle=w.cycle,
                    kind=w.kind,
                    level=w.escalation_level,
                    correlation_id=correlation_by_ticket[(w.tenant_id, w.ticket_id)],
                )
                for w in written
            ]
            steps = [
                fired[(w.tenant_id, w.ticket_id, w.clock, w.cycle, w.escalation_level)]
                for w in written
            ]
            notifications = [
                NewNotification(w.tenant_id, w.alert_id, channel, r.correlation_id)
                for w, r, step in zip(written, raised, steps, strict=True)
                for channel in step.notify
            ]
            if notifications:
                for note in evaluate_repo.insert_notifications(conn, notifications, now):
                    notification_ids.append(note.notification_id)
                    correlations[note.notification_id] = note.correlation_id
            evaluate_repo.raise_levels(conn, alerts)
            scheduled = [
                (w.alert_id, step.repeat_every, step.repeat_max)
                for w, step in zip(written, steps, strict=True)
                if step.repeat_every is not None and step.repeat_max is not None
            ]
            if scheduled:
                alert_change_repo.schedule_repeats(conn, scheduled)
                # The scheduler sleeps until the earliest instant it knows: tell it of this one.
                first = now + timedelta(seconds=min(every for _, every, _ in scheduled))
                with conn.cursor() as cur:
                    deadline_repo.announce(cur, first)
        evaluate_repo.record_checks(conn, checks)
        alert_ids = [r.alert_id for r in raised]
        if alert_ids:
            # Delivered on commit only; listeners then read alerts with id > their last.
            evaluate_repo.notify_alerts(conn, max(alert_ids))
    return BatchResult(len(due), alert_ids, notification_ids, raised, correlations)
