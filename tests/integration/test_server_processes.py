"""SLAWATCH_SERVER_PROCESSES: several server processes share one port under a supervisor that
passes signals on and never leaves half a server running. Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc

from bench.common import children
from slawatch.v1 import ticket_service_pb2 as pb
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc
from support.events import event
from support.ops import established_connections, get, server_process
from support.servers import wait_for


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_processes_share_the_port_and_stop_together_on_sigterm(
    database_url: str, config_path: Path, tmp_path: Path
) -> None:
    """Two processes serve one port: callers on separate connections reach both, every call
    succeeds, each process has its own metrics endpoint, and SIGTERM to the supervisor stops
    both gracefully (exit 0)."""
    with server_process(
        database_url, config_path, tmp_path, SLAWATCH_SERVER_PROCESSES="2"
    ) as server:
        wait_for(lambda: len(children(server.proc.pid)) == 2, what="two server processes")
        pids = children(server.proc.pid)
        for offset in (0, 1):
            wait_for(
                lambda offset=offset: (
                    get(f"http://127.0.0.1:{server.metrics_port + offset}/metrics")[0] == 200
                ),
                what=f"metrics of process {offset}",
            )

        # Separate connections (the kernel spreads connections, not calls, over the processes).
        channels = [
            grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(24)
        ]
        try:
            for i, channel in enumerate(channels):
                stub = pb_grpc.TicketServiceStub(channel)
                stub.IngestTickets(pb.IngestTicketsRequest(events=[event(f"P-{i}")]), timeout=30)
            for i, channel in enumerate(channels):
                stub = pb_grpc.TicketServiceStub(channel)
                ticket = stub.GetTicket(pb.GetTicketRequest(ticket_id=f"P-{i}"), timeout=30)
                assert ticket.ticket.ticket_id == f"P-{i}"
            # 24 connections all landing on one of two listeners would take odds of 1 in 2^23.
            assert all(established_connections(pid, server.port) > 0 for pid in pids)
        finally:
            for channel in channels:
                channel.close()

        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        assert not any(alive(pid) for pid in pids)
        assert "serving with 2 processes" in server.log_text()


def test_a_process_that_dies_takes_the_others_down(
    database_url: str, config_path: Path, tmp_path: Path
) -> None:
    """A copy killed outright: the supervisor stops the other one and exits with an error, so
    that whatever runs it restarts a whole server rather than half of one."""
    with server_process(
        database_url, config_path, tmp_path, SLAWATCH_SERVER_PROCESSES="2"
    ) as server:
        wait_for(lambda: len(children(server.proc.pid)) == 2, what="two server processes")
        first, second = children(server.proc.pid)
        os.kill(first, signal.SIGKILL)
        assert server.proc.wait(timeout=60) == 1
        deadline = time.monotonic() + 10
        while alive(second) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(second)
        assert "stopping the others" in server.log_text()
