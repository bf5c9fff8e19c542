"""Acknowledge and repeat (DESIGN §11) on a real server and PostgreSQL, with explicit `now`s (and
at the end with real worker and scheduler processes and a Slack stand-in): a
step with repeat_every/repeat_max notifies its alert again to the same channels until the alert is
acknowledged, its clock stops, or the count runs out; AcknowledgeAlert records the token's name,
answers a second call with the first acknowledgement, and refuses what it must; WatchAlerts
streams repeats and acknowledgements as changes of the alert."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg_pool
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from internal.config.sla_config import load_config
from internal.config.tokens import hash_token
from internal.rpc.server import RunningServer, start_server
from internal.usecase.alert_changes import repeat_batch
from internal.usecase.evaluate import evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.bridge import http_json, run_bridge
from support.configs import write_config
from support.env import make_settings
from support.events import event
from support.fake_slack import FakeSlack
from support.ops import engine_env
from support.workers import Processes, rows

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
# A 15-minute response target; its breach step (level 3, at 100%) repeats every 10 minutes,
# three times at most, to the lead channel it first went to.
LADDER = [
    {"at_percent": 85, "level": 1, "kind": "warning", "notify": ["team"]},
    {
        "at_percent": 100,
        "level": 3,
        "kind": "breach",
        "notify": ["lead", "team"],
        "repeat_every": "10m",
        "repeat_max": 3,
    },
]
BREACH_AT = T0 + timedelta(minutes=15)

TOKENS = {
    "acme-all": ("acme", ["ingest", "read", "watch"]),
    "acme-oncall": ("acme", ["ack"]),
    "globex-oncall": ("globex", ["ack"]),
}


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer s3cret-{name}"),)


ACME, ONCALL, GLOBEX = bearer("acme-all"), bearer("acme-oncall"), bearer("globex-oncall")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "repeat.yaml", escalation=LADDER)


TOKENS_JSON = json.dumps(
    [
        {"name": n, "sha256": hash_token(f"s3cret-{n}"), "tenant": t, "roles": r}
        for n, (t, r) in TOKENS.items()
    ]
)


def start_secure(database_url: str, config: Path) -> RunningServer:
    tokens = TOKENS_JSON
    settings = make_settings(database_url, config, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=tokens)
    return start_server(settings, bind="127.0.0.1")


@pytest.fixture
def secure_server(database_url: str, config_path: Path) -> Iterator[RunningServer]:
    running = start_secure(database_url, config_path)
    yield running
    running.stop(grace=1)


@pytest.fixture
def stub(secure_server: RunningServer) -> Iterator[pb_grpc.TicketServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{secure_server.port}") as channel:
        yield pb_grpc.TicketServiceStub(channel)


def breach(
    stub: pb_grpc.TicketServiceStub, pool: psycopg_pool.ConnectionPool, config_path: Path
) -> int:
    """Ticket R-1, created at T0 and still open, evaluated at its breach instant: the id of its
    breach alert (its warning was skipped: only the highest crossed step fires)."""
    stub.IngestTickets(pb.IngestTicketsRequest(events=[event("R-1", created=T0)]), metadata=ACME)
    with pool.connection() as conn:
        batch = evaluate_batch(conn, load_config(config_path), BREACH_AT)
    assert len(batch.alerts) == 1
    return batch.alerts[0]


def notifications(database_url: str, alert_id: int) -> list[tuple[object, ...]]:
    """(repeat, channel) of every notification of the alert, in order."""
    return rows(
        database_url,
        "SELECT repeat, channel FROM notifications WHERE alert_id = %s ORDER BY repeat, channel",
        alert_id,
    )


def repeats_at(pool: psycopg_pool.ConnectionPool, now: datetime) -> list[int]:
    with pool.connection() as conn:
        return repeat_batch(conn, now, 100).repeated


def test_a_repeating_step_notifies_again_to_the_same_channels_until_repeat_max(
    stub: pb_grpc.TicketServiceStub,
    pool: psycopg_pool.ConnectionPool,
    database_url: str,
    config_path: Path,
) -> None:
    """Nothing before repeat_every has passed; then one repeat per due instant, to the
    channels of the first notification, numbered; an evaluation that runs late sends one repeat
    and schedules the next from then (no burst); after repeat_max, none."""
    alert = breach(stub, pool, config_path)
    assert notifications(database_url, alert) == [(0, "lead"), (0, "team")]

    assert repeats_at(pool, BREACH_AT + timedelta(minutes=9, seconds=59)) == []
    assert repeats_at(pool, BREACH_AT + timedelta(minutes=10)) == [alert]
    assert repeats_at(pool, BREACH_AT + timedelta(minutes=10)) == []  # once per due instant
    # Late by 25 minutes: one repeat now, the next 10 minutes after this one.
    late = BREACH_AT + timedelta(minutes=45)
    assert repeats_at(pool, late) == [alert]
    assert repeats_at(pool, late + timedelta(minutes=9)) == []
    assert repeats_at(pool, late + timedelta(minutes=10)) == [alert]
    assert repeats_at(pool, late + timedelta(days=1)) == []  # three repeats were the most

    assert notifications(database_url, alert) == [
        (n, channel) for n in range(4) for channel in ("lead", "team")
    ]
    [(repeat, next_at)] = rows(
        database_url, "SELECT repeat, next_repeat_at FROM alerts WHERE alert_id = %s", alert
    )
    assert (repeat, next_at) == (3, None)
    answer = stub.GetTicket(pb.GetTicketRequest(ticket_id="R-1"), metadata=ACME)
    [shown] = answer.alerts
    assert shown.repeat == 3
    assert sorted((n.repeat, n.channel) for n in shown.notifications) == [
        (n, channel) for n in range(4) for channel in ("lead", "team")
    ]


def test_acknowledging_stops_the_repeats_and_records_who(
    stub: pb_grpc.TicketServiceStub,
    pool: psycopg_pool.ConnectionPool,
    database_url: str,
    config_path: Path,
) -> None:
    """The token's name is acknowledged_by, with the time of the call and the note; no repeat comes
    after; a second acknowledgement (another note) answers the first one unchanged."""
    alert = breach(stub, pool, config_path)
    assert repeats_at(pool, BREACH_AT + timedelta(minutes=10)) == [alert]

    before = datetime.now(UTC)
    acked = stub.AcknowledgeAlert(
        pb.AcknowledgeAlertRequest(alert_id=alert, note="on it"), metadata=ONCALL
    ).alert
    after = datetime.now(UTC)
    assert (acked.alert_id, acked.acknowledged_by, acked.ack_note) == (
        alert,
        "acme-oncall",
        "on it",
    )
    assert before <= acked.acknowledged_at.ToDatetime(UTC) <= after
    assert acked.repeat == 1

    assert repeats_at(pool, BREACH_AT + timedelta(days=1)) == []
    assert [r for r, _ in notifications(database_url, alert)] == [0, 0, 1, 1]

    again = stub.AcknowledgeAlert(
        pb.AcknowledgeAlertRequest(alert_id=alert, note="me too"), metadata=ONCALL
    ).alert
    assert again == acked
    [shown] = stub.GetTicket(pb.GetTicketRequest(ticket_id="R-1"), metadata=ACME).alerts
    assert (shown.acknowledged_by, shown.ack_note) == ("acme-oncall", "on it")


def test_repeats_stop_when_the_clock_stops(
    stub: pb_grpc.TicketServiceStub,
    pool: psycopg_pool.ConnectionPool,
    database_url: str,
    config_path: Path,
) -> None:
    """A first response after the breach stops the response clock: its due repeat is dropped,
    not sent, and none is scheduled again."""
    alert = breach(stub, pool, config_path)
    stub.IngestTickets(
        pb.IngestTicketsRequest(
            events=[
                event(
                    "R-1",
                    pb.TICKET_STATUS_IN_PROGRESS,
                    created=T0,
                    updated=BREACH_AT + timedelta(minutes=2),
                )
            ]
        ),
        metadata=ACME,
    )
    with pool.connection() as conn:
        batch = repeat_batch(conn, BREACH_AT + timedelta(minutes=10), 100)
    assert (batch.due, batch.repeated, batch.ended) == (1, [], 1)
    assert [r for r, _ in notifications(database_url, alert)] == [0, 0]
    assert rows(database_url, "SELECT next_repeat_at FROM alerts WHERE alert_id = %s", alert) == [
        (None,)
    ]


def _violations(err: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return [(v.field, v.description) for v in bad.field_violations]


def test_acknowledge_refuses_bad_input_other_tenants_and_callers_without_the_ack_role(
    stub: pb_grpc.TicketServiceStub, pool: psycopg_pool.ConnectionPool, config_path: Path
) -> None:
    alert = breach(stub, pool, config_path)
    with pytest.raises(grpc.RpcError) as err:
        stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(alert_id=0, note="x" * 501), metadata=ONCALL
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in _violations(err.value)] == ["alert_id", "note"]

    with pytest.raises(grpc.RpcError) as err:
        stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(alert_id=alert, note="bell\a"), metadata=ONCALL
        )
    assert [f for f, _ in _violations(err.value)] == ["note"]

    # Another tenant's alert is not found, whatever its id.
    with pytest.raises(grpc.RpcError) as err:
        stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id=alert), metadata=GLOBEX)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id=alert + 1000), metadata=ONCALL)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.RpcError) as err:
        stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id=alert), metadata=ACME)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    [shown] = stub.GetTicket(pb.GetTicketRequest(ticket_id="R-1"), metadata=ACME).alerts
    assert not shown.HasField("acknowledged_at")


def test_watch_alerts_streams_repeats_and_acknowledgements_as_changes(
    stub: pb_grpc.TicketServiceStub, pool: psycopg_pool.ConnectionPool, config_path: Path
) -> None:
    """A live stream gets the new alert as RAISED, then the same alert id again as REPEATED
    (repeat 1) and as ACKNOWLEDGED (with who), in that order."""
    call = stub.WatchAlerts(pb.WatchAlertsRequest(), metadata=ACME)
    call.initial_metadata()  # subscribed: what is written from now on reaches it
    got: list[pb.WatchAlertsResponse] = []
    done = threading.Event()

    def read() -> None:
        try:
            for response in call:
                got.append(response)
                if len(got) == 3:
                    break
        except grpc.RpcError:
            pass  # cancelled at the end of the test; `done` unset says it came short
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        alert = breach(stub, pool, config_path)
        assert repeats_at(pool, BREACH_AT + timedelta(minutes=10)) == [alert]
        stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id=alert), metadata=ONCALL)
        assert done.wait(15), f"got {len(got)} of 3 messages"
    finally:
        call.cancel()
    assert [(r.change, r.alert.alert_id, r.alert.repeat) for r in got] == [
        (pb.ALERT_CHANGE_RAISED, alert, 0),
        (pb.ALERT_CHANGE_REPEATED, alert, 1),
        (pb.ALERT_CHANGE_ACKNOWLEDGED, alert, 1),
    ]
    assert got[2].alert.acknowledged_by == "acme-oncall"


def test_repeats_reach_slack_on_time_and_an_acknowledgement_silences_them(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Real worker and scheduler: a 2 s target whose breach repeats every second, twice at most.
    Ticket LOUD's breach reaches Slack three times (the repeats titled 1 of 2 and 2 of 2), and no
    more; ticket ACKED, acknowledged after its first message, gets no repeat."""
    config = write_config(
        tmp_path / "fast.yaml",
        escalation=[
            {
                "at_percent": 100,
                "level": 3,
                "kind": "breach",
                "notify": ["team"],
                "repeat_every": "1s",
                "repeat_max": 2,
            }
        ],
        policies={"high": {"gold": {"response": "2s", "resolution": "1h"}}},
    )
    server = start_secure(database_url, config)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = pb_grpc.TicketServiceStub(channel)
    with FakeSlack() as slack:
        procs = Processes(engine_env(database_url, redis_url, config, slack), tmp_path)
        try:
            procs.worker()
            procs.scheduler()
            now = datetime.now(UTC)
            stub.IngestTickets(
                pb.IngestTicketsRequest(events=[event("ACKED", created=now)]), metadata=ACME
            )
            [first] = slack.wait_for(1, "/hooks/team", timeout=30)
            [(acked_alert,)] = rows(database_url, "SELECT alert_id FROM alerts")
            stub.AcknowledgeAlert(
                pb.AcknowledgeAlertRequest(alert_id=int(str(acked_alert))), metadata=ONCALL
            )
            stub.IngestTickets(
                pb.IngestTicketsRequest(events=[event("LOUD", created=datetime.now(UTC))]),
                metadata=ACME,
            )
            got = slack.wait_for(4, "/hooks/team", timeout=30)
            # Two more seconds: room for a fourth LOUD message or a repeat of ACKED, were either
            # to come.
            threading.Event().wait(2.5)
            got = slack.requests("/hooks/team")
        finally:
            procs.stop_all()
            channel.close()
            server.stop(grace=1)
    texts = [str(r.body["text"]) for r in got]
    assert "ACKED" in texts[0] and "repeat" not in texts[0]
    loud = [t for t in texts if "LOUD" in t]
    assert len(loud) == 3, texts
    assert "repeat" not in loud[0]
    assert "(repeat 1 of 2, not acknowledged)" in loud[1]
    assert "(repeat 2 of 2, not acknowledged)" in loud[2]
    assert [t for t in texts if "ACKED" in t] == [texts[0]], texts
    assert first.body["text"] == texts[0]


