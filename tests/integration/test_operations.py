"""Operations end to end, with real processes: the JSON logs and one correlation id from an
IngestTickets call to the Slack message it caused, the metrics after known work, worker and
scheduler health following the database, and SIGTERM during an ingest and an evaluation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from internal.config.sla_config import load_config
from internal.embedded.ports import free_port
from internal.embedded.postgres import EmbeddedPostgres
from internal.store.db import make_pool
from internal.store.evaluate_repo import ALERT_WRITE_LOCK
from internal.store.migrate import migrate
from internal.worker.evaluation import run_evaluation
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import write_config
from support.env import DATA, ROOT
from support.events import event
from support.fake_slack import FakeSlack
from support.ops import (
    engine_env,
    get_json,
    has,
    json_lines,
    scrape,
    scrape_when_up,
    server_process,
    value,
)
from support.workers import Processes, poll, rows

INGEST = "slawatch.v1.TicketService/IngestTickets"
GET_TICKET = "slawatch.v1.TicketService/GetTicket"
WATCH = "slawatch.v1.TicketService/WatchAlerts"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def past(ticket_id: str, minutes_ago: float = 20) -> pb.TicketEvent:
    """An open high/gold ticket created `minutes_ago`: past its 15-minute response target."""
    return event(ticket_id, created=datetime.now(UTC) - timedelta(minutes=minutes_ago))


def sent_count(database_url: str) -> int:
    return int(rows(database_url, "SELECT count(*) FROM notifications WHERE state='sent'")[0][0])  # type: ignore[call-overload]


def test_one_correlation_id_from_ingest_to_slack_in_json_logs_and_metrics(
    database_url: str, redis_url: str, config_path: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """The x-request-id of an IngestTickets call comes back to the caller, is on the server's RPC
    log line, on the worker's lines about the alert it caused and its delivery, and in the Slack
    message; a call without one gets a fresh id. Every log line of every process is a JSON object
    with the common fields. The metrics endpoints count exactly the work done."""
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    worker_port, scheduler_port = free_port(), free_port()
    env = engine_env(
        database_url,
        redis_url,
        config_path,
        slack,
        SLAWATCH_WORKER_METRICS_PORT=str(worker_port),
        SLAWATCH_SCHEDULER_METRICS_PORT=str(scheduler_port),
    )
    procs = Processes(env, tmp_path)
    try:
        with (
            server_process(database_url, config_path, tmp_path) as server,
            grpc.insecure_channel(server.target) as channel,
        ):
            stub = pb_grpc.TicketServiceStub(channel)
            procs.worker()
            procs.scheduler()
            _, call = stub.IngestTickets.with_call(
                pb.IngestTicketsRequest(events=[past("TRACE-1")]),
                metadata=[("x-request-id", request_id)],
                timeout=30,
            )
            assert dict(call.trailing_metadata())["x-request-id"] == request_id

            with pytest.raises(grpc.RpcError) as missing:
                stub.GetTicket(pb.GetTicketRequest(ticket_id="NO-SUCH"), timeout=30)
            generated = dict(missing.value.trailing_metadata())["x-request-id"]  # type: ignore[attr-defined]
            assert generated and generated != request_id

            (message,) = slack.wait_for(1, "/hooks/lead", timeout=60)
            context = message.body["blocks"][-1]["elements"][0]["text"]
            assert f"request {request_id}" in context
            poll(lambda: sent_count(database_url) == 1, what="notification marked sent")

            def streams_open() -> float:
                return value(scrape(server.metrics_port), "slawatch_rpc_streams_open", method=WATCH)

            stream = stub.WatchAlerts(pb.WatchAlertsRequest())
            poll(lambda: streams_open() == 1, what="the open stream counted")
            stream.cancel()
            poll(lambda: streams_open() == 0, what="the ended stream no longer counted")
            server_metrics = scrape(server.metrics_port)

            def delivery_counted() -> bool:
                samples = scrape_when_up(worker_port)
                return (
                    bool(samples)
                    and value(samples, "slawatch_notifications_total", result="sent") == 1
                )

            poll(delivery_counted, what="worker metrics count the delivery")
            worker_metrics = scrape(worker_port)
            scheduler_metrics = scrape(scheduler_port)
            server_log = server.log_text()
    finally:
        procs.stop_all()

    version = load_config(config_path).version
    # Server: one ingest, one event created, one GetTicket refused with NOT_FOUND.
    ok = {"method": INGEST, "code": "OK"}
    assert value(server_metrics, "slawatch_rpc_requests_total", **ok) == 1
    assert value(server_metrics, "slawatch_rpc_duration_seconds_count", **ok) == 1
    assert (
        value(server_metrics, "slawatch_rpc_requests_total", method=GET_TICKET, code="NOT_FOUND")
        == 1
    )
    assert value(server_metrics, "slawatch_events_ingested_total", outcome="created") == 1
    assert value(server_metrics, "slawatch_events_ingested_total", outcome="duplicate") == 0
    assert value(server_metrics, "slawatch_policy_version_info", version=version) == 1
    assert value(server_metrics, "slawatch_db_pool_max_connections", pool="server") > 0
    assert value(server_metrics, "slawatch_rpc_requests_total", method=WATCH) == 1
    # Worker (every worker process added up): one due clock, one level-3 breach, one delivery.
    assert value(worker_metrics, "slawatch_evaluation_clocks_total") == 1
    assert value(worker_metrics, "slawatch_evaluation_duration_seconds_count") >= 1
    assert value(worker_metrics, "slawatch_alerts_total", kind="breach", level="3") == 1
    assert value(worker_metrics, "slawatch_alerts_total") == 1
    assert value(worker_metrics, "slawatch_notification_attempts_count", result="sent") == 1
    assert value(worker_metrics, "slawatch_notification_attempts_sum", result="sent") == 1
    assert value(worker_metrics, "slawatch_slack_send_duration_seconds_count") == 1
    assert value(worker_metrics, "slawatch_outbox_pending") == 0
    assert value(worker_metrics, "slawatch_policy_version_info", version=version) == 1
    assert value(worker_metrics, "slawatch_db_pool_max_connections", pool="worker") > 0
    assert has(worker_metrics, "slawatch_queue_ready_messages")
    assert value(scheduler_metrics, "slawatch_scheduler_ticks_total", result="enqueued") >= 1

    # Logs: every line of every process is JSON; the one id runs through all of them.
    server_lines = json_lines(server_log)
    worker_lines = json_lines(
        "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
    )
    json_lines("\n".join(p.read_text(errors="replace") for p in tmp_path.glob("scheduler-*.log")))
    (rpc_line,) = [line for line in server_lines if line.get("correlation_id") == request_id]
    assert rpc_line["rpc"] == INGEST
    assert rpc_line["status"] == "OK"
    assert isinstance(rpc_line["latency_ms"], int | float)
    assert rpc_line["level"] == "INFO"
    assert any(
        line.get("correlation_id") == generated and line.get("status") == "NOT_FOUND"
        for line in server_lines
    )
    traced = [line for line in worker_lines if line.get("correlation_id") == request_id]
    alert_id = int(context.split("alert ")[1].split(" ")[0])
    alert_lines = [line for line in traced if line["message"].startswith("alert ")]
    sent_lines = [line for line in traced if "sent to lead" in line["message"]]
    assert len(alert_lines) == 1 and len(sent_lines) == 1, traced
    for line in (*alert_lines, *sent_lines):
        assert line["alert_id"] == alert_id
        assert line["ticket_id"] == "TRACE-1"


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL this test may stop and start: always embedded, never the shared one."""
    server = EmbeddedPostgres(DATA / f"test-ops-pg-{os.getpid()}-{time.monotonic_ns()}").start()
    yield server
    server.destroy()


