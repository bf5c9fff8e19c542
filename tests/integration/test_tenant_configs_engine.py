"""Per-tenant SLA configs end to end (DESIGN §9): real server, worker and scheduler processes on
a directory of `<tenant>.yaml` files, real PostgreSQL and Redis, a loopback Slack stand-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import yaml

from internal.config.sla_config import parse_config
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import config_text
from support.events import event
from support.fake_slack import FakeSlack
from support.ops import engine_env, server_process
from support.tokens import bearer, save_by_rename, tokens_json
from support.workers import Processes, poll, rows

SECURE = {"SLAWATCH_INSECURE_DEV": "", "SLAWATCH_TOKENS": tokens_json()}


def tenant_config(response: str, resolution: str, level: int, **channel: str) -> str:
    """One tenant's whole config: its own targets, one breach step of its own level, and its
    `team` channel (where its webhook is: `channel`)."""
    return config_text(
        escalation=[{"at_percent": 100, "level": level, "kind": "breach", "notify": ["team"]}],
        channels={"team": channel},
        policies={"high": {"gold": {"response": response, "resolution": resolution}}},
    )


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def ingest(target: str, token: str, ticket_id: str) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.TicketServiceStub(channel)
        ev = event(ticket_id, created=datetime.now(UTC))
        stub.IngestTickets(pb.IngestTicketsRequest(events=[ev]), metadata=bearer(token))


def test_each_tenant_breach_reaches_only_its_own_slack_channel(
    database_url: str, redis_url: str, slack: FakeSlack, tmp_path: Path
) -> None:
    """acme and globex each have their own file: different targets, ladder levels and `team`
    webhooks (acme's in a variable, globex's in a `slack_webhook_file`). Each tenant's breach
    reaches its own Slack stand-in path only, at its own level, and the two `team` channels
    keep two breaker/pacing rows."""
    configs = tmp_path / "configs"
    configs.mkdir()
    hook_file = tmp_path / "globex-hook"
    hook_file.write_text(slack.url("/hooks/globex") + "\n")
    (configs / "acme.yaml").write_text(tenant_config("2s", "1h", 3, slack_webhook_env="ACME_HOOK"))
    (configs / "globex.yaml").write_text(
        tenant_config("4s", "2h", 7, slack_webhook_file=str(hook_file))
    )
    env = engine_env(
        database_url, redis_url, configs, slack, ACME_HOOK=slack.url("/hooks/acme"), **SECURE
    )
    procs = Processes(env, tmp_path)
    try:
        with server_process(database_url, configs, tmp_path, **SECURE) as server:
            procs.worker()
            procs.scheduler()
            ingest(server.target, "acme-all", "A-1")
            ingest(server.target, "globex-all", "G-1")
            (acme,) = slack.wait_for(1, "/hooks/acme", timeout=60)
            (globex,) = slack.wait_for(1, "/hooks/globex", timeout=60)
    finally:
        procs.stop_all()
        print(procs.logs())
    assert "A-1" in str(acme.body) and "G-1" not in str(acme.body)
    assert "G-1" in str(globex.body) and "A-1" not in str(globex.body)
    assert slack.requests("/hooks/team") == []  # the stand-in's default path: nobody's
    levels = dict(rows(database_url, "SELECT ticket_id, escalation_level FROM alerts"))
    assert levels == {"A-1": 3, "G-1": 7}
    assert sorted(rows(database_url, "SELECT scope, channel FROM delivery_channels")) == [
        ("acme", "team"),
        ("globex", "team"),
    ]


def clock_rows(database_url: str, tenant: str) -> list[tuple[object, ...]]:
    return rows(
        database_url,
        "SELECT c.ticket_id, c.clock, c.target_s, c.due_at, c.next_check_at, t.policy_version"
        " FROM sla_clocks c JOIN tickets t USING (tenant_id, ticket_id)"
        " WHERE c.tenant_id = %s ORDER BY 1, 2",
        tenant,
    )


def test_a_broken_tenant_file_is_refused_while_another_tenants_edit_applies(
    database_url: str, tmp_path: Path
) -> None:
    """acme's file is saved broken and globex's edited at once: acme's is refused (the log names
    the file and the key), acme keeps its config (new tickets still get its version) and its
    clock rows are untouched; globex's edit applies and its open tickets are recomputed."""
    configs = tmp_path / "configs"
    configs.mkdir()
    acme_text = tenant_config("15m", "2h", 3, slack_webhook_env="ACME_HOOK")
    (configs / "acme.yaml").write_text(acme_text)
    (configs / "globex.yaml").write_text(
        tenant_config("15m", "2h", 3, slack_webhook_env="GLOBEX_HOOK")
    )
    acme_version = parse_config(acme_text).version
    with server_process(database_url, configs, tmp_path, **SECURE) as server:
        ingest(server.target, "acme-all", "A-1")
        ingest(server.target, "globex-all", "G-1")
        acme_before = clock_rows(database_url, "acme")
        globex_before = clock_rows(database_url, "globex")

        broken = yaml.safe_load(acme_text)
        broken["policies"]["high"]["gold"]["resolution"] = "soon"
        edited = tenant_config("15m", "6h", 3, slack_webhook_env="GLOBEX_HOOK")
        save_by_rename(configs / "acme.yaml", yaml.safe_dump(broken))
        save_by_rename(configs / "globex.yaml", edited)
        new_globex = parse_config(edited).version
        poll(
            lambda: all(r[-1] == new_globex for r in clock_rows(database_url, "globex")),
            what="globex's tickets recomputed under its edit",
        )
        poll(lambda: "refused new SLA config" in server.log_text(), what="acme's refusal")
        ingest(server.target, "acme-all", "A-2")
        log_text = server.log_text()
    globex_after = clock_rows(database_url, "globex")
    resolution = [r for r in globex_after if r[1] == "resolution"]
    assert [r[2] for r in resolution] == [6 * 3600.0] and globex_after != globex_before
    acme_after = clock_rows(database_url, "acme")
    assert [r for r in acme_after if r[0] == "A-1"] == acme_before  # untouched
    assert {r[-1] for r in acme_after} == {acme_version}  # A-2 too: acme's last good config
    (refusal,) = [line for line in log_text.splitlines() if "refused new SLA config" in line]
    assert re.search(r"acme\.yaml.*policies\.high\.gold\.resolution", refusal), refusal
    assert rows(
        database_url, "SELECT tenant_id FROM policy_versions WHERE version = %s", new_globex
    ) == [("globex",)]
