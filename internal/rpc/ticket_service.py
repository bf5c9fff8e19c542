"""The TicketService servicer: translate protobuf to domain calls and back, nothing more."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
import psycopg_pool

from internal.config.holder import ServedPolicies
from internal.config.sla_config import ConfigError, SlaConfig, parse_served_config
from internal.config.tenant_configs import NoTenantConfig
from internal.config.yaml_load import MAX_FILE_BYTES
from internal.obs import metrics
from internal.obs.correlation import current_correlation_id
from internal.rpc import alert_stream, convert, page_token
from internal.rpc.alert_hub import AlertHub
from internal.rpc.alert_stream import StreamOptions
from internal.rpc.auth import current_principal
from internal.rpc.errors import abort_bad_request
from internal.rpc.validation import (
    STATUS_FROM_PB,
    Violation,
    check_filter,
    check_text,
    validate_acknowledge,
    validate_ingest,
    validate_report,
)
from internal.sla.policy import Facts, Targets
from internal.sla.report import Interval
from internal.usecase import (
    alert_changes,
    erase,
    explain,
    ingest,
    policies,
    policy_preview,
    queries,
    report,
)
from internal.usecase.errors import UNREACHABLE_ERRORS
from internal.usecase.queries import DashboardFilter
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_VIEWS = frozenset({pb.TICKET_VIEW_UNSPECIFIED, pb.TICKET_VIEW_BASIC, pb.TICKET_VIEW_FULL})
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_VERSIONS_PAGE = 20
MAX_VERSIONS_PAGE = 100

F = TypeVar("F", bound=Callable[..., Any])


def utc_now() -> datetime:
    return datetime.now(UTC)


def database_errors_unavailable(method: F) -> F:
    """A database outage is UNAVAILABLE, which clients may retry: every write is idempotent."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except UNREACHABLE_ERRORS as err:
            log.warning("database unavailable in %s: %s", method.__name__, err)
            context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable, retry later")

    return wrapper  # type: ignore[return-value]


def _chooser(config: SlaConfig) -> ingest.Chooser | None:
    """The map form's targets depend on priority and tier alone (targets_for); ordered
    policies are matched on each ticket's current fields."""
    if config.is_map_form:
        return None

    def choose(facts: Facts) -> Targets | None:
        policy = config.choose(facts)
        return None if policy is None else policy.targets

    return ingest.Chooser(choose, config.ordered_policies.uses_fields)


def _no_match_violation(request: pb.IngestTicketsRequest, err: ingest.NoPolicyMatches) -> Violation:
    """`events[i]`: the request's newest event of the ticket no policy matches."""
    newest, index = None, 0
    for i, e in enumerate(request.events):
        if e.ticket_id == err.ticket_id:
            at = (e.updated_at.seconds, e.updated_at.nanos)
            if newest is None or at > newest:
                newest, index = at, i
    return Violation(f"events[{index}]", ingest.describe(err.facts))