def test_worker_and_scheduler_readiness_follow_the_database(
    own_postgres: EmbeddedPostgres, redis_url: str, config_path: Path, tmp_path: Path
) -> None:
    """/readyz answers 503 naming the database while PostgreSQL is down and 200 again when it is
    back, with no restart; /livez stays 200 throughout (restarting would not help)."""
    migrate(own_postgres.url)
    worker_port, scheduler_port = free_port(), free_port()
    with FakeSlack() as slack:
        env = engine_env(
            own_postgres.url,
            redis_url,
            config_path,
            slack,
            SLAWATCH_WORKER_METRICS_PORT=str(worker_port),
            SLAWATCH_SCHEDULER_METRICS_PORT=str(scheduler_port),
        )
        procs = Processes(env, tmp_path)
        try:
            procs.worker()
            procs.scheduler()
            urls = [f"http://127.0.0.1:{p}" for p in (worker_port, scheduler_port)]

            def all_ready(expected: int) -> bool:
                return all(get_json(f"{u}/readyz")[0] == expected for u in urls)

            poll(lambda: all_ready(200), what="worker and scheduler ready")
            own_postgres.stop()
            poll(lambda: all_ready(503), what="not ready while the database is down")
            for url in urls:
                _, body = get_json(f"{url}/readyz")
                assert body["checks"] == {"database": "failing", "redis": "ok"}, body
                assert get_json(f"{url}/livez")[0] == 200
            own_postgres.start()
            poll(lambda: all_ready(200), what="ready again once the database is back")
        except BaseException:
            print(procs.logs())
            raise
        finally:
            procs.stop_all()


