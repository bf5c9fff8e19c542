"""The typed client (pkg/slawatch) against real servers: ingest retries, paging, and watches that
resume on their own across restarts and slow-consumer ends."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from internal.config.tokens import hash_token
from internal.rpc.alert_stream import StreamOptions
from internal.rpc.server import start_server
from slawatch import AlertWatch, SlawatchClient
from slawatch.v1 import ticket_service_pb2 as pb
from support.alerts import Shape, breach_by_evaluation, stored_ids, write_alerts
from support.configs import config_text, write_config
from support.env import make_settings
from support.events import event, ts
from support.servers import Servers, wait_for


@pytest.fixture
def servers(database_url: str, config_path: Path) -> Iterator[Servers]:
    s = Servers(database_url, config_path)
    yield s
    s.stop()


class Collector:
    """Iterates a watch in a thread, keeping every alert id, until the watch is closed."""

    def __init__(self, watch: AlertWatch) -> None:
        self.watch = watch
        self.ids: list[int] = []
        self.error: BaseException | None = None
        self.gate = threading.Event()  # cleared: the consumer stops reading after its next alert
        self.gate.set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for alert in self.watch:
                self.ids.append(alert.alert_id)
                self.gate.wait()
        except BaseException as err:
            self.error = err

    def wait_for_id(self, alert_id: int) -> None:
        wait_for(
            lambda: self.error is not None or (self.ids and self.ids[-1] >= alert_id),
            timeout=90,
            what=f"alert {alert_id} received",
        )
        assert self.error is None, self.error

    def close(self) -> None:
        self.watch.close()
        self.gate.set()
        self._thread.join(30)
        assert not self._thread.is_alive()


class RetryLogged(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retry" in record.getMessage():
            self.seen.set()


def test_ingest_retries_unavailable_until_the_server_is_up(servers: Servers) -> None:
    """A server that is not up yet answers UNAVAILABLE; ingest retries with backoff within its
    deadline and succeeds once the server starts."""
    handler = RetryLogged()
    logger = logging.getLogger("slawatch.client")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    results: list[list[pb.IngestResult]] = []
    try:
        with SlawatchClient(servers.target) as client:
            worker = threading.Thread(
                target=lambda: results.append(
                    client.ingest([event("RETRY-1")], retries=100, deadline=90)
                )
            )
            worker.start()
            assert handler.seen.wait(60), "the first attempt should have failed and been retried"
            servers.start()
            worker.join(90)
    finally:
        logger.removeHandler(handler)
    assert [r.outcome for r in results[0]] == [pb.INGEST_OUTCOME_CREATED]


def test_ingest_gives_up_at_its_deadline(servers: Servers) -> None:
    """With nothing listening, ingest stops retrying when its deadline is spent."""
    with SlawatchClient(servers.target) as client, pytest.raises(grpc.RpcError) as info:
        client.ingest([event("NOPE")], retries=1000, deadline=2)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_ingest_does_not_retry_invalid_batches(servers: Servers) -> None:
    """INVALID_ARGUMENT is raised at once: retrying cannot fix it."""
    servers.start()
    with SlawatchClient(servers.target) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.ingest([event("BAD", priority="nope")])
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert client.ingest([event("GOOD")])[0].outcome == pb.INGEST_OUTCOME_CREATED


def test_get_ticket_and_every_dashboard_page(servers: Servers) -> None:
    """get_ticket returns the stored ticket; iter_dashboard walks all pages, most urgent first,
    each ticket once, with the filters applied."""
    servers.start()
    now = datetime.now(UTC).replace(microsecond=0)
    with SlawatchClient(servers.target) as client:
        client.ingest(
            [
                event(
                    f"D-{i:03d}",
                    created=now - timedelta(minutes=i),
                    tier="silver" if i % 5 else "gold",
                )
                for i in range(130)
            ]
        )
        assert client.get_ticket("D-007").ticket.customer_tier == "silver"
        with pytest.raises(grpc.RpcError) as info:
            client.get_ticket("missing")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        tickets = list(client.iter_dashboard(page_size=50))
        assert len(tickets) == 130 == len({t.ticket_id for t in tickets})
        gold = [t.ticket_id for t in client.iter_dashboard(page_size=7, customer_tiers=["gold"])]
        assert sorted(gold) == [f"D-{i:03d}" for i in range(0, 130, 5)]


def test_the_metrics_filters_of_the_dashboard_and_the_watch(
    database_url: str, tmp_path: Path
) -> None:
    """`metrics=` reaches the server from get_dashboard, iter_dashboard and watch_alerts: under
    a next_reply config the dashboard keeps the tickets with a next_reply clock (every page of
    them), and a resolution watch yields the resolution alerts only."""
    path = tmp_path / "metrics.yaml"
    path.write_text(
        config_text(
            metrics={
                "next_reply": {
                    "start": ["customer_reply"],
                    "stop": ["agent_reply"],
                    "cycles": "each_start",
                },
                "resolution": {"start": ["created"], "stop": ["status:resolved"]},
            },
            policies={"high": {"gold": {"next_reply": "1h", "resolution": "8h"}}},
        )
    )
    servers = Servers(database_url, path)
    servers.start()
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        with SlawatchClient(servers.target) as client:
            waiting = [f"W-{i}" for i in range(5)]
            client.ingest(
                [
                    pb.TicketEvent(
                        ticket_id=ticket_id,
                        priority="high",
                        customer_tier="gold",
                        activity=pb.TICKET_ACTIVITY_CUSTOMER_REPLY,
                        created_at=ts(now - timedelta(minutes=i)),
                        updated_at=ts(now - timedelta(minutes=i)),
                    )
                    for i, ticket_id in enumerate(waiting)
                ]
                + [event(f"Q-{i}", created=now - timedelta(minutes=i)) for i in range(4)]
            )
            found = [
                t.ticket_id for t in client.iter_dashboard(page_size=2, metrics=["next_reply"])
            ]
            assert sorted(found) == waiting and len(found) == len(set(found))
            page = client.get_dashboard(metrics=["next_reply"])
            assert sorted(t.ticket_id for t in page.tickets) == waiting
            assert len(list(client.iter_dashboard(metrics=["resolution"]))) == 9
    finally:
        servers.stop()
    servers = Servers(database_url, tmp_path / "default.yaml")
    write_config(servers.config_path)
    running = servers.start()
    try:
        with SlawatchClient(servers.target) as client:
            config = running.config.current
            breach_by_evaluation(client.stub, database_url, config, "OLD", minutes_ago=241)
            breach_by_evaluation(client.stub, database_url, config, "NEW", minutes_ago=20)
            watch = client.watch_alerts(after_alert_id=0, metrics=["resolution"])
            first = next(watch)
            assert (first.metric, first.ticket_id) == ("resolution", "OLD")
            breach_by_evaluation(client.stub, database_url, config, "NEW-2", minutes_ago=20)
            breach_by_evaluation(client.stub, database_url, config, "OLD-2", minutes_ago=241)
            second = next(watch)
            assert (second.metric, second.ticket_id) == ("resolution", "OLD-2")
            watch.close()
    finally:
        servers.stop()


def test_watch_resumes_across_server_restarts_without_gap_or_repeat(
    servers: Servers, database_url: str
) -> None:
    """A live-only watch survives two restarts of the server: one before its first alert (it
    resumes from the starting point the server announced) and one mid-stream; alerts written
    while the server was down arrive after it returns, each once, in order."""
    servers.start()
    with SlawatchClient(servers.target) as client:
        watch = client.watch_alerts(max_backoff=0.5)
        collector = Collector(watch)
        wait_for(lambda: watch.last_alert_id is not None, what="stream started")

        servers.stop()
        expected = write_alerts(database_url, 5)  # nobody is serving
        servers.start()
        collector.wait_for_id(expected[-1])

        expected += write_alerts(database_url, 5)
        collector.wait_for_id(expected[-1])
        servers.stop()
        expected += write_alerts(database_url, 5)
        servers.start()
        expected += write_alerts(database_url, 5)
        collector.wait_for_id(expected[-1])
        collector.close()
    assert collector.ids == expected
    assert watch.reconnects >= 2


def test_watch_resumes_after_being_ended_for_slowness(servers: Servers, database_url: str) -> None:
    """A consumer that stalls is ended by the server with RESOURCE_EXHAUSTED; the watch resumes
    from its last alert and the consumer still sees every alert once."""
    running = servers.start(StreamOptions(queue_size=100))
    first = write_alerts(database_url, 1)
    with SlawatchClient(servers.target, options=[("grpc.http2.bdp_probe", 0)]) as client:
        collector = Collector(client.watch_alerts(after_alert_id=first[0] - 1, max_backoff=0.5))
        collector.gate.clear()
        collector.wait_for_id(first[0])
        written = list(first)
        while running.hub.overflows == 0:
            written += write_alerts(database_url, 20)
            assert len(written) < 100_000, "the stalled watch was never ended"
        collector.gate.set()
        written += write_alerts(database_url, 5)
        collector.wait_for_id(written[-1])
        collector.close()
    assert collector.ids == written == stored_ids(database_url)
    assert collector.watch.reconnects >= 1


def test_watch_raises_what_retrying_cannot_fix(servers: Servers) -> None:
    """A bad request is raised from the watch, not retried forever."""
    servers.start()
    with SlawatchClient(servers.target) as client:
        watch = client.watch_alerts(kinds=[pb.ALERT_KIND_UNSPECIFIED])
        with pytest.raises(grpc.RpcError) as info:
            next(watch)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_close_ends_a_waiting_watch(servers: Servers) -> None:
    """close() from another thread ends an iteration blocked waiting for the next alert."""
    servers.start()
    with SlawatchClient(servers.target) as client:
        watch = client.watch_alerts()
        collector = Collector(watch)
        wait_for(lambda: watch.last_alert_id is not None, what="stream started")
        collector.close()
    assert collector.error is None and collector.ids == []


def test_token_is_sent_and_auth_errors_are_not_retried(
    database_url: str, config_path: Path
) -> None:
    """token= authenticates every call (the stream included); a watch without a valid token
    raises UNAUTHENTICATED instead of reconnecting for ever."""
    token = "client-secret-token"
    tokens = [
        {
            "name": "svc",
            "sha256": hash_token(token),
            "tenant": "acme",
            "roles": ["ingest", "read", "watch"],
        }
    ]
    running = start_server(
        make_settings(
            database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=json.dumps(tokens)
        ),
        bind="127.0.0.1",
    )
    target = f"127.0.0.1:{running.port}"
    try:
        with SlawatchClient(target, token=token) as client:
            assert client.ingest([event("AUTH-1")])[0].outcome == pb.INGEST_OUTCOME_CREATED
            assert client.get_ticket("AUTH-1").ticket.ticket_id == "AUTH-1"
            watch = client.watch_alerts(after_alert_id=0)
            ids = write_alerts(database_url, 2, Shape(tenant="acme"))
            assert [next(watch).alert_id for _ in ids] == ids
            watch.close()
        with SlawatchClient(target, token="wrong") as client:
            with pytest.raises(grpc.RpcError) as info:
                next(client.watch_alerts())
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        running.stop(grace=1)


def test_ingest_waits_out_a_rate_limit_as_the_server_asks(
    database_url: str, config_path: Path
) -> None:
    """A rate-limited ingest (RESOURCE_EXHAUSTED with RetryInfo) is retried after the delay the
    server names, not given up nor hammered: one request per second, burst 1, so the second of
    two back-to-back batches is stored about a second later."""
    token = "rate-limited-token"
    tokens = [{"name": "svc", "sha256": hash_token(token), "tenant": "acme", "roles": ["ingest"]}]
    running = start_server(
        make_settings(
            database_url,
            config_path,
            SLAWATCH_INSECURE_DEV="",
            SLAWATCH_TOKENS=json.dumps(tokens),
            SLAWATCH_RATE_LIMIT_PER_SECOND="1",
            SLAWATCH_RATE_LIMIT_BURST="1",
        ),
        bind="127.0.0.1",
    )
    try:
        with SlawatchClient(f"127.0.0.1:{running.port}", token=token) as client:
            assert client.ingest([event("RATE-1")])[0].outcome == pb.INGEST_OUTCOME_CREATED
            started = time.monotonic()
            assert client.ingest([event("RATE-2")])[0].outcome == pb.INGEST_OUTCOME_CREATED
            # The bucket refills in up to 1 s; backoff alone (0.1 s first) would be refused.
            assert time.monotonic() - started >= 0.5
    finally:
        running.stop(grace=1)
