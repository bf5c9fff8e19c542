"""GetSlaReport against a reference computed from the ingested histories by the reference model
(tests/reference, nothing of the rollups): random histories with replies, holds, reopens and
late events shuffled across batches, in UTC, Europe/Berlin across its DST changes and
Asia/Kolkata (+05:30); after late events that flip instances; after a recompute with new
targets; with two ingests at once. And its refusals of bad requests."""

from __future__ import annotations

import math
import random
import threading
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2, status_pb2
from integration.test_metric_cycles import EXAMPLE_TEXT, _expected, _pb_events

from internal.config.sla_config import parse_config
from internal.store.db import make_pool
from internal.usecase.recompute import recompute_open_tickets
from reference import metric_model as ref
from reference.histories import History, random_history
from slawatch.v1 import ticket_service_pb2 as pb
from support.clocked import clocked_service
from support.events import ts

ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")
QUARTER = timedelta(minutes=15)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _decided(cycle: ref.Cycle) -> tuple[datetime, bool] | None:
    """(instant, breached) of a model cycle; None while undecided."""
    if cycle.due_at is not None and (cycle.mode != "stopped" or cycle.due_at <= cycle.stopped_at):
        return cycle.due_at, True
    if cycle.mode == "stopped":
        assert cycle.stopped_at is not None
        return cycle.stopped_at, False
    return None


