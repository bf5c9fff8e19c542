"""WatchAlerts on a real server and database: live delivery, replay joined to the live feed with
no gap and no repeat, filters, slow subscribers, a dropped LISTEN connection, caps and shutdown."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import psycopg
import pytest

from internal.embedded.ports import free_port
from internal.rpc.alert_stream import StreamOptions
from internal.rpc.server import RunningServer
from internal.store import alert_repo
from internal.store.alert_repo import LISTENER_APPLICATION_NAME, AlertFilter
from slawatch import errors
from slawatch.metadata import RESUME_METADATA_KEY
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.alerts import AlertWriter, Shape, breach_by_evaluation, stored_ids, write_alerts
from support.env import ROOT
from support.servers import channel_ready, process, serve, wait_for

STREAM_TIMEOUT = 120  # a broken stream fails the test with DEADLINE_EXCEEDED, never hangs it

if TYPE_CHECKING:
    Call = grpc.CallIterator[pb.WatchAlertsResponse]


def watch(stub: pb_grpc.TicketServiceStub, after: int | None = None, **filters: object) -> Call:
    """Open a stream and wait until the server has set it up (its initial metadata)."""
    request = pb.WatchAlertsRequest(**filters)  # type: ignore[arg-type]
    if after is not None:
        request.after_alert_id = after
    call: Call = stub.WatchAlerts(request, timeout=STREAM_TIMEOUT)
    call.initial_metadata()
    return call


def resume_point(call: Call) -> int:
    return int(dict(call.initial_metadata())[RESUME_METADATA_KEY])


def read_until(call: Call, last_id: int) -> list[int]:
    """Alert ids from the stream until `last_id` has arrived."""
    got: list[int] = []
    for response in call:
        got.append(response.alert.alert_id)
        if response.alert.alert_id >= last_id:
            return got
    raise AssertionError(f"stream ended before alert {last_id}; got {got[-5:]}")


def drain(call: Call, into: list[int]) -> None:
    """Append every alert id of the stream to `into` until the test cancels it."""
    try:
        for response in call:
            into.append(response.alert.alert_id)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.CANCELLED:
            raise


def assert_no_gap_no_repeat(received: list[int], expected: list[int]) -> None:
    assert len(received) == len(set(received)), "an alert was delivered twice"
    assert received == expected


@pytest.fixture
def own_server(database_url: str, config_path: Path) -> Iterator[list[RunningServer]]:
    """Servers a test starts with its own stream options; all stopped at the end."""
    started: list[RunningServer] = []
    yield started
    for running in started:
        running.stop(grace=1)


def test_live_alert_from_ingest_and_evaluation(
    server: RunningServer, stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """An alert written by the evaluator reaches an open live stream with all its fields."""
    call = watch(stub)
    ids = breach_by_evaluation(stub, database_url, server.config.current, "LIVE-1")
    assert ids, "the evaluation must have written an alert"
    alert = next(call).alert
    call.cancel()
    assert alert.alert_id == ids[0]
    assert alert.ticket_id == "LIVE-1"
    assert alert.kind == pb.ALERT_KIND_BREACH
    assert alert.clock == pb.CLOCK_KIND_RESPONSE
    assert alert.escalation_level == 3  # 133% of the response target: the highest step crossed
    assert (alert.priority, alert.customer_tier) == ("high", "gold")
    assert alert.policy_version == server.config.current.version
    assert alert.HasField("due_at") and alert.HasField("created_at")


def test_live_only_starts_now_and_reports_its_resume_point(
    stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """Without after_alert_id, stored alerts are not replayed; the starting point (the tenant's
    latest alert, whatever other tenants wrote since) is sent as initial metadata so that a
    client can resume from it without a gap."""
    old = write_alerts(database_url, 5)
    write_alerts(database_url, 2, Shape(tenant="other"))
    call = watch(stub)
    assert resume_point(call) == old[-1]
    new = write_alerts(database_url, 3)
    assert read_until(call, new[-1]) == new
    call.cancel()


def test_replay_joins_live_feed_with_no_gap_and_no_repeat(
    stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """after_alert_id replays every stored alert after it, then live ones, while alerts keep being
    committed during the replay and the switch to live: each exactly once, in id order."""
    before = write_alerts(database_url, 40)
    after = before[9]
    with AlertWriter(database_url, batch=3) as writer:
        wait_for(lambda: len(writer.written) >= 30, what="writer running")
        call = watch(stub, after)
        assert resume_point(call) == after
        received: list[int] = []
        for response in call:
            received.append(response.alert.alert_id)
            if len(received) >= 200:
                break
        writer.stop()
    final = stored_ids(database_url)[-1]
    received += read_until(call, final)
    call.cancel()
    assert_no_gap_no_repeat(received, stored_ids(database_url, after))


def test_replay_longer_than_the_queue_still_has_no_gap(
    database_url: str, config_path: Path, own_server: list[RunningServer]
) -> None:
    """A replay much longer than the stream's queue, with alerts committed meanwhile: the queue
    overflowing during the replay is repaired from the table, not reported as slowness."""
    running = serve(database_url, config_path, streams=StreamOptions(queue_size=20, replay_page=50))
    own_server.append(running)
    write_alerts(database_url, 1500)
    with (
        grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch,
        AlertWriter(database_url, batch=5) as writer,
    ):
        wait_for(lambda: len(writer.written) >= 100, what="writer running")
        call = watch(pb_grpc.TicketServiceStub(ch), 0)
        received = []
        for response in call:
            received.append(response.alert.alert_id)
            if len(received) >= 300:
                break
        # Still replaying (1,500 were stored first); stopped so that the live part that follows
        # is quiet: a 20-alert queue would rightly overflow under a live writer.
        writer.stop()
        received += read_until(call, stored_ids(database_url)[-1])
        call.cancel()
    assert_no_gap_no_repeat(received, stored_ids(database_url))
    assert running.hub.overflows == 0


def test_filters_apply_to_replay_and_live(
    stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """Kinds, minimum level, priorities and tiers select the same alerts stored and live."""
    shapes = [
        Shape("warning", 1, "high", "gold"),
        Shape("breach", 3, "high", "gold"),  # wanted
        Shape("breach", 4, "low", "gold"),
        Shape("breach", 4, "high", "silver"),  # wanted
        Shape("warning", 2, "high", "silver"),
        Shape("breach", 3, "high", "gold", tenant="other"),  # another tenant: never
    ]
    wanted: list[int] = []
    for shape in shapes:
        ids = write_alerts(database_url, 2, shape)
        if shape in (shapes[1], shapes[3]):
            wanted += ids
    call = watch(
        stub,
        0,
        kinds=[pb.ALERT_KIND_BREACH],
        min_escalation_level=3,
        priorities=["high"],
        customer_tiers=["gold", "silver"],
    )
    assert read_until(call, wanted[-1]) == wanted
    live_wanted: list[int] = []
    for shape in shapes:
        ids = write_alerts(database_url, 2, shape)
        if shape in (shapes[1], shapes[3]):
            live_wanted += ids
    assert read_until(call, live_wanted[-1]) == live_wanted
    call.cancel()


def alert_metrics(database_url: str) -> dict[int, str]:
    """Every stored alert's metric, by id."""
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT alert_id, clock FROM alerts ORDER BY alert_id").fetchall())


