"""PreviewPolicy benchmark (issue 13): the seconds a preview takes over 100,000 open tickets,
through the real server on loopback and real PostgreSQL.

The tickets come in through ingest (make_events of the ingest benchmark: four priority x tier
kinds, every one open). The candidate is the served config with every target halved, so that
many states and next breaches move. Each preview is timed from call to answer, three times;
the server's and PostgreSQL's CPU seconds per preview are printed beside the wall time, since
a preview is a read of every open ticket's history and a computation of its clocks.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
import yaml

from bench.common import ROOT, cpu_by_process, scratch_database, server_process
from bench.ingest import ingest_all, make_events
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc


def halved(text: str) -> str:
    """The config with every target of its policies halved."""
    doc = yaml.safe_load(text)
    for tiers in doc["policies"].values():
        for targets in tiers.values():
            for metric, value in list(targets.items()):
                if metric != "calendar":
                    seconds = _seconds(value)
                    targets[metric] = f"{seconds // 2}s"
    return yaml.safe_dump(doc, sort_keys=False)


def _seconds(value: object) -> int:
    text = str(value)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(float(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    text = (ROOT / "sla_config.yaml").read_text()
    candidate = halved(text)
    events = make_events(opts.tickets, datetime.now(UTC))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sla_config.yaml"
        config.write_text(text)
        with scratch_database() as db, server_process(db, config) as server:
            ingest_all(server.target, events, 500, 4)
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
                row = conn.execute("SELECT count(*) FROM tickets WHERE active").fetchone()
            print(f"{row[0] if row else 0:,} open tickets (of {opts.tickets:,} ingested)")
            with grpc.insecure_channel(server.target) as channel:
                stub = pb_grpc.TicketServiceStub(channel)
                walls, server_cpu, pg_cpu = [], [], []
                answer = pb.PreviewPolicyResponse()
                for _ in range(opts.runs):
                    before = cpu_by_process(server.proc.pid)
                    started = time.perf_counter()
                    answer = stub.PreviewPolicy(
                        pb.PreviewPolicyRequest(config_text=candidate), timeout=600
                    )
                    walls.append(time.perf_counter() - started)
                    after = cpu_by_process(server.proc.pid)
                    server_cpu.append(after["server"] - before["server"])
                    pg_cpu.append(after["postgres"] - before["postgres"])
            changed = sum(s.tickets for s in answer.state_changes)
            print(
                f"PreviewPolicy:     median {statistics.median(walls):.2f} s over"
                f" {answer.open_tickets:,} open tickets in {answer.batches} batches"
                f" ({answer.open_tickets / statistics.median(walls):,.0f} tickets/s;"
                f" runs {', '.join(f'{w:.2f}' for w in walls)} s)"
            )
            print(
                f"  CPU per preview: server {statistics.median(server_cpu):.2f} s,"
                f" PostgreSQL {statistics.median(pg_cpu):.2f} s"
            )
            print(
                f"  answer: {changed:,} state changes, next breach earlier for"
                f" {answer.breach_earlier:,}, later for {answer.breach_later:,}"
            )


if __name__ == "__main__":
    main()