def _local_days(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The local days covering [start, end), as UTC edges, by plain calendar arithmetic."""
    day: date = start.astimezone(zone).date()
    out = []
    while True:
        a = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        if a >= end:
            return out
        day += timedelta(days=1)
        b = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        out.append((a, b))


def _reference(
    cycles: list[tuple[str, str, ref.Cycle]],
    start: datetime,
    end: datetime,
    zone: str,
    now: datetime,
) -> dict[tuple[datetime, str, str], dict[str, Any]]:
    """By (day start, metric, tier): achieved, breached, running past target and the stopped
    instances' elapsed times, for instants before the quarter hour holding `now`."""
    cut = _EPOCH + (now - _EPOCH) // QUARTER * QUARTER
    days = _local_days(start, end, ZoneInfo(zone))
    out: dict[tuple[datetime, str, str], dict[str, Any]] = defaultdict(
        lambda: {"achieved": 0, "breached": 0, "running": 0, "elapsed": []}
    )
    for tier, _tid, c in cycles:
        decided = _decided(c)
        if decided is None or decided[0] >= cut:
            continue
        at, breached = decided
        for a, b in days:
            if a <= at < b:
                cell = out[(a, c.metric, tier)]
                cell["breached" if breached else "achieved"] += 1
                if breached and c.mode != "stopped":
                    cell["running"] += 1
                if c.mode == "stopped":
                    cell["elapsed"].append(c.elapsed_seconds)
    return out


def _report(stub: Any, start: datetime, end: datetime, zone: str) -> list[pb.SlaReportRow]:
    request = pb.GetSlaReportRequest(
        start=ts(start),
        end=ts(end),
        interval=pb.REPORT_INTERVAL_DAY,
        time_zone=zone,
        group_by=[pb.REPORT_DIMENSION_METRIC, pb.REPORT_DIMENSION_CUSTOMER_TIER],
    )
    return list(stub.GetSlaReport(request).rows)


def _nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _assert_equal(stub: Any, cycles: list[tuple[str, str, ref.Cycle]], now: datetime) -> int:
    """GetSlaReport by day x metric x tier equals the reference in every zone; the rows seen."""
    start = datetime(2026, 3, 20, tzinfo=UTC)
    end = datetime(2027, 1, 10, tzinfo=UTC)
    seen = 0
    for zone in ZONES:
        want = _reference(cycles, start, end, zone, now)
        got = _report(stub, start, end, zone)
        got_keys = {(r.interval_start.ToDatetime(UTC), r.metric, r.customer_tier): r for r in got}
        assert set(got_keys) == set(want), zone
        for key, cell in want.items():
            row = got_keys[key]
            where = f"{zone} {key}"
            assert (row.achieved, row.breached, row.running_past_target) == (
                cell["achieved"],
                cell["breached"],
                cell["running"],
            ), where
            decided = cell["achieved"] + cell["breached"]
            assert row.attainment == pytest.approx(cell["achieved"] / decided), where
            zone_info = ZoneInfo(zone)
            assert row.interval_start.ToDatetime(UTC).astimezone(zone_info).hour == 0, where
            if cell["elapsed"]:
                for got_p, fraction in ((row.p50_elapsed, 0.5), (row.p90_elapsed, 0.9)):
                    exact = _nearest_rank(cell["elapsed"], fraction)
                    value = got_p.seconds + got_p.nanos / 1e9
                    if exact < 30:
                        assert value <= 30, where
                    else:  # the histogram's resolution: a quarter of a doubling
                        assert exact / 2**0.25 <= value <= exact * 2**0.25, where
            else:
                assert not row.HasField("p50_elapsed"), where
        seen += len(got)
    return seen


def _cases(rng: random.Random, n: int, prefix: str) -> list[tuple[str, str, History]]:
    cases = []
    for i in range(n):
        history = random_history(rng, max_events=14)
        if history.events:
            cases.append((f"{prefix}-{i}", rng.choice(["gold", "silver"]), history))
    return cases


def _ingest_interleaved(stub: Any, cases: list[tuple[str, str, History]]) -> None:
    pending = [_pb_events(tid, tier, h) for tid, tier, h in cases]
    while any(pending):  # one batch of each history per call, in turn
        call = [e for batches in pending if batches for e in batches.pop(0)]
        stub.IngestTickets(pb.IngestTicketsRequest(events=call))


def _model(
    cases: list[tuple[str, str, History]], now: datetime
) -> list[tuple[str, str, ref.Cycle]]:
    return [(tier, tid, c) for tid, tier, h in cases for c in _expected(h, tier, now)]


def test_report_equals_the_reference_for_random_histories(
    database_url: str, tmp_path: Path
) -> None:
    """40 random histories (their anchors include the days before Berlin's spring and autumn
    changes), batches interleaved and shuffled: the report by day x metric x tier equals the
    reference in UTC, Europe/Berlin and Asia/Kolkata, counts, attainment, running past target
    and percentiles within the histogram's resolution."""
    path = tmp_path / "sla.yaml"
    path.write_text(EXAMPLE_TEXT)
    cases = _cases(random.Random(20260329), 40, "R")
    now = max(h.now for _, _, h in cases)
    with clocked_service(database_url, path, now) as svc:
        _ingest_interleaved(svc.stub, cases)
        assert _assert_equal(svc.stub, _model(cases, now), now) > 20


def test_late_events_move_instances_and_a_recompute_keeps_the_report_exact(
    database_url: str, tmp_path: Path
) -> None:
    """A late agent reply before a breach flips first_reply from breached to achieved (and a
    late hold moves an instance's decided day); then a reload with other targets, recomputed,
    moves the open tickets' instances: each time the report equals the reference."""
    path = tmp_path / "sla.yaml"
    path.write_text(EXAMPLE_TEXT)
    created = datetime(2026, 10, 24, 21, 0, tzinfo=UTC)  # the night of Berlin's autumn change
    now = created + timedelta(days=3)
    events = [
        pb.TicketEvent(
            ticket_id=f"L-{i}",
            priority="high",
            customer_tier="gold",
            status=pb.TICKET_STATUS_OPEN,
            created_at=ts(created + timedelta(minutes=i)),
            updated_at=ts(created + timedelta(minutes=i)),
        )
        for i in range(6)
    ]
    late = [
        pb.TicketEvent(
            ticket_id=f"L-{i}",
            priority="high",
            customer_tier="gold",
            activity=pb.TICKET_ACTIVITY_AGENT_REPLY,
            created_at=ts(created + timedelta(minutes=i)),
            updated_at=ts(created + timedelta(minutes=i + 5)),
        )
        for i in range(3)
    ]

    def model(with_late: bool) -> list[tuple[str, str, ref.Cycle]]:
        out = []
        for i in range(6):
            c = created + timedelta(minutes=i)
            hist = [ref.Event(c, "open")]
            if with_late and i < 3:
                hist.append(ref.Event(c + timedelta(minutes=5), None, "agent_reply"))
            history = History(c, tuple(hist), (tuple(hist),), now)
            out += [("gold", f"L-{i}", cyc) for cyc in _expected(history, "gold", now)]
        return out

    with clocked_service(database_url, path, now) as svc:
        svc.stub.IngestTickets(pb.IngestTicketsRequest(events=events))
        _assert_equal(svc.stub, model(False), now)
        rows = [r for r in _report(svc.stub, created, now, "UTC") if r.metric == "first_reply"]
        assert sum(r.breached for r in rows) == 6  # 15 minutes passed without a reply
        svc.stub.IngestTickets(pb.IngestTicketsRequest(events=late))
        _assert_equal(svc.stub, model(True), now)
        rows = [r for r in _report(svc.stub, created, now, "UTC") if r.metric == "first_reply"]
        assert sum(r.achieved for r in rows) == 3 and sum(r.breached for r in rows) == 3

        # A reload: resolution for high/gold from 8h to 2d; the open tickets are recomputed.
        new_text = EXAMPLE_TEXT.replace("resolution: 8h}", "resolution: 2d}")
        assert new_text != EXAMPLE_TEXT
        pool = make_pool(database_url)
        try:
            assert recompute_open_tickets(pool, parse_config(new_text)) == 6
        finally:
            pool.close()
        _assert_equal(svc.stub, _model_new_targets(new_text, created, now), now)


def _model_new_targets(
    text: str, created: datetime, now: datetime
) -> list[tuple[str, str, ref.Cycle]]:
    """The model's cycles of the late-event test's tickets under the config `text`."""
    from integration import test_metric_cycles as tmc

    config = parse_config(text)
    out = []
    for i in range(6):
        c = created + timedelta(minutes=i)
        hist = [ref.Event(c, "open")]
        if i < 3:
            hist.append(ref.Event(c + timedelta(minutes=5), None, "agent_reply"))
        targets = config.targets("high", "gold")
        assert targets is not None
        for d in config.metrics:
            metric, ladder = tmc._model_metric(d.name)
            for cyc in ref.clocks(
                c, hist, [metric], dict(targets.seconds), tmc.MODEL_CALENDARS["gold"], now, ladder
            ):
                out.append(("gold", f"L-{i}", cyc))
    return out


def test_two_ingests_at_once_leave_exact_rollups(database_url: str, tmp_path: Path) -> None:
    """Two threads ingest different tickets' interleaved batches at once (their rollup rows
    overlap: same days, metrics and tiers): the report equals the reference afterwards."""
    path = tmp_path / "sla.yaml"
    path.write_text(EXAMPLE_TEXT)
    rng = random.Random(7)
    a, b = _cases(rng, 30, "A"), _cases(rng, 30, "B")
    now = max(h.now for _, _, h in a + b)
    with clocked_service(database_url, path, now) as svc:
        errors: list[BaseException] = []

        def run(cases: list[tuple[str, str, History]]) -> None:
            try:
                _ingest_interleaved(svc.stub, cases)
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=run, args=(c,)) for c in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        _assert_equal(svc.stub, _model(a + b, now), now)


