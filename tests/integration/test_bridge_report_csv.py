"""GET /api/report.csv (internal/bridge/report_csv.py) through the real bridge process against a
real token-protected server on a real PostgreSQL: the CSV has the rows GetSlaReport answers
over /v1/reports/sla for the same query, with the counts the ingested tickets make; a bad
parameter is 400 naming it; no token is 401, a token without the read role 403."""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from integration.test_bridge_http import (
    ALL,
    BRIDGE_ENV,
    READER,
    assert_error,
    ingest,
    iso,
    new_id,
    secure_server,
    ticket_event,
)

from support.bridge import Bridge, HttpAnswer, http_json, run_bridge
from support.databases import own_database
from support.tokens import secret

DAYS = 5
# Each day's three tickets, high/gold (response 15 min, resolution 4 h): (minutes after creation,
# status) of their events after the first.
SHAPES = {
    "quick": [(5, "TICKET_STATUS_IN_PROGRESS"), (60, "TICKET_STATUS_RESOLVED")],
    "late": [(40, "TICKET_STATUS_IN_PROGRESS")],
    "ignored": [],
}


@pytest.fixture(scope="module")
def bridge(
    pg_admin_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bridge]:
    with (
        own_database(pg_admin_url, template_db, "csv") as url,
        secure_server(url, tmp_path_factory.mktemp("report-csv")) as server,
        run_bridge(f"127.0.0.1:{server.port}", **BRIDGE_ENV) as b,
    ):
        b.wait_up()
        yield b


@pytest.fixture(scope="module")
def first_day(bridge: Bridge) -> datetime:
    """DAYS days of tickets, one of each shape a day at 10:00 UTC, the last day two days ago;
    the first day's midnight."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=DAYS + 1)
    events: list[dict[str, Any]] = []
    for day in range(DAYS):
        created = first + timedelta(days=day, hours=10)
        for shape, later in SHAPES.items():
            ticket_id = new_id(f"CSV-{shape}")
            stamps = [(0, "TICKET_STATUS_OPEN"), *later]
            events += [
                ticket_event(
                    ticket_id,
                    status=status,
                    created_at=iso(created),
                    updated_at=iso(created + timedelta(minutes=after)),
                )
                for after, status in stamps
            ]
    answer = ingest(bridge, events)
    assert answer.status == 200, answer
    return first


def get_csv(bridge: Bridge, query: str, token: str | None = READER) -> HttpAnswer:
    """GET /api/report.csv?query; the body is the text (not parsed) when the answer is CSV."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"{bridge.url}/api/report.csv?{query}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return HttpAnswer(r.status, dict(r.headers), r.read().decode())
    except urllib.error.HTTPError:
        return http_json("GET", f"{bridge.url}/api/report.csv?{query}", token)


def report_query(first: datetime, **extra: str | list[str]) -> str:
    params: dict[str, Any] = {
        "start": iso(first),
        "end": iso(first + timedelta(days=DAYS)),
        "interval": "REPORT_INTERVAL_DAY",
        **extra,
    }
    return urllib.parse.urlencode(params, doseq=True)


def seconds(duration: str | None) -> str:
    """A proto3 JSON Duration ("900s", "12.500s") as the CSV writes it; empty when absent."""
    if duration is None:
        return ""
    value = float(duration.removesuffix("s"))
    return str(int(value)) if value.is_integer() else f"{value:.3f}"