def test_the_metrics_filter_applies_to_replay_and_live(
    server: RunningServer, stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """`metrics` selects the alerts of those metrics' clocks, stored and live: a ticket 4 hours
    old at the evaluation has a response and a resolution alert, one 20 minutes old a response
    alert only; a resolution watcher gets the resolution alerts and nothing else."""
    config = server.config.current
    breach_by_evaluation(stub, database_url, config, "M-OLD", minutes_ago=241)
    breach_by_evaluation(stub, database_url, config, "M-NEW", minutes_ago=20)
    stored = alert_metrics(database_url)
    assert sorted(stored.values()) == ["resolution", "response", "response"]
    resolution = watch(stub, 0, metrics=["resolution"])
    response = watch(stub, 0, metrics=["response", "first_reply"])
    wanted = [i for i, m in stored.items() if m == "resolution"]
    assert read_until(resolution, wanted[-1]) == wanted
    wanted_response = [i for i, m in stored.items() if m == "response"]
    assert read_until(response, wanted_response[-1]) == wanted_response
    breach_by_evaluation(stub, database_url, config, "M-LIVE-NEW", minutes_ago=20)
    breach_by_evaluation(stub, database_url, config, "M-LIVE-OLD", minutes_ago=241)
    live = {i: m for i, m in alert_metrics(database_url).items() if i not in stored}
    live_resolution = [i for i, m in live.items() if m == "resolution"]
    assert len(live_resolution) == 1
    got = next(resolution).alert
    assert (got.alert_id, got.metric, got.ticket_id) == (
        live_resolution[0],
        "resolution",
        "M-LIVE-OLD",
    )
    assert got.clock == pb.CLOCK_KIND_RESOLUTION
    live_response = [i for i, m in live.items() if m == "response"]
    assert read_until(response, live_response[-1]) == live_response
    resolution.cancel()
    response.cancel()


def test_the_live_match_and_the_replay_query_agree_on_every_filter(
    server: RunningServer, stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """AlertFilter.matches (live alerts) and AlertFilter.where (the replay) pick the same stored
    alerts for each filter field alone and together, metrics included."""
    config = server.config.current
    breach_by_evaluation(stub, database_url, config, "AG-1", minutes_ago=241)
    breach_by_evaluation(stub, database_url, config, "AG-2", minutes_ago=20)
    write_alerts(database_url, 2, Shape("warning", 1, "low", "silver"))
    write_alerts(database_url, 1, Shape("breach", 3, "high", "gold", tenant="other"))
    filters = [
        AlertFilter("default"),
        AlertFilter("other"),
        AlertFilter("default", metrics=frozenset({"resolution"})),
        AlertFilter("default", metrics=frozenset({"response", "next_reply"})),
        AlertFilter("default", metrics=frozenset({"next_reply"})),
        AlertFilter("default", kinds=frozenset({"breach"}), metrics=frozenset({"response"})),
        AlertFilter("default", min_level=4, metrics=frozenset({"response", "resolution"})),
        AlertFilter("default", priorities=frozenset({"low"}), tiers=frozenset({"silver"})),
        AlertFilter("default", tiers=frozenset({"gold"}), metrics=frozenset({"resolution"})),
    ]
    with psycopg.connect(database_url) as conn:
        every = alert_repo.alerts_after(conn, 0, 1000)
        assert len(every) == 6
        picked = []
        for f in filters:
            replayed = alert_repo.alerts_after(conn, 0, 1000, f)
            assert replayed == [row for row in every if f.matches(row)], f
            picked.append(len(replayed))
    # Each filter field narrows something: the comparison is not between empty lists.
    assert picked == [5, 1, 1, 4, 0, 2, 1, 2, 1]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"after_alert_id": -1}, "after_alert_id"),
        ({"kinds": [pb.ALERT_KIND_UNSPECIFIED]}, "kinds[0]"),
        ({"min_escalation_level": -2}, "min_escalation_level"),
        ({"metrics": ["resolution", ""]}, "metrics[1]"),
        ({"metrics": ["bad\nname"]}, "metrics[0]"),
        ({"metrics": [f"m{i}" for i in range(101)]}, "metrics"),
    ],
)
def test_invalid_requests_are_refused(
    stub: pb_grpc.TicketServiceStub, request_fields: dict[str, object], field: str
) -> None:
    """A bad request is INVALID_ARGUMENT naming the field, before anything is streamed."""
    with pytest.raises(grpc.RpcError) as info:
        next(stub.WatchAlerts(pb.WatchAlertsRequest(**request_fields), timeout=30))  # type: ignore[arg-type]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (info.value.details() or "")


