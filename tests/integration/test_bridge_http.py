"""The bridge's HTTP/JSON routes (/v1, internal/bridge/http_api.py) against a real token-protected
gRPC server on a real PostgreSQL, through the real bridge process, with plain HTTP clients.

The bridge and the server share one token configuration (support/tokens.py): acme-all (acme,
every role), acme-reader (acme, read), acme-watcher (acme, watch), globex-all (globex, every
role). Both have the same small message limit, so that the body limit is cheap to reach."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
import referencing
import referencing.jsonschema

from internal.bridge import protojson
from internal.bridge.app import make_app
from internal.bridge.auth import BridgeAuth
from internal.bridge.http_api import OPENAPI_PATH, ROUTES, SERVICE
from internal.bridge.openapi import document
from internal.config.settings import BridgeSettings
from internal.embedded.ports import free_port
from internal.rpc.server import RunningServer, start_server
from support.bridge import Bridge, HttpAnswer, http_json, run_bridge
from support.configs import write_config
from support.databases import own_database
from support.env import make_settings
from support.tokens import TOKENS, secret, tokens_json

MAX_BYTES = 65536
CALL_TIMEOUT = 5.0
SECURE = {"SLAWATCH_INSECURE_DEV": "", "SLAWATCH_TOKENS": tokens_json()}
BRIDGE_ENV = {
    **SECURE,
    "SLAWATCH_MAX_MESSAGE_BYTES": str(MAX_BYTES),
    "SLAWATCH_BRIDGE_CALL_TIMEOUT_SECONDS": str(CALL_TIMEOUT),
}
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
ALL = secret("acme-all")
READER = secret("acme-reader")
ADMIN = secret("acme-admin")


@contextlib.contextmanager
def secure_server(database_url: str, config_dir: Path, **env: str) -> Iterator[RunningServer]:
    config = write_config(config_dir / "sla_config.yaml")
    settings = make_settings(
        database_url, config, **{**SECURE, "SLAWATCH_MAX_MESSAGE_BYTES": str(MAX_BYTES), **env}
    )
    running = start_server(settings, bind="127.0.0.1")
    try:
        yield running
    finally:
        running.stop(grace=1)


@pytest.fixture(scope="module")
def module_db(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with own_database(pg_admin_url, template_db, "h") as url:
        yield url


@pytest.fixture(scope="module")
def bridge(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bridge]:
    with (
        secure_server(module_db, tmp_path_factory.mktemp("bridge-http")) as server,
        run_bridge(f"127.0.0.1:{server.port}", **BRIDGE_ENV) as b,
    ):
        b.wait_up()
        yield b


@pytest.fixture(scope="module")
def spec(bridge: Bridge) -> dict[str, Any]:
    answer = http_json("GET", bridge.url + OPENAPI_PATH)
    assert answer.status == 200
    spec: dict[str, Any] = answer.body
    return spec


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_id(prefix: str = "H") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ticket_event(ticket_id: str, **fields: Any) -> dict[str, Any]:
    """A help desk's event as JSON: opened two hours ago, high/gold (15 min response target)."""
    opened = iso(datetime.now(UTC) - timedelta(hours=2))
    return {
        "ticket_id": ticket_id,
        "priority": "high",
        "customer_tier": "gold",
        "status": "TICKET_STATUS_OPEN",
        "created_at": opened,
        "updated_at": opened,
        **fields,
    }


def ingest(bridge: Bridge, events: list[dict[str, Any]], token: str | None = ALL) -> HttpAnswer:
    return http_json("POST", f"{bridge.url}/v1/tickets:ingest", token, {"events": events})


def get_ticket(bridge: Bridge, ticket_id: str, token: str | None = ALL) -> HttpAnswer:
    return http_json("GET", f"{bridge.url}/v1/tickets/{ticket_id}", token)