def test_csv_rows_are_the_report_rows(bridge: Bridge, first_day: datetime) -> None:
    """Grouped by metric and tier, in UTC: a header naming the interval edges, the grouped
    dimensions and the figures; then exactly GetSlaReport's rows, in its order, with the
    figures of the tickets ingested (per day and metric: one achieved; the late one and the
    ignored one breached, of which the ignored one's response clock and both resolution clocks
    still run). Served as an attachment of text/csv."""
    query = report_query(
        first_day, group_by=["REPORT_DIMENSION_METRIC", "REPORT_DIMENSION_CUSTOMER_TIER"]
    )
    answer = get_csv(bridge, query)
    assert answer.status == 200, answer
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    start, end = first_day.strftime("%Y%m%d"), (first_day + timedelta(days=DAYS)).strftime("%Y%m%d")
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="sla-report-day-{start}-{end}.csv"'
    )
    header, *rows = list(csv.reader(io.StringIO(answer.body)))
    assert header == [
        "interval_start",
        "interval_end",
        "metric",
        "customer_tier",
        "achieved",
        "breached",
        "attainment",
        "p50_elapsed_seconds",
        "p90_elapsed_seconds",
        "running_past_target",
    ]

    report = http_json("GET", f"{bridge.url}/v1/reports/sla?{query}", READER)
    assert report.status == 200, report
    expected = [
        [
            datetime.fromisoformat(r["interval_start"]).isoformat(),
            datetime.fromisoformat(r["interval_end"]).isoformat(),
            r["metric"],
            r["customer_tier"],
            r["achieved"],
            r["breached"],
            repr(float(r["attainment"])),
            seconds(r.get("p50_elapsed")),
            seconds(r.get("p90_elapsed")),
            r["running_past_target"],
        ]
        for r in report.body["rows"]
    ]
    assert rows == expected

    days = [(first_day + timedelta(days=d)).isoformat() for d in range(DAYS)]
    figures = {(r[0], r[2], r[3]): (r[4], r[5], r[9]) for r in rows}
    assert figures == {
        **{(day, "response", "gold"): ("1", "2", "1") for day in days},
        **{(day, "resolution", "gold"): ("1", "2", "2") for day in days},
    }


def test_csv_intervals_are_in_the_requested_time_zone(bridge: Bridge, first_day: datetime) -> None:
    """With time_zone=Asia/Kolkata the intervals are local days, written with their +05:30
    offset; ungrouped, there are no group columns and one row per day."""
    start = first_day - timedelta(hours=5, minutes=30)  # local midnight of the first day
    query = urllib.parse.urlencode(
        {
            "start": iso(start),
            "end": iso(start + timedelta(days=DAYS)),
            "interval": "REPORT_INTERVAL_DAY",
            "time_zone": "Asia/Kolkata",
        }
    )
    answer = get_csv(bridge, query)
    assert answer.status == 200, answer
    header, *rows = list(csv.reader(io.StringIO(answer.body)))
    assert header[:3] == ["interval_start", "interval_end", "achieved"]
    assert [r[0] for r in rows] == [
        (first_day + timedelta(days=d)).strftime("%Y-%m-%dT00:00:00+05:30") for d in range(DAYS)
    ]
    assert {(r[2], r[3]) for r in rows} == {("2", "4")}  # both metrics of the day's tickets


def test_a_bad_parameter_is_400_naming_it(bridge: Bridge, first_day: datetime) -> None:
    """An unknown parameter, a value that is not of the field's type, and a value the server
    refuses are each 400 INVALID_ARGUMENT in the /v1 error shape, naming the parameter."""
    unknown = assert_error(
        get_csv(bridge, report_query(first_day, colour="red")), 400, "INVALID_ARGUMENT"
    )
    assert "colour" in unknown["message"]
    bad_enum = assert_error(
        get_csv(bridge, report_query(first_day, interval="REPORT_INTERVAL_FORTNIGHT")),
        400,
        "INVALID_ARGUMENT",
    )
    assert "interval" in bad_enum["message"]
    bad_time = assert_error(
        get_csv(bridge, report_query(first_day, start="yesterday")), 400, "INVALID_ARGUMENT"
    )
    assert "start" in bad_time["message"]
    bad_zone = assert_error(
        get_csv(bridge, report_query(first_day, time_zone="Mars/Olympus")), 400, "INVALID_ARGUMENT"
    )
    assert "time_zone" in bad_zone["message"]
    assert bad_zone["details"][0]["field_violations"][0]["field"] == "time_zone"


def test_no_token_is_401_and_a_token_without_read_is_403(
    bridge: Bridge, first_day: datetime
) -> None:
    """No token, an unknown one, or one in the URL instead of the header is 401 with
    WWW-Authenticate: Bearer; a watch-only token is the server's 403."""
    query = report_query(first_day)
    for token in (None, "not-a-token"):
        answer = get_csv(bridge, query, token)
        assert_error(answer, 401, "UNAUTHENTICATED")
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert_error(get_csv(bridge, f"{query}&token={READER}", None), 401, "UNAUTHENTICATED")
    watcher = get_csv(bridge, query, secret("acme-watcher"))
    assert_error(watcher, 403, "PERMISSION_DENIED")
    assert get_csv(bridge, query, ALL).status == 200