class TicketService(pb_grpc.TicketServiceServicer):
    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        config: ServedPolicies,
        *,
        max_batch_events: int = 1000,
        now: Callable[[], datetime] = utc_now,
        page_tokens: page_token.PageTokens,
        alerts: AlertHub | None = None,
        stream_options: StreamOptions | None = None,
    ) -> None:
        self._pool = pool
        self._page_tokens = page_tokens
        self._alerts = alerts
        self._stream_options = stream_options or StreamOptions()
        self._config = config
        self._max_batch = max_batch_events
        self._now = now

    def _policy(self, tenant: str, context: grpc.ServicerContext) -> SlaConfig:
        """The caller's tenant's config; FAILED_PRECONDITION when the per-tenant directory has
        no file for it and no default (an operator's omission, not the caller's)."""
        try:
            return self._config.for_tenant(tenant)
        except NoTenantConfig as err:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))

    @database_errors_unavailable
    def IngestTickets(
        self, request: pb.IngestTicketsRequest, context: grpc.ServicerContext
    ) -> pb.IngestTicketsResponse:
        tenant = current_principal.get().tenant  # from the token, never the request
        config = self._policy(tenant, context)
        events, details, violations = validate_ingest(request, config, self._now(), self._max_batch)
        if violations:
            abort_bad_request(context, violations)

        def targets_for(priority: str, tier: str) -> Any:
            targets = config.targets(priority, tier)
            assert targets is not None  # validated above against the same config snapshot
            return targets

        try:
            with self._pool.connection() as conn:
                outcomes = ingest.ingest(
                    conn,
                    tenant,
                    events,
                    targets_for,
                    config.rules,
                    correlation_id=current_correlation_id.get(),
                    details=details,
                    chooser=_chooser(config),
                )
        except ingest.NoPolicyMatches as err:
            # Fields given by earlier events made a ticket match none: name its newest event.
            abort_bad_request(context, [_no_match_violation(request, err)])
        for outcome, n in Counter(outcomes).items():
            metrics.EVENTS_INGESTED.labels(outcome.value).inc(n)
        response = pb.IngestTicketsResponse()
        add = response.results.add  # built in place: half the cost of building and copying each
        for e, o in zip(events, outcomes, strict=True):
            add(ticket_id=e.ticket_id, outcome=convert.OUTCOME_TO_PB[o])
        return response

    @database_errors_unavailable
    def GetTicket(
        self, request: pb.GetTicketRequest, context: grpc.ServicerContext
    ) -> pb.GetTicketResponse:
        tenant = current_principal.get().tenant  # from the token, never the request
        violations: list[Violation] = []
        check_text(request.ticket_id, "ticket_id", violations)
        if request.view not in _VIEWS:
            violations.append(Violation("view", "unknown TicketView value"))
        if violations:
            abort_bad_request(context, violations)
        detail = queries.get_ticket(self._pool, tenant, request.ticket_id)
        if detail is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"ticket {request.ticket_id!r} not found")
        config, now = self._policy(tenant, context), self._now()
        # The basic view lists the current cycle of each metric; the full view every cycle,
        # each with its timeline (worked out from the history: only the full view pays for it).
        full = request.view == pb.TICKET_VIEW_FULL
        timelines = explain.clock_timelines(config, detail, now) if full else None
        ticket = convert.ticket_to_pb(
            detail.ticket, detail.clocks, config, now, every_cycle=full, timelines=timelines
        )
        convert.fill_ticket_fields(ticket, queries.ticket_fields(detail.history))
        return pb.GetTicketResponse(
            ticket=ticket,
            history=[convert.history_to_pb(h) for h in detail.history],
            alerts=[
                convert.alert_to_pb(a, detail.notifications.get(a.alert_id, ()))
                for a in detail.alerts
            ],
        )

    @database_errors_unavailable
    def GetDashboard(
        self, request: pb.GetDashboardRequest, context: grpc.ServicerContext
    ) -> pb.GetDashboardResponse:
        tenant = current_principal.get().tenant  # from the token, never the request
        violations: list[Violation] = []
        check_filter(request.priorities, "priorities", violations)
        check_filter(request.customer_tiers, "customer_tiers", violations)
        check_filter(request.metrics, "metrics", violations)
        if request.page_size < 0 or request.page_size > MAX_PAGE_SIZE:
            violations.append(Violation("page_size", f"must be between 0 and {MAX_PAGE_SIZE}"))
        states = []
        for i, s in enumerate(request.states):
            if s not in convert.STATE_FROM_PB:
                violations.append(Violation(f"states[{i}]", "unknown SLA state"))
            else:
                states.append(convert.STATE_FROM_PB[s])
        statuses = []
        for i, st in enumerate(request.statuses):
            if st not in STATUS_FROM_PB:
                violations.append(Violation(f"statuses[{i}]", "unknown ticket status"))
            else:
                statuses.append(STATUS_FROM_PB[st].value)
        f = DashboardFilter(
            states=sorted(set(states)),
            priorities=sorted(set(request.priorities)),
            tiers=sorted(set(request.customer_tiers)),
            statuses=sorted(set(statuses)),
            metrics=sorted(set(request.metrics)),
        )
        filter_parts: list[object] = [
            [s.value for s in f.states],
            f.priorities,
            f.tiers,
            f.statuses,
        ]
        if f.metrics:
            # Only when given: a token issued before the metrics filter existed still pages on.
            filter_parts.append(f.metrics)
        fingerprint = page_token.filter_fingerprint(filter_parts)
        after = None
        if request.page_token:
            try:
                after = self._page_tokens.decode(request.page_token, tenant, fingerprint)
            except page_token.PageTokenError as err:
                violations.append(Violation("page_token", str(err)))
            else:
                # Authentic, yet checked like any field: it is what reaches the query.
                found: list[Violation] = []
                check_text(after[1], "page_token", found)
                if found:
                    violations.append(Violation("page_token", "malformed page token"))
        if violations:
            abort_bad_request(context, violations)

        size = request.page_size or DEFAULT_PAGE_SIZE
        config, now = self._policy(tenant, context), self._now()
        found_page = queries.dashboard(self._pool, tenant, f, now, after, size + 1)
        rows, counts = found_page.rows, found_page.counts
        page = rows[:size]
        response = pb.GetDashboardResponse(
            tickets=[convert.ticket_to_pb(r.ticket, r.clocks, config, now) for r in page],
            counts=[
                pb.StateCount(state=convert.STATE_TO_PB[state], count=n)
                for state, n in sorted(counts.items())
            ],
        )
        if len(rows) > size:
            last = page[-1].ticket
            response.next_page_token = self._page_tokens.encode(
                tenant,
                last.urgent_at,
                last.ticket_id,
                fingerprint,
            )
        return response

    @database_errors_unavailable
    def DeleteTicket(
        self, request: pb.DeleteTicketRequest, context: grpc.ServicerContext
    ) -> pb.DeleteTicketResponse:
        tenant = current_principal.get().tenant  # from the token, never the request
        violations: list[Violation] = []
        check_text(request.ticket_id, "ticket_id", violations)
        if violations:
            abort_bad_request(context, violations)
        with self._pool.connection() as conn:
            erased = erase.delete_ticket(conn, tenant, request.ticket_id)
        if erased is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"ticket {request.ticket_id!r} not found")
        metrics.TICKETS_ERASED.labels("delete").inc()
        log.info(
            "ticket erased: %d events, %d alerts, %d notifications",
            erased.events,
            erased.alerts,
            erased.notifications,
            extra={"ticket_id": request.ticket_id},
        )
        return pb.DeleteTicketResponse(
            events_deleted=erased.events,
            alerts_deleted=erased.alerts,
            notifications_deleted=erased.notifications,
        )

    def AcknowledgeAlert(
        self, request: pb.AcknowledgeAlertRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeAlertResponse:
        principal = current_principal.get()  # the tenant and the name come from the token
        violations = validate_acknowledge(request)
        if violations:
            abort_bad_request(context, violations)
        with self._pool.connection() as conn:
            row = alert_changes.acknowledge(
                conn,
                principal.tenant,
                request.alert_id,
                principal.name,
                request.note or None,
                self._now(),
            )
        if row is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"alert {request.alert_id} not found")
        metrics.ALERTS_ACKNOWLEDGED.inc()
        log.info(
            "alert %d acknowledged by %s",
            row.alert_id,
            row.acknowledged_by,
            extra={"alert_id": row.alert_id, "ticket_id": row.ticket_id},
        )
        return pb.AcknowledgeAlertResponse(alert=convert.alert_to_pb(row))

    def WatchAlerts(
        self, request: pb.WatchAlertsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchAlertsResponse]:
        principal = current_principal.get()
        if self._alerts is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server does not stream alerts")
        return alert_stream.watch(
            self._alerts,
            self._pool,
            principal.tenant,  # from the token, never the request
            request,
            context,
            self._stream_options,
            principal,
        )

    @database_errors_unavailable
    def GetSlaReport(
        self, request: pb.GetSlaReportRequest, context: grpc.ServicerContext
    ) -> pb.GetSlaReportResponse:
        tenant = current_principal.get().tenant  # from the token, never the request
        violations, asked = validate_report(request, report.MAX_INTERVALS)
        if violations or asked is None:
            abort_bad_request(context, violations)
        rows = report.sla_report(
            self._pool,
            tenant,
            asked.start,
            asked.end,
            Interval(asked.interval),
            asked.zone,
            asked.group_by,
            asked.filters,
            self._now(),
        )
        out = pb.GetSlaReportResponse()
        for r in rows:
            row = out.rows.add(
                achieved=r.achieved,
                breached=r.breached,
                attainment=r.attainment,
                running_past_target=r.running_past_target,
                **r.group,
            )
            row.interval_start.CopyFrom(convert.ts(r.start))
            row.interval_end.CopyFrom(convert.ts(r.end))
            p50, p90 = r.p50, r.p90
            if p50 is not None and p90 is not None:
                row.p50_elapsed.CopyFrom(convert.duration(p50))
                row.p90_elapsed.CopyFrom(convert.duration(p90))
        return out

    @database_errors_unavailable
    def PreviewPolicy(
        self, request: pb.PreviewPolicyRequest, context: grpc.ServicerContext
    ) -> pb.PreviewPolicyResponse:
        tenant = current_principal.get().tenant  # from the token, never the request
        violations: list[Violation] = []
        if not 0 <= request.sample_size <= policy_preview.MAX_SAMPLE:
            violations.append(
                Violation("sample_size", f"must be between 0 and {policy_preview.MAX_SAMPLE}")
            )
        text = request.config_text.encode()
        candidate = None
        if len(text) > MAX_FILE_BYTES:
            violations.append(
                Violation("config_text", f"at most {MAX_FILE_BYTES} bytes, as a config file")
            )
        else:
            try:
                candidate = parse_served_config(text)
            except ConfigError as err:
                # The message a reload of this text would log, naming the key.
                violations.append(Violation("config_text", str(err)))
        if violations or candidate is None:
            abort_bad_request(context, violations)
        current = self._policy(tenant, context)
        preview = policy_preview.preview_policy(
            self._pool,
            tenant,
            current,
            candidate,
            self._now(),
            sample_size=request.sample_size or policy_preview.DEFAULT_SAMPLE,
        )
        return convert.preview_to_pb(preview)

    @database_errors_unavailable
    def GetPolicy(
        self, request: pb.GetPolicyRequest, context: grpc.ServicerContext
    ) -> pb.GetPolicyResponse:
        tenant = current_principal.get().tenant  # from the token, never the request
        violations: list[Violation] = []
        if request.version:
            check_text(request.version, "version", violations)
        if violations:
            abort_bad_request(context, violations)
        active = self._policy(tenant, context)
        scope = self._config.scope_of(tenant)
        found = policies.get_policy(self._pool, scope, active, request.version)
        if found is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"policy version {request.version!r} not found"
            )
        return pb.GetPolicyResponse(
            policy=convert.policy_version_to_pb(found), text=found.text or ""
        )

    @database_errors_unavailable
    def ListPolicyVersions(
        self, request: pb.ListPolicyVersionsRequest, context: grpc.ServicerContext
    ) -> pb.ListPolicyVersionsResponse:
        tenant = current_principal.get().tenant  # from the token, never the request
        violations: list[Violation] = []
        if not 0 <= request.page_size <= MAX_VERSIONS_PAGE:
            violations.append(Violation("page_size", f"must be between 0 and {MAX_VERSIONS_PAGE}"))
        active = self._policy(tenant, context)
        scope = self._config.scope_of(tenant)
        # A cursor is bound to the scope it pages: a tenant whose file appeared meanwhile starts
        # over rather than continue through the default's versions.
        fingerprint = page_token.filter_fingerprint(["policy_versions", scope])
        after = None
        if request.page_token:
            try:
                after = self._page_tokens.decode(request.page_token, tenant, fingerprint)
            except page_token.PageTokenError as err:
                violations.append(Violation("page_token", str(err)))
            else:
                found: list[Violation] = []
                check_text(after[1], "page_token", found)
                if found:
                    violations.append(Violation("page_token", "malformed page token"))
        if violations:
            abort_bad_request(context, violations)
        size = request.page_size or DEFAULT_VERSIONS_PAGE
        rows = policies.list_versions(self._pool, scope, active, after, size + 1)
        page = rows[:size]
        response = pb.ListPolicyVersionsResponse(
            versions=[convert.policy_version_to_pb(v) for v in page]
        )
        if len(rows) > size:
            last = page[-1]
            assert last.first_seen_at is not None  # rows read from the table have it
            response.next_page_token = self._page_tokens.encode(
                tenant, last.first_seen_at, last.version, fingerprint
            )
        return response
