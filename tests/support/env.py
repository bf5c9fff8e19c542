"""Paths and settings shared by the test fixtures and tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from internal.config.settings import Settings
from slawatch.v1 import ticket_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".data"

# Starts a server on the test's database with the given config file and returns a stub to it.
StubFactory = Callable[[Path], pb_grpc.TicketServiceStub]


def make_settings(database_url: str, config_path: Path, **overrides: object) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "SLA_CONFIG_PATH": str(config_path),
        "SLAWATCH_GRPC_PORT": "0",
        # Tests that are not about authentication run as the development tenant; the security
        # tests configure tokens (and TLS) explicitly.
        "SLAWATCH_INSECURE_DEV": "1",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return Settings.from_env(env)
