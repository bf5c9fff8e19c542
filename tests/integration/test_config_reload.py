"""Hot reload of the SLA config: saves in place, by rename and by a swapped symlink are noticed;
a broken save is refused and the last good config keeps running; a new version moves the
deadlines of open tickets, recomputed once whichever process sees it first."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from pathlib import Path

import psycopg
import pytest

from internal.config.holder import ConfigHolder
from internal.config.sla_config import load_config, parse_config
from internal.config.watcher import ConfigWatcher
from internal.store.db import make_pool
from internal.store.recompute_repo import claim_version
from slawatch.v1 import ticket_service_pb2 as pb
from support.configs import config_text
from support.env import StubFactory
from support.events import event

GOLD_2H = {
    "high": {"gold": {"response": "15m", "resolution": "2h"}},
    "low": {"gold": {"response": "1h", "resolution": "12h"}},
}


def eventually(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, ConfigHolder]]:
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text())
    holder = ConfigHolder(load_config(path))
    watcher = ConfigWatcher(path, holder, poll=60).start()  # events only: the poll never fires
    yield path, holder
    watcher.stop()


def resolution_of(holder: ConfigHolder) -> float:
    targets = holder.current.targets("high", "gold")
    assert targets is not None
    return targets.resolution


def test_a_save_in_place_applies_within_two_seconds(watched: tuple[Path, ConfigHolder]) -> None:
    path, holder = watched
    path.write_text(config_text(policies=GOLD_2H))
    eventually(lambda: resolution_of(holder) == 7200, timeout=2, what="in-place save applied")


def test_a_save_by_rename_applies(watched: tuple[Path, ConfigHolder]) -> None:
    """Editors write a temporary file and rename it over the old one."""
    path, holder = watched
    tmp = path.with_name(".sla_config.yaml.swp")
    tmp.write_text(config_text(policies=GOLD_2H))
    os.replace(tmp, path)
    eventually(lambda: resolution_of(holder) == 7200, timeout=2, what="renamed save applied")


def test_a_configmap_symlink_swap_applies(tmp_path: Path) -> None:
    """Kubernetes: dir/sla_config.yaml -> ..data/sla_config.yaml, ..data -> ..<timestamp>/, and
    an update swaps ..data atomically."""
    first, second = tmp_path / "..2026_11_22_01", tmp_path / "..2026_11_22_02"
    first.mkdir()
    second.mkdir()
    (first / "sla_config.yaml").write_text(config_text())
    (second / "sla_config.yaml").write_text(config_text(policies=GOLD_2H))
    (tmp_path / "..data").symlink_to(first.name)
    path = tmp_path / "sla_config.yaml"
    path.symlink_to("..data/sla_config.yaml")
    holder = ConfigHolder(load_config(path))
    watcher = ConfigWatcher(path, holder, poll=60).start()
    try:
        assert resolution_of(holder) == 4 * 3600
        swap = tmp_path / "..data_tmp"
        swap.symlink_to(second.name)
        os.replace(swap, tmp_path / "..data")
        eventually(lambda: resolution_of(holder) == 7200, timeout=2, what="symlink swap applied")
    finally:
        watcher.stop()


def test_a_broken_save_is_refused_with_one_error_line_then_a_fix_applies(
    watched: tuple[Path, ConfigHolder], caplog: pytest.LogCaptureFixture
) -> None:
    path, holder = watched
    before = holder.current.version
    caplog.set_level(logging.ERROR, logger="internal.config.watcher")
    path.write_text(
        config_text(policies={"high": {"gold": {"response": "soon", "resolution": "2h"}}})
    )
    eventually(lambda: caplog.records, timeout=2, what="refusal logged")
    time.sleep(0.5)  # later events of the same save must not log again
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "policies.high.gold.response" in errors[0].getMessage()
    assert str(path) in errors[0].getMessage()
    assert holder.current.version == before
    path.write_text(config_text(policies=GOLD_2H))
    eventually(lambda: resolution_of(holder) == 7200, timeout=2, what="fixed save applied")


def test_the_poll_catches_changes_no_event_reported(tmp_path: Path) -> None:
    """Network filesystems may never raise an event; the content-hash poll still sees the change."""
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text())
    holder = ConfigHolder(load_config(path))
    watcher = ConfigWatcher(path, holder, poll=0.3)
    watcher.check()  # as a poll would, without any filesystem event involved
    path.write_text(config_text(policies=GOLD_2H))
    watcher.check()
    assert resolution_of(holder) == 7200


def test_editing_the_config_moves_due_times_of_open_tickets(
    stub_factory: StubFactory, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text())
    stub = stub_factory(path)
    stub.IngestTickets(
        pb.IngestTicketsRequest(events=[event("MOVE-1"), event("KEEP-1", priority="low")])
    )
    ticket = stub.GetTicket(pb.GetTicketRequest(ticket_id="MOVE-1")).ticket
    created = ticket.created_at.ToDatetime(UTC)
    assert ticket.resolution.due_at.ToDatetime(UTC) == created + timedelta(hours=4)

    path.write_text(
        config_text(policies={**GOLD_2H, "low": {"gold": {"response": "1h", "resolution": "12h"}}})
    )
    new_version = parse_config(path.read_bytes()).version

    def moved() -> bool:
        got = stub.GetTicket(pb.GetTicketRequest(ticket_id="MOVE-1")).ticket
        return got.resolution.due_at.ToDatetime(UTC) == created + timedelta(hours=2)

    eventually(moved, timeout=10, what="due time moved to the new target")
    with psycopg.connect(database_url) as conn:
        due, next_check, version = conn.execute(
            "SELECT c.due_at, c.next_check_at, t.policy_version FROM sla_clocks c"
            " JOIN tickets t USING (tenant_id, ticket_id)"
            " WHERE ticket_id = 'MOVE-1' AND clock = 'resolution'"
        ).fetchone()  # type: ignore[misc]
        assert due == created + timedelta(hours=2)
        assert next_check == created + timedelta(hours=2 * 0.85)
        assert version == new_version
        eventually(
            lambda: (
                conn.execute(
                    "SELECT recomputed_at IS NOT NULL FROM policy_versions WHERE version = %s",
                    (new_version,),
                ).fetchone()
                == (True,)
            ),
            what="recompute recorded",
        )


def test_each_version_is_recomputed_by_one_process_only(database_url: str) -> None:
    pool = make_pool(database_url)
    try:
        claims = []
        for _ in range(3):
            with pool.connection() as conn:
                claims.append(claim_version(conn, "v-new"))
        assert claims == [True, False, False]
    finally:
        pool.close()