def waiting_on_locks(database_url: str) -> int:
    """Backends of slawatch processes waiting for a lock right now."""
    return int(
        rows(
            database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'slawatch' AND wait_event_type = 'Lock'",
        )[0][0]  # type: ignore[call-overload]
    )


def slawatch_backends(database_url: str) -> int:
    return int(
        rows(
            database_url,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'slawatch'",
        )[0][0]  # type: ignore[call-overload]
    )


def assert_consistent(database_url: str) -> None:
    """Whatever was interrupted: every ticket has both clocks and its newest stored event;
    every alert has its notification rows; levels agree with the alerts."""
    assert (
        rows(
            database_url,
            "SELECT t.ticket_id FROM tickets t LEFT JOIN sla_clocks c USING (tenant_id, ticket_id)"
            " GROUP BY t.ticket_id HAVING count(c.clock) <> 2",
        )
        == []
    )
    assert (
        rows(
            database_url,
            "SELECT t.ticket_id FROM tickets t JOIN ticket_events e USING (tenant_id, ticket_id)"
            " GROUP BY t.ticket_id, t.updated_at HAVING max(e.updated_at) <> t.updated_at",
        )
        == []
    )
    assert (
        rows(
            database_url,
            "SELECT a.alert_id FROM alerts a LEFT JOIN notifications n USING (alert_id)"
            " WHERE n.notification_id IS NULL",
        )
        == []
    )
    assert (
        rows(
            database_url,
            "SELECT t.ticket_id FROM tickets t LEFT JOIN alerts a USING (tenant_id, ticket_id)"
            " GROUP BY t.ticket_id, t.escalation_level"
            " HAVING coalesce(max(a.escalation_level), 0) <> t.escalation_level",
        )
        == []
    )
    assert (
        rows(
            database_url,
            "SELECT c.ticket_id, c.clock FROM sla_clocks c LEFT JOIN alerts a"
            " USING (tenant_id, ticket_id, clock)"
            " GROUP BY c.ticket_id, c.clock, c.fired_level"
            " HAVING coalesce(max(a.escalation_level), 0) <> c.fired_level",
        )
        == []
    )


def batch(prefix: str, held: str, base: datetime) -> pb.IngestTicketsRequest:
    """300 new tickets, then an update of the ticket the test holds locked (so the batch waits
    inside its transaction)."""
    events = [event(f"{prefix}-{i}", created=base) for i in range(300)]
    events.append(
        event(held, pb.TICKET_STATUS_IN_PROGRESS, created=base, updated=base + timedelta(minutes=1))
    )
    return pb.IngestTicketsRequest(events=events)


