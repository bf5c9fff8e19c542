"""PreviewPolicy, GetPolicy and ListPolicyVersions through a real server on a real database.

The preview's promise is checked against the real thing: the counts it gives for a candidate
equal what saving that candidate then does to the stored tickets (read back through GetTicket
after the recompute). It writes nothing, refuses an invalid candidate with the reload's own
message, and needs the admin role. GetPolicy and ListPolicyVersions are checked after three
saves."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from internal.config.sla_config import ConfigError, parse_config
from internal.config.tokens import hash_token
from internal.rpc.server import RunningServer, start_server
from slawatch.client import SlawatchClient
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.configs import config_text
from support.env import StubFactory, make_settings
from support.events import event
from support.servers import wait_for
from support.tokens import save_by_rename

# Targets chosen so that no ticket below is within minutes of a warning or a breach instant
# under either config: the preview and the apply, seconds apart, see the same states.
CURRENT = {
    "high": {"gold": {"response": "15m", "resolution": "4h"}},
    "low": {
        "gold": {"response": "1h", "resolution": "12h"},
        "silver": {"response": "2h", "resolution": "24h"},
    },
    "medium": {"gold": {"response": "1h", "resolution": "12h"}},
}
CANDIDATE = {
    "high": {"gold": {"response": "30m", "resolution": "2h"}},
    "low": {
        "gold": {"response": "2h", "resolution": "6h"},
        "silver": {"response": "1h", "resolution": "24h"},
    },
    # No medium: those tickets match nothing, and applying keeps their clocks.
}
AGES_MINUTES = (5, 40, 80, 150, 270, 450, 900)
KINDS = (("high", "gold"), ("low", "gold"), ("low", "silver"), ("medium", "gold"))


def save(path: Path, text: str) -> str:
    save_by_rename(path, text)
    return parse_config(text).version


def ticket_events(now: datetime) -> list[pb.TicketEvent]:
    """Open tickets of every kind and age, some answered (response stopped) or on hold half-way
    through their age, and some resolved (not open: outside the preview)."""
    events = []
    for priority, tier in KINDS:
        for age in AGES_MINUTES:
            created = now - timedelta(minutes=age)
            half = created + timedelta(minutes=age / 2)
            base = f"{priority}-{tier}-{age}"
            events.append(event(f"{base}-open", created=created, priority=priority, tier=tier))
            for suffix, status in (
                ("answered", pb.TICKET_STATUS_IN_PROGRESS),
                ("held", pb.TICKET_STATUS_ON_HOLD),
                ("resolved", pb.TICKET_STATUS_RESOLVED),
            ):
                tid = f"{base}-{suffix}"
                events.append(event(tid, created=created, priority=priority, tier=tier))
                events.append(
                    event(tid, status, created=created, updated=half, priority=priority, tier=tier)
                )
    return events


def next_breach(ticket: pb.Ticket) -> datetime | None:
    due = [
        c.due_at.ToDatetime(UTC)
        for c in ticket.clocks
        if c.HasField("due_at") and not c.paused and not c.stopped
    ]
    return min(due, default=None)


def snapshot(stub: pb_grpc.TicketServiceStub, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    out = {}
    for tid in ids:
        t = stub.GetTicket(pb.GetTicketRequest(ticket_id=tid)).ticket
        out[tid] = (t.sla_state, next_breach(t), t.policy)
    return out


def recomputed(database_url: str, version: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT recomputed_at IS NOT NULL FROM policy_versions WHERE version = %s", (version,)
        ).fetchone()
    return row == (True,)


def open_ids(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT ticket_id FROM tickets WHERE active ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def table_digest(database_url: str) -> dict[str, str]:
    """A digest of every row of the tables a preview could touch."""
    out = {}
    with psycopg.connect(database_url) as conn:
        for table in ("tickets", "sla_clocks", "ticket_events", "policy_versions", "alerts"):
            row = conn.execute(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                f" FROM {table} t"
            ).fetchone()
            assert row is not None
            out[table] = row[0]
    return out


def test_preview_counts_equal_what_applying_the_file_then_does(
    stub_factory: StubFactory, database_url: str, tmp_path: Path
) -> None:
    """Every count of the preview (state transitions, next breaches earlier and later, policy
    changes, unmatched tickets, open tickets) is what the recompute after saving the same text
    does, ticket by ticket; the sample names changed tickets; the version is the file's."""
    path = tmp_path / "sla_config.yaml"
    current_version = save(path, config_text(policies=CURRENT))
    stub = stub_factory(path)
    now = datetime.now(UTC)
    stub.IngestTickets(pb.IngestTicketsRequest(events=ticket_events(now)))
    ids = open_ids(database_url)
    before = snapshot(stub, ids)

    candidate = config_text(policies=CANDIDATE)
    preview = stub.PreviewPolicy(pb.PreviewPolicyRequest(config_text=candidate, sample_size=100))

    new_version = save(path, candidate)
    wait_for(lambda: recomputed(database_url, new_version), 20, "recompute of the candidate")
    after = snapshot(stub, ids)

    states = Counter((before[t][0], after[t][0]) for t in ids if before[t][0] != after[t][0])
    earlier = later = 0
    for t in ids:
        b, a = before[t][1], after[t][1]
        if b != a:
            if a is not None and (b is None or a < b):
                earlier += 1
            else:
                later += 1
    policies = Counter((before[t][2], after[t][2]) for t in ids if before[t][2] != after[t][2])
    changed = {t for t in ids if before[t] != after[t]}
    medium = [t for t in ids if t.startswith("medium-")]

    assert preview.version == new_version
    assert preview.current_version == current_version
    assert preview.open_tickets == len(ids) == 3 * len(KINDS) * len(AGES_MINUTES)
    assert preview.unmatched_tickets == len(medium)
    assert {(s.from_state, s.to_state): s.tickets for s in preview.state_changes} == states
    assert states, "the candidate was meant to change some states"
    assert (preview.breach_earlier, preview.breach_later) == (earlier, later)
    assert earlier and later
    assert {(p.from_policy, p.to_policy): p.tickets for p in preview.policy_changes} == policies
    assert set(preview.sample_ticket_ids) == changed
    assert list(preview.sample_ticket_ids) == sorted(preview.sample_ticket_ids)
    assert all(before[t] == after[t] for t in medium)
    assert preview.batches == 1