def test_slow_subscriber_is_ended_and_resumes_without_loss(
    database_url: str, config_path: Path, own_server: list[RunningServer]
) -> None:
    """A live stream whose client stops reading is ended with RESOURCE_EXHAUSTED once its queue
    overflows, telling it to resume with after_alert_id; resuming from the last alert received
    gives every alert exactly once. The other streams are not held back by it."""
    running = serve(database_url, config_path, streams=StreamOptions(queue_size=200))
    own_server.append(running)
    target = f"127.0.0.1:{running.port}"
    # No BDP probing: the client's flow-control window stays small, as for a slow reader.
    with (
        grpc.insecure_channel(target, options=[("grpc.http2.bdp_probe", 0)]) as slow_ch,
        grpc.insecure_channel(target) as fast_ch,
    ):
        slow = watch(pb_grpc.TicketServiceStub(slow_ch))
        start = resume_point(slow)
        fast = watch(pb_grpc.TicketServiceStub(fast_ch))
        fast_got: list[int] = []
        reader = threading.Thread(target=drain, args=(fast, fast_got), daemon=True)
        reader.start()
        written: list[int] = []
        while running.hub.overflows == 0:
            written += write_alerts(database_url, 20)
            assert len(written) < 100_000, "the slow stream was never ended"
        written += write_alerts(database_url, 20)
        wait_for(lambda: fast_got[-1:] == written[-1:], what="fast stream caught up")
        assert fast_got == written
        fast.cancel()

        received: list[int] = []
        with pytest.raises(grpc.RpcError) as info:
            for response in slow:
                received.append(response.alert.alert_id)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "after_alert_id=" in (info.value.details() or "")

        resumed = watch(pb_grpc.TicketServiceStub(fast_ch), received[-1] if received else start)
        received += read_until(resumed, written[-1])
        resumed.cancel()
    assert_no_gap_no_repeat(received, written)


