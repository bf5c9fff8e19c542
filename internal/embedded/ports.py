"""Loopback port helpers for the embedded servers and the tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Ports the kernel hands out for bind(port 0) and outgoing connections; Linux's default.
_EPHEMERAL_DEFAULT = (32768, 60999)
_LOWEST = 20000


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _EPHEMERAL_DEFAULT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, chosen at random below the
    kernel's ephemeral range. A caller may stop its server and start it again on the same port
    (a restart): a port the kernel would hand to anyone binding port 0 could be taken in between
    by another process (a test running beside it); one below that range is only ever taken by
    another free_port that happens on the same number."""
    low = _ephemeral_range()[0]
    candidates = range(_LOWEST, low) if low - _LOWEST >= 1000 else range(low, 65536)
    for _ in range(200):
        port = random.choice(candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