def valid(spec: dict[str, Any], schema_name: str, instance: object) -> None:
    """`instance` against the document's own schema `schema_name` (JSON Schema 2020-12)."""
    resource = referencing.Resource.from_contents(
        spec, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource("urn:slawatch-openapi", resource)
    schema = {"$ref": f"urn:slawatch-openapi#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)


def assert_error(answer: HttpAnswer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.body["code"] == code, answer.body
    assert isinstance(answer.body["message"], str) and answer.body["message"]
    assert isinstance(answer.body["details"], list)
    body: dict[str, Any] = answer.body
    return body


# -- the routes ----------------------------------------------------------------------------------


def test_ingest_get_and_dashboard_round_trip(bridge: Bridge, spec: dict[str, Any]) -> None:
    """An ingest over HTTP stores the events (lowerCamelCase input accepted as well as proto
    names), GetTicket and GetDashboard over HTTP return them in proto3 JSON with the proto field
    names grpcurl shows, a resend is DUPLICATE, and every answer fits the OpenAPI schemas."""
    first, second = new_id(), new_id()
    camel = ticket_event(second)
    camel = {"ticketId": second, "customerTier": "gold", "createdAt": camel["created_at"]} | {
        k: v for k, v in camel.items() if k in ("priority", "status", "updated_at")
    }
    first_event = ticket_event(first)
    answer = ingest(bridge, [first_event, camel])
    assert answer.status == 200, answer
    assert answer.body == {
        "results": [
            {"ticket_id": first, "outcome": "INGEST_OUTCOME_CREATED"},
            {"ticket_id": second, "outcome": "INGEST_OUTCOME_CREATED"},
        ]
    }
    valid(spec, "slawatch.v1.IngestTicketsResponse", answer.body)
    again = ingest(bridge, [first_event])
    assert again.body["results"][0]["outcome"] == "INGEST_OUTCOME_DUPLICATE"

    got = get_ticket(bridge, first, READER)
    assert got.status == 200, got
    ticket = got.body["ticket"]
    assert ticket["ticket_id"] == first
    assert ticket["customer_tier"] == "gold"
    assert ticket["response"]["state"] == "SLA_STATE_BREACHED"  # 2 h against 15 min
    assert ticket["response"]["target"] == "900s"
    assert ticket["sla_state"] == "SLA_STATE_BREACHED"
    assert got.body["history"][0]["status"] == "TICKET_STATUS_OPEN"
    datetime.fromisoformat(ticket["created_at"])  # RFC 3339
    valid(spec, "slawatch.v1.GetTicketResponse", got.body)

    url = f"{bridge.url}/v1/dashboard?page_size=500&states=SLA_STATE_BREACHED&priorities=high"
    dashboard = http_json("GET", url, READER)
    assert dashboard.status == 200, dashboard
    ids = [t["ticket_id"] for t in dashboard.body["tickets"]]
    assert first in ids and second in ids
    assert all(t["sla_state"] == "SLA_STATE_BREACHED" for t in dashboard.body["tickets"])
    counts = {c["state"]: int(c["count"]) for c in dashboard.body["counts"]}
    assert counts["SLA_STATE_BREACHED"] >= 2
    assert counts["SLA_STATE_MET"] == 0  # zero values are written, not left out
    assert ticket["escalation_level"] == 0 and ticket["response"]["paused"] is False
    valid(spec, "slawatch.v1.GetDashboardResponse", dashboard.body)

    # The query takes the JSON names too, and a page token carries on.
    paged = http_json("GET", f"{bridge.url}/v1/dashboard?pageSize=1", READER)
    assert paged.status == 200 and len(paged.body["tickets"]) == 1
    token = paged.body["next_page_token"]
    page2 = http_json("GET", f"{bridge.url}/v1/dashboard?pageSize=1&page_token={token}", READER)
    assert page2.status == 200 and page2.body["tickets"][0] != paged.body["tickets"][0]


def test_get_ticket_full_view_over_http_carries_the_timelines(
    bridge: Bridge, spec: dict[str, Any]
) -> None:
    """`?view=TICKET_VIEW_FULL` gives each clock its timeline in proto3 JSON: kinds by name,
    RFC 3339 times, counted Durations as "3600s" (zero ones written, not left out), the causes
    with their triggers; the open last segment has no end; the document's schema holds it; the
    default view's timelines are empty."""
    ticket_id = new_id("WHY")
    created = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # Friday, 16:00 in Berlin
    stages = [
        ("TICKET_STATUS_OPEN", created),
        ("TICKET_STATUS_ON_HOLD", datetime(2026, 11, 30, 8, 30, tzinfo=UTC)),
        ("TICKET_STATUS_OPEN", datetime(2026, 11, 30, 11, 0, tzinfo=UTC)),
        ("TICKET_STATUS_RESOLVED", datetime(2026, 11, 30, 12, 0, tzinfo=UTC)),
    ]
    events = [
        ticket_event(
            ticket_id,
            customer_tier="silver",  # on emea_office
            status=status,
            created_at=iso(created),
            updated_at=iso(at),
        )
        for status, at in stages
    ]
    assert ingest(bridge, events).status == 200
    got = http_json("GET", f"{bridge.url}/v1/tickets/{ticket_id}?view=TICKET_VIEW_FULL", READER)
    assert got.status == 200, got
    valid(spec, "slawatch.v1.GetTicketResponse", got.body)
    resolution = got.body["ticket"]["resolution"]
    assert [
        (s["kind"], s["start"], s.get("end"), s["counted"], s["cause"]["trigger"])
        for s in resolution["timeline"]
    ] == [
        (
            "TIMELINE_SEGMENT_KIND_RUNNING",
            "2026-11-27T15:00:00Z",
            "2026-11-27T16:00:00Z",
            "3600s",
            "created",
        ),
        (
            "TIMELINE_SEGMENT_KIND_OUTSIDE_HOURS",
            "2026-11-27T16:00:00Z",
            "2026-11-30T08:00:00Z",
            "0s",
            "calendar",
        ),
        (
            "TIMELINE_SEGMENT_KIND_RUNNING",
            "2026-11-30T08:00:00Z",
            "2026-11-30T08:30:00Z",
            "1800s",
            "calendar",
        ),
        (
            "TIMELINE_SEGMENT_KIND_PAUSED",
            "2026-11-30T08:30:00Z",
            "2026-11-30T11:00:00Z",
            "0s",
            "status:on_hold",
        ),
        (
            "TIMELINE_SEGMENT_KIND_RUNNING",
            "2026-11-30T11:00:00Z",
            "2026-11-30T12:00:00Z",
            "3600s",
            "status:open",
        ),
        ("TIMELINE_SEGMENT_KIND_STOPPED", "2026-11-30T12:00:00Z", None, "0s", "status:resolved"),
    ]
    held = resolution["timeline"][3]["cause"]
    assert held["updated_at"] == "2026-11-30T08:30:00Z"
    assert held["status"] == "TICKET_STATUS_ON_HOLD"
    assert resolution["elapsed"] == "9000s"
    basic = get_ticket(bridge, ticket_id, READER)
    assert basic.status == 200 and basic.body["ticket"]["resolution"]["timeline"] == []


def test_delete_ticket_over_http_needs_admin_and_erases_the_ticket(
    bridge: Bridge, spec: dict[str, Any]
) -> None:
    """DELETE /v1/tickets/{id} is DeleteTicket: refused 403 without the admin role, then the
    ticket is erased (its counts in the body), GetTicket finds nothing and a second DELETE is
    404."""
    ticket_id = new_id("DEL")
    assert ingest(bridge, [ticket_event(ticket_id)]).status == 200
    url = f"{bridge.url}/v1/tickets/{ticket_id}"
    assert_error(http_json("DELETE", url, ALL), 403, "PERMISSION_DENIED")
    assert get_ticket(bridge, ticket_id).status == 200

    erased = http_json("DELETE", url, ADMIN)
    assert erased.status == 200, erased
    assert erased.body == {
        "events_deleted": "1",
        "alerts_deleted": "0",
        "notifications_deleted": "0",
    }
    valid(spec, "slawatch.v1.DeleteTicketResponse", erased.body)
    assert_error(get_ticket(bridge, ticket_id), 404, "NOT_FOUND")
    assert_error(http_json("DELETE", url, ADMIN), 404, "NOT_FOUND")


def test_bad_field_is_400_with_the_field_violations_and_stores_nothing(
    bridge: Bridge, spec: dict[str, Any]
) -> None:
    """A batch with one good and two bad events is INVALID_ARGUMENT -> 400, its body carries the
    server's BadRequest naming each bad field as events[i].field, and the good event is not
    stored either: the same all-or-nothing transaction as over gRPC."""
    good = new_id()
    answer = ingest(
        bridge,
        [ticket_event(good), ticket_event(""), ticket_event(new_id(), priority="urgent")],
    )
    body = assert_error(answer, 400, "INVALID_ARGUMENT")
    valid(spec, "Error", body)
    assert "events[1].ticket_id" in body["message"]
    [detail] = [d for d in body["details"] if d["@type"] == BAD_REQUEST_TYPE]
    fields = {v["field"] for v in detail["field_violations"]}
    assert fields == {"events[1].ticket_id", "events[2].priority"}
    assert_error(get_ticket(bridge, good), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b'{"events": [', "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "JSON object"),
        (b'{"events": [{"ticket_id": "X", "colour": "red"}]}', "colour"),
        (b'{"events": [{"status": "TICKET_STATUS_SHOUTING"}]}', "TICKET_STATUS_SHOUTING"),
        (b'{"events": [{"created_at": "yesterday"}]}', "events[0]"),
    ],
)
def test_a_body_that_is_not_the_message_is_400_naming_the_problem(
    bridge: Bridge, raw: bytes, named: str
) -> None:
    """Malformed JSON, a non-object, an unknown field, an unknown enum name or a bad timestamp
    is refused by the bridge with 400 INVALID_ARGUMENT whose message names the problem; an
    unknown field is never dropped silently."""
    answer = http_json("POST", f"{bridge.url}/v1/tickets:ingest", ALL, raw=raw)
    body = assert_error(answer, 400, "INVALID_ARGUMENT")
    assert named in body["message"], body


def test_query_problems_content_type_and_body_size(bridge: Bridge) -> None:
    """An unknown query parameter or a bad value is 400; a body that is not declared JSON is
    415; a body over SLAWATCH_MAX_MESSAGE_BYTES (the server's limit, read by the bridge too) is
    413 RESOURCE_EXHAUSTED before anything reaches the server."""
    unknown = http_json("GET", f"{bridge.url}/v1/dashboard?colour=red", READER)
    assert "colour" in assert_error(unknown, 400, "INVALID_ARGUMENT")["message"]
    bad_enum = http_json("GET", f"{bridge.url}/v1/dashboard?states=SLA_STATE_SORT_OF", READER)
    assert "SLA_STATE_SORT_OF" in assert_error(bad_enum, 400, "INVALID_ARGUMENT")["message"]
    twice = http_json("GET", f"{bridge.url}/v1/dashboard?page_size=1&page_size=2", READER)
    assert_error(twice, 400, "INVALID_ARGUMENT")
    as_form = http_json(
        "POST",
        f"{bridge.url}/v1/tickets:ingest",
        ALL,
        raw=b"events=1",
        content_type="application/x-www-form-urlencoded",
    )
    assert_error(as_form, 415, "INVALID_ARGUMENT")
    huge = {"events": [ticket_event(new_id()) for _ in range(MAX_BYTES // 150)]}
    too_big = http_json("POST", f"{bridge.url}/v1/tickets:ingest", ALL, huge)
    assert (
        "SLAWATCH_MAX_MESSAGE_BYTES" in assert_error(too_big, 413, "RESOURCE_EXHAUSTED")["message"]
    )


def test_the_server_validates_query_built_requests(bridge: Bridge) -> None:
    """A dashboard page size over the server's limit is the server's INVALID_ARGUMENT with a
    field violation naming page_size, mapped to 400: the server's validation applies unchanged."""
    answer = http_json("GET", f"{bridge.url}/v1/dashboard?page_size=501", READER)
    body = assert_error(answer, 400, "INVALID_ARGUMENT")
    [detail] = body["details"]
    assert detail["field_violations"][0]["field"] == "page_size"


def test_the_dashboard_route_takes_metrics_as_a_repeated_query_parameter(
    bridge: Bridge, spec: dict[str, Any]
) -> None:
    """GET /v1/dashboard?metrics=...: each value reaches GetDashboardRequest.metrics (the
    tickets with a response clock are there, none has a clock of an undefined metric), the
    OpenAPI document lists the parameter, and a bad value is the server's 400 naming it."""
    ticket_id = new_id("MET")
    assert ingest(bridge, [ticket_event(ticket_id)]).status == 200
    url = f"{bridge.url}/v1/dashboard?page_size=500"
    both = http_json("GET", f"{url}&metrics=next_reply&metrics=response", READER)
    assert both.status == 200, both
    assert ticket_id in [t["ticket_id"] for t in both.body["tickets"]]
    valid(spec, "slawatch.v1.GetDashboardResponse", both.body)
    none = http_json("GET", f"{url}&metrics=next_reply", READER)
    assert none.status == 200 and none.body["tickets"] == []
    assert none.body["counts"] == both.body["counts"]  # the page is narrowed, not the counts
    parameters = spec["paths"]["/v1/dashboard"]["get"]["parameters"]
    assert any(p["name"] == "metrics" for p in parameters)
    bad = assert_error(http_json("GET", f"{url}&metrics=", READER), 400, "INVALID_ARGUMENT")
    assert bad["details"][0]["field_violations"][0]["field"] == "metrics[0]"


# -- tokens and roles ----------------------------------------------------------------------------


def test_missing_or_unknown_token_is_401(bridge: Bridge) -> None:
    """No token, an unknown token, a malformed header, or the token in the URL (not accepted on
    these routes) is 401 UNAUTHENTICATED with WWW-Authenticate: Bearer, on every route."""
    calls = [
        ("POST", f"{bridge.url}/v1/tickets:ingest", {"events": []}),
        ("GET", f"{bridge.url}/v1/tickets/ACME-1", None),
        ("GET", f"{bridge.url}/v1/dashboard", None),
    ]
    for method, url, body in calls:
        for token in (None, "not-a-token"):
            answer = http_json(method, url, token, body)
            assert_error(answer, 401, "UNAUTHENTICATED")
            assert answer.headers["WWW-Authenticate"] == "Bearer"
    in_url = http_json("GET", f"{bridge.url}/v1/dashboard?token={READER}")
    assert_error(in_url, 401, "UNAUTHENTICATED")


def test_wrong_role_is_403_from_the_server(bridge: Bridge) -> None:
    """A read-only token may read but not ingest, and a watch-only token may not read: the
    server's PERMISSION_DENIED, mapped to 403 with its message naming the missing role."""
    refused = ingest(bridge, [ticket_event(new_id())], READER)
    assert "'ingest'" in assert_error(refused, 403, "PERMISSION_DENIED")["message"]
    watcher = http_json("GET", f"{bridge.url}/v1/dashboard", secret("acme-watcher"))
    assert "'read'" in assert_error(watcher, 403, "PERMISSION_DENIED")["message"]
    assert http_json("GET", f"{bridge.url}/v1/dashboard", READER).status == 200


def test_unknown_ticket_is_404_and_tenants_stay_apart(bridge: Bridge) -> None:
    """An unknown ticket is NOT_FOUND -> 404; another tenant's ticket is unknown too, since the
    tenant comes from the caller's own token, forwarded by the bridge."""
    assert_error(get_ticket(bridge, "NO-SUCH-TICKET"), 404, "NOT_FOUND")
    mine = new_id()
    assert ingest(bridge, [ticket_event(mine)]).status == 200
    assert get_ticket(bridge, mine).status == 200
    assert_error(get_ticket(bridge, mine, secret("globex-all")), 404, "NOT_FOUND")


def test_ticket_ids_with_slashes_and_spaces_travel_url_encoded(bridge: Bridge) -> None:
    """A ticket id may hold any printable character: URL-encoded in the path ('/' as %2F) it
    reaches GetTicket whole, not cut at the slash nor matched to another route."""
    odd = f"{new_id()}/a b?c"
    assert ingest(bridge, [ticket_event(odd)]).status == 200
    got = get_ticket(bridge, urllib.parse.quote(odd, safe=""))
    assert got.status == 200, got
    assert got.body["ticket"]["ticket_id"] == odd


# -- limits, the server down, slow calls ---------------------------------------------------------


def test_rate_limit_is_429_with_retry_after(
    pg_admin_url: str, template_db: str, tmp_path: Path
) -> None:
    """Past the server's per-token rate limit the answer is 429 RESOURCE_EXHAUSTED, with the
    server's ErrorInfo (RATE_LIMITED) and RetryInfo in the body and Retry-After from it."""
    limits = {"SLAWATCH_RATE_LIMIT_PER_SECOND": "0.05", "SLAWATCH_RATE_LIMIT_BURST": "1"}
    with (
        own_database(pg_admin_url, template_db, "h") as url,
        secure_server(url, tmp_path, **limits) as server,
        run_bridge(f"127.0.0.1:{server.port}", **BRIDGE_ENV) as b,
    ):
        first = http_json("GET", f"{b.url}/v1/dashboard", READER)
        assert first.status == 200, first
        answer = http_json("GET", f"{b.url}/v1/dashboard", READER)
        body = assert_error(answer, 429, "RESOURCE_EXHAUSTED")
        types = {d["@type"].rsplit("/", 1)[1]: d for d in body["details"]}
        assert types["google.rpc.ErrorInfo"]["reason"] == "RATE_LIMITED"
        delay = float(types["google.rpc.RetryInfo"]["retry_delay"].removesuffix("s"))
        assert 1 <= int(answer.headers["Retry-After"]) <= 20
        assert int(answer.headers["Retry-After"]) >= delay


def test_a_token_the_server_refuses_is_401_from_the_server(
    pg_admin_url: str, template_db: str, tmp_path: Path
) -> None:
    """A token the bridge knows but the server no longer does (revoked on the server first) is
    the server's UNAUTHENTICATED, mapped to 401 like the bridge's own refusal."""
    fewer = {k: v for k, v in TOKENS.items() if k != "acme-reader"}
    with (
        own_database(pg_admin_url, template_db, "h") as url,
        secure_server(url, tmp_path, SLAWATCH_TOKENS=tokens_json(fewer)) as server,
        run_bridge(f"127.0.0.1:{server.port}", **BRIDGE_ENV) as b,
    ):
        answer = http_json("GET", f"{b.url}/v1/dashboard", READER)
        assert "metadata" in assert_error(answer, 401, "UNAUTHENTICATED")["message"]
        assert http_json("GET", f"{b.url}/v1/dashboard", ALL).status == 200


def test_server_down_is_503() -> None:
    """With no server behind the bridge every route answers 503 UNAVAILABLE, with a fixed
    message (not the transport's, which names internal addresses) that says to retry."""
    with run_bridge(f"127.0.0.1:{free_port()}", **BRIDGE_ENV) as b:
        for answer in (
            ingest(b, [ticket_event(new_id())]),
            get_ticket(b, "ACME-1"),
            http_json("GET", f"{b.url}/v1/dashboard", READER),
        ):
            body = assert_error(answer, 503, "UNAVAILABLE")
            assert "retry" in body["message"] and "127.0.0.1" not in body["message"]


@contextlib.contextmanager
def tickets_locked(database_url: str) -> Iterator[None]:
    """Every write to the tickets table waits while this holds: an ingest becomes slow."""
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("LOCK TABLE tickets IN EXCLUSIVE MODE")
        yield


def test_the_event_loop_stays_responsive_during_a_slow_call(bridge: Bridge, module_db: str) -> None:
    """While an ingest waits on the database, the bridge keeps answering (its /livez is served
    by the event loop itself); the ingest completes once the database lets it. An ingest that
    waits longer than SLAWATCH_BRIDGE_CALL_TIMEOUT_SECONDS is DEADLINE_EXCEEDED -> 504."""
    results: list[HttpAnswer] = []
    slow_id = new_id()
    with tickets_locked(module_db):
        caller = threading.Thread(
            target=lambda: results.append(ingest(bridge, [ticket_event(slow_id)]))
        )
        caller.start()
        time.sleep(0.5)  # the ingest is in flight, waiting on the lock
        for _ in range(5):
            started = time.monotonic()
            assert http_json("GET", f"{bridge.url}/livez").status == 200
            assert time.monotonic() - started < 2.0  # a blocked loop: not before the lock
            time.sleep(0.1)
        assert not results, "the ingest cannot have finished while the table is locked"
    caller.join(30)
    assert results[0].status == 200, results[0]
    assert get_ticket(bridge, slow_id).status == 200

    with tickets_locked(module_db):
        started = time.monotonic()
        late = ingest(bridge, [ticket_event(new_id())])
        assert time.monotonic() - started >= CALL_TIMEOUT - 0.5
    assert "retry" in assert_error(late, 504, "DEADLINE_EXCEEDED")["message"]


# -- the OpenAPI document ------------------------------------------------------------------------


def operations_of(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


def test_every_route_is_in_the_document_and_every_document_path_is_served(
    bridge: Bridge, spec: dict[str, Any]
) -> None:
    """The routes the bridge's app serves under /v1 are exactly the document's operations
    (paths and methods); each documented operation answers on the running bridge (not 404 or
    405); the served document is the one built from the descriptors; it declares the bearer
    scheme; and every unary TicketService RPC has a route (WatchAlerts stays on /ws/alerts)."""
    settings = BridgeSettings(tokens_json=tokens_json())
    app = make_app(settings, BridgeAuth.from_settings(settings))
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/v1/")
    }
    assert served == operations_of(spec)
    assert spec == json.loads(json.dumps(document()))

    for method, path in operations_of(spec):
        url = bridge.url + path.replace("{ticket_id}", "ACME-1").replace("{alert_id}", "1")
        answer = http_json(method, url, None, {} if method == "POST" else None)
        assert answer.status not in (404, 405), (method, path, answer)

    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert spec["security"] == [{"bearerAuth": []}]
    unary = {m.name for m in SERVICE.methods if not (m.client_streaming or m.server_streaming)}
    assert {r.rpc for r in ROUTES} == unary
    jsonschema.Draft202012Validator.check_schema(spec["components"]["schemas"]["Error"])


def test_document_schemas_follow_the_descriptors(spec: dict[str, Any]) -> None:
    """Each message schema lists exactly its descriptor's fields (so a field added to the proto
    appears by itself) and each enum schema its values; the request bodies and answers refer
    to the schemas of the RPC's own messages."""
    schemas = spec["components"]["schemas"]
    for route in ROUTES:
        messages = (
            (route.request_type, route.response_type) if route.body else (route.response_type,)
        )
        for message in messages:
            schema = schemas[message.full_name]
            assert set(schema["properties"]) == {f.name for f in message.fields}
        operation = spec["paths"][route.path][route.method.lower()]
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{route.response_type.full_name}"}
        if route.body:
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            assert body == {"$ref": f"#/components/schemas/{route.request_type.full_name}"}
        else:
            names = {p["name"] for p in operation["parameters"]}
            settable = {f.name for f in route.request_type.fields if protojson.query_settable(f)}
            assert names == settable
    status = schemas["slawatch.v1.TicketStatus"]["enum"]
    assert "TICKET_STATUS_OPEN" in status and "TICKET_STATUS_CLOSED" in status
