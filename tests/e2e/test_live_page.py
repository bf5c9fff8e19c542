"""The live page in a real headless Chromium (Debian's `chromium`, driven by Playwright), against a
token-protected server and bridge: opened with its token in the URL, it keeps the token out of
the address bar; an alert produced by ingest and evaluation appears; the bridge restarts while
more alerts are written; the page reconnects with the last id it showed and shows exactly the
alerts it missed. Opened without a token, it asks for one."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from internal.embedded.ports import free_port
from internal.rpc.server import RunningServer, start_server
from internal.usecase.evaluate import evaluate_batch
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.alerts import NOW as ALERTS_NOW
from support.alerts import breach_by_evaluation
from support.bridge import run_bridge
from support.configs import config_text
from support.env import make_settings
from support.events import event, ts
from support.tokens import bearer, secret, tokens_json

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: `apt-get install -y chromium` (the Makefile installs it)"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if _is_script_error(msg) else None,
    )
    yield page
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def _is_script_error(msg: ConsoleMessage) -> bool:
    # The browser logs failed WebSocket handshakes while the bridge is down, and the dashboard's
    # 401 before a token is given; those are expected.
    return (
        msg.type == "error"
        and "WebSocket" not in msg.text
        and "ERR_" not in msg.text
        and "401" not in msg.text
    )


SECURE = {"SLAWATCH_INSECURE_DEV": "", "SLAWATCH_TOKENS": tokens_json()}


@pytest.fixture
def secure_server(database_url: str, config_path: Path) -> Iterator[RunningServer]:
    running = start_server(make_settings(database_url, config_path, **SECURE), bind="127.0.0.1")
    yield running
    running.stop(grace=1)


@pytest.fixture
def acme_stub(secure_server: RunningServer) -> Iterator[pb_grpc.TicketServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{secure_server.port}") as channel:
        yield pb_grpc.TicketServiceStub(channel)


def test_live_page_shows_alerts_and_catches_up_after_a_bridge_restart(
    secure_server: RunningServer,
    acme_stub: pb_grpc.TicketServiceStub,
    database_url: str,
    page: Page,
) -> None:
    """What an operator sees: opened with `?token=` (as `make run` prints it), the page drops
    the token from the address bar and keeps it for the tab; the connection is live, a breach
    appears coloured as a breach with its level, the breached count follows; when the bridge
    restarts the page says it is reconnecting, then shows the alerts written meanwhile, each
    once, still authenticated."""
    target = f"127.0.0.1:{secure_server.port}"
    port = free_port()
    config = secure_server.config.current
    acme = bearer("acme-all")

    with run_bridge(target, port=port, **SECURE) as bridge:
        bridge.wait_up()
        page.goto(f"{bridge.url}/?token={secret('acme-all')}")
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        expect(page.locator("#upstream")).to_have_attribute("data-state", "up", timeout=WAIT_MS)
        assert "token" not in page.url
        stored = page.evaluate("() => window.sessionStorage.getItem('slawatch.token')")
        assert stored == secret("acme-all")

        first = breach_by_evaluation(acme_stub, database_url, config, "PAGE-1", metadata=acme)
        item = page.locator(f'#feed li[data-alert-id="{first[0]}"]')
        expect(item).to_be_visible(timeout=WAIT_MS)
        expect(item).to_have_class(re.compile(r"\bkind-breach\b.*\blevel-3\b"))
        expect(item).to_contain_text("PAGE-1")
        expect(page.locator("#count-breached")).to_have_text("1", timeout=WAIT_MS)
        expect(page.locator("#last-alert-id")).to_have_text(str(first[0]))

    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "reconnecting", timeout=WAIT_MS
    )
    missed = breach_by_evaluation(acme_stub, database_url, config, "PAGE-2", metadata=acme)
    missed += breach_by_evaluation(acme_stub, database_url, config, "PAGE-3", metadata=acme)

    with run_bridge(target, port=port, **SECURE) as bridge:
        bridge.wait_up()
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        for alert_id in missed:
            expect(page.locator(f'#feed li[data-alert-id="{alert_id}"]')).to_be_visible(
                timeout=WAIT_MS
            )
        expect(page.locator("#count-breached")).to_have_text("3", timeout=WAIT_MS)
        shown = page.locator("#feed li").evaluate_all(
            "items => items.map(i => Number(i.dataset.alertId))"
        )
    assert shown == sorted(first + missed, reverse=True)


def test_live_page_asks_for_a_token_and_shows_only_that_tenant(
    secure_server: RunningServer,
    acme_stub: pb_grpc.TicketServiceStub,
    database_url: str,
    page: Page,
) -> None:
    """Opened without a token, the bridge refuses the page's WebSocket (4401) and the page shows
    a token field instead of retrying; a globex token entered there connects, and an acme
    breach does not appear while a globex one does."""
    config = secure_server.config.current
    with run_bridge(f"127.0.0.1:{secure_server.port}", **SECURE) as bridge:
        bridge.wait_up()
        page.goto(bridge.url + "/")
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "unauthorized", timeout=WAIT_MS
        )
        expect(page.locator("#token-form")).to_be_visible()

        page.locator("#token-input").fill(secret("globex-all"))
        page.locator("#token-form button").click()
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        expect(page.locator("#token-form")).to_be_hidden()

        theirs = breach_by_evaluation(
            acme_stub, database_url, config, "ACME-1", metadata=bearer("acme-all")
        )
        mine = breach_by_evaluation(
            acme_stub, database_url, config, "GLOBEX-1", metadata=bearer("globex-all")
        )
        expect(page.locator(f'#feed li[data-alert-id="{mine[0]}"]')).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#count-breached")).to_have_text("1", timeout=WAIT_MS)
        assert page.locator(f'#feed li[data-alert-id="{theirs[0]}"]').count() == 0
        assert page.locator("#feed li").count() == 1


ACK_TOKENS = {
    "acme-all": ("acme", ["ingest", "read", "watch"]),
    "acme-oncall": ("acme", ["read", "watch", "ack"]),
}


def test_an_operator_acknowledges_an_alert_from_the_page(
    database_url: str, config_path: Path, page: Page
) -> None:
    """The Acknowledge button of an alert posts AcknowledgeAlert with the page's token: with a
    token that has the ack role the item says who acknowledged it and the button goes; the
    server has the acknowledgement, by that token's name. Other pages connected at the time get
    the change through the feed."""
    secure = {"SLAWATCH_INSECURE_DEV": "", "SLAWATCH_TOKENS": tokens_json(ACK_TOKENS)}
    server = start_server(make_settings(database_url, config_path, **secure), bind="127.0.0.1")
    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
            run_bridge(f"127.0.0.1:{server.port}", **secure) as bridge,
        ):
            stub = pb_grpc.TicketServiceStub(channel)
            bridge.wait_up()
            watcher = page.context.new_page()
            watcher.goto(f"{bridge.url}/?token={secret('acme-all')}")
            page.goto(f"{bridge.url}/?token={secret('acme-oncall')}")
            for p in (page, watcher):
                expect(p.locator("#connection")).to_have_attribute(
                    "data-state", "live", timeout=WAIT_MS
                )
            [alert_id] = breach_by_evaluation(
                stub, database_url, server.config.current, "ACK-1", metadata=bearer("acme-all")
            )
            item = page.locator(f'#feed li[data-alert-id="{alert_id}"]')
            button = item.get_by_role("button", name="Acknowledge")
            expect(button).to_be_visible(timeout=WAIT_MS)
            button.focus()
            page.keyboard.press("Enter")
            expect(item).to_contain_text("acknowledged by acme-oncall", timeout=WAIT_MS)
            expect(button).to_be_hidden()
            watched = watcher.locator(f'#feed li[data-alert-id="{alert_id}"]')
            expect(watched).to_contain_text("acknowledged by acme-oncall", timeout=WAIT_MS)

            answer = stub.GetTicket(
                pb.GetTicketRequest(ticket_id="ACK-1"), metadata=bearer("acme-all")
            )
            assert [a.acknowledged_by for a in answer.alerts] == ["acme-oncall"]
    finally:
        server.stop(grace=1)


def test_live_page_names_each_clock_by_its_metric_in_words(
    database_url: str, tmp_path: Path, page: Page
) -> None:
    """Under a config with a next_reply metric, the most-urgent table lists each ticket's clocks
    by metric name in words with the cycle past the first ("next reply (cycle 2)", "resolution"),
    and an alert of that metric says "next reply" in the feed, not only response/resolution."""
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
    running = start_server(make_settings(database_url, path, **SECURE), bind="127.0.0.1")
    customer, agent = pb.TICKET_ACTIVITY_CUSTOMER_REPLY, pb.TICKET_ACTIVITY_AGENT_REPLY
    now = datetime.now(UTC).replace(microsecond=0)

    def reply(ticket_id: str, who: int, at: datetime, created: datetime) -> pb.TicketEvent:
        return pb.TicketEvent(
            ticket_id=ticket_id,
            priority="high",
            customer_tier="gold",
            activity=who,  # type: ignore[arg-type]
            created_at=ts(created),
            updated_at=ts(at),
        )

    created = now - timedelta(hours=2)
    late = ALERTS_NOW - timedelta(hours=2)  # its wait breaches at the evaluation instant
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            pb_grpc.TicketServiceStub(channel).IngestTickets(
                pb.IngestTicketsRequest(
                    events=[
                        reply("WAITS-TWICE", customer, created, created),
                        reply("WAITS-TWICE", agent, created + timedelta(minutes=5), created),
                        reply("WAITS-TWICE", customer, now - timedelta(minutes=10), created),
                        reply("LATE-REPLY", customer, late, late),
                    ]
                ),
                metadata=bearer("acme-all"),
                timeout=30,
            )
        with run_bridge(f"127.0.0.1:{running.port}", **SECURE) as bridge:
            bridge.wait_up()
            page.goto(f"{bridge.url}/?token={secret('acme-all')}")
            expect(page.locator("#connection")).to_have_attribute(
                "data-state", "live", timeout=WAIT_MS
            )
            row = page.locator("#urgent tbody tr", has_text="WAITS-TWICE")
            expect(row.locator('.clock[data-metric="next_reply"]')).to_have_text(
                re.compile(r"^next reply \(cycle 2\): ok, due "), timeout=WAIT_MS
            )
            expect(row.locator('.clock[data-metric="resolution"]')).to_have_text(
                re.compile(r"^resolution: ok, due ")
            )
            with psycopg.connect(database_url) as conn:
                alert_ids = evaluate_batch(conn, running.config.current, ALERTS_NOW).alerts
            assert alert_ids
            item = page.locator(f'#feed li[data-alert-id="{max(alert_ids)}"]')
            expect(item).to_contain_text("next reply clock", timeout=WAIT_MS)
            expect(item).to_contain_text("LATE-REPLY")
    finally:
        running.stop(grace=1)


VIEWPORT = {"width": 1280, "height": 800}
REPORT_DAYS = 5
WATCH_CSP = """() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
        window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
}"""
NO_HORIZONTAL_SCROLL = (
    "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
)


def _report_tickets(stub: pb_grpc.TicketServiceStub) -> None:
    """For each of REPORT_DAYS days (the last one two days ago), three high/gold tickets at
    10:00 UTC: one answered in 5 minutes and resolved in an hour (both clocks achieved), one
    answered after 40 minutes, one never touched (both breached): per day 2 achieved, 4 breached."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    shapes = {
        "quick": [(5, pb.TICKET_STATUS_IN_PROGRESS), (60, pb.TICKET_STATUS_RESOLVED)],
        "late": [(40, pb.TICKET_STATUS_IN_PROGRESS)],
        "ignored": [],
    }
    events = []
    for day in range(REPORT_DAYS):
        created = today - timedelta(days=REPORT_DAYS + 1 - day, hours=-10)
        for shape, later in shapes.items():
            ticket_id = f"REPORT-{shape}-{day}"
            for after, status in [(0, pb.TICKET_STATUS_OPEN), *later]:
                events.append(
                    event(
                        ticket_id,
                        status,
                        created=created,
                        updated=created + timedelta(minutes=after),
                    )
                )
    stub.IngestTickets(
        pb.IngestTicketsRequest(events=events), metadata=bearer("acme-all"), timeout=30
    )


