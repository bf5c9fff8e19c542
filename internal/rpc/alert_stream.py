"""WatchAlerts: one stream's replay of stored alerts, then its live feed from the hub, with no gap
and no repeat.

The order of steps is what makes it gapless:
1. subscribe to the hub first, so that every alert the hub reads from now on is queued for us;
2. fix the starting point: `after_alert_id`, or (live only) the tenant's largest id committed
   now;
3. replay from the table, page by page, every matching alert with id > the last one sent;
4. go live: send queued alerts, skipping any id already sent by the replay.
An alert committed after step 1 is either in a replay page or in the queue (often both: the id
check drops the second copy); one committed before step 1 is in the table for the replay. If the
queue overflows while replaying, the alerts it dropped are in the table too: replay again.

The starting point is sent as initial metadata (`slawatch-resume-after`), so a client that loses
a live-only stream before its first alert can still resume without a gap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import psycopg_pool

from internal.config.settings import StreamOptions
from internal.config.tokens import Principal
from internal.rpc import convert
from internal.rpc.alert_hub import AlertHub, HubUnavailable, StreamRefused, TooManySubscribers
from internal.rpc.call_control import end_call
from internal.rpc.errors import abort_bad_request
from internal.rpc.validation import Violation, check_filter
from internal.usecase import alerts
from internal.usecase.alerts import AlertFilter
from internal.usecase.errors import UNREACHABLE_ERRORS
from slawatch.metadata import RESUME_METADATA_KEY
from slawatch.v1 import ticket_service_pb2 as pb

log = logging.getLogger(__name__)

KIND_FROM_PB = {v: k for k, v in convert.ALERT_KIND_TO_PB.items()}
# A stream with nothing to send wakes this often to notice a client that went away without the
# cancellation callback reaching us.
IDLE_WAKE_SECONDS = 30.0


def parse_request(
    request: pb.WatchAlertsRequest, tenant: str
) -> tuple[int | None, AlertFilter, list[Violation]]:
    violations = []
    after = request.after_alert_id if request.HasField("after_alert_id") else None
    if after is not None and after < 0:
        violations.append(Violation("after_alert_id", "must not be negative"))
    kinds = set()
    for i, kind in enumerate(request.kinds):
        if kind not in KIND_FROM_PB:
            violations.append(Violation(f"kinds[{i}]", "unknown alert kind"))
        else:
            kinds.add(KIND_FROM_PB[kind])
    if request.min_escalation_level < 0:
        violations.append(Violation("min_escalation_level", "must not be negative"))
    check_filter(request.priorities, "priorities", violations)
    check_filter(request.customer_tiers, "customer_tiers", violations)
    check_filter(request.metrics, "metrics", violations)
    wanted = AlertFilter(
        tenant=tenant,
        kinds=frozenset(kinds),
        min_level=request.min_escalation_level,
        priorities=frozenset(request.priorities),
        tiers=frozenset(request.customer_tiers),
        metrics=frozenset(request.metrics),
    )
    return after, wanted, violations


def watch(
    hub: AlertHub,
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
    request: pb.WatchAlertsRequest,
    context: grpc.ServicerContext,
    options: StreamOptions,
    principal: Principal | None = None,
) -> Iterator[pb.WatchAlertsResponse]:
    """The stream of `tenant`'s alerts; `principal`, the caller, lets the hub end the stream
    when a reload of the tokens revokes its token."""
    after, wanted, violations = parse_request(request, tenant)
    if violations:
        abort_bad_request(context, violations)
    try:
        sub = hub.subscribe(
            wanted, lambda code, details: end_call(context, code, details), principal
        )
    except StreamRefused as err:
        context.abort(err.end.code, err.end.why)
    except TooManySubscribers as err:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err))
    except HubUnavailable as err:
        context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
    if not context.add_callback(sub.close):  # the client is already gone
        hub.unsubscribe(sub)
        return
    try:
        try:
            if after is None:
                after = alerts.last_alert_id(pool, tenant)
            context.send_initial_metadata(((RESUME_METADATA_KEY, str(after)),))
            last = sub.last_sent = after
            while True:
                for row in alerts.replay(pool, wanted, last, options.replay_page):
                    if sub.end is not None:
                        context.abort_with_status(sub.end.status(sub.last_sent))
                    yield pb.WatchAlertsResponse(
                        alert=convert.alert_to_pb(row), change=pb.ALERT_CHANGE_RAISED
                    )
                    last = sub.last_sent = row.alert_id
                if sub.go_live():
                    break
        except UNREACHABLE_ERRORS as err:
            log.warning("WatchAlerts replay: database unavailable: %s", err)
            context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable, retry later")
        while True:
            items = sub.take(IDLE_WAKE_SECONDS)
            if items is None and sub.end is not None:
                context.abort_with_status(sub.end.status(sub.last_sent))
            if items is None or not context.is_active():
                return
            for item in items:
                if sub.end is not None:
                    context.abort_with_status(sub.end.status(sub.last_sent))
                if item.update:
                    yield item.response
                elif item.alert_id > last:
                    yield item.response
                    last = sub.last_sent = item.alert_id
    finally:
        hub.unsubscribe(sub)