def test_preview_writes_nothing_and_reads_in_batches(
    stub_factory: StubFactory, database_url: str, tmp_path: Path
) -> None:
    """Nothing in any table changes (not even the policy_versions the candidate's version would
    get); the batches grow with the open tickets, and the sample is capped at its size."""
    path = tmp_path / "sla_config.yaml"
    save(path, config_text(policies=CURRENT))
    stub = stub_factory(path)
    now = datetime.now(UTC)
    events = [event(f"MANY-{i:04d}", created=now - timedelta(minutes=20)) for i in range(1100)]
    for start in range(0, len(events), 1000):
        stub.IngestTickets(pb.IngestTicketsRequest(events=events[start : start + 1000]))
    digest = table_digest(database_url)
    preview = stub.PreviewPolicy(
        pb.PreviewPolicyRequest(config_text=config_text(policies=CANDIDATE), sample_size=3)
    )
    assert table_digest(database_url) == digest
    assert preview.open_tickets == 1100
    assert preview.batches == 3  # 500 + 500 + 100
    assert list(preview.sample_ticket_ids) == ["MANY-0000", "MANY-0001", "MANY-0002"]
    # 20 minutes into a 15-minute response: breached now, and still under the 30-minute one.
    assert {(s.from_state, s.to_state): s.tickets for s in preview.state_changes} == {
        (pb.SLA_STATE_BREACHED, pb.SLA_STATE_OK): 1100
    }