def test_slow_subscriber_end_names_its_resume_point(
    database_url: str, config_path: Path, own_server: list[RunningServer]
) -> None:
    """A stream ended for falling behind, whose client reads again soon after, carries ErrorInfo
    STREAM_TOO_SLOW with the resume point `after_alert_id`: never past what the client received,
    and resuming from it (without tracking ids) gives every later alert once."""
    running = serve(database_url, config_path, streams=StreamOptions(queue_size=200))
    own_server.append(running)
    target = f"127.0.0.1:{running.port}"
    with (
        grpc.insecure_channel(target, options=[("grpc.http2.bdp_probe", 0)]) as slow_ch,
        grpc.insecure_channel(target) as ch,
    ):
        slow = watch(pb_grpc.TicketServiceStub(slow_ch))
        written: list[int] = []
        while running.hub.overflows == 0:
            written += write_alerts(database_url, 20)
            assert len(written) < 100_000, "the slow stream was never ended"
        written += write_alerts(database_url, 20)
        received: list[int] = []
        with pytest.raises(grpc.RpcError) as info:
            for response in slow:
                received.append(response.alert.alert_id)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert errors.error_reason(info.value) == errors.STREAM_TOO_SLOW
        resume = errors.resume_point(info.value)
        assert resume is not None and resume <= (received[-1] if received else resume)
        assert received == [i for i in written if i <= (received[-1] if received else 0)]
        resumed = watch(pb_grpc.TicketServiceStub(ch), resume)
        again = read_until(resumed, written[-1])
        resumed.cancel()
    assert again == [i for i in written if i > resume]
    assert set(received) | set(again) == set(written), "an alert was lost"


def test_listen_connection_drop_is_caught_up(
    server: RunningServer, stub: pb_grpc.TicketServiceStub, database_url: str
) -> None:
    """When the LISTEN connection is killed, NOTIFYs sent while it is down are lost; the hub
    reconnects and reads the table from its last id, so the stream misses nothing."""
    call = watch(stub)
    first = write_alerts(database_url, 3)
    assert read_until(call, first[-1]) == first
    with psycopg.connect(database_url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (LISTENER_APPLICATION_NAME,),
        ).fetchall()
    assert killed == [(True,)]
    during = write_alerts(database_url, 5)
    wait_for(lambda: server.hub.reconnects >= 1, what="listener reconnected")
    after = write_alerts(database_url, 5)
    assert_no_gap_no_repeat(read_until(call, after[-1]), during + after)
    call.cancel()


def test_alert_without_notify_is_found_by_the_safety_poll(
    database_url: str, config_path: Path, own_server: list[RunningServer]
) -> None:
    """A NOTIFY that never comes does not lose the alert: the periodic read of the table finds
    it."""
    running = serve(database_url, config_path, streams=StreamOptions(poll_interval=0.5))
    own_server.append(running)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        call = watch(pb_grpc.TicketServiceStub(ch))
        silent = write_alerts(database_url, 4, notify=False)
        assert read_until(call, silent[-1]) == silent
        call.cancel()


