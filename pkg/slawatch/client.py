"""A typed client for slawatch.v1.TicketService, the way an internal service wants to call it.

    from slawatch import SlawatchClient

    with SlawatchClient("slawatch:50051", token=os.environ["SLAWATCH_TOKEN"]) as client:
        client.ingest(events)                       # retried on UNAVAILABLE: ingest is idempotent
        detail = client.get_ticket("T-1")
        for ticket in client.iter_dashboard(states=[pb.SLA_STATE_BREACHED]):
            ...
        for alert in client.watch_alerts(after_alert_id=last_seen):
            ...                                     # resumes on its own after a disconnect

Errors are `grpc.RpcError` with the server's status code (INVALID_ARGUMENT carries a
google.rpc.BadRequest detail naming every bad field; `slawatch.errors` reads the ErrorInfo and
RetryInfo details of a rate limit or an ended stream).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol

import grpc

from slawatch.errors import resume_point, retry_delay
from slawatch.metadata import RESUME_METADATA_KEY
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str]]
_CallMetadata = tuple[tuple[str, str | bytes], ...]


class _AlertCall(Protocol):
    """What a WatchAlerts call object offers (grpc's stub names its class privately)."""

    def __iter__(self) -> Iterator[pb.WatchAlertsResponse]: ...
    def __next__(self) -> pb.WatchAlertsResponse: ...
    def cancel(self) -> bool: ...
    def initial_metadata(self) -> Sequence[tuple[str, str | bytes]] | None: ...


DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 5
DASHBOARD_PAGE_SIZE = 200

# Keepalive pings every minute, also on a quiet stream, so that NATs and load balancers keep a
# watch open and a dead server is noticed; the server accepts pings as often as every 10 s.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)

# A watch resumes after these: the server went away or restarted (UNAVAILABLE), ended us for
# falling behind (RESOURCE_EXHAUSTED), or a proxy reset the stream (INTERNAL, ABORTED).
RESUMABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,  # only when the server cancelled; our own close() ends it
    }
)


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 10.0) -> float:
    """Exponential backoff with jitter, so that clients of a restarted server do not return in
    lockstep."""
    ceiling = min(cap, base * (2**attempt))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class SlawatchClient:
    """One channel to a slawatch server. Thread-safe; close it (or use `with`) when done.

    target: "host:port". credentials: TLS/channel credentials (None: plaintext), for example
    `grpc.ssl_channel_credentials(root_certificates=ca_pem)`.
    token: the bearer token the server knows this caller by (sent as `authorization`).
    metadata: more metadata sent with every call.
    timeout: default deadline in seconds of each unary call, retries included.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        metadata: Metadata = (),
        timeout: float = DEFAULT_TIMEOUT,
        options: Sequence[tuple[str, int | str]] = (),
    ) -> None:
        channel_options = [*CHANNEL_OPTIONS, *options]
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        self.stub = pb_grpc.TicketServiceStub(self._channel)
        auth = (("authorization", f"Bearer {token}"),) if token else ()
        self._metadata: _CallMetadata = (*auth, *metadata)
        self._timeout = timeout

    def __enter__(self) -> SlawatchClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; open watches end."""
        self._channel.close()

    def ingest(
        self,
        events: Iterable[pb.TicketEvent],
        *,
        retries: int = DEFAULT_RETRIES,
        deadline: float | None = None,
    ) -> list[pb.IngestResult]:
        """Store a batch of events; one result per event, in order.

        UNAVAILABLE (server restarting, database down) is retried up to `retries` times with
        backoff, which is safe because ingest is idempotent on (ticket_id, updated_at): a batch
        stored by an attempt whose answer was lost comes back as DUPLICATE. So is a rate-limit
        refusal (RESOURCE_EXHAUSTED with RetryInfo), after the delay the server names.
        `deadline` (seconds, default: the client's timeout) bounds all attempts together.
        """
        request = pb.IngestTicketsRequest(events=list(events))
        budget = self._timeout if deadline is None else deadline
        ends = time.monotonic() + budget
        attempt = 0
        while True:
            try:
                response = self.stub.IngestTickets(
                    request, timeout=max(0.0, ends - time.monotonic()), metadata=self._metadata
                )
                return list(response.results)
            except grpc.RpcError as err:
                asked = retry_delay(err)
                retryable = err.code() == grpc.StatusCode.UNAVAILABLE or (
                    err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and asked is not None
                )
                if not retryable or attempt >= retries:
                    raise
                delay = max(backoff_delay(attempt), asked or 0.0)
                if time.monotonic() + delay >= ends:
                    raise
                log.info("ingest: %s; retry %d in %.2fs", err.details(), attempt + 1, delay)
                time.sleep(delay)
                attempt += 1

    def get_ticket(
        self,
        ticket_id: str,
        *,
        view: pb.TicketView.ValueType = pb.TICKET_VIEW_UNSPECIFIED,
        timeout: float | None = None,
    ) -> pb.GetTicketResponse:
        """One ticket with its clocks, history and alerts; NOT_FOUND if unknown. `view`
        TICKET_VIEW_FULL asks for every cycle of every metric in `ticket.clocks`."""
        return self.stub.GetTicket(
            pb.GetTicketRequest(ticket_id=ticket_id, view=view),
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._metadata,
        )

    def delete_ticket(
        self, ticket_id: str, *, timeout: float | None = None
    ) -> pb.DeleteTicketResponse:
        """Erase one ticket with its history, clocks, alerts and notifications (role `admin`);
        NOT_FOUND if unknown. Not retried here: after a lost answer, a retry says NOT_FOUND."""
        return self.stub.DeleteTicket(
            pb.DeleteTicketRequest(ticket_id=ticket_id),
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._metadata,
        )

    def get_dashboard(
        self,
        *,
        page_size: int = DASHBOARD_PAGE_SIZE,
        page_token: str = "",
        states: Iterable[pb.SlaState.ValueType] = (),
        priorities: Iterable[str] = (),
        customer_tiers: Iterable[str] = (),
        statuses: Iterable[pb.TicketStatus.ValueType] = (),
        metrics: Iterable[str] = (),
        timeout: float | None = None,
    ) -> pb.GetDashboardResponse:
        """One dashboard page: tickets most urgent first, counts per SLA state, next token.

        `metrics` (names such as "next_reply") keeps the tickets that have a clock of one of
        them; like `states` it narrows the page, not the counts."""
        return self.stub.GetDashboard(
            pb.GetDashboardRequest(
                page_size=page_size,
                page_token=page_token,
                states=states,
                priorities=priorities,
                customer_tiers=customer_tiers,
                statuses=statuses,
                metrics=metrics,
            ),
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._metadata,
        )

    def iter_dashboard(
        self,
        *,
        page_size: int = DASHBOARD_PAGE_SIZE,
        states: Iterable[pb.SlaState.ValueType] = (),
        priorities: Iterable[str] = (),
        customer_tiers: Iterable[str] = (),
        statuses: Iterable[pb.TicketStatus.ValueType] = (),
        metrics: Iterable[str] = (),
        timeout: float | None = None,
    ) -> Iterator[pb.Ticket]:
        """Every ticket matching the filters, most urgent first, fetching pages as needed."""
        states, statuses = list(states), list(statuses)
        priorities, customer_tiers = list(priorities), list(customer_tiers)
        metrics = list(metrics)
        token = ""
        while True:
            page = self.get_dashboard(
                page_size=page_size,
                page_token=token,
                states=states,
                priorities=priorities,
                customer_tiers=customer_tiers,
                statuses=statuses,
                metrics=metrics,
                timeout=timeout,
            )
            yield from page.tickets
            token = page.next_page_token
            if not token:
                return

    def watch_alerts(
        self,
        after_alert_id: int | None = None,
        *,
        kinds: Iterable[pb.AlertKind.ValueType] = (),
        min_escalation_level: int = 0,
        priorities: Iterable[str] = (),
        customer_tiers: Iterable[str] = (),
        metrics: Iterable[str] = (),
        max_backoff: float = 10.0,
        changes: bool = False,
    ) -> AlertWatch:
        """Alerts as they are written, for as long as you iterate.

        With `after_alert_id`, every stored alert after it comes first, then live ones; without
        it, live alerts from now. Whenever the stream breaks (server restart or shutdown, network
        loss, the server ending it for falling behind) the watch reconnects with backoff and
        resumes after the last alert it yielded: no alert is skipped or yielded twice. Errors
        that retrying cannot fix (INVALID_ARGUMENT, UNAUTHENTICATED, ...) are raised.

        With `changes`, an alert repeated or acknowledged while the watch is connected is
        yielded again, in its new state (`repeat`, `acknowledged_at`); such changes made while
        it was reconnecting are not replayed (GetTicket shows every alert's state).
        """
        request = pb.WatchAlertsRequest(
            kinds=kinds,
            min_escalation_level=min_escalation_level,
            priorities=priorities,
            customer_tiers=customer_tiers,
            metrics=metrics,
        )
        if after_alert_id is not None:
            request.after_alert_id = after_alert_id
        return AlertWatch(self.stub, request, self._metadata, max_backoff, changes)

    def acknowledge_alert(
        self, alert_id: int, *, note: str = "", timeout: float | None = None
    ) -> pb.Alert:
        """Mark an alert handled (role `ack`): its repeats stop. Acknowledging it again answers
        the first acknowledgement; NOT_FOUND if the tenant has no such alert."""
        return self.stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(alert_id=alert_id, note=note),
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._metadata,
        ).alert

    def get_sla_report(
        self,
        start: datetime,
        end: datetime,
        interval: pb.ReportInterval.ValueType = pb.REPORT_INTERVAL_DAY,
        *,
        time_zone: str = "",
        group_by: Sequence[pb.ReportDimension.ValueType] = (),
        metrics: Sequence[str] = (),
        priorities: Sequence[str] = (),
        customer_tiers: Sequence[str] = (),
        timeout: float | None = None,
    ) -> list[pb.SlaReportRow]:
        """SLA attainment per interval of [start, end) (timezone-aware datetimes) in
        `time_zone` (IANA; empty: UTC), grouped by `group_by` (role `read`)."""
        request = pb.GetSlaReportRequest(
            interval=interval,
            time_zone=time_zone,
            group_by=group_by,
            metrics=metrics,
            priorities=priorities,
            customer_tiers=customer_tiers,
        )
        request.start.FromDatetime(start)
        request.end.FromDatetime(end)
        return list(
            self.stub.GetSlaReport(
                request,
                timeout=self._timeout if timeout is None else timeout,
                metadata=self._metadata,
            ).rows
        )

    def preview_policy(
        self, config_text: str, *, sample_size: int = 0, timeout: float | None = None
    ) -> pb.PreviewPolicyResponse:
        """What saving `config_text` as the tenant's SLA config would change (role `admin`);
        INVALID_ARGUMENT with the config's errors. Nothing is written."""
        return self.stub.PreviewPolicy(
            pb.PreviewPolicyRequest(config_text=config_text, sample_size=sample_size),
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._metadata,
        )

    def get_policy(
        self, version: str = "", *, timeout: float | None = None
    ) -> pb.GetPolicyResponse:
        """The SLA config version in force for the tenant (or `version`), with its text."""
        return self.stub.GetPolicy(
            pb.GetPolicyRequest(version=version),
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._metadata,
        )

    def iter_policy_versions(
        self, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[pb.PolicyVersion]:
        """Every version of the tenant's SLA config, newest first, page by page."""
        token = ""
        while True:
            page = self.stub.ListPolicyVersions(
                pb.ListPolicyVersionsRequest(page_size=page_size, page_token=token),
                timeout=self._timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
            yield from page.versions
            token = page.next_page_token
            if not token:
                return


# Changes of alerts sent before (they do not move the resume point).
_CHANGES = frozenset({pb.ALERT_CHANGE_REPEATED, pb.ALERT_CHANGE_ACKNOWLEDGED})


class AlertWatch(Iterator[pb.Alert]):
    """The iterator `SlawatchClient.watch_alerts` returns. `close()` (from any thread) ends it;
    `last_alert_id` is where it would resume; `reconnects` counts the resumptions."""

    def __init__(
        self,
        stub: pb_grpc.TicketServiceStub,
        request: pb.WatchAlertsRequest,
        metadata: _CallMetadata,
        max_backoff: float,
        changes: bool = False,
    ) -> None:
        self._stub = stub
        self._changes = changes
        self._request = request
        self._metadata = metadata
        self._max_backoff = max_backoff
        self.last_alert_id: int | None = (
            request.after_alert_id if request.HasField("after_alert_id") else None
        )
        self.reconnects = 0
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._call: _AlertCall | None = None
        self._alerts = self._run()

    def __iter__(self) -> AlertWatch:
        return self

    def __next__(self) -> pb.Alert:
        return next(self._alerts)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def __enter__(self) -> AlertWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self) -> _AlertCall | None:
        request = pb.WatchAlertsRequest()
        request.CopyFrom(self._request)
        if self.last_alert_id is not None:
            request.after_alert_id = self.last_alert_id
        with self._lock:
            if self._closed.is_set():
                return None
            self._call = self._stub.WatchAlerts(request, metadata=self._metadata)
            return self._call

    def _run(self) -> Iterator[pb.Alert]:
        attempt = 0
        while True:
            call = self._open()
            if call is None:
                return
            try:
                if self.last_alert_id is None:
                    # A live-only start: pin its starting point, so that a resumption before the
                    # first alert still has no gap.
                    for key, value in call.initial_metadata() or ():
                        if key == RESUME_METADATA_KEY:
                            self.last_alert_id = int(value)
                for response in call:
                    attempt = 0
                    alert = response.alert
                    if response.change in _CHANGES:
                        if self._changes:
                            yield alert
                        continue
                    if self.last_alert_id is not None and alert.alert_id <= self.last_alert_id:
                        continue
                    self.last_alert_id = alert.alert_id
                    yield alert
            except grpc.RpcError as err:
                if self._closed.is_set():
                    return
                if err.code() not in RESUMABLE_CODES:
                    raise
                log.info("watch_alerts: %s (%s); resuming", err.code().name, err.details())
                # Normally we know where we are; the server's resume point covers a stream lost
                # before its initial metadata arrived.
                if self.last_alert_id is None:
                    self.last_alert_id = resume_point(err)
                asked = retry_delay(err)
            else:
                asked = None
            if self._closed.is_set():
                return
            delay = max(backoff_delay(attempt, cap=self._max_backoff), asked or 0.0)
            attempt += 1
            self.reconnects += 1
            if self._closed.wait(delay):
                return
