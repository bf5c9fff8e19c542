"""Ingest and read benchmark (issue 2): through the real server on loopback, real PostgreSQL.

- 100,000 new events in batches of 500: events/s, p50/p99 per batch;
- the same events again (all duplicates);
- a status change of every stored ticket (updates, the everyday traffic);
- GetDashboard and GetTicket p50/p99 with 100,000 tickets stored;
- peak RSS of the server process.

`--config FILE` runs it under another SLA config (e.g. examples/zendesk-like.yaml, whose metrics
include reply metrics with a cycle per customer wait); `--replies` makes every second event a
reply: a customer's among the new events, an agent's among the updates. `--fields` gives every
event a group and a tag (one of 50); `--policies N` serves the config with its policies replaced
by N ordered policies matched on group and tags (N-1 of them, then a catch-all), for the
comparison with the priority x tier map (run both with `--fields`).
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from bench.common import (
    ROOT,
    ServerProcess,
    cpu_by_process,
    machine_ticks,
    peak_rss_mb,
    scratch_database,
    server_process,
    summary_ms,
)
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

PRIORITIES = [("high", "gold"), ("high", "silver"), ("low", "gold"), ("low", "silver")]
STATUSES = [pb.TICKET_STATUS_OPEN, pb.TICKET_STATUS_IN_PROGRESS, pb.TICKET_STATUS_ON_HOLD]
NEXT_STATUSES = [pb.TICKET_STATUS_IN_PROGRESS, pb.TICKET_STATUS_RESOLVED, pb.TICKET_STATUS_OPEN]


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


GROUPS = 50


def ordered_policies(text: str, count: int) -> str:
    """The config `text` with `count` ordered policies matched on group and tags, each with the
    targets of the map's high/gold (the last policy, the catch-all, with low/silver's)."""
    doc = yaml.safe_load(text)

    def targets(entry: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in entry.items() if k != "calendar"}

    first, last = doc["policies"]["high"]["gold"], doc["policies"]["low"]["silver"]
    doc["policies"] = [
        {
            "name": f"group-{k}",
            "match": {"group": [f"group-{k}"], "tags_any": [f"tag-{k}", "vip"]},
            "targets": targets(first),
        }
        for k in range(count - 1)
    ] + [{"name": "default", "targets": targets(last)}]
    return yaml.safe_dump(doc)


def make_events(
    count: int, now: datetime, replies: bool = False, fields: bool = False
) -> list[pb.TicketEvent]:
    rnd = random.Random(7)
    events = []
    for i in range(count):
        created = now - timedelta(seconds=rnd.randint(3600, 3 * 86400))
        priority, tier = PRIORITIES[i % len(PRIORITIES)]
        events.append(
            pb.TicketEvent(
                ticket_id=f"BENCH-{i:07d}",
                priority=priority,
                customer_tier=tier,
                status=STATUSES[i % len(STATUSES)],
                created_at=ts(created),
                updated_at=ts(created + timedelta(seconds=rnd.randint(0, 3600))),
                activity=pb.TICKET_ACTIVITY_CUSTOMER_REPLY  # type: ignore[arg-type]
                if replies and i % 2
                else pb.TICKET_ACTIVITY_UNSPECIFIED,
            )
        )
        if fields:
            events[-1].group = f"group-{i % GROUPS}"
            events[-1].tags.append(f"tag-{(i // GROUPS) % GROUPS}")
    return events


def ingest_all(
    target: str, events: list[pb.TicketEvent], batch: int, clients: int
) -> tuple[float, list[float]]:
    """Send every batch from `clients` concurrent callers, each on a connection of its own (as
    separate services would be); wall time and per-batch latencies."""
    requests = [
        pb.IngestTicketsRequest(events=events[start : start + batch])
        for start in range(0, len(events), batch)
    ]
    channels = [
        grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(clients)
    ]
    stubs = [pb_grpc.TicketServiceStub(channel) for channel in channels]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=30)

    def send(i: int) -> float:
        t = time.perf_counter()
        stubs[i % clients].IngestTickets(requests[i], timeout=60)
        return time.perf_counter() - t

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(send, range(len(requests))))
    elapsed = time.perf_counter() - started
    for channel in channels:
        channel.close()
    return elapsed, latencies


def next_events(events: list[pb.TicketEvent], replies: bool = False) -> list[pb.TicketEvent]:
    """A status change for every ticket, 30 s after its event (so never in the future): the
    everyday traffic of a help desk, tickets already stored moving on."""
    changes = []
    for i, e in enumerate(events):
        change = pb.TicketEvent()
        change.CopyFrom(e)
        change.updated_at.FromDatetime(e.updated_at.ToDatetime(UTC) + timedelta(seconds=30))
        change.status = NEXT_STATUSES[i % len(NEXT_STATUSES)]
        change.activity = (
            pb.TICKET_ACTIVITY_AGENT_REPLY if replies and i % 2 else pb.TICKET_ACTIVITY_UNSPECIFIED
        )
        changes.append(change)
    return changes


def ingest_phases(
    server: ServerProcess, events: list[pb.TicketEvent], opts: argparse.Namespace
) -> None:
    """New events, the same again (all duplicates), then a status change of every ticket, with
    the CPU each side spent."""
    phases = (
        ("new", events),
        ("duplicates", events),
        ("updates", next_events(events, opts.replies)),
    )
    for label, part in phases:
        cpu_before, ticks_before = cpu_by_process(server.proc.pid), machine_ticks()
        total, lat = ingest_all(server.target, part, opts.batch, opts.clients)
        cpu_after, ticks_after = cpu_by_process(server.proc.pid), machine_ticks()
        print(
            f"ingest {label:<10} {len(part) / total:>8,.0f} events/s "
            f"({opts.clients} clients); per batch of {opts.batch}: {summary_ms(lat)}"
        )
        # Where the time goes: on two shared cores, events/s cannot exceed
        # 2 s / (CPU per event), whatever the concurrency.
        per_event = {k: (cpu_after[k] - cpu_before[k]) / len(part) * 1e6 for k in cpu_after}
        print(
            f"  CPU per event: server {per_event['server']:.0f} us, "
            f"PostgreSQL {per_event['postgres']:.0f} us, "
            f"benchmark client {per_event['client']:.0f} us "
            f"(two cores could do at most {2e6 / sum(per_event.values()):,.0f}/s); "
            f"CPU stolen by the host: {steal_share(ticks_before, ticks_after):.1%}"
        )


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    elapsed = after[0] - before[0]
    return (after[1] - before[1]) / elapsed if elapsed else 0.0


def timed(call: object, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t = time.perf_counter()
        call(i)  # type: ignore[operator]
        samples.append(time.perf_counter() - t)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent ingest callers")
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="server processes to compare; reads run against the last",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=ROOT / "sla_config.yaml",
        help="the SLA config to serve (its policies must have high/low x gold/silver)",
    )
    parser.add_argument(
        "--replies", action="store_true", help="every second event is a customer or agent reply"
    )
    parser.add_argument(
        "--fields", action="store_true", help="every event carries a group and a tag"
    )
    parser.add_argument(
        "--policies",
        type=int,
        default=0,
        help="serve N ordered policies matched on group and tags instead of the config's map",
    )
    opts = parser.parse_args()

    now = datetime.now(UTC)
    events = make_events(opts.events, now, opts.replies, opts.fields)
    print(
        f"config {opts.config}{', a reply on every second event' if opts.replies else ''}"
        f"{', group and tag on every event' if opts.fields else ''}"
        f"{f', {opts.policies} ordered policies' if opts.policies else ''}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sla_config.yaml"
        text = opts.config.read_text()
        config.write_text(ordered_policies(text, opts.policies) if opts.policies else text)
        for processes in opts.processes:
            print(f"-- server with {processes} process(es) (SLAWATCH_SERVER_PROCESSES)")
            with (
                scratch_database() as db,
                server_process(db, config, SLAWATCH_SERVER_PROCESSES=str(processes)) as server,
            ):
                ingest_phases(server, events, opts)
                if processes == opts.processes[-1]:
                    reads(server, db, opts)
                rss = max(peak_rss_mb(pid) for pid in server.pids())
                print(f"server peak RSS:   {rss:.0f} MB (largest process)")


def reads(server: ServerProcess, db: str, opts: argparse.Namespace) -> None:
    # Reads are measured on a settled table, as autovacuum leaves it a little later: right
    # after a bulk load the visibility map is empty and the planner has no statistics.
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    # The benchmark's own 100,000 events stay alive: kept out of its collector's full passes,
    # which would otherwise land in the timed calls as client-side pauses.
    gc.collect()
    gc.freeze()
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.TicketServiceStub(ch)
        rnd = random.Random(11)
        ids = [f"BENCH-{rnd.randrange(opts.events):07d}" for _ in range(opts.reads)]
        get = timed(lambda i: stub.GetTicket(pb.GetTicketRequest(ticket_id=ids[i])), opts.reads)
        print(f"GetTicket:         {summary_ms(get)}")
        dash = timed(lambda i: stub.GetDashboard(pb.GetDashboardRequest()), opts.reads // 4)
        print(f"GetDashboard:      {summary_ms(dash)}  (first page of 50, counts of all)")
        filtered = timed(
            lambda i: stub.GetDashboard(
                pb.GetDashboardRequest(states=[pb.SLA_STATE_WARNING], priorities=["high"])
            ),
            opts.reads // 4,
        )
        print(f"GetDashboard filtered (WARNING, high): {summary_ms(filtered)}")


if __name__ == "__main__":
    main()