def test_streams_beyond_the_cap_are_refused(
    database_url: str, config_path: Path, own_server: list[RunningServer]
) -> None:
    """Past max_streams a new stream gets RESOURCE_EXHAUSTED at once (unary calls still work);
    when a stream ends its slot is free again."""
    running = serve(database_url, config_path, streams=StreamOptions(max_streams=3))
    own_server.append(running)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        stub = pb_grpc.TicketServiceStub(ch)
        calls = [watch(stub) for _ in range(3)]
        with pytest.raises(grpc.RpcError) as info:
            next(stub.WatchAlerts(pb.WatchAlertsRequest(), timeout=30))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetTicket(pb.GetTicketRequest(ticket_id="nope"), timeout=30)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        calls.pop().cancel()
        wait_for(lambda: running.hub.subscriber_count == 2, what="slot released")
        calls.append(watch(stub))
        for call in calls:
            call.cancel()


def test_two_hundred_concurrent_streams_each_get_every_alert(
    database_url: str, config_path: Path, own_server: list[RunningServer]
) -> None:
    """Many open streams on one server process (each holds a server thread): all of them
    receive every alert, in order."""
    streams = 200
    running = serve(database_url, config_path, streams=StreamOptions(max_streams=streams))
    own_server.append(running)
    target = f"127.0.0.1:{running.port}"
    channels = [grpc.insecure_channel(target) for _ in range(4)]
    try:
        calls = [watch(pb_grpc.TicketServiceStub(channels[i % 4])) for i in range(streams)]
        assert running.hub.subscriber_count == streams
        written = write_alerts(database_url, 10) + write_alerts(database_url, 10)
        results: dict[int, list[int]] = {}

        def consume(i: int) -> None:
            results[i] = read_until(calls[i], written[-1])

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(STREAM_TIMEOUT)
        for call in calls:
            call.cancel()
        assert len(results) == streams
        assert all(ids == written for ids in results.values())
    finally:
        for ch in channels:
            ch.close()


def test_stopping_the_server_ends_streams_with_unavailable(
    database_url: str, config_path: Path, own_server: list[RunningServer]
) -> None:
    """A graceful stop ends open streams with UNAVAILABLE (retryable: resume elsewhere) and a
    resume hint, instead of holding the shutdown for the grace period."""
    running = serve(database_url, config_path)
    own_server.append(running)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        call = watch(pb_grpc.TicketServiceStub(ch))
        ids = write_alerts(database_url, 2)
        assert read_until(call, ids[-1]) == ids
        running.stop(grace=30)
        with pytest.raises(grpc.RpcError) as info:
            next(call)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # The hint is the last alert the server finished sending: never past what the client has.
    hint = re.search(r"after_alert_id=(\d+)", info.value.details() or "")
    assert hint is not None and int(hint.group(1)) <= ids[-1]
    # The same resume point, machine-readable: ErrorInfo SERVER_SHUTTING_DOWN.
    assert errors.error_reason(info.value) == errors.SERVER_SHUTTING_DOWN
    assert errors.resume_point(info.value) == int(hint.group(1))


def test_sigterm_ends_streams_with_unavailable(database_url: str, config_path: Path) -> None:
    """The server process on SIGTERM: open streams end with UNAVAILABLE and the process exits 0."""
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "SLA_CONFIG_PATH": str(config_path),
        "SLAWATCH_GRPC_PORT": str(port),
        "SLAWATCH_INSECURE_DEV": "1",
    }
    with process([str(ROOT / "cmd/slawatch-server/main.py")], env, "server") as proc:
        target = f"127.0.0.1:{port}"
        channel_ready(target)
        with grpc.insecure_channel(target) as ch:
            call = watch(pb_grpc.TicketServiceStub(ch))
            os.kill(proc.pid, signal.SIGTERM)
            with pytest.raises(grpc.RpcError) as info:
                next(call)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert proc.wait(30) == 0