def bad_request(err: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out += [(v.field, v.description) for v in br.field_violations]
    return out


@pytest.mark.parametrize(
    "broken",
    [
        "policies: {high: {gold: {response: soon}}}\n",
        "escalation: [{at_percent: 85, level: 1, kind: warning, notify: [nowhere]}]\n",
        "policies: [{name: a, match: {colour: [red]}, targets: {response: 1h}}]\n",
        "{{{\n",
    ],
)
def test_an_invalid_candidate_is_refused_with_the_reloads_message(
    stub: pb_grpc.TicketServiceStub, broken: str
) -> None:
    """INVALID_ARGUMENT with a BadRequest on config_text whose description is the message the
    config loader (and so a reload, and `slawatch-config check`) gives, naming the key."""
    with pytest.raises(ConfigError) as expected:
        parse_config(broken)
    with pytest.raises(grpc.RpcError) as err:
        stub.PreviewPolicy(pb.PreviewPolicyRequest(config_text=broken))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(err.value) == [("config_text", str(expected.value))]


def test_bad_preview_fields_are_named(stub: pb_grpc.TicketServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.PreviewPolicy(pb.PreviewPolicyRequest(config_text="x" * (1024 * 1024 + 1)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in bad_request(err.value)] == ["config_text"]
    with pytest.raises(grpc.RpcError) as err:
        stub.PreviewPolicy(pb.PreviewPolicyRequest(config_text=config_text(), sample_size=101))
    assert [f for f, _ in bad_request(err.value)] == ["sample_size"]


TOKENS = {
    "acme-reader": ("acme", ["read"]),
    "acme-admin": ("acme", ["admin"]),
    "acme-ingest": ("acme", ["ingest"]),
    "globex-ingest": ("globex", ["ingest"]),
}


@pytest.fixture
def secure_stub(database_url: str, config_path: Path) -> Iterator[pb_grpc.TicketServiceStub]:
    tokens = json.dumps(
        [
            {"name": n, "sha256": hash_token(f"s3cret-{n}"), "tenant": t, "roles": r}
            for n, (t, r) in TOKENS.items()
        ]
    )
    settings = make_settings(
        database_url, config_path, SLAWATCH_INSECURE_DEV="", SLAWATCH_TOKENS=tokens
    )
    running: RunningServer = start_server(settings, bind="127.0.0.1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield pb_grpc.TicketServiceStub(channel)
    finally:
        running.stop(grace=1)


def as_(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer s3cret-{name}"),)


def test_preview_needs_the_admin_role_and_reading_the_policy_the_read_role(
    secure_stub: pb_grpc.TicketServiceStub,
) -> None:
    request = pb.PreviewPolicyRequest(config_text=config_text())
    with pytest.raises(grpc.RpcError) as err:
        secure_stub.PreviewPolicy(request, metadata=as_("acme-reader"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    answer = secure_stub.PreviewPolicy(request, metadata=as_("acme-admin"))
    assert answer.version == answer.current_version == parse_config(config_text()).version
    assert answer.open_tickets == 0
    got = secure_stub.GetPolicy(pb.GetPolicyRequest(), metadata=as_("acme-reader"))
    assert got.text == config_text()
    with pytest.raises(grpc.RpcError) as err:
        secure_stub.GetPolicy(pb.GetPolicyRequest(), metadata=as_("acme-admin"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_preview_counts_the_callers_tenant_only(
    secure_stub: pb_grpc.TicketServiceStub,
) -> None:
    """Tickets of another tenant are neither counted nor sampled (the tenant is the token's)."""
    now = datetime.now(UTC)
    for name, count in (("acme-ingest", 2), ("globex-ingest", 5)):
        secure_stub.IngestTickets(
            pb.IngestTicketsRequest(
                events=[
                    event(f"{name}-{i}", created=now - timedelta(minutes=20)) for i in range(count)
                ]
            ),
            metadata=as_(name),
        )
    answer = secure_stub.PreviewPolicy(
        pb.PreviewPolicyRequest(config_text=config_text(policies=CANDIDATE), sample_size=100),
        metadata=as_("acme-admin"),
    )
    assert answer.open_tickets == 2
    assert sorted(answer.sample_ticket_ids) == ["acme-ingest-0", "acme-ingest-1"]


def recorded(database_url: str, version: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT recomputed_at IS NOT NULL FROM policy_versions WHERE version = %s", (version,)
        ).fetchone()
    return row == (True,)


def test_get_policy_and_list_policy_versions_after_three_saves(
    stub_factory: StubFactory, database_url: str, tmp_path: Path
) -> None:
    """Four versions (the start and three saves): GetPolicy gives the last with its text and
    when it was applied; ListPolicyVersions pages them newest first, two at a time, with the
    active one marked; an older version's text is still there by name."""
    path = tmp_path / "sla_config.yaml"
    texts = [
        config_text(policies={"high": {"gold": {"response": f"{m}m", "resolution": "4h"}}})
        for m in (10, 20, 30, 40)
    ]
    versions = [save(path, texts[0])]
    stub = stub_factory(path)
    wait_for(lambda: recorded(database_url, versions[0]), 20, "first version recorded")
    for text in texts[1:]:
        versions.append(save(path, text))
        wait_for(
            lambda: stub.GetPolicy(pb.GetPolicyRequest()).policy.version == versions[-1],
            20,
            "the save is in force",
        )
        wait_for(lambda: recorded(database_url, versions[-1]), 20, "the save is recorded")

    active = stub.GetPolicy(pb.GetPolicyRequest())
    assert active.policy.version == versions[3] and active.policy.active
    assert active.text == texts[3]
    assert active.policy.HasField("applied_at") and active.policy.HasField("recomputed_at")
    older = stub.GetPolicy(pb.GetPolicyRequest(version=versions[1]))
    assert (older.text, older.policy.active) == (texts[1], False)

    pages: list[list[str]] = []
    token = ""
    while True:
        page = stub.ListPolicyVersions(pb.ListPolicyVersionsRequest(page_size=2, page_token=token))
        pages.append([v.version for v in page.versions])
        assert [v.active for v in page.versions] == [
            v.version == versions[3] for v in page.versions
        ]
        token = page.next_page_token
        if not token:
            break
    assert pages == [[versions[3], versions[2]], [versions[1], versions[0]]]
    seen = stub.ListPolicyVersions(pb.ListPolicyVersionsRequest()).versions
    firsts = [v.first_seen_at.ToDatetime(UTC) for v in seen]
    assert firsts == sorted(firsts, reverse=True)

    with pytest.raises(grpc.RpcError) as err:
        stub.GetPolicy(pb.GetPolicyRequest(version="0123456789abcdef"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.ListPolicyVersions(pb.ListPolicyVersionsRequest(page_token="garbage"))
    assert [f for f, _ in bad_request(err.value)] == ["page_token"]
    with pytest.raises(grpc.RpcError) as err:
        stub.ListPolicyVersions(pb.ListPolicyVersionsRequest(page_size=101))
    assert [f for f, _ in bad_request(err.value)] == ["page_size"]


def test_a_rollback_is_applied_again(
    stub_factory: StubFactory, database_url: str, tmp_path: Path
) -> None:
    """Returning to an earlier file: the same version, its first_seen_at kept, its applied_at
    moved to the return."""
    path = tmp_path / "sla_config.yaml"
    first = save(path, config_text())
    stub = stub_factory(path)
    wait_for(lambda: recorded(database_url, first), 20, "first recorded")
    original = stub.GetPolicy(pb.GetPolicyRequest()).policy
    second = save(path, config_text(policies=CURRENT))
    wait_for(lambda: recorded(database_url, second), 20, "second recorded")
    save(path, config_text())

    def reapplied() -> bool:
        policy = stub.GetPolicy(pb.GetPolicyRequest()).policy
        return policy.version == first and policy.applied_at.ToDatetime(
            UTC
        ) > original.applied_at.ToDatetime(UTC)

    wait_for(reapplied, 20, "the rollback applied")
    back = stub.GetPolicy(pb.GetPolicyRequest()).policy
    assert back.first_seen_at == original.first_seen_at
    assert back.active


def test_the_typed_client_reads_the_policy_and_pages_its_versions(
    server: RunningServer, database_url: str, config_path: Path
) -> None:

    version = parse_config(config_path.read_text()).version
    wait_for(lambda: recorded(database_url, version), 20, "the version recorded")
    with SlawatchClient(f"127.0.0.1:{server.port}") as client:
        got = client.get_policy()
        assert (got.policy.version, got.text) == (version, config_path.read_text())
        assert [v.version for v in client.iter_policy_versions(page_size=1)] == [version]
        assert client.preview_policy(config_path.read_text()).version == version
