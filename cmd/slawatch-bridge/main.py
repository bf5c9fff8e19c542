"""slawatch-bridge: alerts to browsers over WebSocket, the live page, /healthz (aiohttp).

Metrics on SLAWATCH_BRIDGE_METRICS_PORT (9467; 0 turns them off)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys

from internal.bridge.app import serve
from internal.config.settings import BridgeSettings, BridgeSettingsError, OpsSettings, SettingsError
from internal.obs.logs import configure_logging
from internal.obs.ops_http import start_ops_server


def raise_open_file_limit() -> None:
    """Every WebSocket is a file descriptor; the usual soft limit of 1,024 is far too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    try:
        settings = BridgeSettings.from_env()
        ops = OpsSettings.from_env("bridge")
    except (BridgeSettingsError, SettingsError) as err:
        print(f"slawatch-bridge: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, "bridge")
    raise_open_file_limit()
    if ops.metrics_port:
        # Prometheus scrapes its own port, away from the browser-facing one.
        start_ops_server(
            ops.metrics_port, host=ops.metrics_host, setting="SLAWATCH_BRIDGE_METRICS_PORT"
        )
    try:
        asyncio.run(serve(settings))
    except BridgeSettingsError as err:  # the token configuration, read by serve()
        print(f"slawatch-bridge: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