def test_erasing_a_ticket_keeps_its_counts(database_url: str, tmp_path: Path) -> None:
    """DeleteTicket erases the ticket, not what it attained: the report is unchanged."""
    path = tmp_path / "sla.yaml"
    path.write_text(EXAMPLE_TEXT)
    cases = _cases(random.Random(11), 8, "E")
    now = max(h.now for _, _, h in cases)
    with clocked_service(database_url, path, now) as svc:
        _ingest_interleaved(svc.stub, cases)
        start, end = now - timedelta(days=30), now + timedelta(days=1)
        before = _report(svc.stub, start, end, "UTC")
        assert before
        with psycopg.connect(database_url) as conn:
            conn.execute("DELETE FROM sla_clocks")
            conn.execute("DELETE FROM ticket_events")
            conn.execute("DELETE FROM tickets")
        assert _report(svc.stub, start, end, "UTC") == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": None}, "start"),
        ({"end": None}, "end"),
        ({"end": datetime(2026, 1, 1, tzinfo=UTC)}, "end"),  # = start
        ({"interval": pb.REPORT_INTERVAL_UNSPECIFIED}, "interval"),
        ({"interval": 9}, "interval"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"group_by": [pb.REPORT_DIMENSION_METRIC, pb.REPORT_DIMENSION_METRIC]}, "group_by[1]"),
        ({"group_by": [7]}, "group_by[0]"),
        ({"metrics": ["x\n"]}, "metrics[0]"),
        ({"priorities": ["p"] * 101}, "priorities"),
        ({"interval": pb.REPORT_INTERVAL_HOUR, "end": datetime(2028, 1, 1, tzinfo=UTC)}, "end"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    database_url: str, tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    """INVALID_ARGUMENT with a BadRequest naming the bad field (a range of more than 10,000
    hours, here two years, is too long)."""
    path = tmp_path / "sla.yaml"
    path.write_text(EXAMPLE_TEXT)
    args: dict[str, Any] = {
        "start": datetime(2026, 1, 1, tzinfo=UTC),
        "end": datetime(2026, 2, 1, tzinfo=UTC),
        "interval": pb.REPORT_INTERVAL_DAY,
        **change,
    }
    request = pb.GetSlaReportRequest(
        interval=args["interval"],
        time_zone=args.get("time_zone", ""),
        group_by=args.get("group_by", []),
        metrics=args.get("metrics", []),
        priorities=args.get("priorities", []),
    )
    for name in ("start", "end"):
        if args[name] is not None:
            getattr(request, name).CopyFrom(ts(args[name]))
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with clocked_service(database_url, path, now) as svc, pytest.raises(grpc.RpcError) as caught:
        svc.stub.GetSlaReport(request)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_pb2.Status.FromString(dict(err.trailing_metadata())["grpc-status-details-bin"])
    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == [field]
