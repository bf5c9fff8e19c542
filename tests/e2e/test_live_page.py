"""The live page in a real headless Chromium (Debian's `chromium`, driven by Playwright): an alert
produced by ingest and evaluation appears; the bridge restarts while more alerts are written;
the page reconnects with the last id it showed and shows exactly the alerts it missed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from internal.embedded.ports import free_port
from internal.rpc.server import RunningServer
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.alerts import breach_by_evaluation
from support.bridge import run_bridge

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
    # The browser logs failed WebSocket handshakes while the bridge is down; those are expected.
    return msg.type == "error" and "WebSocket" not in msg.text and "ERR_" not in msg.text


def test_live_page_shows_alerts_and_catches_up_after_a_bridge_restart(
    server: RunningServer, stub: pb_grpc.TicketServiceStub, database_url: str, page: Page
) -> None:
    """What an operator sees: the connection is live, a breach appears coloured as a breach with
    its level, the breached count follows; when the bridge restarts the page says it is
    reconnecting, then shows the alerts written meanwhile, each once."""
    target = f"127.0.0.1:{server.port}"
    port = free_port()
    config = server.config.current

    with run_bridge(target, port=port) as bridge:
        bridge.wait_up()
        page.goto(bridge.url + "/")
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        expect(page.locator("#upstream")).to_have_attribute("data-state", "up", timeout=WAIT_MS)

        first = breach_by_evaluation(stub, database_url, config, "PAGE-1")
        item = page.locator(f'#feed li[data-alert-id="{first[0]}"]')
        expect(item).to_be_visible(timeout=WAIT_MS)
        expect(item).to_have_class(re.compile(r"\bkind-breach\b.*\blevel-3\b"))
        expect(item).to_contain_text("PAGE-1")
        expect(page.locator("#count-breached")).to_have_text("1", timeout=WAIT_MS)
        expect(page.locator("#last-alert-id")).to_have_text(str(first[0]))

    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "reconnecting", timeout=WAIT_MS
    )
    missed = breach_by_evaluation(stub, database_url, config, "PAGE-2")
    missed += breach_by_evaluation(stub, database_url, config, "PAGE-3")

    with run_bridge(target, port=port) as bridge:
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