def test_the_bridge_acknowledges_over_http(
    secure_server: RunningServer,
    stub: pb_grpc.TicketServiceStub,
    pool: psycopg_pool.ConnectionPool,
    config_path: Path,
) -> None:
    """POST /v1/alerts/{alert_id}:acknowledge is AcknowledgeAlert: the path gives the id, the
    body the note; the answer is the alert in proto3 JSON; the id in the body as well is a 400;
    a token without the ack role a 403; an unknown alert a 404."""
    alert = breach(stub, pool, config_path)
    env = {"SLAWATCH_INSECURE_DEV": "", "SLAWATCH_TOKENS": TOKENS_JSON}
    with run_bridge(f"127.0.0.1:{secure_server.port}", **env) as bridge:
        url = f"{bridge.url}/v1/alerts/{alert}:acknowledge"
        answer = http_json("POST", url, "s3cret-acme-oncall", {"note": "via http"})
        assert answer.status == 200, answer
        assert answer.body["alert"]["alert_id"] == str(alert)
        assert answer.body["alert"]["acknowledged_by"] == "acme-oncall"
        assert answer.body["alert"]["ack_note"] == "via http"

        both = http_json("POST", url, "s3cret-acme-oncall", {"alertId": str(alert)})
        assert both.status == 400 and "given in the path" in str(both.body), both
        assert http_json("POST", url, "s3cret-acme-all", {}).status == 403
        unknown = f"{bridge.url}/v1/alerts/{alert + 1000}:acknowledge"
        assert http_json("POST", unknown, "s3cret-acme-oncall", {}).status == 404