def test_sigterm_during_batch_ingests_finishes_one_and_rolls_the_other_back(
    database_url: str, config_path: Path, tmp_path: Path
) -> None:
    """SIGTERM while two batches are inside their transactions: the one that can finish within
    the grace period is stored whole and answered OK; the one still blocked after it is
    abandoned when the process exits, and not one of its events is stored."""
    base = datetime.now(UTC) - timedelta(minutes=5)
    with server_process(
        database_url, config_path, tmp_path, SLAWATCH_SHUTDOWN_GRACE_SECONDS="2"
    ) as server:
        with grpc.insecure_channel(server.target) as channel:
            pb_grpc.TicketServiceStub(channel).IngestTickets(
                pb.IngestTicketsRequest(
                    events=[event("HOLD-A", created=base), event("HOLD-B", created=base)]
                ),
                timeout=30,
            )
        locks = {name: psycopg.connect(database_url) for name in ("A", "B")}
        for name, conn in locks.items():
            conn.execute("SELECT 1 FROM tickets WHERE ticket_id = %s FOR UPDATE", (f"HOLD-{name}",))
        answers: dict[str, object] = {}

        def ingest(name: str) -> None:
            with grpc.insecure_channel(server.target) as ch:
                try:
                    pb_grpc.TicketServiceStub(ch).IngestTickets(
                        batch(f"SIG{name}", f"HOLD-{name}", base), timeout=60
                    )
                    answers[name] = grpc.StatusCode.OK
                except grpc.RpcError as err:
                    answers[name] = err.code()  # type: ignore[attr-defined]

        callers = [threading.Thread(target=ingest, args=(n,)) for n in locks]
        try:
            for t in callers:
                t.start()
            poll(lambda: waiting_on_locks(database_url) == 2, what="both batches in flight")
            server.proc.send_signal(signal.SIGTERM)
            with grpc.insecure_channel(server.target) as channel:
                health = health_pb2_grpc.HealthStub(channel)

                def refusing() -> bool:
                    try:
                        status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    except grpc.RpcError:
                        return True
                    return status == health_pb2.HealthCheckResponse.NOT_SERVING

                poll(refusing, what="server shutting down")
            locks["A"].rollback()  # A may go on: it finishes within the grace period
            assert server.proc.wait(60) == 1  # B was still in flight at the deadline
        finally:
            locks["A"].close()
            locks["B"].rollback()
            locks["B"].close()
            for t in callers:
                t.join(60)
        log_text = server.log_text()

    assert answers["A"] == grpc.StatusCode.OK
    assert answers["B"] != grpc.StatusCode.OK
    poll(lambda: slawatch_backends(database_url) == 0, what="the abandoned transaction ended")
    stored = dict(
        rows(
            database_url,
            "SELECT left(ticket_id, 4), count(*) FROM ticket_events GROUP BY 1",
        )
    )
    assert stored == {"SIGA": 300, "HOLD": 3}  # HOLD-A twice (created, updated), HOLD-B once
    assert rows(database_url, "SELECT status FROM tickets WHERE ticket_id = 'HOLD-B'") == [
        ("open",)
    ]
    assert_consistent(database_url)
    assert "exiting (open transactions roll back)" in log_text
    json_lines(log_text)