def _fits_the_window(page: Page) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert page.evaluate(NO_HORIZONTAL_SCROLL), f"scrollWidth, innerWidth: {width}"


def test_ticket_view_report_view_and_csv_download(
    secure_server: RunningServer,
    acme_stub: pb_grpc.TicketServiceStub,
    database_url: str,
    page: Page,
    tmp_path: Path,
) -> None:
    """At 1280x800, with no horizontal scrolling in any view: the ticket of a new alert opens
    from the alert (by keyboard) and from the urgent-tickets table, showing each clock with its
    timeline bar (response running then stopped; resolution running, paused, running), the
    ticket's three events, and the alert with its notification's delivery state. The report
    view draws the last 30 days' attainment as SVG bars, one per day with decided clocks, beside
    a table of the same days; its Download CSV saves the bridge's CSV of that report."""
    _report_tickets(acme_stub)
    page.set_viewport_size(VIEWPORT)
    with run_bridge(f"127.0.0.1:{secure_server.port}", **SECURE) as bridge:
        bridge.wait_up()
        answer = page.goto(f"{bridge.url}/?token={secret('acme-all')}")
        assert answer is not None
        csp = answer.headers["content-security-policy"]
        assert csp.startswith("default-src 'self';") and "unsafe" not in csp, csp
        page.evaluate(WATCH_CSP)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)

        [alert_id] = breach_by_evaluation(
            acme_stub,
            database_url,
            secure_server.config.current,
            "VIEW-1",
            metadata=bearer("acme-all"),
        )
        held = ALERTS_NOW + timedelta(minutes=5)
        acme_stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[
                    event(
                        "VIEW-1",
                        pb.TICKET_STATUS_ON_HOLD,
                        created=held - timedelta(minutes=25),
                        updated=held,
                    ),
                    event(
                        "VIEW-1",
                        pb.TICKET_STATUS_OPEN,
                        created=held - timedelta(minutes=25),
                        updated=held + timedelta(hours=1),
                    ),
                ]
            ),
            metadata=bearer("acme-all"),
            timeout=30,
        )
        expect(page.locator("#urgent tbody tr", has_text="REPORT-ignored-0")).to_be_visible(
            timeout=WAIT_MS
        )
        _fits_the_window(page)
        page.screenshot(path=tmp_path / "live.png", full_page=True)

        # From the alert, by keyboard: the ticket id is a link.
        link = page.locator(f'#feed li[data-alert-id="{alert_id}"] a', has_text="VIEW-1")
        expect(link).to_be_visible(timeout=WAIT_MS)
        link.focus()
        page.keyboard.press("Enter")
        view = page.locator("#ticket-view")
        expect(view).to_be_visible()
        expect(page.locator("#live-view")).to_be_hidden()
        expect(page.locator("#ticket-title")).to_have_text("Ticket VIEW-1")
        response = view.locator('tr.clock-row[data-metric="response"]')
        expect(response.locator("rect.seg")).to_have_count(2, timeout=WAIT_MS)
        kinds = "rects => rects.map(r => r.getAttribute('class'))"
        assert response.locator("rect.seg").evaluate_all(kinds) == [
            "seg seg-running",
            "seg seg-stopped",
        ]
        resolution = view.locator('tr.clock-row[data-metric="resolution"]')
        assert resolution.locator("rect.seg").evaluate_all(kinds) == [
            "seg seg-running",
            "seg seg-paused",
            "seg seg-running",
        ]
        expect(response).to_contain_text("breached, stopped")
        history = view.locator("#ticket-history tbody tr")
        expect(history).to_have_count(3)
        expect(history.nth(1)).to_contain_text("on_hold")
        alert = view.locator(f'#ticket-alerts li[data-alert-id="{alert_id}"]')
        expect(alert).to_contain_text("breach · level 3")
        notification = alert.locator("table.notifications tbody tr")
        expect(notification).to_have_count(1)
        expect(notification).to_contain_text("lead")
        expect(notification.locator("td").nth(2)).to_have_text(
            re.compile(r"^(pending|sent|failed)$")
        )
        _fits_the_window(page)
        page.screenshot(path=tmp_path / "ticket.png", full_page=True)

        # Back, and the same ticket from the urgent-tickets table.
        page.get_by_role("link", name="Back to live alerts").click()
        expect(page.locator("#live-view")).to_be_visible()
        page.locator("#urgent tbody a", has_text="VIEW-1").click()
        expect(page.locator("#ticket-title")).to_have_text("Ticket VIEW-1")
        expect(view.locator("tr.clock-row")).to_have_count(2, timeout=WAIT_MS)

        page.get_by_role("link", name="Report").click()
        report = page.locator("#report-view")
        expect(report).to_be_visible()
        bars = report.locator("#report-chart svg rect.bar")
        expect(bars).to_have_count(REPORT_DAYS, timeout=WAIT_MS)
        heights = bars.evaluate_all("bars => bars.map(b => b.getBBox().height)")
        assert all(h > 10 for h in heights), heights  # 2 of 6: a third of the plot
        rows = report.locator("#report-table tbody tr")
        expect(rows).to_have_count(REPORT_DAYS)
        expect(rows.first).to_contain_text("33.3%")
        _fits_the_window(page)
        page.screenshot(path=tmp_path / "report.png", full_page=True)

        with page.expect_download(timeout=WAIT_MS) as download_info:
            page.get_by_role("button", name="Download CSV").click()
        download = download_info.value
        assert re.fullmatch(r"sla-report-day-\d{8}-\d{8}\.csv", download.suggested_filename)
        header, *lines = csv.reader(io.StringIO(Path(download.path()).read_text()))
        # Nothing the views draw needs an inline style or script the CSP would refuse.
        assert page.evaluate("() => window.cspViolations") == []
    assert header == [
        "interval_start",
        "interval_end",
        "achieved",
        "breached",
        "attainment",
        "p50_elapsed_seconds",
        "p90_elapsed_seconds",
        "running_past_target",
    ]
    assert len(lines) == REPORT_DAYS
    assert {(line[2], line[3], line[7]) for line in lines} == {("2", "4", "3")}
