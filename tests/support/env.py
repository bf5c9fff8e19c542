"""Paths and settings shared by the test fixtures and tests."""

from __future__ import annotations

from pathlib import Path

from internal.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".data"


def make_settings(database_url: str, config_path: Path, **overrides: object) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "SLA_CONFIG_PATH": str(config_path),
        "SLAWATCH_GRPC_PORT": "0",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return Settings.from_env(env)