def test_sigterm_during_an_evaluation_leaves_no_alert_half_written(
    stub: pb_grpc.TicketServiceStub,
    database_url: str,
    redis_url: str,
    config_path: Path,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """A worker stopped while its evaluation waits inside the transaction (past the shutdown
    timeout) exits; nothing of that evaluation is stored, the clocks stay due, and the next
    worker raises every alert once, each with its notification, each delivered once."""
    stub.IngestTickets(pb.IngestTicketsRequest(events=[past(f"EVAL-{i}") for i in range(5)]))
    env = engine_env(
        database_url, redis_url, config_path, slack, SLAWATCH_WORKER_SHUTDOWN_SECONDS="2"
    )
    procs = Processes(env, tmp_path)
    holder = psycopg.connect(database_url, autocommit=True)
    try:
        # Every alert writer takes this lock before its first insert: the evaluation waits.
        holder.execute("SELECT pg_advisory_lock(%s)", (ALERT_WRITE_LOCK,))
        first = procs.worker()
        procs.scheduler()
        poll(lambda: waiting_on_locks(database_url) == 1, what="evaluation in flight")
        first.send_signal(signal.SIGTERM)  # the main process only, as Kubernetes does
        assert first.wait(60) == 0
        assert rows(database_url, "SELECT count(*) FROM alerts") == [(0,)]
        holder.execute("SELECT pg_advisory_unlock(%s)", (ALERT_WRITE_LOCK,))
        poll(
            lambda: waiting_on_locks(database_url) == 0,
            what="the abandoned evaluation ended",
        )
        assert rows(database_url, "SELECT count(*) FROM alerts") == [(0,)]
        assert rows(database_url, "SELECT count(*) FROM sla_clocks WHERE fired_level > 0") == [(0,)]

        procs.worker()
        poll(lambda: sent_count(database_url) == 5, what="every alert delivered after restart")
    except BaseException:
        print(procs.logs())
        raise
    finally:
        holder.close()
        procs.stop_all()
    assert rows(database_url, "SELECT count(*) FROM alerts") == [(5,)]
    assert len(slack.requests("/hooks/lead")) == 5
    assert_consistent(database_url)


def test_an_evaluation_asked_to_stop_ends_after_the_batch_in_hand(
    stub: pb_grpc.TicketServiceStub, database_url: str, config_path: Path
) -> None:
    """What the worker does on SIGTERM between batches: the run commits the batch it holds and
    returns; the remaining due clocks are left, untouched, for the next run."""
    stub.IngestTickets(pb.IngestTicketsRequest(events=[past(f"STOP-{i}") for i in range(5)]))
    config = load_config(config_path)
    stop = threading.Event()
    stop.set()
    pool = make_pool(database_url)
    try:
        first = run_evaluation(pool, config, lambda: datetime.now(UTC), batch_size=2, stop=stop)
        assert first.clocks == 2 and len(first.alerts) == 2
        assert_consistent(database_url)
        rest = run_evaluation(pool, config, lambda: datetime.now(UTC), batch_size=2)
    finally:
        pool.close()
    assert rest.clocks == 3 and len(rest.alerts) == 3
    assert set(first.correlations) | set(rest.correlations) == {
        int(r[0])  # type: ignore[call-overload]
        for r in rows(database_url, "SELECT notification_id FROM notifications")
    }
    assert_consistent(database_url)


def test_config_reloads_are_counted_and_the_policy_version_follows(
    database_url: str, config_path: Path, tmp_path: Path
) -> None:
    """A valid save (by rename, as editors do) is counted as applied and moves the version
    gauge to the new policy; a broken save is counted as rejected and the version stays."""
    old = load_config(config_path).version
    with server_process(database_url, config_path, tmp_path) as server:

        def metric(name: str, **labels: str) -> float:
            return value(scrape(server.metrics_port), name, **labels)

        assert metric("slawatch_policy_version_info", version=old) == 1
        staged = config_path.with_name("staged.yaml")
        write_config(staged, pause_statuses=["on_hold", "in_progress"])
        new = load_config(staged).version
        staged.replace(config_path)
        poll(
            lambda: metric("slawatch_config_reloads_total", result="applied") == 1,
            what="the reload counted",
        )
        assert metric("slawatch_policy_version_info", version=new) == 1
        assert metric("slawatch_policy_version_info", version=old) == 0

        config_path.write_text("policies: {high: {gold: {response: soon}}}\n")
        poll(
            lambda: metric("slawatch_config_reloads_total", result="rejected") == 1,
            what="the refusal counted",
        )
        assert metric("slawatch_policy_version_info", version=new) == 1


@pytest.mark.parametrize("process", ["scheduler", "worker"])
def test_a_malformed_variable_stops_the_scheduler_and_worker_with_one_line_and_exit_2(
    process: str, database_url: str, redis_url: str, config_path: Path, tmp_path: Path
) -> None:
    """The friendly refusal is reached: no traceback from a module reading the environment on
    import, just the variable named on one line, and exit code 2."""
    with FakeSlack() as slack:
        env = engine_env(
            database_url, redis_url, config_path, slack, SLAWATCH_EVAL_INTERVAL_SECONDS="abc"
        )
    done = subprocess.run(
        [sys.executable, str(ROOT / f"cmd/slawatch-{process}/main.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"slawatch-{process}: SLAWATCH_EVAL_INTERVAL_SECONDS: expected a number, got 'abc'"
    ]


def test_importing_the_actors_module_reads_no_environment_and_declares_no_broker() -> None:
    """internal/ has no import-time side effects: with a malformed variable the module imports,
    and Dramatiq's global broker is still unset afterwards."""
    probe = (
        "import dramatiq.broker as b; import internal.worker.actors as a;"
        " assert b.global_broker is None, b.global_broker; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "SLAWATCH_EVAL_INTERVAL_SECONDS": "abc", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


RUNTIME_PROBE = """
import os, sys, threading, time
from internal.config.settings import Settings
from internal.worker import actors

actors.declare(Settings.from_env())
start = threading.Barrier(16)
got = []

def first_message():
    start.wait()
    got.append(actors.runtime())

threads = [threading.Thread(target=first_message) for _ in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
pool = got[0].pool
pool.wait(timeout=10)
time.sleep(1.0)  # let every pool that was made open its connections
with pool.connection() as conn:
    (connections,) = conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'slawatch'"
    ).fetchone()
print(len({id(r) for r in got}), connections, flush=True)
os._exit(0)
"""


def test_concurrent_first_messages_build_the_worker_runtime_once(
    database_url: str, redis_url: str, config_path: Path
) -> None:
    """16 worker threads taking their first message at once share one runtime: one pool (at
    most its 8 connections to PostgreSQL), not one per thread that missed the cache."""
    with FakeSlack() as slack:
        env = engine_env(database_url, redis_url, config_path, slack)
    done = subprocess.run(
        [sys.executable, "-c", RUNTIME_PROBE],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    runtimes, connections = map(int, done.stdout.split())
    assert runtimes == 1, done.stdout
    assert 1 <= connections <= 8, done.stdout


def test_evaluations_during_a_database_outage_are_dropped_not_dead_lettered(
    redis_url: str, config_path: Path, tmp_path: Path
) -> None:
    """With PostgreSQL unreachable, each tick's evaluation (and sweep) fails on the pool and
    ends with one warning line, no actor traceback; nothing goes to the dead-letter queue (the
    clocks stay due, so the next tick redoes the work once the database is back)."""
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with FakeSlack() as slack:
        procs = Processes(engine_env(down, redis_url, config_path, slack), tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        worker = procs.worker(threads=2)
        procs.scheduler()
        log = tmp_path / "worker-0.log"
        poll(
            lambda: (
                "Failed to process message" in log.read_text(errors="replace")
                or "evaluate dropped" in log.read_text(errors="replace")
                or client.zcard("dramatiq:evaluate.XQ") > 0
            ),
            timeout=90,
            what="an evaluation tried against the database that is down",
        )
        time.sleep(3)  # a few more ticks
        assert worker.poll() is None
        assert client.zcard("dramatiq:evaluate.XQ") == 0
        text = log.read_text(errors="replace")
        assert "evaluate dropped: database unavailable" in text
        assert "Failed to process message" not in text  # Dramatiq's traceback of a failed actor
    finally:
        procs.stop_all()
        client.close()
        print(procs.logs())
