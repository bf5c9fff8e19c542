"""`GET /api/report.csv`: GetSlaReport as a CSV file, for spreadsheets and the live page's
"Download CSV" button.

The query string is the one `/v1/reports/sla` takes (GetSlaReportRequest's fields, by proto or
JSON name: `start`, `end`, `interval`, `time_zone`, `group_by`, `metrics`, `priorities`,
`customer_tiers`), and so are the token (`Authorization: Bearer`, never the URL) and the errors:
the server checks the role (read) and the request, and a refusal comes back in the /v1 JSON
error shape (internal/bridge/http_errors.py), its message naming the bad parameter.

One CSV row per report row, in the server's order. The group columns are the dimensions grouped
by, in the order of the contract's fields (metric, priority, customer_tier); interval edges are
ISO 8601 in the request's time zone (the offset says which instant), durations seconds.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import grpc
import grpc.aio
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from internal.bridge import http_errors, protojson
from internal.bridge.http_api import HTTP_API, UNAUTHORIZED_MESSAGE
from slawatch.v1 import ticket_service_pb2 as pb

log = logging.getLogger(__name__)

PATH = "/api/report.csv"
# ReportDimension -> the SlaReportRow field (and CSV column) that carries its value.
GROUP_COLUMNS: dict[int, str] = {
    pb.REPORT_DIMENSION_METRIC: "metric",
    pb.REPORT_DIMENSION_PRIORITY: "priority",
    pb.REPORT_DIMENSION_CUSTOMER_TIER: "customer_tier",
}
VALUE_COLUMNS = (
    "achieved",
    "breached",
    "attainment",
    "p50_elapsed_seconds",
    "p90_elapsed_seconds",
    "running_past_target",
)


def _seconds(d: Duration, present: bool) -> str:
    """A percentile in seconds; empty when none stopped (the field is unset)."""
    if not present:
        return ""
    return str(d.seconds) if d.nanos == 0 else f"{d.seconds + d.nanos / 1e9:.3f}"


def _local(ts: Timestamp, zone: ZoneInfo) -> str:
    return ts.ToDatetime(UTC).astimezone(zone).isoformat()


def group_columns(request: pb.GetSlaReportRequest) -> list[str]:
    grouped = set(request.group_by)
    return [column for dim, column in GROUP_COLUMNS.items() if dim in grouped]


def render(request: pb.GetSlaReportRequest, answer: pb.GetSlaReportResponse) -> bytes:
    """The CSV text of `answer` (a header row, then one row per report row), RFC 4180 line ends.
    The server accepted `request`, so its time zone is a known one."""
    zone = ZoneInfo(request.time_zone or "UTC")
    groups = group_columns(request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["interval_start", "interval_end", *groups, *VALUE_COLUMNS])
    for row in answer.rows:
        writer.writerow(
            [
                _local(row.interval_start, zone),
                _local(row.interval_end, zone),
                *(getattr(row, column) for column in groups),
                row.achieved,
                row.breached,
                repr(row.attainment),
                _seconds(row.p50_elapsed, row.HasField("p50_elapsed")),
                _seconds(row.p90_elapsed, row.HasField("p90_elapsed")),
                row.running_past_target,
            ]
        )
    return out.getvalue().encode()


def filename(request: pb.GetSlaReportRequest) -> str:
    """sla-report-day-20261104-20261204.csv: the interval and the range's UTC dates, so that
    files of different ranges saved side by side do not overwrite each other."""
    interval = pb.ReportInterval.Name(request.interval).removeprefix("REPORT_INTERVAL_").lower()

    def day(ts: Timestamp) -> str:
        return datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y%m%d")

    return f"sla-report-{interval}-{day(request.start)}-{day(request.end)}.csv"


async def report_csv(request: web.Request) -> web.StreamResponse:
    api = request.app[HTTP_API]
    credential = api.credential(request)
    if credential is None:
        return http_errors.error_response(grpc.StatusCode.UNAUTHENTICATED, UNAUTHORIZED_MESSAGE)
    try:
        message = protojson.parse_query(request.query, {}, pb.GetSlaReportRequest())
    except protojson.BadJson as err:
        return http_errors.error_response(grpc.StatusCode.INVALID_ARGUMENT, str(err))
    try:
        answer = await api.call("GetSlaReport", message, credential)
        body = await asyncio.to_thread(render, message, answer)
    except grpc.aio.AioRpcError as err:
        return http_errors.from_rpc_error(err, "GetSlaReport")
    except Exception:
        log.exception("GetSlaReport as CSV failed in the bridge")
        return http_errors.error_response(grpc.StatusCode.INTERNAL, http_errors.FALLBACK_MESSAGE)
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename(message)}"',
            "Cache-Control": "no-store",
        },
    )
